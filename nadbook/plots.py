"""Figures of the book (seaborn): each function draws one figure of the paper from computed results.

Readable as the book shows them: the book's text column is ``COLUMN_PX`` CSS pixels wide at a
1280 px window, and a PNG wider than the column is scaled down with its text. So figures are at
most ``COLUMN_IN`` inches wide at ``DPI`` (shown at their own size), and every text is at least
``MIN_PT`` points (``STYLE``, applied on import; ``style()`` for a block of one's own code);
``displayed_text_sizes`` measures a figure as the page will show it (tests/test_plots.py).
One colour marks a class's channels everywhere (``HIGHLIGHT``), ordered series take
``ordered_colors``, and compared heatmaps share one colour scale (``shared_scale``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.text import Text
from torch import Tensor

CHANCE = 0.25

COLUMN_PX = 688  # a code cell's output area at a 1280 px window (sphinx-book-theme), CSS pixels
DPI = 100  # matplotlib's, and the inline backend's: 1 pt of text is 1.04 CSS pt when not scaled
COLUMN_IN = 6.7  # the widest figure shown at its own size (with savefig's tight box and padding)
MIN_PT = 9  # the smallest text of a figure as shown

HIGHLIGHT = "#ff8c00"  # a class's channels (top pixels, kept channels) in every figure, static or live
HIGHLIGHT_RGB = (255, 140, 0)
NAD_ZORDER = 5  # NAD's own series are drawn above the baselines and controls

STYLE = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (COLUMN_IN, 3.2),
    "font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "xtick.labelsize": MIN_PT,
    "ytick.labelsize": MIN_PT, "legend.fontsize": MIN_PT, "legend.title_fontsize": MIN_PT,
    "figure.titlesize": 11,
}


def style() -> AbstractContextManager:
    """The book's figure style as a context (``with plots.style(): ...``): text at least MIN_PT
    points and figures sized for the column. ``nadbook.plots`` applies it on import too."""
    return mpl.rc_context(STYLE)


sns.set_theme(style="whitegrid", context="notebook", rc=STYLE)


def highlight_cmap() -> ListedColormap:
    """One-colour map for a boolean overlay (a class's top pixels) in ``HIGHLIGHT``."""
    return ListedColormap([HIGHLIGHT])


def ordered_colors(n: int, cmap: str = "viridis") -> list[tuple]:
    """``n`` colours for ordered series (points, stages, seeds, betas), dark to light, distinct
    from each other: ``cmap`` sampled evenly, leaving out its palest end (too light on white)."""
    return [tuple(c) for c in plt.get_cmap(cmap)(np.linspace(0.0, 0.85, max(n, 1)))[:n]]


def shared_scale(*matrices, scale: float = 100, quantity: str = "values") -> dict[str, float]:
    """``vmin`` and ``vmax`` common to heatmap panels that are compared (``heatmap(...,
    **shared_scale(a, b))``), so one colour means one value in all of them: a drop of 2 must
    not look as bright as a drop of 50. Values are multiplied by ``scale`` as ``heatmap`` does."""
    values = np.concatenate([scale * np.asarray(m, dtype=float).ravel() for m in matrices])
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError(f"shared_scale: no finite {quantity}")
    return {"vmin": float(values.min()), "vmax": float(values.max())}


def displayed_text_sizes(fig: Figure, column_px: float = COLUMN_PX) -> list[tuple[str, float]]:
    """Every visible text of ``fig`` and its size in points as the book shows it: the PNG saved
    with a tight box at the figure's dpi, scaled down to ``column_px`` CSS pixels if wider
    (1 CSS px = 0.75 pt)."""
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    box = fig.get_tightbbox(renderer)
    width_px = (box.width + 2 * plt.rcParams["savefig.pad_inches"]) * fig.dpi
    shown = min(1.0, column_px / width_px)
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and _drawn(t):
            px = t.get_fontsize() / 72 * fig.dpi * shown  # CSS px on the page
            out.append((t.get_text().strip()[:40], px * 0.75))
    return out


def _drawn(t: Text) -> bool:
    """Whether a text is drawn: its axes (if any) are visible, and a tick label lies within
    the axis' view (matplotlib keeps unused tick labels)."""
    ax = t.axes
    if ax is not None and not ax.get_visible():
        return False
    return t.get_window_extent().width > 0


def panels(n: int, width: float | None = None, height: float = 2.9, sharey: bool = False):
    """A figure with ``n`` panels, two per row (one network each), as wide as the book's column
    (``width`` per panel, default half of ``COLUMN_IN``)."""
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    width = width or COLUMN_IN / cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def elbow(sweeps: dict[str, dict]):
    """The Elbow sweep: loss of the binarised masks (left axis) and channels kept (right axis)
    against beta, the chosen knee marked."""
    fig, axes = panels(len(sweeps))
    for ax, (arch, s) in zip(axes, sweeps.items()):
        betas, kept, loss = np.array(s["betas"]), 100 * np.array(s["kept"]), np.array(s["loss"])
        ax.plot(betas, loss, "o-", color="C0", label="loss")
        ax.set(xscale="log", title=arch, xlabel="beta", ylabel="loss of binarised masks")
        ax.axvline(s["beta"], color="C3", ls="--", label=f"knee: beta = {s['beta']:g}")
        twin = ax.twinx()
        twin.plot(betas, kept, "s:", color="C2", label="channels kept")
        twin.set(ylabel="channels kept (%)", ylim=(0, 105))
        twin.grid(False)
        lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(lines, [h.get_label() for h in lines], loc="center left")
    fig.tight_layout()
    return fig


def kept_per_layer(kept: dict[str, Sequence[float]]):
    """Fraction of channels kept at every mask point, one line per network."""
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 3.4))
    for arch, k in kept.items():
        ax.plot(range(1, len(k) + 1), 100 * np.array(k), "o-", label=arch, ms=4)
    ax.set(ylabel="channels kept (%)", ylim=(0, 105), title="Sparsity of the sub-architectures per layer")
    ax.set_xlabel("mask point (layer, input to output)")
    ax.legend()
    fig.tight_layout()
    return fig


