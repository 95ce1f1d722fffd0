"""The jobs the CLI and the notebooks share: ``disentangle`` a network into a results folder
(resumable, shared out among ``torchrun`` processes, reused when the configuration is unchanged),
``merge`` finished classes into a result, and ``evaluate`` a result."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from . import ablate
from .anynet import input_channels, is_external
from .data import AuthorsAugmented
from .checks import check_nad_settings, resolve_device  # noqa: F401  (resolve_device re-exported)
from .disentangle import ELBOW_BETAS, NAD, Convergence, class_status, elbow_classes, elbow_sweep  # noqa: F401
from .errors import NadkitError
from .evaluation import NO_HIT_RATE, evaluate_masks, hit_settings, recorded_points, with_chance  # noqa: F401
from .files import atomic, file_sha256
from .networks import check_arch, weights_sha256  # noqa: F401
from .points import mask_points  # noqa: F401
from .settings import Engine, Method, from_config, to_config  # noqa: F401
from .spec import (Spec, check_settings, check_weights, fit_channels, is_weights_file, nad_defaults,  # noqa: F401
                   network, network_of, parse_classes, passes_in_steps, spec_of, split, warn_defaults, with_network)
from .baselines import baseline_masks, channel_scores
from .partial import PartialRun, history_tensors
from .ranks import Ranks
from .subarch import SubArchitectures, read_meta, warn_flat_points
from .version import __version__


def _prepare(spec: Spec):
    """Check every setting, then build the network, its points, the training split and the optimizer."""
    check_arch(spec.arch)
    defaults = nad_defaults(spec.arch, spec.dataset)
    s = Spec(**asdict(spec))
    s.beta = defaults.get("beta", 0.02) if s.beta is None else s.beta
    s.steps = defaults.get("steps", "auto") if s.steps is None else s.steps
    check_settings(s)
    device = resolve_device(s.device)
    train = split(s, "train")
    classes = parse_classes(s.classes, train.class_names)
    if s.max_steps is None:
        s.max_steps = defaults.get("max_steps") or passes_in_steps(train, classes, defaults.get("passes", 21),
                                                                    s.batch_per_class)
    model, points = network(s.arch, s.dataset, s.weights, s.device, len(train.class_names), s.points, s.image_size)
    train = fit_channels(train, model)
    method, engine = s.settings(input_channels(model))
    config = {"arch": s.arch, "dataset": s.dataset, "weights": str(s.weights) if s.weights else None,
              "weights_sha256": weights_sha256(model)} | to_config(method, engine, device.type)
    if s.points is not None or is_external(s.arch):
        config["points"] = [p.module for p in points]  # what evaluate, merge and resume rebuild
    if s.dataset != "fashion-mnist":
        config["image_size"], config["decode"] = s.image_size, s.decode  # decoders differ in the last bits
        config["preprocessing"] = train.preprocessing()
    if s.augment is not None:
        if s.augment != "authors":
            raise NadkitError(f"--augment takes 'authors' (their crop and flip during NAD), got {s.augment!r}")
        if not s.dataset.startswith("imagefolder:"):  # image folders apply it already
            train = AuthorsAugmented(train)
        config["augment"] = s.augment
    warn_defaults(spec, s)
    nad = NAD(model, points, method, engine)
    return nad, train, classes, config


def elbow(spec: Spec, out: str | Path, progress: bool = True, betas: Sequence[float] = ELBOW_BETAS,
          n_classes: int = 4) -> dict:
    """The Elbow sweep of beta on ``n_classes`` of the spec's classes (spread evenly over them),
    cached in ``out/elbow.json``."""
    nad, train, classes, config = _prepare(Spec(**dict(asdict(spec), beta="elbow")))
    return _elbow(nad, train, classes, Path(out), config, progress, betas=betas, n_classes=n_classes)


def _elbow(nad: NAD, data, classes: list[int], out: Path, key: dict, progress: bool, write: bool = True,
           betas: Sequence[float] = ELBOW_BETAS, n_classes: int = 4) -> dict:
    """The sweep, from ``out/elbow.json`` when that holds this key (a damaged cache is computed again);
    ``write``: record it there, atomically (rank 0 only: the other ranks compute the same sweep)."""
    few = elbow_classes(classes, n_classes)
    key = dict(key, elbow_classes=few, elbow_betas=list(betas))
    path = out / "elbow.json"
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, dict) and cached.get("key") == key and isinstance(cached.get("sweep"), dict) \
                and isinstance(cached["sweep"].get("beta"), (int, float)):
            return cached["sweep"]
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # absent or damaged: computed again below
    sweep = elbow_sweep(nad, data, few, betas=betas, progress=progress)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        atomic(path, lambda p: p.write_text(json.dumps({"key": key, "sweep": sweep}, indent=1) + "\n"))
    return sweep


def disentangle(spec: Spec, out: str | Path, progress: bool = True, allow_other_weights: bool = False) -> SubArchitectures:
    """Learn the sub-architectures of the spec's classes into the folder ``out``.

    Unset beta/steps come from the network's card; ``beta="elbow"`` runs the Elbow sweep first and
    records it. Each finished class is saved at once; re-running the same command resumes, and
    returns the saved result when it is complete. Under ``torchrun`` the classes are shared out
    among the processes and rank 0 writes the one result, the same as one process writes.
    Results in ``out`` of the same run on other weights of the network are refused unless
    ``allow_other_weights`` (then they are replaced).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NadkitError(f"--out {out} is a file; name a folder (new or holding results of nadkit disentangle)")
    ranks = Ranks()
    if ranks.world > 1 and spec.device == "cuda":
        spec = Spec(**dict(asdict(spec), device=f"cuda:{ranks.local}"))
    nad, train, classes, config = _prepare(spec)
    if (out / "meta.json").exists():  # before the Elbow sweep writes its cache into out
        _refuse_other_beta(read_meta(out, older_ok=True)["config"], config, out)
    if config["beta"] == "elbow":
        config["elbow"] = _elbow(nad, train, classes, out, dict(config), progress and ranks.rank == 0,
                                 write=ranks.rank == 0)
        config["beta"] = config["elbow"]["beta"]
    nad.beta = config["beta"]
    if (out / "meta.json").exists():
        meta = read_meta(out, older_ok=True)  # an older nadkit's result is replaced (it lacks the weights' hash)
        _refuse_other_weights(meta["config"], config, f"{out} holds a result", allow_other_weights)
        if meta["config"] == config and meta["classes"] == classes:
            return SubArchitectures.load(out)
        _refuse_other_beta(meta["config"], config, out)
    recorded = PartialRun.recorded_config(out)
    if recorded is not None and PartialRun(out, recorded, create=False).done():
        # (a damaged config.json that no finished class shares drops nothing, so it is not refused)
        _refuse_other_weights(recorded, config, f"{out}/partial holds finished classes", allow_other_weights)
    partial = PartialRun(out, config, create=ranks.rank == 0)
    ranks.wait("partial")
    finished = set(partial.done())
    ranks.wait("listed")  # every rank has listed the same finished classes before any adds one
    todo = [c for c in classes if c not in finished][ranks.rank::ranks.world]
    _test_die(ranks.rank)
    start = time.time()

    def save_chunk(chunk: list[int], res) -> None:
        for j, c in enumerate(chunk):
            partial.save(c, {p.name: m[j] for p, m in zip(nad.points, res.masks)}, class_status(res, j, nad.steps == "auto"),
                         history=class_history(res.job(j), nad.points))

    if todo:
        k = spec.class_batch or auto_class_batch(nad, len(todo))
        nad.run(train, todo, class_batch=k, progress=progress, on_chunk=save_chunk)
        (out / f"timing-rank{ranks.rank}.json").write_text(
            json.dumps({"seconds": round(time.time() - start, 1), "classes_run": len(todo), "class_batch": k}) + "\n")
    ranks.wait("fitted")
    if ranks.rank == 0:
        merge(out, classes, train.class_names, network_sha256=config["weights_sha256"])
    ranks.wait("merged")
    return SubArchitectures.load(out)


