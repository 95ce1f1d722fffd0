"""Networks from anywhere: ``torchvision:NAME``, ``timm:NAME`` and ``package.module:function``.

Built without downloading anything. Weights come from a file (safetensors, or a ``.pth`` read with
``weights_only=True``), from the library's own cache when it holds them (torchvision's hub folder,
timm's Hugging Face cache), or not at all (``none``: random, from a fixed seed). A Python callable
returns its network as it likes; it gets ``num_classes=`` when it takes that argument.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .errors import NadkitError
from .sanity import untrained
from .statedict import fit_state, read_state

KINDS = ("torchvision", "timm")


def is_external(arch: str) -> bool:
    """Whether ``arch`` names a network by string (``kind:name``) rather than an embedded topology."""
    return ":" in arch


def split_arch(arch: str) -> tuple[str, str]:
    """``("torchvision" | "timm" | "package.module", name)``; one line if malformed."""
    kind, _, name = arch.partition(":")
    if not kind or not name or ":" in name:
        raise NadkitError(f"arch {arch!r} is malformed; use torchvision:NAME, timm:NAME or package.module:function")
    return kind, name


def _torchvision(name: str, num_classes: int) -> nn.Module:
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)  # the classification models only
    if name not in known:
        near = [m for m in known if name.lower() in m][:5]
        raise NadkitError(f"torchvision has no classification model {name!r}" +
                          (f"; did you mean {', '.join(near)}?" if near else "; see torchvision.models.list_models()"))
    return tvm.get_model(name, weights=None, num_classes=num_classes)


def _timm(name: str, num_classes: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise NadkitError(f"timm:{name} needs timm; pip install 'nadkit[timm]'") from None
    if not timm.is_model(name):
        near = timm.list_models(f"*{name}*")[:5]
        raise NadkitError(f"timm has no model {name!r}" + (f"; did you mean {', '.join(near)}?" if near else ""))
    return timm.create_model(name, pretrained=False, num_classes=num_classes)


def _callable(path: str, attr: str, num_classes: int) -> nn.Module:
    try:
        module = importlib.import_module(path)
    except ImportError as e:
        raise NadkitError(f"cannot import module {path!r} for --arch {path}:{attr} ({e}); is it on PYTHONPATH?") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise NadkitError(f"module {path!r} has no callable {attr!r}; --arch takes package.module:function")
    try:
        takes = "num_classes" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes = False
    model = fn(num_classes=num_classes) if takes else fn()
    if not isinstance(model, nn.Module):
        raise NadkitError(f"{path}:{attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def build_external(arch: str, num_classes: int) -> nn.Module:
    """A freshly built network from its arch string (random weights, not yet seeded)."""
    kind, name = split_arch(arch)
    if kind == "torchvision":
        return _torchvision(name, num_classes)
    if kind == "timm":
        return _timm(name, num_classes)
    return _callable(kind, name, num_classes)


def cached_weights(arch: str) -> Path:
    """Where the library's own cache keeps ``arch``'s pretrained weights; one line if absent."""
    kind, name = split_arch(arch)
    if kind == "torchvision":
        import torchvision.models as tvm

        url = tvm.get_model_weights(name).DEFAULT.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if path.exists():
            return path
        raise NadkitError(f"no weights for {arch} in {path.parent} (nothing is downloaded); pass --weights FILE, or "
                          f"--weights none for random ones")
    if kind == "timm":
        import timm
        from huggingface_hub import try_to_load_from_cache

        hub = timm.models.get_pretrained_cfg(name)
        repo = getattr(hub, "hf_hub_id", None) if hub is not None else None
        for file in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, file) if repo else None
            if isinstance(found, str):
                return Path(found)
        raise NadkitError(f"no weights for {arch} in timm's cache (nothing is downloaded); pass --weights FILE, or "
                          f"--weights none for random ones")
    raise NadkitError(f"{arch} builds its own weights; --weights takes a FILE or none for it")


def load_external(arch: str, weights: str | Path | None, num_classes: int) -> nn.Module:
    """The network ``arch`` with ``weights``: None (the cache; a callable's own), "none", or a file."""

    model = untrained(lambda: build_external(arch, num_classes))
    if weights == "none" or (weights is None and split_arch(arch)[0] not in KINDS):
        return model
    path = cached_weights(arch) if weights is None else Path(weights)
    return fit_state(model, read_state(path), f"file {path}", arch)


def input_channels(model: nn.Module) -> int:
    """The channels the network's first convolution takes."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise NadkitError(f"{type(model).__name__} has no Conv2d; NAD masks the channels of a CNN")
    return conv.in_channels


def check_channels(model: nn.Module, shape: Sequence[int]) -> None:
    """One line when the images' channels are not those the network's first convolution takes."""
    try:
        wants = input_channels(model)
    except NadkitError:
        return
    if shape[0] != wants:
        hint = " (grey images for a colour network: images.expand(-1, 3, -1, -1))" if shape[0] == 1 and wants == 3 else ""
        raise NadkitError(f"the data's images have {shape[0]} channels, the network takes {wants}; give images of "
                          f"{wants} channels, preprocessed as for training{hint}")
