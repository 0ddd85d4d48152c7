"""Plots of the relay chapter: pure matplotlib functions ``plot_x(..., ax=None) -> Axes``."""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..plots import new_ax
from .._validation import checked

__all__ = ["plot_relay_curves", "plot_layer_set", "plot_relay_matrix", "plot_knockout_scatter",
           "plot_incoming_weights", "plot_greedy_vs_exhaustive"]


def plot_relay_curves(search, cls=None, *, step: int | None = None, ax=None, figsize=(5, 3.4)):
    """``I_R`` of the greedy set against its size, for every class (grey) with ``cls``
    highlighted; ``step`` (number of removals) puts a marker on the highlighted curve."""
    ax = new_ax(ax, figsize)
    m = search.n_neurons
    sizes = m - np.arange(m + 1)
    for i, c in enumerate(search.classes):
        hl = cls is not None and c == cls
        ax.plot(sizes, search.curve[i], color="tab:blue" if hl else "0.75", lw=2 if hl else 1, zorder=3 if hl else 1,
                label=f"class {c}" if hl else None)
    if cls is not None and step is not None:
        y = search.curve[search.row(cls), step]
        ax.plot([m - step], [y], "o", color="tab:red", ms=8, zorder=4, label=f"{m - step} neurons: {y:.3f} bits")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("neurons in the greedy set Y_R")
    ax.set_ylabel("relay information I_R (bits)")
    ax.set_xlim(m + 0.5, -0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # neuron counts: no 17.5
    if cls is not None:
        ax.legend(fontsize=8, loc="upper left")
    ax.set_title("greedy shrinking: I_R of the remaining set", fontsize=9)
    return ax


def plot_layer_set(n_neurons: int, members, *, true=None, ax=None, figsize=(5, 1.6), per_row: int = 10):
    """The hidden layer as dots: neurons of ``members`` filled red, the ``true`` module
    (if given) ringed in black."""
    ax = new_ax(ax, figsize)
    idx = np.arange(n_neurons)
    xs, ys = idx % per_row, -(idx // per_row)
    mem = np.isin(idx, np.asarray(members, dtype=int))
    ax.scatter(xs[~mem], ys[~mem], s=160, color="0.85", edgecolor="0.5", label="not in the set")
    ax.scatter(xs[mem], ys[mem], s=160, color="tab:red", edgecolor="0.3", label="in the set")
    if true is not None:
        t = np.isin(idx, np.asarray(true, dtype=int))
        ax.scatter(xs[t], ys[t], s=330, facecolor="none", edgecolor="k", lw=1.5, label="true module")
    for i in idx:
        ax.text(xs[i], ys[i], str(i), ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.7, per_row - 0.3)
    ax.set_ylim(ys.min() - 0.7, 0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("hidden neurons (index)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    return ax


def plot_relay_matrix(matrix, *, ax=None, figsize=(6, 3.2), title="aggregated relay information (bits)",
                      class_names=None):
    """Heatmap of a class x neuron matrix of relay information."""
    ax = new_ax(ax, figsize)
    a = np.asarray(matrix)
    v = np.nanmax(np.abs(a)) or 1.0
    im = ax.imshow(a, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="bits")
    ax.set_xlabel("hidden neuron")
    ax.set_ylabel("class")
    ax.set_yticks(range(a.shape[0]), class_names if class_names is not None else range(a.shape[0]))
    ax.set_title(title, fontsize=9)
    return ax


@checked
def plot_knockout_scatter(relay, accuracy, *, ax=None, figsize=(4.5, 3.4), title="", max_points: int = 20000,
                          seed: int = 0):
    """Knockout balanced accuracy against ``I_R`` of the knocked-out set (a random
    ``max_points`` of them when there are more)."""
    ax = new_ax(ax, figsize)
    r, a = np.asarray(relay), np.asarray(accuracy)
    if len(r) > max_points:
        keep = np.random.default_rng(seed).choice(len(r), max_points, replace=False)
        r, a = r[keep], a[keep]
    ax.scatter(r, a, s=3, alpha=0.3, color="tab:purple", rasterized=True)
    ax.set_xlabel("I_R of the knocked-out set (bits)")
    ax.set_ylabel("balanced accuracy after knockout")
    ax.set_title(title, fontsize=9)
    return ax


@checked(skip=('labels',))
def plot_incoming_weights(weights, image_shape, *, ax=None, figsize=(4, 2.2), labels=None, title=""):
    """Incoming weights of a few neurons ``(k, pixels)`` side by side as images."""
    ax = new_ax(ax, figsize)
    w = np.asarray(weights)
    if w.ndim == 1:
        w = w[None]
    k = len(w)
    if k == 0:
        ax.text(0.5, 0.5, "empty set", ha="center", va="center")
        ax.set_axis_off()
        return ax
    h, wd = image_shape
    tiles = [wi.reshape(h, wd) / (np.abs(wi).max() or 1.0) for wi in w]
    gap = np.full((h, 1), np.nan)
    row = np.concatenate(sum(([t, gap] for t in tiles), [])[:-1], axis=1)
    ax.imshow(row, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([(wd + 1) * i + wd / 2 - 0.5 for i in range(k)], labels if labels is not None else range(k),
                  fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("neuron (weights scaled to +-1; red +, blue -)")
    ax.set_title(title or "incoming weights", fontsize=9)
    return ax


def plot_greedy_vs_exhaustive(fractions, *, ax=None, figsize=(4.5, 3.2)):
    """Fraction of same-size subsets with higher ``I_R`` than the greedy set, per size."""
    ax = new_ax(ax, figsize)
    f = np.asarray(fractions)
    ax.bar(np.arange(1, len(f) + 1), 100 * f, color="tab:green")
    ax.set_xlabel("set size")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("subsets beating greedy (%)")
    ax.set_title("greedy vs exhaustive", fontsize=9)
    return ax