def class_history(res, points) -> dict[str, torch.Tensor]:
    """One class's optimisation history (a one-job ``NADResult``) as tensors for its partial file."""
    out = {"flips": res.flips[0]}
    for p, snaps in zip(points, res.snapshots or []):
        out[f"snap.{p.name}"] = snaps[0].to(torch.uint8)
    return out


def _test_die(rank: int) -> None:
    """Tests only: NADKIT_TEST_DIE_RANK=r makes rank r vanish here, as a crashed machine would."""
    if os.environ.get("NADKIT_TEST_DIE_RANK") == str(rank):
        os._exit(0)


def _refuse_other_weights(found: dict, config: dict, what: str, allow: bool) -> None:
    """One line when ``found`` is this run's configuration but on other weights of the network."""
    if allow or "weights_sha256" not in found or found["weights_sha256"] == config.get("weights_sha256"):
        return  # (an older nadkit's result, without the hash, is simply replaced)
    def strip(c: dict) -> dict:  # an Elbow run's beta depends on the weights too
        return {k: v for k, v in c.items() if k not in ("weights_sha256", "elbow") and not (k == "beta" and "elbow" in c)}

    if strip(found) == strip(config):
        raise NadkitError(f"{what} of this run on other weights of {config['arch']} (sha256 "
                          f"{str(found.get('weights_sha256'))[:12]}, now {config['weights_sha256'][:12]}); restore those "
                          "weights, use another --out, or pass --allow-other-weights to replace them")


