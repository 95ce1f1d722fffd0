"""Paper-scale data: ImageNet-style folders (``ROOT/train/<class>/*``, ``ROOT/val/<class>/*``;
Places365 in the same layout) with the authors' transforms, decoded by DataLoader workers.

An unreadable image is replaced by the next image of its class, with a warning, and counted
(``unreadable``), never a crash; a class folder without images is an error that names it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from .errors import NadkitError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG")


def authors_transform(train: bool, size: int = 224):
    """The authors' transforms: RandomResizedCrop(size, scale 0.08-1.25) and a flip for training;
    resize to 8/7 of the size and a centre crop for validation; ImageNet normalisation."""
    from torchvision import transforms as T

    if train:
        ops = [T.RandomResizedCrop(size, scale=(0.08, 1.25)), T.RandomHorizontalFlip()]
    else:
        ops = [T.Resize(round(size * 256 / 224)), T.CenterCrop(size)]
    return T.Compose(ops + [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ImageFolderData:
    """One split of an ImageNet-style folder: labels from the sorted class folder names."""

    augments = True  # ``load`` takes per-image augmentation seeds

    def __init__(self, root: str | Path, split: str = "train", image_size: int = 224):
        self.root, self.split, self.image_size = Path(root), split, image_size
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

    def read(self, i: int, train: bool, seed: int = 0) -> tuple[Tensor, int]:
        """Image ``i`` transformed (random crops drawn from ``seed``), and how many unreadable
        images were skipped to get it."""
        from PIL import Image

        transform = authors_transform(train, self.image_size)
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
