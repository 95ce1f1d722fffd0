"""Reading an ablation (``nadkit.ablate``): how much zeroing a class's channels costs that class
(necessity) and the others (collateral damage), their difference (selectivity), deletion curves,
and NAD's channels tested against each control with the class as the unit, Holm over points."""

from __future__ import annotations

import numpy as np
from scipy import stats

from .overlap import holm

CONTROLS = ("random", "popularity", "mean activation", "taylor", "model lego")
MEASURES = ("selectivity", "own drop", "deletion area")
WHOLE = 0.8        # a zeroed set of at least this share of the layer is (nearly) the layer itself
RESOLUTION = 1e-6  # differences of balanced accuracy below this are float32 rounding, not effects


def untestable(abl: dict) -> dict[str, str]:
    """The points of an ablation whose test cannot tell NAD's channels from any other choice,
    with why: the zeroed set is at least ``WHOLE`` of the layer (NAD's, random and heuristic sets
    are then nearly the same channels). Needs ``abl["widths"]`` (``book.ablations`` adds it)."""
    widths = abl.get("widths") or {}
    out = {}
    for name in abl.get("points", list(abl["results"])):
        if name in widths and abl["matrix_k"][name] >= WHOLE * widths[name]:
            out[name] = f"the set is {abl['matrix_k'][name]} of {widths[name]} channels"
    return out


def drops(point: dict, name: str) -> np.ndarray:
    """Base balanced accuracy minus ``name``'s, per ablation (same shape as ``name.balanced``)."""
    return point["base.balanced"].numpy() - point[f"{name}.balanced"].numpy()


def selectivity(point: dict, name: str, k: int) -> np.ndarray:
    """Drop on the ablated class minus the mean drop on the other classes, at ``k`` channels.
    Rankings: [K]; "popularity": [draws, K]; "random" (sets that belong to no class): [draws, K],
    column c read as if the set were class c's."""
    j = int(np.flatnonzero(point["ks"].numpy() == k)[0])
    d = drops(point, name)
    if name == "random":
        own = d[:, j, :]                                       # [draws, K]
        return own - (own.sum(1, keepdims=True) - own) / (own.shape[1] - 1)
    d = d[..., j, :]                                           # [(draws,) K ablated, K measured]
    own = np.diagonal(d, axis1=-2, axis2=-1)
    return own - (d.sum(-1) - own) / (d.shape[-1] - 1)


def own_drop(point: dict, name: str) -> np.ndarray:
    """Drop on the ablated class per k: rankings [K, ks], "popularity" [draws, K, ks], "random"
    [draws, K, ks] (every class's drop under each random set)."""
    d = drops(point, name)
    if name == "random":
        return np.transpose(d, (0, 2, 1))
    return np.diagonal(d, axis1=-3, axis2=-1).swapaxes(-1, -2)  # d[..., c, k, c]


def deletion_area(point: dict, name: str, kept: np.ndarray) -> np.ndarray:
    """Mean drop on the own class over the grid's k up to the number of channels the class keeps
    (``kept`` [K]): the area under its deletion curve, as RISE's deletion metric, per unit k-step."""
    own, ks = own_drop(point, name), point["ks"].numpy()
    upto = ks[None, :] <= np.maximum(kept, ks.min())[:, None]   # [K, ks]
    return np.where(upto, own, 0).sum(-1) / upto.sum(-1)


def measure(point: dict, name: str, what: str, k: int, kept: np.ndarray) -> np.ndarray:
    """One of ``MEASURES`` per class ([K], or [draws, K] for the random controls), at ``k``
    channels (the deletion area: over the grid up to each class's ``kept``)."""
    if what == "selectivity":
        return selectivity(point, name, k)
    if what == "own drop":
        j = int(np.flatnonzero(point["ks"].numpy() == k)[0])
        return own_drop(point, name)[..., j]
    if what == "deletion area":
        return deletion_area(point, name, kept)
    raise ValueError(f"measure must be one of {MEASURES}, got {what!r}")


def versus(abl: dict, control: str, what: str = "selectivity") -> dict[str, np.ndarray]:
    """NAD against ``control`` at every point of an ablation (``ablate.load``): per point the mean
    over classes of NAD's measure minus the control's (its draws averaged per class), computed in
    float64, the Wilcoxon signed-rank p over classes (two-sided) and the Holm-adjusted p over the
    testable points. A point is untestable (p NaN, out of the Holm family; ``why`` says so) where
    the zeroed set is nearly the whole layer (``untestable``) or every difference is below float
    resolution (``RESOLUTION``): a Wilcoxon test on rounding says nothing."""
    est, p, why = [], [], dict(untestable(abl))
    for name, point in abl["results"].items():
        if f"{control}.balanced" not in point:
            est.append(np.nan), p.append(np.nan)
            continue
        k, kept = abl["matrix_k"][name], np.asarray(abl["kept"][name])
        nad = measure(point, "nad", what, k, kept).astype(np.float64)
        other = measure(point, control, what, k, kept).astype(np.float64)
        diff = nad - (np.nanmean(other, 0) if other.ndim == 2 else other)  # (draws not measured: NaN)
        diff = np.where(np.abs(diff) < RESOLUTION, 0.0, diff)
        est.append(float(diff.mean()))
        if name not in why and not np.any(diff != 0):
            why[name] = "every difference is below float resolution"
        p.append(np.nan if name in why or len(diff) < 2 else float(stats.wilcoxon(diff).pvalue))
    return {"estimate": np.array(est), "p": np.array(p), "p_holm": holm(p), "untestable": why}


def holds_at(test: dict, alpha: float = 0.05) -> np.ndarray:
    """Points where NAD's channels beat the control: Holm p below ``alpha`` and a positive estimate."""
    return np.flatnonzero((test["p_holm"] < alpha) & (test["estimate"] > 0))


def held_on(runs: list[dict], control: str, what: str = "selectivity", need: int = 2) -> list[str] | None:
    """The points at which NAD beats ``control`` on ``what`` on at least ``need`` of ``runs``
    (ablations of independently trained instances, the same points) and loses significantly on
    none; None when there are fewer than ``need`` runs, so nothing can replicate."""
    if len(runs) < need:
        return None
    ahead = np.zeros(len(runs[0]["points"]), dtype=int)
    behind = np.zeros_like(ahead)
    for run in runs:
        test = versus(run, control, what)
        ahead[holds_at(test)] += 1
        behind[np.flatnonzero((test["p_holm"] < 0.05) & (test["estimate"] < 0))] += 1
    return [p for p, n, m in zip(runs[0]["points"], ahead, behind) if n >= need and m == 0]


def testable_on(runs: list[dict], control: str, what: str = "selectivity", need: int = 2) -> dict[str, str]:
    """The points testable on at least ``need`` of ``runs`` -> "" , and the others -> why not."""
    out = {}
    for i, name in enumerate(runs[0]["points"]):
        whys = [versus(r, control, what)["untestable"].get(name) for r in runs]
        bad = [w for w in whys if w]
        out[name] = "" if len(runs) - len(bad) >= need else bad[0]
    return out
