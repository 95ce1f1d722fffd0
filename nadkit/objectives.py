"""NAD's objectives: the per-job loss of one step (``nad_loss``: the authors' code, the paper's
Eq. 13-14, and the contrast objective) and its pieces."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class SquaredError(torch.autograd.Function):
    """Per-image mean squared error of ``a`` against the constant ``r``, [B]: the same as
    ``(a - r).pow(2).mean((1, 2, 3))`` with one pass over memory each way instead of four."""

    @staticmethod
    def forward(ctx, a: Tensor, r: Tensor) -> Tensor:
        d = a - r
        ctx.save_for_backward(d)
        return torch.linalg.vector_norm(d, dim=tuple(range(1, d.dim()))).square() / d[0].numel()

    @staticmethod
    def backward(ctx, grad: Tensor):
        (d,) = ctx.saved_tensors
        return d * (grad * (2.0 / d[0].numel())).view(-1, *([1] * (d.dim() - 1))), None


def not_named(logits: Tensor, cls: Tensor) -> Tensor:
    """-log(1 - p_cls) per image, from the logits [B, classes] (stably: the log-sum-exp of every
    logit minus that of all but ``cls``): small when the network does not name ``cls``."""
    rest = logits.scatter(1, cls[:, None], float("-inf"))
    return torch.logsumexp(logits, 1) - torch.logsumexp(rest, 1)


def nad_loss(objective: str, logits: Tensor, labels: Tensor, acts: list[Tensor], ref_acts: list[Tensor],
             ref_correct: Tensor, masks: list[Tensor], beta: Tensor, per_job: int,
             errors: list[Tensor] | None = None, own: int | None = None,
             job_class: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-job loss [K] and reconstruction term [K] for one step; images are job-major, ``per_job`` each.
    ``errors``: each point's per-image mean squared error, when the masked pass computed it
    (``points.MaskedPoint``); else it is computed from ``acts`` and ``ref_acts``.

    ``official`` (the authors' code): (CE + sum_p MSE_p over the images the original network
    gets right) / P + beta * sum_p mean(mask_p^2) / P.  ``paper`` (Eq. 13-14): CE + sum_p
    mean(beta * (mu_p r_p)^2 + (r_p - mu_p r_p)^2) with r_p the original activations.
    ``contrast``: each job's first ``own`` images are its class's (``job_class``), the rest other classes'; the
    official terms on its own images, plus the mean of -log(1 - p_c) of the masked network on the
    others (``not_named``), weighted like the CE term: (CE + sum_p MSE_p + NOT) / P + beta * reg.
    """
    k, n_points = len(beta), len(masks)
    if objective == "contrast":
        is_own = (torch.arange(per_job, device=logits.device) < own).repeat(k)
        ce_all = F.cross_entropy(logits, labels, reduction="none").view(k, per_job)
        ce = ce_all[:, :own].mean(1)
        other = not_named(logits, job_class.repeat_interleave(per_job)).view(k, per_job)[:, own:].mean(1)
        ref_correct = ref_correct & is_own
    else:
        ce = F.cross_entropy(logits, labels, reduction="none").view(k, per_job).mean(1)
        other = 0.0
    if objective in ("official", "contrast"):
        weight = ref_correct.view(k, per_job).float()
        weight = weight / weight.sum(1, keepdim=True).clamp_min(1.0)
        if errors is None:
            errors = [SquaredError.apply(a, r) for a, r in zip(acts, ref_acts)]
        mse = sum(e.view(k, per_job).mul(weight).sum(1) for e in errors)
        rec = (ce + mse + other) / n_points
        reg = sum(m.pow(2).mean(1) for m in masks) / n_points
        return rec + beta * reg, rec
    local = 0.0
    for m, r in zip(masks, ref_acts):
        mu = m.repeat_interleave(per_job, 0)[:, :, None, None]
        err = (r * (1 - mu)) ** 2
        local = local + (beta.repeat_interleave(per_job)[:, None, None, None] * (mu * r) ** 2 + err
                         ).mean((1, 2, 3)).view(k, per_job).mean(1)
    return ce + local, ce
