"""What the book's chapters share: the profile (full or smoke), and results cached on disk keyed by
their configuration (which includes the weights' hash), so that every chapter and every rebuild
reuses what another computed.

A chapter works on *sources*: embedded network names (computed here, once per seed) or folders
written by ``nadkit disentangle`` elsewhere (for example on ImageNet), given with ``results``.
Results this book shows in its full profile ship in ``data/results/`` (``make reproduce``
recomputes them); a configuration without a shipped result is computed under ``runs/book/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nadkit import pipeline
from nadkit.data import mosaics

from nadbook import REPO_ROOT, matched
from nadkit.checks import OBJECTIVES
from nadkit.disentangle import ELBOW_BETAS
from nadkit.metrics import (class_accuracy, collapsed, cross_accuracy, hit_rate, hit_rate_by_class, misjudgment, predict,
                      random_like, similarity)
from nadkit.networks import ARCHS, load_network, model_card, weights_sha256
from nadkit.subarch import SubArchitectures, load_history

SMOKE = {"classes": 4, "steps": 4, "mosaics": 16, "elbow_steps": 3, "chance_draws": 99,
         "instances": 2, "test_per_class": 50}
SHIPPED = REPO_ROOT / "data" / "results"
# Seconds a chapter's cell may run before its execution fails, naming the chapter and the cell
# (_config.yml's execute.timeout for the full profile, the Makefile's --nbmake-timeout and the
# tests' smoke build for the smoke profile; tests/test_lock.py checks they agree). Full profile:
# `make` precomputes, so most cells read results (seconds); the longest, chapter 02's comparison of
# the two objectives (NAD runs in the cell), took 413 s of a fresh clone's `make` with other work
# on the cores, hence 1,200 s. Smoke: the tests' book build precomputes too, but a
# chapter run alone (papermill, nbmake on a fresh clone) computes in its first cell: chapter 01's
# took 709 s with five processes sharing the two cores, so 1,500 s leaves twice that.
CELL_TIMEOUT = {"full": 1200, "smoke": 1500}
SNAPSHOT_EVERY = 100  # the convergence study's grain (full profile)
ELBOW_CLASSES = 4     # classes in the Elbow sweep, spread over the data set's
HIT_DRAWS = 20        # random sub-architectures drawn for the hit-rate control


def profile() -> str:
    """``NADKIT_PROFILE``: "full" (default) or "smoke" (few classes, steps and mosaics: CI)."""
    return os.environ.get("NADKIT_PROFILE", "full")


def test_per_class() -> int | None:
    """Test images per class that the chapters evaluate on: all (None); the smoke profile's
    first ``SMOKE["test_per_class"]`` of each class."""
    return SMOKE["test_per_class"] if profile() == "smoke" else None


def network_of(sub: SubArchitectures, device: str = "cpu", allow_other_weights: bool = False):
    """``pipeline.network_of`` with the profile's test set (``test_per_class``)."""
    return pipeline.network_of(sub, device, allow_other_weights, test_per_class())


def _test_key(key: dict) -> dict:
    """A cache key with the profile's test set in it where that is not the whole split (so the
    keys of the full profile's shipped files stay what they were)."""
    return key | ({"test_per_class": test_per_class()} if test_per_class() else {})


def _cross_per_class() -> int:
    """Images per class of the cross-class accuracy: 100, or the profile's fewer."""
    return min(100, test_per_class() or 100)


def test_set():
    """Fashion-MNIST's test split as the profile evaluates it (``test_per_class``)."""
    from nadkit.data import fashion_mnist, first_per_class

    return first_per_class(fashion_mnist("test"), test_per_class())


def chance_draws() -> int:
    """Null draws per point for the tests against chance (999; the smoke profile: 99)."""
    return SMOKE["chance_draws"] if profile() == "smoke" else 999


def progress() -> bool:
    """Progress bars, except while the book is built (``NADKIT_QUIET=1``): static pages need none."""
    return os.environ.get("NADKIT_QUIET") != "1"


def results_root() -> Path:
    return Path(os.environ.get("NADKIT_RESULTS", REPO_ROOT / "runs" / "book"))


# The version of the code that computes each kind of cached result. Raise one when a change moves
# its numbers: every cached and shipped file of that kind then stops counting (its key moves, so it
# is recomputed, and `make reproduce` ships the new one). Version 1 is the code the shipped files
# were computed with; it is left out of the key, so introducing versions moved no shipped key.
CODE_VERSIONS = {"run": 1, "evaluation": 1, "controls": 1, "p-uniform": 1, "random-chance": 1,
                 "control-hit": 1, "control-hit-class": 1, "power": 1}


def _key(config: dict, kind: str) -> str:
    """The cache key of a result of ``kind`` computed with ``config``: a hash of both and of the
    kind's code version (``CODE_VERSIONS``)."""
    version = CODE_VERSIONS[kind]
    config = config | ({"code": version} if version > 1 else {})
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]


def _ints(text) -> list[int]:
    return [int(v) for v in str(text).split(",")] if not isinstance(text, (list, tuple)) else list(text)


@lru_cache(maxsize=None)
def network_hash(arch: str, weights: str | None = None) -> str:
    """SHA-256 of the embedded network's weights (part of every cache key)."""
    return weights_sha256(load_network(arch, weights=weights))


