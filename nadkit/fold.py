"""Fold a frozen network's BatchNorms into the convolutions they follow, for NAD's speed.

In eval mode a BatchNorm after a convolution is a per-channel affine map, so it folds into the
convolution's weights and bias: the network computes the same function (to the last bits: the
sums run in another order) with one pass over memory fewer at every such pair, forward and
backward. NAD's steps spend 10-20% of their time in BatchNorm (embedded networks, one thread).
The pairs are found on the traced graph (``torch.fx``): a BatchNorm whose only input is a
convolution's output that nothing else reads. A network ``torch.fx`` cannot trace is left as it is.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Collection

import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def foldable_pairs(model: nn.Module, keep: Collection[str] = ()) -> list[tuple[str, str]]:
    """(conv, batchnorm) module names that fold; none named in ``keep`` (the mask points, whose
    outputs must stay what they are) and none whose modules run twice."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # data-dependent control flow: no folding, never an error
        return []
    modules = dict(model.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")

    def is_call(node, kind) -> bool:
        return isinstance(node, torch.fx.Node) and node.op == "call_module" and \
            isinstance(modules.get(node.target), kind) and calls[node.target] == 1 and node.target not in keep

    return [(n.args[0].target, n.target) for n in graph.nodes
            if is_call(n, nn.BatchNorm2d) and is_call(n.args[0], nn.Conv2d) and len(n.args[0].users) == 1
            and not modules[n.target].training]


def fold_batchnorm(model: nn.Module, keep: Collection[str] = ()) -> tuple[nn.Module, int]:
    """A copy of the eval-mode ``model`` with its foldable BatchNorms folded (the model itself when
    none folds) and how many folded. ``keep``: module names that must stay (mask points)."""
    pairs = foldable_pairs(model, keep)
    if not pairs:
        return model, 0
    folded = copy.deepcopy(model)
    for conv, bn in pairs:
        parent, _, name = conv.rpartition(".")
        fused = fuse_conv_bn_eval(folded.get_submodule(conv), folded.get_submodule(bn))
        setattr(folded.get_submodule(parent) if parent else folded, name, fused.requires_grad_(False))
        parent, _, name = bn.rpartition(".")
        setattr(folded.get_submodule(parent) if parent else folded, name, nn.Identity())
    return folded, len(pairs)
