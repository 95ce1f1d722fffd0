"""Mask points: the named places in a network whose output channels NAD keeps or drops.

Points are found by module name on the unmodified network and applied with forward hooks, so
any network works: a point's output is multiplied, per image, by the channel mask of that
image's class (a batch may mix classes). The lists follow the authors' code (reference notes
section 1): one point per conv layer for VGG16, the stem and every block for ResNet50, the stem,
every dense block and transition and the final norm for DenseNet121, two stems and 14 cells for DARTS.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from .errors import NadkitError
from .findpoints import MaskPoint, auto_points, candidates, probe  # MaskPoint: defined with the rule that finds points


VGG_BLOCKS = (2, 2, 3, 3, 3)


def _vgg16() -> list[MaskPoint]:
    # A block's last conv is masked after the block's max-pool, as in the authors' code: pooling
    # commutes with a positive per-channel scale, so the network is the same, on 4x fewer pixels.
    convs = [(b, i, i == n) for b, n in enumerate(VGG_BLOCKS, 1) for i in range(1, n + 1)]
    return [MaskPoint(f"conv{b}_{i}", f"features.pool{b}" if last else f"features.relu{b}_{i}") for b, i, last in convs]


def _resnet50() -> list[MaskPoint]:
    blocks = [f"layer{s}.{i}" for s, n in enumerate((3, 4, 6, 3), 1) for i in range(n)]
    return [MaskPoint("stem", "maxpool")] + [MaskPoint(b, b) for b in blocks]


def _densenet121() -> list[MaskPoint]:
    names = ["pool0", "denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3"]
    labels = ["stem", "block1", "trans1", "block2", "trans2", "block3", "trans3"]
    # The authors' 8 points: stem, blocks 1-3, transitions 1-3, and the final features after norm5
    # and its ReLU (norm5 -> relu5 -> mask5 in their model; here and in torchvision the ReLU is
    # functional, in forward).
    return [MaskPoint(lab, f"features.{n}") for lab, n in zip(labels, names)] + \
        [MaskPoint("relu5", "features.norm5", relu=True)]


def _darts() -> list[MaskPoint]:
    return [MaskPoint("stem0", "stem0"), MaskPoint("stem1", "stem1")] + \
           [MaskPoint(f"cell{i}", f"cells.{i}") for i in range(14)]


def _torchvision_vgg16() -> list[MaskPoint]:
    # after the ReLUs, a block's last conv after its max-pool, conv5_3 after the adaptive average pool
    modules = ("features.1", "features.4", "features.6", "features.9", "features.11", "features.13", "features.16",
               "features.18", "features.20", "features.23", "features.25", "features.27", "avgpool")
    return [MaskPoint(p.name, m) for p, m in zip(_vgg16(), modules)]


def _torchvision_densenet121() -> list[MaskPoint]:
    return _densenet121()  # the same module names as torchvision's


POINTS = {"vgg16": _vgg16, "resnet50": _resnet50, "densenet121": _densenet121, "darts": _darts}
# torchvision's ImageNet networks (paper scale); ResNet50's names are torchvision's already
TORCHVISION_POINTS = {"vgg16": _torchvision_vgg16, "resnet50": _resnet50, "densenet121": _torchvision_densenet121}


def is_torchvision(model: nn.Module | None) -> bool:
    return model is not None and type(model).__module__.startswith("torchvision.")


class MaskPoints(list):
    """A list of ``MaskPoint`` that also says how it was chosen: ``rule`` ("the authors' points of
    vgg16", "auto", ...) and ``left_out`` (module -> why it is not a point), for every module that
    puts out a feature map, as ``nadkit points`` prints them."""

    def __init__(self, points: Sequence[MaskPoint], rule: str, left_out: dict[str, str], output=None):
        super().__init__(points)
        self.rule, self.left_out, self.output = rule, left_out, output


def select_output(out, output=None):
    """The logits tensor of a forward's result: ``out`` itself, or ``out[output]`` for a tuple or
    dict (``output``: the index or key given to ``mask_points(..., output=...)``)."""
    if output is not None:
        try:
            out = out[output]
        except (KeyError, IndexError, TypeError):
            keys = list(out) if isinstance(out, dict) else f"0..{len(out) - 1}" if isinstance(out, (tuple, list)) \
                else "none (it returns a tensor)"
            raise NadkitError(f"the model's output has no {output!r}; its keys/indices: {keys}; pass "
                              "mask_points(model, x, output=...) with one of them") from None
    if not isinstance(out, Tensor):
        keys = list(out) if isinstance(out, dict) else f"0..{len(out) - 1}" if isinstance(out, (tuple, list)) else ""
        raise NadkitError(f"the model returns a {type(out).__name__}, not a logits tensor; say which part holds the "
                          f"logits: mask_points(model, x, output=KEY) (keys/indices: {keys})")
    return out


@contextmanager
def output_of(model: nn.Module, output=None) -> Iterator[nn.Module]:
    """Within the block, ``model(x)`` returns the logits its forward's ``output`` part holds."""
    if output is None:
        yield model
        return
    forward = model.forward
    model.forward = lambda *a, **k: select_output(forward(*a, **k), output)
    try:
        yield model
    finally:
        del model.forward


@torch.no_grad()
def check_output(model: nn.Module, x: Tensor, output=None) -> None:
    """One line unless ``model(x)`` gives (after ``output``) [B, classes] logits; a warning for
    outputs that already sum to one (softmax probabilities, where NAD's loss expects logits)."""

    out = select_output(model(x), output)
    if out.dim() != 2:
        raise NadkitError(f"the model's output is {list(out.shape)}, not [batch, classes] logits; give a classifier "
                          "(or pass mask_points(model, x, output=...) for the logits part)")
    if out.shape[1] > 1 and bool((out >= 0).all()) and torch.allclose(out.sum(1), torch.ones(len(out)).to(out), atol=1e-4):
        warnings.warn("the model's outputs sum to one (softmax probabilities?); NAD and its accuracies expect "
                      "logits: leave out the final softmax", stacklevel=3)


def mask_points(arch: str | nn.Module, model: nn.Module | Tensor | None = None, names: Sequence[str] | None = None,
                output=None) -> list[MaskPoint]:
    """The mask points of a network, in either form:

    ``mask_points(model, example_inputs)``: for any ``nn.Module`` and an example batch
    [B, C, H, W] (or one image's shape (C, H, W)): the authors' points where ``model`` is one of
    the four topologies (embedded, or torchvision's at paper scale), else the automatic rule of
    ``nadkit.findpoints`` (the stem, every block, the last feature map). Returns ``MaskPoints``:
    ``.rule`` says which, ``.left_out`` why each other feature-map module is not a point.

    ``mask_points(arch, model=None)``: the points of topology ``arch`` (of torchvision's network
    when ``model`` is one), checked against ``model`` when given.

    ``names``: the modules (dotted names of ``model.named_modules()``) to mask instead, each probed
    like the automatic rule's (a 4-D output, one call per forward). ``output``: for a model whose
    forward returns a tuple or dict, the index or key of its logits (e.g. ``output=0`` or
    ``output="logits"``); kept as ``points.output``, used by ``NAD`` and recorded in the result.
    """
    if isinstance(arch, nn.Module):
        return points_of_model(arch, model, names, output)
    if arch not in POINTS:
        raise NadkitError(f"no mask points for arch {arch!r}; choose one of: {', '.join(POINTS)}; or call "
                          "mask_points(model, example_inputs) for any network")
    points = (TORCHVISION_POINTS if is_torchvision(model) else POINTS)[arch]()
    if model is not None:
        if not isinstance(model, nn.Module):
            raise NadkitError(f"mask_points({arch!r}, model) takes the nn.Module as model, got a {type(model).__name__}")
        names = dict(model.named_modules())
        missing = [p.module for p in points if p.module not in names]
        if missing:
            raise NadkitError(f"the network has no module {missing[0]!r} for mask points of {arch}; is it a {arch}?")
    return points


def _example_shape(example_inputs) -> tuple[int, ...]:
    if isinstance(example_inputs, Tensor):
        shape = tuple(example_inputs.shape)
    elif isinstance(example_inputs, (tuple, list)) and all(isinstance(v, int) for v in example_inputs):
        shape = tuple(example_inputs)
    else:
        raise NadkitError("mask_points(model, example_inputs) needs example_inputs: a batch of images [B, C, H, W] "
                          "(e.g. torch.zeros(1, 3, 32, 32)) or one image's shape (C, H, W)")
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise NadkitError(f"example_inputs of shape {list(shape)}: give a batch [B, C, H, W] or one image's (C, H, W)")
    return shape


def _card_of(model: nn.Module, auto: Sequence[MaskPoint]) -> tuple[str, list[MaskPoint]] | None:
    """The authors' points of the topology ``model`` is, if it is one of the four: every module of
    the card exists and the card has as many points as the automatic rule finds (a deeper or
    shallower relative, e.g. resnet18 or resnet101, has other blocks, so the card does not apply)."""
    names = dict(model.named_modules())
    cards = TORCHVISION_POINTS if is_torchvision(model) else POINTS
    for arch, card in cards.items():
        points = card()
        if all(p.module in names for p in points) and len(points) == len(auto):
            return arch, points
    return None


def points_of_model(model: nn.Module, example_inputs, names: Sequence[str] | None = None,
                    output=None) -> "MaskPoints":
    """``mask_points(model, example_inputs)``: the card where it applies, else the automatic rule."""
    if not isinstance(model, nn.Module):
        raise NadkitError(f"mask_points takes an nn.Module, got a {type(model).__name__}")
    shape = _example_shape(example_inputs)
    if names is not None:
        names = [names] if isinstance(names, str) else list(names)
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules or not n]
        if missing:
            near = [m for m in modules if m and missing[0].split(".")[-1] in m][:3]
            raise NadkitError(f"the network has no module {missing[0]!r}" + (f" (close: {', '.join(near)})" if near else "")
                              + "; name modules of model.named_modules(), or leave names out for the automatic rule")
        points = check_points(model, [MaskPoint(n, n) for n in names])
        param = next(model.parameters())
        probe_points(model, points, shape)
        with output_of(model, output):
            check_output(model, torch.zeros(1, *shape, device=param.device, dtype=param.dtype))
        return MaskPoints(points, "named", {}, output)
    auto = auto_points(model, shape)
    card = _card_of(model, auto)
    points, rule = (card[1], f"the authors' points of {card[0]}") if card else \
        (auto, "auto: the stem, every block and the last feature map (nadkit.findpoints)")
    chosen = {p.module for p in points}
    left_out = {}
    for o in candidates(model, shape):
        if o.name in chosen:
            continue
        inside = next((p.module for p in points if o.name.startswith(p.module + ".")), None)
        left_out[o.name] = o.problem or (f"inside point {inside}, whose output it makes" if inside else
                                         "not the output of a block or stem (the rule keeps one point per unit)")
    return MaskPoints(points, rule, left_out, output)


