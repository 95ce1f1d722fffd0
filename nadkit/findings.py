"""The book's findings, each measured against its null and tested on its right unit, for one run;
and their replication over independently trained instances of a network.

Per point, against random channels of the same sizes (``overlap``): do classes share fewer (or
more) channels than chance, and is their overlap spread over the pairs of classes more unevenly
than the channels' popularity explains (swap null)? Is the hit rate above that of random
sub-architectures (``HIT_DRAWS`` draws, a prediction interval)? Each over the *testable* points
with Holm's correction: a point where every class keeps the whole layer (the chance overlap is 1)
or where the hit rate cannot differ from random channels' (every set full, or every set empty)
cannot tell the alternatives apart, so it gets no verdict and leaves the family. Per class: do
sub-architectures beat random ones on their own images; are they specific to their class (as a
detector of it, balanced accuracy above the 0.5 of a constant answer); is a class's top confusion
among its most similar sub-architectures. Per matrix (QAP): are misjudged classes more similar,
raw and beyond chance.

Over instances (``replicated``): a per-point finding holds at a point when it holds there on at
least ``REPLICATE`` instances and no instance is significant the opposite way there; a point
where instances are significant in both directions is *inconsistent across instances*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .overlap import holm
from .stats import (ALPHA, CONSTANT_SHARE, SPECIFIC_MIN, mean_interval, mis_relation, p_text,  # noqa: F401
                    specific_run, specificity, swap_ahead, top_confusion_among_similar)

REPLICATE = 2  # instances on which a finding must hold (of three)
FULL = 1 - 1e-9  # a chance overlap (or kept share) at or above this: every set is the whole layer

# One name per finding, used by every chapter, table and figure (the keys are the JSON's).
NAMES = {
    "fewer": "classes share fewer channels than chance",
    "more": "classes share more channels than chance",
    "structure": "overlap uneven over class pairs",
    "hit": "hit rate above random sub-architectures",
    "accuracy": "sub-architectures keep their class",
    "specific": "sub-architectures are specific to their class",
    "misjudged": "misjudged classes are more similar (raw)",
    "misjudged beyond chance": "misjudged classes are more similar beyond chance",
    "top confusion": "top confusion among the 3 most similar",
}

# The one set of status words every chapter prints.
HOLDS = "holds"                                   # significant, its effect at least the smallest worth reporting
HOLDS_AS_GOOD = "holds, a simple rule as good"    # ... and a heuristic at the same channel counts is not beaten
HOLDS_BETTER = "holds, a simple rule better"      # ... and a heuristic is significantly ahead
NEGLIGIBLE = "negligible"                         # significant, but below the smallest effect worth reporting
NOT_SHOWN = "not shown"                           # the test does not reject its null (or instances disagree)
CANNOT = "cannot be tested here"                  # the data cannot reach the threshold: no verdict either way
STATUSES = (HOLDS, HOLDS_AS_GOOD, HOLDS_BETTER, NEGLIGIBLE, NOT_SHOWN, CANNOT)
PER_POINT = ("fewer", "more", "structure", "hit")
# The overlap findings NAD and a heuristic at its counts are compared on by swapping classes' sets
# (``stats.swap_ahead``), and how each reads its points: the largest or the smallest overlap, or
# the spread of the overlap over class pairs (the "uneven" finding's statistic, mean over points).
SET_UNIT = {"more": "max", "fewer": "min", "structure": "spread"}
OPPOSITE = {"fewer": "more", "more": "fewer"}
NOT_SPECIFIC = ("the sub-architectures are not specific to their class, and one that names its class whatever "
                "the image keeps its class whatever its channels")


@dataclass
class Finding:
    """Whether a finding holds in one run, its estimate, the evidence in words; for a per-point
    finding the points (1-based) where it holds after Holm's correction over the testable points,
    the untestable points, and its statistic per point (``values``: kappa, or the hit-rate gap).
    ``testable`` is False where the run cannot tell the alternatives apart at all. ``near``: the
    points (for a whole-run finding, ``[0]``) whose decision lies within two Monte-Carlo standard
    errors of ALPHA, so that another set of null draws could flip it. ``by_class``: for the hit
    rate, each class's own (mean over the testable points), on which NAD and a heuristic are
    compared class by class; empty where not measured. ``matrix`` and ``misjudged_as``: for the
    misjudged findings, the class x class similarity and the Mis. relation their Dif is read from,
    on which NAD and a heuristic are compared pair by pair (``stats.dif_ahead``). ``nad_swap``:
    for a heuristic's overlap findings (``SET_UNIT``), NAD's run against this one with the class
    as unit (``versus_nad``): [p that NAD is ahead, p that it is behind, the smallest p the test
    can give], NaN p-values where no swap moves the statistic; empty where not measured;
    ``nad_swap_dist`` the test's difference under every class swap (the observed first), from
    which ``stats.swap_pooled`` pools the instances.
    For *specific*, ``by_class`` says which classes' sub-architectures are specific (1.0: balanced
    accuracy >= ``SPECIFIC_MIN`` and not constant) and ``constant`` which answer (almost)
    constantly (name their class for >= ``CONSTANT_SHARE`` of other classes' images)."""

    holds: bool
    estimate: float
    evidence: str
    points: list[int] = field(default_factory=list)
    untestable: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    testable: bool = True
    near: list[int] = field(default_factory=list)
    by_class: list[float] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)
    misjudged_as: list[list[bool]] = field(default_factory=list)
    nad_swap: list[float] = field(default_factory=list)
    constant: list[bool] = field(default_factory=list)
    nad_swap_dist: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def versus_nad(found: dict[str, Finding], nad_sets, sets) -> dict[str, Finding]:
    """A heuristic's findings ``found`` (its run at NAD's channel counts, whose kept channels per
    point are ``sets``) with NAD's run (``nad_sets``) set against it on each overlap finding of
    ``SET_UNIT`` by swapping classes' sets (``stats.swap_ahead``), in ``Finding.nad_swap``."""

    nad_sets, sets = [np.asarray(b) for b in nad_sets], [np.asarray(b) for b in sets]
    for key, reduce in SET_UNIT.items():
        if key in found:
            t = swap_ahead(nad_sets, sets, reduce)
            found[key].nad_swap = [t["p_greater"], t["p_less"], t["p_floor"]]
            found[key].nad_swap_dist = [float(x) for x in t.get("dist", [])]
    return found