def _refuse_other_beta(found: dict, config: dict, out: Path) -> None:
    """One line when ``out`` holds a result at another beta: never replaced silently. (A run with
    ``beta="elbow"`` matches a result of the Elbow sweep until the sweep has given its beta.)"""
    if config["beta"] == "elbow" and "elbow" in found:
        return
    if "beta" in found and found["beta"] != config["beta"]:
        raise NadkitError(f"{out} holds a result at beta {found['beta']}, this run's is {config['beta']}; give another "
                          f"--out to keep both (or delete {out} to replace it)")


def provenance(config: dict) -> dict:
    """What made a result: nadkit's and torch's versions, the device, the weights' sha256 (and the
    seed of random weights)."""

    device = config.get("device", "cpu")
    if device == "cuda" and torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name()})"
    prov = {"nadkit": __version__, "torch": torch.__version__, "device": device,
            "weights": config.get("weights"), "weights_sha256": config.get("weights_sha256")}
    if config.get("weights") == "none":
        prov["weights_seed"] = 0
    return prov


def merge(out: str | Path, classes: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
          allow_other_weights: bool = False, network_sha256: str | None = None) -> SubArchitectures:
    """Assemble the finished classes in ``out/partial`` into ``masks.safetensors`` + ``meta.json``
    (``nadkit merge``: for processes that did not share a file system, copy their partial/ here).
    Refused unless the network named in the run's configuration still has the weights the classes
    were learned on (``network_sha256``: that hash, when the caller has loaded the network)."""
    out = Path(out)
    cfg_path = out / "partial" / "config.json"
    if not cfg_path.exists():
        raise NadkitError(f"{out} has no partial/ results to merge; run nadkit disentangle --out {out}")
    config = PartialRun.recorded_config(out)
    if config is None or not {"arch", "dataset"} <= set(config):
        raise NadkitError(f"{cfg_path} is corrupt; re-run the nadkit disentangle command of {out} (its finished "
                          "classes are kept) instead of merge")
    if network_sha256 is None:
        spec = spec_of(config)
        model, _ = network(spec.arch, spec.dataset, spec.weights, "cpu", len(split(spec, "train").class_names),
                           config.get("points"), spec.image_size)
        check_weights(config, model, f"{out}/partial", allow_other_weights)
    elif not allow_other_weights and config.get("weights_sha256") != network_sha256:
        raise NadkitError(f"{out}/partial was learned on other weights (sha256 {str(config.get('weights_sha256'))[:12]}, "
                          f"now {network_sha256[:12]}); pass --allow-other-weights if you mean it")
    partial = PartialRun(out, config, create=False)
    if class_names is None:
        class_names = split(spec_of(config), "train").class_names
    classes = list(classes) if classes is not None else partial.present()
    if not classes:
        raise NadkitError(f"{out}/partial holds no finished class; run nadkit disentangle --out {out}")
    missing = [c for c in classes if c not in set(partial.done())]
    if missing:
        raise NadkitError(f"classes {missing[:5]} are not finished in {out}/partial (or their files are damaged or of "
                          "another run); re-run the disentangle command to compute them, or copy them, then merge")
    loaded = [partial.load(c) for c in classes]
    names = list(loaded[0][0])
    masks = {p: torch.stack([m[p] for m, _ in loaded]) for p in names}
    status = {str(c): s for c, (_, s) in zip(classes, loaded)}
    result = SubArchitectures(masks, classes, [class_names[c] for c in classes], config, status, provenance(config))
    history = history_tensors([partial.load_history(c) for c in classes], names)
    result.save(out, extra={"history.safetensors": history} if history else None)
    partial.remove()
    timings = sorted(out.glob("timing-rank*.json"))
    if timings:
        runs = []
        for t in timings:
            try:
                runs.append(json.loads(t.read_text()))
            except (OSError, ValueError):
                pass  # a timing is a nicety: a damaged one is dropped
        if runs:
            (out / "timing.json").write_text(json.dumps({"seconds": max(r.get("seconds", 0) for r in runs),
                                                         "classes_run": sum(r.get("classes_run", 0) for r in runs)}) + "\n")
        for t in timings:
            t.unlink()
    return result


