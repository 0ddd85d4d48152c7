"""Shared plots: pure matplotlib functions ``plot_x(..., ax=None) -> Axes``.

Chapter-specific plots live in their chapter package (``nifkit.nif.plots``, ``nifkit.ei.plots``,
``nifkit.ablation.plots``); what several chapters draw lives here.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from ._validation import checked

__all__ = ["new_ax", "plot_mi_matrix", "plot_bias_curve", "plot_history", "plot_estimators", "plot_profile"]


def new_ax(ax=None, figsize=(5, 4)):
    """``ax`` itself, or the axes of a new figure of ``figsize`` when ``ax`` is None:
    the first line of every ``plot_x(..., ax=None)`` function."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


_ax = new_ax


@checked(skip=('labels',))
def plot_mi_matrix(mi, *, ax=None, labels=None, selected=None, title="pairwise MI (bits)", cmap="viridis",
                   colorbar=True):
    """Heatmap of an MI matrix; ``selected`` (an index) outlines that neuron's row and column."""
    ax = _ax(ax)
    mi = np.asarray(mi)
    im = ax.imshow(mi, cmap=cmap, interpolation="nearest", aspect="auto")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="bits")
    if selected is not None:
        kw = dict(color="red", lw=1.2)
        ax.axhline(selected - 0.5, **kw)
        ax.axhline(selected + 0.5, **kw)
        ax.axvline(selected - 0.5, **kw)
        ax.axvline(selected + 0.5, **kw)
    if labels is not None and len(labels) <= 30:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(title)
    return ax


@checked(skip=('n_samples',))
def plot_bias_curve(n_samples, estimates, truth=None, *, ax=None, current=None, label="plug-in estimate",
                    bias_term=None):
    """Estimate against sample size (log x axis), the analytic value as a line, the
    first-order bias prediction ``truth + bias_term(n)`` dashed, and the current
    setting as a marker ``current=(n, value)``."""
    ax = _ax(ax)
    n_samples = np.asarray(n_samples)
    ax.plot(n_samples, estimates, "o-", ms=3, label=label)
    if truth is not None:
        ax.axhline(truth, color="k", lw=1, label=f"analytic {truth:.3f} bits")
        if bias_term is not None:
            ax.plot(n_samples, truth + np.asarray(bias_term), "k--", lw=0.8, label="analytic + (B-1)²/(2n ln2)")
    if current is not None:
        ax.plot([current[0]], [current[1]], "o", color="red", ms=9, zorder=5, label="current")
    ax.set_xscale("log")
    top = max(np.max(estimates), truth or 0.0, current[1] if current is not None else 0.0)
    ax.set_ylim(0, 1.35 * top + 1e-9)  # the bias prediction explodes at tiny n: keep the data in view
    ax.set_xlabel("samples n")
    ax.set_ylabel("MI (bits)")
    ax.legend(fontsize=7, loc="upper right")
    return ax


def plot_history(history, *, ax=None, metric="acc"):
    """Train/test accuracy (``metric="acc"``) or loss over epochs from ``TrainResult.history``."""
    ax = _ax(ax, (5, 3))
    ep = history["epoch"]
    for split in ("train", "test"):
        key = f"{split}_{metric}"
        if key in history and len(history[key]):
            ax.plot(ep, history[key], label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend()
    return ax


@checked(skip=('n_samples',))
def plot_estimators(n_samples, results: dict, truth=None, *, limits: dict | None = None, ax=None):
    """One line per estimator (``results[name] = estimates per sample size``), the
    analytic value ``truth`` (solid) and further reference values ``limits[label] = bits``
    (dashed), e.g. the large-sample limit of a binned estimator."""
    ax = _ax(ax, (6, 4))
    for name, est in results.items():
        ax.plot(n_samples, est, "o-", ms=3, label=name)
    if truth is not None:
        ax.axhline(truth, color="k", lw=1, label="analytic")
    for label, value in (limits or {}).items():
        ax.axhline(float(value), color="0.4", lw=1, ls="--", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("samples n")
    ax.set_ylabel("MI estimate (bits)")
    ax.legend(fontsize=8)
    return ax


def plot_profile(values, *, ax=None, highlight=None, xlabel="neuron", ylabel="MI (bits)", title=None):
    """Bar chart of one value per neuron, ``highlight`` (an index) in red."""
    ax = _ax(ax, (5, 3))
    values = np.asarray(values)
    colors = ["tab:blue"] * len(values)
    if highlight is not None:
        colors[highlight] = "tab:red"
    ax.bar(np.arange(len(values)), values, color=colors)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax
