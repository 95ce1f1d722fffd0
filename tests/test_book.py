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

from nadkit.book import CELL_TIMEOUT

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


def test_every_chapter_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"book/{p.stem}" in toc for p in NOTEBOOKS)


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, NADKIT_PROFILE="smoke", NADKIT_QUIET="1")
    jb = Path(sys.executable).parent / "jupyter-book"
    # as `make` does: compute what the chapters read first, so that the cells only read it
    pre = subprocess.run([sys.executable, "-m", "nadkit.book", "precompute"], env=env, capture_output=True,
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


def test_built_pages_reference_no_external_script_or_style(html):
    external = re.compile(r'<(?:script|link)[^>]*(?:src|href)="(?:https?:)?//[^"]*"[^>]*>')
    for page in pages(html):
        text = page.read_text()
        bad = [m for m in external.findall(text) if "stylesheet" in m or "<script" in m or "preload" in m]
        assert not bad, f"{page.name} loads {bad[0]}"
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the set-up installs the Debian package as root)")
def test_every_page_renders_offline_in_a_browser(html):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        outside, failed = [], []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:", "about:", "blob:")) else None)
        page.on("requestfailed", lambda r: failed.append(r.url))
        for path in pages(html):
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(300)
            if page.locator("div.math, span.math").count():
                page.wait_for_selector("mjx-container", timeout=20_000)
            broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
            assert not broken, f"{path.name}: images that did not load: {broken[:3]}"
            if path.stem == "10_explorer":  # the explorer drawn in the page; the live one is not run
                page.wait_for_selector(".nadkit-vega svg", timeout=30_000)
                assert not page.locator(".widget-dropdown").count()
            assert not wider_than_the_column(page), f"{path.name}: tables wider than the text column"
            assert not scrolled_code(page), f"{path.name}: code read by scrolling sideways"
        browser.close()
    assert not outside, f"pages fetched from outside: {outside[:3]}"
    assert not failed, f"files the pages asked for and did not find: {failed[:3]}"
    equations = (html / "book" / "02_method.html").read_text()
    assert "eq-ib" in equations


def wider_than_the_column(page) -> list[str]:
    """The tables of the page wider than its text column (read by scrolling sideways)."""
    return page.evaluate("""() => {
        const column = document.querySelector("article.bd-article") || document.body;
        const width = column.getBoundingClientRect().width;
        return [...column.querySelectorAll("table")]
            .filter(t => t.scrollWidth > width + 1)
            .map(t => t.innerText.slice(0, 60));
    }""")


def scrolled_code(page) -> list[str]:
    """The code cells of the page whose lines do not fit their box (folded ones opened)."""
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    return page.evaluate("""() => [...document.querySelectorAll("div.cell_input pre")]
        .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 60))""")


def svg_text(figure) -> list[str]:
    return figure.locator("svg text").all_text_contents()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (the set-up installs the Debian package as root)")
@pytest.mark.parametrize("chapter, control", [("10_explorer", "class"), ("10_explorer", "network"),
                                              ("10_explorer", "point"), ("06_where", "network"),
                                              ("06_where", "measure"), ("09_baselines", "network")])
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
        page.goto((html / "book" / "03_networks.html").as_uri(), wait_until="load")  # no figure of ours
        page.wait_for_timeout(300)
        theme = set(errors)  # what the theme itself logs on every page
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
    ours = [e for e in errors if e not in theme]
    assert not ours, f"console errors: {ours[:3]}"
    assert not outside, f"fetched from outside: {outside[:3]}"
