"""Evaluation of sub-architectures on a network, below ``SubArchitectures`` so that its
``.evaluate`` and the ``evaluate`` job build one report: accuracy and specificity, similarity
with its chance level, hit rate on mosaics, confusion and misjudgment (``evaluate_masks``), the
measures against chance (``with_chance``), the hit-rate protocol's settings (``hit_settings``) and
the mask points a result records (``recorded_points``). It reads a result through its public
attributes only (``config``, ``classes``, ``class_names``, ``points``, ``binary()``, ``kept()``)."""

from __future__ import annotations

import math

import torch

from .errors import NadkitError
from .metrics import (HIT_PROTOCOLS, class_accuracy, confusion, cross_accuracy, hit_rate, misjudgment, predict,
                      similarity)
from .overlap import per_point, point_test
from .points import MaskPoint, check_points
from .stats import misjudgment_test, specificity


def recorded_points(cfg: dict, model) -> list[MaskPoint]:
    """The mask points a result of ``NAD.fit`` records, checked to be ``model``'s."""
    try:
        points = [MaskPoint(str(p["name"]), str(p["module"]), bool(p.get("relu", False))) for p in cfg["mask_points"]]
    except (TypeError, KeyError):
        raise NadkitError("the result's mask_points are malformed; re-run NAD") from None
    return check_points(model, points)


def hit_settings(hit_protocol: str, mosaics: int | None, top: float | None) -> tuple[int, float]:
    """(mosaics, top) of a hit-rate protocol, the given ones checked."""
    if hit_protocol not in HIT_PROTOCOLS:
        raise NadkitError(f"unknown hit-rate protocol {hit_protocol!r}; choose one of: {', '.join(HIT_PROTOCOLS)}")
    mosaics = HIT_PROTOCOLS[hit_protocol]["mosaics"] if mosaics is None else mosaics
    top = HIT_PROTOCOLS[hit_protocol]["top"] if top is None else top
    if not 0 < top <= 1:
        raise NadkitError(f"top fraction must be in (0, 1], got {top}")
    if mosaics < 1:
        raise NadkitError(f"mosaics must be >= 1, got {mosaics}")
    return mosaics, top


NO_HIT_RATE = "a 2x2 mosaic needs 4 classes with sub-architectures; disentangle at least 4 classes to measure it"


def evaluate_masks(sub, model, points, test, mosaics: int, top: float, seed: int = 0,
                   progress: bool = True, hit_protocol: str = "paper", chance_draws: int = 999) -> dict:
    """The report of ``evaluate`` for ``sub`` on ``model`` at ``points`` and the test split ``test``
    (nadkit's data protocol: ``labels``, ``class_names``, ``load``)."""
    cfg = sub.config
    binary = sub.binary()
    pred = predict(model, test, desc="accuracy (network)" if progress else None)
    keep = torch.isin(test.labels, torch.tensor(sub.classes))
    sub_pred = predict(model, test, points, binary, sub.classes, subset=keep,
                       desc="accuracy (sub-architectures)" if progress else None)
    per_point, sim = similarity(binary)
    hits = hit_rate(model, points, binary, sub.classes, test, mosaics, top, seed, progress=progress,
                    protocol=hit_protocol) if len(sub.classes) >= 4 else None
    conf = confusion(pred, test.labels, len(test.class_names))
    per_class = min(100, int(torch.bincount(test.labels).min()))
    if per_class == 0:  # a test set without some class: as many as the classes measured all have
        per_class = min(100, int(torch.bincount(test.labels, minlength=len(test.class_names))[sub.classes].min()))
    spec = specificity(cross_accuracy(model, points, binary, sub.classes, test, per_class=per_class,
                                      progress=progress), sub.classes)
    report = {
        "arch": cfg.get("arch"), "seed": cfg.get("seed"), "points": sub.points, "classes": sub.classes,
        "class_names": sub.class_names, "kept": sub.kept().mean(0).tolist(),
        "similarity": per_point,
        "similarity_matrix": sim.tolist(),
        "hit_rate": hits.mean((0, 1)).tolist() if hits is not None else None,
        "hit_rate_std": hits.mean(1).std(0).tolist() if hits is not None else None,
        "hit_rate_per_mosaic": hits.mean(1).tolist() if hits is not None else None,
        "accuracy": {"original": class_accuracy(pred, test.labels, sub.classes).tolist(),
                     "subarch": class_accuracy(sub_pred, test.labels[keep], sub.classes).tolist(),
                     # each sub-architecture as a detector of its class, on up to 100 images per
                     # class: the share of the other classes' images it labels as its class, and
                     # its balanced accuracy (0.5: a constant answer)
                     "subarch_others": spec["others"].tolist(),
                     "subarch_balanced": spec["balanced"].tolist()},
        "confusion": conf.tolist(),
        "misjudgment": misjudgment(conf, sim, sub.classes),
        "mosaics": mosaics, "top": top, "hit_protocol": hit_protocol,
    } | ({"hit_rate_missing": NO_HIT_RATE} if hits is None else {})
    return with_chance(report, binary, chance_draws)


def with_chance(report: dict, binary, draws: int = 999) -> dict:
    """An evaluation with what random channels of the same sizes give (``nadkit.overlap``): per
    point the expected mean Jaccard (``similarity_expected``), the mean kappa
    (``similarity_kappa``), the two-sided p of the mean against random channels of each class's
    size (``similarity_p_uniform``) and the one-sided p of its spread over class pairs against the
    swap null that also keeps each channel's popularity (``similarity_p_swap``); Table 1's Dif
    tested by QAP (``misjudgment.p_qap``), and on chance-corrected overlap (``dif_delta``,
    ``p_qap_delta``) beside the part the sets' sizes alone give (``dif_size``). ``draws`` null
    draws per point (ten times as many class permutations for QAP)."""
    masks = [b.numpy() if hasattr(b, "numpy") else b for b in binary]
    chance = per_point(masks)
    mis = report["misjudgment"]
    test = misjudgment_test(report["similarity_matrix"], report["confusion"], report["classes"],
                            mis["min_rate"], expected=chance["expected_matrix"], draws=10 * draws + 9)
    keys = ("p_qap", "dif_delta", "p_qap_delta", "dif_size")
    tested = len(report["classes"]) >= 3
    p_of = lambda null: [point_test(m, null, draws, seed=i)["p"]  # noqa: E731
                         for i, m in enumerate(masks)] if tested else None
    finite = lambda v: [x if math.isfinite(x) else None for x in v]  # noqa: E731  (JSON has no NaN)
    return report | {"similarity_expected": chance["similarity_expected"],
                     "similarity_kappa": finite(chance["similarity_kappa"]),
                     "similarity_p_uniform": p_of("uniform"), "similarity_p_swap": p_of("swap"),
                     "misjudgment": mis | {k: test.get(k) for k in keys}}