def auto_class_batch(nad: NAD, classes: int) -> int:
    """Classes per pass: all of them (up to 16) on a CPU; on a GPU as many as fit in 80% of the
    free memory, measured with a one-class step."""
    if nad.device.type != "cuda":
        return min(classes, 16)
    return max(1, min(classes, nad.classes_that_fit()))


def baseline(folder: str | Path, method: str, out: str | Path, per_class: int = 64, device: str = "cpu",
             allow_other_weights: bool = False, network: dict | None = None) -> SubArchitectures:
    """A result folder ``out`` whose sub-architectures keep, per class and point, as many channels as
    the NAD result in ``folder``, chosen by a heuristic (``nadkit.baselines``) instead of NAD; every
    figure of ``evaluate`` then compares like with like."""

    sub = with_network(SubArchitectures.load(folder), **(network or {}))
    model, points, _ = network_of(sub, device, allow_other_weights)
    cfg = sub.config
    train = fit_channels(split(spec_of(cfg), "train"), model)
    masks = baseline_masks(method, model, points, train, sub.binary(), sub.classes, per_class, cfg["seed"])
    config = dict(cfg, baseline={"method": method, "per_class": per_class, "of": Path(folder).name,
                                 "masks_sha256": file_sha256(Path(folder) / "masks.safetensors")})
    result = SubArchitectures({p: m.float() for p, m in zip(sub.points, masks)}, sub.classes, sub.class_names, config,
                              {c: dict(st, state="baseline") for c, st in sub.status.items()}, provenance(config))
    result.save(out)
    return result


def evaluate(folder: str | Path, mosaics: int | None = None, top: float | None = None, seed: int = 0,
             device: str = "cpu", progress: bool = True, hit_protocol: str = "paper",
             allow_other_weights: bool = False, chance_draws: int = 999,
             test_per_class: int | None = None, network: dict | None = None) -> dict:
    """Every per-layer figure of the paper for the sub-architectures in ``folder``, with what
    random channels of the same sizes give (``with_chance``, ``chance_draws`` null draws).
    ``mosaics`` and ``top`` default to the hit-rate protocol's ("paper": 1,000 and 5%;
    "authors": 100 and 10%). ``test_per_class``: only the first so many test images of each class
    (a quick look; the paper's figures use the whole test set). ``network``: arch, weights and
    dataset for a result that does not name them (``with_network``)."""
    mosaics, top = hit_settings(hit_protocol, mosaics, top)
    sub = with_network(SubArchitectures.load(folder), **(network or {}))
    model, points, test = network_of(sub, device, allow_other_weights, test_per_class)
    if len(sub.classes) >= 4:

        warn_flat_points(model, points, tuple(test.load(torch.tensor([0])).shape[1:]))
    report = evaluate_masks(sub, model, points, test, mosaics, top, seed, progress, hit_protocol, chance_draws)
    return report | ({"test_per_class": test_per_class} if test_per_class is not None else {})