def check_points(model: nn.Module, points: Sequence[MaskPoint]) -> list[MaskPoint]:
    """``points`` checked to be mask points of ``model``: MaskPoints, at least one, each name once,
    each module one of the model's."""
    points = list(points) if not isinstance(points, (str, MaskPoint)) else [points]
    if not points or not all(isinstance(p, MaskPoint) for p in points):
        raise NadkitError("points must be a non-empty list of MaskPoint; get them with nadkit.mask_points(model, "
                          "example_inputs)")
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise NadkitError(f"mask point {next(n for n in names if names.count(n) > 1)!r} is listed twice; list each once")
    modules = dict(model.named_modules())
    missing = [p.module for p in points if p.module not in modules or not p.module]
    if missing:
        raise NadkitError(f"the network has no module {missing[0]!r}: these points are not this model's; get its "
                          "points with nadkit.mask_points(model, example_inputs)")
    return points


class MaskedPoint(torch.autograd.Function):
    """A point's masked output ``a * m`` and its per-image mean squared error against the
    reference ``r``, [B], in one function: the backward adds the error's gradient into the
    output's in one pass (``addcmul``), then scales by the mask and reduces the mask's gradient
    over space; autograd would take two more passes and keep two copies of the difference.
    ``m`` is [B, C], one mask row per image. (``torch.compile`` of the two halves into single
    loops measured no faster within a NAD step on the embedded networks, so it is not used.)"""

    @staticmethod
    def forward(ctx, a: Tensor, m: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        y = a * m[:, :, None, None].to(a.dtype)
        d = (y - r).to(torch.promote_types(a.dtype, torch.float32))  # bf16 autocast: errors in fp32
        ctx.save_for_backward(a, m, d)
        return y, torch.linalg.vector_norm(d, dim=(1, 2, 3)).square() / d[0].numel()

    @staticmethod
    def backward(ctx, g: Tensor, g_err: Tensor) -> tuple[Tensor, Tensor, None]:
        a, m, d = ctx.saved_tensors
        total = torch.addcmul(g.to(d.dtype), d, (g_err * (2.0 / d[0].numel()))[:, None, None, None])
        return (total * m[:, :, None, None]).to(a.dtype), (total * a).sum((2, 3)).to(m.dtype), None


@contextmanager
def masked(model: nn.Module, points: Sequence[MaskPoint], masks: Sequence[Tensor] | None = None,
           owner: Tensor | None = None, record: list[Tensor] | None = None,
           against: Sequence[Tensor] | None = None) -> Iterator[None]:
    """Within the block, multiply the output of ``points[i]`` by ``masks[i][owner]`` per image.

    ``masks[i]`` is [K, C] (row k is job k's channel mask) and ``owner`` [B] says which row each
    image of the batch uses (default: row 0 for all). If ``record`` is a list, each point's
    output (after masking) is appended to it in point order. ``masks=None`` only records.
    ``against``: reference outputs, one per point; then ``record`` gets, instead of the outputs,
    each point's per-image mean squared error against its reference (``MaskedPoint``).
    """
    handles = []

    def hook(i: int):
        relu = points[i].relu

        def fn(module: nn.Module, inputs, output: Tensor) -> Tensor | None:
            if relu:
                output = torch.relu(output)
            if masks is not None:
                m = masks[i]
                m = m[owner] if owner is not None else m.expand(output.shape[0], -1)
                if against is not None:
                    output, err = MaskedPoint.apply(output, m, against[i])
                    record.append(err)
                    return output
                output = output * m[:, :, None, None].to(output.dtype)
            if record is not None:
                record.append(output)
            return output if masks is not None or relu else None
        return fn

    try:
        for i, p in enumerate(points):
            handles.append(model.get_submodule(p.module).register_forward_hook(hook(i)))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def point_widths(model: nn.Module, points: Sequence[MaskPoint], input_shape: Sequence[int]) -> list[int]:
    """Number of channels at each point, from one forward pass of a zero image."""
    acts: list[Tensor] = []
    param = next(model.parameters())
    with masked(model, points, record=acts):
        model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    if len(acts) != len(points):
        counts = {p.name: 0 for p in points}
        for p in points:  # which point ran other than once
            seen: list[Tensor] = []
            with masked(model, [p], record=seen):
                model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
            counts[p.name] = len(seen)
        bad = next(n for n, c in counts.items() if c != 1)
        raise NadkitError(f"mask point {bad!r} runs {counts[bad]} times per forward (a module used more than once, "
                          "or not at all); mask a module that runs once, e.g. from nadkit.mask_points(model, x)")
    flat = next((p for p, a in zip(points, acts) if not isinstance(a, Tensor) or a.dim() != 4), None)
    if flat is not None:
        got = acts[points.index(flat)]
        shape = list(got.shape) if isinstance(got, Tensor) else type(got).__name__
        raise NadkitError(f"mask point {flat.name!r} puts out {shape}, not a [batch, channels, H, W] feature map; "
                          "mask a convolutional module's output (see nadkit.mask_points(model, x).left_out)")
    return [a.shape[1] for a in acts]


def probe_points(model: nn.Module, points: Sequence[MaskPoint], input_shape: Sequence[int]) -> None:
    """One line unless each point's module can be masked: a 4-D output, one call per forward, not
    changed in place afterwards (``nadkit.findpoints.probe``); points with ``relu`` take a copy."""

    outputs = probe(model, input_shape)
    for p in points:
        o = outputs.get(p.module)
        if o is None:
            raise NadkitError(f"mask point {p.name!r}: module {p.module!r} does not run in the network's forward pass; "
                              "mask a module that runs, e.g. from nadkit.mask_points(model, x)")
        if o.problem and not (p.relu and o.changed_in_place and o.calls == 1 and o.shape and len(o.shape) == 4):
            raise NadkitError(f"mask point {p.name!r} cannot be masked: {o.problem}; choose another module (see "
                              "nadkit.mask_points(model, x).left_out)")
