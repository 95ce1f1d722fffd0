"""Metrics of the paper, vectorised over classes: accuracy (Fig. 2), Jaccard similarity and hit
rate per mask point (Fig. 4), and the misjudgment table (Table 1)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import ImageData, SubsetImages, class_index, mosaics
from .errors import NadkitError
from .overlap import jaccard_rows, pair_mean
from .points import MaskPoint, masked


def _rows(classes: Sequence[int], num_classes: int, device) -> Tensor:
    """Map class id -> row of the mask tensors (-1 for classes without masks)."""
    rows = torch.full((num_classes,), -1, dtype=torch.long, device=device)
    rows[torch.tensor(list(classes), device=device)] = torch.arange(len(classes), device=device)
    return rows


@torch.no_grad()
def predict(model: nn.Module, data: ImageData, points: Sequence[MaskPoint] | None = None,
            binary: Sequence[Tensor] | None = None, classes: Sequence[int] | None = None,
            mask_class: Tensor | None = None, subset: Tensor | None = None, batch: int = 500,
            desc: str | None = None) -> Tensor:
    """Top-1 predictions on every image of ``data`` (or of the boolean ``subset``); with ``binary``
    masks, image i goes through the sub-architecture of class ``mask_class[i]`` (default: its label)."""
    if subset is not None:
        data = SubsetImages(data, torch.nonzero(subset).flatten())
        mask_class = mask_class[subset] if mask_class is not None else None
    dev = next(model.parameters()).device
    n = len(data.labels)
    mask_class = data.labels if mask_class is None else mask_class
    rows = _rows(classes, len(data.class_names), dev) if binary is not None else None
    if rows is not None and (rows[mask_class.to(dev)] < 0).any():
        raise NadkitError("some images would go through classes without sub-architectures; pass subset= or mask_class=")
    masks = [b.float().to(dev) for b in binary] if binary is not None else None
    out = []
    for i in tqdm(range(0, n, batch), desc=desc, disable=desc is None, leave=False):
        idx = torch.arange(i, min(i + batch, n))
        x = data.load(idx).to(dev)
        if masks is None:
            out.append(model(x).argmax(1))
            continue
        with masked(model, points, masks, rows[mask_class[idx].to(dev)]):
            out.append(model(x).argmax(1))
    return torch.cat(out).cpu()


def class_accuracy(pred: Tensor, labels: Tensor, classes: Sequence[int]) -> Tensor:
    """Top-1 accuracy of ``pred`` on the images of each class in ``classes``."""
    return torch.stack([(pred[labels == c] == c).float().mean() for c in classes])


def confusion(pred: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Counts [true class, predicted class]."""
    return torch.bincount(labels * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def jaccard_matrix(binary: Tensor) -> Tensor:
    """Jaccard similarity of every pair of rows of a [K, C] boolean tensor (``overlap.jaccard_rows``:
    two empty sets count as identical)."""
    return jaccard_rows(binary)


def mean_pairwise(matrix: Tensor) -> float:
    """Mean of the off-diagonal entries (all pairs of distinct classes): ``overlap.pair_mean``."""
    return pair_mean(matrix)


def similarity(binary: Sequence[Tensor]) -> tuple[list[float], Tensor]:
    """Per point, the mean pairwise Jaccard of the classes' channel sets; and the class-by-class
    similarity (mean over points of the per-point Jaccard), as used in Table 1."""
    mats = [jaccard_matrix(b) for b in binary]
    return [mean_pairwise(m) for m in mats], torch.stack(mats).mean(0)


def _quadrants(size: int, device) -> Tensor:
    """Quadrant id (0 TL, 1 TR, 2 BL, 3 BR) of every pixel of a size x size mosaic, flattened."""
    r = torch.arange(size, device=device) >= size // 2
    return (2 * r[:, None].long() + r[None, :].long()).flatten()


HIT_PROTOCOLS = {
    # the paper (Sec. 4.2.2): 1,000 mosaics at twice the input size, top 5% of the bilinear map
    "paper": {"mosaics": 1000, "top": 0.05},
    # the authors' released cam_2x2.py: 100 mosaics resized to the input size, the channel-sum map
    # min-max scaled to 8 bits and resized bicubically, top 10%
    "authors": {"mosaics": 100, "top": 0.10},
}


def _heat(a: Tensor, size: int, protocol: str) -> Tensor:
    """A point's channel-sum map, resized to ``size`` x ``size`` as the protocol does, flattened."""
    heat = a.sum(1, keepdim=True).float()
    if protocol == "authors":
        lo, hi = heat.amin((2, 3), keepdim=True), heat.amax((2, 3), keepdim=True)
        heat = torch.floor(255 * (heat - lo) / (hi - lo).clamp_min(1e-12))
        return F.interpolate(heat, size=(size, size), mode="bicubic", align_corners=False).flatten(1)
    return F.interpolate(heat, size=(size, size), mode="bilinear", align_corners=False).flatten(1)


@torch.no_grad()
def hit_rate(model: nn.Module, points: Sequence[MaskPoint], binary: Sequence[Tensor], classes: Sequence[int],
             data: ImageData, n: int = 1000, top: float = 0.05, seed: int = 0, batch: int = 50,
             progress: bool = True, protocol: str = "paper") -> Tensor:
    """Hit rate of every mosaic, class and point: [n, 4, points].

    For each of a mosaic's four classes, the mosaic goes through that class's sub-architecture;
    a point's channel-sum map is resized to the mosaic, its top ``top`` fraction of pixels kept,
    and the hit is the share of them in the class's quadrant. A flat map (no channel kept) cannot
    point anywhere and scores chance, 0.25. ``protocol`` "paper" feeds the mosaic at twice the
    input size; "authors" resizes it to the input size first (``HIT_PROTOCOLS``).
    """
    if protocol not in HIT_PROTOCOLS:
        raise NadkitError(f"unknown hit-rate protocol {protocol!r}; choose one of: {', '.join(HIT_PROTOCOLS)}")
    dev = next(model.parameters()).device
    images, quad_classes = mosaics(data, n, seed=seed, classes=classes)
    if protocol == "authors":
        side = images.shape[-1] // 2
        images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    rows = _rows(classes, len(data.class_names), dev)
    masks = [b.float().to(dev) for b in binary]
    size = images.shape[-1]
    quad = _quadrants(size, dev)
    k = max(1, round(top * size * size))
    target = torch.arange(4, device=dev).repeat(batch)
    hits = []
    for i in tqdm(range(0, n, batch), desc="hit rate", disable=not progress, leave=False):
        x = images[i:i + batch].to(dev).repeat_interleave(4, 0)
        owner = rows[quad_classes[i:i + batch].to(dev).flatten()]
        acts: list[Tensor] = []
        with masked(model, points, masks, owner, record=acts):
            model(x)
        per_point = []
        for a in acts:
            heat = _heat(a, size, protocol)
            top_idx = heat.topk(k, dim=1).indices
            h = (quad[top_idx] == target[: len(x), None]).float().mean(1)
            flat = heat.amax(1) - heat.amin(1) <= 1e-12 * heat.abs().amax(1).clamp_min(1)
            per_point.append(torch.where(flat, torch.full_like(h, 0.25), h))
        hits.append(torch.stack(per_point, 1).view(-1, 4, len(points)))
    return torch.cat(hits).cpu()


def hit_rate_by_class(hits: Tensor, quad_classes: Tensor, classes: Sequence[int]) -> Tensor:
    """Per class and point, the mean hit rate of the class's sub-architecture over the mosaic
    quadrants that show the class: ``hits`` [n, 4, points] from ``hit_rate``, ``quad_classes``
    [n, 4] the class of each quadrant (``data.mosaics``). The class is the unit on which two
    methods' hit rates are compared; a class that no mosaic shows gets nan."""
    rows = []
    for c in classes:
        shown = quad_classes == c
        rows.append(hits[shown].mean(0) if shown.any() else torch.full(hits.shape[2:], float("nan")))
    return torch.stack(rows)


def misjudgment(conf: Tensor, sim: Tensor, classes: Sequence[int], min_rate: float = 0.02) -> dict:
    """Table 1: mean similarity of each class's sub-architecture to the classes its images are
    wrongly predicted as ("mis": at least ``min_rate`` of its test images) and to all other classes
    ("oth"). Sign: dif = mis - oth, positive when misjudged classes are more similar.

    ``min_rate`` 0.02 is the weight of one image in ImageNet's 50-image validation classes, so
    the threshold matches the paper's "any wrong prediction" at ImageNet's granularity.
    """
    rows = {c: i for i, c in enumerate(classes)}
    mis, oth, used = [], [], []
    for c in classes:
        rate = conf[c].float() / conf[c].sum().clamp_min(1)
        wrong = [d for d in classes if d != c and rate[d] >= min_rate]
        other = [d for d in classes if d != c and d not in wrong]
        if not wrong or not other:
            continue
        mis.append(sim[rows[c], [rows[d] for d in wrong]].mean().item())
        oth.append(sim[rows[c], [rows[d] for d in other]].mean().item())
        used.append(c)
    if not used:
        return {"mis": float("nan"), "oth": float("nan"), "dif": float("nan"), "classes": [], "min_rate": min_rate}
    m, o = sum(mis) / len(mis), sum(oth) / len(oth)
    return {"mis": m, "oth": o, "dif": m - o, "classes": used, "per_class_mis": mis, "per_class_oth": oth,
            "min_rate": min_rate}


def collapsed(binary: Sequence[Tensor]) -> Tensor:
    """Per class [K]: whether its sub-architecture keeps no channel at some point, so that all
    after that point is a constant and it predicts one class whatever the input."""
    return torch.stack([b.sum(1) == 0 for b in binary], 1).any(1)


def random_like(binary: Sequence[Tensor], seed: int = 0) -> list[Tensor]:
    """Random sub-architectures with the same number of kept channels per class and point:
    the control that tells what sparsity alone explains."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b in binary:
        ranks = torch.argsort(torch.argsort(torch.rand(b.shape, generator=gen), dim=1), dim=1)
        out.append(ranks < b.sum(1, keepdim=True))
    return out


@torch.no_grad()
def cross_accuracy(model: nn.Module, points: Sequence[MaskPoint], binary: Sequence[Tensor], classes: Sequence[int],
                   data: ImageData, per_class: int = 100, progress: bool = True) -> Tensor:
    """[sub-architecture, true class]: the share of that class's images that the sub-architecture
    of class ``classes[k]`` predicts as its own class. The diagonal is its accuracy; a row that is
    high everywhere is a sub-architecture that outputs its class whatever the input."""

    index = class_index(data.labels, len(data.class_names))
    sample = torch.cat([i[:per_class] for i in index])
    sub = SubsetImages(data, sample)
    rows = []
    for k, c in enumerate(tqdm(classes, desc="cross accuracy", disable=not progress, leave=False)):
        pred = predict(model, sub, points, binary, classes, mask_class=torch.full_like(sub.labels, c))
        rows.append(torch.stack([(pred[sub.labels == d] == c).float().mean() for d in range(len(data.class_names))]))
    return torch.stack(rows)


@torch.no_grad()
def feature_maps(model: nn.Module, points: Sequence[MaskPoint], image: Tensor, keep: Sequence[Tensor] | None = None,
                 top: float = 0.05) -> tuple[Tensor, Tensor]:
    """Channel-sum map of every point for one image, upsampled bilinearly to the image, and the
    mask of its top ``top`` pixels: ([points, H, W], [points, H, W] bool). ``keep`` (one boolean
    [channels] per point) runs the image through a sub-architecture ("Dis."), else the network ("Ori.")."""
    dev = next(model.parameters()).device
    acts: list[Tensor] = []
    masks = [k.float()[None].to(dev) for k in keep] if keep is not None else None
    with masked(model, points, masks, record=acts):
        model(image[None].to(dev))
    size = image.shape[-2:]
    maps = torch.cat([F.interpolate(a.sum(1, keepdim=True), size=size, mode="bilinear", align_corners=False)[0]
                      for a in acts]).cpu()
    k = max(1, round(top * size[0] * size[1]))
    thresh = maps.flatten(1).topk(k, dim=1).values[:, -1]
    return maps, maps >= thresh[:, None, None]
