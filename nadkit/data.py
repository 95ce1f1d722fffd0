"""Data: labelled image sets held in memory, per-class index, class-balanced batches, 2x2 mosaics.

A data set is anything with ``labels``, ``class_names`` and ``load(indices, train)``; the
embedded default is Fashion-MNIST, zero-padded to 1x32x32. Every random draw comes from a
generator seeded by ``(seed, class)``, so what one class sees never depends on the others.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor

from .errors import NadkitError
from .imagefolder import prefetch, prefetch_raw

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_FILES = [
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
]
DATASETS = ("fashion-mnist",)


class ImageData(Protocol):
    """What NAD needs of a split: labels, class names, and images loaded by index."""

    labels: Tensor
    class_names: list[str]

    def load(self, indices: Tensor, train: bool = False) -> Tensor: ...


@dataclass
class TensorImages:
    """A split held in memory as uint8 images [N, C, H, W]; ``load`` normalises on the fly."""

    images: Tensor
    labels: Tensor
    class_names: list[str]
    mean: float
    std: float

    def __len__(self) -> int:
        return len(self.labels)

    def preprocessing(self) -> dict:
        """What ``load`` does to the stored images (recorded with a result)."""
        return {"scale": "1/255", "mean": self.mean, "std": self.std}

    def load(self, indices: Tensor, train: bool = False) -> Tensor:
        """Float images for ``indices``, normalised (no augmentation: Fashion-MNIST needs none)."""
        x = self.images[indices].float().div_(255.0)
        return x.sub_(self.mean).div_(self.std)


class AuthorsAugmented:
    """``data`` with the augmentation the authors' code applies while it runs NAD
    (``RandomResizedCrop(scale=(0.08, 1.25))`` and a horizontal flip), for in-memory splits; image
    folders apply it already when read for NAD (``imagefolder.authors_transform``). Each image's
    crop and flip come from its own seed (the sampler's), so the same seed gives the same batches."""

    augments = True
    SCALE, RATIO = (0.08, 1.25), (3 / 4, 4 / 3)

    def __init__(self, data: ImageData):
        self.data, self.labels, self.class_names = data, data.labels, data.class_names

    def __len__(self) -> int:
        return len(self.labels)

    def preprocessing(self) -> dict:
        base = self.data.preprocessing() if hasattr(self.data, "preprocessing") else {}
        return base | {"augment": "authors: RandomResizedCrop(scale=(0.08, 1.25)) and a horizontal flip"}

    def load(self, indices: Tensor, train: bool = False, seeds: Tensor | None = None) -> Tensor:
        x = self.data.load(indices, train)
        if not train or seeds is None:
            return x
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.functional import hflip, resized_crop

        out = torch.empty_like(x)
        size = list(x.shape[-2:])
        for i, seed in enumerate(seeds.tolist()):
            with torch.random.fork_rng():
                torch.manual_seed(int(seed))
                top, left, h, w = RandomResizedCrop.get_params(x[i], list(self.SCALE), list(self.RATIO))
                flip = bool(torch.rand(()) < 0.5)
            img = resized_crop(x[i], top, left, h, w, size, antialias=True)
            out[i] = hflip(img) if flip else img
        return out


class SubsetImages:
    """A view of some images of a data set, by index."""

    def __init__(self, data: ImageData, indices: Tensor):
        self.data, self.indices = data, indices
        self.labels, self.class_names = data.labels[indices], data.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, indices: Tensor, train: bool = False) -> Tensor:
        return self.data.load(self.indices[indices], train)


def first_per_class(data: ImageData, n: int | None) -> ImageData:
    """The first ``n`` images of each class (all when ``n`` is None), in their order: a smaller
    test set that still has every class (the book's smoke profile evaluates on one)."""
    if n is None:
        return data
    if n < 1:
        raise NadkitError(f"images per class must be >= 1, got {n}")
    idx = torch.cat([i[:n] for i in class_index(data.labels, len(data.class_names))]).sort().values
    if isinstance(data, TensorImages):
        return replace(data, images=data.images[idx], labels=data.labels[idx])
    return SubsetImages(data, idx)


