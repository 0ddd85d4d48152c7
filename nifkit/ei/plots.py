"""Plots of the effective-information chapter: the causal plane, EI over training, the
edge-EI heatmap, the sample-size dependence and edge ablation.

Every function draws on ``ax`` (a new figure when ``None``) and returns the Axes.
"""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np

from ..plots import new_ax
from .measure import LayerEI, ModelEI, plane_kind
from .model import CausalHistory, EdgeAblation
from .._validation import checked

__all__ = ["plot_causal_plane", "plot_ei_over_training", "plot_edge_ei", "plot_sample_dependence",
           "plot_edge_ablation", "LAYER_COLORS"]

LAYER_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _ax(ax, figsize=(5.2, 4.2)):
    return new_ax(ax, figsize)


def _zero_ei_line(ax, top):
    top = max(top, 1e-3)
    ax.plot([0, top], [0, top], color="0.35", lw=1, ls="--", zorder=1)
    ax.fill_between([0, top], [0, top], [top, top], color="0.92", zorder=0)
    ax.text(0.97 * top, 0.97 * top, "EI = 0", ha="right", va="top", fontsize=8, color="0.35", rotation=45,
            rotation_mode="anchor", transform_rotates_text=True)
    ax.text(0.05 * top, 0.9 * top, "EI < 0: impossible", fontsize=8, color="0.5")


@checked
def plot_causal_plane(result, *, ax=None, which: str = "auto", epoch=None, layers=None, cmap: str = "viridis",
                      arrows: int = 4, colorbar: bool = True):
    """Each layer as a point ``(sensitivity, degeneracy)``; the dashed line is EI = 0
    (degeneracy = sensitivity), and a layer's distance below it is its EI.

    ``result``: a :class:`~nifkit.ei.CausalHistory` (each layer's path through
    training, points coloured by epoch, ``arrows`` arrowheads along it, ``epoch``
    ringed), a :class:`~nifkit.ei.ModelEI` or a single :class:`~nifkit.ei.LayerEI`.
    ``which``: degeneracy from vector EI (``"ei"``), from EI_parts (``"parts"``, the
    paper's proxy for wide layers) or ``"auto"`` (vector EI when every layer has it).
    """
    ax = _ax(ax)
    if isinstance(result, LayerEI):
        result = ModelEI({result.name: result})
    if isinstance(result, ModelEI):
        which = plane_kind(which, list(result))
        names = result.names if layers is None else list(layers)
        xs, ys = [], []
        for i, n in enumerate(names):
            x, y = result[n].plane_point(which)
            xs.append(x)
            ys.append(y)
            ax.scatter([x], [y], s=60, color=LAYER_COLORS[i % len(LAYER_COLORS)], zorder=3, label=n,
                       edgecolor="k", lw=0.5)
        top = 1.08 * max([v for v in xs + ys if np.isfinite(v)] + [1e-3])
    elif isinstance(result, CausalHistory):
        sens, deg, which = result.plane(which)
        names = result.layers if layers is None else list(layers)
        epochs = result.epochs
        norm = plt.Normalize(epochs.min(), max(epochs.max(), epochs.min() + 1))
        sc = None
        for i, n in enumerate(names):
            li = result.layers.index(n)
            x, y = sens[:, li], deg[:, li]
            color = LAYER_COLORS[i % len(LAYER_COLORS)]
            ax.plot(x, y, color=color, lw=1.2, alpha=0.7, zorder=2, label=n)
            sc = ax.scatter(x, y, c=epochs, cmap=cmap, norm=norm, s=14, zorder=3, edgecolor="none")
            ax.scatter(x[:1], y[:1], s=50, facecolor="white", edgecolor=color, lw=1.5, zorder=4)
            ax.scatter(x[-1:], y[-1:], s=50, color=color, edgecolor="k", lw=0.5, zorder=4)
            if arrows and len(x) > 2:
                for k in np.unique(np.linspace(0, len(x) - 2, arrows + 2).astype(int)[1:-1]):
                    ax.annotate("", xy=(x[k + 1], y[k + 1]), xytext=(x[k], y[k]),
                                arrowprops=dict(arrowstyle="->", color=color, lw=1.3), zorder=4)
            if epoch is not None:
                e_idx = int(np.argmin(np.abs(epochs - epoch)))
                ax.scatter([x[e_idx]], [y[e_idx]], s=180, facecolor="none", edgecolor="crimson", lw=2, zorder=5)
        if colorbar and sc is not None:
            ax.figure.colorbar(sc, ax=ax, label="epoch", fraction=0.046, pad=0.02)
        vals = np.concatenate([sens.ravel(), deg.ravel()])
        vals = vals[np.isfinite(vals)]
        top = 1.08 * max(vals.max() if len(vals) else 1e-3, 1e-3)
    else:
        raise TypeError(f"plot_causal_plane needs a CausalHistory, ModelEI or LayerEI, got {type(result).__name__}")
    _zero_ei_line(ax, top)
    lo = min(0.0, ax.get_ylim()[0])
    ax.set_xlim(0, top)
    ax.set_ylim(lo, top)
    ax.set_xlabel("sensitivity (bits)")
    ax.set_ylabel("degeneracy (bits)" + ("" if which == "ei" else "  [sensitivity - EI_parts]"))
    title = "causal plane" + (f" (epoch {epoch})" if epoch is not None else "")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return ax


