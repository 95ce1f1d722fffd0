"""The book: notebooks committed clean, built offline with warnings as errors, and rendered in a
real browser (equations typeset, every figure loaded, the explorer drawn, nothing fetched
from the internet). The build runs in the smoke profile, as CI does."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nadbook.book import CELL_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_notebooks_are_committed_without_outputs_and_take_parameters():
    assert len(NOTEBOOKS) >= 8
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name} has outputs"
        assert any("parameters" in c["metadata"].get("tags", []) for c in code), f"{path.name} has no parameters cell"


def test_notebook_code_fits_the_page():
    """The rendered book shows no horizontal scroll bars: code lines of at most 88 characters."""
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        long = [line for c in nb["cells"] if c["cell_type"] == "code"
                for line in "".join(c["source"]).splitlines() if len(line) > 88]
        assert not long, f"{path.name}: {long[0]!r}"


def test_every_citation_is_in_the_references():
    """Every {cite} key of the chapters and pages is an entry of book/references.bib (an unknown
    key is a warning, so an error in the -W build, but this says which without building)."""
    bib = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text(), re.M))
    sources = [*NOTEBOOKS, *(ROOT / "book").glob("*.md")]
    cited = {key.strip() for path in sources
             for keys in re.findall(r"\{cite[:a-z]*\}`([^`]+)`", path.read_text()) for key in keys.split(",")}
    assert cited, "no citation found"
    assert cited <= bib, f"cited but not in references.bib: {sorted(cited - bib)}"


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"book/{p.stem}" in toc for p in NOTEBOOKS)


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    """The smoke profile's book, built here; or, with ``NADKIT_HTML``, a book built already (``make
    check`` points it at the full profile's ``_build/html``, so the page checks read that one)."""
    if os.environ.get("NADKIT_HTML"):
        return Path(os.environ["NADKIT_HTML"])
    out = tmp_path_factory.mktemp("book")
    # the results of `make test`'s run (NADKIT_RESULTS, shared with nbmake's chapters, which then only
    # read them), else a folder of this session: never runs/book, so that the cost of this test does
    # not depend on what an earlier run left there
    results = os.environ.get("NADKIT_RESULTS") or str(tmp_path_factory.mktemp("results"))
    env = dict(os.environ, NADKIT_PROFILE="smoke", NADKIT_QUIET="1", NADKIT_RESULTS=results)
    jb = Path(sys.executable).parent / "jupyter-book"
    # as `make` does: compute what the chapters read first (the smoke profile's, nothing else), so
    # that the cells only read it and no first cell runs into the cell timeout
    pre = subprocess.run([sys.executable, "-m", "nadbook.book", "precompute", "--jobs", "2"], env=env, capture_output=True,
                         text=True)
    assert pre.returncode == 0, pre.stderr[-3000:]
    config = out / "_config.yml"  # the book's, with the smoke profile's cell timeout
    config.write_text((ROOT / "_config.yml").read_text().replace(
        f"timeout: {CELL_TIMEOUT['full']}", f"timeout: {CELL_TIMEOUT['smoke']}"))
    run = subprocess.run([str(jb), "build", str(ROOT), "--config", str(config), "--path-output", str(out),
                          "-W", "-n", "--keep-going"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out / "_build" / "html"


def pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts)


@pytest.mark.slow
def test_built_pages_reference_no_external_script_or_style(html):
    external = re.compile(r'<(?:script|link)[^>]*(?:src|href)="(?:https?:)?//[^"]*"[^>]*>')
    for page in pages(html):
        text = page.read_text()
        bad = [m for m in external.findall(text) if "stylesheet" in m or "<script" in m or "preload" in m]
        assert not bad, f"{page.name} loads {bad[0]}"
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").exists()


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
MIN_TEXT_PT = 9  # the smallest text of a figure, at the size it is shown (1 pt = 4/3 CSS px)


# Text that a page must not show: "nan" (a number that was not computed), a Python object's repr,
# and MyST roles left unresolved.
TEXT_DEFECTS = re.compile(r"\bnan\b|\bNaN\b|object at 0x|Settings\(|<nadkit\.|\{(?:doc|term|cite|ref|numref)\}")


# The page's text less its code (cells' inputs, code blocks, inline code): what a reader reads.
PROSE = """() => { const m = document.querySelector("main").cloneNode(true);
    m.querySelectorAll("pre, code, .cell_input, script, style").forEach(e => e.remove());
    return m.textContent; }"""


def read_every_page(html: Path) -> dict[str, list[str]]:
    """Every page of the built book opened in Chromium, at 1280 px and at 390 px: what each
    check found, per check (an empty list: nothing). The checks:

    - ``images``: images that did not load; ``explorer``: chapter 10's figure not drawn, or a
      live widget in the page; ``outside``: requests for anything but the book's own files;
      ``failed``: files the page asked for and did not find;
    - ``console``: errors in the console or uncaught ones, the theme's own included, at
      either width (a page is opened with empty storage, as a first visit);
    - ``tables``, ``equations``: at 1280 px, tables and display equations wider than the
      text column (read by scrolling sideways); ``code``: code cells whose lines do not fit;
    - ``phone``: at 390 px, a page wider than the screen;
    - ``figure text``: Vega figures' texts smaller than MIN_TEXT_PT at their rendered size
      (matplotlib's PNGs are checked on the saved figures: tests/test_plots.py);
    - ``math errors``: equations MathJax could not typeset (it shows the error in their place);
    - ``vega warnings``: Vega's console warnings (an infinite extent: a band with nothing to draw);
    - ``text``: at 1280 px, the page's visible text with "nan", a raw object's repr or a
      cross-reference left as MyST source (``TEXT_DEFECTS``).
    """
    from playwright.sync_api import sync_playwright

    found: dict[str, list[str]] = {k: [] for k in ("images", "explorer", "outside", "failed", "console",
                                                  "tables", "equations", "code", "phone", "figure text",
                                                  "math errors", "vega warnings", "text")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for viewport in (DESKTOP, PHONE):
            for path in pages(html):
                context = browser.new_context(viewport=viewport)  # empty storage: a first visit
                page = context.new_page()
                where = f"{path.relative_to(html)} at {viewport['width']} px"
                page.on("console", lambda m, w=where: found["console"].append(f"{w}: {m.text}")
                        if m.type == "error" else None)
                page.on("console", lambda m, w=where: found["vega warnings"].append(f"{w}: {m.text}")
                        if m.type == "warning" and ("extent" in m.text or "vega" in m.text.lower()) else None)
                page.on("pageerror", lambda e, w=where: found["console"].append(f"{w}: {e}"))
                page.on("request", lambda r: found["outside"].append(r.url)
                        if not r.url.startswith(("file:", "data:", "about:", "blob:")) else None)
                page.on("requestfailed", lambda r: found["failed"].append(r.url))
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_timeout(300)
                if page.locator("div.math, span.math").count():
                    page.wait_for_selector("mjx-container", timeout=20_000)
                if page.locator(".nadkit-vega").count():
                    page.wait_for_selector(".nadkit-vega svg", timeout=30_000)
                page.wait_for_timeout(200)  # MathJax and Vega lay out
                found["math errors"] += [f"{where}: {e}" for e in page.evaluate(
                    "[...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 80))")]
                broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                                       ".map(i => i.src.slice(0, 80))")
                found["images"] += [f"{where}: {b}" for b in broken]
                if path.stem == "10_explorer" and (not page.locator(".nadkit-vega svg").count()
                                                   or page.locator(".widget-dropdown").count()):
                    found["explorer"].append(where)
                if viewport is DESKTOP:
                    found["tables"] += [f"{where}: {t}" for t in wider_than_the_column(page)]
                    found["equations"] += [f"{where}: {e}" for e in equations_wider_than_the_column(page)]
                    found["code"] += [f"{where}: {c}" for c in scrolled_code(page)]
                    found["figure text"] += [f"{where}: {t}" for t in small_figure_text(page)]
                    found["text"] += [f"{where}: ...{m.string[max(0, m.start() - 40):m.end() + 40]}..."
                                      for m in TEXT_DEFECTS.finditer(page.evaluate(PROSE))]
                else:
                    found["phone"] += [f"{where}: {w}" for w in wider_than_the_screen(page)]
                context.close()
        browser.close()
    return found


@pytest.fixture(scope="session")
def browsed(html) -> dict[str, list[str]]:
    if CHROMIUM is None:
        pytest.skip("no chromium (the set-up installs the Debian package as root)")
    return read_every_page(html)


@pytest.mark.parametrize("check", ["images", "explorer", "outside", "failed", "console", "tables",
                                   "equations", "code", "phone", "figure text", "math errors",
                                   "vega warnings", "text"])
@pytest.mark.slow
def test_every_page_in_a_browser(browsed, check):
    """Each check of ``read_every_page``, on every page of the book."""
    assert not browsed[check], f"{check}: {len(browsed[check])} found, e.g. {browsed[check][:4]}"


@pytest.mark.slow
def test_the_method_chapter_numbers_its_equations_as_the_paper(html):
    page = (html / "book" / "02_method.html").read_text()
    assert all(f"\\tag{{{n}}}" in page for n in (2, 9, 13, 15, 16))


@pytest.mark.slow
def test_no_page_points_to_a_document_the_book_does_not_have(html):
    """The book once sent readers to "reference notes", a document it does not contain."""
    for page in pages(html):
        assert "reference notes" not in page.read_text().lower(), page.name


def wider_than_the_column(page) -> list[str]:
    """The tables of the page wider than its text column (read by scrolling sideways)."""
    return page.evaluate("""() => {
        const column = document.querySelector("article.bd-article") || document.body;
        const width = column.getBoundingClientRect().width;
        return [...column.querySelectorAll("table")]
            .filter(t => t.scrollWidth > width + 1)
            .map(t => t.innerText.slice(0, 60));
    }""")


def equations_wider_than_the_column(page) -> list[str]:
    """The display equations (MathJax's output) that do not fit their box or the text column:
    the ones a reader scrolls sideways."""
    return page.evaluate("""() => {
        const column = document.querySelector("article.bd-article") || document.body;
        const width = column.getBoundingClientRect().width;
        return [...column.querySelectorAll('mjx-container[display="true"]')]
            .filter(m => m.scrollWidth > m.clientWidth + 1 || m.scrollWidth > width + 1)
            .map(m => (m.parentElement.id || m.closest("[id]").id) + ` (${m.scrollWidth} px in ${m.clientWidth})`);
    }""")


def wider_than_the_screen(page) -> list[str]:
    """The page's width beyond the screen's, and the first element that sticks out (none when the
    page fits)."""
    return page.evaluate("""() => {
        const over = document.documentElement.scrollWidth - window.innerWidth;
        if (over <= 0) return [];
        const out = [...document.querySelectorAll("body *")].find(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.right > window.innerWidth && getComputedStyle(e).position !== "fixed";
        });
        return [`${over} px wider than the screen` + (out ? ` (${out.tagName} ${out.className})` : "")];
    }""")


def small_figure_text(page, min_pt: float = MIN_TEXT_PT) -> list[str]:
    """The texts of the page's Vega figures (SVG) smaller than ``min_pt`` as drawn: the font size
    times the figure's scale on the page; and the matplotlib figures (PNG) shown smaller than they
    were drawn, whose texts (drawn at ``nadbook.plots.MIN_PT`` or more) then shrink below it."""
    shrunk = page.evaluate("""() => [...document.querySelectorAll("div.cell_output img")]
        .filter(i => i.naturalWidth && i.getBoundingClientRect().width < 0.97 * i.naturalWidth)
        .map(i => `figure ${i.naturalWidth} px wide shown at ${Math.round(i.getBoundingClientRect().width)} px`)""")
    return shrunk + page.evaluate("""(minPx) => [...document.querySelectorAll(".nadkit-vega svg")].flatMap(svg => {
        const box = svg.viewBox.baseVal, shown = svg.getBoundingClientRect().width;
        const scale = box && box.width ? shown / box.width : 1;
        return [...svg.querySelectorAll("text")].filter(t => t.textContent.trim())
            .map(t => [t.textContent.trim().slice(0, 30), parseFloat(getComputedStyle(t).fontSize) * scale])
            .filter(([, px]) => px < minPx - 0.01)
            .map(([text, px]) => `"${text}" ${(px * 0.75).toFixed(1)} pt`);
    })""", min_pt * 4 / 3)


def scrolled_code(page) -> list[str]:
    """The code of the page (cells, and commands in the text) whose lines do not fit their box
    (folded cells opened)."""
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    return page.evaluate("""() => [...document.querySelectorAll("div.cell_input pre, article div.highlight pre")]
        .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 60))""")


def svg_text(figure) -> list[str]:
    return figure.locator("svg text").all_text_contents()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the set-up installs the Debian package as root)")
