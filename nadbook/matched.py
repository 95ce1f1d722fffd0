"""Replication at matched sparsity: a fixed beta is not a fixed kept share (resnet50 at beta 1.6
keeps 0.11, 0.34 and 0.17 of its channels on its three trained instances), so another instance's
run, or the label-permuted network's, is compared with a reference run at the beta where it keeps
the reference's share of channels.

The rule, fixed before any result is seen: converged runs, the first at the reference's beta, each
next beta by the secant in log beta through the two runs nearest the target share (while every run
lies on one side of it, the step at most a factor of 4), until a run keeps the reference's share
within ``TOLERANCE``, at most ``MAX_RUNS`` new runs. The matched run is the run nearest the target
within the tolerance; where there is none, no comparable run exists, and the comparison says so.
Runs are deterministic (same seed, same masks), so re-running the search finds the same betas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

TOLERANCE = 0.03  # kept shares this close count as the same sparsity
MAX_RUNS = 5      # converged runs one search may visit (the first at the reference's beta)


def kept(folder: Path) -> float:
    """The share of channels a run's sub-architectures keep (mean over classes and points)."""
    from nadkit.subarch import SubArchitectures

    return float(SubArchitectures.load(folder).kept().mean())


def next_beta(tried: dict[float, float], target: float) -> float:
    """The next beta to run, from the kept shares of the runs so far (``{beta: kept}``, kept falls
    as beta grows): the secant in log beta through the tightest bracket of ``target``, or, with
    every run on one side, through the two runs nearest it (a factor of 2 from a single run, the
    step at most a factor of 4); three significant digits."""
    above = sorted(b for b, k in tried.items() if k > target)  # keep too much: beta too small
    below = sorted(b for b, k in tried.items() if k < target)
    if above and below:
        b0, b1 = above[-1], below[0]
    else:
        near = sorted(tried, key=lambda b: abs(tried[b] - target))[:2]
        b0, b1 = (sorted(near) + [None])[:2]
    if b1 is None or tried[b0] == tried[b1]:
        step = math.log(2.0) if tried[b0] > target else -math.log(2.0)
        beta = b0 * math.exp(step)
    else:
        x0, x1, k0, k1 = math.log(b0), math.log(b1), tried[b0], tried[b1]
        x = x0 + (target - k0) * (x1 - x0) / (k1 - k0)
        if not (above and below):
            edge = max(x0, x1) if tried[max(b0, b1)] > target else min(x0, x1)
            x = min(max(x, edge - math.log(4.0)), edge + math.log(4.0))
        beta = math.exp(x)
    return float(f"{beta:.3g}")


def nearest(runs: dict[float, Path], share: float) -> tuple[float, Path, float] | None:
    """The run of ``runs`` whose kept share is nearest ``share``, within ``TOLERANCE``: (beta,
    folder, kept); None where no run is that close."""
    got = sorted(((abs(kept(f) - share), b, f) for b, f in runs.items()), key=lambda t: (t[0], t[1]))
    if not got or got[0][0] > TOLERANCE:
        return None
    _, b, f = got[0]
    return b, f, kept(f)


def search(share: float, start: float, run: Callable[[float], Path | None], name: str = "",
           progress: bool = True) -> tuple[float, Path, float] | None:
    """The run that keeps ``share`` of the channels within ``TOLERANCE``: ``run(beta)`` (the
    converged run at that beta, computed where it is not there yet, resumable) from ``start``, then
    at each ``next_beta`` of the runs visited, at most ``MAX_RUNS``; (beta, folder, kept), or None
    where the search ends without one (the masks jump past the share: no comparable run exists)
    or ``run`` gives None (a run it needs is not there).
    Only the runs it visits count, so the search takes the same path wherever it runs."""
    runs: dict[float, Path] = {}
    beta = start
    while len(runs) < MAX_RUNS and beta not in runs:
        if (found := run(beta)) is None:
            return None  # a run the search needs is not there (and is not to be computed)
        runs[beta] = found
        if progress and len(runs) > 1:
            print(f"matching {name} to kept {share:.3f}: beta {beta:g} keeps {kept(runs[beta]):.3f}", flush=True)
        if (hit := nearest(runs, share)) is not None:
            return hit
        beta = next_beta({b: kept(f) for b, f in runs.items()}, share)
    return None
