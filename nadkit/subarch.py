"""Sub-architectures: the result type of NAD and its safe on-disk form.

A result folder holds ``masks.safetensors`` (one float32 tensor per mask point, key = point name,
shape [classes, channels], values = sigmoid of the logits) and ``meta.json`` (classes, names,
points in order, configuration, per-class status, provenance, and the sha256 of every file of
the result). ``meta.json`` is written last: it commits the result. While a run is under way, each
finished class is written atomically to ``partial/`` (``nadkit.partial``) so that a killed run resumes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .ablate import check_arguments, matrix_k, ranking, run_points, test_sample
from .anynet import check_channels, is_external
from .baselines import channel_scores
from .checks import frozen, model_device
from .data import as_image_data, class_index, load_batch
from .errors import NadkitError
from .evaluation import evaluate_masks, hit_settings, recorded_points
from .files import atomic as _atomic, file_sha256, fsync_dir as _fsync_dir, test_pause as _test_pause
from .networks import weights_sha256
from .points import MaskPoint, check_output, check_points, mask_points, masked, output_of, point_widths
from .results import Ablation, Evaluation, PointAblation
from .version import __version__

if TYPE_CHECKING:
    from .results import Ablation, Evaluation


def tensors_sha256(tensors: dict[str, Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes, values), independent of the file layout."""
    h = hashlib.sha256()
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _read_masks(path: Path) -> dict[str, Tensor]:
    if not path.exists():
        raise NadkitError(f"{path} not found; run `nadkit disentangle ... --out {path.parent}` first")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - a damaged file is bad input, whatever the parser says
        raise NadkitError(f"{path} is not a readable safetensors file ({_first_line(e)}); delete it and re-run "
                          "nadkit disentangle") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


META_FIELDS = {"points": list, "classes": list, "class_names": list, "config": dict, "status": dict, "files": dict}


def read_meta(folder: Path | str, older_ok: bool = False) -> dict:
    """``folder/meta.json``, checked to be a result's: a JSON object with every field of the right type
    (``older_ok``: or one written by an older nadkit, without checksums, which only a re-run may replace)."""
    folder = Path(folder)
    path = folder / "meta.json"
    if not path.is_file():
        raise NadkitError(f"{folder} holds no sub-architectures (no meta.json); run nadkit disentangle --out {folder}")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise NadkitError(f"{path} is corrupt ({_first_line(e)}); delete {folder} and re-run nadkit disentangle") from None
    if not isinstance(meta, dict):
        raise NadkitError(f"{path} is corrupt (a JSON {type(meta).__name__}, not an object); delete {folder} "
                          "and re-run nadkit disentangle")
    if older_ok and "files" not in meta:
        meta = dict(meta, files={})
    if "config" in meta and "files" not in meta:
        raise NadkitError(f"{path} was written by an older nadkit (no checksums of the result files); "
                          f"re-run nadkit disentangle --out {folder}")
    wrong = [k for k, t in META_FIELDS.items() if not isinstance(meta.get(k), t)]
    if wrong:
        raise NadkitError(f"{path} is corrupt ({wrong[0]!r} missing or not a {META_FIELDS[wrong[0]].__name__}); "
                          f"delete {folder} and re-run nadkit disentangle")
    if not all(isinstance(p, str) for p in meta["points"]) or \
            not all(isinstance(c, int) and not isinstance(c, bool) for c in meta["classes"]) or \
            not all(isinstance(n, str) for n in meta["class_names"]) or len(meta["class_names"]) != len(meta["classes"]):
        raise NadkitError(f"{path} is corrupt (points, classes or class_names malformed); delete {folder} and re-run "
                          "nadkit disentangle")
    return meta


def _check_files(folder: Path, files: dict) -> None:
    """Every file the manifest lists has the sha256 recorded when the result was committed."""
    for name, digest in files.items():
        path = folder / str(name)
        if Path(str(name)).name != name or not path.is_file():
            raise NadkitError(f"{path} is missing, yet meta.json lists it; delete {folder} and re-run nadkit disentangle")
        if file_sha256(path) != digest:
            raise NadkitError(f"{path} does not match meta.json (its sha256 differs: changed or damaged after the "
                              f"run); delete {folder} and re-run nadkit disentangle")


