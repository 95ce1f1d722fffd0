"""What the book's chapters share: the profile (full or smoke), and results cached on disk keyed
by their configuration, so that every chapter and every rebuild reuses what another computed.

A chapter works on *sources*: embedded network names (computed here, once) or folders written by
``nadkit disentangle`` elsewhere (for example on ImageNet), given with the ``results`` parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import pipeline
from .data import REPO_ROOT
from .metrics import class_accuracy, cross_accuracy, hit_rate, predict, random_like
from .networks import ARCHS, model_card
from .subarch import SubArchitectures

SMOKE = {"classes": 4, "steps": 4, "mosaics": 16, "elbow_steps": 3}


def profile() -> str:
    """``NADKIT_PROFILE``: "full" (default) or "smoke" (few classes, steps and mosaics: CI)."""
    return os.environ.get("NADKIT_PROFILE", "full")


network_of = pipeline.network_of  # the chapters' name for it


def progress() -> bool:
    """Progress bars, except while the book is built (``NADKIT_QUIET=1``): static pages need none."""
    return os.environ.get("NADKIT_QUIET") != "1"


def results_root() -> Path:
    return Path(os.environ.get("NADKIT_RESULTS", REPO_ROOT / "runs" / "book"))


def _key(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Settings:
    """A chapter's parameters, with the smoke profile applied."""

    archs: list[str] = field(default_factory=lambda: list(ARCHS))
    classes: str = "all"
    steps: int | None = None
    beta: float | str | None = None
    seed: int = 0
    device: str = "cpu"
    mosaics: int = 1000
    top: float = 0.05
    results: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, archs="all", classes="all", steps=None, beta=None, seed=0, device="cpu", mosaics=1000,
           top=0.05, results=None) -> "Settings":
        archs = list(ARCHS) if archs == "all" else [a.strip() for a in archs.split(",")] if isinstance(archs, str) \
            else list(archs)
        folders = [r.strip() for r in results.split(",")] if results else []
        s = cls(archs, classes, steps, beta, seed, device, mosaics, top, folders)
        if profile() == "smoke":
            s.classes = ",".join(str(c) for c in range(SMOKE["classes"])) if classes == "all" else classes
            s.steps = min(steps or SMOKE["steps"], SMOKE["steps"])
            s.mosaics = min(mosaics, SMOKE["mosaics"])
        return s

    @property
    def sources(self) -> list[str]:
        """What the chapter shows: the given result folders, else the embedded networks."""
        return self.results or self.archs

    def run_config(self, arch: str) -> dict:
        card = model_card(arch).get("nad", {})
        return {"arch": arch, "classes": self.classes, "steps": self.steps or card.get("steps", 100),
                "beta": card.get("beta", 0.02) if self.beta is None else self.beta, "seed": self.seed,
                "device": self.device}


def _spec(cfg: dict) -> pipeline.Spec:
    return pipeline.Spec(cfg["arch"], classes=cfg["classes"], beta=cfg["beta"], steps=cfg["steps"], seed=cfg["seed"],
                         device=cfg["device"])


def run_dir(config: dict) -> Path:
    return results_root() / f"{config['arch']}-{_key(config)}"


def folder(source: str, s: Settings, progress: bool = True) -> Path:
    """The results folder of ``source``: the folder itself, or the embedded network's run
    (computed on first use)."""
    if Path(source, "meta.json").exists():
        return Path(source)
    cfg = s.run_config(source)
    out = run_dir(cfg)
    pipeline.disentangle(_spec(cfg), out, progress=progress)
    return out


def disentangled(source: str, s: Settings, progress: bool = True) -> SubArchitectures:
    """The sub-architectures of ``source`` under ``s``, computed once and then read from disk."""
    return SubArchitectures.load(folder(source, s, progress))


def evaluated(source: str, s: Settings, progress: bool = True) -> dict:
    """``nadkit evaluate`` of ``source``, cached in its folder as JSON."""
    out = folder(source, s, progress)
    path = out / f"evaluation-{_key({'mosaics': s.mosaics, 'top': s.top, 'seed': s.seed})}.json"
    if not path.exists():
        report = pipeline.evaluate(out, s.mosaics, s.top, s.seed, s.device, progress=progress)
        path.write_text(json.dumps(report) + "\n")
    return json.loads(path.read_text())


def elbow(arch: str, s: Settings, progress: bool = True) -> dict:
    """The Elbow sweep of embedded ``arch`` (the beta of the network's card is its knee), cached."""
    cfg = dict(s.run_config(arch), beta="elbow")
    if profile() == "smoke":
        cfg["steps"] = SMOKE["elbow_steps"]
    return pipeline.elbow(_spec(cfg), run_dir(cfg), progress=progress)


def controls(source: str, s: Settings, progress: bool = True) -> dict:
    """The controls the paper lacks, cached: random sub-architectures with the same per-layer
    sparsity (accuracy and hit rate), and each sub-architecture's predictions on other classes."""
    out = folder(source, s, progress)
    random_mosaics = max(1, s.mosaics // 4)  # a baseline: 250 of the 1,000 mosaics pin it to about 0.01
    path = out / f"controls-{_key({'mosaics': random_mosaics, 'top': s.top, 'seed': s.seed})}.json"
    if path.exists():
        return json.loads(path.read_text())
    sub = SubArchitectures.load(out)
    model, points, test = pipeline.network_of(sub, s.device)
    rand = random_like(sub.binary(), seed=s.seed)
    keep = torch.isin(test.labels, torch.tensor(sub.classes))
    pred = predict(model, test, points, rand, sub.classes, subset=keep,
                   desc="random sub-architectures" if progress else None)
    result = {
        "random_accuracy": class_accuracy(pred, test.labels[keep], sub.classes).tolist(),
        "cross_accuracy": cross_accuracy(model, points, sub.binary(), sub.classes, test,
                                         per_class=max(1, 1000 // len(test.class_names)), progress=progress).tolist(),
        "class_names": test.class_names,
    }
    if len(sub.classes) >= 4:
        hits = hit_rate(model, points, rand, sub.classes, test, random_mosaics, s.top, s.seed, progress=progress)
        result["random_hit_rate"] = hits.mean((0, 1)).tolist()
        result["random_mosaics"] = random_mosaics
    path.write_text(json.dumps(result) + "\n")
    return result


def label(source: str) -> str:
    """A short name for a source: the network, plus the data set when it is not the embedded one."""
    meta = Path(source, "meta.json")
    if not meta.exists():
        return source
    cfg = json.loads(meta.read_text())["config"]
    data = cfg["dataset"].split(":", 1)[-1].rstrip("/").split("/")[-1]
    return cfg["arch"] if cfg["dataset"] == "fashion-mnist" else f"{cfg['arch']} ({data})"


def precompute(s: Settings | None = None) -> None:
    """Compute, with progress bars, everything the chapters read at their default parameters, so
    that building the book shows its progress and the notebooks only load and plot."""
    from tqdm.auto import tqdm

    s = s or Settings.of()
    for arch in tqdm(s.archs, desc=f"book results ({profile()} profile)", unit="network"):
        elbow(arch, s)
        evaluated(arch, s)
        controls(arch, s)


if __name__ == "__main__":
    precompute()