@dataclass
class Settings:
    """A chapter's parameters, with the smoke profile applied."""

    archs: list[str] = field(default_factory=lambda: list(ARCHS))
    classes: str = "all"
    steps: int | str | None = None
    beta: float | str | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    device: str = "cpu"
    mosaics: int = 1000
    top: float = 0.05
    results: list[str] = field(default_factory=list)
    instances: list[int] = field(default_factory=lambda: [0, 1, 2])
    objective: str = "official"  # NAD's loss: the authors' code, or the paper's Eq. 13 ("paper")

    @classmethod
    def of(cls, archs="all", classes="all", steps=None, beta=None, seeds="0,1", device="cpu", mosaics=1000,
           top=0.05, results=None, instances="0,1,2") -> "Settings":
        archs = list(ARCHS) if archs == "all" else [a.strip() for a in archs.split(",")] if isinstance(archs, str) \
            else list(archs)
        folders = [r.strip() for r in results.split(",")] if results else []
        s = cls(archs, classes, steps, beta, _ints(seeds), device, mosaics, top, folders, _ints(instances))
        if profile() == "smoke":
            s.classes = ",".join(str(c) for c in range(SMOKE["classes"])) if classes == "all" else classes
            s.steps = min(steps, SMOKE["steps"]) if isinstance(steps, int) else SMOKE["steps"]
            s.mosaics = min(mosaics, SMOKE["mosaics"])
            s.instances = s.instances[:SMOKE["instances"]]
        return s

    @property
    def sources(self) -> list[str]:
        """What the chapter shows: the given result folders, else the embedded networks."""
        return self.results or self.archs

    def run_config(self, arch: str, seed: int | None = None, weights: str | None = None,
                   target: str = "label", augment: str | None = None) -> dict:
        """The configuration of one run (its cache key): network, weights, classes, settings, seed
        and, where it is not the label, what the masked network must keep (``target``)."""
        card = model_card(arch).get("nad", {})
        cfg = {"arch": arch, "classes": self.classes, "steps": self.steps or card.get("steps", "auto"),
               "beta": card.get("beta", 0.02) if self.beta is None else self.beta,
               "seed": self.seeds[0] if seed is None else seed, "device": self.device,
               "weights_sha256": network_hash(arch, weights)}
        if weights is not None:
            cfg["weights"] = weights
        if target != "label":
            cfg["target"] = target
        if augment is not None:
            cfg["augment"] = augment
        if self.objective != "official":  # recorded only when set: no existing cache key moves
            cfg["objective"] = self.objective
        if self.objective == "contrast":  # twice the images per step: the fused step (same masks up to the last bits)
            cfg["fused"] = True
        if cfg["steps"] == "auto":
            cfg["max_steps"] = card.get("max_steps", 2000)
            cfg["snapshot_every"] = SNAPSHOT_EVERY
        return cfg


def _spec(cfg: dict) -> pipeline.Spec:
    return pipeline.Spec(cfg["arch"], classes=cfg["classes"], beta=cfg["beta"], steps=cfg["steps"],
                         max_steps=cfg.get("max_steps"), seed=cfg["seed"], device=cfg["device"],
                         weights=cfg.get("weights"), snapshot_every=cfg.get("snapshot_every"),
                         target=cfg.get("target", "label"), fused=cfg.get("fused", False),
                         augment=cfg.get("augment"), objective=cfg.get("objective", "official"))


def run_dir(config: dict) -> Path:
    """The folder of a run: shipped in ``data/results/`` when there, else under ``runs/book/``."""
    name = f"{config['arch']}-{_key(config, 'run')}"
    return SHIPPED / name if (SHIPPED / name).is_dir() else results_root() / name


def _cache(out: Path, name: str) -> Path:
    """Where a cached file of the run in ``out`` lives: beside it, unless the run is a shipped one
    that lacks it (then under ``runs/book/``: the shipped folders are only read)."""
    if (out / name).exists() or not out.is_relative_to(SHIPPED):
        return out / name
    (results_root() / out.name).mkdir(parents=True, exist_ok=True)
    return results_root() / out.name / name


def folder(source: str, s: Settings, seed: int | None = None, weights: str | None = None,
           progress: bool = True, target: str = "label", augment: str | None = None) -> Path:
    """The results folder of ``source``: the folder itself, or the embedded network's run at
    ``seed`` (default: the first), computed on first use."""
    if Path(source, "meta.json").exists():
        return Path(source)
    cfg = s.run_config(source, seed, weights, target, augment)
    out = run_dir(cfg)
    if not (out / "meta.json").exists():
        pipeline.disentangle(_spec(cfg), out, progress=progress)
    return out


def folders(source: str, s: Settings, progress: bool = True) -> list[Path]:
    """One folder per seed for an embedded network; the folder itself for a result folder."""
    if Path(source, "meta.json").exists():
        return [Path(source)]
    return [folder(source, s, seed, progress=progress) for seed in s.seeds]


def instance_option(instance: int) -> str | None:
    """The ``--weights`` option of an independently trained instance: None (the shipped network) for
    0 (``nadkit.networks.instance_weights`` is the path of its weights file)."""
    return None if instance == 0 else f"instance:{instance}"


def trained_instances(arch: str, s: Settings) -> list[int]:
    """The instances of ``s.instances`` that are trained and shipped (``data/models/instances``)."""
    from nadkit.networks import instance_weights as path_of

    return [i for i in s.instances if path_of(arch, i).exists()]


def instance_folders(source: str, s: Settings, progress: bool = True) -> list[Path]:
    """One folder per independently trained instance of an embedded network (NAD's first seed);
    the folder itself for a result folder. Findings replicate over these, not over NAD seeds."""
    if Path(source, "meta.json").exists():
        return [Path(source)]
    first, *others = trained_instances(source, s)
    ref = folder(source, s, s.seeds[0], instance_option(first), progress)
    return [ref, *(like(ref, source, s, instance_option(i), progress=progress) for i in others)]


def like(reference: Path, arch: str, s: Settings, weights: str | None, target: str = "label",
         progress: bool = True, strict: bool = False, compute: bool = True) -> Path | None:
    """The run of ``arch`` (``weights``) at the reference run's sparsity (``nadbook.matched``: its
    kept share within ``matched.TOLERANCE``, searched for from the reference's beta). In the smoke
    profile (four classes, a few steps: no sparsity to match) the run at the same beta. Where no
    comparable run exists: the run at the same beta, or with ``strict`` None. Without ``compute``
    only runs already there are visited (None where the search needs one that is not)."""
    if profile() == "smoke":
        return folder(arch, s, s.seeds[0], weights, progress, target)

    def run(b: float) -> Path | None:
        at = replace(s, beta=b)
        there = run_dir(at.run_config(arch, s.seeds[0], weights, target))
        return folder(arch, at, s.seeds[0], weights, progress, target) if compute else \
            there if (there / "meta.json").exists() else None

    beta = json.loads((reference / "meta.json").read_text())["config"]["beta"]
    hit = matched.search(matched.kept(reference), float(beta), run, f"{arch} ({weights or 'instance 0'})", progress)
    return hit[1] if hit is not None else None if strict else folder(arch, s, s.seeds[0], weights, progress, target)


def searched(reference: Path, arch: str, s: Settings, weights: str | None, target: str = "label") -> list[Path]:
    """The runs that ``like``'s search for the reference run's sparsity visits, as far as they are
    there: shipped with the run it finds, so that a fresh clone's search takes the same path
    without computing anything."""
    if profile() == "smoke":
        return []
    seen: list[Path] = []

    def run(b: float) -> Path | None:
        there = run_dir(replace(s, beta=b).run_config(arch, s.seeds[0], weights, target))
        if not (there / "meta.json").exists():
            return None
        seen.append(there)
        return there

    beta = json.loads((reference / "meta.json").read_text())["config"]["beta"]
    matched.search(matched.kept(reference), float(beta), run, progress=False)
    return seen


