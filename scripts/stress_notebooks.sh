#!/usr/bin/env bash
# Issue 21's stress test: chapter 10 (the chapter that hung) executed 20 times under full load,
# through nbclient (what jupyter-book and nbmake use), counting hangs. Not part of `make test`
# (about an hour on 2 cores). Arguments go to scripts/stress_notebooks.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/stress_notebooks.py "${@:-book/10_explorer.ipynb}"
