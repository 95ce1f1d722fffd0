"""The paper's four topologies at a width that trains on a CPU, for 1x32x32 inputs.

Each keeps the connection type that the paper studies: direct (VGG16: 13 convs), plain skip
(ResNet50: bottlenecks 3-4-6-3), dense skip (DenseNet121: dense blocks 6-12-24-16) and searched
skip (DARTS: 14 cells of the DARTS-V2 genotype). Weights ship in ``data/models/ARCH.safetensors``
with a JSON card beside them.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor, nn

from .darts import DARTS
from .errors import NadkitError
from .sanity import CASCADE_SEED, randomize_top, untrained
from .statedict import fit_state, read_state, weights_sha256  # noqa: F401  (weights_sha256 re-exported)
from .anynet import is_external, load_external, split_arch
from .paper import build_paper_network, torchvision_state

ARCHS = ("vgg16", "resnet50", "densenet121", "darts")


def models_dir() -> Path:
    """Where the embedded networks' weights and cards are: ``NADKIT_MODELS`` if set, else
    ``data/models`` under the current folder (a checkout), else the data package's
    ``/usr/share/nadkit/models``. Read at each use, never from this file's own place, so that an
    installed (non-editable) nadkit finds them from any folder; ``nadbook`` points
    ``NADKIT_MODELS`` at its checkout."""
    if os.environ.get("NADKIT_MODELS"):
        return Path(os.environ["NADKIT_MODELS"]).resolve()
    for folder in (Path.cwd() / "data" / "models", Path("/usr/share/nadkit/models")):
        if folder.is_dir():
            return folder.resolve()
    return (Path.cwd() / "data" / "models").resolve()


def __getattr__(name: str):
    """``MODELS_DIR``: ``models_dir()`` at the time it is read (kept for code that imports the name)."""
    if name == "MODELS_DIR":
        return models_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


# --- VGG16: direct connections ----------------------------------------------------------------
VGG16_BLOCKS = ((16, 16), (32, 32), (64, 64, 64), (128, 128, 128), (128, 128, 128))


class VGG16(nn.Module):
    """13 conv-BN-ReLU layers in five blocks, each block ending in a 2x2 max-pool; GAP; linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        cin = in_channels
        for b, widths in enumerate(VGG16_BLOCKS, 1):
            for i, w in enumerate(widths, 1):
                conv, bn, relu = conv_bn_relu(cin, w)
                layers[f"conv{b}_{i}"], layers[f"bn{b}_{i}"], layers[f"relu{b}_{i}"] = conv, bn, relu
                cin = w
            layers[f"pool{b}"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


# --- ResNet50: plain skip connections -----------------------------------------------------------
class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), added to the (projected) input, then ReLU."""

    def __init__(self, cin: int, mid: int, stride: int):
        super().__init__()
        cout = 4 * mid
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """Stem (conv-BN-ReLU-maxpool), four stages of 3-4-6-3 bottlenecks, GAP, linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(2)
        cin = width
        for s, (blocks, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 2, 2)), 1):
            mid = width * 2 ** (s - 1)
            stage = [Bottleneck(cin if i == 0 else 4 * mid, mid, stride if i == 0 else 1) for i in range(blocks)]
            setattr(self, f"layer{s}", nn.Sequential(*stage))
            cin = 4 * mid
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


# --- DenseNet121: dense skip connections --------------------------------------------------------
class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (to 4k) - BN-ReLU-3x3 conv (to k); its output is concatenated to its input."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.Module):
    def __init__(self, layers: int, cin: int, growth: int):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(OrderedDict(norm=nn.BatchNorm2d(cin), relu=nn.ReLU(inplace=True),
                                     conv=nn.Conv2d(cin, cout, 1, bias=False), pool=nn.AvgPool2d(2)))


class DenseNet121(nn.Module):
    """Stem (conv-BN-ReLU-maxpool), dense blocks 6-12-24-16 with halving transitions, BN, GAP, linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, growth: int = 8):
        super().__init__()
        c = 2 * growth
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv0=nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), norm0=nn.BatchNorm2d(c),
            relu0=nn.ReLU(inplace=True), pool0=nn.MaxPool2d(2))
        for b, n in enumerate((6, 12, 24, 16), 1):
            layers[f"denseblock{b}"] = DenseBlock(n, c, growth)
            c += n * growth
            if b < 4:
                layers[f"transition{b}"] = Transition(c, c // 2)
                c //= 2
        layers["norm5"] = nn.BatchNorm2d(c)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.relu(self.features(x)).mean((2, 3)))


# --- building and loading -----------------------------------------------------------------------
BUILDERS = {"vgg16": VGG16, "resnet50": ResNet50, "densenet121": DenseNet121, "darts": DARTS}


def check_arch(arch: str, external: bool = True) -> str:
    """``arch`` if it names an embedded topology (or, with ``external``, a network by string)."""

    if external and is_external(arch):
        split_arch(arch)
        return arch
    if arch not in BUILDERS:
        more = ", torchvision:NAME, timm:NAME or package.module:function" if external else ""
        raise NadkitError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}{more}")
    return arch


def build_network(arch: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised embedded network of topology ``arch``."""
    return BUILDERS[check_arch(arch, external=False)](num_classes=num_classes)


