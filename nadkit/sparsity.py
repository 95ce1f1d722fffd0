"""The sparsity sweep: NAD until convergence on all ten classes at betas from the card's beta
through the transition (where the kept share falls) to past the collapse (where the masked
network stops keeping its class), for instance 0 of each embedded network.

The grids are read off the shipped Elbow sweeps (four classes, betas 0.01 to 10): each starts at
the card's beta and is denser where the Elbow sweep's kept share and loss change fastest. Every run
uses the reference arithmetic (``fused=False``), as the shipped runs at the card's beta do, so that
run is the sweep's first point as it is, byte for byte, and all points share one arithmetic.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from . import book

BETAS: dict[str, tuple[float, ...]] = {
    # card 0.3; Elbow kept share 0.83 at 0.3, 0.098 at 1.0; all ten classes: 0.78 at 0.4 with no
    # empty class-point, 0.49 at 0.5 with 7% of class-points empty, hence 0.45
    "vgg16": (0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5),
    # card 0.3; 0.83 at 1.0, 0.012 at 3.0
    "resnet50": (0.3, 0.6, 1.0, 1.3, 1.6, 2.0, 2.4, 3.0),
    # card 0.1; 0.85 at 0.1, 0.50 at 0.3, 0.086 at 1.0
    "densenet121": (0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.75, 1.0),
    # card 1.0; 0.89 at 1.0, 0.092 at 3.0
    "darts": (1.0, 1.3, 1.6, 1.8, 2.0, 2.4, 3.0, 4.0),
}


def folders(arch: str, s: book.Settings | None = None, instance: int = 0,
            progress: bool = True) -> list[Path]:
    """The sweep's result folders of ``arch`` (one per beta of ``BETAS``), each computed on first
    use (a killed run resumes where it stopped)."""
    s = s or book.Settings.of(archs=arch)
    return [book.folder(arch, replace(s, beta=b), weights=book.instance_weights(instance), progress=progress)
            for b in BETAS[arch]]


def run(archs: list[str], instance: int = 0) -> None:
    """Compute the sweep of each network in turn, printing each beta's wall time."""
    for arch in archs:
        s = book.Settings.of(archs=arch)
        for b in BETAS[arch]:
            start = time.time()
            out = book.folder(arch, replace(s, beta=b), weights=book.instance_weights(instance))
            print(f"sweep {arch} instance {instance} beta {b}: {out} ({time.time() - start:.0f} s)", flush=True)


def at_beta(folder: Path, s: book.Settings, progress: bool = True) -> dict:
    """Everything the sparsity chapter reads about one run of the sweep, each part cached beside
    the run as the other chapters' are: its kept share (overall and per point), how far it
    collapsed (empty class-points, the network's top answer), and its findings (NAD's, each
    heuristic's at NAD's counts, random channels'), from which ``nadkit.verdicts`` reads the
    effects."""
    from .findings import of_run
    from .sanity import collapse
    from .subarch import SubArchitectures

    sub = SubArchitectures.load(folder)
    report = book._evaluated(folder, s, "paper", progress) | {"similarity_p_uniform":
                                                              book.uniform_p(folder, s, progress)}
    control = book._controls(folder, s, progress)
    rivals = {}
    for method in book.BASELINE_METHODS:
        b = book.baseline_folder(folder, method)
        if not (b / "meta.json").exists():
            book.pipeline.baseline(folder, method, b, device=s.device)
        rivals[method] = of_run(book._evaluated(b, s, "paper", progress), control,
                                hit=book.control_hit(b, s, progress), cross=book._cross(b, s, progress))
    kept = sub.kept()  # [classes, points]
    return {"beta": sub.config["beta"], "folder": folder.name, "kept": float(kept.mean()),
            "kept_per_point": kept.mean(0).tolist(),
            **collapse(sub.binary(), report["confusion"]),
            "nad": of_run(report, control), "rivals": rivals,
            "random": of_run(book.random_report(folder, s, progress))}


def summary(arch: str, s: book.Settings | None = None, instance: int = 0, progress: bool = True) -> list[dict]:
    """``at_beta`` for every beta of the sweep of ``arch`` that has run (a beta still running or
    not started is left out, so the chapter shows what there is)."""
    s = s or book.Settings.of(archs=arch)
    out = []
    for b in BETAS[arch]:
        cfg = replace(s, beta=b).run_config(arch, weights=book.instance_weights(instance))
        folder = book.run_dir(cfg)
        if (folder / "meta.json").exists():
            out.append(at_beta(folder, s, progress))
    return out
