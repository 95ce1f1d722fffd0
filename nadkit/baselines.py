"""Baselines for NAD: per class and mask point, keep as many channels as NAD kept there, chosen by
a heuristic (mean activation, Taylor importance, Model LEGO's relevance, or at random), so that only
the choice differs, not the sparsity. Every heuristic sees the same images: for each class,
``ClassBatches``' first draw for (seed, class), unaugmented; so a class's scores do not depend on
the other classes or on how many are scored at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import ClassBatches, ImageData
from .errors import NadkitError
from .metrics import random_like
from .points import MaskPoint, masked

BASELINES = ("mean activation", "taylor", "model lego", "random")
# Model LEGO's (alpha, beta) (core/relevant_feature_identifying.py, RelevantFeatureIdentifying.identify)
LEGO_ALPHA_BETA = {nn.Conv2d: (0.3, 0.2), nn.Linear: (0.4, 0.3)}
Batches = Iterator[tuple[list[int], list[tuple[Tensor, Tensor]]]]


def _method(name: str) -> str:
    m = name.replace("_", " ").replace("-", " ").strip().lower()
    if m not in BASELINES:
        raise NadkitError(f"unknown baseline {name!r}; choose one of: {', '.join(BASELINES)}")
    return m


def _samples(data: ImageData, classes: Sequence[int], per_class: int, seed: int, batch: int) -> Batches:
    """Chunks of whole classes: (their rows, [(images, rows)] in sub-batches of at most ``batch``)."""
    step = max(1, batch // per_class)
    for s in range(0, len(classes), step):
        chunk = list(classes[s:s + step])
        x, _ = ClassBatches(data, chunk, per_class, seed).next(train=False)
        rows = torch.arange(s, s + len(chunk)).repeat_interleave(per_class)
        yield list(range(s, s + len(chunk))), [(x[i:i + batch], rows[i:i + batch]) for i in range(0, len(x), batch)]


def _class_sum(v: Tensor, rows: Tensor, k: int) -> Tensor:
    """Sum of the rows of ``v`` [B, ...] per class row, [k, ...] (a matmul: deterministic on GPUs too)."""
    return (F.one_hot(rows, k).T.to(v.dtype) @ v.flatten(1)).view(k, *v.shape[1:])


def _activation_scores(model: nn.Module, points: Sequence[MaskPoint], batches: Batches, k: int, labels: Tensor,
                       dev: torch.device, taylor: bool) -> list[Tensor]:
    """Per point, [k, C] sums over each class's images of the channels' spatial mean (or Taylor term)."""
    sums: list[Tensor] = []
    for _, subs in batches:
        for x, rows in subs:
            x, rows, acts = x.to(dev).clone().requires_grad_(taylor), rows.to(dev), []
            with torch.enable_grad() if taylor else torch.no_grad(), masked(model, points, record=acts):
                out = model(x)
                if taylor:  # eval mode: image n's logit depends on image n only, so one backward for all
                    grads = torch.autograd.grad(out.gather(1, labels.to(dev)[rows, None]).sum(), acts,
                                                allow_unused=True)
            if len(acts) != len(points):
                raise NadkitError(f"{len(acts)} point outputs for {len(points)} points; each point must run once")
            if taylor:
                vals = [a.new_zeros(a.shape[:2]) if g is None else (a.detach() * g).sum((2, 3)).abs()
                        for a, g in zip(acts, grads)]
            else:
                vals = [a.mean((2, 3)) for a in acts]
            part = [_class_sum(v.float(), rows, k) for v in vals]
            sums = [s + p for s, p in zip(sums, part)] if sums else part
    return sums


def _conv_contribution(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """[B, O, I]: relu of the part of output o that input channel i makes, summed over output positions,
    bias left out (their ``partial_conv``, then ``torch.sum(dim=(3, 4))``, ``torch.relu``); the sum over
    positions is taken on the unfolded input, before the kernel product: the same, at 1/positions the memory."""
    pad = conv.padding
    if isinstance(pad, str):
        pad = (0, 0) if pad == "valid" else tuple(d * (s - 1) // 2 for d, s in zip(conv.dilation, conv.kernel_size))
    u = F.unfold(x, conv.kernel_size, conv.dilation, pad, conv.stride)
    u = u.reshape(x.shape[0], x.shape[1], -1, u.shape[-1]).sum(-1)  # [B, I, kernel taps]
    w, g = conv.weight.float().flatten(2), conv.groups  # [O, I/g, taps]
    if g > 1:  # input i reaches output o only within its group
        o, i = torch.arange(w.shape[0], device=w.device), torch.arange(x.shape[1], device=w.device)
        w = w.repeat(1, g, 1) * ((o[:, None] // (w.shape[0] // g)) == (i // w.shape[1]))[:, :, None]
    return torch.einsum("bik,oik->boi", u, w).relu()


def _mm_norm(a: Tensor) -> Tensor:
    """Their ``mm_norm``: min-max over the last axis, (a - min) / (max - min + 1e-5)."""
    lo, hi = a.amin(-1, keepdim=True), a.amax(-1, keepdim=True)
    return (a - lo) / (hi - lo + 1e-5)


def lego_relevance(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], targets: Sequence[int],
                   dev: torch.device | None = None) -> dict[str, Tensor]:
    """Model LEGO's relevance of the inputs of each Conv2d/Linear layer that ran, [k, inputs], for the
    classes ``targets`` (``batches``: (images, row r: class ``targets[r]``)). Reimplemented from
    core/relevant_feature_identifying.py of github.com/jiaconghu/Model_LEGO:

    ``RelevantFeatureIdentifying.__call__`` (no gradients): V[c,o,i] = sum over class c's images of
    relu(sum_p sum_t x[i, p+t] w[o,i,t]) (conv, ``partial_conv``) or relu(x[i] w[o,i]) (linear,
    ``partial_linear``), bias left out. ``identify``, over the layers in reverse ``model.modules()`` order
    (``models.load_modules``): m = one-hot(c) over the last layer's outputs (m = ones where it does not fit
    a layer's outputs), n[c,i] = sum_o m[c,o] [mm_norm_i(V)[c,o,i] > alpha], then m = [mm_norm_i(n) > beta].
    Returned: n + s / (sum_o m + 1), where s = sum_o m[c,o] mm_norm_i(V)[c,o,i] < sum_o m + 1 only breaks ties.
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    dev = next(model.parameters()).device if dev is None else dev
    k, acc, rows = len(targets), {}, [None]

    def hook(name: str):
        def fn(m: nn.Module, inputs, output) -> None:
            x = inputs[0].detach().float()
            if isinstance(m, nn.Linear):  # relu(x w) = relu(x) relu(w) + relu(-x) relu(-w): two sums, not [B, O, I]
                x = x.reshape(len(x), -1, m.in_features).sum(1)
            v = _conv_contribution(m, x) if isinstance(m, nn.Conv2d) else torch.stack([x.relu(), (-x).relu()], 1)
            acc[name] = acc.get(name, 0) + _class_sum(v, rows[0], k)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    try:
        with torch.no_grad():
            for x, r in batches:
                rows[0] = r.to(dev)
                model(x.to(dev))
    finally:
        for h in handles:
            h.remove()
    out, m = {}, None
    for name, layer in [(n, lay) for n, lay in reversed(layers) if n in acc]:
        v, w = acc[name], layer.weight.float()
        v = v if isinstance(layer, nn.Conv2d) else v[:, 0, None] * w.relu() + v[:, 1, None] * (-w).relu()
        if m is None and max(targets) >= v.shape[1]:
            raise NadkitError(f"the last layer {name!r} has {v.shape[1]} outputs, fewer than the classes")
        if m is None:
            m = F.one_hot(torch.tensor(list(targets), device=v.device), v.shape[1]).float()
        elif m.shape[1] != v.shape[1]:
            m = torch.ones(k, v.shape[1], device=v.device)
        alpha, beta = LEGO_ALPHA_BETA[nn.Conv2d if isinstance(layer, nn.Conv2d) else nn.Linear]
        vn = _mm_norm(v)
        count = torch.einsum("ko,koi->ki", m, (vn > alpha).float())
        out[name] = count + torch.einsum("ko,koi->ki", m, vn) / (m.sum(1, keepdim=True) + 1)
        m = (_mm_norm(count) > beta).float()
    return out