def closed_right_counts(values_pct: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Counts in the bins [0, 10], (10, 20], ..., (90, 100], closed on the right as in the paper's
    Fig. 2 (numpy's histogram closes them on the left)."""
    idx = np.clip(np.searchsorted(bins, values_pct, side="left") - 1, 0, len(bins) - 2)
    return np.bincount(idx, minlength=len(bins) - 1)


def accuracy_histograms(acc: dict[str, dict[str, Sequence[float]]], labels=("network", "sub-architecture")):
    """Fig. 2: per-class top-1 accuracy histograms over ten 10%-wide bins closed on the right
    ([0, 10], (10, 20], ...), averages in the legend."""
    keys = list(next(iter(acc.values())))
    fig, axes = panels(len(acc), sharey=True)
    bins = np.linspace(0, 100, 11)
    for ax, (arch, a) in zip(axes, acc.items()):
        for j, key in enumerate(keys):
            v = 100 * np.array(a[key])
            name = labels[j] if j < len(labels) else key
            ax.bar(bins[:-1], closed_right_counts(v, bins), width=10, align="edge", alpha=0.55, color=f"C{j}",
                   label=f"{name} (mean {v.mean():.1f}%)")
        ax.set(title=arch, xlabel="top-1 accuracy on own class (%)", ylabel="number of classes", xticks=bins[::2])
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def convergence(studies: dict[str, dict]):
    """The convergence study: per network, the share of a point's channels that flip per step
    (left) and the same-class agreement of two seeds against steps (right); one line per point,
    dark = early, light = deep."""
    fig, axes = plt.subplots(len(studies), 2, figsize=(COLUMN_IN, 2.9 * len(studies)), squeeze=False)
    for (left, right), (arch, st) in zip(axes, studies.items()):
        colors = ordered_colors(len(st["points"]))
        for p, color in enumerate(colors):
            left.plot(st["flip_steps"], np.maximum(st["flips"][p], 1e-5), color=color, lw=1)
            if st["agreement"]:
                right.plot(st["snapshot_steps"], st["agreement"][p], color=color, lw=1,
                           label=st["points"][p] if p in (0, len(colors) - 1) else None)
        left.set(yscale="log", title=f"{arch}: channels flipping", xlabel="step",
                 ylabel="share of a point's\nchannels per step")
        right.axhline(0.95, ls="--", color="grey", lw=1)
        right.set(title=f"{arch}: seed agreement", xlabel="step", ylabel="same class, two seeds\n(Jaccard)",
                  ylim=(0, 1.02))
        right.legend(loc="lower right")
    fig.tight_layout()
    return fig


def per_layer_curves(curves: dict[str, dict[str, Sequence[float]]], ylabel: str, title: str,
                     spread: dict[str, Sequence[float]] | None = None, chance: float | None = None,
                     bands: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]] | None = None):
    """One panel per network, one line per series (for example: NAD, random), x = mask point.
    The first series (NAD's) is drawn on top of the others. ``spread`` draws +-1 sd around the
    first series; ``bands[arch][series]`` = (low, high) draws a band around that series (for
    example the range over seeds)."""
    fig, axes = panels(len(curves), sharey=True)
    for ax, (arch, series) in zip(axes, curves.items()):
        for j, (name, v) in enumerate(series.items()):
            v = np.array(v, dtype=float)
            x = np.arange(1, len(v) + 1)
            ax.plot(x, v, "o-", ms=3.5, color=f"C{j}", label=name, zorder=NAD_ZORDER if j == 0 else 2,
                    lw=2 if j == 0 else 1.3)
            if spread is not None and j == 0 and arch in spread:
                s = np.array(spread[arch])
                ax.fill_between(x, v - s, v + s, color=f"C{j}", alpha=0.15)
            if bands is not None and name in bands.get(arch, {}):
                lo, hi = bands[arch][name]
                ax.fill_between(x, lo, hi, color=f"C{j}", alpha=0.2)
        if chance is not None:
            ax.axhline(chance, ls="--", color="grey", label=f"chance ({chance:g})")
        ax.set(title=arch, xlabel="mask point (input to output)", ylabel=ylabel)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix, names: Sequence[str], title: str, fmt: str = ".0f", scale: float = 100, ax=None,
            xlabel: str = "", ylabel: str = "", xnames: Sequence[str] | None = None,
            vmin: float | None = None, vmax: float | None = None, colorbar: bool = False):
    """An annotated class-by-class matrix (values x ``scale``), its cell labels MIN_PT points.
    Panels that are compared pass one colour scale: ``**shared_scale(m1, m2)`` (``vmin``,
    ``vmax``), and ``colorbar=True`` on one of them says what the colours mean."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(COLUMN_IN * 0.8, COLUMN_IN * 0.68))
    sns.heatmap(scale * np.asarray(matrix), annot=True, fmt=fmt, cmap="viridis", square=True, cbar=colorbar,
                ax=ax, xticklabels=xnames or names, yticklabels=names, annot_kws={"fontsize": MIN_PT},
                vmin=vmin, vmax=vmax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if own:
        fig.tight_layout()
        return fig
    return ax.figure


def feature_maps(image: Tensor, dis: Tensor, ori: Tensor, points: Sequence[str], title: str,
                 per_row: int = 9):
    """The top pixels of every point's channel-sum map over the image, in ``HIGHLIGHT``:
    sub-architecture ("Dis.") above, original network ("Ori.") below; at most ``per_row`` points
    per row (more rows of pairs for deep networks), so the grid fits the column."""
    n = len(points)
    cols = min(n, per_row)
    blocks = (n + cols - 1) // cols
    side = COLUMN_IN / (cols + 0.4)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(COLUMN_IN, 2 * blocks * side + 0.5), squeeze=False)
    img = image.mean(0).numpy()
    for ax in axes.flat:
        ax.set_axis_off()
    for row, (maps, name) in enumerate(((dis, "Dis."), (ori, "Ori."))):
        for j in range(n):
            ax = axes[2 * (j // cols) + row][j % cols]
            ax.set_axis_on()
            ax.imshow(img, cmap="gray")
            top = maps[j].numpy()
            ax.imshow(np.ma.masked_where(~top, top), cmap=highlight_cmap(), alpha=0.8, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(str(j + 1), fontsize=MIN_PT)
            if j % cols == 0:
                ax.set_ylabel(name, fontsize=MIN_PT)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cascade(similarity: dict[str, Sequence[float]], hits: dict[str, Sequence[float] | None]):
    """Cascading randomisation: similarity (left) and hit rate (right) per point, one line per
    stage, from the trained network (dark) to the untrained one (light, ``ordered_colors``),
    the legend below both panels."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(COLUMN_IN, 3.2))
    colors = ordered_colors(len(similarity))
    for color, (stage, sim) in zip(colors, similarity.items()):
        x = np.arange(1, len(sim) + 1)
        left.plot(x, sim, "o-", ms=3, color=color, label=stage)
        if hits.get(stage) is not None:
            right.plot(x, hits[stage], "o-", ms=3, color=color, label=stage)
    right.axhline(CHANCE, ls="--", color="grey")
    left.set(title="similarity between classes", xlabel="mask point", ylabel="Jaccard", ylim=(0, 1.02))
    right.set(title="hit rate", xlabel="mask point", ylabel="hit rate")
    handles, labels = left.get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 3),
               frameon=False)
    return fig


def deletion_curves(curves: dict[str, dict[str, tuple[Sequence[int], Sequence[float]]]], title: str):
    """One panel per network: drop in the own class's balanced accuracy against the number of its
    channels zeroed (log scale), one line per ranking or control (``curves[arch][name] = (ks, drop)``)."""
    fig, axes = panels(len(curves), sharey=True)
    for ax, (arch, series) in zip(axes, curves.items()):
        for j, (name, (ks, drop)) in enumerate(series.items()):
            ax.plot(ks, drop, "o-" if j == 0 else ".-", ms=4, color=f"C{j}", label=name, lw=2 if j == 0 else 1,
                    zorder=NAD_ZORDER if j == 0 else 2)
        ax.set(xscale="log", title=arch, xlabel="channels zeroed (k)", ylabel="drop, own class")
        ax.axhline(0, color="grey", lw=0.8)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
