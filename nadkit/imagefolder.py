"""Paper-scale data: ImageNet-style folders (``ROOT/train/<class>/*``, ``ROOT/val/<class>/*``;
Places365 in the same layout) with the authors' transforms, decoded by DataLoader workers.

An unreadable image is replaced by the next image of its class, with a warning, and counted
(``unreadable``), never a crash; a class folder without images is an error that names it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .errors import NadkitError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG")


def default_resize(size: int) -> int:
    """The authors' side before the validation centre crop: 256 for 224, 8/7 of the size."""
    return round(size * 256 / 224)


def authors_transform(train: bool, size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      resize: int | None = None):
    """The authors' transforms: RandomResizedCrop(size, scale 0.08-1.25) and a flip for training;
    resize to ``resize`` (default 8/7 of the size) and a centre crop for validation; normalisation
    by ``mean`` and ``std`` (default ImageNet's)."""
    from torchvision import transforms as T

    if train:
        ops = [T.RandomResizedCrop(size, scale=(0.08, 1.25)), T.RandomHorizontalFlip()]
    else:
        ops = [T.Resize(resize or default_resize(size)), T.CenterCrop(size)]
    return T.Compose(ops + [T.ToTensor(), T.Normalize(list(mean), list(std))])


class ImageFolderData:
    """One split of an ImageNet-style folder (``ROOT/train/<class>/*``, ``ROOT/val/<class>/*``):
    labels from the class folder names in alphabetical order. Every image is resized to ``resize``,
    centre-cropped to ``image_size`` and normalised with ``mean`` and ``std`` (default ImageNet's);
    ``augment``: training images get the authors' random resized crop and flip instead (default
    off: NAD's images are shown to the network as it was tested)."""

    augments = True  # ``load`` takes per-image augmentation seeds

    def __init__(self, root: str | Path, split: str = "train", image_size: int = 224,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None, resize: int | None = None,
                 augment: bool = False):
        self.root, self.split, self.image_size = Path(root).expanduser().absolute(), split, image_size
        self.augment = bool(augment)
        self.mean = tuple(mean) if mean is not None else IMAGENET_MEAN
        self.std = tuple(std) if std is not None else IMAGENET_STD
        self.resize = resize or default_resize(image_size)
        folder = self.root / split
        if not folder.is_dir():
            raise NadkitError(f"{folder} is not a folder; expected {self.root}/{split}/<class>/<images> "
                              "(ImageNet and Places365 layout)")
        classes = sorted(d.name for d in os.scandir(folder) if d.is_dir())
        if not classes:
            raise NadkitError(f"{folder} has no class folders; expected {folder}/<class>/<images>")
        files, labels = [], []
        for i, c in enumerate(classes):
            images = sorted(e.path for e in os.scandir(folder / c) if e.is_file() and e.name.endswith(EXTENSIONS))
            if not images:
                raise NadkitError(f"class folder {folder / c} has no images; remove it or add its images")
            files += images
            labels += [i] * len(images)
        self.files, self.labels, self.class_names = files, torch.tensor(labels), classes
        self._class_start = torch.searchsorted(self.labels, torch.arange(len(classes) + 1))

    def __len__(self) -> int:
        return len(self.files)

    def preprocessing(self) -> dict:
        """What is done to every image (recorded with a result, printed by the CLI)."""
        test = f"Resize({self.resize}), CenterCrop({self.image_size})"
        return {"train": f"RandomResizedCrop({self.image_size}, scale=(0.08, 1.25)), RandomHorizontalFlip"
                if self.augment else test, "test": test, "augment": self.augment, "image_size": self.image_size,
                "resize": self.resize, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        """The preprocessing in one line."""
        p = self.preprocessing()
        return (f"images of {self.root}: training {p['train']}; test {p['test']}; then normalised with mean "
                f"{p['mean']} and std {p['std']}")

    def read(self, i: int, train: bool, seed: int = 0) -> tuple[Tensor, int]:
        """Image ``i`` transformed (random crops drawn from ``seed``), and how many unreadable
        images were skipped to get it."""
        from PIL import Image

        transform = authors_transform(train and self.augment, self.image_size, self.mean, self.std, self.resize)
        c = int(self.labels[i])
        lo, hi = int(self._class_start[c]), int(self._class_start[c + 1])
        for tries in range(hi - lo):
            j = lo + (i - lo + tries) % (hi - lo)
            try:
                with Image.open(self.files[j]) as im, torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    return transform(im.convert("RGB")), tries
            except (OSError, ValueError, SyntaxError) as e:
                warnings.warn(f"skipping unreadable image {self.files[j]} ({e})", stacklevel=2)
        raise NadkitError(f"no readable image in {self.root / self.split / self.class_names[c]}")

    def load(self, indices: Tensor, train: bool = False, seeds: Tensor | None = None) -> Tensor:
        """A batch, decoded in this process (``prefetch`` decodes in workers)."""
        seeds = seeds if seeds is not None else torch.zeros(len(indices), dtype=torch.long)
        return torch.stack([self.read(int(i), train, int(s))[0] for i, s in zip(indices, seeds)])


class _Batches(torch.utils.data.Dataset):
    """Maps a step number to that step's batch, so that DataLoader workers decode ahead."""

    def __init__(self, data: ImageFolderData, steps: list[tuple[Tensor, Tensor]], train: bool):
        self.data, self.steps, self.train = data, steps, train

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int):
        idx, seeds = self.steps[k]
        out = [self.data.read(int(i), self.train, int(s)) for i, s in zip(idx, seeds)]
        return torch.stack([x for x, _ in out]), self.data.labels[idx], torch.tensor([n for _, n in out])


