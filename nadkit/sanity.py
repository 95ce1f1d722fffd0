"""Sanity checks (Adebayo et al., NeurIPS 2018): the same NAD on networks whose weights carry no
knowledge. A finding that survives them comes from the method, not from the network.

``--weights none`` is the untrained network; ``--weights randomized:K`` is the shipped network with
its top ``K`` blocks re-initialised (cascading randomisation, from the classifier down).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import NadkitError

CONSTANT_SHARE = 0.9  # a sub-architecture naming its class for this share of other classes' images answers
#                      (almost) constantly: never specific, whatever its balanced accuracy
RANDOM_SEED = 0  # "none": the untrained network, drawn from this seed (the shipped networks' own init)
# Cascading randomisation re-draws blocks from another seed: the shipped networks were trained from
# seed 0's initialisation, and the trained features co-adapt with it (the embedded VGG16 with its
# classifier reset to its initial weights still classifies 91% of the test images).
CASCADE_SEED = 1


def untrained(build, seed: int = RANDOM_SEED) -> nn.Module:
    """``build()`` with its random initialisation drawn from ``seed``, leaving the global random
    state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def vgg16_block(key: str) -> int:
    """Blocks of the embedded VGG16 from the top: 0 the classifier, 1 conv block 5, ..., 5 block 1."""
    if key.startswith("classifier"):
        return 0
    m = re.match(r"features\.(?:conv|bn)(\d)_", key)
    if m is None:
        raise ValueError(key)
    return 6 - int(m.group(1))


CASCADES = {"vgg16": (vgg16_block, ("classifier", "block5", "block4", "block3", "block2", "block1"))}


def cascade_names(arch: str) -> tuple[str, ...]:
    """The blocks that ``randomized:1``, ``randomized:2``, ... re-initialise, from the top."""
    if arch not in CASCADES:
        raise NadkitError(f"cascading randomisation is defined for {', '.join(CASCADES)}, not {arch}; "
                          "use --weights none for an untrained network")
    return CASCADES[arch][1]


def randomize_top(model: nn.Module, fresh: nn.Module, arch: str, blocks: int) -> nn.Module:
    """``model`` with the parameters and statistics of its top ``blocks`` blocks taken from the
    untrained ``fresh`` network of the same topology."""
    names = cascade_names(arch)
    if not 1 <= blocks <= len(names):
        raise NadkitError(f"randomized:{blocks}: {arch} has blocks 1..{len(names)} to re-initialise "
                          f"({', '.join(names)} from the top)")
    block_of = CASCADES[arch][0]
    state, new = model.state_dict(), fresh.state_dict()
    model.load_state_dict({k: new[k] if block_of(k) < blocks else v for k, v in state.items()})
    return model


COLLAPSED_POINTS = 0.5  # a run whose masks are empty at more than this share of class-points
CONSTANT_SUBS = 0.5     # ... or whose sub-architectures answer (almost) constantly for more than this share
ONE_CLASS = 0.99        # ... or whose whole network gives one answer for at least this share of its images
MEASURABLE_RULE = (
    f"a run is not measurable when more than {COLLAPSED_POINTS:.0%} of its class-points keep no channel, or more "
    f"than {CONSTANT_SUBS:.0%} of its sub-architectures answer (almost) constantly (the masked network names "
    f"the sub-architecture's class for at least {CONSTANT_SHARE:.0%} of the other classes' images), or the whole "
    f"network answers one class for at least {ONE_CLASS:.0%} of the images")


def others_taken(cross, classes: Sequence[int]) -> np.ndarray:
    """Per sub-architecture: the share of the *other* classes' images it takes for its own class
    (the mean of its row of ``metrics.cross_accuracy`` over the other classes)."""
    m = np.asarray(cross)
    return np.array([np.mean([m[k, d] for d in classes if d != c]) for k, c in enumerate(classes)])


def collapse(binary, confusion=None, cross=None, classes=None) -> dict[str, float]:
    """How far a run can say anything, read from the sub-architectures' own answers: the share of
    (class, point) sub-architectures that keep no channel (an empty point makes the masked network
    answer a constant), from the cross-class accuracy ``cross`` ([sub-architecture, true class]:
    the share of each class's images the masked network names as the sub-architecture's class;
    ``classes`` the sub-architectures' classes, default 0..K-1) the share of sub-architectures
    that answer (almost) constantly (``CONSTANT_SHARE`` of the other classes' images named)
    and the mean share of the other classes' images named, and from the whole network's
    ``confusion`` the share of the test images it gives its most frequent answer (about 1/K on a
    trained network whatever the masks: it says nothing about them, only about the network). A
    part whose input is not given is NaN (not judged)."""
    empty = torch.cat([(b.sum(1) == 0).float() for b in binary])
    out = {"empty class-points": float(empty.mean()), "constant sub-architectures": float("nan"),
           "others named": float("nan"), "top answer share": float("nan")}
    if cross is not None:
        m = np.asarray(cross, dtype=float)
        others = others_taken(m, list(range(len(m))) if classes is None else list(classes))
        out["constant sub-architectures"] = float((others >= CONSTANT_SHARE).mean())
        out["others named"] = float(others.mean())
    if confusion is not None:
        conf = torch.as_tensor(np.asarray(confusion, dtype=float), dtype=torch.float64)
        out["top answer share"] = float(conf.sum(0).max() / conf.sum().clamp_min(1))
    return out


def measurable(c: dict[str, float]) -> tuple[bool, str]:
    """Whether findings can be measured on a run with ``collapse`` ``c``, and if not, why
    (``MEASURABLE_RULE``, the one rule): with most sub-architectures empty or answering constantly,
    or a network that answers one class, every test compares constants."""
    why = []
    if c["empty class-points"] > COLLAPSED_POINTS:
        why.append(f"{100 * c['empty class-points']:.0f}% of class-points keep no channel")
    constant = c.get("constant sub-architectures", float("nan"))
    if np.isfinite(constant) and constant > CONSTANT_SUBS:
        why.append(f"{100 * constant:.0f}% of sub-architectures answer (almost) constantly (name their class for "
                   f">= {100 * CONSTANT_SHARE:.0f}% of other classes' images)")
    top = c.get("top answer share", float("nan"))
    if np.isfinite(top) and top >= ONE_CLASS:
        why.append(f"the network answers one class for {100 * top:.2f}% of images")
    return not why, "; ".join(why)
