"""Typed results of the analyses on sub-architectures in memory (``SubArchitectures.evaluate`` and
``.ablate``): dataclasses with named fields and stated shapes, each convertible to and from the
dicts that ``nadkit evaluate --json`` and ``nadkit ablate`` write (the same numbers, one code path).

K is the number of classes with sub-architectures, P of mask points, n of channel counts k.
"""

from __future__ import annotations

import numpy as np
from .necessity import selectivity
from dataclasses import dataclass, field
from torch import Tensor


@dataclass(frozen=True)
class Accuracy:
    """Per class (lists of K): top-1 accuracy of the network (``original``) and of the class's
    sub-architecture (``subarch``) on the class's test images; each sub-architecture as a detector
    of its class: the share of other classes' images it labels as its class (``subarch_others``)
    and its one-vs-rest balanced accuracy (``subarch_balanced``; 0.5 is a constant answer)."""

    original: list[float]
    subarch: list[float]
    subarch_others: list[float]
    subarch_balanced: list[float]


@dataclass(frozen=True)
class Similarity:
    """Per point (lists of P): the mean Jaccard similarity of the classes' channel sets
    (``per_point``), what random sets of the same sizes give (``expected``), the chance-corrected
    mean kappa (``kappa``; None where undefined) and the p-values against random channels
    (``p_uniform``) and the popularity-keeping swap null (``p_swap``; None under 3 classes);
    ``matrix`` [K][K]: class-by-class similarity, mean over points (Table 1's)."""

    per_point: list[float]
    expected: list[float]
    kappa: list[float | None]
    p_uniform: list[float] | None
    p_swap: list[float] | None
    matrix: list[list[float]]


@dataclass(frozen=True)
class HitRate:
    """Per point (lists of P): the share of each class's top map pixels that fall in its own
    quadrant of 2x2 mosaics (``mean``), its spread over classes (``std``), and per mosaic
    ``per_mosaic`` [mosaics][P]."""

    mean: list[float]
    std: list[float]
    per_mosaic: list[list[float]]


@dataclass(frozen=True)
class Evaluation:
    """The report of ``nadkit evaluate`` for sub-architectures on a model and a test set.
    ``hit_rate`` is None with fewer than 4 classes; ``hit_rate_missing`` then says why.
    ``confusion`` [classes of the data][classes of the data]: counts (true, predicted) of the
    network; ``misjudgment``: Table 1 (mis, oth, dif and their tests)."""

    points: list[str]
    classes: list[int]
    class_names: list[str]
    kept: list[float]
    accuracy: Accuracy
    similarity: Similarity
    hit_rate: HitRate | None
    confusion: list[list[int]]
    misjudgment: dict
    mosaics: int
    top: float
    hit_protocol: str
    hit_rate_missing: str | None = None
    report: dict = field(default_factory=dict, repr=False)  # the JSON form, as nadkit evaluate --json writes

    @classmethod
    def from_report(cls, r: dict) -> "Evaluation":
        """The typed form of a report dict (``nadkit evaluate --json``)."""
        hits = None if r.get("hit_rate") is None else HitRate(r["hit_rate"], r["hit_rate_std"],
                                                              r["hit_rate_per_mosaic"])
        sim = Similarity(r["similarity"], r["similarity_expected"], r["similarity_kappa"],
                         r.get("similarity_p_uniform"), r.get("similarity_p_swap"), r["similarity_matrix"])
        return cls(r["points"], r["classes"], r["class_names"], r["kept"], Accuracy(**r["accuracy"]), sim, hits,
                   r["confusion"], r["misjudgment"], r["mosaics"], r["top"], r["hit_protocol"],
                   r.get("hit_rate_missing"), r)

    def to_dict(self) -> dict:
        """The report as ``nadkit evaluate --json`` writes it."""
        return dict(self.report)

    def summary(self) -> str:
        """The table ``nadkit evaluate`` prints, as text: per point the kept share, Jaccard and its
        chance level, kappa and hit rate (or why there is none); per class the sub-architecture's
        accuracy on its own class, the share of other classes' images it names as its class and its
        balanced accuracy (0.5: a constant answer); the means and the misjudgment test."""
        return report_text(self.to_dict())

    def to_frame(self):
        """Two pandas DataFrames: per class (index: class names) and per point (index: point names)."""
        import pandas as pd

        a, n = self.accuracy, len(self.classes)
        per_class = pd.DataFrame({"class": self.classes, "own_class_accuracy": a.subarch,
                                  "network_accuracy": a.original,
                                  "others_named": a.subarch_others or [None] * n,
                                  "balanced_accuracy": a.subarch_balanced or [None] * n},
                                 index=pd.Index(self.class_names, name="class_name"))
        hits = self.hit_rate.mean if self.hit_rate is not None else [None] * len(self.points)
        per_point = pd.DataFrame({"kept": self.kept, "jaccard": self.similarity.per_point,
                                  "chance": self.similarity.expected, "kappa": self.similarity.kappa,
                                  "hit_rate": hits,
                                  "note": [point_note(k, q, h) or ("" if h is not None else self.hit_rate_missing or "")
                                           for k, q, h in zip(self.kept, self.similarity.kappa, hits)]},
                                 index=pd.Index(self.points, name="point"))
        return per_class, per_point

    def __repr__(self) -> str:
        a = self.accuracy
        hit = (f"hit rate {_mean(self.hit_rate.mean):.3f}" if self.hit_rate is not None else "no hit rate")
        bal = f", balanced {_mean(a.subarch_balanced):.3f} (0.5: constant)" if a.subarch_balanced else ""
        kappas = [k for k in self.similarity.kappa if k is not None]
        kappa = f"kappa {_mean(kappas):.3f}" if kappas else "no kappa"
        return (f"<Evaluation: {len(self.classes)} classes, {len(self.points)} points; own-class accuracy network "
                f"{_mean(a.original):.3f}, sub-architectures {_mean(a.subarch):.3f}{bal}; {kappa}; {hit}; "
                ".summary(), .to_frame()>")


