"""The fused NAD step: BatchNorms folded into convolutions, the mask and its error in one
function. Both are the same arithmetic as the reference path up to the last bits."""

import pytest
import torch
from torch import nn

from nadkit import Engine
from nadkit.disentangle import NAD
from nadkit.fold import fold_batchnorm, foldable_pairs
from nadkit.networks import ARCHS, load_network
from nadkit.points import MaskedPoint, mask_points


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_folded_network_computes_the_same_function(arch):
    model = load_network(arch)
    keep = {p.module for p in mask_points(arch, model)}
    folded, n = fold_batchnorm(model, keep)
    assert n > 0 and folded is not model
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original is left as it was"
    for name in keep:  # every mask point is still there, and not replaced
        assert type(folded.get_submodule(name)) is type(model.get_submodule(name))
    x = torch.randn(6, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-4, rtol=1e-4)


def test_only_a_convolution_read_by_its_batchnorm_alone_folds():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn_a = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)      # folds
            self.b, self.bn_b = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)      # b's output also read below
            self.c, self.bn_c = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)      # bn_c is a mask point

        def forward(self, x):
            x = self.bn_a(self.a(x))
            y = self.b(x)
            return self.bn_c(self.c(self.bn_b(y) + y))

    net = Net().eval()
    for bn in (net.bn_a, net.bn_b, net.bn_c):  # not the identity, so that a wrong fold shows
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    assert foldable_pairs(net, keep={"bn_c"}) == [("a", "bn_a")]
    folded, n = fold_batchnorm(net, keep={"bn_c"})
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert n == 1 and torch.allclose(net(x), folded(x), atol=1e-5)


def test_a_network_fx_cannot_trace_is_left_as_it_is():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x  # data-dependent: fx refuses

    net = Branchy().eval()
    assert fold_batchnorm(net) == (net, 0)


def test_masked_point_gradients_are_exact():
    """Against finite differences in float64 (``gradcheck``), both outputs used."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 4, 5, 5, dtype=torch.float64, generator=gen).requires_grad_()
    m = torch.rand(3, 4, dtype=torch.float64, generator=gen).requires_grad_()
    r = torch.rand(3, 4, 5, 5, dtype=torch.float64, generator=gen)
    assert torch.autograd.gradcheck(lambda a, m: MaskedPoint.apply(a, m, r), (a, m))
    y, err = MaskedPoint.apply(a, m, r)
    assert torch.allclose(err, (a * m[:, :, None, None] - r).pow(2).mean((1, 2, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "darts"])
def test_fused_and_reference_steps_learn_the_same_masks(arch, train_data):
    model = load_network(arch)
    points = mask_points(arch, model)
    runs = [NAD(model, points, steps=8, batch_per_class=4, lr=0.5, engine=Engine(fused=f)).run(train_data, [2, 7], progress=False)
            for f in (False, True)]
    assert runs[1].flips.sum() > 0, "no mask flipped: the test would prove nothing"
    for a, b in zip(runs[0].masks, runs[1].masks):
        assert (a - b).abs().max() < 1e-3 and torch.equal(a > 0.5, b > 0.5)