@pytest.mark.parametrize("chapter, control", [("10_explorer", "class"), ("10_explorer", "network"),
                                              ("10_explorer", "point"), ("06_where", "network"),
                                              ("06_where", "measure"), ("09_baselines", "network")])
@pytest.mark.slow
def test_interactive_figures_answer_their_controls_offline(html, chapter, control):
    """The figures drawn in the page (Vega-Lite, no kernel): changing a control redraws the
    figure (its text changes: title, caption or axis), with no error and nothing fetched."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors, outside = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:", "about:", "blob:")) else None)
        page.goto((html / "book" / f"{chapter}.html").as_uri(), wait_until="load")
        page.wait_for_selector(".nadkit-vega svg", timeout=30_000)
        figure = page.locator(".nadkit-vega").first
        field = figure.locator(".vega-bind", has_text=control)
        before = svg_text(figure)
        if field.locator("select").count():
            select = field.locator("select")
            options = select.locator("option").all_text_contents()
            assert len(options) >= 2, f"{control} offers one choice only"
            select.select_option(options[-1])
        else:  # a slider
            field.locator("input[type=range]").fill("1")
        page.wait_for_timeout(500)
        after = svg_text(figure)
        browser.close()
    assert after != before, f"changing the {control} left the figure as it was"
    assert not errors, f"console errors: {errors[:3]}"
    assert not outside, f"fetched from outside: {outside[:3]}"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the set-up installs the Debian package as root)")
def test_the_explorer_s_point_slider_follows_the_network_and_shows_the_class_first(html):
    """Chapter 10 in the page: for every network, the point slider ends at the network's last
    point (its caption says "point N of N"), and for every class the first mosaic offered
    contains the class, its quadrant named."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport=DESKTOP)
        page.goto((html / "book" / "10_explorer.html").as_uri(), wait_until="load")
        page.wait_for_selector(".nadkit-vega svg", timeout=30_000)
        figure = page.locator(".nadkit-vega").first
        network = figure.locator(".vega-bind", has_text="network").locator("select")
        cls = figure.locator(".vega-bind", has_text="class").locator("select")
        point = figure.locator('input[name="point"]')
        ends, missing = {}, []
        for net in network.locator("option").all_text_contents():
            network.select_option(net)
            page.wait_for_timeout(200)
            last = point.get_attribute("max")
            point.fill(last)
            page.wait_for_timeout(200)
            ends[net] = (last, svg_text(figure)[0])
        for c in cls.locator("option").all_text_contents():
            cls.select_option(c)
            page.wait_for_timeout(200)
            if "the class is in the" not in " ".join(svg_text(figure)):
                missing.append(c)
        browser.close()
    assert len(ends) >= 1
    for net, (last, caption) in ends.items():
        assert f"point {last} of {last} " in caption, f"{net}: slider ends at {last}; {caption}"
    assert not missing, f"classes whose first mosaic does not contain them: {missing}"
