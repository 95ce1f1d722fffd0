"""Figures of the book (seaborn): each function draws one figure of the paper from computed results."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from torch import Tensor

CHANCE = 0.25
sns.set_theme(style="whitegrid", context="notebook")


def panels(n: int, width: float = 5.2, height: float = 3.6, sharey: bool = False):
    """A figure with ``n`` panels, two per row (one network each), readable at a glance."""
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
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
        ax.legend(lines, [h.get_label() for h in lines], loc="center left", fontsize=8)
    fig.tight_layout()
    return fig


def kept_per_layer(kept: dict[str, Sequence[float]]):
    """Fraction of channels kept at every mask point, one line per network."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
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
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def convergence(studies: dict[str, dict]):
    """The convergence study: per network, the share of a point's channels that flip per step
    (left) and the same-class agreement of two seeds against steps (right); one line per point,
    dark = early, light = deep."""
    fig, axes = plt.subplots(len(studies), 2, figsize=(10.4, 3.2 * len(studies)), squeeze=False)
    for (left, right), (arch, st) in zip(axes, studies.items()):
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(st["points"])))
        for p, color in enumerate(colors):
            left.plot(st["flip_steps"], np.maximum(st["flips"][p], 1e-5), color=color, lw=1)
            if st["agreement"]:
                right.plot(st["snapshot_steps"], st["agreement"][p], color=color, lw=1,
                           label=st["points"][p] if p in (0, len(colors) - 1) else None)
        left.set(yscale="log", title=f"{arch}: channels flipping per step", xlabel="step",
                 ylabel="share of a point's channels")
        right.axhline(0.95, ls="--", color="grey", lw=1)
        right.set(title=f"{arch}: seed agreement", xlabel="step", ylabel="same class, two seeds (Jaccard)",
                  ylim=(0, 1.02))
        right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def per_layer_curves(curves: dict[str, dict[str, Sequence[float]]], ylabel: str, title: str,
                     spread: dict[str, Sequence[float]] | None = None, chance: float | None = None,
                     bands: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]] | None = None):
    """One panel per network, one line per series (for example: NAD, random), x = mask point.
    ``spread`` draws +-1 sd around the first series; ``bands[arch][series]`` = (low, high) draws
    a band around that series (for example the range over seeds)."""
    fig, axes = panels(len(curves), sharey=True)
    for ax, (arch, series) in zip(axes, curves.items()):
        for j, (name, v) in enumerate(series.items()):
            v = np.array(v, dtype=float)
            x = np.arange(1, len(v) + 1)
            ax.plot(x, v, "o-", ms=3.5, color=f"C{j}", label=name)
            if spread is not None and j == 0 and arch in spread:
                s = np.array(spread[arch])
                ax.fill_between(x, v - s, v + s, color=f"C{j}", alpha=0.15)
            if bands is not None and name in bands.get(arch, {}):
                lo, hi = bands[arch][name]
                ax.fill_between(x, lo, hi, color=f"C{j}", alpha=0.2)
        if chance is not None:
            ax.axhline(chance, ls="--", color="grey", label=f"chance ({chance:g})")
        ax.set(title=arch, xlabel="mask point (layer, input to output)", ylabel=ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix, names: Sequence[str], title: str, fmt: str = ".0f", scale: float = 100, ax=None,
            xlabel: str = "", ylabel: str = "", xnames: Sequence[str] | None = None):
    """An annotated class-by-class matrix (values x ``scale``)."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6.4, 5.4))
    sns.heatmap(scale * np.asarray(matrix), annot=True, fmt=fmt, cmap="viridis", square=True, cbar=False, ax=ax,
                xticklabels=xnames or names, yticklabels=names, annot_kws={"fontsize": 7})
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if own:
        fig.tight_layout()
        return fig
    return ax.figure


def feature_maps(image: Tensor, dis: Tensor, ori: Tensor, points: Sequence[str], title: str):
    """The top pixels of every point's channel-sum map over the image: sub-architecture ("Dis.")
    above, original network ("Ori.") below."""
    n = len(points)
    fig, axes = plt.subplots(2, n, figsize=(1.15 * n, 2.7), squeeze=False)
    img = image.mean(0).numpy()
    for row, (maps, name) in enumerate(((dis, "Dis."), (ori, "Ori."))):
        for j in range(n):
            ax = axes[row][j]
            ax.imshow(img, cmap="gray")
            ax.imshow(np.ma.masked_where(~maps[j].numpy(), maps[j].numpy()), cmap="autumn", alpha=0.75,
                      vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(str(j + 1), fontsize=8)
        axes[row][0].set_ylabel(name)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cascade(similarity: dict[str, Sequence[float]], hits: dict[str, Sequence[float] | None]):
    """Cascading randomisation: similarity (left) and hit rate (right) per point, one line per
    stage, from the trained network (dark) to the untrained one (light)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = plt.cm.magma(np.linspace(0, 0.85, len(similarity)))
    for color, (stage, sim) in zip(colors, similarity.items()):
        x = np.arange(1, len(sim) + 1)
        left.plot(x, sim, "o-", ms=3, color=color, label=stage)
        if hits.get(stage) is not None:
            right.plot(x, hits[stage], "o-", ms=3, color=color, label=stage)
    right.axhline(CHANCE, ls="--", color="grey")
    left.set(title="similarity between classes", xlabel="mask point", ylabel="Jaccard", ylim=(0, 1.02))
    right.set(title="hit rate", xlabel="mask point", ylabel="hit rate")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def deletion_curves(curves: dict[str, dict[str, tuple[Sequence[int], Sequence[float]]]], title: str):
    """One panel per network: drop in the own class's balanced accuracy against the number of its
    channels zeroed (log scale), one line per ranking or control (``curves[arch][name] = (ks, drop)``)."""
    fig, axes = panels(len(curves), sharey=True)
    for ax, (arch, series) in zip(axes, curves.items()):
        for j, (name, (ks, drop)) in enumerate(series.items()):
            ax.plot(ks, drop, "o-" if j == 0 else ".-", ms=4, color=f"C{j}", label=name, lw=2 if j == 0 else 1)
        ax.set(xscale="log", title=arch, xlabel="channels zeroed (k)", ylabel="drop, own class")
        ax.axhline(0, color="grey", lw=0.8)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
