"""The live explorer (JupyterLab only, not run by the book) builds its widgets and redraws."""

import matplotlib

from nadbook import book
from nadbook.explorer import live
from nadkit.subarch import SubArchitectures

matplotlib.use("Agg")


def test_the_live_explorer_draws_and_follows_the_network():
    sub = SubArchitectures.load(book.SHIPPED / "vgg16-0eab30e381")
    nets = {"vgg16": book.pipeline.network_of(sub, "cpu", False, 5)}
    test = nets["vgg16"][2]
    images = test.load(__import__("torch").arange(4))
    box = live({"vgg16": sub}, nets, images, test)
    (net, cls), (layer, source, index), out = box.children[0].children, box.children[1].children, box.children[2]
    assert layer.max == len(sub.points) and index.max == 3
    layer.value, source.value = 2, "test image"  # each change redraws (an error would raise here)
    assert out is not None and layer.value == 2
