"""Finding mask points in any network: every module's output from one small forward pass, the
rule ``--points auto`` applies, and the checks a hand-picked point must pass.

The rule (``auto``): walk the module tree in execution order. A *stage* (an ``nn.Sequential`` that
keeps Sequential's forward, an ``nn.ModuleList`` or ``nn.ModuleDict`` without a forward of its own)
is walked into; any other module that contains a convolution starts a point (a VGG-style conv, a
residual, inverted-residual, ConvNeXt or dense block, a stem conv); the norms, activations and
pools that follow it in the same container move the point to their output (conv -> BN -> ReLU ->
pool is one point, after the pool), except a global pool (an adaptive pool's 1x1 output, or any 1x1
output after a block rather than a bare conv), which never replaces the block before it. So: the stem, every block, VGG's convs after their ReLU (a
block's last after its pool), and the last feature map. A point must put out a [batch, channels,
H, W] tensor, run once per forward, and not be changed in place afterwards; a candidate that fails
falls back to the last one in its run that passes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from .errors import NadkitError


@dataclass(frozen=True)
class MaskPoint:
    """``name`` labels the point in files and figures; ``module`` is the dotted path it hooks;
    ``relu``: the network applies a ReLU to that output functionally (no module to hook), so the
    hook applies it first and records and masks the post-ReLU tensor, as the authors' model does."""

    name: str
    module: str
    relu: bool = False


@dataclass
class Output:
    """What one module put out in the probe forward pass."""

    name: str
    kind: str                  # the module's class name
    shape: tuple | None        # None: not a single tensor
    order: int                 # when the module first returned
    calls: int = 1
    changed_in_place: bool = False

    @property
    def flaw(self) -> str:
        """The problem in a few words (for listings), or ""."""
        if self.problem is None:
            return ""
        return "not 4-D" if self.shape is None or len(self.shape) != 4 else \
            f"runs {self.calls}x" if self.calls > 1 else "changed in place later"

    @property
    def problem(self) -> str | None:
        """Why this module cannot be a mask point, or None."""
        if self.shape is None or len(self.shape) != 4:
            return f"its output is {'not a tensor' if self.shape is None else list(self.shape)}, not [batch, channels, H, W]"
        if self.calls > 1:
            return f"it runs {self.calls} times per forward pass (a point must run once)"
        if self.changed_in_place:
            return "its output is changed in place afterwards (by an in-place op such as ReLU(inplace=True))"
        return None


@torch.no_grad()
def probe(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Output]:
    """Every submodule's output shape, call count and in-place fate, from one forward pass of a
    zero image of ``input_shape`` (channels, H, W)."""
    seen: dict[str, Output] = {}
    kept: list[tuple[str, Tensor, int]] = []
    handles = []

    def hook(name: str):
        def fn(module: nn.Module, inputs, output) -> None:
            if name in seen:
                seen[name].calls += 1
                return
            tensor = isinstance(output, Tensor)
            seen[name] = Output(name, type(module).__name__, tuple(output.shape) if tensor else None, len(seen))
            if tensor:
                kept.append((name, output, output._version))
        return fn

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name)))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(2, *input_shape, device=device))
    except Exception as e:  # noqa: BLE001 - a network that cannot run at this size is bad input
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise NadkitError(f"the network does not run on {list(input_shape)} images ({type(e).__name__}: {reason}); "
                          "is it a CNN for this data set's images?") from None
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for name, out, version in kept:
        seen[name].changed_in_place = out._version != version
    return seen


