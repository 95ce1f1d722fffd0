"""The checks of NAD's settings, shared by ``NAD`` (the library) and the CLI's pipeline: each
refuses a value that cannot make a meaningful run, in one line that says what to give instead."""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .errors import NadkitError

# "contrast": the official objective on the class's images plus, on as many images of the other
# classes, a term that the masked network does not name the class (NAD that sees other classes)
OBJECTIVES = ("official", "paper", "contrast")
# What the masked network must keep: the image's label (the authors'), or the original network's
# own prediction, so that NAD runs on every step even on a network that gets nothing right (the
# sanity checks' untrained and randomised networks).
TARGETS = ("label", "prediction")
PRECISIONS = ("fp32", "bf16")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_beta(beta: Any) -> None:
    if beta != "elbow" and (not _is_number(beta) or not math.isfinite(beta) or beta <= 0):
        raise NadkitError(f"beta must be a finite number > 0 or 'elbow', got {beta!r}; the authors use 0.02-5.0, "
                          "'elbow' picks one by the Elbow sweep")


def check_choice(what: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise NadkitError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def check_nad_settings(beta: Any, lr: Any, steps: Any, batch_per_class: Any, objective: Any, target: Any,
                       precision: Any, workers: Any = 0, seed: Any = 0) -> None:
    """Refuse, before any work, settings of NAD that cannot make a meaningful run."""
    check_beta(beta)
    if not _is_number(lr) or not math.isfinite(lr) or lr <= 0:
        raise NadkitError(f"lr must be > 0 and finite, got {lr!r}; the authors use 0.1")
    if steps != "auto" and (not _is_int(steps) or steps < 1):
        raise NadkitError(f"steps must be 'auto' or an integer >= 1, got {steps!r}")
    if not _is_int(batch_per_class) or batch_per_class < 1:
        raise NadkitError(f"batch-per-class must be an integer >= 1, got {batch_per_class!r}")
    if not _is_int(workers) or workers < 0:
        raise NadkitError(f"workers must be >= 0 (0: read images in this process), got {workers!r}")
    if not _is_int(seed):
        raise NadkitError(f"seed must be an integer, got {seed!r}")
    check_choice("objective", objective, OBJECTIVES)
    check_choice("target", target, TARGETS)
    check_choice("precision", precision, PRECISIONS)


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` checked against this machine: one line if it is malformed or absent here."""
    text = str(device)
    if not (text == "cpu" or text.startswith("cuda")):
        raise NadkitError(f"unknown device {text!r}; use cpu, cuda or cuda:N")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise NadkitError(f"unknown device {text!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NadkitError(f"device {text!r} asked for but CUDA is not available here; use device='cpu' "
                          "(on the command line: --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise NadkitError(f"device {text!r} asked for but this machine has {torch.cuda.device_count()} GPU(s), "
                          f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters; one line for a model without any (nothing to mask)."""
    param = next(model.parameters(), None)
    if param is None:
        raise NadkitError(f"{type(model).__name__} has no parameters; NAD disentangles a trained CNN")
    if param.device.type == "meta":
        raise NadkitError(f"{type(model).__name__} is on the meta device (no weights); load its weights first, e.g. "
                          "model.to_empty(device='cpu') then model.load_state_dict(...)")
    return param.device


def check_classes(classes: Sequence[Any], n_classes: int) -> list[int]:
    """Class ids, each a whole number within the data's ``n_classes`` classes, none twice."""
    if isinstance(classes, (numbers.Number, str)) or not hasattr(classes, "__iter__"):
        raise NadkitError(f"classes must be a list of class ids, got {classes!r}; e.g. classes=[{classes!r}] "
                          "(or classes=None for all)")
    classes = list(classes)
    if not classes:
        raise NadkitError("no classes to disentangle; pass classes=[...] of the data's class ids (or None for all)")
    bad = [c for c in classes if not isinstance(c, numbers.Integral) or isinstance(c, bool) or not 0 <= c < n_classes]
    if bad:
        raise NadkitError(f"class id {bad[0]!r} is out of range; this data set has classes 0..{n_classes - 1}")
    if len(set(classes)) != len(classes):
        raise NadkitError(f"classes {classes} list a class twice; name each once")
    return [int(c) for c in classes]


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode without gradients within the block, then restored: training mode and
    each parameter's ``requires_grad`` as the caller had them."""
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode
        for p, g in grads.items():
            p.requires_grad_(g)
