"""The Elbow method for beta: fit a few classes at every beta of a grid side by side and take the
knee of the binarised masks' loss against log(beta). ``nad`` is a ``nadkit.NAD`` (used through
its ``run``, ``model``, ``points``, ``device``, ``seed`` and ``steps``)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import ClassBatches, ImageData
from .points import masked


def elbow_classes(classes: Sequence[int], n: int) -> list[int]:
    """``n`` of ``classes``, spread evenly from the first to the last."""
    if len(classes) <= n:
        return list(classes)
    return sorted({classes[round(i * (len(classes) - 1) / (n - 1))] for i in range(n)})


@torch.no_grad()
def binary_loss(nad, data: ImageData, classes: Sequence[int], binary: list[Tensor], per_class: int = 64) -> Tensor:
    """Per-class loss of binarised masks on a fixed batch: cross-entropy plus the relative
    reconstruction error ||r~ - r||^2 / ||r||^2 averaged over points. Relative, so that dropping
    the channels that carry a layer's signal costs the same at every layer (a plain MSE barely
    notices a collapsed sub-architecture, whose dropped channels are mostly zero after ReLU)."""
    x, y = ClassBatches(data, list(classes), per_class, seed=nad.seed + 7_777).next(train=False)
    x, y = x.to(nad.device), y.to(nad.device)
    ref: list[Tensor] = []
    with masked(nad.model, nad.points, record=ref):
        nad.model(x)
    owner = torch.arange(len(classes), device=x.device).repeat_interleave(per_class)
    acts: list[Tensor] = []
    with masked(nad.model, nad.points, [b.float().to(nad.device) for b in binary], owner, record=acts):
        out = nad.model(x)
    k = len(classes)
    ce = F.cross_entropy(out, y, reduction="none").view(k, per_class).mean(1)
    rel = sum((a - r).pow(2).sum((1, 2, 3)).view(k, per_class).sum(1) / r.pow(2).sum((1, 2, 3)).view(k, per_class).sum(1)
              for a, r in zip(acts, ref)) / len(acts)
    return (ce + rel).cpu()


def knee(x: Sequence[float], y: Sequence[float]) -> int:
    """Index of the knee of an increasing convex curve y(x) (Kneedle: max of normalised x - y)."""
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    xn = (xt - xt.min()) / (xt.max() - xt.min()).clamp_min(1e-12)
    yn = (yt - yt.min()) / (yt.max() - yt.min()).clamp_min(1e-12)
    return int(torch.argmax(xn - yn))


ELBOW_BETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # covers the authors' 0.02-5.0


def elbow_sweep(nad, data: ImageData, classes: Sequence[int], betas: Sequence[float] = ELBOW_BETAS,
                progress: bool = True) -> dict:
    """The Elbow method: fit ``classes`` at every beta (side by side in one class-batched run) and
    take the knee of the binarised masks' loss against log(beta): the largest beta before the loss
    takes off. (The knee of loss against kept channels is ill-posed here: past the knee, channels
    collapse to a few per layer within one grid step, and that far point looks like the best trade.)"""
    jobs = [(c, b) for b in betas for c in classes]
    res = nad.run(data, [c for c, _ in jobs], betas=[b for _, b in jobs], progress=progress)
    binary = [m > 0.5 for m in res.masks]
    kept = torch.stack([b.float().mean(1) for b in binary], 1).mean(1).view(len(betas), len(classes)).mean(1)
    loss = binary_loss(nad, data, [c for c, _ in jobs], binary).view(len(betas), len(classes)).mean(1)
    best = knee(torch.tensor(betas).log10().tolist(), loss.tolist())
    steps = res.steps.view(len(betas), len(classes))
    return {"classes": list(classes), "betas": list(betas), "kept": [round(v, 4) for v in kept.tolist()],
            "loss": [round(v, 5) for v in loss.tolist()], "beta": betas[best], "steps": nad.steps,
            "max_steps": nad.max_steps, "steps_taken": steps.tolist(),
            "converged": res.converged.view(len(betas), len(classes)).tolist(),
            "knee": "Kneedle knee of the binarised masks' loss against log10(beta)"}