def fashion_mnist_dirs() -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: ``NADKIT_DATA``, ``data/fashion-mnist`` under
    the current folder (a checkout), the Debian package's folder. Never beside this file, so that an
    installed nadkit works from any folder."""
    dirs = [Path(os.environ["NADKIT_DATA"])] if os.environ.get("NADKIT_DATA") else []
    return dirs + [Path.cwd() / "data" / "fashion-mnist", Path("/usr/share/datasets/fashion-mnist")]


def _raw_folder() -> Path:
    """A folder holding the four un-gzipped IDX files, as torchvision's FashionMNIST expects."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nadkit"
    raw = cache / "FashionMNIST" / "raw"
    if all((raw / f).exists() for f in FASHION_MNIST_FILES):
        return raw
    from torchvision.datasets.utils import extract_archive

    for folder in fashion_mnist_dirs():
        for sub in (folder, folder / "FashionMNIST" / "raw"):
            if all((sub / f).exists() or (sub / f"{f}.gz").exists() for f in FASHION_MNIST_FILES):
                raw.mkdir(parents=True, exist_ok=True)
                for f in FASHION_MNIST_FILES:
                    if (sub / f).exists():
                        shutil.copyfile(sub / f, raw / f)
                    else:
                        extract_archive(str(sub / f"{f}.gz"), str(raw))
                return raw
    looked = ", ".join(str(d) for d in fashion_mnist_dirs())
    raise NadkitError(
        f"Fashion-MNIST not found (looked in {looked}); install the Debian package "
        "dataset-fashion-mnist (`make setup` does) or set NADKIT_DATA to a folder with its IDX files"
    )


def fashion_mnist(split: str = "train") -> TensorImages:
    """Fashion-MNIST ``split`` ("train" or "test"), zero-padded to 1x32x32, read with torchvision."""
    from torchvision.datasets import FashionMNIST

    raw = _raw_folder()
    try:
        ds = FashionMNIST(str(raw.parent.parent), train=(split == "train"), download=False)
    except RuntimeError as e:
        raise NadkitError(f"Fashion-MNIST files in {raw} are unreadable ({e}); delete that folder and retry") from e
    images = torch.nn.functional.pad(ds.data, (2, 2, 2, 2)).unsqueeze(1).contiguous()
    return TensorImages(images, ds.targets.long(), list(FASHION_MNIST_CLASSES), mean=0.2860, std=0.3530)


def load_split(dataset: str, split: str) -> ImageData:
    """The ``split`` ("train"/"test") of a named data set."""
    if dataset == "fashion-mnist":
        return fashion_mnist(split)
    raise NadkitError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")


def class_index(labels: Tensor, num_classes: int) -> list[Tensor]:
    """For each class, the indices of its images (ascending)."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    return list(torch.split(order, counts))


def class_generator(seed: int, cls: int, stream: int = 0) -> torch.Generator:
    """The random stream of one class: depends on (seed, class, stream) only."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + cls) * 7_919 + stream) % 2**63)


