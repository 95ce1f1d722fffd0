"""Ablation: are a class's channels *necessary*? Zero the top-k channels of one class at one mask
point and measure what every class loses (Zhou et al. 2018; Bau et al., PNAS 2020), beside
random channels of the same number (uniform, and matched to how many classes keep each channel)
and the heuristics' rankings. NAD's Fig. 2 shows that a sub-architecture is sufficient for its
class; this asks whether its channels are needed, and needed by their class more than by others.

Everything is measured on the full network (no sub-architecture applied) on a balanced sample of
test images, as one-vs-rest balanced accuracy per class ((recall + true-negative rate) / 2,
chance 0.5) and plain accuracy. A run writes one file per finished point and resumes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import ImageData, class_index
from .errors import NadkitError
from .files import atomic, file_sha256
from .points import MaskPoint, masked

ORDERS = ("nad", "mean activation", "taylor", "model lego")  # rankings of each class's channels
DRAWS = 100              # uniformly random channel sets per k
POPULARITY_DRAWS = 10    # popularity-matched sets per class and k
PER_CLASS = 20           # test images of each class
CURVE_SHARE = 0.1        # of the random draws, measured at every k (all of them at the matrix's k)


def k_grid(n: int) -> list[int]:
    """1, 2, 4, ... below ``n``, then ``n``: the sizes a deletion curve is measured at."""
    ks = [1 << i for i in range(max(1, n).bit_length()) if 1 << i < n]
    return ks + [max(1, n)]


def ranking(scores: Tensor) -> Tensor:
    """[K, C] channel indices of each row, highest score first (ties: lower index; NaN last)."""
    s = scores.detach().float().cpu()
    return torch.sort(torch.where(s.isnan(), -torch.inf, s), dim=1, descending=True, stable=True).indices


def first_k(order: Tensor, ks: Sequence[int]) -> Tensor:
    """[len(ks), C] bool: the first k channels of ``order`` [C], one row per k."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return rank[None] < torch.tensor(list(ks))[:, None]


def popularity_matched(order: Tensor, binary: Tensor, gen: torch.Generator) -> Tensor:
    """``order`` [K, C] with each channel replaced by a random channel that as many classes keep
    (``binary`` [K, C]): a random control that keeps the hub channels' share of the set."""
    popularity = binary.sum(0)
    swap = torch.arange(binary.shape[1])
    for v in popularity.unique():
        same = torch.nonzero(popularity == v).flatten()
        swap[same] = same[torch.randperm(len(same), generator=gen)]
    return swap[order]


def class_measures(pred: Tensor, labels: Tensor, classes: Sequence[int]) -> tuple[Tensor, Tensor]:
    """(accuracy, one-vs-rest balanced accuracy), each [M, len(classes)], of predictions [M, N]."""
    said = torch.stack([pred == c for c in classes], -1).float()           # [M, N, K]
    pos = torch.stack([labels == c for c in classes], -1).float()[None]     # [1, N, K]
    recall = (said * pos).sum(1) / pos.sum(1)
    tnr = 1 - (said * (1 - pos)).sum(1) / (1 - pos).sum(1)
    return recall, (recall + tnr) / 2


