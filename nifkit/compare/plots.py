"""Plots of the capstone: pure matplotlib functions ``plot_x(..., *, ax=None) -> Axes``."""
from __future__ import annotations

import numpy as np

from ..plots import new_ax

__all__ = ["plot_lens_scatter", "plot_lens_ranks", "plot_agreement", "plot_topk_drops", "plot_lens_scores"]


def plot_lens_scatter(comparison, lens_x: str, lens_y: str, *, highlight: int | None = None, ax=None,
                      figsize=(4.2, 3.6)):
    """Scores of two lenses, one point per hidden neuron; ``highlight`` (a neuron index)
    in red."""
    ax = new_ax(ax, figsize)
    from .truth import spearman

    x, y = comparison.score(lens_x), comparison.score(lens_y)
    li = comparison.layer_of()
    for L, lay in enumerate(comparison.layers):
        ax.scatter(x[li == L], y[li == L], s=18, alpha=0.8, label=lay)
    if highlight is not None:
        ax.scatter([x[highlight]], [y[highlight]], s=90, facecolors="none", edgecolors="red", lw=2,
                   label=str(comparison.neurons[highlight]))
    px, py = comparison.lenses[lens_x].primary, comparison.lenses[lens_y].primary
    ax.set_xlabel(f"{lens_x}: {px}")
    ax.set_ylabel(f"{lens_y}: {py}")
    ax.set_title(f"Spearman rho = {spearman(x, y):+.2f}", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_lens_ranks(comparison, *, highlight: int | None = None, truth=None, ax=None, figsize=(4.5, 3.6)):
    """One row per lens (and the knockout truth): every neuron at its rank (0 = most
    important), ``highlight`` in red in every row."""
    ax = new_ax(ax, figsize)
    from scipy.stats import rankdata

    rows = [(n, comparison.ranks(n)) for n in comparison.names]
    if truth is not None:
        rows.append(("knockout", rankdata(-truth.drop) - 1))
    for r, (name, rk) in enumerate(rows):
        ax.scatter(rk, np.full(len(rk), r), s=12, color="0.6")
        if highlight is not None:
            ax.scatter([rk[highlight]], [r], s=60, color="red", zorder=3)
    ax.set_yticks(range(len(rows)), [n for n, _ in rows], fontsize=8)
    ax.set_xlabel("rank of the neuron (0 = most important)")
    ax.invert_yaxis()
    title = "each lens's ranking" + (f"; {comparison.neurons[highlight]} in red" if highlight is not None else "")
    ax.set_title(title, fontsize=9)
    return ax


def plot_agreement(agreement_or_matrix, names=None, *, ax=None, figsize=(4.6, 3.8), title="lens x lens Spearman rho"):
    """Heatmap of the agreement matrix (an :class:`~nifkit.compare.Agreement` shows its
    interval in each cell, to two decimals: one decimal rounds narrow intervals to a
    point such as [+0.9, +0.9]; a NaN bound, e.g. an interval withheld, shows the value
    alone)."""
    ax = new_ax(ax, figsize)
    a = agreement_or_matrix
    M = a.matrix if hasattr(a, "matrix") else np.asarray(a)
    names = a.names if hasattr(a, "names") else list(names)
    im = ax.imshow(M, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Spearman rho")
    for i in range(len(M)):
        for j in range(len(M)):
            txt = f"{M[i, j]:+.2f}"
            if hasattr(a, "low") and i != j and np.isfinite(a.low[i, j]) and np.isfinite(a.high[i, j]):
                txt += f"\n[{a.low[i, j]:+.2f},\n{a.high[i, j]:+.2f}]"
            ax.text(j, i, txt, ha="center", va="center", fontsize=6.5,
                    color="white" if abs(M[i, j]) > 0.6 else "black")  # readable on dark cells
    ax.set_xticks(range(len(names)), names, rotation=45, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title(title, fontsize=9)
    return ax


def plot_topk_drops(score, *, ax=None, figsize=(4.5, 3.4)):
    """Accuracy drop when each lens's top-k neurons are knocked out together (a
    :class:`~nifkit.compare.LensScore`), the truth's own top-k last."""
    ax = new_ax(ax, figsize)
    rows = score.table()
    names = [r["lens"] for r in rows]
    vals = [r["topk_drop"] for r in rows]
    colors = ["tab:blue"] * (len(rows) - 1) + ["0.4"]
    ax.bar(range(len(rows)), vals, color=colors)
    ax.set_xticks(range(len(rows)), names, rotation=45, fontsize=8)
    ax.set_ylabel(f"accuracy drop, top-{score.k} knocked out")
    ax.set_title(f"knockout of each lens's top-{score.k}", fontsize=9)
    return ax


def plot_lens_scores(comparison, lens: str, *, highlight: int | None = None, ax=None, figsize=(5, 3)):
    """One lens's primary score of every neuron as bars (``highlight`` in red)."""
    ax = new_ax(ax, figsize)
    s = comparison.score(lens)
    c = ["tab:red" if i == highlight else "tab:blue" for i in range(len(s))]
    ax.bar(range(len(s)), s, color=c)
    ax.set_xlabel("hidden neuron (index in hidden_neurons)")
    ax.set_ylabel(f"{lens}: {comparison.lenses[lens].primary}")
    return ax