def _over(source: str, s: Settings, over: str, progress: bool) -> list[Path]:
    if over not in ("seeds", "instances"):
        raise ValueError(f"over must be seeds or instances, got {over!r}")
    return folders(source, s, progress) if over == "seeds" else instance_folders(source, s, progress)


def disentangled(source: str, s: Settings, progress: bool = True, seed: int | None = None) -> SubArchitectures:
    """The sub-architectures of ``source`` under ``s`` (first seed unless given)."""
    return SubArchitectures.load(folder(source, s, seed, progress=progress))


def seeds_of(source: str, s: Settings, progress: bool = True) -> list[SubArchitectures]:
    """The sub-architectures of ``source`` for every seed."""
    return [SubArchitectures.load(f) for f in folders(source, s, progress)]


def history(source: str, s: Settings, seed: int | None = None) -> dict | None:
    """The optimisation history (flips per step, snapshots) of a run, if it kept one."""
    return load_history(folder(source, s, seed, progress=False))


def _evaluated(out: Path, s: Settings, protocol: str, progress: bool) -> dict:
    mosaics = s.mosaics if protocol == "paper" else min(s.mosaics, 100)
    top = s.top if protocol == "paper" else 0.10
    key = _test_key({'mosaics': mosaics, 'top': top, 'seed': 0, 'protocol': protocol})
    path = _cache(out, f"evaluation-{_key(key, 'evaluation')}.json")
    if not path.exists():
        report = pipeline.evaluate(out, mosaics, top, 0, s.device, progress=progress, hit_protocol=protocol,
                                   chance_draws=chance_draws(), test_per_class=test_per_class())
        path.write_text(json.dumps(report) + "\n")
    report = json.loads(path.read_text())
    if "similarity_p_swap" not in report:  # made before the measures against chance: add them, once
        report = pipeline.with_chance(report, SubArchitectures.load(out).binary(), chance_draws())
        path.write_text(json.dumps(report) + "\n")
    return report


def evaluated(source: str, s: Settings, progress: bool = True, protocol: str = "paper",
              over: str = "seeds") -> list[dict]:
    """``nadkit evaluate`` of every seed's (``over="instances"``: every trained instance's) run of
    ``source``, cached beside it as JSON (the same mosaics for every run)."""
    return [_evaluated(f, s, protocol, progress) for f in _over(source, s, over, progress)]


def elbow(arch: str, s: Settings, progress: bool = True) -> dict:
    """The Elbow sweep of embedded ``arch`` on converged masks (its knee: see ``beta_choice``), cached."""
    cfg = elbow_config(arch, s)
    return pipeline.elbow(_spec(cfg), run_dir(cfg), progress=progress, betas=ELBOW_BETAS,
                          n_classes=ELBOW_CLASSES)


def elbow_config(arch: str, s: Settings) -> dict:
    """The configuration (and cache key) of the Elbow sweep of ``arch``."""
    cfg = dict(s.run_config(arch), beta="elbow", seed=0)
    cfg.pop("snapshot_every", None)
    if profile() == "smoke":
        cfg["steps"] = SMOKE["elbow_steps"]
        cfg.pop("max_steps", None)
    return cfg


def beta_choice(arch: str, s: Settings, progress: bool = True) -> dict:
    """The cards' rule for beta: the Elbow knee, lowered along the grid only while, at it, a
    class's sub-architecture collapses in the first seed's run (a point that keeps no channel:
    such a class is predicted from a constant, whatever the image). The seeds' agreement at the
    chosen beta is reported (raw and chance-corrected: ``agreement_of``), never a target: lowering
    beta densifies the masks, and dense masks agree by chance alone."""
    sweep = elbow(arch, s, progress)
    tried = []
    for b in sorted((b for b in sweep["betas"] if b <= sweep["beta"]), reverse=True):
        sb = replace(s, beta=b)
        first = SubArchitectures.load(folder(arch, sb, s.seeds[0], progress=progress))
        bad = [c for c, x in zip(first.classes, collapsed(first.binary()).tolist()) if x]
        t = {"beta": b, "collapsed": bad, "seed_agreement": None, "folders": [folder(arch, sb, progress=progress)]}
        if not bad and len(s.seeds) > 1:
            t["folders"] = folders(arch, sb, progress)
            t["seed_agreement"] = agreement_of([SubArchitectures.load(f).binary() for f in t["folders"]])
        tried.append(t)
        if not bad:
            break
    return {"knee": sweep["beta"], "beta": tried[-1]["beta"], "tried": tried}


def agreement_of(runs) -> dict:
    """Same-class agreement of NAD seeds, per point (mean over classes and seed pairs): raw
    Jaccard, its chance expectation for sets of those sizes, and kappa; and the lowest point's."""
    import warnings

    import numpy as np

    from nadkit.stats import seed_agreement

    def r(v):  # JSON has no NaN: kappa is undefined where chance is 1 (every set full)
        return round(float(v), 4) if np.isfinite(v) else None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points
        mean = {k: np.nanmean(v, 0) for k, v in seed_agreement(runs).items()}
    return {"jaccard": [r(v) for v in mean["jaccard"]], "expected": [r(v) for v in mean["expected"]],
            "kappa": [r(v) for v in mean["kappa"]], "lowest_jaccard": r(mean["jaccard"].min()),
            "median_kappa": r(np.nanmedian(mean["kappa"]))}


