"""The book's findings, each measured against its null and tested on its right unit, for one run;
and their replication over independently trained instances of a network.

Per point, against random channels of the same sizes (``overlap``): do classes share fewer (or
more) channels than chance, and is their overlap spread over the pairs of classes more unevenly
than hub channels explain (swap null)? Is the hit rate above that of random sub-architectures
(``HIT_DRAWS`` draws, a prediction interval)? Each over the points with Holm's correction. Per
class: do sub-architectures beat random ones on their own images; is a class's top confusion
among its most similar sub-architectures. Per matrix (QAP): are misjudged classes more similar,
raw and beyond chance. A finding holds for a network when it holds on at least
``REPLICATE`` of its trained instances.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .overlap import holm
from .stats import ALPHA, mean_interval, top_confusion_among_similar

REPLICATE = 2  # instances on which a finding must hold (of three)

NAMES = {
    "fewer": "classes share fewer channels than random ones",
    "more": "classes share more channels than random ones",
    "structure": "overlap uneven over class pairs beyond hub channels",
    "hit": "hit rate above random sub-architectures",
    "accuracy": "sub-architectures beat random ones on their class",
    "misjudged": "misjudged classes are more similar (raw)",
    "misjudged beyond chance": "misjudged classes are more similar beyond chance",
    "top confusion": "top confusion among the 3 most similar",
}


@dataclass
class Finding:
    """Whether a finding holds in one run, its estimate, the evidence in words, and, for a
    per-point finding, the points (1-based) where it holds after Holm's correction."""

    holds: bool
    estimate: float
    evidence: str
    points: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _points(p, keep=None) -> list[int]:
    """1-based points whose Holm-adjusted p is below ALPHA (and where ``keep`` says so)."""
    adjusted = holm(np.asarray(p, dtype=float))
    keep = np.ones(len(adjusted), dtype=bool) if keep is None else np.asarray(keep)
    return [i + 1 for i, (q, k) in enumerate(zip(adjusted, keep)) if q < ALPHA and k]


def _where(points: list[int], n: int) -> str:
    return f"at {len(points)} of {n} points" + (f" ({', '.join(map(str, points))})" if points else "")


def hit_above_random(nad, draws) -> np.ndarray:
    """Per point, the one-sided p that NAD's hit rate comes from the distribution of the random
    draws' (on the same mosaics): a t prediction interval with the draws' spread."""
    nad, draws = np.asarray(nad, dtype=float), np.asarray(draws, dtype=float)
    d = len(draws)
    sd = draws.std(0, ddof=1) * np.sqrt(1 + 1 / d)
    t = np.where(sd > 0, (nad - draws.mean(0)) / np.where(sd > 0, sd, 1), np.where(nad > draws.mean(0), np.inf, 0))
    return stats.t.sf(t, d - 1)


def of_run(report: dict, control: dict | None = None, hit: list[float] | None = None) -> dict[str, Finding]:
    """The findings of one run from its evaluation (``book.evaluated``) and its controls
    (``book.controls``); ``hit`` is the run's hit rate on the control's mosaics when the run is
    not the one the control was made for (a baseline with NAD's channel counts)."""
    out: dict[str, Finding] = {}
    n = len(report["points"])
    kappa = np.array(report["similarity_kappa"], dtype=float)
    if report.get("similarity_p_uniform") is not None:
        below = _points(report["similarity_p_uniform"], kappa < 0)
        above = _points(report["similarity_p_uniform"], kappa > 0)
        uneven = _points(report["similarity_p_swap"])
        out["fewer"] = Finding(bool(below), float(np.nanmin(kappa)), f"kappa < 0 {_where(below, n)}", below)
        out["more"] = Finding(bool(above), float(np.nanmax(kappa)), f"kappa > 0 {_where(above, n)}", above)
        out["structure"] = Finding(bool(uneven), float(len(uneven)), f"swap null {_where(uneven, n)}", uneven)
    if control and control.get("random_hit_rate_draws"):
        own = control["nad_hit_rate"] if hit is None else hit
        draws = np.array(control["random_hit_rate_draws"])
        ahead = _points(hit_above_random(own, draws))
        best = int(np.argmax(np.array(own) - draws.mean(0)))
        out["hit"] = Finding(bool(ahead), float(own[best] - draws.mean(0)[best]),
                             f"{_where(ahead, n)}; largest gap {own[best] - draws.mean(0)[best]:+.3f} "
                             f"at point {best + 1} ({len(draws)} random draws)", ahead)
    if control and control.get("random_accuracy"):
        acc = mean_interval(np.array(report["accuracy"]["subarch"]) - np.array(control["random_accuracy"]))
        out["accuracy"] = Finding(acc.holds and acc.estimate > 0, acc.estimate,
                                  f"{100 * acc.estimate:+.1f} points, 95% CI {acc.interval(100, 1)} over classes")
    mis = report["misjudgment"]
    if mis.get("p_qap") is not None:
        out["misjudged"] = Finding(mis["p_qap"] < ALPHA, mis["dif"],
                                   f"Dif {100 * mis['dif']:+.2f}, QAP p = {mis['p_qap']:.3f}")
        out["misjudged beyond chance"] = Finding(
            mis["p_qap_delta"] < ALPHA, mis["dif_delta"],
            f"Dif beyond chance {100 * mis['dif_delta']:+.2f} (size part {100 * mis['dif_size']:+.2f}), "
            f"QAP p = {mis['p_qap_delta']:.3f}")
    top = top_confusion_among_similar(report["similarity_matrix"], report["confusion"], report["classes"])
    if top["classes"]:
        out["top confusion"] = Finding(top["p"] < ALPHA, top["hits"] / top["classes"],
                                       f"{top['hits']}/{top['classes']} classes (chance {top['chance']:.2f}), "
                                       f"binomial p = {top['p']:.3f}")
    return out


def replicated(runs: list[dict[str, Finding]], need: int = REPLICATE) -> dict[str, dict]:
    """Per finding over instances: on how many it holds, whether that reaches ``need``, and for
    per-point findings the points where it holds on ``need`` or more."""
    out = {}
    for key in NAMES:
        have = [r[key] for r in runs if key in r]
        if not have:
            continue
        count = sum(f.holds for f in have)
        points = sorted({p for f in have for p in f.points if sum(p in g.points for g in have) >= need})
        out[key] = {"finding": NAMES[key], "holds_in": count, "instances": len(have),
                    "holds": count >= need, "points": points,
                    "estimates": [f.estimate for f in have]}
    return out


def verdict(r: dict) -> str:
    """A replicated finding in words: "holds (3/3)" or "not shown at this scale (1/3)"."""
    if r["instances"] < REPLICATE:
        return f"not replicated ({r['holds_in']}/{r['instances']} instance)"
    word = "holds" if r["holds"] else "not shown at this scale"
    return f"{word} ({r['holds_in']}/{r['instances']})"
