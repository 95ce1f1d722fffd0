import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nadkit import baselines as B
from nadkit.data import TensorImages
from nadkit.errors import NadkitError
from nadkit.metrics import random_like
from nadkit.networks import build_network
from nadkit.points import MaskPoint, mask_points, point_widths
from nadkit.subarch import SubArchitectures

METHODS = ("mean activation", "taylor", "model lego")


def class_images(n_per_class: int = 6, k: int = 3, size: int = 4, seed: int = 0) -> TensorImages:
    """Class c: input channel c bright (about 200), the others dim (0-20), with noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(k).repeat(n_per_class)
    images = torch.randint(0, 21, (len(labels), k, size, size), generator=gen)
    images[torch.arange(len(labels)), labels] += 180
    return TensorImages(images.to(torch.uint8), labels, [f"c{i}" for i in range(k)], 0.0, 1.0)


class Planted(nn.Module):
    """Point a (6 channels) and b (5): channel A[c] (B[c]) alone carries class c to its logit; the
    others are weak distractors that the logits never read. ``loud``: channel 5 of a is the strongest
    of all on class 0's images, and nothing reads it."""

    A, B = (4, 0, 2), (3, 1, 4)

    def __init__(self, loud: bool = False):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(3, 6, 1, bias=False), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(6, 5, 3, padding=1, bias=False), nn.ReLU()
        self.fc = nn.Linear(5, 3, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
            self.conv1.weight[[1, 3, 5]] = 0.3  # distractors: weakly on for every class
            if loud:
                self.conv1.weight[5] = 0.0
                self.conv1.weight[5, 0] = 3.0
            self.conv2.weight[0, 1, 1, 1] = self.conv2.weight[2, 3, 1, 1] = 1.0  # distractors of b read a's
            for c, (a, b) in enumerate(zip(self.A, self.B)):
                self.conv1.weight[a, c] = 1.0
                self.conv2.weight[b, a] = 1 / 9
                self.fc.weight[c, b] = 1.0

    def forward(self, x):
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).mean((2, 3)))


PLANTED_POINTS = [MaskPoint("a", "relu1"), MaskPoint("b", "relu2")]


@pytest.mark.parametrize("method", METHODS)
def test_the_only_channel_that_carries_a_class_is_ranked_first(method):
    model, data = Planted(), class_images()
    scores = B.channel_scores(method, model, PLANTED_POINTS, data, [0, 1, 2], per_class=4)
    assert [s.shape for s in scores] == [(3, 6), (3, 5)]
    assert scores[0].argmax(1).tolist() == list(Planted.A)
    assert scores[1].argmax(1).tolist() == list(Planted.B)


def test_a_loud_unread_channel_fools_mean_activation_only():
    model, data = Planted(loud=True), class_images()
    first = {m: B.channel_scores(m, model, PLANTED_POINTS, data, [0, 1, 2], per_class=4)[0][0].argmax().item()
             for m in METHODS}
    assert first == {"mean activation": 5, "taylor": Planted.A[0], "model lego": Planted.A[0]}


def test_taylor_is_gradient_times_activation_summed_over_space_then_absolute_mean_and_mean_activation_is_the_mean():
    torch.manual_seed(0)
    model, data = Planted(), class_images()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, _ = B.ClassBatches(data, [1], 4, 0).next(train=False)
    a = model.relu1(model.conv1(x)).detach().requires_grad_(True)
    y = model.fc(model.relu2(model.conv2(a)).mean((2, 3)))[:, 1].sum()
    (g,) = torch.autograd.grad(y, a)
    want = (a * g).sum((2, 3)).abs().mean(0)
    got = B.channel_scores("taylor", model, PLANTED_POINTS, data, [0, 1, 2], per_class=4)[0][1]
    assert torch.allclose(got, want, atol=1e-6)
    got = B.channel_scores("mean activation", model, PLANTED_POINTS, data, [0, 1, 2], per_class=4)[0][1]
    assert torch.allclose(got, a.detach().mean((0, 2, 3)), atol=1e-6)