@dataclass
class SubArchitectures:
    """Per-class continuous masks at every mask point, with what produced them."""

    masks: dict[str, Tensor]
    classes: list[int]
    class_names: list[str]
    config: dict
    status: dict[str, dict]
    provenance: dict | None = None  # what made them: nadkit, torch, device, the weights' sha256

    @property
    def points(self) -> list[str]:
        return list(self.masks)

    def __eq__(self, other) -> bool:
        """The same points, classes, names and masks (values compared exactly), configuration and status."""
        if not isinstance(other, SubArchitectures):
            return NotImplemented
        return (self.points == other.points and self.classes == other.classes
                and self.class_names == other.class_names and self.config == other.config
                and self.status == other.status
                and all(self.masks[p].shape == other.masks[p].shape and torch.equal(self.masks[p].cpu(),
                                                                                    other.masks[p].cpu())
                        for p in self.points))

    __hash__ = None  # mutable, like the dataclass it is

    def __repr__(self) -> str:
        kept = self.kept()
        cfg = self.config
        where = cfg.get("arch") or "a network"
        capped = int((~self.converged & (self.steps >= 0)).sum()) if cfg.get("steps") == "auto" else 0
        names = ", ".join(self.class_names[:4]) + (", ..." if len(self.classes) > 4 else "")
        per_point = ", ".join(f"{p} {v:.0%}" for p, v in list(zip(self.points, kept.mean(0).tolist()))[:4]) + \
            (", ..." if len(self.points) > 4 else "")
        return (f"<SubArchitectures of {where}: {len(self.classes)} classes ({names}), {len(self.points)} points; "
                f"beta {cfg.get('beta')}; channels kept {kept.mean().item():.1%} ({per_point})"
                + (f"; {capped} classes stopped at the step limit" if capped else "") + "; .summary(), .to_frame()>")

    def to_frame(self):
        """Two pandas DataFrames: per class (steps, state, share of channels kept at each point;
        index: class names) and per point (channels, mean share kept, classes keeping all or none)."""
        import pandas as pd

        kept = self.kept()
        per_class = pd.DataFrame({"class": self.classes, "steps": self.steps.tolist(),
                                  "state": [self.status.get(str(c), {}).get("state") for c in self.classes],
                                  **{f"kept:{p}": kept[:, i].tolist() for i, p in enumerate(self.points)}},
                                 index=pd.Index(self.class_names, name="class_name"))
        b = self.binary()
        per_point = pd.DataFrame({"channels": [m.shape[1] for m in b], "kept": kept.mean(0).tolist(),
                                  "classes_keeping_all": [int(m.all(1).sum()) for m in b],
                                  "classes_keeping_none": [int((~m).all(1).sum()) for m in b]},
                                 index=pd.Index(self.points, name="point"))
        return per_class, per_point

    def summary(self) -> str:
        """A short text: per point the channels and the share kept (and classes that keep all or
        none of them), per class the steps and the state of its optimisation."""
        per_class, per_point = self.to_frame()
        lines = [f"{len(self.classes)} sub-architectures of {self.config.get('arch') or 'a network'} at beta "
                 f"{self.config.get('beta')}, {len(self.points)} points",
                 f"{'point':<14}{'channels':>9}{'kept':>8}  note"]
        for p, r in per_point.iterrows():
            note = ", ".join(t for t in (f"{int(r.classes_keeping_all)} classes keep every channel" if r.classes_keeping_all
                                         else "", f"{int(r.classes_keeping_none)} keep none" if r.classes_keeping_none
                                         else "") if t)
            lines.append(f"{p:<14}{int(r.channels):>9}{r.kept:>8.3f}  {note}".rstrip())
        lines.append(f"{'class':<14}{'steps':>7}  state")
        for name, r in list(per_class.iterrows())[:20]:
            lines.append(f"{str(name)[:13]:<14}{int(r.steps):>7}  {r.state}")
        if len(per_class) > 20:
            lines.append(f"... {len(per_class) - 20} more classes (all of them: .to_frame())")
        return "\n".join(lines)

    def binary(self) -> list[Tensor]:
        """Eq. 16: the kept channels (mask > 0.5), [classes, channels] per point, in point order."""
        return [m > 0.5 for m in self.masks.values()]

    def kept(self) -> Tensor:
        """Fraction of channels kept, [classes, points]."""
        return torch.stack([b.float().mean(1) for b in self.binary()], 1)

    @property
    def steps(self) -> Tensor:
        """Steps each class took, [classes] (-1 where the status does not say)."""
        return torch.tensor([int(self.status.get(str(c), {}).get("steps", -1)) for c in self.classes])

    @property
    def converged(self) -> Tensor:
        """Whether each class's masks stopped changing before the step limit, [classes] bool."""
        return torch.tensor([self.status.get(str(c), {}).get("state") == "converged" for c in self.classes])

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

    def mask_points_for(self, model: nn.Module) -> list[MaskPoint]:
        """The points these masks were learned at, as ``model``'s (checked to be its modules): those
        ``NAD.fit`` recorded, else the topology's card for an embedded arch, else the modules named."""

        cfg = self.config
        if cfg.get("mask_points"):

            return recorded_points(cfg, model)
        if cfg.get("points"):
            return check_points(model, [MaskPoint(m, m) for m in cfg["points"]])
        if isinstance(cfg.get("arch"), str) and not is_external(cfg["arch"]):
            return mask_points(cfg["arch"], model)
        return check_points(model, [MaskPoint(n, n) for n in self.points])

    def evaluate(self, model: nn.Module, test, class_names: Sequence[str] | None = None,
                 mosaics: int | None = None, top: float | None = None, hit_protocol: str = "paper", seed: int = 0,
                 chance_draws: int = 999, progress: bool = False, allow_other_weights: bool = False) -> "Evaluation":
        """Every figure of ``nadkit evaluate`` for these sub-architectures on ``model`` and the test set
        ``test`` (a ``torch.utils.data.Dataset`` of (image tensor, label), preprocessed as for the
        model, or a nadkit split): accuracy and specificity, similarity with its chance level and
        kappa, hit rate on 2x2 mosaics (``mosaics``, ``top``: the protocol's by default; none under 4
        classes), confusion and misjudgment. The model is used in eval mode and left as it was.
        A model with other weights than the masks were learned on (sha256) is refused unless
        ``allow_other_weights=True``."""

        mosaics, top = hit_settings(hit_protocol, mosaics, top)
        data = self._test_data(test, class_names)
        points = self._checked_model(model, allow_other_weights)
        first = class_index(data.labels, len(data.class_names))[self.classes[0]][:1]
        with frozen(model), output_of(model, self.config.get("output")):
            self._check_input(model, points, load_batch(data, first))
            report = evaluate_masks(self, model, points, data, mosaics, top, seed, progress, hit_protocol,
                                    chance_draws)
        return Evaluation.from_report(report)

    def _checked_model(self, model: nn.Module, allow_other_weights: bool) -> list[MaskPoint]:
        """This result's points on ``model``, refused in one line for a model that is no nn.Module, is
        on the meta device or has other weights than the masks were learned on."""

        if not isinstance(model, nn.Module):
            raise NadkitError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
        model_device(model)
        known = self.config.get("weights_sha256")
        if known and not allow_other_weights:
            now = weights_sha256(model)
            if now != known:
                raise NadkitError(f"these masks were learned on other weights (sha256 {known[:12]}, this model has "
                                  f"{now[:12]}); give the network they were learned on, or pass "
                                  "allow_other_weights=True")
        return self.mask_points_for(model)

    def _check_input(self, model: nn.Module, points: list[MaskPoint], batch: Tensor) -> None:
        """The images fit ``model`` (channels, output), the masks fit its points, and a warning for
        hit rates at points without space (1x1: a quadrant's share is fixed by construction)."""

        shape = tuple(batch.shape[1:])
        check_channels(model, shape)
        param = next(model.parameters())
        check_output(model, batch.to(param.device, param.dtype))
        self.check(model, points, shape)
        if len(self.classes) >= 4:
            warn_flat_points(model, points, shape, stacklevel=4)

    def _test_data(self, test, class_names: Sequence[str] | None):
        """``test`` as nadkit reads data, checked to hold images of every class of these masks."""

        data = as_image_data(test, class_names)
        counts = torch.bincount(data.labels, minlength=max(len(data.class_names), max(self.classes) + 1))
        missing = [c for c in self.classes if c >= len(counts) or counts[c] == 0]
        if missing:
            raise NadkitError(f"the test set has no image of class {missing[0]}; give test images of every class of "
                              f"these sub-architectures ({self.classes})")
        return data

    def ablate(self, model: nn.Module, test, points: Sequence[str] | None = None, ks: Sequence[int] | None = None,
               draws: int = 100, popularity_draws: int = 10, per_class: int = 20,
               orders: Sequence[str] = ("nad",), train=None, class_names: Sequence[str] | None = None,
               progress: bool = False, allow_other_weights: bool = False) -> "Ablation":
        """``nadkit ablate`` in memory: at each of ``points`` (names; default all), zero each class's
        top k channels (by its mask, and by each heuristic of ``orders`` after "nad", which need
        ``train`` images), ``draws`` random and ``popularity_draws`` popularity-matched sets of k,
        and keep only the class's channels; measure every class on the first ``per_class`` test
        images of each. ``ks``: default 1, 2, 4, ... up to the largest set and the median set."""

        orders, chosen = check_arguments(self.points, points, orders, draws, popularity_draws, per_class, ks)
        if len(orders) > 1 and train is None:
            raise NadkitError(f"orders {orders[1:]} score channels on training images; pass train=your training set")
        data = self._test_data(test, class_names)
        every = self._checked_model(model, allow_other_weights)
        idx = [self.points.index(p) for p in chosen]
        binary = [self.binary()[i] for i in idx]
        seed = int(self.config.get("seed", 0))
        with frozen(model), output_of(model, self.config.get("output")):
            ranks = {"nad": [ranking(self.masks[p]) for p in chosen]}
            if len(orders) > 1:

                train_data = as_image_data(train, class_names)
                for name in orders[1:]:
                    scores = channel_scores(name, model, [every[i] for i in idx], train_data, self.classes, seed=seed)
                    ranks[name] = [ranking(s) for s in scores]
            x, labels = test_sample(data, self.classes, per_class)
    
            check_channels(model, tuple(x.shape[1:]))
            found = run_points(model, [every[i] for i in idx], binary, ranks, x, labels, self.classes, ks, draws,
                               popularity_draws, seed, progress=progress, positions=idx)
        return Ablation(list(self.classes), list(self.class_names),
                        {p: PointAblation.from_tensors(r, matrix_k(b)) for p, r, b in zip(chosen, found, binary)})

    def save(self, folder: Path | str, extra: dict[str, dict[str, Tensor]] | None = None) -> Path:
        """Commit the result to ``folder`` in one step: an existing ``meta.json`` is removed first, each
        file is written atomically, then ``meta.json``, which lists the sha256 of every file, is
        renamed in last. A folder holds a result exactly when its ``meta.json`` does, and a kill at
        any moment leaves either that result or none (never masks of one run and meta of another).
        ``extra``: further safetensors files (name -> tensors), covered by the same checksums."""

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "meta.json").exists():
            (folder / "meta.json").unlink()  # the old result is no longer whole from here on
            _fsync_dir(folder)
        files = {"masks.safetensors": {k: v.float().contiguous() for k, v in self.masks.items()}}
        files.update({name: {k: v.contiguous() for k, v in t.items()} for name, t in (extra or {}).items()})
        digests = {}
        for name, tensors in files.items():
            _atomic(folder / name, lambda p, t=tensors: save_file(t, str(p)))
            digests[name] = file_sha256(folder / name)
        meta = {"nadkit": __version__, "classes": self.classes, "class_names": self.class_names,
                "points": self.points, "config": self.config, "status": self.status, "files": digests}
        if self.provenance is not None:
            meta["provenance"] = self.provenance
        _test_pause("commit")
        _atomic(folder / "meta.json", lambda p: p.write_text(json.dumps(meta, indent=1) + "\n"))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> "SubArchitectures":
        """The result in ``folder``, refused in one line unless ``meta.json`` is well formed and every
        file it lists has the recorded sha256."""
        folder = Path(folder)
        meta = read_meta(folder)
        _check_files(folder, meta["files"])
        points, classes = meta["points"], meta["classes"]
        tensors = _read_masks(folder / "masks.safetensors")
        if set(tensors) != set(points):
            raise NadkitError(f"{folder}/masks.safetensors does not match meta.json (points differ); re-run disentangle")
        bad = [p for p in points if tensors[p].ndim != 2 or tensors[p].shape[0] != len(classes)]
        if bad:
            raise NadkitError(f"masks at point {bad[0]!r} are not [{len(classes)} classes, channels]; re-run disentangle")
        return cls({p: tensors[p] for p in points}, classes, meta["class_names"], meta["config"], meta["status"],
                   meta.get("provenance"))


def warn_flat_points(model: nn.Module, points: Sequence[MaskPoint], input_shape: Sequence[int],
                     stacklevel: int = 2) -> None:
    """A warning for points whose output is 1x1: their hit rate on 2x2 mosaics is fixed by construction."""

    acts: list[Tensor] = []
    param = next(model.parameters())
    with torch.no_grad(), masked(model, points, record=acts):
        model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    flat = [p.name for p, a in zip(points, acts) if a.shape[-1] * a.shape[-2] == 1]
    if flat:
        warnings.warn(f"points {', '.join(flat[:4])} are 1x1 maps: their hit rate on 2x2 mosaics is fixed by "
                      "construction (about 0.25), not a measure of the class's channels", stacklevel=stacklevel)


def load_history(folder: Path | str) -> dict[str, Tensor] | None:
    """The optimisation history of a result (``history_tensors``), or None when it kept none."""
    path = Path(folder) / "history.safetensors"
    return load_file(str(path)) if path.exists() else None