def model_card(arch: str, dataset: str = "fashion-mnist") -> dict:
    """The JSON card shipped beside a trained network (accuracy, training, NAD defaults)."""
    path = models_dir() / f"{arch}.json"
    if dataset != "fashion-mnist" or not path.exists():
        return {}
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise NadkitError(f"network card {path} is corrupt ({str(e)[:80]}); restore it (git checkout) or re-train") from None
    if not isinstance(card, dict):
        raise NadkitError(f"network card {path} is not a JSON object; restore it (git checkout) or re-train")
    return card


def instance_weights(arch: str, instance: int) -> Path:
    """The weights of an independently trained instance of embedded ``arch``: 0 is the shipped
    network (training seed 0); instance S was trained from seed S
    (``nadkit train --arch ARCH --seed S --out data/models/instances/ARCH-seedS``)."""
    if instance == 0:
        return models_dir() / f"{arch}.safetensors"
    return models_dir() / "instances" / f"{arch}-seed{instance}" / f"{arch}.safetensors"


def load_weights(model: nn.Module, path: Path | str, arch: str) -> nn.Module:
    """Load a state dict file (safetensors, or .pth read with ``weights_only=True``) into ``model``."""
    if not Path(path).exists() and Path(path).parent == models_dir():
        raise NadkitError(f"weights file {path} not found; set NADKIT_MODELS to the folder of the shipped networks (a "
                          f"checkout's data/models), train it with `nadkit train --arch {arch}` or pass --weights FILE")
    fit_state(model, read_state(path), f"file {path}", arch)
    card = Path(path).with_suffix(".json")
    if card.is_file():  # a card written by nadkit train records the sha256 of the weights beside it
        try:
            recorded = json.loads(card.read_text()).get("weights_sha256")
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            recorded = None
        if recorded is not None and recorded != weights_sha256(model):
            raise NadkitError(f"weights {path} do not match their card {card} (sha256 differs: a training run was cut "
                              f"between the two files?); re-run nadkit train --arch {arch} --out {Path(path).parent}")
    return model


def load_network(arch: str, dataset: str = "fashion-mnist", weights: str | Path | None = None,
                 num_classes: int = 1000) -> nn.Module:
    """The network ``arch`` for ``dataset``, frozen and in eval mode.

    Embedded (``fashion-mnist``): the shipped weights unless ``weights`` names a file, "none"
    (untrained), "randomized:K" (top K blocks re-initialised: ``nadkit.sanity``), "instance:S"
    (the instance trained from seed S: ``instance_weights``) or "permuted" (trained on permuted
    labels: ``data/models/permuted``, the data-randomisation test). Paper scale
    (``imagefolder:ROOT``): torchvision's network with ``weights`` "torchvision" (default, from the
    user's cache), a file, or "none" (random). Any other network by string (``nadkit.anynet``):
    weights from the library's cache (default), a file, or "none".
    """

    check_arch(arch)
    if is_external(arch):
        if dataset not in ("fashion-mnist",) and not dataset.startswith("imagefolder:"):
            raise NadkitError(f"unknown dataset {dataset!r}; use fashion-mnist or imagefolder:ROOT")
        model = load_external(arch, weights, num_classes)
    elif dataset == "fashion-mnist":
        model = untrained(lambda: build_network(arch))
        if isinstance(weights, str) and weights.startswith("randomized:"):
            blocks = weights.split(":", 1)[1]
            if not blocks.isdigit():
                raise NadkitError(f"--weights {weights}: say how many top blocks to re-initialise, e.g. randomized:2")
            load_weights(model, models_dir() / f"{arch}.safetensors", arch)
            randomize_top(model, untrained(lambda: build_network(arch), CASCADE_SEED), arch, int(blocks))
        elif isinstance(weights, str) and weights.startswith("instance:"):
            seed = weights.split(":", 1)[1]
            if not seed.isdigit():
                raise NadkitError(f"--weights {weights}: name the instance by its training seed, e.g. instance:1")
            path = instance_weights(arch, int(seed))
            if not path.exists():
                raise NadkitError(f"no instance {seed} of {arch} at {path.parent}; train it with `nadkit train --arch "
                                  f"{arch} --seed {seed} --out {path.parent}`")
            load_weights(model, path, arch)
        elif weights == "permuted":
            path = models_dir() / "permuted" / f"{arch}.safetensors"
            if not path.exists():
                raise NadkitError(f"no label-permuted {arch} at {path.parent}; train it with `nadkit train --arch "
                                  f"{arch} --permute-labels 0 --subset 10000 --epochs 80 --out {path.parent}`")
            load_weights(model, path, arch)
        elif weights != "none":
            load_weights(model, weights or models_dir() / f"{arch}.safetensors", arch)
    elif dataset.startswith("imagefolder:"):

        model = untrained(lambda: build_paper_network(arch, num_classes))
        if weights in (None, "torchvision"):
            fit_state(model, torchvision_state(arch), "from torchvision", arch)
        elif weights != "none":
            load_weights(model, weights, arch)
    else:
        raise NadkitError(f"unknown dataset {dataset!r}; use fashion-mnist or imagefolder:ROOT")
    return model.eval().requires_grad_(False)
