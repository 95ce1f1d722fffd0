"""The tests behind the book's verdicts: seed agreement against cross-class similarity, bootstrap
intervals (``scipy.stats.bootstrap``) and the permutation test of Table 1. A finding "holds" only
where p < 0.05 or the 95% interval excludes zero; otherwise it is "not shown at this scale"."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .metrics import jaccard_matrix

ALPHA = 0.05
RESAMPLES = 9_999


@dataclass
class Verdict:
    """An estimate, its 95% interval or p-value, and what may be said of it."""

    estimate: float
    low: float = float("nan")
    high: float = float("nan")
    p: float = float("nan")

    @property
    def holds(self) -> bool:
        return bool(self.p < ALPHA) if not np.isnan(self.p) else bool(self.low > 0 or self.high < 0)

    def says(self, finding: str = "holds") -> str:
        return finding if self.holds else "not shown at this scale"

    def interval(self, scale: float = 1.0, digits: int = 2) -> str:
        return f"[{scale * self.low:+.{digits}f}, {scale * self.high:+.{digits}f}]"

    def to_dict(self) -> dict:
        return asdict(self)


def mean_interval(values: Sequence[float], seed: int = 0) -> Verdict:
    """The mean of ``values`` with its 95% bootstrap (BCa) interval."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or np.ptp(v) == 0:
        return Verdict(float(v.mean()), float(v.mean()), float(v.mean()))
    ci = stats.bootstrap((v,), np.mean, n_resamples=RESAMPLES, random_state=seed).confidence_interval
    return Verdict(float(v.mean()), float(ci.low), float(ci.high))


def difference_interval(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Verdict:
    """mean(a) - mean(b) of two independent samples, with its 95% bootstrap interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = lambda x, y, axis=-1: x.mean(axis) - y.mean(axis)  # noqa: E731
    res = stats.bootstrap((a, b), diff, n_resamples=RESAMPLES, random_state=seed, method="percentile")
    return Verdict(float(a.mean() - b.mean()), float(res.confidence_interval.low),
                   float(res.confidence_interval.high))


def same_class_agreement(runs: Sequence[Sequence[Tensor]]) -> np.ndarray:
    """Jaccard of a class's binarised masks between two seeds, for every pair of seeds: [pairs *
    classes, points]. ``runs[s][p]`` is seed s's [classes, channels] masks at point p."""
    rows = []
    for a, b in combinations(runs, 2):
        rows.append(torch.stack([_row_jaccard(x, y) for x, y in zip(a, b)], 1).numpy())
    return np.concatenate(rows)


def _row_jaccard(a: Tensor, b: Tensor) -> Tensor:
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def cross_class(binary: Sequence[Tensor]) -> np.ndarray:
    """Jaccard of every pair of distinct classes, [pairs, points], for one run."""
    mats = [jaccard_matrix(b) for b in binary]
    i, j = np.triu_indices(mats[0].shape[0], 1)
    return np.stack([m.numpy()[i, j] for m in mats], 1)


def divided_by_class(runs: Sequence[Sequence[Tensor]]) -> list[Verdict]:
    """Per point: do two classes' masks differ more than one class's masks from two seeds do?
    One-sided Mann-Whitney U of cross-class Jaccard (all seeds) below same-class agreement."""
    same = same_class_agreement(runs)
    cross = np.concatenate([cross_class(r) for r in runs])
    out = []
    for p in range(same.shape[1]):
        if np.ptp(np.concatenate([same[:, p], cross[:, p]])) == 0:
            out.append(Verdict(0.0, p=1.0))
            continue
        test = stats.mannwhitneyu(cross[:, p], same[:, p], alternative="less")
        out.append(Verdict(float(same[:, p].mean() - cross[:, p].mean()), p=float(test.pvalue)))
    return out


def similarity_drop(binary: Sequence[Tensor], seed: int = 0) -> Verdict:
    """First point's mean Jaccard minus the last point's, per class (its mean to all others), with
    a bootstrap interval over classes."""
    mats = [jaccard_matrix(binary[0]).numpy(), jaccard_matrix(binary[-1]).numpy()]
    k = mats[0].shape[0]
    per_class = [(m.sum(1) - 1) / (k - 1) for m in mats]  # the diagonal is 1
    return mean_interval(per_class[0] - per_class[1], seed)


