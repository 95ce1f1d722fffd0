"""A run in progress: each finished class written atomically to ``partial/`` (its masks, status
and optimisation history, with its run's configuration and the masks' sha256), so that a killed
run resumes and a damaged file or one of another run is computed again; and the history's tensors
as a result folder stores them (``history.safetensors``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import save_file
from torch import Tensor

from .errors import NadkitError
from .files import atomic as _atomic
from .subarch import tensors_sha256


HISTORY = "history."  # key prefix of a class's optimisation history in its partial file


def history_tensors(history: list[dict[str, Tensor]], points: Sequence[str]) -> dict[str, Tensor]:
    """The tensors of ``history.safetensors``: per class, the channels flipped at each step,
    ``flips`` [classes, steps, points] (zero-padded after a class stopped), and the binarised
    masks every few steps, ``snap.POINT`` [classes, snapshots, channels] (the last one repeated
    after a class stopped). Empty when the run kept no history."""
    if not history or "flips" not in history[0]:
        return {}
    steps = max(h["flips"].shape[0] for h in history)
    out = {"flips": torch.stack([torch.nn.functional.pad(h["flips"], (0, 0, 0, steps - h["flips"].shape[0]))
                                 for h in history])}
    for p in points:
        snaps = [h.get(f"snap.{p}") for h in history]
        if snaps[0] is not None:
            n = max(s.shape[0] for s in snaps)
            out[f"snap.{p}"] = torch.stack([torch.cat([s, s[-1:].expand(n - s.shape[0], -1)]) for s in snaps])
    return out


class PartialRun:
    """Finished classes of a run in progress, one atomically written file each. Each file carries
    its run's configuration and the sha256 of its masks, so a damaged file or one of another run
    is never taken for a finished class (it is computed again)."""

    def __init__(self, folder: Path | str, config: dict, create: bool = True):
        """``create``: drop finished classes of another configuration and damaged ones, and record
        this configuration (done by one process only, when several share the folder)."""
        self.dir = Path(folder) / "partial"
        self.config = config
        if not create:
            return
        if self.dir.exists() and not self.dir.is_dir():
            raise NadkitError(f"{self.dir} is a file, not a folder of finished classes; remove it and re-run")
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in self.dir.glob("class-*.safetensors"):
            if self._read(path) is None:
                path.unlink()  # another configuration's or damaged: its class cannot be reused
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)  # left by a killed run
        _atomic(self.dir / "config.json", lambda p: p.write_text(json.dumps(config, indent=1)))

    @staticmethod
    def recorded_config(folder: Path | str) -> dict | None:
        """The configuration recorded in ``folder/partial/config.json``; None when absent or unreadable."""
        try:
            cfg = json.loads((Path(folder) / "partial" / "config.json").read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return cfg if isinstance(cfg, dict) else None

    def _read(self, path: Path) -> tuple[dict[str, Tensor], dict] | None:
        """(masks, status) of a class file of this configuration whose masks match its checksum; else None."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if json.loads(meta.get("config", "null")) != self.config:
                    return None
                points = json.loads(meta["points"])
                history = sorted(k for k in f.keys() if k.startswith(HISTORY))
                tensors = {k: f.get_tensor(k) for k in points + history}  # in the order they were written
                status = json.loads(meta["status"])
        except Exception:  # noqa: BLE001 - truncated, bit-flipped or not a safetensors file at all
            return None
        if tensors_sha256(tensors) != meta.get("sha256") or not isinstance(status, dict):
            return None
        return {k: tensors[k] for k in points}, status

    def present(self) -> list[int]:
        """Classes that have a file, whole or not."""
        found = []
        for path in self.dir.glob("class-*.safetensors"):
            try:
                found.append(int(path.stem.split("-", 1)[1]))
            except ValueError:
                continue
        return sorted(found)

    def done(self) -> list[int]:
        """Classes whose file is whole and of this configuration."""
        return [c for c in self.present() if self._read(self.dir / f"class-{c}.safetensors") is not None]

    def save(self, cls: int, masks: dict[str, Tensor], status: dict, history: dict[str, Tensor] | None = None) -> None:
        tensors = {k: v.float().contiguous() for k, v in masks.items()}
        tensors.update({f"{HISTORY}{k}": history[k].contiguous() for k in sorted(history or {})})
        meta = {"status": json.dumps(status), "points": json.dumps(list(masks)),  # safetensors sorts keys
                "config": json.dumps(self.config), "sha256": tensors_sha256(tensors)}
        _atomic(self.dir / f"class-{cls}.safetensors", lambda p: save_file(tensors, str(p), metadata=meta))

    def load(self, cls: int) -> tuple[dict[str, Tensor], dict]:
        got = self._read(self.dir / f"class-{cls}.safetensors")
        if got is None:
            raise NadkitError(f"{self.dir}/class-{cls}.safetensors is damaged or of another run; delete it and "
                              "re-run the same nadkit disentangle command to compute it again")
        return got

    def load_history(self, cls: int) -> dict[str, Tensor]:
        """The optimisation history saved with class ``cls`` (empty if none was kept)."""
        from safetensors import safe_open

        with safe_open(str(self.dir / f"class-{cls}.safetensors"), "pt") as f:
            return {k[len(HISTORY):]: f.get_tensor(k) for k in f.keys() if k.startswith(HISTORY)}

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