class ClassBatches:
    """Endless class-balanced batches: ``per_class`` images of each class, each class from its own
    seeded shuffle (without replacement within a pass), class-major. Each drawn image also gets an
    augmentation seed from its class's stream, so random crops do not depend on the other classes."""

    def __init__(self, data: ImageData, classes: list[int], per_class: int, seed: int):
        index = class_index(data.labels, len(data.class_names))
        self.data, self.classes, self.per_class = data, classes, per_class
        self.pools = [index[c] for c in classes]
        for c, pool in zip(classes, self.pools):
            if len(pool) == 0:
                raise NadkitError(f"class {c} ({data.class_names[c]}) has no images in this split")
        self.gens = [class_generator(seed, c, stream=1) for c in classes]
        self.orders = [torch.empty(0, dtype=torch.long) for _ in classes]

    def _take(self, k: int) -> tuple[Tensor, Tensor]:
        order, pool = self.orders[k], self.pools[k]
        while len(order) < self.per_class:
            order = torch.cat([order, pool[torch.randperm(len(pool), generator=self.gens[k])]])
        self.orders[k] = order[self.per_class:]
        return order[: self.per_class], torch.randint(2**62, (self.per_class,), generator=self.gens[k])

    def next_indices(self) -> tuple[Tensor, Tensor]:
        """(image indices, augmentation seeds) of one step."""
        idx, seeds = zip(*(self._take(k) for k in range(len(self.classes))))
        return torch.cat(idx), torch.cat(seeds)

    def next(self, train: bool = True) -> tuple[Tensor, Tensor]:
        """(images [K*per_class, ...], labels) for one step."""
        idx, seeds = self.next_indices()
        return load_batch(self.data, idx, seeds, train), self.data.labels[idx]


class ContrastBatches(ClassBatches):
    """``ClassBatches`` with, after each class's ``per_class`` images, ``per_class`` images of the
    other classes: class-balanced (the other classes in a shuffled round, one image each, the
    round carried over steps) and drawn from the class's own stream 2, so they too never depend on
    which classes run beside it. Job-major: [own, others] per class."""

    def __init__(self, data: ImageData, classes: list[int], per_class: int, seed: int):
        super().__init__(data, classes, per_class, seed)
        index = class_index(data.labels, len(data.class_names))
        self.others = [[o for o in range(len(data.class_names)) if o != c and len(index[o])] for c in classes]
        for c, others in zip(classes, self.others):
            if not others:
                raise NadkitError(f"class {c} has no other class with images: the contrast objective needs two classes")
        self.index = index
        self.other_gens = [class_generator(seed, c, stream=2) for c in classes]
        self.rounds: list[list[int]] = [[] for _ in classes]

    def _others(self, k: int) -> Tensor:
        gen, picked = self.other_gens[k], []
        for _ in range(self.per_class):
            if not self.rounds[k]:
                self.rounds[k] = [self.others[k][i] for i in torch.randperm(len(self.others[k]), generator=gen)]
            pool = self.index[self.rounds[k].pop()]
            picked.append(pool[torch.randint(len(pool), (1,), generator=gen)])
        return torch.cat(picked)

    def next_indices(self) -> tuple[Tensor, Tensor]:
        """(image indices, augmentation seeds) of one step: per class, its own images then others'."""
        idx, seeds = [], []
        for k in range(len(self.classes)):
            own, own_seeds = self._take(k)
            idx += [own, self._others(k)]
            seeds += [own_seeds, torch.randint(2**62, (self.per_class,), generator=self.other_gens[k])]
        return torch.cat(idx), torch.cat(seeds)


def load_batch(data: ImageData, idx: Tensor, seeds: Tensor | None = None, train: bool = False) -> Tensor:
    """Load images, passing augmentation seeds to data sets that augment."""
    return data.load(idx, train, seeds) if getattr(data, "augments", False) else data.load(idx, train)


def step_batches(data: ImageData, sampler: ClassBatches, steps: int, train: bool = True, workers: int = 0,
                 decode_device: torch.device | None = None, rows: Callable[[], Tensor] | None = None):
    """Yield (images, labels, unreadable images skipped per image) for up to ``steps`` steps.

    ``rows()``, asked before each step, says which images of the step (class-major) are wanted:
    classes that have converged leave the batch. Every class still draws its images each step,
    so what a class sees never depends on when the others stop. Image folders are read ahead (all
    classes) in ``workers`` processes, or read there and decoded on ``decode_device``.
    """
    if hasattr(data, "read"):

        plan = [sampler.next_indices() for _ in range(steps)]
        batches = prefetch_raw(data, plan, decode_device, train=train, workers=workers) if decode_device is not None \
            else prefetch(data, plan, train=train, workers=workers)
        for x, y, bad in batches:
            keep = rows() if rows is not None else None
            yield (x, y, bad) if keep is None else (x[keep.to(x.device)], y[keep.to(y.device)], bad[keep])
        return
    for _ in range(steps):
        idx, seeds = sampler.next_indices()
        if rows is not None:
            keep = rows()
            idx, seeds = idx[keep], seeds[keep]
        yield load_batch(data, idx, seeds, train), data.labels[idx], torch.zeros(len(idx), dtype=torch.long)


