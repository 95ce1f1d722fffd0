"""The tests behind the book's verdicts: bootstrap intervals over classes
(``scipy.stats.bootstrap``), seed agreement against chance, Table 1 by QAP and Fig. 5 with the
class as the unit. A finding "holds" only where p < 0.05 or the 95% interval excludes zero;
otherwise it is "not shown at this scale"."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations, permutations, product
from math import factorial
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .sanity import CONSTANT_SHARE, others_taken  # noqa: F401 (findings and the chapters read them here)
from .overlap import agreement, expected_jaccard, jaccard_rows, kappa, permutation_p, point_test, qap_test


ALPHA = 0.05
RESAMPLES = 9_999

# The smallest effects worth reporting that the run-level findings read here (the whole table, in
# words, is ``nadbook.verdicts.EFFECTS`` / ``smallest_effects``); ``sanity.CONSTANT_SHARE`` says when
# a sub-architecture answers (almost) constantly.
SPECIFIC_MIN = 0.6     # balanced accuracy of a sub-architecture as a detector of its class


def p_text(p: float) -> str:
    """A p-value as the book and the CLI print it: "< 0.001", else three decimals."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def attainable(dist: np.ndarray, tol: float = 1e-12) -> float:
    """The smallest one-sided p a permutation test can give from its null distribution ``dist``
    (every enumerated assignment, the observed one among them): the share of assignments tied at
    the most extreme value. With many ties (a statistic read at few classes) it is far above
    1 / len(dist)."""
    dist = np.asarray(dist, dtype=float)
    return float(np.mean(dist >= dist.max() - tol))


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
        """The 95% interval as text; "(no spread)" where there is none (every value equal, or one)."""
        if np.isnan(self.low) or np.isnan(self.high):
            return "(no spread)"
        return f"[{scale * self.low:+.{digits}f}, {scale * self.high:+.{digits}f}]"

    def to_dict(self) -> dict:
        return asdict(self)


def mean_interval(values: Sequence[float], seed: int = 0) -> Verdict:
    """The mean of ``values`` with its 95% bootstrap (BCa) interval."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or np.ptp(v) == 0:  # no spread to bootstrap: no interval, so nothing "holds"
        return Verdict(float(v.mean()))
    ci = stats.bootstrap((v,), np.mean, n_resamples=RESAMPLES, random_state=seed).confidence_interval
    return Verdict(float(v.mean()), float(ci.low), float(ci.high))


def same_class_agreement(runs: Sequence[Sequence[Tensor]]) -> np.ndarray:
    """Jaccard of a class's binarised masks between two seeds, for every pair of seeds: [pairs *
    classes, points]. ``runs[s][p]`` is seed s's [classes, channels] masks at point p."""
    rows = []
    for a, b in combinations(runs, 2):
        rows.append(torch.stack([_row_jaccard(x, y) for x, y in zip(a, b)], 1).numpy())
    return np.concatenate(rows)


def seed_agreement(runs: Sequence[Sequence[Tensor]]) -> dict[str, np.ndarray]:
    """Same-class agreement of every pair of seeds against chance: raw Jaccard, its expectation
    for random sets of the same two sizes, and kappa, each [pairs * classes, points]."""

    rows: dict[str, list] = {"jaccard": [], "expected": [], "kappa": []}
    for a, b in combinations(runs, 2):
        parts = [agreement(x.numpy(), y.numpy()) for x, y in zip(a, b)]
        for key in rows:
            rows[key].append(np.stack([p[key] for p in parts], 1))
    return {key: np.concatenate(v) for key, v in rows.items()}


def _row_jaccard(a: Tensor, b: Tensor) -> Tensor:
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def mis_relation(conf, classes: Sequence[int], min_rate: float = 0.02) -> np.ndarray:
    """[K, K] boolean: row c marks the classes that at least ``min_rate`` of class c's images are
    wrongly predicted as (Table 1's "Mis."), over the classes in ``classes``."""
    conf = np.asarray(conf, dtype=float)
    idx = list(classes)
    rate = conf[np.ix_(idx, idx)] / np.maximum(conf[idx].sum(1, keepdims=True), 1)
    mis = rate >= min_rate
    np.fill_diagonal(mis, False)
    return mis


