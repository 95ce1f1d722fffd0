"""The live explorer: ipywidgets that redraw a class's kept channels and top pixels at any point
for any test image or mosaic. It needs a running kernel, so the book only shows how to start it
(chapter 10); its static twin is ``nadbook.vega.explorer``. It is not run when the book is built:
an Output widget that captures a figure sends widget messages that nbclient, under load, could
wait on forever (issue 21).

    from nadbook.explorer import live
    live(subs, nets, mosaic_images, test)
"""

from __future__ import annotations

import numpy as np
import torch

from nadkit.metrics import feature_maps
from nadbook.plots import HIGHLIGHT, highlight_cmap


def live(subs: dict, nets: dict, mosaic_images, test):
    """A widget box: choose a network (``subs``: label -> ``SubArchitectures``, ``nets``: label ->
    ``(model, points, test)``), a class, a point and an image (a mosaic of ``mosaic_images`` or a
    test image of ``test``); the panels show the kept channels and the top 5% pixels through the
    sub-architecture ("Dis.") and the whole network ("Ori."), in the book's highlight colour
    (``plots.HIGHLIGHT``), as the static explorer draws them."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    first = next(iter(subs.values()))
    net = W.Dropdown(options=list(subs), description="network")
    cls = W.Dropdown(options=[(f"{c}: {first.class_names[i]}", c) for i, c in enumerate(first.classes)],
                     description="class")
    layer = W.IntSlider(min=1, max=len(first.points), value=len(first.points), description="point")
    source = W.ToggleButtons(options=["mosaic", "test image"], description="image")
    index = W.IntSlider(min=0, max=len(mosaic_images) - 1, value=0, description="index")
    out = W.Output()

    def draw(*_):
        a, c = net.value, cls.value
        sub = subs[a]
        layer.max = len(sub.points)  # the slider follows the network's points
        p = min(layer.value, len(sub.points)) - 1
        image = mosaic_images[index.value] if source.value == "mosaic" else test.load(torch.tensor([index.value]))[0]
        keep = [b[sub.row(c)] for b in sub.binary()]
        model, points, _ = nets[a]
        _, dis = feature_maps(model, points, image, keep)
        _, ori = feature_maps(model, points, image)
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [2.2, 1, 1]})
            k = keep[p].numpy()
            side = int(np.ceil(np.sqrt(len(k))))
            grid = np.full(side * side, np.nan)
            grid[: len(k)] = k
            axes[0].imshow(grid.reshape(side, side), cmap=ListedColormap(["#d9d9d9", HIGHLIGHT]), vmin=0, vmax=1)
            axes[0].set_title(f"{a} {sub.points[p]}: {int(k.sum())} of {len(k)} channels kept")
            for ax, maps, name in ((axes[1], dis, "Dis."), (axes[2], ori, "Ori.")):
                ax.imshow(image.mean(0).numpy(), cmap="gray")
                top = maps[p].numpy()
                ax.imshow(np.ma.masked_where(~top, top), cmap=highlight_cmap(), alpha=0.8, vmin=0, vmax=1)
                ax.set_title(f"{name} top 5% pixels")
            for ax in axes:
                ax.set_xticks([]), ax.set_yticks([])
            plt.show()

    for w in (net, cls, layer, source, index):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([net, cls]), W.HBox([layer, source, index]), out])
