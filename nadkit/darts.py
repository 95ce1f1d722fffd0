"""DARTS-V2 (Liu et al., ICLR 2019): the cells of the paper's fourth topology, whose skip
connections were found by architecture search. Used by the embedded network and at paper scale."""

from __future__ import annotations

import torch
from torch import Tensor, nn

DARTS_V2_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                   ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
DARTS_V2_REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]


def relu_conv(cin: int, cout: int, k: int = 1, stride: int = 1, pad: int = 0, dil: int = 1, groups: int = 1):
    return [nn.ReLU(inplace=False), nn.Conv2d(cin, cout, k, stride, pad, dil, groups, bias=False)]


class DilConv(nn.Sequential):
    def __init__(self, c: int, stride: int, dil: int = 1):
        pad = dil
        super().__init__(*relu_conv(c, c, 3, stride, pad, dil, groups=c), nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c))


class SepConv(nn.Sequential):
    """Two depthwise-separable 3x3 convs, as in DARTS."""

    def __init__(self, c: int, stride: int):
        super().__init__(DilConv(c, stride), DilConv(c, 1))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs (DARTS's reduction of a skip)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.conv2 = nn.Conv2d(cin, cout - cout // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv1(x), self.conv2(x[:, :, 1:, 1:])], 1))


def darts_op(name: str, c: int, stride: int) -> nn.Module:
    if name == "sep_conv_3x3":
        return SepConv(c, stride)
    if name == "dil_conv_3x3":
        return DilConv(c, stride, dil=2)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    raise ValueError(name)


class Cell(nn.Module):
    """A DARTS cell: four nodes, each the sum of two ops on earlier states; output = concat of nodes."""

    def __init__(self, genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else nn.Sequential(
            *relu_conv(c_pp, c), nn.BatchNorm2d(c))
        self.preprocess1 = nn.Sequential(*relu_conv(c_p, c), nn.BatchNorm2d(c))
        self.inputs = [i for _, i in genotype]
        self.ops = nn.ModuleList(darts_op(name, c, 2 if reduction and i < 2 else 1) for name, i in genotype)

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n in range(4):
            a, b = 2 * n, 2 * n + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], 1)


class DARTS(nn.Module):
    """Two stems and 14 DARTS-V2 cells (reductions at cells 4 and 9), GAP, linear. The embedded
    stems halve 32x32 inputs once; ``imagenet_stems`` are those of DARTS's ImageNet network."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16, cells: int = 14,
                 imagenet_stems: bool = False):
        super().__init__()
        c = width
        if imagenet_stems:  # DARTS's ImageNet network: the stems divide the resolution by 8
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, c // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(inplace=True),
                nn.Conv2d(c // 2, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c))
        else:
            self.stem0 = nn.Sequential(nn.Conv2d(in_channels, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c))
        self.stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, 2 if imagenet_stems else 1, 1, bias=False),
                                   nn.BatchNorm2d(c))
        c_pp, c_p, reduction_prev = c, c, imagenet_stems
        self.cells = nn.ModuleList()
        for i in range(cells):
            reduction = i in (cells // 3, 2 * cells // 3)
            c = c * 2 if reduction else c
            genotype = DARTS_V2_REDUCE if reduction else DARTS_V2_NORMAL
            self.cells.append(Cell(genotype, c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, 4 * c, reduction
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean((2, 3)))