def mosaics(data: ImageData, n: int, seed: int = 0, classes: list[int] | None = None) -> tuple[Tensor, Tensor]:
    """``n`` 2x2 mosaics of four images of four distinct random classes (from ``classes``, default all).

    Returns images [n, C, 2H, 2W] and their classes [n, 4] in quadrant order
    (top-left, top-right, bottom-left, bottom-right).
    """
    pool = torch.tensor(classes if classes is not None else range(len(data.class_names)))
    if len(pool) < 4:
        raise NadkitError(f"mosaics need at least 4 classes, got {len(pool)}; disentangle at least 4 classes")
    gen = torch.Generator().manual_seed(seed)
    chosen = pool[torch.argsort(torch.rand(n, len(pool), generator=gen), dim=1)[:, :4]]
    index = class_index(data.labels, len(data.class_names))
    sizes = torch.tensor([len(i) for i in index])
    pick = (torch.rand(n, 4, generator=gen) * sizes[chosen]).long()
    flat = torch.stack([index[c][p] for c, p in zip(chosen.flatten().tolist(), pick.flatten().tolist())])
    tiles = data.load(flat)
    tiles = tiles.view(n, 4, *tiles.shape[1:])
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=-1)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=-1)
    return torch.cat([top, bottom], dim=-2), chosen


class DatasetImages:
    """Any ``torch.utils.data.Dataset`` of ``(image tensor, label)`` pairs (a ``TensorDataset`` too)
    as NAD reads data: labels read once, images fetched by index, already preprocessed by the
    dataset (its own transform: nadkit changes nothing). Class names: ``class_names``, else the
    dataset's ``classes`` attribute (torchvision's data sets have one), else the class ids."""

    def __init__(self, dataset: torch.utils.data.Dataset, class_names: Sequence[str] | None = None):
        self.dataset = dataset
        tensors = getattr(dataset, "tensors", None)
        if tensors is not None and len(tensors) < 2:
            raise NadkitError("the dataset has no labels (a TensorDataset of images only); give "
                              "TensorDataset(images, labels) with one integer class id per image")
        if tensors is None and getattr(dataset, "targets", None) is None and len(dataset):
            item = dataset[0]
            if not isinstance(item, (tuple, list)) or len(item) < 2:
                raise NadkitError(f"the dataset's items are {type(item).__name__}s, not (image, label) pairs; give a "
                                  "Dataset whose items are (image tensor, int label)")
        if tensors is not None and len(tensors) >= 2:  # a TensorDataset: no per-item reads
            labels = tensors[1]
        elif getattr(dataset, "targets", None) is not None:  # torchvision's data sets: without decoding images
            labels = dataset.targets
        else:
            labels = [dataset[i][1] for i in range(len(dataset))]
        try:
            raw = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raw = None
        if raw is not None and (raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool):
            raise NadkitError(f"the dataset's labels are {str(raw.dtype).replace('torch.', '')}, not integer "
                              "class ids; give integer labels (e.g. labels.long() if they are whole numbers)")
        try:
            self.labels = torch.as_tensor(labels).long().flatten().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise NadkitError("the dataset's labels are not class ids; give a Dataset of (image tensor, int label)") \
                from None
        if len(self.labels) != len(dataset) or len(self.labels) == 0:
            raise NadkitError(f"the dataset has {len(dataset)} items and {len(self.labels)} labels; give a non-empty "
                              "Dataset of (image tensor, int label) pairs")
        if int(self.labels.min()) < 0:
            raise NadkitError(f"label {int(self.labels.min())} is negative; labels must be class ids 0..K-1")
        names = class_names if class_names is not None else getattr(dataset, "classes", None)
        n = int(self.labels.max()) + 1
        self.class_names = [str(c) for c in names] if names is not None else [str(c) for c in range(n)]
        if len(self.class_names) < n:
            raise NadkitError(f"the dataset has label {n - 1} but {len(self.class_names)} class names; give one name "
                              "per class")

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, indices: Tensor, train: bool = False) -> Tensor:
        """The images at ``indices``, as the dataset gives them, stacked to [N, C, H, W] float."""
        tensors = getattr(self.dataset, "tensors", None)
        if tensors is not None:
            images = tensors[0][indices]
        else:
            images = [self.dataset[int(i)][0] for i in indices]
            if not all(isinstance(x, Tensor) for x in images):
                raise NadkitError(f"the dataset gives {type(images[0]).__name__} images, not tensors; add a transform "
                                  "that ends in ToTensor (and your normalisation)")
            images = torch.stack(images)
        if images.dim() != 4:
            raise NadkitError(f"the dataset's images are {list(images.shape[1:])}, not [channels, H, W]; give image "
                              "tensors of shape [C, H, W]")
        return check_images(images, self)


