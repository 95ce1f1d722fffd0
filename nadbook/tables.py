"""One table formatter for every chapter: numbers as a reader reads them, never truncated.

Effects to two significant digits (signed where the column has both signs), p-values as "< 0.001"
below a thousandth, integers as integers, percentages with one decimal, and a missing number as a
word that says why (never "nan"). The result is a Markdown table, which the book renders at the
column's width and wraps instead of cutting cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from nadbook.verdicts import sig
from nadkit.stats import p_text


def kind(column: str) -> str:
    """How a column's numbers are written, from its name: "percent" (a "%" in it), "p" (named p
    or ending in " p"), else "number"."""
    name = str(column).strip().lower()
    if "%" in name:
        return "percent"
    if name == "p" or name.endswith(" p") or name.startswith("p ") or "p-value" in name:
        return "p"
    return "number"


def cell(x, how: str = "number", signed: bool = False, missing: str = "n/a") -> str:
    """One value as the table shows it (``how``: "percent", "p" or "number")."""
    if x is None or isinstance(x, str):
        return missing if x is None else x
    if isinstance(x, bool):
        return "yes" if x else "no"
    x = float(x)
    if not math.isfinite(x):
        return missing
    if how == "p":
        return p_text(x)
    if how == "percent":
        return f"{x:+.1f}" if signed else f"{x:.1f}"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):+d}" if signed and x else f"{int(x)}"
    return sig(x, 2, signed)


def markdown(table: pd.DataFrame, missing: str | Mapping[str, str] = "n/a", index: bool = True,
             by_row: bool = False) -> str:
    """``table`` as a Markdown table formatted by column (see ``kind`` and ``cell``), or by row
    when ``by_row`` (a table whose rows are the measures); ``missing`` is the word for a missing
    number, per column (or row) if a mapping (say why it is missing)."""
    if by_row:
        return _by_row(table, missing)
    frame = table.reset_index() if index and not isinstance(table.index, pd.RangeIndex) else table
    cols = [str(c) if not isinstance(c, tuple) else " ".join(map(str, c)) for c in frame.columns]
    signed = []
    for j in range(frame.shape[1]):
        numeric = pd.to_numeric(frame.iloc[:, j], errors="coerce")
        signed.append(bool((numeric < 0).any() and (numeric > 0).any()))
    body = []
    for row in frame.itertuples(index=False):
        out = []
        for name, x, sign in zip(cols, row, signed):
            why = missing.get(name, "n/a") if isinstance(missing, Mapping) else missing
            out.append(cell(None if _isnan(x) else x, kind(name), sign, why).replace("|", "\\|"))
        body.append("| " + " | ".join(out) + " |")
    head = "| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols)
    return "\n".join([head, *body])


def _by_row(table: pd.DataFrame, missing: str | Mapping[str, str]) -> str:
    """``markdown`` of a table whose rows are the measures: each row formatted by its label."""
    head = "| " + " | ".join([str(table.index.name or ""), *map(str, table.columns)]) + " |"
    body = []
    for label, row in table.iterrows():
        numeric = pd.to_numeric(row, errors="coerce")
        sign = bool((numeric < 0).any() and (numeric > 0).any())
        why = missing.get(str(label), "n/a") if isinstance(missing, Mapping) else missing
        cells = [cell(None if _isnan(x) else x, kind(str(label)), sign, why).replace("|", "\\|") for x in row]
        body.append("| " + " | ".join([str(label), *cells]) + " |")
    return "\n".join([head, "|" + " --- |" * (len(table.columns) + 1), *body])


def _isnan(x) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def show(table: pd.DataFrame, missing: str | Mapping[str, str] = "n/a", index: bool = True,
         by_row: bool = False):
    """``markdown(table, ...)`` for display in a chapter."""
    from IPython.display import Markdown

    return Markdown(markdown(table, missing, index, by_row))
