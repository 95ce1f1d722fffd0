"""nadkit's one layer order (pyproject.toml's ``[tool.importlinter]``), checked by import-linter:
no module imports one above it, at the top of a file or inside a function, so there is no import
cycle; nadkit never imports nadbook. Every module of nadkit is in exactly one layer."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_is_in_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = [m.strip() for layer in layers for m in re.split(r"[|:]", layer)]
    assert len(named) == len(set(named)), "a module is in two layers"
    modules = {f"nadkit.{p.stem}" for p in (ROOT / "nadkit").glob("*.py") if p.stem != "__init__"}
    assert modules == set(named), f"not in a layer: {modules - set(named)}; no such module: {set(named) - modules}"


def test_lint_imports():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed (it is in the test extra and requirements.lock: make setup)"
    run = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