def ablation(folder: str | Path, out: str | Path | None = None, points: Sequence[str] | None = None,
             ks: Sequence[int] | None = None, orders: Sequence[str] = ablate.ORDERS, draws: int = ablate.DRAWS,
             popularity_draws: int = ablate.POPULARITY_DRAWS, per_class: int = ablate.PER_CLASS,
             device: str = "cpu", progress: bool = True, allow_other_weights: bool = False, network: dict | None = None) -> dict:
    """``nadkit ablate``: every ablation of the sub-architectures in ``folder`` at ``points``
    (default all), into ``out`` (default ``folder/ablation``): one safetensors file per point,
    then ``ablation.json`` (configuration, provenance, classes, points, files' sha256). Re-running
    the same command resumes; a finished one is loaded. Returns ``ablate.load(out)``. A job, so it
    lives here beside ``evaluate``; the arithmetic it runs is ``nadkit.ablate``'s (called through the
    module, so that a test's stand-in for ``ablate.save_point`` is the one used)."""

    sub = with_network(SubArchitectures.load(folder), **(network or {}))
    out = Path(out) if out is not None else Path(folder) / "ablation"
    if out.exists() and not out.is_dir():
        raise NadkitError(f"--out {out} is a file; name a folder for the ablation's results")
    orders, chosen = ablate.check_arguments(sub.points, points, orders, draws, popularity_draws, per_class, ks,
                                            cli=True, where=str(folder))
    model, all_points, test = network_of(sub, device, allow_other_weights)
    idx = [sub.points.index(p) for p in chosen]
    binary = [sub.binary()[i] for i in idx]
    config = {"of": Path(folder).name, "masks_sha256": file_sha256(Path(folder) / "masks.safetensors"),
              "points": chosen, "ks": list(ks) if ks else "auto", "orders": orders, "draws": draws,
              "popularity_draws": popularity_draws, "per_class": per_class, "seed": sub.config["seed"]}
    final = out / "ablation.json"
    if final.exists():
        try:
            if json.loads(final.read_text()).get("config") == config:
                return ablate.load(out)
        except (ValueError, UnicodeDecodeError, NadkitError):
            pass  # damaged: computed again from the finished points
    cfg = sub.config
    spec = spec_of(cfg)
    ranks = {"nad": [ablate.ranking(sub.masks[p]) for p in chosen]}
    train = fit_channels(split(spec, "train"), model) if len(orders) > 1 else None
    for name in orders[1:]:
        scores = channel_scores(name, model, [all_points[i] for i in idx], train, sub.classes, seed=cfg["seed"])
        ranks[name] = [ablate.ranking(s) for s in scores]
    x, labels = ablate.test_sample(test, sub.classes, per_class)
    files = out / "points"
    files.mkdir(parents=True, exist_ok=True)
    ablate.run_points(model, [all_points[i] for i in idx], binary, ranks, x, labels, sub.classes, ks, draws,
                      popularity_draws, cfg["seed"],
                      done=lambda i: ablate.load_point(files / f"{chosen[i]}.safetensors", config),
                      save=lambda i, r: ablate.save_point(files / f"{chosen[i]}.safetensors", r, config),
                      progress=progress, positions=idx)
    meta = {"config": config, "provenance": provenance(cfg), "classes": sub.classes,
            "class_names": sub.class_names, "points": chosen,
            "kept": {p: b.sum(1).tolist() for p, b in zip(chosen, binary)},
            "matrix_k": {p: ablate.matrix_k(b) for p, b in zip(chosen, binary)},
            "files": {p: file_sha256(files / f"{p}.safetensors") for p in chosen}}
    atomic(final, lambda p: p.write_text(json.dumps(meta, indent=1) + "\n"))
    return ablate.load(out)
