"""The book's machinery, beside the book and not part of the installed ``nadkit``: its profile and
results cache (``book``), the beta sweep (``sparsity``), the verdicts' sentences (``verdicts``),
tables, figures (``plots``, ``vega``) and the explorer. It uses only nadkit's public modules; nadkit
never imports it.

Importing it points nadkit at this checkout's embedded networks (``NADKIT_MODELS``, unless already
set), so that the chapters, run from ``book/``, and ``python -m nadbook.book`` find them.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout this package sits in
os.environ.setdefault("NADKIT_MODELS", str(REPO_ROOT / "data" / "models"))
