"""What a CLI run is (``Spec``: the command line's options) and how its network, mask points and
data are loaded, for a run and again for a finished result (``spec_of``, ``network_of``): what
the jobs in ``nadkit.pipeline`` build on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch

from .anynet import input_channels, is_external
from .checks import check_nad_settings, resolve_device
from .data import first_per_class, load_split
from .errors import NadkitError
from .evaluation import recorded_points
from .findpoints import resolve_points
from .imagefolder import ImageFolderData
from .networks import check_arch, load_network, model_card, weights_sha256
from .paper import authors_defaults
from .points import mask_points
from .settings import Convergence, Engine, Method
from .subarch import SubArchitectures


@dataclass
class Spec:
    """Everything that defines a disentanglement run (the CLI's options)."""

    arch: str
    dataset: str = "fashion-mnist"
    classes: str | Sequence[int] | None = "all"
    beta: float | str | None = None       # None: the network card's; "elbow": the Elbow method
    lr: float = 0.1
    steps: int | str | None = None        # "auto": until converged; None: the card's (auto)
    max_steps: int | None = None          # the guard of "auto"; None: the card's (paper scale: 21 passes)
    batch_per_class: int = 16
    class_batch: int | None = None        # classes per pass; None: all on CPU, as many as fit on a GPU
    objective: str = "official"
    target: str = "label"                 # or "prediction": the network's own output (sanity checks)
    seed: int = 0
    device: str = "cpu"
    weights: str | None = None
    image_size: int = 224                 # paper scale only
    precision: str = "fp32"               # or "bf16" (autocast, GPUs)
    workers: int = 0                      # image-reading (and decoding) processes (paper scale)
    decode: str = "workers"               # paper scale: "workers" (PIL) or "device" (nvJPEG on the GPU)
    snapshot_every: int | None = None     # keep the binarised masks every this many steps (history)
    points: str | list[str] | None = None  # "auto", module names; None: the authors' (auto for others)
    fused: bool = True                    # BatchNorms folded, fused mask step (NAD's ``fused``)
    mean: Sequence[float] | None = None   # image folders: normalisation (default: ImageNet's)
    std: Sequence[float] | None = None
    resize: int | None = None             # image folders: side before the centre crop (default: 8/7 of it)
    augment: str | None = None            # "authors": their crop and flip during NAD (default: none)

    def __post_init__(self):
        """Paths stored absolute, so that a result read from another folder finds its data and weights."""
        if self.dataset.startswith("imagefolder:"):
            self.dataset = "imagefolder:" + str(Path(self.dataset.split(":", 1)[1]).expanduser().absolute())
        if isinstance(self.weights, (str, Path)) and is_weights_file(str(self.weights)):
            self.weights = str(Path(self.weights).expanduser().absolute())

    def settings(self, channels: int = 1) -> tuple[Method, Engine]:
        """NAD's method and engine settings that this spec asks for (beta and steps as given: the
        network card's are filled in by the job; ``max_steps`` None: the guard's default)."""
        if self.steps == "auto":
            convergence = Convergence(max_steps=self.max_steps) if self.max_steps else Convergence()
        else:
            convergence = Convergence(max_steps=self.steps) if isinstance(self.steps, int) else Convergence()
        method = Method(beta=self.beta, lr=self.lr, steps=self.steps, batch_per_class=self.batch_per_class,
                        objective=self.objective, target=self.target, seed=self.seed, convergence=convergence)
        engine = Engine(workers=self.workers, precision=self.precision, decode_on_device=self.decode == "device",
                        fused=self.fused, snapshot_every=self.snapshot_every, input_shape=self.input_shape(channels))
        return method, engine

    def input_shape(self, channels: int = 1) -> tuple[int, ...]:
        """One image's shape: Fashion-MNIST is 32x32 (gray, repeated for 3-channel networks)."""
        return (channels, 32, 32) if self.dataset == "fashion-mnist" else (3, self.image_size, self.image_size)


def is_weights_file(weights: str) -> bool:
    """Whether ``--weights`` names a file (not none, torchvision, randomized:K, instance:S, permuted)."""
    return weights not in ("none", "torchvision", "permuted") and not weights.startswith(("randomized:", "instance:"))


def network(arch: str, dataset: str = "fashion-mnist", weights: str | None = None, device: str = "cpu",
            num_classes: int = 1000, points: str | Sequence[str] | None = None, image_size: int = 224):
    """The frozen network and its mask points, on ``device``: the authors' points for the four
    topologies, ``auto`` for any other network, or the given ones (``nadkit.findpoints``)."""
    model = load_network(arch, dataset, weights, num_classes).to(resolve_device(device))
    if points is None and not is_external(arch):
        return model, mask_points(arch, model)
    shape = Spec(arch, dataset, image_size=image_size).input_shape(input_channels(model))
    return model, resolve_points(model, points or "auto", shape)


def fit_channels(data, model):
    """``data`` as the network takes it: gray images repeated to 3 channels for an RGB network."""
    want, have = input_channels(model), getattr(data, "images", None)
    if have is None or have.shape[1] == want:
        return data
    if have.shape[1] != 1:
        raise NadkitError(f"the network takes {want}-channel images, the data set has {have.shape[1]}")
    return replace(data, images=have.expand(-1, want, -1, -1))


def split(spec: Spec, which: str):
    """The "train" or "test" split of the spec's data set (validation for image folders)."""
    if spec.dataset.startswith("imagefolder:"):

        return ImageFolderData(spec.dataset.split(":", 1)[1], "train" if which == "train" else "val", spec.image_size,
                               spec.mean, spec.std, spec.resize, augment=which == "train" and spec.augment == "authors")
    return load_split(spec.dataset, which)


def parse_classes(spec: str | Sequence[int] | None, names: Sequence[str]) -> list[int]:
    """``None``/"all" -> every class; "0,3,5", class names, or a list -> those, checked."""
    if spec is None or spec == "all":
        return list(range(len(names)))
    items = [c.strip() for c in spec.split(",")] if isinstance(spec, str) else list(spec)
    classes = []
    for c in items:
        if isinstance(c, str) and c in names:
            classes.append(list(names).index(c))
            continue
        try:
            classes.append(int(c))
        except ValueError:
            raise NadkitError(f"class {c!r} is neither a class id nor a class of this data set; "
                              f"--classes takes 'all' or a comma-separated list of ids or class folder names") from None
    bad = [c for c in classes if not 0 <= c < len(names)]
    if bad:
        raise NadkitError(f"class id {bad[0]} is out of range; this data set has classes 0..{len(names) - 1}")
    if len(set(classes)) != len(classes):
        raise NadkitError(f"--classes {spec!r} lists a class twice")
    return classes


def check_settings(s: Spec) -> None:
    """Refuse, before any work, settings that cannot make a meaningful run (NaN or infinite rates too):
    NAD's own checks (``nadkit.checks``, the same as ``NAD`` applies), then the CLI's."""
    check_nad_settings(s.beta, s.lr, s.steps, s.batch_per_class, s.objective, s.target, s.precision, s.workers,
                       s.seed)
    if s.image_size < 32:
        raise NadkitError(f"image-size must be >= 32 (the networks halve it 5 times), got {s.image_size}")
    if s.max_steps is not None and s.max_steps < 1:
        raise NadkitError(f"max-steps must be >= 1, got {s.max_steps}")
    if s.class_batch is not None and s.class_batch < 1:
        raise NadkitError(f"class-batch must be >= 1, got {s.class_batch}")
    if s.decode not in ("workers", "device"):
        raise NadkitError(f"unknown decode {s.decode!r}; use workers or device")
    if (s.mean is None) != (s.std is None) or (s.mean is not None and len(s.mean) != len(s.std)):
        raise NadkitError("--mean and --std go together, one value per channel each (e.g. --mean 0.5,0.5,0.5 "
                          "--std 0.25,0.25,0.25)")
    if s.std is not None and min(s.std) <= 0:
        raise NadkitError(f"--std values must be > 0, got {list(s.std)}")
    if s.resize is not None and s.resize < s.image_size:
        raise NadkitError(f"--resize must be >= --image-size ({s.image_size}): images are resized, then centre-cropped "
                          f"to the image size; got {s.resize}")
    if (s.mean is not None or s.resize is not None) and not s.dataset.startswith("imagefolder:"):
        raise NadkitError("--mean, --std and --resize apply to image folders (--dataset imagefolder:ROOT); "
                          "fashion-mnist has its own")


def warn_defaults(asked: Spec, s: Spec) -> None:
    """Warn where a default cannot serve: a network of your own without weights (random ones), and a
    network without a card at the default beta (no one has tuned it for this network)."""
    if is_external(s.arch) and not s.arch.startswith(("torchvision:", "timm:")) and asked.weights is None:
        warnings.warn(f"{s.arch} runs on the weights its function gives (random unless it loads its own); pass "
                      "--weights FILE for your trained ones (--weights none to silence this)", stacklevel=3)
    if asked.beta is None and is_external(s.arch):
        warnings.warn(f"beta {s.beta} is the default, not tuned for {s.arch}; run with --beta elbow (the Elbow sweep "
                      "picks it) or give --beta", stacklevel=3)


def nad_defaults(arch: str, dataset: str) -> dict:
    """NAD's defaults: the embedded network's card, or the authors' settings at paper scale."""
    if dataset == "fashion-mnist":
        return model_card(arch, dataset).get("nad", {})

    return authors_defaults(arch, dataset)


def passes_in_steps(data, classes: Sequence[int], passes: int, batch_per_class: int) -> int:
    """Steps for ``passes`` passes over the largest of ``classes`` (the authors: 21 passes)."""
    sizes = torch.bincount(data.labels, minlength=len(data.class_names))[list(classes)]
    return max(1, -(-passes * int(sizes.max()) // batch_per_class))


def check_weights(config: dict, model, what: str, allow: bool = False) -> None:
    """One line unless ``model`` is the network ``config`` was learned on (same weights' sha256)."""
    if "weights_sha256" not in config:
        raise NadkitError(f"{what} was written by an older nadkit that did not record the network's weights; "
                          "re-run nadkit disentangle to recompute it")
    if allow:
        return
    now = weights_sha256(model)
    if config["weights_sha256"] != now:
        raise NadkitError(f"{what} was learned on other weights of {config.get('arch')} (sha256 "
                          f"{str(config['weights_sha256'])[:12]}, the network loaded now has {now[:12]}; weights "
                          f"{config.get('weights') or 'shipped'}); restore them, or pass --allow-other-weights")


def spec_of(cfg: dict, device: str = "cpu") -> Spec:
    """The network and data a result's configuration names (with its recorded preprocessing); one
    line when it names none (a result of ``NAD.fit`` on a network in memory: say which)."""
    if not cfg.get("arch") or not cfg.get("dataset"):
        raise NadkitError("this result was learned by NAD.fit on a network and data in memory, which it does not name; "
                          "pass --arch ARCH (e.g. package.module:function) --weights FILE --dataset DATA, or evaluate it "
                          "in Python with SubArchitectures.evaluate(model, test)")
    pre = cfg.get("preprocessing") if isinstance(cfg.get("preprocessing"), dict) else {}
    folder = str(cfg["dataset"]).startswith("imagefolder:")
    shape = cfg.get("input_shape")
    size = pre.get("image_size") or cfg.get("image_size") or \
        (shape[-1] if folder and isinstance(shape, list) and len(shape) == 3 else 224)
    return Spec(cfg["arch"], cfg["dataset"], weights=cfg.get("weights"), device=device,
                image_size=int(size), mean=pre.get("mean") if folder else None,
                std=pre.get("std") if folder else None, resize=pre.get("resize") if folder else None)


def with_network(sub: SubArchitectures, arch: str | None = None, weights: str | None = None,
                 dataset: str | None = None, image_size: int | None = None, resize: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> SubArchitectures:
    """``sub`` with the network and data to rebuild named (``--arch``, ``--weights``, ``--dataset`` of
    evaluate, ablate and baseline): what a result of ``NAD.fit`` on a model in memory does not record.
    The weights are still checked against the sha256 the masks were learned on. ``image_size``,
    ``resize``, ``mean``, ``std``: image folders' preprocessing, replacing the one the result records."""
    override = {k: v for k, v in (("image_size", image_size), ("resize", resize), ("mean", mean), ("std", std))
                if v is not None}
    if override:
        pre = sub.config.get("preprocessing") if isinstance(sub.config.get("preprocessing"), dict) else {}
        sub = replace(sub, config=dict(sub.config, preprocessing=dict(pre, **override)))
        if "image_size" in override and "resize" not in override:
            sub.config["preprocessing"].pop("resize", None)  # 8/7 of the new size, unless given
    given = {k: v for k, v in (("arch", arch), ("weights", weights), ("dataset", dataset)) if v is not None}
    if not given:
        return sub
    spec = Spec(given.get("arch", sub.config.get("arch") or "x"), given.get("dataset", sub.config.get("dataset")
                                                                            or "fashion-mnist"),
                weights=given.get("weights"))
    if "arch" in given:
        check_arch(spec.arch)
    cfg = dict(sub.config, **{k: getattr(spec, k) for k in given})
    return replace(sub, config=cfg)


def network_of(sub: SubArchitectures, device: str = "cpu", allow_other_weights: bool = False,
               test_per_class: int | None = None):
    """(model, mask points, test split) of the network and data a result was computed on, with
    the masks checked against the network, and the network's weights against those the masks were
    learned on (refused unless ``allow_other_weights``); the test split cut to its first
    ``test_per_class`` images of each class when given."""
    cfg = sub.config
    if "weights_sha256" not in cfg:
        check_weights(cfg, None, "this result")
    spec = spec_of(cfg, device)
    test = first_per_class(split(spec, "test"), test_per_class)
    model, points = network(cfg["arch"], cfg["dataset"], cfg.get("weights"), device, len(test.class_names),
                            None if cfg.get("mask_points") else cfg.get("points"), spec.image_size)
    if cfg.get("mask_points"):  # NAD.fit records its points whole (names, modules, functional ReLU)
        points = recorded_points(cfg, model)
    test = fit_channels(test, model)
    sub.check(model, points, spec.input_shape(input_channels(model)))  # another topology: the plainer message
    check_weights(cfg, model, "this result", allow_other_weights)
    return model, points, test