def _points(p, testable, keep=None) -> list[int]:
    """1-based points whose Holm-adjusted p (over the testable points only) is below ALPHA and
    where ``keep`` says so."""
    p = np.where(testable, np.asarray(p, dtype=float), np.nan)
    adjusted = holm(p)
    keep = np.ones(len(adjusted), dtype=bool) if keep is None else np.asarray(keep)
    return [i + 1 for i, (q, k) in enumerate(zip(adjusted, keep)) if q < ALPHA and k]


def mc_se(p, draws: int) -> np.ndarray:
    """Monte-Carlo standard error of a permutation p estimated from ``draws`` null draws."""
    p = np.asarray(p, dtype=float)
    return np.sqrt(p * (1 - p) / draws)


def near_threshold(p, testable, draws: int | None, keep=None) -> list[int]:
    """1-based points (where ``keep`` says so) whose Holm-adjusted decision lies within two
    Monte-Carlo standard errors of ALPHA: the adjusted p's error is the error of the raw p that
    sets it, times Holm's multiplier. Empty where the p are not Monte-Carlo (``draws`` None)."""
    if not draws:
        return []
    p = np.where(testable, np.asarray(p, dtype=float), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    se = np.full(len(p), np.nan)
    running, running_se = -1.0, 0.0
    for i, idx in enumerate(order):
        value = min(1.0, (len(order) - i) * p[idx])
        if value > running:
            running, running_se = value, (len(order) - i) * float(mc_se(p[idx], draws))
        se[idx] = running_se
    adjusted = holm(p)
    keep = np.ones(len(p), dtype=bool) if keep is None else np.asarray(keep)
    return [i + 1 for i in ok if keep[i] and abs(adjusted[i] - ALPHA) < 2 * se[i]]


def _where(points: list[int], n: int, untestable: list[int]) -> str:
    text = f"at {len(points)} of {n - len(untestable)} testable points"
    return text + (f" ({', '.join(map(str, points))})" if points else "")


def hit_above_random(nad, draws) -> np.ndarray:
    """Per point, the one-sided p that NAD's hit rate comes from the distribution of the random
    draws' (on the same mosaics): a t prediction interval with the draws' spread."""
    nad, draws = np.asarray(nad, dtype=float), np.asarray(draws, dtype=float)
    d = len(draws)
    sd = draws.std(0, ddof=1) * np.sqrt(1 + 1 / d)
    t = np.where(sd > 0, (nad - draws.mean(0)) / np.where(sd > 0, sd, 1), np.where(nad > draws.mean(0), np.inf, 0))
    return stats.t.sf(t, d - 1)


def of_run(report: dict, control: dict | None = None, hit: list[float] | None = None,
           cross=None, hit_by_class: list[list[float]] | None = None) -> dict[str, Finding]:
    """The findings of one run from its evaluation (``book.evaluated``) and its controls
    (``book.controls``); ``hit`` is the run's hit rate on the control's mosaics when the run is
    not the one the control was made for (a baseline with NAD's channel counts), ``cross`` its
    cross-class accuracy (default: the control's, NAD's own), ``hit_by_class`` its hit rate per
    class and point on those mosaics (``book.control_hit_by_class``)."""
    out: dict[str, Finding] = {}
    n = len(report["points"])
    kept = np.asarray(report["kept"], dtype=float)
    kappa = np.array([np.nan if v is None else v for v in report["similarity_kappa"]], dtype=float)
    if report.get("similarity_p_uniform") is not None:
        expected = np.asarray(report.get("similarity_expected", np.zeros(n)), dtype=float)
        testable = (expected < FULL) & np.isfinite(kappa)
        untestable = [i + 1 for i in np.flatnonzero(~testable)]
        p, p_swap = report["similarity_p_uniform"], report["similarity_p_swap"]
        below, above = _points(p, testable, kappa < 0), _points(p, testable, kappa > 0)
        uneven = _points(p_swap, testable)
        d_uniform = report.get("similarity_p_uniform_draws", report.get("chance_draws"))
        near_below = near_threshold(p, testable, d_uniform, kappa < 0)
        near_above = near_threshold(p, testable, d_uniform, kappa > 0)
        near_swap = near_threshold(p_swap, testable, report.get("chance_draws"))
        values = [float(v) for v in kappa]
        some = bool(testable.any())
        out["fewer"] = Finding(bool(below), float(np.nanmin(kappa)) if some else np.nan,
                               f"kappa < 0 {_where(below, n, untestable)}", below, untestable, values, some,
                               near_below)
        out["more"] = Finding(bool(above), float(np.nanmax(kappa)) if some else np.nan,
                              f"kappa > 0 {_where(above, n, untestable)}", above, untestable, values, some,
                              near_above)
        out["structure"] = Finding(bool(uneven), float(len(uneven)), f"swap null {_where(uneven, n, untestable)}",
                                   uneven, untestable, values, some, near_swap)
    if control and control.get("random_hit_rate_draws"):
        own = np.asarray(control["nad_hit_rate"] if hit is None else hit, dtype=float)
        draws = np.array(control["random_hit_rate_draws"])
        testable = (kept < FULL) & (kept > 0)
        untestable = [i + 1 for i in np.flatnonzero(~testable)]
        ahead = _points(hit_above_random(own, draws), testable)
        gap = own - draws.mean(0)
        best = int(np.argmax(np.where(testable, gap, -np.inf))) if testable.any() else 0
        out["hit"] = Finding(bool(ahead), float(gap[best]),
                             f"{_where(ahead, n, untestable)}; largest gap {gap[best]:+.3f} "
                             f"at point {best + 1} ({len(draws)} random draws)", ahead, untestable,
                             [float(v) for v in gap], bool(testable.any()),
                             by_class=_mean_over(hit_by_class, testable))
    cross = control.get("cross_accuracy") if cross is None and control else cross
    if cross is not None:
        spec = specific_run(cross, report["classes"])
        answered = _top_share(report)
        ok = answered < 0.99
        names = report.get("class_names") or [str(c) for c in report["classes"]]
        which = [n for n, y in zip(names, spec["specific"]) if y]
        constant = [n for n, y in zip(names, spec["constant"]) if y]
        out["specific"] = Finding(
            bool(ok and spec["holds"]), float(spec["mean"]),
            f"balanced accuracy {spec['mean']:.2f} (0.5: a constant answer; smallest worth reporting "
            f"{SPECIFIC_MIN}), 95% CI [{spec['low']:.2f}, {spec['high']:.2f}] over classes; labels "
            f"{100 * spec['others'].mean():.1f}% of other classes' images as its class; specific "
            f"(>= {SPECIFIC_MIN}): {len(which)} of {len(names)}"
            + (f" ({', '.join(which)})" if which else "")
            + (f"; answer (almost) constantly (>= {100 * CONSTANT_SHARE:.0f}% of other classes' images named): "
               f"{len(constant)} ({', '.join(constant)})" if constant else ""),
            values=spec["balanced"].tolist(), testable=ok,
            by_class=[float(y) for y in spec["specific"]], constant=[bool(y) for y in spec["constant"]])
    if control and control.get("random_accuracy"):
        diff = np.array(report["accuracy"]["subarch"]) - np.array(control["random_accuracy"])
        acc = mean_interval(diff)
        spec_found = out.get("specific")
        if spec_found is not None and not spec_found.holds:
            # a sub-architecture that names its class whatever the image keeps it whatever its channels
            out["accuracy"] = Finding(False, acc.estimate,
                                      f"cannot be tested here: {NOT_SPECIFIC} ({100 * acc.estimate:+.1f} points "
                                      "over random sub-architectures)", values=diff.tolist(), testable=False)
        else:
            out["accuracy"] = Finding(acc.holds and acc.estimate > 0, acc.estimate,
                                      f"{100 * acc.estimate:+.1f} points, "
                                      + (f"95% CI {acc.interval(100, 1)} over classes" if np.isfinite(acc.low)
                                         else "no interval (the same on every class)"),
                                      values=diff.tolist())
    mis = report["misjudgment"]
    if mis.get("p_qap") is not None:
        d_qap = 10 * report["chance_draws"] + 9 if report.get("chance_draws") else None
        near = lambda q: [0] if near_threshold([q], [True], d_qap) else []  # noqa: E731
        pairs = {"matrix": report["similarity_matrix"],
                 "misjudged_as": mis_relation(report["confusion"], report["classes"], mis["min_rate"]).tolist()}
        out["misjudged"] = Finding(mis["p_qap"] < ALPHA, mis["dif"],
                                   f"Dif {100 * mis['dif']:+.2f}, QAP p = {p_text(mis['p_qap'])}",
                                   near=near(mis["p_qap"]), **pairs)
        out["misjudged beyond chance"] = Finding(
            mis["p_qap_delta"] < ALPHA, mis["dif_delta"],
            f"Dif beyond chance {100 * mis['dif_delta']:+.2f} (size part {100 * mis['dif_size']:+.2f}), "
            f"QAP p = {p_text(mis['p_qap_delta'])}", near=near(mis["p_qap_delta"]), **pairs)
    top = top_confusion_among_similar(report["similarity_matrix"], report["confusion"], report["classes"])
    if top["classes"]:
        out["top confusion"] = Finding(top["p"] < ALPHA, top["hits"] / top["classes"],
                                       f"{top['hits']}/{top['classes']} classes (chance {top['chance']:.2f}), "
                                       f"binomial p = {p_text(top['p'])}")
    return out


def _mean_over(per_class_point, testable: np.ndarray) -> list[float]:
    """Each class's mean over the ``testable`` points of a [classes, points] table; [] when there
    is no table or no testable point."""
    if per_class_point is None or not testable.any():
        return []
    return np.nanmean(np.asarray(per_class_point, dtype=float)[:, testable], 1).tolist()


def _top_share(report: dict) -> float:
    """The share of the test images that the whole network assigns to its most frequent answer."""
    conf = np.asarray(report["confusion"], dtype=float)
    return float(conf.sum(0).max() / max(conf.sum(), 1))


def replicated(runs: list[dict[str, Finding]], need: int = REPLICATE) -> dict[str, dict]:
    """Per finding over instances: on how many it holds and is testable, its status, and for
    per-point findings the points where it holds consistently (on ``need`` or more instances, and
    on none significantly the other way), the inconsistent points (significant both ways on
    different instances) and the points testable on fewer than ``need`` instances."""
    out = {}
    for key in NAMES:
        have = [r[key] for r in runs if key in r]
        if not have:
            continue
        count = sum(f.holds for f in have)
        testable = sum(f.testable for f in have)
        entry = {"finding": NAMES[key], "holds_in": count, "instances": len(have), "testable_in": testable,
                 "estimates": [f.estimate for f in have], "points": [], "inconsistent": [], "untestable": [],
                 "near": sorted({p for f in have for p in f.near})}
        if key in PER_POINT:
            opposite = [r[OPPOSITE[key]] for r in runs if OPPOSITE.get(key) in r]
            n = len(have[0].values)
            for p in range(1, n + 1):
                yes = sum(p in f.points for f in have)
                no = sum(p in g.points for g in opposite)
                if sum(p not in f.untestable for f in have) < need:
                    entry["untestable"].append(p)
                elif yes >= need and no == 0:
                    entry["points"].append(p)
                elif yes and no:
                    entry["inconsistent"].append(p)
            entry["holds"] = bool(entry["points"])
        else:
            entry["holds"] = count >= need
        entry["status"] = status(entry, need)
        out[key] = entry
    return out


def status(entry: dict, need: int = REPLICATE) -> str:
    """One of ``verdicts.STATUSES`` before the effect's size and the rivals are read: "holds",
    "cannot be tested here" (fewer than ``need`` instances can test it) or "not shown" (also
    where instances are significant in opposite directions: ``entry["inconsistent"]`` says
    where)."""
    if entry["testable_in"] < need:
        return CANNOT
    if entry["holds"]:
        return HOLDS
    return NOT_SHOWN


def verdict(r: dict) -> str:
    """A replicated finding in words: "holds (3/3)", "not shown (1/3)", ..."""
    if r["instances"] < REPLICATE:
        return f"not replicated ({r['holds_in']}/{r['instances']} instance)"
    return f"{r.get('status', 'holds' if r['holds'] else 'not shown')} ({r['holds_in']}/{r['instances']})"