def prefetch(data: ImageFolderData, steps: list[tuple[Tensor, Tensor]], train: bool = True, workers: int = 8,
             pin_memory: bool = True):
    """Yield (images, labels, unreadable images skipped per image) for precomputed (indices, seeds)
    batches, decoded by ``workers``."""
    loader = torch.utils.data.DataLoader(_Batches(data, steps, train), batch_size=None, shuffle=False,
                                         num_workers=workers, pin_memory=pin_memory and torch.cuda.is_available(),
                                         prefetch_factor=4 if workers else None)
    yield from loader


class _RawBatches(_Batches):
    """Like ``_Batches``, but workers only read the files: decoding happens on the device."""

    def __getitem__(self, k: int):
        from torchvision.io import read_file

        idx, seeds = self.steps[k]
        return [read_file(self.data.files[int(i)]) for i in idx], idx, seeds


def decode_on(device: torch.device, data: ImageFolderData, raw: list[Tensor], idx: Tensor, seeds: Tensor,
              train: bool) -> tuple[Tensor, Tensor]:
    """Decode a batch of JPEG files with nvJPEG (``torchvision.io.decode_jpeg`` on the GPU; on the
    CPU it runs libjpeg) and apply the authors' transforms there, with each image's crop drawn from
    its seed exactly as the PIL path draws it. A file that does not decode (not a JPEG, or corrupt)
    goes through the PIL path, which replaces and counts unreadable images."""
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms import RandomResizedCrop
    from torchvision.transforms.v2 import functional as TF

    size = data.image_size
    try:
        images = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        images = [None] * len(raw)
    mean = torch.tensor(data.mean, device=device)[:, None, None]
    std = torch.tensor(data.std, device=device)[:, None, None]
    out, skipped = [], []
    for j, (img, i, seed) in enumerate(zip(images, idx.tolist(), seeds.tolist())):
        if img is None:
            try:
                img = decode_jpeg(raw[j], mode=ImageReadMode.RGB, device=device)
            except RuntimeError:
                x, n = data.read(i, train, seed)
                out.append(x.to(device))
                skipped.append(n)
                continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if train and data.augment:
                top, left, h, w = RandomResizedCrop.get_params(img, [0.08, 1.25], [3 / 4, 4 / 3])
                img = TF.resized_crop(img, top, left, h, w, [size, size], antialias=True)
                if torch.rand(1) < 0.5:
                    img = TF.horizontal_flip(img)
            else:
                img = TF.center_crop(TF.resize(img, [data.resize], antialias=True), [size, size])
        out.append((img.float() / 255 - mean) / std)
        skipped.append(0)
    return torch.stack(out), torch.tensor(skipped)


def prefetch_raw(data: ImageFolderData, steps: list[tuple[Tensor, Tensor]], device: torch.device,
                 train: bool = True, workers: int = 8):
    """Yield (images on ``device``, labels, unreadable per image): workers read, the device decodes."""
    loader = torch.utils.data.DataLoader(_RawBatches(data, steps, train), batch_size=None, shuffle=False,
                                         num_workers=workers, prefetch_factor=4 if workers else None)
    for raw, idx, seeds in loader:
        x, skipped = decode_on(device, data, raw, idx, seeds, train)
        yield x, data.labels[idx], skipped
