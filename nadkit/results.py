"""Typed results of the analyses on sub-architectures in memory (``SubArchitectures.evaluate`` and
``.ablate``): dataclasses with named fields and stated shapes, each convertible to and from the
dicts that ``nadkit evaluate --json`` and ``nadkit ablate`` write (the same numbers, one code path).

K is the number of classes with sub-architectures, P of mask points, n of channel counts k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
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
        from .necessity import selectivity

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

    @classmethod
    def from_folder_result(cls, meta: dict) -> "Ablation":
        """The typed form of ``nadkit.ablate.load``'s dict (a finished ``nadkit ablate`` folder)."""
        return cls(meta["classes"], meta["class_names"],
                   {p: PointAblation.from_tensors(meta["results"][p], meta["matrix_k"][p]) for p in meta["points"]})