def misjudgment_test(sim: Tensor, conf: Tensor, classes: Sequence[int], min_rate: float = 0.02,
                     seed: int = 0) -> dict:
    """Table 1's Dif = Mis - Oth, tested two ways. Permutation: within each class, which of the
    other classes count as "Mis." is shuffled (the number kept), so the null is "Mis. classes
    are any classes"; one-sided p. Bootstrap: 95% interval of the mean per-class Dif over classes.

    scipy's ``permutation_test`` permutes across all observations; the shuffle here must stay
    within each class, so the permutations are drawn with numpy's ``Generator.permuted`` row-wise.
    """
    rows = {c: i for i, c in enumerate(classes)}
    sims, labels = [], []
    for c in classes:
        rate = conf[c].float() / conf[c].sum().clamp_min(1)
        others = [d for d in classes if d != c]
        wrong = np.array([bool(rate[d] >= min_rate) for d in others])
        if wrong.any() and not wrong.all():
            sims.append(sim[rows[c], [rows[d] for d in others]].numpy())
            labels.append(wrong)
    if not sims:
        return {"dif": float("nan"), "classes": 0, "p": float("nan"), "verdict": None}
    s, m = np.stack(sims), np.stack(labels)

    def dif(mask: np.ndarray) -> np.ndarray:  # [..., classes, others] -> mean over classes of Dif
        mis = (s * mask).sum(-1) / mask.sum(-1)
        oth = (s * ~mask).sum(-1) / (~mask).sum(-1)
        return (mis - oth).mean(-1)

    rng = np.random.default_rng(seed)
    null = dif(rng.permuted(np.broadcast_to(m, (RESAMPLES, *m.shape)), axis=-1))
    observed = float(dif(m))
    p = (1 + np.sum(null >= observed)) / (1 + RESAMPLES)
    per_class = (s * m).sum(1) / m.sum(1) - (s * ~m).sum(1) / (~m).sum(1)
    boot = mean_interval(per_class, seed)
    verdict = Verdict(observed, boot.low, boot.high, float(p))
    return {"dif": observed, "classes": len(sims), "p": float(p), "low": boot.low, "high": boot.high,
            "verdict": verdict.to_dict()}


def others_taken(cross, classes: Sequence[int]) -> np.ndarray:
    """Per sub-architecture: the share of the *other* classes' images it takes for its own class
    (the mean of its row of ``metrics.cross_accuracy`` over the other classes)."""
    m = np.asarray(cross)
    return np.array([np.mean([m[k, d] for d in classes if d != c]) for k, c in enumerate(classes)])


def versus(nad: dict, other: dict, seed: int = 0) -> dict:
    """NAD against another way of choosing the same number of channels, on one seed's results
    (``book.baselines`` entries: sub-architectures, evaluation, cross-class accuracy). Each
    estimate is NAD minus the other, so that a positive one favours NAD:

    own class: accuracy on the class's own images, paired over classes; rejects others: share of
    other classes' images *not* taken for the class (1 - cross-class accuracy), paired over
    classes; hit rate: per point, paired over mosaics (the same mosaics for both); and each one's
    similarity drop and Table 1 Dif with their own tests."""
    classes = nad["report"]["classes"]
    others = lambda cross: others_taken(cross, classes)  # noqa: E731
    acc = [np.asarray(r["report"]["accuracy"]["subarch"]) for r in (nad, other)]
    hits = [np.asarray(r["report"]["hit_rate_per_mosaic"] or np.nan) for r in (nad, other)]
    out = {"own class": mean_interval(acc[0] - acc[1], seed),
           "rejects others": mean_interval(others(other["cross"]) - others(nad["cross"]), seed),
           "hit rate": [mean_interval(hits[0][:, p] - hits[1][:, p], seed) for p in range(hits[0].shape[1])]
           if hits[0].ndim == 2 else []}
    for name, r in (("nad", nad), ("other", other)):
        rep = r["report"]
        out[f"drop ({name})"] = similarity_drop(r["sub"].binary(), seed)
        out[f"dif ({name})"] = misjudgment_test(torch.tensor(rep["similarity_matrix"]), torch.tensor(rep["confusion"]),
                                                rep["classes"], rep["misjudgment"]["min_rate"], seed)
    return out
