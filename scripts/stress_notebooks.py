"""Execute chapters again and again under load and count the hangs (issue 21).

Each execution goes through the library that `make` and `make test` use to run a chapter:
nbclient (jupyter-book's myst-nb and nbmake both drive the kernel with it), nbmake itself (``--via
nbmake``) or a jupyter-book build of the chapter alone (``--via jupyter-book``, as `make` builds
it), with a short per-cell timeout. While it runs, a CPU hog keeps every core busy
(``--hogs``, started and stopped here). A cell that gets no reply within the timeout is a hang; a
cell that fails is an error. Every execution starts from an empty results folder
(``NADKIT_RESULTS``), as after a fresh clone's precompute, in the profile asked for.

    .venv/bin/python scripts/stress_notebooks.py book/10_explorer.ipynb --runs 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hog(_: int) -> None:
    while True:
        pass


def via_nbclient(chapter: Path, timeout: int) -> tuple[str, str]:
    """nbclient as jupyter-book and nbmake drive it. nbclient's own cell timeout does not fire
    when it is stuck waiting on a message that never comes, so a watchdog kills the kernel once
    the execution has run ``WALL`` times the cell timeout: that counts as a hang too."""
    import threading

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(chapter, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    stuck = threading.Event()

    def kill_kernel():
        stuck.set()
        subprocess.run(["pkill", "-9", "-P", str(os.getpid()), "-f", "ipykernel_launcher"], check=False)

    watchdog = threading.Timer(WALL * timeout, kill_kernel)
    watchdog.start()
    try:
        client.execute()
    except CellTimeoutError as e:
        return "hang", str(e).splitlines()[0]
    except (CellExecutionError, DeadKernelError) as e:
        if stuck.is_set():
            return "hang", f"no reply after {WALL * timeout} s (the cell timeout did not fire); {last_cell(nb)}"
        return "error", str(e).strip().splitlines()[-1][:200]
    finally:
        watchdog.cancel()
    return "ok", slowest_cell(nb)


WALL = 3  # an execution past this many cell timeouts is stuck


def last_cell(nb) -> str:
    """The last code cell that got a reply, by its first line."""
    done = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    if not done:
        return "no cell finished"
    return f"after cell {done[-1]}: {nb.cells[done[-1]].source.splitlines()[0][:60]!r}"


def slowest_cell(nb) -> str:
    """The cell that took longest (nbclient records each cell's start and reply)."""
    from datetime import datetime

    def seconds(cell) -> float:
        t = cell.get("metadata", {}).get("execution", {})
        a, b = t.get("iopub.execute_input"), t.get("shell.execute_reply")
        return (datetime.fromisoformat(b.rstrip("Z")) - datetime.fromisoformat(a.rstrip("Z"))).total_seconds() \
            if a and b else 0.0

    times = [(seconds(c), i) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    longest, index = max(times) if times else (0.0, -1)
    return f"slowest cell {index}: {longest:.1f} s"


def via_nbmake(chapter: Path, timeout: int) -> tuple[str, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
           f"--nbmake-timeout={timeout}", str(chapter)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    text = run.stdout + run.stderr
    if run.returncode == 0:
        return "ok", ""
    if "timed out" in text.lower() or "CellTimeoutError" in text:
        return "hang", "cell timed out"
    return "error", text.strip().splitlines()[-1][:200]


def via_jupyter_book(chapter: Path, timeout: int) -> tuple[str, str]:
    """A book of this one chapter, built as `make` builds the whole book (jupyter-book, myst-nb's
    execution, this repository's _config.yml with the timeout set to ``timeout``)."""
    import shutil

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load((ROOT / "_config.yml").read_text())
        config["execute"].update(timeout=timeout, execute_notebooks="force")
        config["sphinx"]["config"]["html_static_path"] = []
        config["sphinx"]["config"].pop("html_extra_path", None)
        config.pop("bibtex_bibfiles", None)
        config["only_build_toc_files"] = True
        (Path(tmp) / "_config.yml").write_text(yaml.safe_dump(config))
        (Path(tmp) / "_toc.yml").write_text(f"format: jb-book\nroot: {chapter.stem}\n")
        shutil.copy(chapter, Path(tmp) / chapter.name)
        jb = Path(sys.executable).parent / "jupyter-book"
        run = subprocess.run([str(jb), "build", tmp, "--keep-going"], capture_output=True, text=True)
        logs = "".join(p.read_text() for p in Path(tmp).glob("_build/html/reports/**/*.log"))
        text = run.stdout + run.stderr + logs
    if "CellTimeoutError" in text or "timed out" in text:
        return "hang", "cell timed out"
    if run.returncode != 0 or "Execution Failed" in text or "Traceback" in logs:
        return "error", [line for line in text.splitlines() if line.strip()][-1][:200]
    return "ok", ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=20, help="executions of each chapter")
    ap.add_argument("--timeout", type=int, default=300, help="seconds a cell may take before it counts as hung")
    ap.add_argument("--hogs", type=int, default=os.cpu_count(), help="busy processes kept running (default: one per core)")
    ap.add_argument("--via", choices=["nbclient", "nbmake", "jupyter-book"], default="nbclient")
    ap.add_argument("--profile", choices=["full", "smoke"], default="full")
    ap.add_argument("--keep-results", action="store_true",
                    help="one results folder for all executions (to time cells as `make` runs them)")
    ap.add_argument("--json", type=Path, help="write the counts and every execution's time here")
    a = ap.parse_args()
    execute = {"nbclient": via_nbclient, "nbmake": via_nbmake, "jupyter-book": via_jupyter_book}[a.via]
    import ipykernel

    hogs = [mp.Process(target=hog, args=(i,), daemon=True) for i in range(a.hogs)]
    for h in hogs:
        h.start()
    runs = []
    shared = tempfile.TemporaryDirectory()
    try:
        for chapter in a.chapters:
            for i in range(a.runs):
                with tempfile.TemporaryDirectory() as fresh:
                    results = shared.name if a.keep_results else fresh
                    os.environ.update(NADKIT_RESULTS=results, NADKIT_PROFILE=a.profile, NADKIT_QUIET="1")
                    start = time.time()
                    outcome, why = execute(chapter, a.timeout)
                runs.append({"chapter": str(chapter), "run": i + 1, "outcome": outcome,
                             "seconds": round(time.time() - start, 1), "why": why})
                print(f"{chapter} run {i + 1}/{a.runs}: {outcome} in {runs[-1]['seconds']} s {why}", flush=True)
    finally:
        for h in hogs:
            h.terminate()
        shared.cleanup()
    count = {k: sum(r["outcome"] == k for r in runs) for k in ("ok", "hang", "error")}
    summary = {"ipykernel": ipykernel.__version__, "via": a.via, "profile": a.profile, "timeout": a.timeout,
               "hogs": a.hogs, "cores": os.cpu_count(), **count, "runs": runs}
    print(f"ipykernel {ipykernel.__version__}, via {a.via}, {a.hogs} hogs: {count['ok']} ok, "
          f"{count['hang']} hung, {count['error']} failed of {len(runs)}")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1) + "\n")
    sys.exit(1 if count["hang"] or count["error"] else 0)


if __name__ == "__main__":
    main()
