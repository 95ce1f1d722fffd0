"""The two jobs, as functions the CLI and the notebooks share: ``disentangle`` a network into a
results folder (resumable, reused when the configuration is unchanged) and ``evaluate`` one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch

from .data import load_split
from .disentangle import NAD, OBJECTIVES, elbow_sweep
from .errors import NadkitError
from .metrics import class_accuracy, confusion, hit_rate, misjudgment, predict, similarity
from .networks import check_arch, load_network, model_card
from .points import mask_points
from .subarch import PartialRun, SubArchitectures

INPUT_SHAPE = (1, 32, 32)


def resolve_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NadkitError(f"device {device!r} asked for but CUDA is not available here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise NadkitError(f"unknown device {device!r}; use cpu or cuda")
    return torch.device(device)


def network(arch: str, dataset: str = "fashion-mnist", weights: str | None = None, device: str = "cpu"):
    """The frozen network and its mask points, on ``device``."""
    model = load_network(arch, dataset, weights).to(resolve_device(device))
    return model, mask_points(arch, model)


def parse_classes(spec: str | Sequence[int] | None, num_classes: int) -> list[int]:
    """``None``/"all" -> every class; "0,3,5" or a list -> those, checked against the data set."""
    if spec is None or spec == "all":
        return list(range(num_classes))
    try:
        classes = [int(c) for c in spec.split(",")] if isinstance(spec, str) else [int(c) for c in spec]
    except ValueError:
        raise NadkitError(f"--classes {spec!r} is not 'all' or a comma-separated list of class ids") from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise NadkitError(f"class id {bad[0]} is out of range; this data set has classes 0..{num_classes - 1}")
    if len(set(classes)) != len(classes):
        raise NadkitError(f"--classes {spec!r} lists a class twice")
    return classes


def check_settings(beta, lr: float, steps: int, batch_per_class: int, objective: str) -> None:
    if beta != "elbow" and (not isinstance(beta, (int, float)) or beta < 0):
        raise NadkitError(f"beta must be a number >= 0 or 'elbow', got {beta!r}")
    if lr <= 0:
        raise NadkitError(f"lr must be > 0, got {lr}")
    if steps < 1 or batch_per_class < 1:
        raise NadkitError(f"steps and batch-per-class must be >= 1, got {steps} and {batch_per_class}")
    if objective not in OBJECTIVES:
        raise NadkitError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")


def _elbow(nad: NAD, data, classes: list[int], out: Path, key: dict, progress: bool) -> dict:
    """The Elbow sweep on (up to) three of ``classes``, cached in ``out/elbow.json``."""
    path = out / "elbow.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["sweep"]
    few = [classes[i] for i in sorted({round(j * (len(classes) - 1) / 2) for j in range(3)})]
    sweep = elbow_sweep(nad, data, few, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "sweep": sweep}, indent=1) + "\n")
    return sweep


def disentangle(arch: str, out: str | Path, dataset: str = "fashion-mnist", classes=None,
                beta: float | str | None = None, lr: float = 0.1, steps: int | None = None,
                batch_per_class: int = 16, class_batch: int | None = None, objective: str = "official",
                seed: int = 0, device: str = "cpu", weights: str | None = None,
                progress: bool = True) -> SubArchitectures:
    """Learn the sub-architectures of ``classes`` of network ``arch`` into the folder ``out``.

    Unset ``beta``/``steps`` come from the network's card. Finished classes are saved one by
    one; re-running the same command resumes, and returns the saved result when it is complete.
    """
    check_arch(arch)
    defaults = model_card(arch, dataset).get("nad", {})
    beta = defaults.get("beta", 0.02) if beta is None else beta
    steps = defaults.get("steps", 100) if steps is None else steps
    check_settings(beta, lr, steps, batch_per_class, objective)
    model, points = network(arch, dataset, weights, device)
    train = load_split(dataset, "train")
    classes = parse_classes(classes, len(train.class_names))
    out = Path(out)
    config = {"arch": arch, "dataset": dataset, "weights": str(weights) if weights else None,
              "objective": objective, "beta": beta, "lr": lr, "steps": steps,
              "batch_per_class": batch_per_class, "seed": seed, "device": str(device)}
    nad = NAD(model, points, beta=0.0, lr=lr, steps=steps, batch_per_class=batch_per_class,
              objective=objective, seed=seed, input_shape=INPUT_SHAPE)
    if beta == "elbow":
        config["elbow"] = _elbow(nad, train, classes, out, dict(config), progress)
        config["beta"] = nad.beta = config["elbow"]["beta"]
    nad.beta = config["beta"]
    if (out / "meta.json").exists():
        done = SubArchitectures.load(out)
        if done.config == config and done.classes == classes:
            return done
    partial = PartialRun(out, config)
    todo = [c for c in classes if c not in set(partial.done())]
    start = time.time()

    def save_chunk(chunk: list[int], res) -> None:
        for j, c in enumerate(chunk):
            skipped = int(res.skipped_steps[j])
            partial.save(c, {p.name: m[j] for p, m in zip(points, res.masks)},
                         {"state": "skipped" if skipped == steps else "done", "skipped_steps": skipped})

    if todo:
        nad.fit(train, todo, class_batch=class_batch, progress=progress, on_chunk=save_chunk)
    loaded = [partial.load(c) for c in classes]
    masks = {p.name: torch.stack([m[p.name] for m, _ in loaded]) for p in points}
    status = {str(c): s for c, (_, s) in zip(classes, loaded)}
    result = SubArchitectures(masks, classes, [train.class_names[c] for c in classes], config, status)
    result.save(out)
    partial.remove()
    if todo:
        (out / "timing.json").write_text(json.dumps({"seconds": round(time.time() - start, 1),
                                                     "classes_run": len(todo)}) + "\n")
    return result


def evaluate(folder: str | Path, mosaics: int = 1000, top: float = 0.05, seed: int = 0,
             device: str = "cpu", progress: bool = True) -> dict:
    """Every per-layer figure of the paper for the sub-architectures in ``folder``."""
    if not 0 < top <= 1:
        raise NadkitError(f"top fraction must be in (0, 1], got {top}")
    if mosaics < 1:
        raise NadkitError(f"mosaics must be >= 1, got {mosaics}")
    sub = SubArchitectures.load(folder)
    cfg = sub.config
    model, points = network(cfg["arch"], cfg["dataset"], cfg.get("weights"), device)
    sub.check(model, points, INPUT_SHAPE)
    test = load_split(cfg["dataset"], "test")
    binary = sub.binary()
    pred = predict(model, test, desc="accuracy (network)" if progress else None)
    sub_pred = predict(model, test, points, binary, sub.classes, desc="accuracy (sub-architectures)" if progress else None)
    keep = torch.isin(test.labels, torch.tensor(sub.classes))
    per_point, sim = similarity(binary)
    hits = hit_rate(model, points, binary, sub.classes, test, mosaics, top, seed, progress=progress) \
        if len(sub.classes) >= 4 else None
    conf = confusion(pred, test.labels, len(test.class_names))
    return {
        "arch": cfg["arch"], "points": sub.points, "classes": sub.classes, "class_names": sub.class_names,
        "kept": sub.kept().mean(0).tolist(),
        "similarity": per_point,
        "similarity_matrix": sim.tolist(),
        "hit_rate": hits.mean((0, 1)).tolist() if hits is not None else None,
        "hit_rate_std": hits.mean(1).std(0).tolist() if hits is not None else None,
        "accuracy": {"original": class_accuracy(pred, test.labels, sub.classes).tolist(),
                     "subarch": class_accuracy(sub_pred[keep], test.labels[keep], sub.classes).tolist()},
        "misjudgment": misjudgment(conf, sim, sub.classes),
        "mosaics": mosaics, "top": top,
    }
