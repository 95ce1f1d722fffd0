"""Channel overlap against chance: what random channels of the same sizes would share.

Two classes keeping a and b of a point's N channels share some by chance alone: for uniformly
random subsets the intersection is hypergeometric, so the Jaccard index has an exact expectation
E (Chung et al., BMC Bioinformatics 2019) and the chance-corrected overlap is
kappa = (J - E) / (1 - E): 0 at chance, 1 for identical sets, negative when the sets avoid each
other. A stronger null keeps every class's size *and* every channel's popularity (curveball swap
randomisation of the class x channel matrix), so hub channels kept by most classes do not pass
for class structure. Matrices of classes (similarity against confusion) are compared by
permuting the class labels of one matrix as a whole (QAP), never entries within rows.
numpy and scipy only (the Jaccard and the pair mean also take torch tensors).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import permutations
from math import factorial
from typing import Callable

import numpy as np
from scipy import stats

DRAWS = 999


@lru_cache(maxsize=None)
def _expected(a: int, b: int, n: int) -> float:
    lo, hi = max(0, a + b - n), min(a, b)
    if a + b == 0:
        return 1.0  # two empty sets count as identical (``jaccard_rows``)
    if lo == hi:  # one possible intersection (a set empty or full): exact, no pmf rounding
        return lo / (a + b - lo)
    k = np.arange(lo, hi + 1)
    return float(np.sum(stats.hypergeom.pmf(k, n, a, b) * k / (a + b - k)))


def expected_jaccard(a, b, n: int) -> np.ndarray | float:
    """Exact E[J] of two uniformly random subsets of sizes ``a`` and ``b`` of ``n`` items:
    sum_k h(k) k / (a + b - k), h the hypergeometric pmf. Broadcasts over ``a`` and ``b``."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=int), np.asarray(b, dtype=int))
    if ((a < 0) | (b < 0) | (a > n) | (b > n)).any():
        raise ValueError(f"set sizes must lie in [0, {n}]")
    out = np.vectorize(lambda x, y: _expected(int(x), int(y), int(n)), otypes=[float])(a, b)
    return float(out) if out.ndim == 0 else out


def kappa(j, e):
    """Chance-corrected overlap (J - E) / (1 - E); NaN where chance is already 1 (both sets full
    or both empty: nothing can be said)."""
    j, e = np.asarray(j, dtype=float), np.asarray(e, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(e < 1, (j - e) / (1 - e), np.nan)
    return float(out) if out.ndim == 0 else out


def overlap_p(k: int, a: int, b: int, n: int, alternative: str = "greater") -> float:
    """Hypergeometric p of an intersection of ``k`` between sets of sizes ``a`` and ``b`` of
    ``n``: "greater" (share at least k), "less" (at most k) or "two-sided" (twice the smaller,
    capped at 1)."""
    greater, less = stats.hypergeom.sf(k - 1, n, a, b), stats.hypergeom.cdf(k, n, a, b)
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2 * min(greater, less)))