@torch.no_grad()
def ablated_predictions(model: nn.Module, point: MaskPoint, x: Tensor, zero: Tensor, chunk: int = 2048) -> Tensor:
    """[M, N] top-1 predictions on images ``x`` [N, ...] with the channels ``zero[m]`` [M, C] of
    ``point`` set to 0, one row per set. Where the network allows (nothing after the point reads
    a tensor from before it), the part up to the point runs once for many sets: the point's output
    is expanded to one copy per set; otherwise the images are repeated."""
    dev = next(model.parameters()).device
    keep, x = (~zero).to(dev, torch.float32), x.to(dev)
    n, out = len(x), []
    per = max(1, chunk // n)
    expand = n > 1  # (with one image, broadcasting could hide a mismatch)
    for i in range(0, len(keep), per):
        kb = keep[i:i + per]
        if expand:
            try:
                logits = _expanded_forward(model, point, x, kb)
            except RuntimeError:  # a skip connection from before the point: repeat the images
                expand = False
        if not expand:
            owner = torch.arange(len(kb), device=dev).repeat_interleave(n)
            with masked(model, [point], [kb], owner):
                logits = model(x.repeat(len(kb), *[1] * (x.ndim - 1)))
        out.append(logits.argmax(1).view(len(kb), n).cpu())
    return torch.cat(out)


def _expanded_forward(model: nn.Module, point: MaskPoint, x: Tensor, keep: Tensor) -> Tensor:
    def hook(module, inputs, output):
        output = torch.relu(output) if point.relu else output
        return (output[None] * keep[:, None, :, None, None].to(output.dtype)).flatten(0, 1)

    handle = model.get_submodule(point.module).register_forward_hook(hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
    if logits.shape[0] != len(keep) * len(x):
        raise RuntimeError("the expanded batch did not reach the output")
    return logits


def test_sample(data: ImageData, classes: Sequence[int], per_class: int) -> tuple[Tensor, Tensor]:
    """The first ``per_class`` test images of each class (images, labels): the same every run."""
    index = class_index(data.labels, len(data.class_names))
    idx = torch.cat([index[c][:per_class] for c in classes])
    return data.load(idx), data.labels[idx]


def ablate_point(model: nn.Module, point: MaskPoint, x: Tensor, labels: Tensor, classes: Sequence[int],
                 binary: Tensor, orders: dict[str, Tensor], ks: Sequence[int], draws: int = DRAWS,
                 popularity_draws: int = POPULARITY_DRAWS, seed: int = 0, at: int | None = None,
                 curve_share: float = CURVE_SHARE) -> dict[str, Tensor]:
    """Every ablation of one point: per ranking in ``orders`` (name -> [K, C] channel indices),
    class c's first k channels zeroed for each k; ``draws`` uniform random sets; per class
    ``popularity_draws`` popularity-matched versions of NAD's sets; and the sufficiency test
    (only class c's kept channels, ``binary`` [K, C], left). The random controls run every draw
    at k = ``at`` (default: every k) and the first ``curve_share`` of them at the other k (NaN for
    the rest). Each as balanced accuracy and accuracy of every class: ``NAME.balanced`` /
    ``NAME.accuracy``, shaped [K] (base), [K, K] (keep only), [draws, ks, K] (random),
    [draws, K, ks, K] (popularity), [K, ks, K] (rankings)."""
    K, C, n = *binary.shape, len(ks)
    gen = torch.Generator().manual_seed(seed)
    sets = {"base": torch.zeros(1, C, dtype=torch.bool)}
    for name, order in orders.items():
        sets[name] = torch.cat([first_k(o, ks) for o in order])                      # [K*len(ks), C]
    # which (draw, k) of a random control are measured: all draws at k = at, a share elsewhere
    def measured(d: int) -> Tensor:
        few = max(1, math.ceil(curve_share * d))
        return torch.tensor([[i < few or at is None or k == at for k in ks] for i in range(d)])

    which = {"random": measured(draws)}
    perms = [first_k(torch.randperm(C, generator=gen), ks) for _ in range(draws)]
    sets["random"] = torch.cat(perms)[which["random"].flatten()]
    if "nad" in orders and popularity_draws:
        which["popularity"] = measured(popularity_draws)[:, None, :].expand(-1, K, -1)
        matched = [first_k(o, ks) for _ in range(popularity_draws)
                   for o in popularity_matched(orders["nad"], binary, gen)]
        sets["popularity"] = torch.cat(matched)[which["popularity"].flatten()]
    sets["keep only"] = ~binary
    names, sizes = list(sets), [len(s) for s in sets.values()]
    pred = ablated_predictions(model, point, x, torch.cat(list(sets.values())))
    out = {}
    for name, p in zip(names, torch.split(pred, sizes)):
        acc, bal = class_measures(p, labels, classes)
        if name in which:  # NaN where a draw was not measured
            full = torch.full((*which[name].shape, K), math.nan)
            acc, bal = full.clone().index_put_((which[name],), acc), full.index_put_((which[name],), bal)
        shape = {"base": (K,), "keep only": (K, K), "random": (draws, n, K),
                 "popularity": (popularity_draws, K, n, K)}.get(name, (K, n, K))
        out[f"{name}.accuracy"], out[f"{name}.balanced"] = acc.reshape(shape), bal.reshape(shape)
    out["ks"] = torch.tensor(list(ks))
    return out


def auto_ks(binary: Tensor) -> list[int]:
    """The deletion grid of a point: ``k_grid`` of the largest set any class keeps there, with the
    median set size (the k of the class x class matrix) added."""
    kept = binary.sum(1)
    return sorted(set(k_grid(int(kept.max()))) | {matrix_k(binary)})


def matrix_k(binary: Tensor) -> int:
    """The one k of the class x class matrix at a point: the median number of channels kept there."""
    return max(1, int(binary.sum(1).float().median().round()))


def run_points(model: nn.Module, points: Sequence[MaskPoint], binary: Sequence[Tensor], orders: dict[str, list[Tensor]],
               x: Tensor, labels: Tensor, classes: Sequence[int], ks: Sequence[int] | None = None,
               draws: int = DRAWS, popularity_draws: int = POPULARITY_DRAWS, seed: int = 0,
               done: Callable[[int], dict | None] = lambda i: None,
               save: Callable[[int, dict], None] = lambda i, r: None, progress: bool = True,
               positions: Sequence[int] | None = None) -> list[dict]:
    """``ablate_point`` at every point (``orders``: name -> per point [K, C] rankings); ``done(i)``
    returns point i's saved result when it has one, ``save`` is called as each point finishes.
    Point i draws its random sets from ``seed + positions[i]`` (its place among the network's
    points; default i), so ablating a subset of points repeats their draws exactly."""
    results, positions = [], list(range(len(points)) if positions is None else positions)
    for i, p in enumerate(tqdm(points, desc="ablation", unit="point", disable=not progress)):
        got = done(i)
        if got is None:
            width = binary[i].shape[1]
            at = min(matrix_k(binary[i]), width)
            grid = sorted({min(k, width) for k in ks} | {at}) if ks else auto_ks(binary[i])
            got = ablate_point(model, p, x, labels, classes, binary[i], {n: o[i] for n, o in orders.items()},
                               grid, draws, popularity_draws, seed + positions[i], at)
            save(i, got)
        results.append(got)
    return results


def save_point(path: Path, result: dict, config: dict) -> None:
    """One finished point, atomically, with the configuration it belongs to."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in result.items()}
    atomic(path, lambda p: save_file(tensors, str(p), metadata={"config": json.dumps(config, sort_keys=True)}))


def load_point(path: Path, config: dict | None = None) -> dict | None:
    """A saved point, or None when absent, damaged or of another configuration."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            if config is not None and (f.metadata() or {}).get("config") != json.dumps(config, sort_keys=True):
                return None
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # noqa: BLE001 - truncated, bit-flipped or not a safetensors file at all
        return None


def check_arguments(available: Sequence[str], points, orders, draws: int, popularity_draws: int,
                    per_class: int, ks, cli: bool = False, where: str = "") -> tuple[list[str], list[str]]:
    """The ablation's arguments checked, each in a one-line error named as the caller knows it
    (the CLI's flags, or the Python arguments): returns (orders, the points to ablate)."""
    name = (lambda n: "--" + n.replace("_", "-")) if cli else (lambda n: n)  # noqa: E731
    orders = check_orders(orders)
    if draws < 1 or popularity_draws < 0 or per_class < 1:
        raise NadkitError(f"{name('draws')} and {name('per_class')} must be at least 1 "
                          f"({name('popularity_draws')} at least 0)")
    if ks is not None and (not ks or min(ks) < 1):
        raise NadkitError(f"{'--k' if cli else 'ks'} must list numbers of channels of at least 1, e.g. 1,2,4,8 "
                          "(or auto)")
    chosen = list(available) if not points else list(points)
    unknown = [p for p in chosen if p not in available]
    if unknown:
        raise NadkitError(f"{where + ' has ' if where else ''}no mask point {unknown[0]!r}; "
                          f"the points: {', '.join(available)}")
    return orders, chosen


def check_orders(names: Sequence[str]) -> list[str]:
    """The rankings asked for, by their canonical names; one line for an unknown one."""
    out = []
    for n in names:
        m = n.replace("_", " ").replace("-", " ").strip().lower()
        if m not in ORDERS:
            raise NadkitError(f"unknown order {n!r}; choose from: {', '.join(o.replace(' ', '-') for o in ORDERS)}")
        out.append(m)
    if "nad" not in out:
        raise NadkitError("--orders must include nad: the controls are measured against NAD's channels")
    return out


# --- a finished ablation on disk (the job that writes it: ``nadkit.pipeline.ablation``) ------------
def load(out: str | Path) -> dict:
    """A finished ablation: its ``ablation.json`` with ``results`` (point name -> tensors) added;
    one line unless every point file is there with its recorded sha256."""
    out = Path(out)
    try:
        meta = json.loads((out / "ablation.json").read_text())
        points = meta["points"]
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise NadkitError(f"{out} holds no finished ablation; run nadkit ablate RESULT --out {out}") from None
    meta["results"] = {}
    for p in points:
        path = out / "points" / f"{p}.safetensors"
        if not path.exists() or file_sha256(path) != meta["files"].get(p):
            raise NadkitError(f"{path} is missing or damaged; re-run the same nadkit ablate command to redo it")
        meta["results"][p] = load_point(path)
    return meta
