"""Sub-architectures: the result type of NAD and its safe on-disk form.

A result folder holds ``masks.safetensors`` (one float32 tensor per mask point, key = point name,
shape [classes, channels], values = sigmoid of the logits) and ``meta.json`` (classes, names,
points in order, configuration, per-class status, nadkit version). While a run is under way,
each finished class is written atomically to ``partial/`` so that a killed run resumes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .errors import NadkitError
from .points import MaskPoint, point_widths


def _atomic(path: Path, write) -> None:
    """Write ``path`` via a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _read_masks(path: Path) -> dict[str, Tensor]:
    if not path.exists():
        raise NadkitError(f"{path} not found; run `nadkit disentangle ... --out {path.parent}` first")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise NadkitError(f"{path} is not a readable safetensors file ({e}); delete it and re-run nadkit disentangle") from e


@dataclass
class SubArchitectures:
    """Per-class continuous masks at every mask point, with what produced them."""

    masks: dict[str, Tensor]
    classes: list[int]
    class_names: list[str]
    config: dict
    status: dict[str, dict]

    @property
    def points(self) -> list[str]:
        return list(self.masks)

    def binary(self) -> list[Tensor]:
        """Eq. 16: the kept channels (mask > 0.5), [classes, channels] per point, in point order."""
        return [m > 0.5 for m in self.masks.values()]

    def kept(self) -> Tensor:
        """Fraction of channels kept, [classes, points]."""
        return torch.stack([b.float().mean(1) for b in self.binary()], 1)

    def row(self, cls: int) -> int:
        """Row of class id ``cls`` in the mask tensors."""
        return self.classes.index(cls)

    def check(self, model: nn.Module, points: Sequence[MaskPoint], input_shape: Sequence[int]) -> None:
        """Raise a one-line error unless these masks fit ``model`` at ``points`` (names and widths)."""
        names = [p.name for p in points]
        if names != self.points:
            diff = next((f"{a!r} vs {b!r}" for a, b in zip(self.points, names) if a != b),
                        f"{len(self.points)} vs {len(names)} points")
            raise NadkitError(f"these masks are for other mask points ({diff}); were they learned on another network?")
        widths = point_widths(model, points, input_shape)
        for name, w in zip(names, widths):
            if self.masks[name].shape[1] != w:
                raise NadkitError(f"masks at point {name!r} have {self.masks[name].shape[1]} channels, the network "
                                  f"has {w}; were they learned on another network?")

    def save(self, folder: Path | str) -> Path:
        from . import __version__

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.float().contiguous() for k, v in self.masks.items()}
        _atomic(folder / "masks.safetensors", lambda p: save_file(tensors, str(p)))
        meta = {"nadkit": __version__, "classes": self.classes, "class_names": self.class_names,
                "points": self.points, "config": self.config, "status": self.status}
        _atomic(folder / "meta.json", lambda p: p.write_text(json.dumps(meta, indent=1) + "\n"))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> "SubArchitectures":
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            raise NadkitError(f"{folder} holds no sub-architectures (no meta.json); run nadkit disentangle --out {folder}")
        try:
            meta = json.loads(meta_path.read_text())
            points, classes = meta["points"], meta["classes"]
        except (ValueError, KeyError) as e:
            raise NadkitError(f"{meta_path} is corrupt ({e}); delete {folder} and re-run nadkit disentangle") from e
        tensors = _read_masks(folder / "masks.safetensors")
        if set(tensors) != set(points):
            raise NadkitError(f"{folder}/masks.safetensors does not match meta.json (points differ); re-run disentangle")
        bad = [p for p in points if tensors[p].ndim != 2 or tensors[p].shape[0] != len(classes)]
        if bad:
            raise NadkitError(f"masks at point {bad[0]!r} are not [{len(classes)} classes, channels]; re-run disentangle")
        return cls({p: tensors[p] for p in points}, classes, meta["class_names"], meta["config"], meta["status"])


HISTORY = "history."  # key prefix of a class's optimisation history in its partial file


def save_history(folder: Path | str, history: list[dict[str, Tensor]], points: Sequence[str]) -> None:
    """``history.safetensors``: per class, the channels flipped at each step, ``flips`` [classes,
    steps, points] (zero-padded after a class stopped), and the binarised masks every few steps,
    ``snap.POINT`` [classes, snapshots, channels] (the last repeated after a class stopped)."""
    if not history or "flips" not in history[0]:
        return
    steps = max(h["flips"].shape[0] for h in history)
    out = {"flips": torch.stack([torch.nn.functional.pad(h["flips"], (0, 0, 0, steps - h["flips"].shape[0]))
                                 for h in history])}
    for p in points:
        snaps = [h.get(f"snap.{p}") for h in history]
        if snaps[0] is not None:
            n = max(s.shape[0] for s in snaps)
            out[f"snap.{p}"] = torch.stack([torch.cat([s, s[-1:].expand(n - s.shape[0], -1)]) for s in snaps])
    _atomic(Path(folder) / "history.safetensors",
            lambda path: save_file(out, str(path), metadata={"points": json.dumps(list(points))}))


def load_history(folder: Path | str) -> dict[str, Tensor] | None:
    """The history saved by ``save_history``, or None when the run kept none."""
    path = Path(folder) / "history.safetensors"
    return load_file(str(path)) if path.exists() else None


class PartialRun:
    """Finished classes of a run in progress, one atomically written file each, keyed by config."""

    def __init__(self, folder: Path | str, config: dict, create: bool = True):
        """``create``: clear finished classes of another configuration and record this one (done by
        one process only, when several share the folder)."""
        self.dir = Path(folder) / "partial"
        self.config = config
        if not create:
            return
        cfg_path = self.dir / "config.json"
        if cfg_path.exists() and json.loads(cfg_path.read_text()) != config:
            shutil.rmtree(self.dir)  # another configuration: its classes cannot be reused
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic(cfg_path, lambda p: p.write_text(json.dumps(config, indent=1)))

    def done(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("class-*.safetensors"))

    def save(self, cls: int, masks: dict[str, Tensor], status: dict, history: dict[str, Tensor] | None = None) -> None:
        tensors = {k: v.float().contiguous() for k, v in masks.items()}
        tensors.update({f"{HISTORY}{k}": v.contiguous() for k, v in (history or {}).items()})
        meta = {"status": json.dumps(status), "points": json.dumps(list(masks))}  # safetensors sorts keys
        _atomic(self.dir / f"class-{cls}.safetensors", lambda p: save_file(tensors, str(p), metadata=meta))

    def load(self, cls: int) -> tuple[dict[str, Tensor], dict]:
        from safetensors import safe_open

        path = self.dir / f"class-{cls}.safetensors"
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            return {k: f.get_tensor(k) for k in json.loads(meta["points"])}, json.loads(meta["status"])

    def load_history(self, cls: int) -> dict[str, Tensor]:
        """The optimisation history saved with class ``cls`` (empty if none was kept)."""
        from safetensors import safe_open

        with safe_open(str(self.dir / f"class-{cls}.safetensors"), "pt") as f:
            return {k[len(HISTORY):]: f.get_tensor(k) for k in f.keys() if k.startswith(HISTORY)}

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