def dif(sim: np.ndarray, mis: np.ndarray) -> float:
    """Table 1's Dif = Mis - Oth: per class with both groups, mean similarity to its "Mis."
    classes minus to the others; the mean over those classes."""
    sim = np.asarray(sim, dtype=float)
    k = len(sim)
    oth = ~mis & ~np.eye(k, dtype=bool)
    use = mis.any(1) & oth.any(1)
    if not use.any():
        return float("nan")
    m = np.where(mis, sim, 0).sum(1)[use] / mis.sum(1)[use]
    o = np.where(oth, sim, 0).sum(1)[use] / oth.sum(1)[use]
    return float((m - o).mean())


def per_class_dif(sim: np.ndarray, mis: np.ndarray) -> np.ndarray:
    """Dif of each class that has both groups (the unit of Table 1's interval)."""
    k = len(sim)
    oth = ~mis & ~np.eye(k, dtype=bool)
    use = mis.any(1) & oth.any(1)
    m = np.where(mis, sim, 0).sum(1)[use] / mis.sum(1)[use]
    o = np.where(oth, sim, 0).sum(1)[use] / oth.sum(1)[use]
    return m - o


def misjudgment_test(sim, conf, classes: Sequence[int], min_rate: float = 0.02, seed: int = 0,
                     expected=None, draws: int = RESAMPLES) -> dict:
    """Table 1's Dif = Mis - Oth, tested by QAP: the class labels of the whole similarity matrix
    are permuted (rows and columns together) while the confusion stays, so a pair that counts in
    both its classes' rows moves as one (one-sided p, Dif > 0); the 95% bootstrap interval is over
    classes. With ``expected`` (the similarity that random channels of the same sizes give, per
    pair) the Dif is split into its size part, Dif(expected), and the chance-corrected part,
    Dif(sim - expected), each with its own QAP p."""

    sim = np.asarray(sim, dtype=float)
    mis = mis_relation(conf, classes, min_rate)
    per_class = per_class_dif(sim, mis)
    if len(per_class) == 0:
        return {"dif": float("nan"), "classes": 0, "p": float("nan"), "verdict": None}
    stat = lambda m: dif(m, mis)  # noqa: E731
    test = qap_test(sim, stat, draws, seed)
    boot = mean_interval(per_class, seed)
    out = {"dif": test["observed"], "classes": len(per_class), "p": test["p"], "p_qap": test["p"],
           "low": boot.low, "high": boot.high,
           "verdict": Verdict(test["observed"], boot.low, boot.high, test["p"]).to_dict()}
    if expected is not None:
        delta = sim - np.asarray(expected, dtype=float)
        test_d = qap_test(delta, stat, draws, seed)
        out.update(dif_size=dif(np.asarray(expected, dtype=float), mis), dif_delta=test_d["observed"],
                   p_qap_delta=test_d["p"])
    return out