@dataclass(frozen=True)
class Measure:
    """One ablation's effect: one-vs-rest balanced accuracy (chance 0.5) and accuracy of every
    measured class, both of the same shape (stated where a ``Measure`` is held)."""

    balanced: Tensor
    accuracy: Tensor


@dataclass(frozen=True)
class PointAblation:
    """Every ablation at one mask point, measured on the full network (no sub-architecture).

    ``ks`` [n]: the numbers of channels zeroed; ``matrix_k``: the median set size (the k of the
    class x class matrix). ``base`` [K]: nothing zeroed. ``keep_only`` [K, K]: only class i's kept
    channels left (row i), measured on class j. ``rankings[name]`` [K, n, K]: class i's top k
    channels by that ranking ("nad": its mask) zeroed, measured on class j. ``random``
    [draws, n, K]: uniformly random sets (NaN where a draw was not measured at that k).
    ``popularity`` [draws, K, n, K] (or None): random sets matched to channel popularity."""

    ks: Tensor
    matrix_k: int
    base: Measure
    keep_only: Measure
    rankings: dict[str, Measure]
    random: Measure
    popularity: Measure | None

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor], matrix_k: int) -> "PointAblation":
        """From the tensors ``nadkit ablate`` writes per point (``NAME.balanced``, ``NAME.accuracy``, ``ks``)."""
        names = sorted({k.rsplit(".", 1)[0] for k in t if "." in k})
        m = {n: Measure(t[f"{n}.balanced"], t[f"{n}.accuracy"]) for n in names}
        fixed = ("base", "keep only", "random", "popularity")
        return cls(t["ks"], int(matrix_k), m["base"], m["keep only"], {n: v for n, v in m.items() if n not in fixed},
                   m["random"], m.get("popularity"))

    def to_tensors(self) -> dict[str, Tensor]:
        """The tensors as ``nadkit ablate`` writes them (what ``nadkit.necessity`` reads)."""
        named = {"base": self.base, "keep only": self.keep_only, "random": self.random, **self.rankings}
        if self.popularity is not None:
            named["popularity"] = self.popularity
        out = {f"{n}.{what}": getattr(m, what) for n, m in named.items() for what in ("balanced", "accuracy")}
        return out | {"ks": self.ks}

    def selectivity(self, order: str = "nad", k: int | None = None) -> np.ndarray:
        """Drop on the ablated class minus the mean drop on the others at ``k`` channels (default
        ``matrix_k``): [K] for a ranking, [draws, K] for "random" and "popularity"."""

        return selectivity(self.to_tensors(), order, self.matrix_k if k is None else k)


