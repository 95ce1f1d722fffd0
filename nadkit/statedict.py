"""State dicts: read safely (safetensors, or .pth with ``weights_only``), checked against a
network before loading, and hashed; shared by the embedded, paper-scale and any-network loaders."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import NadkitError


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a network's state (names, dtypes, shapes and values, in order): which network
    masks were learned on, whatever file or seed its weights came from."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fit_state(model: nn.Module, state: dict, source, arch: str) -> nn.Module:
    """Load ``state`` into ``model`` after checking names and shapes; one line on any mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        what = (f"{len(missing)} missing (e.g. {missing[:1]})" if missing else "") + \
               (f" {len(unexpected)} unexpected (e.g. {unexpected[:1]})" if unexpected else "") + \
               (f" {len(shapes)} of other shape (e.g. {shapes[:1]})" if shapes else "")
        raise NadkitError(f"weights {source} do not fit the {arch} network: {what.strip()}; pass weights of a {arch}")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise NadkitError(f"weights {source} hold NaN or infinite values (in {bad!r}); the file is damaged, re-create it")
    model.load_state_dict(state)
    return model


def read_state(path: Path | str) -> dict:
    """A state dict from safetensors, or from a .pth/.pt file read with ``weights_only=True`` (a file
    that holds anything but tensors, such as a pickled model or code, is refused unread)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise NadkitError(f"weights file {path} not found; pass an existing --weights FILE, 'torchvision' or 'none'")
    if path.is_dir():
        raise NadkitError(f"weights {path} is a folder; pass a state dict file (.safetensors or .pth)")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        with warnings.catch_warnings():  # torch warns of the pickle protocol before refusing: one line is ours
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to parse an untrusted file is bad input
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()  # torch bolds part of its message
        reason = (text.splitlines() or [type(e).__name__])[0][:200]
        raise NadkitError(f"weights file {path} is not a readable plain state dict ({type(e).__name__}: {reason}); "
                          "pass a .safetensors file or a .pth saved with torch.save(model.state_dict())") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise NadkitError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise NadkitError(f"weights file {path} is not a plain state dict: entry {str(odd[0])[:60]!r} is not a tensor")
    return {k.removeprefix("module."): v for k, v in state.items()}