def dif_ahead(sim, rival, mis: np.ndarray, draws: int = RESAMPLES, seed: int = 0) -> dict:
    """Whether one similarity matrix tracks the misjudgments more than another: QAP on their
    difference ``sim - rival`` with Table 1's Dif as statistic (Dif is linear, so Dif(sim - rival)
    = Dif(sim) - Dif(rival)). The class labels of the difference are permuted, rows and columns
    together, while ``mis`` stays: the class is the unit and a pair moves as one, never counted
    twice. Exact (every permutation) when K! <= ``draws``. Returns the observed difference, both
    one-sided p-values (same permutations) and the smallest p the test can give (``p_floor``); a
    difference below float resolution everywhere returns NaN p-values (nothing to test)."""


    d = np.asarray(sim, dtype=float) - np.asarray(rival, dtype=float)
    mis = np.asarray(mis, dtype=bool)
    k = len(d)
    oth = ~mis & ~np.eye(k, dtype=bool)
    use = mis.any(1) & oth.any(1)
    if not use.any() or np.abs(d[mis | oth]).max() < 1e-6:
        return {"observed": float("nan"), "p_greater": float("nan"), "p_less": float("nan"), "p_floor": 1.0}
    # Dif as a weighted sum of the entries: each used class averages its Mis and Oth rows
    w = (np.where(mis, 1.0, 0.0) / np.maximum(mis.sum(1, keepdims=True), 1)
         - np.where(oth, 1.0, 0.0) / np.maximum(oth.sum(1, keepdims=True), 1)) * use[:, None] / use.sum()
    observed = float((w * d).sum())
    exact = factorial(k) <= draws
    perms = (np.array(list(permutations(range(k)))) if exact else
             np.random.default_rng(seed).permuted(np.tile(np.arange(k), (draws, 1)), axis=1))
    dist = (w[None] * d[perms[:, :, None], perms[:, None, :]]).sum((1, 2))
    if exact:  # the identity is among the permutations: the share at or beyond the observation
        p = {side: float(np.mean(dist >= observed - 1e-12) if side == "greater" else np.mean(dist <= observed + 1e-12))
             for side in ("greater", "less")}
        # the smallest p each side can give: the share of orders tied at that end (a pair structure
        # that many orders keep, e.g. swapping within misjudged pairs, ties them)
        return {"observed": observed, "p_greater": p["greater"], "p_less": p["less"],
                "p_floor": attainable(dist), "p_floor_less": attainable(-dist)}
    everything = np.append(dist, observed)
    return {"observed": observed, "p_greater": permutation_p(observed, dist, "greater"),
            "p_less": permutation_p(observed, dist, "less"),
            "p_floor": max(attainable(everything), 1 / (draws + 1)),
            "p_floor_less": max(attainable(-everything), 1 / (draws + 1))}