def jaccard_rows(x):
    """Jaccard |A and B| / |A or B| of every pair of rows of a [K, C] boolean matrix, [K, K]; two
    empty sets count as identical (1). The one Jaccard of nadkit: a numpy array is computed in
    float64, a torch tensor stays a tensor in float32 (``metrics.similarity``, whose shipped
    numbers it keeps bit for bit)."""
    if not isinstance(x, np.ndarray) and hasattr(x, "float"):  # a torch tensor
        b = x.float()
        inter = b @ b.T
        size = b.sum(1)
        union = size[:, None] + size[None, :] - inter
        return (inter / union.clamp_min(1)).where(union > 0, inter.new_ones(()))
    x = np.asarray(x, dtype=float)
    inter = x @ x.T
    size = x.sum(1)
    union = size[:, None] + size[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def chance(x: np.ndarray) -> dict[str, np.ndarray]:
    """Observed Jaccard, its expectation for random sets of the same sizes, and kappa, for every
    pair of rows of a [K, C] boolean matrix: three [K, K] matrices."""
    x = np.asarray(x, dtype=bool)
    size = x.sum(1)
    j = jaccard_rows(x)
    e = expected_jaccard(size[:, None], size[None, :], x.shape[1])
    return {"jaccard": j, "expected": e, "kappa": kappa(j, e)}


def pair_mean(m) -> float:
    """Mean of the off-diagonal entries of a [K, K] matrix (all pairs of distinct classes): the one
    pair mean of nadkit. numpy: NaNs left out; a torch tensor: in its own float32 arithmetic."""
    k = m.shape[0]
    if not isinstance(m, np.ndarray) and hasattr(m, "diagonal"):  # a torch tensor
        return float((m.sum() - m.diagonal().sum()) / max(k * (k - 1), 1))
    off = m[~np.eye(k, dtype=bool)]
    return float(np.nanmean(off)) if np.isfinite(off).any() else float("nan")


def curveball(x: np.ndarray, trades: int, rng: np.random.Generator) -> np.ndarray:
    """``trades`` curveball trades (Strona et al. 2014) on a [K, C] boolean matrix: two random rows
    pool the columns only one of them holds and deal them back at random in the same numbers.
    Every row sum and every column sum is kept; the chain mixes over all such matrices."""
    x = np.array(x, dtype=bool)
    k = x.shape[0]
    for _ in range(trades):
        r, s = rng.choice(k, 2, replace=False)
        only_r, only_s = x[r] & ~x[s], x[s] & ~x[r]
        pool = np.flatnonzero(only_r | only_s)
        if len(pool) == 0:
            continue
        n_r = int(only_r.sum())
        dealt = rng.permutation(pool)
        x[r, pool], x[s, pool] = False, False
        x[r, dealt[:n_r]], x[s, dealt[n_r:]] = True, True
    return x


def uniform_draw(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random rows of the same sizes (each row's channels uniformly at random)."""
    x = np.asarray(x, dtype=bool)
    ranks = np.argsort(rng.random(x.shape), 1).argsort(1)
    return ranks < x.sum(1, keepdims=True)


def null_distribution(x: np.ndarray, statistic: Callable[[np.ndarray], float], null: str = "swap",
                      draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """``statistic`` of ``draws`` random [K, C] matrices like ``x``: "uniform" keeps each row's
    size; "swap" also each column's sum (a curveball chain, 2K trades between draws after a
    burn-in of 10K)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=bool)
    if null == "uniform":
        return np.array([statistic(uniform_draw(x, rng)) for _ in range(draws)])
    if null != "swap":
        raise ValueError(f"unknown null {null!r}; choose uniform or swap")
    k = x.shape[0]
    y = curveball(x, 10 * k, rng)
    out = []
    for _ in range(draws):
        y = curveball(y, 2 * k, rng)
        out.append(statistic(y))
    return np.array(out)


def permutation_p(observed: float, null: np.ndarray, alternative: str = "two-sided") -> float:
    """Monte Carlo p with the observation counted among the draws (never 0)."""
    null = np.asarray(null)
    greater = (1 + np.sum(null >= observed - 1e-12)) / (1 + len(null))
    less = (1 + np.sum(null <= observed + 1e-12)) / (1 + len(null))
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2 * min(greater, less)))


def pair_sd(m: np.ndarray) -> float:
    """Standard deviation of the off-diagonal entries of a [K, K] matrix: how unevenly the
    overlap is spread over the pairs of classes."""
    k = m.shape[0]
    return float(np.std(m[~np.eye(k, dtype=bool)]))


STATISTICS = {"mean": lambda m: pair_mean(jaccard_rows(m)), "spread": lambda m: pair_sd(jaccard_rows(m))}


def point_test(x: np.ndarray, null: str = "uniform", draws: int = DRAWS, seed: int = 0) -> dict:
    """One point's [K, C] class x channel matrix against a null.

    "uniform" (random channels of each class's size): is the mean pairwise Jaccard above or below
    chance? Two-sided. "swap" (each class's size *and* each channel's popularity kept): with both
    margins fixed the total overlap is fixed too, so the question is whether it is spread over
    the pairs of classes more unevenly than chance (some classes close, others apart: class
    structure that hub channels cannot fake). One-sided, on the spread (SD) of pairwise Jaccard.
    """
    name, alternative = ("mean", "two-sided") if null == "uniform" else ("spread", "greater")
    stat = STATISTICS[name]
    observed = stat(np.asarray(x, dtype=bool))
    dist = null_distribution(x, stat, null, draws, seed)
    return {"statistic": name, "observed": observed, "null_mean": float(dist.mean()),
            "null_low": float(np.quantile(dist, 0.025)), "null_high": float(np.quantile(dist, 0.975)),
            "p": permutation_p(observed, dist, alternative)}


def qap_test(sim: np.ndarray, statistic: Callable[[np.ndarray], float], draws: int = 9_999, seed: int = 0,
             alternative: str = "greater") -> dict:
    """QAP (Mantel-style) test of ``statistic(sim)``: the class labels of the whole [K, K]
    matrix are permuted (rows and columns together), so a pair counted twice in a symmetric
    matrix moves as one. Exact (every permutation) when K! <= ``draws``."""

    sim = np.asarray(sim, dtype=float)
    k = sim.shape[0]
    observed = statistic(sim)
    if factorial(k) <= draws:
        dist = np.array([statistic(sim[np.ix_(p, p)]) for p in map(list, permutations(range(k)))])
        greater, less = np.mean(dist >= observed - 1e-12), np.mean(dist <= observed + 1e-12)
        p = {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}[alternative]
        return {"observed": observed, "p": float(p), "exact": True}
    rng = np.random.default_rng(seed)
    dist = np.array([statistic(sim[np.ix_(p, p)]) for p in (rng.permutation(k) for _ in range(draws))])
    return {"observed": observed, "p": permutation_p(observed, dist, alternative), "exact": False}


def holm(p) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error over the points), NaNs left as they are."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok])]
    m = len(order)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def per_point(binary) -> dict[str, list]:
    """For one run's masks (per point, [K, C] boolean): per point, the mean pairwise Jaccard, its
    chance expectation and the mean kappa; and over points, the class x class mean of J - E
    (``delta``) and of E (``expected``), Table 1's matrices with the sizes taken out and alone."""
    parts = [chance(np.asarray(b, dtype=bool)) for b in binary]
    return {"similarity": [pair_mean(c["jaccard"]) for c in parts],
            "similarity_expected": [pair_mean(c["expected"]) for c in parts],
            "similarity_kappa": [pair_mean(c["kappa"]) for c in parts],
            "expected_matrix": np.mean([c["expected"] for c in parts], 0),
            "delta_matrix": np.mean([c["jaccard"] - c["expected"] for c in parts], 0)}


def agreement(a, b) -> dict[str, np.ndarray]:
    """Same-class agreement of two runs' masks at one point ([K, C] boolean each, same classes):
    per class the Jaccard, its chance expectation for sets of those sizes, and kappa."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    inter, union = (a & b).sum(1), (a | b).sum(1)
    j = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    e = expected_jaccard(a.sum(1), b.sum(1), a.shape[1])
    return {"jaccard": j, "expected": e, "kappa": kappa(j, e)}
