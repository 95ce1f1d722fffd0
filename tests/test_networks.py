import json

import pytest
import torch

from nadkit.errors import NadkitError
from nadkit.networks import ARCHS, MODELS_DIR, build_network, load_network, load_weights

SHIPPED = [a for a in ARCHS if (MODELS_DIR / f"{a}.safetensors").exists()]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_topology_maps_32x32_images_to_ten_logits(arch):
    model = build_network(arch).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)  # mosaics are 64x64


def test_all_four_networks_are_shipped():
    assert SHIPPED == list(ARCHS)


@pytest.mark.slow
@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_network_card_and_accuracy(arch, test_data):
    card = json.loads((MODELS_DIR / f"{arch}.json").read_text())
    assert card["arch"] == arch and card["test_accuracy"] >= 0.91
    assert {"epochs", "seed", "training_seconds", "parameters", "nad"} <= set(card)
    model = load_network(arch)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    idx = torch.arange(0, 10000, 10)  # a 1,000-image sample re-checks the card
    with torch.no_grad():
        acc = (model(test_data.load(idx)).argmax(1) == test_data.labels[idx]).float().mean().item()
    assert acc >= card["test_accuracy"] - 0.03


def test_weights_errors_are_one_line(tmp_path):
    with pytest.raises(NadkitError, match="not found"):
        load_weights(build_network("vgg16"), tmp_path / "nope.safetensors", "vgg16")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(NadkitError, match="not a readable"):
        load_weights(build_network("vgg16"), bad, "vgg16")
    with pytest.raises(NadkitError, match="do not fit the resnet50"):
        load_weights(build_network("resnet50"), MODELS_DIR / "vgg16.safetensors", "resnet50")
    with pytest.raises(NadkitError, match="unknown arch"):
        build_network("alexnet")