@dataclass(frozen=True)
class Ablation:
    """``SubArchitectures.ablate``: per point name, its ``PointAblation``; the classes measured."""

    classes: list[int]
    class_names: list[str]
    points: dict[str, PointAblation]

    def selectivity(self, order: str = "nad") -> dict[str, np.ndarray]:
        """Per point, ``PointAblation.selectivity`` at its matrix k."""
        return {name: p.selectivity(order) for name, p in self.points.items()}

    def summary(self) -> str:
        """The table ``nadkit ablate`` prints: per point, the selectivity of NAD's channels and of
        each control at the matrix k, mean over classes."""
        orders = sorted(next(iter(self.points.values())).rankings, key=lambda n: n != "nad") if self.points else ["nad"]
        return ablation_text(self.classes, orders, {p: a.to_tensors() for p, a in self.points.items()},
                             {p: a.matrix_k for p, a in self.points.items()})

    def to_frame(self):
        """A pandas DataFrame: one row per point and class, the selectivity of each ranking at the
        matrix k (and the mean over random and popularity-matched draws)."""
        import pandas as pd

        rows = []
        for p, a in self.points.items():
            sel = {o: a.selectivity(o) for o in a.rankings}
            sel["random"] = np.nanmean(a.selectivity("random"), 0)
            if a.popularity is not None:
                sel["popularity"] = np.nanmean(a.selectivity("popularity"), 0)
            for i, (c, name) in enumerate(zip(self.classes, self.class_names)):
                rows.append({"point": p, "k": a.matrix_k, "class": c, "class_name": name,
                             **{o: float(v[i]) for o, v in sel.items()}})
        return pd.DataFrame(rows).set_index(["point", "class_name"])

    def __repr__(self) -> str:
        nad = {p: float(np.nanmean(v)) for p, v in self.selectivity().items()} if self.points else {}
        head = ", ".join(f"{p} {v:+.3f}" for p, v in list(nad.items())[:4]) + (", ..." if len(nad) > 4 else "")
        return (f"<Ablation: {len(self.classes)} classes, {len(self.points)} points; NAD selectivity (mean over "
                f"classes) {head}; .summary(), .to_frame()>")


# ---- readable forms: the CLI's tables (``nadkit evaluate``, ``nadkit ablate``) and Python's summary() ----

MAX_ROWS = 20  # per-class rows printed in full; beyond, the first ones and how to get all


def _mean(v) -> float:
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else float("nan")


def _num(v, fmt: str, width: int, missing: str = "-") -> str:
    ok = v is not None and v == v and abs(v) != float("inf")
    return f"{v:>{width}{fmt}}" if ok else f"{missing:>{width}}"


def point_note(kept: float, kappa, hit) -> str:
    """Why a point has no kappa or hit rate (empty when it has both)."""
    if kept >= 1.0:
        return "keeps every channel: no kappa, no hit rate"
    if kept <= 0.0:
        return "keeps no channel: no kappa, no hit rate"
    return "" if kappa is not None else "kappa undefined (every class keeps all or none)"