@checked
def plot_ei_over_training(history: CausalHistory, *, ax=None, measure: str = "auto", loss_ax=None,
                          show_loss: bool = True, layers=None, epoch=None):
    """Each layer's EI (``measure``: ``"ei"``, ``"ei_parts"``, ``"sensitivity"``,
    ``"degeneracy"``, ``"phi"``; ``"auto"``: vector EI when measured everywhere, else
    EI_parts) against epoch, with the training loss beside it: in ``loss_ax``, in a
    second panel when ``ax`` is None, or on a twin axis of ``ax``."""
    if not isinstance(history, CausalHistory):
        raise TypeError(f"plot_ei_over_training needs a CausalHistory, got {type(history).__name__}")
    if measure == "auto":
        measure = "ei" if np.isfinite(history.ei).all() else "ei_parts"
    if measure not in ("ei", "ei_parts", "sensitivity", "degeneracy", "degeneracy_parts", "phi"):
        raise ValueError(f"unknown measure {measure!r}")
    if ax is None:
        fig, (ax, second) = plt.subplots(1, 2, figsize=(10, 3.8))
        loss_ax = second if show_loss else None
        if not show_loss:
            second.remove()
    vals = getattr(history, measure)
    names = history.layers if layers is None else list(layers)
    for i, n in enumerate(names):
        li = history.layers.index(n)
        ax.plot(history.epochs, vals[:, li], marker="o", ms=3, color=LAYER_COLORS[i % len(LAYER_COLORS)], label=n)
    if epoch is not None:
        ax.axvline(epoch, color="crimson", lw=1)
    label = {"ei": "EI", "ei_parts": "EI_parts", "phi": "phi = EI - EI_parts"}.get(measure, measure)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{label} (bits)")
    ax.set_title(f"{label} over training")
    ax.legend(fontsize=8)
    h = history.history or {}
    if show_loss and h.get("epoch"):
        twin = loss_ax is None
        lax = ax.twinx() if twin else loss_ax
        lax.plot(h["epoch"], h["train_loss"], color="0.3", lw=1.2, ls=":" if twin else "-", label="train loss")
        if "test_loss" in h and np.isfinite(np.asarray(h["test_loss"], dtype=float)).any():
            lax.plot(h["epoch"], h["test_loss"], color="0.6", lw=1.2, ls=":" if twin else "--", label="test loss")
        lax.set_ylabel("loss per sample")
        if not twin:
            lax.set_xlabel("epoch")
            lax.set_title("loss")
            if "train_acc" in h:
                acc = lax.twinx()
                acc.plot(h["epoch"], h["train_acc"], color="tab:green", lw=1, alpha=0.7, label="train accuracy")
                acc.set_ylabel("accuracy", color="tab:green")
                acc.set_ylim(0, 1.02)
        lax.legend(fontsize=8, loc="upper right")
    return ax