def lego_consumers(model: nn.Module, points: Sequence[MaskPoint], x: Tensor) -> list[tuple[str, int]]:
    """Per point, the Conv2d/Linear layer that reads its channels, and how many of that layer's inputs
    each channel is (1, or H*W after a flatten): the first one run after the point whose input is the
    point's output (same storage, or through leaf modules that keep the channel count: BN, ReLU, pooling),
    else (a torch.cat or a functional op between) the first one run after it whose width fits."""
    tags, keep, widths = {}, [], {}  # storage -> point; tagged tensors kept alive (no address reused)
    traced: list = [None] * len(points)
    after: list = [None] * len(points)

    def source(inputs) -> int | None:
        ok = inputs and isinstance(inputs[0], Tensor)
        return tags.get(inputs[0].untyped_storage().data_ptr()) if ok else None

    def tag(t: Tensor, p: int) -> None:
        tags[t.untyped_storage().data_ptr()] = p
        keep.append(t)

    def leaf(m: nn.Module, inputs, out) -> None:
        p = source(inputs)
        if p is not None and isinstance(out, Tensor) and out.dim() > 1 and out.shape[1] == inputs[0].shape[1]:
            tag(out, p)

    def point(p: int):
        def fn(m: nn.Module, inputs, out: Tensor) -> None:
            tag(out, p)
            widths[p] = (out.shape[1], out[0].numel())  # a channel is 1 input, or H*W after a flatten
        return fn

    def layer(name: str):
        def fn(m: nn.Module, inputs) -> None:
            width, p = m.weight.shape[1] * (m.groups if isinstance(m, nn.Conv2d) else 1), source(inputs)
            if p is not None and traced[p] is None and width in widths[p]:
                traced[p] = (name, width // widths[p][0])
            for q, w in widths.items():
                if after[q] is None and width in w:
                    after[q] = (name, width // w[0])
        return fn

    handles = []
    try:
        with torch.no_grad(), masked(model, points, record=[]):  # hooked after masked(): see the points' output
            for n, m in model.named_modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    handles.append(m.register_forward_pre_hook(layer(n)))
                elif not [*m.children()]:
                    handles.append(m.register_forward_hook(leaf))
            handles += [model.get_submodule(p.module).register_forward_hook(point(i)) for i, p in enumerate(points)]
            model(x)
    finally:
        for h in handles:
            h.remove()
    for p, t, a in zip(points, traced, after):
        if t is None and a is None:
            raise NadkitError(f"no Conv2d or Linear layer reads the channels of point {p.name!r}; Model LEGO needs one")
    return [t or a for t, a in zip(traced, after)]


def channel_scores(method: str, model: nn.Module, points: Sequence[MaskPoint], data: ImageData,
                   classes: Sequence[int], per_class: int = 64, seed: int = 0,
                   device: torch.device | str | None = None, batch: int = 256) -> list[Tensor]:
    """Per point, [K, C] float32 CPU scores of the channels for each class of ``classes`` (keep highest first).

    "mean activation": mean over the class's images of the channel's spatial mean. "taylor": first-order
    Taylor importance (Molchanov et al. 2017) for the class logit y_c instead of the loss:
    T[c,i] = mean over class c's images n of |sum_{h,w} a_n[i,h,w] * d y_c(n) / d a_n[i,h,w]|.
    "model lego": ``lego_relevance`` of the inputs of the layer that reads the point (``lego_consumers``),
    a channel's inputs summed after a flatten (their images: the 50 most confident of each class's training
    images, core/sample_select.py; here the same sample as the others). ``device``: default the model's.
    """
    m = _method(method)
    if m == "random":
        raise NadkitError('the random baseline has no scores; use baseline_masks("random", ...)')
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    batches, was = _samples(data, classes, per_class, seed, batch), model.training
    model.eval()
    try:
        if m != "model lego":
            sums = _activation_scores(model, points, batches, len(classes), torch.tensor(list(classes)), dev,
                                      taylor=m == "taylor")
            return [(s / per_class).cpu() for s in sums]
        scores: list[list[Tensor]] = [[] for _ in points]
        consumers = None
        for chunk, subs in batches:
            consumers = consumers or lego_consumers(model, points, subs[0][0][:1].to(dev))
            rel = lego_relevance(model, [(x, r - chunk[0]) for x, r in subs], [classes[c] for c in chunk], dev)
            for p, (name, s) in enumerate(consumers):
                scores[p].append(rel[name].view(len(chunk), -1, s).sum(-1).cpu())
        return [torch.cat(s) for s in scores]
    finally:
        model.train(was)


def top_k_like(scores: Sequence[Tensor], binary: Sequence[Tensor]) -> list[Tensor]:
    """Per point, [K, C] bool: for each class its top-scored channels, as many as ``binary`` keeps there
    (ties go to the lower channel index; NaN scores last)."""
    if len(scores) != len(binary) or any(s.shape != b.shape for s, b in zip(scores, binary)):
        raise NadkitError(f"score shapes {[tuple(s.shape) for s in scores]} do not match the masks' "
                          f"{[tuple(b.shape) for b in binary]}")
    out = []
    for s, b in zip(scores, binary):
        s = s.detach().float().cpu()
        order = torch.sort(torch.where(s.isnan(), -torch.inf, s), dim=1, descending=True, stable=True).indices
        ranks = torch.empty_like(order).scatter_(1, order, torch.arange(s.shape[1]).expand_as(order))
        out.append(ranks < b.cpu().sum(1, keepdim=True))
    return out


def baseline_masks(method: str, model: nn.Module, points: Sequence[MaskPoint], data: ImageData,
                   sub_binary: Sequence[Tensor], classes: Sequence[int], per_class: int = 64, seed: int = 0,
                   device: torch.device | str | None = None, batch: int = 256) -> list[Tensor]:
    """Per point, [K, C] bool masks of baseline ``method`` with NAD's per-class per-point channel counts
    (``sub_binary``, e.g. ``SubArchitectures.binary()``, rows in the order of ``classes``)."""
    m = _method(method)
    if len(sub_binary) != len(points) or any(len(b) != len(classes) for b in sub_binary):
        raise NadkitError(f"sub_binary must hold {len(points)} tensors of {len(classes)} rows, one per class")
    if m == "random":
        return random_like(sub_binary, seed)
    return top_k_like(channel_scores(m, model, points, data, classes, per_class, seed, device, batch), sub_binary)