def report_text(r: dict) -> str:
    """``nadkit evaluate``'s table for a report dict (``Evaluation.summary()`` gives the same)."""
    lines = []
    hits = r["hit_rate"] or [None] * len(r["points"])
    arch = r.get("arch") or "network"
    if r["hit_rate"] is None:
        lines.append(f"{arch}: {len(r['classes'])} classes, no hit rate ({r.get('hit_rate_missing', 'under 4 classes')})")
    else:
        lines.append(f"{arch}: {len(r['classes'])} classes, hit rate over {r['mosaics']} mosaics (top {r['top']:.0%}, "
                     f"{r['hit_protocol']} protocol)")
    lines.append(f"{'point':<14}{'kept':>8}{'jaccard':>10}{'chance':>9}{'kappa':>8}{'hit rate':>10}  note")
    for name, k, s, e, q, h in zip(r["points"], r["kept"], r["similarity"], r["similarity_expected"],
                                   r["similarity_kappa"], hits):
        note = point_note(k, q, h)
        if kept_edge := (k >= 1.0 or k <= 0.0):
            q = h = None
        if h is None and not kept_edge and r["hit_rate"] is None:
            note = note or "no hit rate (see above)"
        lines.append((f"{name:<14}{k:>8.3f}{_num(s, '.3f', 10)}{_num(e, '.3f', 9)}{_num(q, '.3f', 8)}"
                      f"{_num(h, '.3f', 10)}  {note}").rstrip())
    acc = r["accuracy"]
    names, n = r["class_names"], len(r["classes"])
    lines.append(f"{'class':<14}{'own acc':>9}{'net acc':>9}{'others named':>14}{'balanced':>10}  (balanced 0.5: a "
                 "constant answer)")
    others, balanced = acc.get("subarch_others") or [None] * n, acc.get("subarch_balanced") or [None] * n
    shown = range(n) if n <= MAX_ROWS else range(MAX_ROWS // 2)
    for i in shown:
        lines.append(f"{str(names[i])[:13]:<14}{_num(acc['subarch'][i], '.3f', 9)}{_num(acc['original'][i], '.3f', 9)}"
                     f"{_num(others[i], '.1%', 14)}{_num(balanced[i], '.3f', 10)}")
    if n > MAX_ROWS:
        lines.append(f"... {n - len(shown)} more classes (all of them: Evaluation.to_frame() or --json)")
    lines.append(f"accuracy on own class: network {_mean(acc['original']):.3f}, sub-architectures "
                 f"{_mean(acc['subarch']):.3f}")
    if acc.get("subarch_balanced"):
        lines.append(f"specific to their class: sub-architectures label {_mean(acc['subarch_others']):.1%} of other "
                     f"classes' images as their class; balanced accuracy {_mean(acc['subarch_balanced']):.3f} "
                     "(0.5: a constant answer)")
    if r["hit_rate"] is None:
        lines.append(f"hit rate: not measured ({r.get('hit_rate_missing', 'a 2x2 mosaic needs 4 classes')})")
    m = r["misjudgment"]
    finite = all(isinstance(m.get(k), (int, float)) and m[k] == m[k] for k in ("mis", "oth", "dif"))
    if not m.get("classes") or not finite:
        lines.append("misjudgment: no misjudged image (the network confuses no class with another often enough)")
    else:
        lines.append(f"misjudgment (similarity x100, dif = mis - oth): mis {100 * m['mis']:.2f}  oth "
                     f"{100 * m['oth']:.2f}  dif {100 * m['dif']:+.2f}  over {len(m['classes'])} classes")
        if m.get("p_qap") is not None and m.get("dif_delta") is not None and m["dif_delta"] == m["dif_delta"]:
            lines.append(f"  QAP p {m['p_qap']:.4f}; beyond chance dif {100 * m['dif_delta']:+.2f} (QAP p "
                         f"{m['p_qap_delta']:.4f}), set sizes alone {100 * m['dif_size']:+.2f}")
    return "\n".join(lines)


def ablation_text(classes: list, orders: list[str], results: dict[str, dict], matrix_k: dict[str, int]) -> str:
    """``nadkit ablate``'s table (``Ablation.summary()`` gives the same): per point, selectivity at
    the matrix k for NAD and its controls, mean over classes."""

    names = list(orders) + ["popularity", "random"]
    lines = [f"selectivity (drop on the class - mean drop on the others, balanced accuracy), mean over "
             f"{len(classes)} classes, at k = the median set size",
             f"{'point':<14}{'k':>5}" + "".join(f"{n[:12]:>14}" for n in names)]
    for p, res in results.items():
        k = matrix_k[p]
        vals = {n: float(np.nanmean(selectivity(res, n, k))) for n in names if f"{n}.balanced" in res}
        lines.append(f"{p:<14}{k:>5}" + "".join(_num(vals.get(n), ".3f", 14) for n in names))
    return "\n".join(lines)