def _is_stage(module: nn.Module) -> bool:
    if isinstance(module, nn.Sequential):
        return type(module).forward is nn.Sequential.forward
    return isinstance(module, (nn.ModuleList, nn.ModuleDict)) and type(module).forward is nn.Module.forward


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def auto_points(model: nn.Module, input_shape: Sequence[int]) -> list[MaskPoint]:
    """The mask points the rule in this module's docstring picks, in execution order."""
    outputs = probe(model, input_shape)
    runs: list[list[str]] = []

    def order(name: str) -> float:  # a ModuleList never runs itself: when its first member does
        inside = [o.order for n, o in outputs.items() if n == name or n.startswith(name + ".")]
        return min(inside, default=float("inf"))

    def walk(module: nn.Module, prefix: str) -> None:
        children = [(f"{prefix}{n}", c) for n, c in module.named_children() if order(f"{prefix}{n}") < float("inf")]
        run: list[str] | None = None
        for name, child in sorted(children, key=lambda nc: order(nc[0])):
            if _is_stage(child):
                run = None
                walk(child, name + ".")
            elif outputs[name].shape is None or len(outputs[name].shape) != 4:
                run = None
            elif _has_conv(child):
                run = [name]
                runs.append(run)
            elif run is not None and _global(outputs[name]) and not _global(outputs[run[0]]) and \
                    (outputs[name].kind.startswith("Adaptive") or not isinstance(modules[run[0]], nn.Conv2d)):
                run = None  # a global pool's 1x1 output never replaces the feature map of the block before it
            elif run is not None:
                run.append(name)

    modules = dict(model.named_modules())
    walk(model, "")
    picks = [next((n for n in reversed(run) if outputs[n].problem is None), None) for run in runs]
    names = sorted({_outermost(model, outputs, n) for n in picks if n is not None}, key=lambda n: outputs[n].order)
    if not names:
        raise NadkitError(f"found no mask point in {type(model).__name__}: no module that contains a Conv2d puts out "
                          "[batch, channels, H, W]; name the points: nadkit.mask_points(model, x, names=[...]) (on the "
                          "command line: --points a.b,c.d)")
    return [MaskPoint(n, n) for n in names]


def _global(o: Output) -> bool:
    """A 1x1 output (a global pool's): no space left for a hit rate."""
    return o.shape is not None and len(o.shape) == 4 and o.shape[2] * o.shape[3] == 1


def _outermost(model: nn.Module, outputs: dict[str, Output], name: str) -> str:
    """The point named by the conv unit whose output it is: ``stem`` for ``stem.2`` when ``stem`` is
    a Sequential with one conv (conv -> norm -> activation) that ends in it."""
    while "." in name:
        parent = name.rsplit(".", 1)[0]
        members = [f"{parent}.{n}" for n, _ in model.get_submodule(parent).named_children()]
        last = max((m for m in members if m in outputs), key=lambda m: outputs[m].order)
        unit = model.get_submodule(parent)
        convs = sum(isinstance(m, nn.Conv2d) for m in unit.modules())
        if not isinstance(unit, nn.Sequential) or convs != 1 or last != name or parent not in outputs \
                or outputs[parent].problem is not None:
            break
        name = parent
    return name


def named_points(model: nn.Module, names: Sequence[str], input_shape: Sequence[int]) -> list[MaskPoint]:
    """The points ``names`` (module paths), each checked: it exists and it can be masked."""
    outputs = probe(model, input_shape)
    modules = dict(model.named_modules())
    if len(set(names)) != len(names):
        raise NadkitError(f"--points names a module twice ({', '.join(names)})")
    for n in names:
        if n not in modules:
            near = difflib.get_close_matches(n, [m for m in modules if m], n=3)
            raise NadkitError(f"the network has no module {n!r}" + (f"; did you mean {', '.join(near)}?" if near else
                                                                      "; `nadkit points --arch ...` lists them"))
        if n not in outputs:
            raise NadkitError(f"module {n!r} does not run in the network's forward pass; pick another point")
        if outputs[n].problem:
            raise NadkitError(f"module {n!r} cannot be a mask point: {outputs[n].problem}")
    return [MaskPoint(n, n) for n in sorted(names, key=lambda n: outputs[n].order)]


def resolve_points(model: nn.Module, points: str | Sequence[str], input_shape: Sequence[int]) -> list[MaskPoint]:
    """``"auto"``, ``"a.b,c.d"`` or a list of module names -> mask points."""
    if points == "auto":
        return auto_points(model, input_shape)
    names = [p.strip() for p in points.split(",")] if isinstance(points, str) else list(points)
    if not names or not all(names):
        raise NadkitError(f"--points {points!r} names no module; use auto or a comma-separated list of module names")
    return named_points(model, names, input_shape)


def candidates(model: nn.Module, input_shape: Sequence[int]) -> list[Output]:
    """Every module that puts out a 4-D tensor, in execution order (what ``nadkit points`` lists)."""
    outputs = probe(model, input_shape)
    return sorted((o for o in outputs.values() if o.shape is not None and len(o.shape) == 4), key=lambda o: o.order)
