import os
from pathlib import Path

import pytest
import torch

# the checkout's embedded networks, for the tests and the processes they start, wherever they run
# (an installed nadkit reads NADKIT_MODELS, else data/models under the current folder)
os.environ.setdefault("NADKIT_MODELS", str(Path(__file__).resolve().parent.parent / "data" / "models"))

from nadkit.data import fashion_mnist
from nadkit.networks import load_network
from nadkit.points import mask_points

torch.set_num_threads(int(os.environ.get("NADKIT_TEST_THREADS", 2)))


@pytest.fixture(scope="session")
def train_data():
    return fashion_mnist("train")


@pytest.fixture(scope="session")
def test_data():
    return fashion_mnist("test")


@pytest.fixture(scope="session")
def vgg():
    model = load_network("vgg16")
    return model, mask_points("vgg16", model)