def swap_ahead(nad: Sequence[np.ndarray], rival: Sequence[np.ndarray], reduce: str = "max",
               draws: int = RESAMPLES, seed: int = 0) -> dict:
    """Whether one method's sets make the classes overlap more (``reduce="max"``: the largest
    mean kappa over class pairs among the points, chapter 01's "more"), less ("min": the
    smallest, "fewer") or more unevenly over the class pairs ("spread": the standard deviation of
    the pairs' Jaccard, the statistic of the "uneven" finding's own test, averaged over the
    points) than a rival's sets of the same sizes, with the class as unit. Per point ``nad`` and
    ``rival`` are [K, C] boolean (class x channel). Under the null each class's two sets are
    exchangeable: every assignment of each class to one method's set or the other's (all 2^K
    when that is at most ``draws``, else random ones) gives a statistic, and the test compares
    stat(assignment) - stat(its complement) with the observed stat(all ``nad``) - stat(all
    ``rival``). The class moves as one, so no pair is counted twice. Returns the observed
    difference (for "min", rival minus ``nad``: positive when ``nad`` is further below), both
    one-sided p-values and the smallest p the test can give; NaN p-values where no assignment
    moves the statistic beyond float resolution (the sets do not differ where it is read:
    nothing to test)."""


    if reduce not in ("max", "min", "spread"):
        raise ValueError(f"unknown reduce {reduce!r}; choose max, min or spread")
    k = np.asarray(nad[0]).shape[0]
    if 2 ** k <= draws:
        s = np.array(list(product((0.0, 1.0), repeat=k)))
    else:
        s = np.random.default_rng(seed).integers(0, 2, (draws + 1, k)).astype(float)
        s[0] = 0.0
    off = 1.0 - np.eye(k)

    def pair_sum(m: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Per assignment (rows of ``z``: 1 takes the rival's set), the sum over class pairs i != j
        of ``m`` [2K, 2K] at the two sets the assignment gives i and j: a quadratic form."""
        blocks = [[m[:k, :k] * off, m[:k, k:] * off], [m[k:, :k] * off, m[k:, k:] * off]]
        return sum((((1 - z) if i == 0 else z) @ blocks[i][j] * ((1 - z) if j == 0 else z)).sum(1)
                   for i in (0, 1) for j in (0, 1))

    def both(m: np.ndarray) -> np.ndarray:  # [assignments, 2]: an assignment's and its complement's
        return np.stack([pair_sum(m, s), pair_sum(m, 1 - s)], 1)

    per_point = []  # per point: [assignments, 2], the point's statistic of each assignment and complement
    for a, b in zip(nad, rival):
        x = np.concatenate([np.asarray(a), np.asarray(b)]).astype(float)
        if reduce == "spread":  # SD over pairs from the pair sums of J and J^2 (every pair counts)
            j, n = jaccard_rows(x), k * (k - 1)
            per_point.append(np.sqrt(np.maximum(both(j * j) / n - (both(j) / n) ** 2, 0.0)))
            continue
        inter, size = x @ x.T, x.sum(1)
        union = size[:, None] + size[None, :] - inter
        u, at = np.unique(size, return_inverse=True)  # few distinct sizes: E once per pair of them
        e = np.asarray(expected_jaccard(u[:, None], u[None, :], x.shape[1]))[at[:, None], at[None, :]]
        kap = kappa(np.where(union > 0, inter / np.maximum(union, 1), 1.0), e)
        ok = np.isfinite(kap)
        sums, counts = both(np.where(ok, kap, 0.0)), both(ok.astype(float))
        per_point.append(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
    m = np.stack(per_point)  # [points, assignments, 2]
    have = np.isfinite(m).any(0)
    if not have.all():
        return {"observed": float("nan"), "p_greater": float("nan"), "p_less": float("nan"), "p_floor": 1.0}
    stat = (np.nanmax(np.where(np.isfinite(m), m, -np.inf), 0) if reduce == "max"
            else -np.nanmin(np.where(np.isfinite(m), m, np.inf), 0) if reduce == "min"
            else m.mean(0))
    t = stat[:, 0] - stat[:, 1]
    observed = float(t[0])
    if np.abs(t).max() < 1e-9:  # no assignment changes the statistic: the test cannot tell anything apart
        return {"observed": observed, "p_greater": float("nan"), "p_less": float("nan"), "p_floor": 1.0}
    # t(complement) = -t(assignment): the distribution is symmetric, so both sides share one floor,
    # the share of assignments tied at the largest t (not 1 / 2^K: a max or min read at one point
    # moves with few classes)
    return {"observed": observed, "p_greater": float(np.mean(t >= observed - 1e-12)),
            "p_less": float(np.mean(t <= observed + 1e-12)), "p_floor": max(attainable(t), 1 / len(s)),
            "dist": t}


def swap_pooled(dists: Sequence[np.ndarray], draws: int = RESAMPLES, seed: int = 0) -> dict:
    """One test over instances of whether NAD's sets are ahead of a rival's (``swap_ahead``), the
    class swaps stratified by instance: each instance's classes are swapped only within it, and
    the statistic is the sum over instances of each one's difference. ``dists`` holds each
    instance's null distribution (``swap_ahead(...)["dist"]``: the difference under every
    assignment, the observed one first); an instance whose sets do not differ (no distribution)
    adds nothing. The null is the sum of independent draws, one per instance (``draws`` of them);
    p counts the observation among them. The smallest attainable p is the product over instances
    of each one's share of assignments tied at its largest difference (the exact convolution's),
    at least 1 / (``draws`` + 1). Replaces "significant on two of three instances": one test,
    one decision, with the power of all instances together (``pooled_power``)."""
    dists = [np.asarray(d, dtype=float) for d in dists if d is not None and len(d)]
    if not dists or all(np.abs(d).max() < 1e-9 for d in dists):
        return {"observed": float("nan"), "p_greater": float("nan"), "p_less": float("nan"), "p_floor": 1.0,
                "instances": len(dists)}
    rng = np.random.default_rng(seed)
    observed = float(sum(d[0] for d in dists))
    null = sum(d[rng.integers(0, len(d), draws)] for d in dists)
    floor = max(float(np.prod([attainable(d) for d in dists])), 1 / (draws + 1))
    return {"observed": observed,
            "p_greater": float((1 + np.sum(null >= observed - 1e-12)) / (draws + 1)),
            "p_less": float((1 + np.sum(null <= observed + 1e-12)) / (draws + 1)),
            "p_floor": floor, "instances": len(dists)}


def planted_sets(rng: np.random.Generator, core: int, classes: int = 10, channels: int = 64, size: int = 16,
                 groups: int = 1) -> np.ndarray:
    """[classes, channels] random sets of ``size`` channels, the classes split into ``groups``
    groups whose members share a core of ``core`` channels (one core for all with one group: the
    classes overlap more than chance; one per group: they overlap unevenly, within groups)."""
    x = np.zeros((classes, channels), dtype=bool)
    for i in range(classes):
        g = i * groups // classes
        own = np.arange(g * core, (g + 1) * core)
        rest = np.setdiff1d(np.arange(channels), own)
        x[i, own] = True
        x[i, rng.choice(rest, size - core, replace=False)] = True
    return x


def pooled_power(effects: Sequence[int] = (0, 1, 2, 3, 4), instances: int = 3, classes: int = 10,
                 channels: int = 64, size: int = 16, points: int = 3, reps: int = 100, reduce: str = "max",
                 draws: int = 999, seed: int = 0, groups: int = 1) -> list[dict]:
    """The power of the pooled class-swap test (``swap_pooled``) against a planted alternative, on
    synthetic sets: per instance, ``classes`` sets of ``size`` of ``channels`` channels at each of
    ``points`` points; the rival's are random, NAD's share cores of ``effect`` channels at the
    last point (``planted_sets``: one core for all classes, or with ``groups`` one per group of
    classes; effect 0: the null, NAD's sets random too). Returns per planted effect the
    rejection rate at ALPHA over ``reps`` replicates (with the mean difference of the statistic
    per instance), so that the book can show planted effect -> rejection rate; at 0 the rate is
    the test's level."""
    rng = np.random.default_rng(seed)

    def sets(core: int) -> list[np.ndarray]:
        return [planted_sets(rng, core if p == points - 1 else 0, classes, channels, size, groups)
                for p in range(points)]

    rows = []
    for effect in effects:
        rejected, gaps = 0, []
        for r in range(reps):
            dists = [swap_ahead(sets(effect), sets(0), reduce)["dist"] for _ in range(instances)]
            t = swap_pooled(dists, draws, seed=r)
            rejected += t["p_greater"] < ALPHA
            gaps.append(t["observed"] / instances)
        rows.append({"planted core": int(effect), "share of set": effect / size,
                     "difference per instance": float(np.nanmean(gaps)), "rejection rate": rejected / reps,
                     "replicates": reps})
    return rows


def uneven_power(effects: Sequence[int] = (0, 2, 4, 6), groups: int = 2, classes: int = 10, channels: int = 64,
                 size: int = 16, reps: int = 40, draws: int = 199, seed: int = 0) -> list[dict]:
    """The power of the "uneven" finding's own test at one point (``overlap.point_test`` against
    the swap null: class sizes and channel popularities kept, one-sided on the spread of the
    pairs' Jaccard) against planted class groups (``planted_sets``: ``groups`` groups of classes,
    each sharing a core of ``effect`` channels): per planted core, the rejection rate at ALPHA
    over ``reps`` replicates with ``draws`` null draws each (at 0 the test's level)."""

    rng = np.random.default_rng(seed)
    rows = []
    for effect in effects:
        p = [point_test(planted_sets(rng, effect, classes, channels, size, groups), "swap", draws, seed=r)["p"]
             for r in range(reps)]
        rows.append({"planted core": int(effect), "share of set": effect / size,
                     "rejection rate": float(np.mean(np.asarray(p) < ALPHA)), "replicates": reps})
    return rows


def top_confusion_among_similar(sim, conf, classes: Sequence[int], top: int = 3) -> dict:
    """Fig. 5 with the class as the unit: per class with any mistake, is the class its images are
    most often mistaken for among the ``top`` classes whose sub-architectures are most similar to
    its own? Exact binomial test of the count against ``top`` / (K - 1), one-sided."""
    sim, conf = np.asarray(sim, dtype=float), np.asarray(conf, dtype=float)
    idx = list(classes)
    c = conf[np.ix_(idx, idx)].copy()
    np.fill_diagonal(c, 0)
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    k = len(idx)
    hits = [bool(np.argmax(c[i]) in np.argsort(-s[i], kind="stable")[:top]) for i in range(k) if c[i].sum() > 0]
    chance = top / (k - 1)
    p = stats.binomtest(sum(hits), len(hits), chance, alternative="greater").pvalue if hits else float("nan")
    return {"hits": int(sum(hits)), "classes": len(hits), "chance": chance, "p": float(p)}


def versus(nad: dict, other: dict, seed: int = 0) -> dict:
    """NAD against another way of choosing the same number of channels, on one instance's results
    (``book.baselines`` entries: evaluation and cross-class accuracy), with the class as the unit.
    Each estimate is NAD minus the other, so that a positive one favours NAD: "own class", the
    accuracy on the class's own images; "rejects others", the share of other classes' images
    *not* taken for the class (1 - cross-class accuracy). Both paired over classes."""
    classes = nad["report"]["classes"]
    others = lambda cross: others_taken(cross, classes)  # noqa: E731
    acc = [np.asarray(r["report"]["accuracy"]["subarch"]) for r in (nad, other)]
    return {"own class": mean_interval(acc[0] - acc[1], seed),
            "rejects others": mean_interval(others(other["cross"]) - others(nad["cross"]), seed)}


def specificity(cross, classes) -> dict[str, np.ndarray]:
    """Each sub-architecture as a detector of its class, from ``metrics.cross_accuracy``: the
    share of its class's images it labels as its class (``own``), the share of the other classes'
    images it labels as its class (``others``), the balanced accuracy of the two (0.5 is a
    constant answer, whatever the image), whether it answers (almost) constantly (``constant``:
    ``others`` >= ``CONSTANT_SHARE``) and whether it is specific (``specific``: balanced accuracy
    >= ``SPECIFIC_MIN`` and not constant)."""
    m = np.asarray(cross, dtype=float)
    own = np.array([m[k, c] for k, c in enumerate(classes)])
    others = others_taken(m, classes)
    balanced = (own + 1 - others) / 2
    constant = others >= CONSTANT_SHARE
    return {"own": own, "others": others, "balanced": balanced, "constant": constant,
            "specific": (balanced >= SPECIFIC_MIN) & ~constant}


def bounded_interval(values: Sequence[float], low: float = -np.inf, high: float = np.inf,
                     seed: int = 0) -> Verdict:
    """The mean of ``values`` (one per class, or per class pair) with a 95% percentile bootstrap
    interval over them, clipped to the measure's range [``low``, ``high``]; no interval where the
    values do not vary or are fewer than 2."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return Verdict(float("nan"))
    if len(v) < 2 or np.ptp(v) == 0:
        return Verdict(float(v.mean()))
    means = np.random.default_rng(seed).choice(v, (RESAMPLES, len(v))).mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Verdict(float(v.mean()), float(np.clip(lo, low, high)), float(np.clip(hi, low, high)))


def specific_run(cross, classes, seed: int = 0) -> dict:
    """Whether a run's sub-architectures are specific to their class, with the class as unit:
    *specific* holds when the mean balanced accuracy over classes reaches ``SPECIFIC_MIN`` (the
    smallest effect worth reporting) AND its 95% percentile bootstrap interval over classes,
    bounded to [0, 1], excludes 0.5 (a constant answer) AND at most half of the sub-architectures
    answer constantly. Returns ``specificity``'s per-class values with the interval and the
    decision."""
    spec = specificity(cross, classes)
    v = bounded_interval(spec["balanced"], 0.0, 1.0, seed)
    holds = bool(v.estimate >= SPECIFIC_MIN and np.isfinite(v.low) and v.low > 0.5
                 and spec["constant"].mean() <= 0.5)
    return spec | {"mean": v.estimate, "low": v.low, "high": v.high, "holds": holds}