@checked(skip=('layer',))
def plot_edge_ei(layer: LayerEI, *, ax=None, which: str = "ei", cmap: str = "magma", colorbar: bool = True,
                 annotate=None, vmax=None):
    """Heatmap of one layer's per-edge EI (``which="ei"``) or sensitivity
    (``"sensitivity"``): inputs down, outputs across, bits."""
    if not isinstance(layer, LayerEI):
        raise TypeError(f"plot_edge_ei needs a LayerEI, got {type(layer).__name__}")
    m = layer.edge_ei if which == "ei" else layer.edge_sensitivity if which == "sensitivity" else None
    if which not in ("ei", "sensitivity"):
        raise ValueError(f"which must be 'ei' or 'sensitivity', got {which!r}")
    if m is None:
        raise ValueError(f"the layer result has no edge {which} (it was not measured)")
    ax = _ax(ax, figsize=(4.5, 4))
    im = ax.imshow(m, cmap=cmap, aspect="auto", vmin=0, vmax=vmax, interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="bits", fraction=0.046, pad=0.02)
    if annotate is None:
        annotate = m.size <= 64
    if annotate:
        hi = np.nanmax(m) if m.size else 0
        for (i, j), v in np.ndenumerate(m):  # at most 64 text labels
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="k" if hi and v > 0.6 * hi else "w")
    for n, setter in ((m.shape[1], ax.set_xticks), (m.shape[0], ax.set_yticks)):
        if n <= 16:
            setter(range(n))
    ax.set_xlabel(f"output unit ({layer.n_outputs})")
    ax.set_ylabel(f"input unit ({layer.n_inputs})")
    name = "EI" if which == "ei" else "sensitivity"
    ax.set_title(f"{layer.name}: edge {name}, sum {np.nansum(m):.2f} bits", fontsize=10)
    return ax


@checked(skip=('n_samples',))
def plot_sample_dependence(n_samples, values: dict, *, ax=None, bias=None, truth=None, ylabel="EI_parts (bits)"):
    """Estimates against sample count (log axis). ``values``: label -> array over
    ``n_samples`` (e.g. one curve per bin count); ``bias``: label -> first-order plug-in
    bias curve to draw dashed above ``truth`` (or above the last value)."""
    ax = _ax(ax, figsize=(5.5, 3.8))
    n_samples = np.asarray(n_samples)
    for i, (label, v) in enumerate(values.items()):
        color = LAYER_COLORS[i % len(LAYER_COLORS)]
        ax.plot(n_samples, v, marker="o", ms=4, color=color, label=label)
        if bias is not None and label in bias:
            base = truth if truth is not None else np.asarray(v)[-1]
            ax.plot(n_samples, base + np.asarray(bias[label]), ls="--", lw=1, color=color, alpha=0.8)
    if truth is not None:
        ax.axhline(truth, color="k", lw=1, ls=":", label="exact")
    ax.set_xscale("log")
    ax.set_xlabel("noise samples")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax


def plot_edge_ablation(result: EdgeAblation, *, ax=None, title=None, random_draws=None):
    """Accuracy after zeroing one decile of edges at a time, for each ranking score.
    ``random_draws``: accuracies of several random rankings, ``(draws, groups)``, drawn as
    their min-max band (one random draw is not a baseline); the result's own ``"random"``
    curve is then left out."""
    if not isinstance(result, EdgeAblation):
        raise TypeError(f"plot_edge_ablation needs an EdgeAblation, got {type(result).__name__}")
    ax = _ax(ax, figsize=(5.5, 3.6))
    labels = {"ei": "edge EI decile", "weight": "|weight| decile", "sensitivity": "edge sensitivity decile",
              "random": "random decile"}
    if random_draws is not None:
        band = np.asarray(random_draws, dtype=float)
        if band.ndim != 2 or band.shape[1] != len(result.groups):
            raise ValueError(f"random_draws must be (draws, {len(result.groups)} groups), got shape {band.shape}")
        ax.fill_between(result.groups + 1, band.min(0), band.max(0), color="0.8", alpha=0.7,
                        label=f"random deciles ({len(band)} draws, min-max)")
    for i, (k, acc) in enumerate(result.accuracy.items()):
        if k == "random" and random_draws is not None:
            continue
        ax.plot(result.groups + 1, acc, marker="o", color=LAYER_COLORS[i % len(LAYER_COLORS)],
                label=labels.get(k, k))
    ax.axhline(result.baseline, color="k", lw=1, ls=":", label="no ablation")
    ax.set_xticks(result.groups + 1)
    ax.set_xlabel(f"ablated group (1 = lowest, {result.n_groups} = highest)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "zeroing one group of edges at a time")
    ax.legend(fontsize=8)
    return ax