def reference_masks(shape, seed=0):
    """Random reference masks with every count from none to all channels present."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, shape[1] + 1, (shape[0],), generator=gen)
    counts[0], counts[-1] = 0, shape[1]
    return torch.rand(shape, generator=gen).argsort(1).argsort(1) < counts[:, None]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "densenet121", "darts"])
def test_every_method_keeps_as_many_channels_as_the_reference_on_every_network(arch):
    torch.manual_seed(0)
    model = build_network(arch).eval()
    points = mask_points(arch, model)
    widths = point_widths(model, points, (1, 32, 32))
    gen = torch.Generator().manual_seed(1)
    data = TensorImages(torch.randint(0, 256, (12, 1, 32, 32), generator=gen, dtype=torch.uint8),
                        torch.arange(12) % 10, [str(i) for i in range(10)], 0.3, 0.3)
    classes = [3, 0, 7]
    ref = [reference_masks((3, w), seed=i) for i, w in enumerate(widths)]
    for method in B.BASELINES:
        masks = B.baseline_masks(method, model, points, data, ref, classes, per_class=2, batch=4)
        assert [m.shape for m in masks] == [r.shape for r in ref] and all(m.dtype == torch.bool for m in masks)
        for m, r in zip(masks, ref):
            assert torch.equal(m.sum(1), r.sum(1)), method
    assert B.baseline_masks("random", model, points, data, ref, classes, seed=5)[0].equal(random_like(ref, 5)[0])


def test_same_seed_same_masks_other_seed_other_images_and_chunking_changes_nothing():
    torch.manual_seed(0)
    model, data = Planted(), class_images(n_per_class=10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    ref = [reference_masks((3, 6)), reference_masks((3, 5), seed=1)]
    for method in B.BASELINES:
        one = B.baseline_masks(method, model, PLANTED_POINTS, data, ref, [0, 1, 2], per_class=3, seed=4)
        two = B.baseline_masks(method, model, PLANTED_POINTS, data, ref, [0, 1, 2], per_class=3, seed=4)
        assert all(torch.equal(a, b) for a, b in zip(one, two)), method
    for method in METHODS:
        whole = B.channel_scores(method, model, PLANTED_POINTS, data, [0, 1, 2], per_class=3, seed=4, batch=64)
        split = B.channel_scores(method, model, PLANTED_POINTS, data, [0, 1, 2], per_class=3, seed=4, batch=2)
        alone = B.channel_scores(method, model, PLANTED_POINTS, data, [2], per_class=3, seed=4)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(whole, split)), method
        assert all(torch.allclose(a[2:], b, atol=1e-5) for a, b in zip(whole, alone)), method
        other = B.channel_scores(method, model, PLANTED_POINTS, data, [0, 1, 2], per_class=3, seed=5)
        assert not all(torch.allclose(a, b) for a, b in zip(whole, other)), method  # the seed picks the images


def test_top_k_like_keeps_the_best_and_breaks_ties_by_channel_index():
    scores = [torch.tensor([[0.1, 0.9, 0.5, 0.9], [1.0, 1.0, 1.0, 1.0], [float("nan"), 0.0, -1.0, 2.0]])]
    binary = [torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)]
    (keep,) = B.top_k_like(scores, binary)
    assert keep.int().tolist() == [[0, 1, 0, 1], [1, 1, 0, 0], [0, 1, 1, 1]]
    with pytest.raises(NadkitError, match="shape"):
        B.top_k_like([torch.zeros(3, 5)], binary)
    with pytest.raises(NadkitError, match="unknown baseline"):
        B.baseline_masks("gradcam", Planted(), PLANTED_POINTS, class_images(), binary, [0, 1, 2])


@pytest.mark.parametrize("groups,stride,dilation,padding", [(1, 1, 1, 1), (2, 2, 1, 0), (4, 1, 2, 2), (1, 1, 1, "same")])
def test_conv_contribution_is_the_part_of_each_output_that_each_input_channel_makes(groups, stride, dilation, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6 if groups != 4 else 8, 3, stride, padding, dilation, groups)
    x = torch.randn(2, 4, 7, 7)
    want = torch.stack([F.conv2d(x * (torch.arange(4) == i).float()[:, None, None], conv.weight, None, stride,
                                 padding, dilation, groups).sum((2, 3)) for i in range(4)], 2).relu()
    assert torch.allclose(B._conv_contribution(conv, x), want, atol=1e-5)


class Chain(nn.Module):
    """A plain conv/linear chain, as Model LEGO's code handles (its flatten resets the mask to ones)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.flat = nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten()
        self.fc1, self.relu3, self.fc2 = nn.Linear(24, 5), nn.ReLU(), nn.Linear(5, 3)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        return self.fc2(self.relu3(self.fc1(self.flat(self.relu2(self.conv2(x))))))


