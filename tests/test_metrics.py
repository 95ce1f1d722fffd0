import math

import torch
from torch import nn

from nadkit import metrics as M
from nadkit.data import TensorImages
from nadkit.points import MaskPoint


def test_jaccard_and_mean_pairwise():
    b = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    j = M.jaccard_matrix(b)
    assert j[0, 1] == 1 / 3 and j[0, 0] == 1 and j[0, 2] == 0 and j[2, 3] == 1  # two empty sets: identical
    assert math.isclose(M.mean_pairwise(j[:2, :2]), 1 / 3, rel_tol=1e-6)
    per_point, sim = M.similarity([b, b])
    assert math.isclose(per_point[0], (1 / 3 + 0 + 0 + 0 + 0 + 1) / 6, rel_tol=1e-6) and torch.allclose(sim, j)


def test_confusion_and_accuracy():
    labels = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    assert M.confusion(pred, labels, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert M.class_accuracy(pred, labels, [0, 1, 2]).tolist() == [0.5, 1.0, 0.0]


def test_misjudgment_sign_is_mis_minus_oth():
    conf = torch.tensor([[90, 10, 0, 0], [0, 100, 0, 0], [0, 0, 95, 5], [0, 0, 0, 100]])
    sim = torch.tensor([[1, .8, .2, .2], [.8, 1, .3, .3], [.2, .3, 1, .6], [.2, .3, .6, 1]])
    m = M.misjudgment(conf, sim, [0, 1, 2, 3])
    assert m["classes"] == [0, 2]
    assert math.isclose(m["mis"], (0.8 + 0.6) / 2, rel_tol=1e-6)
    assert math.isclose(m["oth"], (0.2 + (0.2 + 0.3) / 2) / 2, rel_tol=1e-6)
    assert m["dif"] > 0


class Quadrant(nn.Module):
    """A 'network' whose single point lights channel c exactly on quadrant c of its input."""

    def __init__(self):
        super().__init__()
        self.point = nn.Identity()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        maps = torch.zeros(x.shape[0], 4, *x.shape[-2:])
        for c, (r, q) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            maps[:, c, r * h:(r + 1) * h, q * w:(q + 1) * w] = 1
        return self.point(maps * x.abs().mean()).sum((2, 3)) + self.w


def test_hit_rate_is_one_when_a_class_keeps_its_quadrant_channel_and_chance_when_flat():
    # data set of 4 classes; mosaics put class k's image in quadrant q; the class's
    # sub-architecture keeps the channel of the quadrant it lands in only if it is the right one
    data = TensorImages(torch.full((40, 1, 4, 4), 200, dtype=torch.uint8), torch.arange(40) % 4,
                        ["a", "b", "c", "d"], 0.0, 1.0)
    model, points = Quadrant(), [MaskPoint("point", "point")]
    ones = [torch.ones(4, 4, dtype=torch.bool)]
    hits = M.hit_rate(model, points, ones, [0, 1, 2, 3], data, n=8, top=0.05, batch=4, progress=False)
    assert hits.shape == (8, 4, 1) and torch.allclose(hits, torch.full_like(hits, 0.25))  # flat map: chance
    _, classes = __import__("nadkit").data.mosaics(data, 8, seed=0, classes=[0, 1, 2, 3])
    # give each class only the channel of the quadrant its image occupies in mosaic 0: hit 1 there
    first = classes[0].tolist()
    own = torch.zeros(4, 4, dtype=torch.bool)
    for q, c in enumerate(first):
        own[c, q] = True
    hits = M.hit_rate(model, points, [own], [0, 1, 2, 3], data, n=8, top=0.05, batch=4, progress=False)
    assert torch.allclose(hits[0], torch.ones(4, 1))


def test_hit_rate_by_class_averages_each_class_over_the_quadrants_that_show_it():
    hits = torch.tensor([[[1.0], [0.0], [0.5], [0.25]], [[0.0], [1.0], [0.5], [0.75]]])  # [2 mosaics, 4, 1]
    quads = torch.tensor([[0, 1, 2, 3], [1, 0, 2, 2]])
    by_class = M.hit_rate_by_class(hits, quads, [0, 1, 2, 3, 4])
    assert torch.allclose(by_class[:4, 0], torch.tensor([1.0, 0.0, (0.5 + 0.5 + 0.75) / 3, 0.25]))
    assert torch.isnan(by_class[4, 0])  # a class no mosaic shows has no hit rate


def test_collapsed_flags_a_class_that_keeps_no_channel_at_some_point():
    from nadkit.metrics import collapsed

    first = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    last = torch.tensor([[1, 1], [1, 1], [0, 0]], dtype=torch.bool)
    assert collapsed([first, last]).tolist() == [False, True, True]
    assert collapsed([first[[0]], last[[0]]]).tolist() == [False]
