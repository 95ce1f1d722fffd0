"""Paper-scale networks: torchvision's VGG16, ResNet50 and DenseNet121, and an ImageNet DARTS-V2
network, with weights from the torchvision cache, a file, or none (random: tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .darts import DARTS
from .errors import NadkitError

TORCHVISION = {"vgg16": "VGG16_Weights", "resnet50": "ResNet50_Weights", "densenet121": "DenseNet121_Weights"}


# The authors' beta per network (ImageNet, Places365) and their 21 passes over each class's images.
AUTHORS_BETA = {"vgg16": (4.5, 5.0), "resnet50": (0.02, 0.02), "densenet121": (0.02, 0.02), "darts": (0.45, 0.20)}
AUTHORS_PASSES = 21


def authors_defaults(arch: str, dataset: str) -> dict:
    """NAD's defaults at paper scale: the authors' beta per network (Places365 when the data set's
    path names it), learning rate and batch. Stopping is nadkit's, not theirs: the authors stop
    after 21 epochs over a class's images, nadkit on convergence (``steps="auto"``) with
    ``passes`` as its cap; their runs also draw starts and batches from one global stream (seed
    233) and augment during NAD, which nadkit does not."""
    places = "places365" in dataset.lower()
    beta = AUTHORS_BETA.get(arch, (0.02, 0.02))[1 if places else 0]
    return {"beta": beta, "steps": "auto", "passes": AUTHORS_PASSES, "lr": 0.1, "batch_per_class": 16}


def build_paper_network(arch: str, num_classes: int = 1000) -> nn.Module:
    """A randomly initialised paper-scale ``arch`` for 3-channel images."""
    import torchvision.models as tvm

    if arch in TORCHVISION:
        return getattr(tvm, arch)(weights=None, num_classes=num_classes)
    if arch == "darts":

        return DARTS(num_classes=num_classes, in_channels=3, width=48, imagenet_stems=True)
    raise NadkitError(f"unknown arch {arch!r}; choose one of: vgg16, resnet50, densenet121, darts")


def torchvision_state(arch: str) -> dict:
    """The IMAGENET1K_V1 weights of ``arch`` from the user's torchvision cache (never downloaded)."""
    import torchvision.models as tvm

    if arch not in TORCHVISION:
        raise NadkitError(f"torchvision has no weights for {arch}; pass --weights FILE (a state dict of nadkit's {arch})")
    url = getattr(tvm, TORCHVISION[arch]).IMAGENET1K_V1.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not path.exists():
        raise NadkitError(f"torchvision weights for {arch} not in {path.parent}; on a machine with internet run "
                          f"`python -c \"import torchvision; torchvision.models.{arch}(weights='IMAGENET1K_V1')\"` "
                          "and copy the file there (or set TORCH_HOME)")
    return torch.load(path, map_location="cpu", weights_only=True)