def reference_lego(model, x, labels, num_classes):
    """Model LEGO's RelevantFeatureIdentifying, transcribed per image with their tensor layouts:
    partial_conv ([b, o, i, h, w], summed over h, w) / partial_linear ([b, o, i]), relu, summed per
    class; then identify(). Returns per layer (last first) the counts and the masks."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][::-1]
    inputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.__setitem__(m, i[0].detach())) for m in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    out, mask = [], torch.eye(num_classes)
    for m in layers:
        inp = inputs[m]
        if isinstance(m, nn.Conv2d):
            o_h, o_w = model_out_hw(m, inp)
            wei = m.weight.view(m.weight.size(0), m.weight.size(1), -1).permute(1, 2, 0)
            unf = F.unfold(inp, m.kernel_size, m.dilation, m.padding, m.stride)
            unf = unf.view(inp.size(0), inp.size(1), wei.size(1), o_h, o_w)
            values = torch.einsum("ijkmn,jkl->iljmn", unf, wei).sum((3, 4))
            alpha, beta = 0.3, 0.2
        else:
            values = torch.einsum("bi,oi->boi", inp, m.weight)
            alpha, beta = 0.4, 0.3
        values = torch.stack([values.relu()[labels == c].sum(0) for c in range(num_classes)])
        if values.shape[1] != mask.shape[1]:
            mask = torch.ones(values.shape[0], values.shape[1])
        values = torch.where(B._mm_norm(values) > alpha, 1.0, 0.0)
        count = torch.einsum("co,coi->ci", mask, values)
        mask = torch.where(B._mm_norm(count) > beta, 1.0, 0.0)
        out.append((count, mask))
    return out


def model_out_hw(conv, inp):
    with torch.no_grad():
        return conv(inp).shape[-2:]


def test_lego_relevance_reproduces_their_counts_and_masks_layer_by_layer():
    torch.manual_seed(0)
    model, x = Chain().eval(), torch.randn(12, 3, 4, 4)
    labels = torch.arange(12) % 3
    ref = reference_lego(model, x, labels, 3)
    order = torch.argsort(labels, stable=True)
    rel = B.lego_relevance(model, [(x[order[:5]], labels[order[:5]]), (x[order[5:]], labels[order[5:]])], [0, 1, 2])
    names = ["fc2", "fc1", "conv2", "conv1"]
    assert list(rel) == names
    for name, (count, mask) in zip(names, ref):
        assert torch.equal(rel[name].floor(), count), name
        assert torch.equal((B._mm_norm(rel[name].floor()) > B.LEGO_ALPHA_BETA[type(getattr(model, name))][1]).float(),
                           mask), name
    # a class's relevance does not depend on the other classes scored with it
    alone = B.lego_relevance(model, [(x[labels == 2], torch.zeros(4, dtype=torch.long))], [2])
    assert all(torch.allclose(alone[n], rel[n][2:]) for n in names)


def test_lego_finds_the_layer_that_reads_each_point_through_bn_relu_pool_flatten_and_cat():
    chain = Chain()
    got = B.lego_consumers(chain, [MaskPoint("a", "relu1"), MaskPoint("b", "relu2")], torch.zeros(1, 3, 4, 4))
    assert got == [("conv2", 1), ("fc1", 4)]  # through the pool; b's 6 channels are 24 inputs after the flatten
    expect = {"vgg16": {"conv1_1": "features.conv1_2", "conv1_2": "features.conv2_1", "conv5_3": "classifier"},
              "resnet50": {"stem": "layer1.0.conv1", "layer1.2": "layer2.0.conv1", "layer4.2": "fc"},
              "densenet121": {"stem": "features.denseblock1.layers.0.conv1", "block1": "features.transition1.conv",
                              "relu5": "classifier"},
              # cell i+1 first reads cell i-1 (preprocess0), then cell i (preprocess1)
              "darts": {"stem0": "stem1.1", "cell3": "cells.4.preprocess1.1", "cell12": "cells.13.preprocess1.1",
                        "cell13": "classifier"}}
    for arch, want in expect.items():
        model = build_network(arch).eval()
        points = mask_points(arch, model)
        found = dict(zip([p.name for p in points], B.lego_consumers(model, points, torch.zeros(1, 1, 32, 32))))
        assert {p: found[p] for p in want} == {p: (n, 1) for p, n in want.items()}, arch


def test_channels_last_and_training_mode_change_no_score():
    torch.manual_seed(0)
    model, data = build_network("resnet50").eval(), TensorImages(
        torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8), torch.arange(6) % 3, ["a", "b", "c"], 0.3, 0.3)
    points = mask_points("resnet50", model)[:3]
    plain = {m: B.channel_scores(m, model, points, data, [0, 2], per_class=2) for m in METHODS}
    model.to(memory_format=torch.channels_last).train()
    for m in METHODS:
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(plain[m], B.channel_scores(
            m, model, points, data, [0, 2], per_class=2))), m
    assert model.training  # put back as it was


@pytest.mark.slow
def test_baseline_command_keeps_nads_counts_and_evaluates(tmp_path, capsys):
    from nadkit.cli import main

    nad, out = tmp_path / "nad", tmp_path / "taylor"
    assert main(["disentangle", "--arch", "vgg16", "--classes", "0,1,2,3", "--steps", "2", "--batch-per-class", "2",
                 "--out", str(nad)]) == 0
    assert main(["baseline", str(nad), "--method", "taylor", "--per-class", "8", "--out", str(out)]) == 0
    a, b = SubArchitectures.load(nad), SubArchitectures.load(out)
    assert b.config["baseline"]["method"] == "taylor" and b.config["baseline"]["of"] == "nad"
    assert all(st["state"] == "baseline" and "steps" in st for st in b.status.values())
    assert all(torch.equal(x.sum(1), y.sum(1)) for x, y in zip(a.binary(), b.binary()))
    assert any(not torch.equal(x, y) for x, y in zip(a.binary(), b.binary()))
    assert main(["evaluate", str(out), "--mosaics", "4"]) == 0
    assert main(["baseline", str(nad), "--method", "nonsense", "--out", str(tmp_path / "x")]) == 2
    assert "nadkit: error:" in capsys.readouterr().err