def _controls(out: Path, s: Settings, progress: bool) -> dict:
    draws, n = HIT_DRAWS, max(4, s.mosaics // 20)
    key = _test_key({'mosaics': n, 'top': s.top, 'seed': 0, 'draws': draws})
    path = _cache(out, f"controls-{_key(key, 'controls')}.json")
    if path.exists():
        return json.loads(path.read_text())
    sub = SubArchitectures.load(out)
    model, points, test = network_of(sub, s.device)
    rand = random_like(sub.binary(), seed=sub.config["seed"])
    keep = torch.isin(test.labels, torch.tensor(sub.classes))
    pred = predict(model, test, points, rand, sub.classes, subset=keep,
                   desc="random sub-architectures" if progress else None)
    result = {
        "random_accuracy": class_accuracy(pred, test.labels[keep], sub.classes).tolist(),
        "cross_accuracy": cross_accuracy(model, points, sub.binary(), sub.classes, test,
                                         per_class=_cross_per_class(), progress=progress).tolist(),
        "class_names": test.class_names,
    }
    if len(sub.classes) >= 4:
        # NAD and HIT_DRAWS random sub-architectures of the same sizes, on the same n mosaics
        hit = lambda binary: hit_rate(model, points, binary, sub.classes, test, n, s.top, 0,  # noqa: E731
                                      progress=False).mean((0, 1))
        runs = [hit(random_like(sub.binary(), seed=1000 + d))
                for d in tqdm(range(draws), desc="random hit rate", disable=not progress, leave=False)]
        result |= {"hit_mosaics": n, "nad_hit_rate": hit(sub.binary()).tolist(),
                   "random_hit_rate_draws": torch.stack(runs).tolist(),
                   "random_hit_rate": torch.stack(runs).mean(0).tolist()}
    path.write_text(json.dumps(result) + "\n")
    return result


def controls(source: str, s: Settings, progress: bool = True, over: str = "seeds") -> list[dict]:
    """The controls the paper lacks, per seed (or instance), cached: random sub-architectures with
    the same per-layer sparsity (accuracy; hit rate of ``HIT_DRAWS`` draws beside NAD's on the same
    mosaics), and each sub-architecture's predictions on other classes."""
    return [_controls(f, s, progress) for f in _over(source, s, over, progress)]


# --- baselines -----------------------------------------------------------------------------------
BASELINE_METHODS = ("mean activation", "taylor", "model lego")  # and random: the controls above


def baseline_folder(nad: Path, method: str) -> Path:
    """Where the sub-architectures of ``method`` with the channel counts of the run ``nad`` live."""
    name = f"{nad.name}-{method.replace(' ', '-')}"
    return SHIPPED / name if (SHIPPED / name / "meta.json").exists() else results_root() / name


def _cross(out: Path, s: Settings, progress: bool) -> list[list[float]]:
    path = _cache(out, "cross-accuracy.json")
    if not path.exists():
        sub = SubArchitectures.load(out)
        model, points, test = network_of(sub, s.device)
        cross = cross_accuracy(model, points, sub.binary(), sub.classes, test,
                               per_class=_cross_per_class(), progress=progress)
        path.write_text(json.dumps(cross.tolist()) + "\n")
    return json.loads(path.read_text())


def baselines(source: str, s: Settings, progress: bool = True) -> dict[str, list[dict]]:
    """For each heuristic (and NAD itself, as "nad"), per trained instance: the sub-architectures,
    their evaluation (paper protocol), cross-class accuracy and hit rate on the control's mosaics,
    all cached beside the runs."""
    out: dict[str, list[dict]] = {"nad": []}
    for f in instance_folders(source, s, progress):
        out["nad"].append({"sub": SubArchitectures.load(f), "report": _evaluated(f, s, "paper", progress),
                           "cross": _controls(f, s, progress)["cross_accuracy"], "folder": f})
        for method in BASELINE_METHODS:
            b = baseline_folder(f, method)
            if not (b / "meta.json").exists():
                pipeline.baseline(f, method, b, device=s.device)
            out.setdefault(method, []).append({"sub": SubArchitectures.load(b), "folder": b,
                                               "report": _evaluated(b, s, "paper", progress),
                                               "cross": _cross(b, s, progress),
                                               "hit": control_hit(b, s, progress)})
    return out


# --- ablation: are the channels necessary? ---------------------------------------------------
ABLATION = {"points": 5, "per_class": 10, "draws": 100, "popularity_draws": 10,
            "orders": ("nad", "mean activation", "taylor", "model lego")}
SMOKE_ABLATION = {"points": 2, "per_class": 4, "draws": 5, "popularity_draws": 2,
                  "orders": ("nad", "mean activation")}


def spread(names: list[str], n: int) -> list[str]:
    """``n`` points spread evenly from the first to the last (all when there are fewer)."""
    idx = sorted({round(i * (len(names) - 1) / max(1, n - 1)) for i in range(n)})
    return [names[i] for i in idx]


def ablations(source: str, s: Settings, progress: bool = True) -> list[dict]:
    """``nadkit ablate`` of every trained instance's run at ``ABLATION``'s settings (the smoke
    profile's: ``SMOKE_ABLATION``), cached beside the runs."""
    return [ablation_of(f, s.device, progress) for f in instance_folders(source, s, progress)]


def ablation_of(folder: Path, device: str = "cpu", progress: bool = True) -> dict:
    """``nadkit ablate`` of the run in ``folder`` at ``ABLATION``'s settings (``SMOKE_ABLATION``'s
    in the smoke profile), cached beside it; ``widths``: the channels of each point ablated."""
    from nadkit.pipeline import ablation

    a = SMOKE_ABLATION if profile() == "smoke" else ABLATION
    sub = SubArchitectures.load(folder)
    points = spread(sub.points, a["points"])
    abl = ablation(folder, _cache(folder, "ablation"), points, None, a["orders"], a["draws"],
                   a["popularity_draws"], a["per_class"], device, progress)
    abl["widths"] = {p: int(sub.masks[p].shape[1]) for p in points}  # channels per point
    return abl


# --- sanity checks ----------------------------------------------------------------------------
def sanity_weights(arch: str) -> list[str]:
    """The randomised networks of the sanity checks: the untrained one, and for vgg16 the cascade
    from the classifier down (``randomized:1`` ... ``randomized:5``)."""
    from nadkit.sanity import CASCADES

    cascade = [f"randomized:{k}" for k in range(1, len(CASCADES[arch][1]))] if arch in CASCADES else []
    return cascade + ["none"]


SANITY_TARGET = "prediction"  # a network that gets no image right still has its own output to keep
# The networks chapter 08 checks by default. DARTS's untrained run takes about half an hour of
# one core with the prediction target (it runs every step); it is left to `-p archs darts`.
SANITY_ARCHS = ("vgg16", "resnet50", "densenet121")


def sanity_folder(arch: str, weights: str, s: Settings, progress: bool = True) -> Path:
    """The run of NAD on a randomised network: the same settings, first seed, with the network's
    own prediction as the target (``SANITY_TARGET``), so that the optimiser runs for every class."""
    return folder(arch, s, s.seeds[0], weights, progress, target=SANITY_TARGET)


def sanity(arch: str, weights: str, s: Settings, progress: bool = True) -> tuple[SubArchitectures, dict, dict]:
    """NAD on a randomised network: its sub-architectures, the evaluation and the controls."""
    out = sanity_folder(arch, weights, s, progress)
    return SubArchitectures.load(out), _evaluated(out, s, "paper", progress), _controls(out, s, progress)


# The data-randomisation test (Adebayo et al. 2018): the network trained on permuted labels
# (``--weights permuted``), NAD with its own prediction as the target at the card's beta and at
# the beta where it keeps the trained run's share of channels (``permuted_matched``; the card's
# beta empties most class-points of this network), chapter 08.
PERMUTED_ARCHS = ("vgg16",)


def permuted(arch: str, beta: float | None, s: Settings, progress: bool = True) -> tuple[SubArchitectures, dict, dict]:
    """NAD on the label-permuted network at ``beta`` (None: the card's), as ``sanity`` returns."""
    return sanity(arch, "permuted", replace(s, beta=beta), progress)


def permuted_matched(arch: str, s: Settings, progress: bool = True,
                     compute: bool = True) -> tuple[SubArchitectures, dict, dict] | None:
    """NAD on the label-permuted network at the trained run's kept share (``like``: within
    ``matched.TOLERANCE``), as ``sanity`` returns; None where no comparable run exists (its masks
    jump from whole to collapsed) or, without ``compute``, where the search's runs are not all there."""
    out = like(folder(arch, s, progress=progress), arch, s, "permuted", SANITY_TARGET, progress, strict=True,
               compute=compute)
    return None if out is None else (SubArchitectures.load(out), _evaluated(out, s, "paper", progress),
                                     _controls(out, s, progress))


AUGMENTED_ARCHS = ("vgg16",)  # NAD with the authors' augmentation (chapter 04), first instance and seed


def augmented(arch: str, s: Settings, progress: bool = True) -> tuple[SubArchitectures, dict, dict]:
    """NAD on ``arch`` with the authors' crop and flip during NAD (``--augment authors``), first
    instance and seed: its sub-architectures, evaluation and controls, as ``sanity`` returns."""
    out = folder(arch, s, s.seeds[0], progress=progress, augment="authors")
    return SubArchitectures.load(out), _evaluated(out, s, "paper", progress), _controls(out, s, progress)


def label(source: str) -> str:
    """A short name for a source: the network, plus the data set when it is not the embedded one."""
    meta = Path(source, "meta.json")
    if not meta.exists():
        return source
    cfg = json.loads(meta.read_text())["config"]
    data = cfg["dataset"].split(":", 1)[-1].rstrip("/").split("/")[-1]
    return cfg["arch"] if cfg["dataset"] == "fashion-mnist" else f"{cfg['arch']} ({data})"


# The power tables of chapter 02: replicates per planted effect (pooled swap tests, the uneven
# finding's own test) and the latter's null draws; the smoke profile's fewer.
POWER = {"full": {"swap_reps": 100, "uneven_reps": 40, "uneven_draws": 199},
         "smoke": {"swap_reps": 10, "uneven_reps": 5, "uneven_draws": 49}}


def power_folder() -> Path:
    """Where the power tables of the profile are cached (``power-KEY/power.json``, shipped)."""
    name = f"power-{_key(POWER[profile()], 'power')}"
    return SHIPPED / name if (SHIPPED / name).is_dir() else results_root() / name


def power(progress: bool = True) -> dict[str, list[dict]]:
    """What the tests can see (chapter 02): each test's rejection rate against a planted
    alternative of growing size, on synthetic sets of the size of a small network's layer
    (``nadkit.stats.pooled_power``, ``uneven_power``): NAD against a rule on *more* (one core
    shared by every class) and on *uneven* (a core per group of classes, two groups), pooled over
    three instances; and the *uneven* finding's own test at one point. Cached."""
    from nadkit.files import atomic
    from nadkit.stats import pooled_power, uneven_power

    c = POWER[profile()]
    path = power_folder() / "power.json"
    if not path.exists():
        jobs = {"more, NAD against a rule (pooled class swaps)": lambda: pooled_power(reps=c["swap_reps"]),
                "uneven, NAD against a rule (pooled class swaps)": lambda: pooled_power(
                    effects=(0, 2, 4, 6), reps=c["swap_reps"], reduce="spread", groups=2),
                "uneven, its own test (one point, swap null)": lambda: uneven_power(
                    reps=c["uneven_reps"], draws=c["uneven_draws"])}
        out = {name: job() for name, job in tqdm(jobs.items(), desc="power tables", disable=not progress)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic(path, lambda tmp: tmp.write_text(json.dumps(out, indent=1) + "\n"))
    return json.loads(path.read_text())


def precompute(s: Settings | None = None, archs: list[str] | None = None,
               seconds: dict[str, float] | None = None, searches: bool = True) -> list[Path]:
    """Compute, with progress bars, everything the chapters read at their default parameters, so
    that building the book shows its progress and the notebooks only load and plot. Returns the
    run folders used; ``seconds`` receives each network's wall time. Without ``searches`` the
    searches for matched sparsity (``like``) use only the runs there are (to ship while some run)."""
    import time

    s = s or Settings.of()
    used = []
    if (archs or s.archs)[0] == s.archs[0]:  # once, with the first network (``precompute_over``)
        power()
        used.append(power_folder())
    for arch in tqdm(archs or s.archs, desc=f"book results ({profile()} profile)", unit="network"):
        start = time.perf_counter()
        used.append(run_dir(elbow_config(arch, s)))
        if profile() == "full" and s.beta is None:
            used += [f for t in beta_choice(arch, s)["tried"] for f in t["folders"]]
        else:
            elbow(arch, s)
        used += folders(arch, s)  # NAD seeds: the convergence study
        for protocol in ("paper", "authors"):
            evaluated(arch, s, protocol=protocol, over="instances")
        controls(arch, s, over="instances")
        ablations(arch, s)
        for f in instance_folders(arch, s):
            random_report(f, s)  # the findings' random control (chapters 01 and 09)
            uniform_p(f, s)      # the verdicts' p against random channels, with enough draws
            used.append(f)
        reference, *others = trained_instances(arch, s)
        for i in others:  # the runs the searches for matched sparsity visited
            used += searched(folder(arch, s, s.seeds[0], instance_option(reference)), arch, s, instance_option(i))
        for w in sanity_weights(arch) if arch in SANITY_ARCHS else []:
            sanity(arch, w, s)
            used.append(sanity_folder(arch, w, s))
        if profile() == "full" and s.beta is None:
            from nadbook.sparsity import used as sweep_used
            used += sweep_used(arch, s, searches=searches)  # the sparsity sweep, as far as it has run
        if arch in AUGMENTED_ARCHS:
            augmented(arch, s)
            used.append(folder(arch, s, s.seeds[0], augment="authors"))
        if arch in PERMUTED_ARCHS and s.beta is None:
            permuted(arch, None, s)
            used.append(sanity_folder(arch, "permuted", s))
            if permuted_matched(arch, s, compute=searches) is not None:
                used += searched(folder(arch, s), arch, s, "permuted", SANITY_TARGET)
        for method, runs in baselines(arch, s).items():
            for run in runs:
                control_hit_by_class(run["folder"], s)  # the hit rate compared class by class
            for run in runs if method != "nad" else []:
                uniform_p(run["folder"], s)  # the rivals' verdicts, with as many draws as NAD's
                used.append(run["folder"])
        if seconds is not None:
            seconds[arch] = time.perf_counter() - start
    return used


def ship(used: list[Path]) -> None:
    """Copy the run folders the full book uses into ``data/results/`` (masks, meta, history and
    the cached evaluations), replacing what was there."""
    import shutil

    if profile() != "full":
        raise SystemExit("only the full profile's results ship")
    keep = {f.name for f in used}
    archs = {f.name.split("-", 1)[0] for f in used}
    SHIPPED.mkdir(parents=True, exist_ok=True)
    for old in SHIPPED.iterdir():  # stale runs of the networks shipped now
        if old.name not in keep and old.name.split("-", 1)[0] in archs:
            shutil.rmtree(old)
    for f in used:
        if f.parent.resolve() != SHIPPED.resolve():
            shutil.rmtree(SHIPPED / f.name, ignore_errors=True)
            shutil.copytree(f, SHIPPED / f.name, ignore=shutil.ignore_patterns("partial", "*.tmp"))
        cached = results_root() / f.name  # files computed later for a shipped run (``_cache``)
        if cached.is_dir() and cached.resolve() != f.resolve():
            for extra in cached.glob("*.json"):
                shutil.copy2(extra, SHIPPED / f.name / extra.name)
            if (cached / "ablation" / "ablation.json").exists():
                shutil.rmtree(SHIPPED / f.name / "ablation", ignore_errors=True)
                shutil.copytree(cached / "ablation", SHIPPED / f.name / "ablation")


def choose_beta(arch: str, max_steps: int = 2000) -> dict:
    """Run the Elbow sweep of ``arch`` (full profile, converged masks) and write ``beta_choice`` into the
    network's card, with ``beta_from`` saying exactly how it was found."""
    from nadkit.networks import models_dir

    path = models_dir() / f"{arch}.json"
    card = json.loads(path.read_text())
    card["nad"] = {"steps": "auto", "max_steps": max_steps, "lr": 0.1, "batch_per_class": 16,
                   "beta": card["nad"].get("beta")}
    path.write_text(json.dumps(card, indent=2) + "\n")
    s = Settings.of(archs=arch)
    sweep, choice = elbow(arch, s), beta_choice(arch, s)
    card["nad"]["beta"] = choice["beta"]
    card["nad"]["beta_from"] = {
        "method": "Elbow: Kneedle knee of the binarised masks' loss (cross-entropy + relative "
                  "reconstruction error) against log10(beta), lowered along the grid only while a class's "
                  "sub-architecture collapses (keeps no channel at some point) at seed 0; the seeds' "
                  "agreement at the chosen beta is reported (raw Jaccard and chance-corrected kappa), "
                  "not used to choose",
        "betas": sweep["betas"], "classes": sweep["classes"], "steps": sweep["steps"],
        "max_steps": sweep["max_steps"], "seed": 0, "knee": choice["knee"],
        "collapsed": {str(t["beta"]): t["collapsed"] for t in choice["tried"]},
        "seed_agreement": {str(t["beta"]): t["seed_agreement"] for t in choice["tried"]},
        "seeds": s.seeds,
        "command": f"python -m nadbook.book beta {arch}"}
    path.write_text(json.dumps(card, indent=2) + "\n")
    return choice


def _reproduce_network(arch: str) -> tuple[list[str], float]:
    """One network of ``reproduce``, in its own process on one thread (the shipped results were
    computed on one, which fixes the summation order): its run folders and wall time."""
    global SHIPPED
    torch.set_num_threads(1)
    SHIPPED = Path("/nonexistent")  # read nothing shipped: compute everything
    seconds: dict[str, float] = {}
    used = precompute(archs=[arch], seconds=seconds)
    print(f"{arch}: reproduced in {seconds[arch] / 60:.1f} min", flush=True)
    return [str(f) for f in used], seconds[arch]


def _precompute_network(arch: str) -> list[str]:
    """One network of ``precompute_over``, in its own process on one thread: its run folders."""
    torch.set_num_threads(1)
    return [str(f) for f in precompute(archs=[arch])]


def precompute_over(jobs: int, archs: list[str] | None = None) -> list[Path]:
    """``precompute``, the networks shared out over ``jobs`` one-thread processes (two small
    networks' convolutions gain little from a second thread; two processes use both cores)."""
    from nadbook import book, tasks  # by name, so that the workers find it; Dask only when asked for

    archs = archs or Settings.of().archs
    return [Path(f) for folders_ in tasks.run(book._precompute_network, archs, jobs, what="networks")
            for f in folders_]


def reproduce(archs: list[str] | None = None, jobs: int = 2,
              scheduler: str | None = None) -> tuple[list[Path], dict[str, float]]:
    """Recompute everything the book reads for ``archs`` from scratch, each network a task
    (``nadbook.tasks``: Dask, a local cluster of ``jobs`` one-thread workers, or the scheduler
    at ``scheduler``), bit for bit what one process gives: each network's arithmetic is
    unchanged. Returns the run folders and each network's wall time and the total."""
    import time

    from nadbook import book, tasks  # by name, so that the workers find it; Dask only when asked for

    archs = archs or Settings.of().archs
    start, used, seconds = time.perf_counter(), [], {}
    for arch, (folders_, wall) in zip(archs, tasks.run(book._reproduce_network, archs, jobs, scheduler,
                                                       what="networks")):
        used += [Path(f) for f in folders_]
        seconds[arch] = wall
    seconds["total"] = time.perf_counter() - start
    return used, seconds


def main(argv: list[str] | None = None) -> None:
    """``python -m nadbook.book [precompute [--jobs N]|reproduce [--jobs N] [--scheduler ADDRESS]|ship|beta|sweep|match]
    [ARCH ...]``: compute
    what the book reads (reusing shipped results); recompute every shipped result from scratch
    (networks over N one-thread processes, default 2) and ship it; ship what was computed; or
    choose the cards' beta with the Elbow sweep; or run the sparsity sweep (``nadbook.sparsity``)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    command, archs = (args[0], args[1:]) if args else ("precompute", [])
    if command == "precompute":
        command = ""
    if command == "reproduce":
        jobs, scheduler = 2, None
        while archs[:1] in (["--jobs"], ["--scheduler"]):
            if archs[0] == "--jobs":
                if len(archs) < 2 or not archs[1].isdigit() or int(archs[1]) < 1:
                    raise SystemExit("reproduce --jobs takes a whole number of processes, e.g. --jobs 2")
                jobs = int(archs[1])
            elif len(archs) < 2:
                raise SystemExit("reproduce --scheduler takes a Dask scheduler's address, e.g. tcp://host:8786")
            else:
                scheduler = archs[1]
            archs = archs[2:]
        unknown = [a for a in archs if a not in ARCHS]
        if unknown:
            raise SystemExit(f"unknown network(s) {', '.join(unknown)}: choose from {', '.join(ARCHS)}")
        used, seconds = reproduce(archs or None, jobs, scheduler)
        ship(used)
        print(f"reproduced on {scheduler or f'{jobs} one-thread process(es)'}, wall time:")
        for arch, t in seconds.items():
            print(f"  {arch:<12} {t / 60:7.1f} min")
    elif command == "beta":
        for arch in archs:
            print(arch, choose_beta(arch))
    elif command == "sweep":
        from nadbook.sparsity import run

        options = {"--instance": None, "--betas": None, "--objective": None}
        for opt in options:
            if opt in archs:
                i = archs.index(opt)
                if i + 1 >= len(archs):
                    raise SystemExit(f"sweep {opt} takes a value, e.g. sweep vgg16 --instance 1 --betas 0.6,0.7")
                options[opt], archs = archs[i + 1], archs[:i] + archs[i + 2:]
        unknown = [a for a in archs if a not in ARCHS]
        if unknown or not archs:
            raise SystemExit(f"sweep takes networks from {', '.join(ARCHS)}, e.g. sweep vgg16 --instance 1 --betas 0.6")
        try:
            instance = int(options["--instance"] or 0)
            betas = tuple(float(b) for b in options["--betas"].split(",")) if options["--betas"] else None
        except ValueError:
            raise SystemExit("sweep --instance takes 0, 1 or 2 and --betas numbers, e.g. --betas 0.6,0.7") from None
        if instance not in (0, 1, 2):
            raise SystemExit("sweep --instance takes 0, 1 or 2 (the embedded networks' trained instances)")
        objective = options["--objective"] or "official"
        if objective not in OBJECTIVES:
            raise SystemExit("sweep --objective takes official (the authors' code), paper (Eq. 13) or contrast")
        run(archs, instance, betas, objective)
    elif command == "match":
        match(archs)
    elif command == "ship":
        ship(precompute(archs=archs or None))
    elif archs[:1] == ["--jobs"]:
        if len(archs) < 2 or not archs[1].isdigit() or int(archs[1]) < 1:
            raise SystemExit("precompute --jobs takes a whole number of processes, e.g. --jobs 2")
        precompute_over(int(archs[1]), archs[2:] or None)
    else:
        precompute(archs=archs or None)


def match(args: list[str]) -> None:
    """``match ARCH [--objective O] [--beta B] (--instance N | --permuted)``: the run of instance N
    (or of the label-permuted network) at the sparsity of instance 0's run at beta B (default: the
    card's), searched for as the book does (``like``), then, for an instance, everything the
    sparsity chapter reads of it (``sparsity.at_beta``)."""
    usage = "e.g. match vgg16 --objective contrast --beta 0.4 --instance 1, or match vgg16 --permuted"
    arch, *rest = args or [""]
    opts = dict(zip(rest[::2], rest[1::2])) if "--permuted" not in rest else {"--permuted": ""} | dict(
        zip([r for r in rest if r != "--permuted"][::2], [r for r in rest if r != "--permuted"][1::2]))
    if arch not in ARCHS or not set(opts) <= {"--objective", "--beta", "--instance", "--permuted"} \
            or ("--instance" in opts) == ("--permuted" in opts):
        raise SystemExit(f"match takes a network of {', '.join(ARCHS)} and --instance 1 or 2 or --permuted: {usage}")
    objective = opts.get("--objective", "official")
    if objective not in OBJECTIVES or opts.get("--instance", "1") not in ("1", "2"):
        raise SystemExit(f"match --objective takes {', '.join(OBJECTIVES)}, --instance 1 or 2: {usage}")
    try:
        beta = float(opts["--beta"]) if "--beta" in opts else None
    except ValueError:
        raise SystemExit(f"match --beta takes a number: {usage}") from None
    s = replace(Settings.of(archs=arch), beta=beta, objective=objective)
    reference = folder(arch, s)
    if "--permuted" in opts:
        found = like(reference, arch, s, "permuted", SANITY_TARGET, strict=True)
    else:
        found = like(reference, arch, s, instance_option(int(opts["--instance"])), strict=True)
        if found is not None:
            from nadbook.sparsity import at_beta
            at_beta(found, s)
    print(f"{arch}: no run keeps {matched.kept(reference):.3f} within {matched.TOLERANCE}" if found is None else
          f"{arch}: {found.name} keeps {matched.kept(found):.3f} (reference {matched.kept(reference):.3f})")


# --- the convergence study ---------------------------------------------------------------------
def convergence_study(arch: str, s: Settings, smooth: int = 50) -> dict:
    """What the runs of every seed say about convergence, per point: the share of channels that
    flip per step (mean over classes, averaged over ``smooth`` steps), the same-class agreement of
    two seeds' binarised masks every ``SNAPSHOT_EVERY`` steps (mean Jaccard over classes and seed
    pairs; a class that stopped keeps its final masks), and the final agreement."""
    from nadkit.stats import same_class_agreement

    subs = seeds_of(arch, s, progress=False)
    hists = [load_history(f) for f in folders(arch, s, progress=False)]
    widths = torch.tensor([m.shape[1] for m in subs[0].masks.values()], dtype=torch.float32)
    flips = hists[0]["flips"].float() / widths  # [classes, steps, points]
    smooth = max(1, min(smooth, flips.shape[1]))
    steps = flips.shape[1] // smooth * smooth
    smoothed = flips[:, :steps].mean(0).view(-1, smooth, len(widths)).mean(1)  # [windows, points]
    agreement = None
    if len(subs) > 1 and all(h is not None and f"snap.{subs[0].points[0]}" in h for h in hists):
        n = min(h[f"snap.{subs[0].points[0]}"].shape[1] for h in hists)
        agreement = [[float(same_class_agreement([[h[f"snap.{p}"][:, t].bool()] for h in hists])[:, 0].mean())
                      for t in range(n)] for p in subs[0].points]
    per_class = same_class_agreement([sub.binary() for sub in subs]) if len(subs) > 1 else None
    final = per_class.mean(0) if per_class is not None else None
    taken = [[st.get("steps") for st in sub.status.values()] for sub in subs]
    states = [[st.get("state") for st in sub.status.values()] for sub in subs]
    return {"points": subs[0].points, "flip_steps": [smooth * (i + 0.5) for i in range(len(smoothed))],
            "flips": smoothed.T.tolist(), "snapshot_steps": [SNAPSHOT_EVERY * (t + 1) for t in range(
                len(agreement[0]) if agreement else 0)], "agreement": agreement,
            "final_agreement": final.tolist() if final is not None else None,
            "final_per_class": per_class.tolist() if per_class is not None else None,
            "class_names": subs[0].class_names, "steps": taken, "states": states,
            "max_steps": subs[0].config.get("convergence", {}).get("max_steps")}


def findings(source: str, s: Settings, progress: bool = True) -> list[dict]:
    """The findings (``nadkit.findings.of_run``) of every trained instance of ``source``."""
    from nadkit.findings import of_run

    reports = evaluated(source, s, progress, over="instances")
    reports = [_with_uniform_p(r, f, s, progress)
               for r, f in zip(reports, instance_folders(source, s, progress))]
    return [of_run(r, c, hit_by_class=control_hit_by_class(f, s, progress) if c.get("random_hit_rate_draws") else None)
            for r, c, f in zip(reports, controls(source, s, progress, over="instances"),
                               instance_folders(source, s, progress))]


VERDICT_DRAWS = 9_999  # uniform-overlap null draws behind a verdict: smallest two-sided p 0.0002,
# so Holm over 17 points can still reach 0.05 (with 999 draws it stops at 0.034)


def verdict_draws() -> int:
    """Null draws behind a verdict's p against random channels (the smoke profile: its own)."""
    return chance_draws() if profile() == "smoke" else VERDICT_DRAWS


def uniform_p(out: Path, s: Settings, progress: bool = True) -> list[float] | None:
    """Per point, the two-sided p of the run's mean pairwise overlap against random channels of
    each class's size, with ``VERDICT_DRAWS`` draws (the smoke profile: its ``chance_draws``).
    Cached beside the run."""
    from nadkit.overlap import point_test

    draws = verdict_draws()
    path = _cache(out, f"p-uniform-{_key({'draws': draws, 'seed': 0}, 'p-uniform')}.json")
    if not path.exists():
        masks = [b.numpy() for b in SubArchitectures.load(out).binary()]
        if len(masks[0]) < 3:
            return None
        p = [point_test(m, "uniform", draws, seed=i)["p"]
             for i, m in enumerate(tqdm(masks, desc="p against random channels", disable=not progress,
                                        leave=False))]
        path.write_text(json.dumps({"draws": draws, "p": p}) + "\n")
    return json.loads(path.read_text())["p"]


def rival_findings(source: str, s: Settings, progress: bool = True) -> dict[str, list[dict]]:
    """The same findings for each heuristic of ``BASELINE_METHODS`` at NAD's channel counts, per
    trained instance (its hit rate on NAD's control mosaics, tested against NAD's random draws),
    with NAD's sets against its own on the overlap findings (``findings.versus_nad``)."""
    from nadkit.findings import of_run, versus_nad

    res = baselines(source, s, progress)
    ctrl = controls(source, s, progress, over="instances")
    return {m: [versus_nad(of_run(_with_uniform_p(r["report"], r["folder"], s, progress), c, hit=r["hit"],
                                  cross=r["cross"], hit_by_class=control_hit_by_class(r["folder"], s, progress)
                                  if c.get("random_hit_rate_draws") else None),
                           nad["sub"].binary(), r["sub"].binary())
                for r, c, nad in zip(res[m], ctrl, res["nad"])]
            for m in BASELINE_METHODS}


def _with_uniform_p(report: dict, out: Path, s: Settings, progress: bool) -> dict:
    """``report`` with its p against random channels from ``uniform_p`` (a verdict's draws)."""
    return report | {"similarity_p_uniform": uniform_p(out, s, progress),
                     "similarity_p_uniform_draws": verdict_draws(), "chance_draws": chance_draws()}


def verdicts(source: str, s: Settings, progress: bool = True) -> dict:
    """Every finding's verdict on ``source`` (``nadbook.verdicts.network_verdicts``): over its
    trained instances, with the best heuristic at the same counts as its rival."""
    from nadbook.verdicts import network_verdicts

    points = SubArchitectures.load(instance_folders(source, s, progress)[0]).points
    return network_verdicts(label(source), points, findings(source, s, progress),
                            rival_findings(source, s, progress))


def random_report(out: Path, s: Settings, progress: bool = True) -> dict:
    """The measures against chance (``pipeline.with_chance``) of random sub-architectures with
    the channel counts of the run in ``out``, read with the network's own confusions: the
    control of the findings that any channel choice at those counts would show. Cached."""
    path = _cache(out, f"random-chance-{_key({'draws': chance_draws(), 'seed': 0}, 'random-chance')}.json")
    if not path.exists():
        sub = SubArchitectures.load(out)
        report = _evaluated(out, s, "paper", progress)
        rand = random_like(sub.binary(), seed=sub.config["seed"])
        per_point, sim = similarity(rand)
        base = {k: report[k] for k in ("points", "classes", "class_names", "confusion", "kept")}
        mis = misjudgment(torch.tensor(report["confusion"]), sim, sub.classes, report["misjudgment"]["min_rate"])
        base |= {"similarity": per_point, "similarity_matrix": sim.tolist(), "misjudgment": mis}
        path.write_text(json.dumps(pipeline.with_chance(base, rand, chance_draws())) + "\n")
    return json.loads(path.read_text()) | {"chance_draws": chance_draws()}


def control_hit(out: Path, s: Settings, progress: bool = True) -> list[float]:
    """The hit rate of the run in ``out`` per point on its NAD run's control mosaics (a baseline
    has NAD's channel counts, so NAD's random draws are its control too), cached."""
    return _control_hits(out, s, progress, "control-hit", lambda hits, quads, classes: hits.mean((0, 1)))


def control_hit_by_class(out: Path, s: Settings, progress: bool = True) -> list[list[float]]:
    """Per class and point, the hit rate of the run in ``out`` on the same mosaics, split by the
    class each quadrant shows (``metrics.hit_rate_by_class``), cached: the values on which NAD's
    hit rate is compared with a heuristic's, class by class."""
    return _control_hits(out, s, progress, "control-hit-class", hit_rate_by_class)


def _control_hits(out: Path, s: Settings, progress: bool, name: str, summarise) -> list:
    """The hit rates of the run in ``out`` on the control's mosaics, ``summarise(hits, quadrant
    classes, classes)``, cached under ``name`` and the mosaics' settings."""
    n = max(4, s.mosaics // 20)
    path = _cache(out, f"{name}-{_key(_test_key({'mosaics': n, 'top': s.top, 'seed': 0}), name)}.json")
    if not path.exists():
        sub = SubArchitectures.load(out)
        model, points, test = network_of(sub, s.device)
        hits = hit_rate(model, points, sub.binary(), sub.classes, test, n, s.top, 0, progress=progress)
        quads = mosaics(test, n, seed=0, classes=sub.classes)[1]
        path.write_text(json.dumps(summarise(hits, quads, sub.classes).tolist()) + "\n")
    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
