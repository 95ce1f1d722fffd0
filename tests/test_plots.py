"""The book's matplotlib figures as the page shows them: every text at least 9 pt at the size it
is displayed (the PNG scaled down to the text column when wider), one highlight colour, and a
shared colour scale for compared heatmaps. The figures are drawn from synthetic results of the
shapes the chapters pass."""

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from nadbook import plots, vega  # noqa: E402

RNG = np.random.default_rng(0)
ARCHS = ("vgg16", "resnet50", "densenet121", "darts")


def points(n):
    return [f"layer{i}" for i in range(1, n + 1)]


def figures():
    """One figure of every kind the book draws with ``nadbook.plots``."""
    yield "elbow", lambda: plots.elbow({a: {"betas": [0.1, 0.3, 1, 3], "kept": [0.9, 0.6, 0.3, 0.1],
                                             "loss": [1.0, 0.8, 0.5, 0.4], "beta": 1.0} for a in ARCHS})
    yield "kept_per_layer", lambda: plots.kept_per_layer({a: RNG.random(17).tolist() for a in ARCHS})
    yield "accuracy_histograms", lambda: plots.accuracy_histograms(
        {a: {"network": RNG.random(10).tolist(), "sub": RNG.random(10).tolist()} for a in ARCHS})
    yield "convergence", lambda: plots.convergence({a: {
        "points": points(13), "flip_steps": [1, 2, 3], "flips": RNG.random((13, 3)),
        "snapshot_steps": [1, 2, 3], "agreement": RNG.random((13, 3)).tolist()} for a in ARCHS[:2]})
    yield "per_layer_curves", lambda: plots.per_layer_curves(
        {a: {"NAD": RNG.random(17), "random": RNG.random(17)} for a in ARCHS}, "hit rate",
        "Hit rate per point", chance=0.25)
    yield "heatmap", lambda: plots.heatmap(RNG.random((10, 10)), [f"class {i}" for i in range(10)], "t")
    yield "heatmap panels", heatmap_panels
    yield "feature_maps", lambda: plots.feature_maps(
        torch.rand(3, 56, 56), torch.rand(17, 56, 56) > 0.9, torch.rand(17, 56, 56) > 0.9, points(17),
        "resnet50: class 3 (Dress), in the top-left quadrant")
    yield "cascade", lambda: plots.cascade({f"stage {i}": RNG.random(13) for i in range(7)},
                                           {f"stage {i}": RNG.random(13) for i in range(7)})
    yield "deletion_curves", lambda: plots.deletion_curves(
        {a: {"NAD": ([1, 2, 4, 8], RNG.random(4)), "random": ([1, 2, 4, 8], RNG.random(4))} for a in ARCHS},
        "Deletion")


def heatmap_panels():
    """Two compared heatmaps on one colour scale, as chapters 05 and 05b draw them."""
    a, b = RNG.random((10, 10)) * 0.5, RNG.random((10, 10)) * 0.02
    fig, axes = plots.panels(2, height=3.9)
    names = [str(i) for i in range(10)]
    for ax, m, t in zip(axes, (a, b), ("NAD", "random")):
        plots.heatmap(m, names, t, ax=ax, **plots.shared_scale(a, b))
    return fig


@pytest.mark.parametrize("name, draw", list(figures()), ids=[n for n, _ in figures()])
def test_every_text_of_a_figure_is_readable_at_the_size_the_book_shows_it(name, draw):
    fig = draw()
    sizes = plots.displayed_text_sizes(fig)
    plt.close(fig)
    assert sizes, "no text measured"
    small = [(t, round(pt, 1)) for t, pt in sizes if pt < plots.MIN_PT]
    assert not small, f"{name}: texts under {plots.MIN_PT} pt as shown: {small[:5]}"


def test_the_measure_sees_small_text_and_figures_scaled_down_to_the_column():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("small", fontsize=6)
    assert min(pt for t, pt in plots.displayed_text_sizes(fig) if t == "small") < plots.MIN_PT
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(20, 3))  # 2,000 px wide: shown at about a third
    ax.set_title("big but scaled", fontsize=12)
    (pt,) = [pt for t, pt in plots.displayed_text_sizes(fig) if t == "big but scaled"]
    assert pt < plots.MIN_PT
    plt.close(fig)


def test_compared_heatmaps_share_one_scale_and_a_class_has_one_highlight_colour():
    assert plots.shared_scale([[0.0, 0.02]], [[0.5, 0.1]]) == {"vmin": 0.0, "vmax": 50.0}
    with pytest.raises(ValueError):
        plots.shared_scale([[np.nan]])
    fig = heatmap_panels()
    limits = {ax.collections[0].get_clim() for ax in fig.axes if ax.collections}
    plt.close(fig)
    assert len(limits) == 1
    assert vega.HIGHLIGHT == plots.HIGHLIGHT
    assert matplotlib.colors.to_hex(plots.highlight_cmap()(1.0)) == plots.HIGHLIGHT
    png = vega.top_png(torch.tensor([[True, False]]))
    overlay = Image.open(io.BytesIO(base64.b64decode(png.split(",", 1)[1]))).convert("RGB")
    assert overlay.getpixel((0, 0)) == plots.HIGHLIGHT_RGB


def test_ordered_colors_are_distinct_and_ordered_dark_to_light():
    colors = plots.ordered_colors(7)
    assert len(set(colors)) == 7
    lightness = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b, _ in colors]
    assert lightness == sorted(lightness)
