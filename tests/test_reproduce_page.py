"""The book's Reproduce page says what the repository runs: its commands are the README's and
the Makefile's, its papermill commands and parameter table name the chapters' own parameters,
and it sits right after the introduction."""

import ast
import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "book" / "reproduce.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
README = (ROOT / "README.md").read_text()


def code_lines(markdown: str) -> list[str]:
    """The lines of the fenced bash blocks, continuations joined, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", markdown, re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def parameters(chapter: str) -> list[str]:
    """The names the chapter's cell tagged ``parameters`` assigns, in order."""
    nb = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]


def targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, re.M)) | {""}  # "" : plain `make`


def test_every_make_command_of_the_page_is_a_makefile_target_and_the_readme_s_are_there():
    named = re.findall(r"`make(?: ([a-z][\w-]*))?`", PAGE)
    named += [shlex.split(line)[1] if len(shlex.split(line)) > 1 else "" for line in code_lines(PAGE)
              if line.split()[0] == "make"]
    assert {"", "test", "reproduce", "setup"} <= set(named)
    assert set(named) <= targets(), f"not Makefile targets: {set(named) - targets()}"
    quick = code_lines(README.split("## Quick start", 1)[1])[:2]
    assert quick == ["make", "make test"] and all(line in code_lines(PAGE) for line in quick)


def test_the_page_s_recipes_are_the_makefile_s():
    """What the page says `make reproduce` and the set-up run is what the Makefile runs."""
    assert "OMP_NUM_THREADS=1 python -m nadbook.book reproduce --jobs 2" in PAGE
    assert "OMP_NUM_THREADS=1 $(BIN)/python -m nadbook.book reproduce --jobs 2" in MAKEFILE
    assert "bash scripts/setup.sh" in MAKEFILE and "`scripts/setup.sh`" in PAGE
    assert "rm -rf runs _build" in MAKEFILE and "removes `runs/` and `_build/`" in PAGE
    timeout = re.search(r"--execution-timeout (\d+)", MAKEFILE).group(1)
    assert f"--execution-timeout {timeout}" in PAGE


def test_papermill_commands_and_the_parameter_table_name_the_chapters_parameters():
    commands = [line for line in code_lines(PAGE) if "papermill" in line]
    assert len(commands) >= 2
    for line in commands:
        words = shlex.split(line)
        chapter = Path(words[words.index(next(w for w in words if w.startswith("book/")))]).stem
        names = [words[i + 1] for i, w in enumerate(words) if w == "-p"]
        assert names and set(names) <= set(parameters(chapter)), f"{line}: not parameters of {chapter}"
    table = dict(re.findall(r"^\| `book/(\w+)\.ipynb` \| (.*) \|$", PAGE, re.M))
    chapters = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))
    assert sorted(table) == chapters, "every chapter, and only chapters, in the table"
    for chapter, cell in table.items():
        assert re.findall(r"`(\w+)`", cell) == parameters(chapter), f"{chapter}'s parameters"


def test_the_page_follows_the_introduction():
    toc = (ROOT / "_toc.yml").read_text()
    assert "root: book/01_introduction" in toc
    entries = re.findall(r"- file: (\S+)", toc)
    assert entries[0] == "book/reproduce"


def test_the_page_s_measured_times_and_limits_are_the_readme_s_and_the_code_s():
    """The page quotes measurements (they cannot be recomputed by building the book): each one
    must be the README's, and the limits the ones the code and the Makefile set."""
    from nadbook.book import CELL_TIMEOUT

    section = PAGE.split("## Hardware and time", 1)[1].split("\n## ", 1)[0]
    measured = re.findall(r"(\d+(?:\.\d+)?) (min|s)\b", section)
    readme = set(re.findall(r"(\d+(?:\.\d+)?) ?(min|s)(?:utes)?\b", README))
    limits = {(f"{CELL_TIMEOUT['full']:,}", "s"), (f"{CELL_TIMEOUT['smoke']:,}", "s")}
    backstops = {(str(int(t) // 60), "min") for t in re.findall(r"timeout (\d+) ", MAKEFILE)}
    ci = {("18", "min"), ("20", "min")}  # make test in CI: measured there, not in the README
    assert measured and set(measured) <= readme | backstops | ci, set(measured) - readme - backstops - ci
    assert limits <= set(re.findall(r"(\d[\d,]*) (s)\b", section))
