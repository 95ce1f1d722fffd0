"""One configuration of a NAD run in two typed objects: the method's settings (``Method``: what
changes the masks) and the engine's (``Engine``: where and how fast they are computed), and the
one way to write them into a result's configuration and read them back (``to_config``,
``from_config``), used by ``NAD.config`` and the CLI's jobs alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Sequence

import torch
from torch import Tensor

from .errors import NadkitError


@dataclass(frozen=True)
class Convergence:
    """When a class's masks have stopped changing: every ``window`` steps, the binarised masks are
    compared with those of the last check; the class has converged when, at every point, at most
    ``tol`` of the channels (rounded down, at least one) differ, at ``patience`` checks in a row.
    ``max_steps`` is the guard.

    Net change, not every flip: Eq. 15 moves each point by a fixed step forever, so a channel
    whose gate sits at the threshold flips back and forth every step at any stage; counting it
    would never stop. Measured on the embedded VGG16 (beta 0.3): after 400 steps 0-3% of a
    point's channels differ from 100 steps before and two seeds agree at 0.96-1.00 (at 200 steps:
    up to 19% and 0.50), while 20-100% of the channels flip at least once per 100 steps."""

    max_steps: int = 2000
    window: int = 100
    tol: float = 0.05
    patience: int = 2

    def allowed(self, widths: Sequence[int]) -> Tensor:
        return torch.tensor([max(1, int(self.tol * w)) for w in widths])


def check_convergence(convergence: Convergence, snapshot_every: int | None) -> None:
    """One line unless ``convergence`` is a usable ``Convergence`` and ``snapshot_every`` None or >= 1."""
    if not isinstance(convergence, Convergence):
        raise NadkitError(f"convergence must be a nadkit.disentangle.Convergence, got a {type(convergence).__name__}")
    c = convergence
    if c.max_steps < 1 or c.window < 1 or c.patience < 1 or not 0 <= c.tol < 1:
        raise NadkitError(f"{c} is not usable: max_steps, window and patience must be >= 1, tol in [0, 1)")
    if snapshot_every is not None and (not isinstance(snapshot_every, int) or snapshot_every < 1):
        raise NadkitError(f"snapshot_every must be None or an integer >= 1, got {snapshot_every!r}")


class _DefaultBeta(float):
    """NAD's default beta, told apart from a beta the caller gave (the untuned-beta warning)."""


DEFAULT_BETA = _DefaultBeta(0.02)


def is_default_beta(beta) -> bool:
    """Whether ``beta`` is NAD's default, not one the caller gave (the untuned-beta warning)."""
    return isinstance(beta, _DefaultBeta)


@dataclass(frozen=True)
class Method:
    """The method's settings, each of which changes the masks (and is recorded in a result).

    beta: the sparsity weight (> 0), or ``"elbow"`` (the Elbow sweep picks it in ``fit``). lr: the
    step of Eq. 15. steps: ``"auto"`` (until the masks stop changing, as ``convergence`` says) or
    an int. batch_per_class: images of each class per step. objective: ``"official"``,
    ``"paper"`` or ``"contrast"``. target: ``"label"`` or ``"prediction"``. seed: every random draw
    comes from ``(seed, class)``. convergence: when ``steps="auto"`` stops a class, and its guard."""

    beta: float | str = DEFAULT_BETA
    lr: float = 0.1
    steps: int | str = "auto"
    batch_per_class: int = 16
    objective: str = "official"
    target: str = "label"
    seed: int = 0
    convergence: Convergence = Convergence()


@dataclass(frozen=True)
class Engine:
    """The engine's settings: where and how NAD computes (the masks do not depend on them beyond
    the last bits of floating point; ``precision`` and ``fused`` are recorded for that reason).

    device: "cpu", "cuda", "cuda:N" (default: where the model is). workers: image-reading
    processes (image folders). precision: ``"fp32"`` or ``"bf16"`` (autocast, GPUs).
    channels_last: convolutions in channels_last layout (default: yes). decode_on_device: image
    folders: JPEGs decoded on the device (nvJPEG). fused: BatchNorms folded into the convolutions
    and each point's mask product and error in one function (the same masks up to the last bits).
    snapshot_every: keep the binarised masks every this many steps (``NADResult.snapshots``).
    input_shape: one image's (C, H, W) (default: read from the data ``fit`` is given)."""

    device: str | torch.device | None = None
    workers: int = 0
    precision: str = "fp32"
    channels_last: bool | None = None
    decode_on_device: bool = False
    fused: bool = True
    snapshot_every: int | None = None
    input_shape: Sequence[int] | None = None


METHOD_FIELDS = tuple(f.name for f in fields(Method))
ENGINE_FIELDS = tuple(f.name for f in fields(Engine))


def method_of(method: Method | None, settings: dict) -> Method:
    """``method`` (default ``Method()``) with ``settings`` (keywords of ``NAD``) put in; one line
    for a keyword that is the engine's or no setting at all."""
    for name in settings:
        if name in ENGINE_FIELDS:
            raise NadkitError(f"{name} is a setting of the engine, not of the method: "
                              f"NAD(..., engine=nadkit.Engine({name}=...))")
        if name not in METHOD_FIELDS:
            raise NadkitError(f"NAD has no setting {name!r}; the method's are {', '.join(METHOD_FIELDS)} "
                              f"(or method=nadkit.Method(...)), the engine's go in engine=nadkit.Engine(...)")
    if method is not None and not isinstance(method, Method):
        raise NadkitError(f"method must be a nadkit.Method, got a {type(method).__name__}")
    base = method if method is not None else Method()
    return Method(**{**{f: getattr(base, f) for f in METHOD_FIELDS}, **settings})


def to_config(method: Method, engine: Engine, device: str) -> dict:
    """The settings as a result's configuration records them (``device``: the device's type),
    keys in the order results have always had: absent where a setting is at its old default
    (no ``convergence`` for a fixed number of steps, no ``target`` for "label", no ``fused``
    for the reference arithmetic)."""
    cfg = {"objective": method.objective, "beta": method.beta, "lr": method.lr, "steps": method.steps,
           "batch_per_class": method.batch_per_class, "seed": method.seed, "device": device,
           "precision": engine.precision}
    if method.steps == "auto":
        cfg["convergence"] = asdict(method.convergence)
    if engine.snapshot_every:
        cfg["snapshot_every"] = engine.snapshot_every
    if method.target != "label":
        cfg["target"] = method.target
    if engine.fused:  # absent: the reference arithmetic (results made before nadkit fused the step)
        cfg["fused"] = True
    return cfg


def from_config(cfg: dict) -> tuple[Method, Engine]:
    """The settings a result's configuration records (the inverse of ``to_config``)."""
    steps = cfg["steps"]
    convergence = Convergence(**cfg["convergence"]) if isinstance(cfg.get("convergence"), dict) else \
        Convergence(max_steps=steps) if isinstance(steps, int) else Convergence()
    method = Method(beta=cfg["beta"], lr=cfg["lr"], steps=steps, batch_per_class=cfg["batch_per_class"],
                    objective=cfg.get("objective", "official"), target=cfg.get("target", "label"),
                    seed=cfg.get("seed", 0), convergence=convergence)
    shape = cfg.get("input_shape")
    engine = Engine(device=cfg.get("device"), precision=cfg.get("precision", "fp32"), fused=bool(cfg.get("fused")),
                    snapshot_every=cfg.get("snapshot_every"), input_shape=tuple(shape) if shape else None)
    return method, engine
