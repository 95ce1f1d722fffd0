import pytest
import torch

from nadkit.errors import NadkitError
from nadkit.networks import build_network
from nadkit.points import mask_points, masked, point_widths

COUNTS = {"vgg16": 13, "resnet50": 17, "densenet121": 8, "darts": 16}


@pytest.mark.parametrize("arch", COUNTS)
def test_points_are_found_on_the_unmodified_network(arch):
    model = build_network(arch).eval()
    points = mask_points(arch, model)
    assert len(points) == COUNTS[arch] == len({p.name for p in points})
    widths = point_widths(model, points, (1, 32, 32))
    assert len(widths) == len(points) and min(widths) > 0


def test_named_points_follow_the_reference():
    assert [p.name for p in mask_points("vgg16")][:3] == ["conv1_1", "conv1_2", "conv2_1"]
    assert [p.module for p in mask_points("resnet50")][:2] == ["maxpool", "layer1.0"]
    assert [p.name for p in mask_points("densenet121")] == [
        "stem", "block1", "trans1", "block2", "trans2", "block3", "trans3", "relu5"]
    assert [p.name for p in mask_points("darts")][:3] == ["stem0", "stem1", "cell0"]
    with pytest.raises(NadkitError, match="is it a vgg16"):
        mask_points("vgg16", build_network("resnet50"))


@pytest.mark.slow
@pytest.mark.parametrize("arch", COUNTS)
def test_masks_of_ones_change_nothing_and_each_image_uses_its_own_row(arch):
    torch.manual_seed(0)
    model = build_network(arch).eval()
    points = mask_points(arch, model)
    widths = point_widths(model, points, (1, 32, 32))
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        plain = model(x)
        ones = [torch.ones(2, w) for w in widths]
        with masked(model, points, ones, owner=torch.tensor([0, 1, 0, 1])):
            same = model(x)
        # row 1 drops every channel at the last point: only images 1 and 3 change
        half = [torch.ones(2, w) for w in widths]
        half[-1][1] = 0
        with masked(model, points, half, owner=torch.tensor([0, 1, 0, 1])):
            mixed = model(x)
    assert torch.allclose(plain, same, atol=1e-5)
    assert torch.allclose(mixed[[0, 2]], plain[[0, 2]], atol=1e-5)
    assert (mixed[[1, 3]] - plain[[1, 3]]).abs().max() > 1e-6
    assert not any(m._forward_hooks for m in model.modules())  # hooks (on the points' modules) are removed


def test_hooks_are_removed_even_when_the_forward_fails():
    model = build_network("vgg16").eval()
    points = mask_points("vgg16", model)
    with pytest.raises(RuntimeError), masked(model, points, record=[]):
        assert sum(len(m._forward_hooks) for m in model.modules()) == len(points)  # the check can fail
        model(torch.zeros(1, 3, 32, 32))  # wrong channel count
    assert not any(m._forward_hooks for m in model.modules())


def test_record_collects_each_point_in_order(vgg):
    model, points = vgg
    acts = []
    with torch.no_grad(), masked(model, points, record=acts):
        model(torch.zeros(2, 1, 32, 32))
    assert [a.shape[1] for a in acts] == point_widths(model, points, (1, 32, 32))
    assert acts[0].shape[-1] == 32 and acts[1].shape[-1] == 16 and acts[-1].shape[-1] == 1  # conv1_2 after pool1


@pytest.mark.slow
@pytest.mark.parametrize("torchvision", [False, True])
def test_densenet_final_point_sees_the_post_relu_features(torchvision):
    """The authors mask DenseNet121's final features after norm5 and its ReLU; the ReLU is
    functional in forward, so the hook applies it: recorded values are >= 0, and masking with
    ones leaves the network's output unchanged."""
    torch.manual_seed(0)
    if torchvision:
        from nadkit.paper import build_paper_network
        model, x = build_paper_network("densenet121", 10).eval(), torch.randn(2, 3, 64, 64)
    else:
        model, x = build_network("densenet121").eval(), torch.randn(2, 1, 32, 32)
    points = mask_points("densenet121", model)
    acts = []
    with torch.no_grad():
        plain = model(x)
        with masked(model, points, [torch.ones(1, a) for a in point_widths(model, points, x.shape[1:])],
                    record=acts):
            same = model(x)
    assert points[-1].relu and acts[-1].min() >= 0 and (acts[-1] == 0).any()
    assert torch.allclose(plain, same, atol=1e-5)