def check_images(images: Tensor, owner=None) -> Tensor:
    """A batch of images as float, refused in one line if not finite; a warning (once per ``owner``)
    for integer images or a 0-255 range, which a network trained on normalised images does not expect."""
    if images.dtype == torch.bool or images.is_complex():
        raise NadkitError(f"the dataset's images are {str(images.dtype).replace('torch.', '')}; give float image "
                          "tensors, preprocessed as for training")
    floating = images.is_floating_point()
    images = images.float()
    if floating and not bool(torch.isfinite(images).all()):
        raise NadkitError("the dataset's images hold NaN or infinite values; give finite images (check the "
                          "preprocessing, e.g. a division by a zero std)")
    if not getattr(owner, "_range_warned", False) and images.numel() and \
            (not floating or (float(images.min()) >= 0 and float(images.max()) > 2.0 ** 5)):

        if owner is not None:
            owner._range_warned = True
        kind = "integer (uint8?)" if not floating else "in a 0-255 range"
        warnings.warn(f"the dataset's images are {kind}: fed to the network as they are; give them as for "
                      "training, e.g. images.float() / 255 then your normalisation", stacklevel=3)
    return images


def as_image_data(data, class_names: Sequence[str] | None = None) -> ImageData:
    """``data`` as NAD reads it: nadkit's own splits (``labels``, ``class_names``, ``load``) as they
    are, any ``torch.utils.data.Dataset`` of (image tensor, label) through ``DatasetImages``."""
    if hasattr(data, "load") and hasattr(data, "labels") and hasattr(data, "class_names"):
        if class_names is not None and list(class_names) != list(data.class_names):
            raise NadkitError("class_names are given for a nadkit data set that names its classes; leave them out")
        return data
    if isinstance(data, torch.utils.data.Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DatasetImages(data, class_names)
    raise NadkitError(f"cannot read images from a {type(data).__name__}; give a torch Dataset of (image tensor, label) "
                      "pairs, e.g. TensorDataset(images, labels)")


def preprocessing_of(data) -> dict | str | None:
    """What a data set does to its images before NAD sees them, as recorded in a result: nadkit's
    own splits say it (``preprocessing``), a dataset with a ``transform`` gives its repr."""
    described = getattr(data, "preprocessing", None)
    if described is not None:
        return described() if callable(described) else described
    inner = getattr(data, "dataset", data)
    transform = getattr(inner, "transform", None)
    return repr(transform) if transform is not None else None
