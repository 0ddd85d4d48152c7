"""Plots for the ordered-ablation chapter; every function is ``plot_x(..., ax=None) -> Axes``."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..plots import new_ax
from .curves import AblationCurve
from .measures import MEASURE_LABELS, MEASURES, LayerMeasures, NeuronMeasures
from .study import AblationStudy
from .._validation import checked

__all__ = [
    "MEASURE_COLORS",
    "plot_ablation_curves",
    "plot_class_accuracy",
    "plot_importance_vs_measure",
    "plot_kl_profile",
    "plot_measures",
    "plot_weight_images",
    "weight_mosaic",
]

MEASURE_COLORS = {"entropy": "tab:blue", "mi": "tab:orange", "selectivity": "tab:green", None: "0.4"}


def _ax(ax, figsize=(5.5, 3.6)):
    return new_ax(ax, figsize)


@checked
def plot_measures(measures, layer=None, x: str = "entropy", y: str = "mi", color: str | None = "selectivity",
                  *, ax=None, vmin: float | None = None, vmax: float | None = None):
    """Scatter of one measure against another, one point per neuron (``layer=None``: all
    layers, one marker each). The diagonal ``I = H`` bounds ``I(T;Y)`` from above.
    ``vmin``/``vmax``: the colour scale of ``color`` (default: this plot's own range; pass
    the same values to side-by-side panels so their colours compare)."""
    ax = _ax(ax)
    if isinstance(measures, LayerMeasures):
        items = [(measures.layer, measures)]
    elif isinstance(measures, NeuronMeasures):
        items = [(layer, measures[layer])] if layer is not None else list(measures.layers.items())
    else:
        raise TypeError("measures must be LayerMeasures or NeuronMeasures")
    markers = "os^Dv<>p"
    sc = None
    if color and items:  # one colour scale for every layer of the panel
        allc = np.concatenate([np.asarray(m.get(color), dtype=float) for _, m in items])
        vmin = float(np.nanmin(allc)) if vmin is None else vmin
        vmax = float(np.nanmax(allc)) if vmax is None else vmax
    for i, (name, m) in enumerate(items):
        kw = dict(c=m.get(color), cmap="viridis", vmin=vmin, vmax=vmax) if color else dict(color=f"C{i}")
        sc = ax.scatter(m.get(x), m.get(y), s=18, marker=markers[i % len(markers)], label=name,
                        edgecolors="none", alpha=0.8, **kw)
    if x == "entropy" and y == "mi":
        hi = max(float(np.max(m.entropy)) for _, m in items) if items else 1
        ax.plot([0, hi], [0, hi], color="0.6", lw=0.8, ls=":", label="I = H")
    if color and sc is not None:
        plt.colorbar(sc, ax=ax, label=f"{MEASURE_LABELS.get(color, color)} (bits)")
    ax.set_xlabel(f"{MEASURE_LABELS.get(x, x)} (bits)")
    ax.set_ylabel(f"{MEASURE_LABELS.get(y, y)} (bits)")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def _curves_of(curves, layer):
    if isinstance(curves, AblationStudy):
        if layer is None:
            layer = curves.layers[0]
        return curves.for_layer(layer)
    if isinstance(curves, AblationCurve):
        return [curves]
    return list(curves)


@checked
def plot_ablation_curves(curves, *, ax=None, layer=None, metric: str = "accuracy", measures=None,
                         fraction: bool = False, marker_at: int | None = None, marker_curve=None):
    """Accuracy (or ``metric="loss"``) against the number ablated: ascending orders as solid
    lines, descending dashed, one colour per measure; random orders as a min-max band with
    their mean. ``curves``: a list of :class:`AblationCurve` or an :class:`AblationStudy`
    (with ``layer``). ``marker_at`` puts a dot on ``marker_curve`` (default the first) at
    that count."""
    ax = _ax(ax)
    cs = _curves_of(curves, layer)
    if not cs:
        raise ValueError("no curves to plot")
    if metric not in ("accuracy", "loss"):
        raise ValueError("metric must be 'accuracy' or 'loss'")
    rnd = [c for c in cs if c.direction == "random"]
    xs = lambda c: c.fraction if fraction else c.counts
    if rnd:
        ys = np.stack([getattr(c, metric) for c in rnd])
        ax.fill_between(xs(rnd[0]), ys.min(0), ys.max(0), color="0.75", alpha=0.6,
                        label=f"random ({len(rnd)} orders)")
        ax.plot(xs(rnd[0]), ys.mean(0), color="0.45", lw=1, label="random, mean")
    for c in cs:
        if c.direction == "random" or (measures is not None and c.measure not in measures):
            continue
        ls = "-" if c.direction == "ascending" else "--" if c.direction == "descending" else ":"
        ax.plot(xs(c), getattr(c, metric), ls=ls, color=MEASURE_COLORS.get(c.measure, "k"), lw=1.6, label=c.label)
    if marker_at is not None:
        mc = marker_curve if marker_curve is not None else cs[0]
        s = mc.step_of(marker_at)
        ax.plot([xs(mc)[s]], [getattr(mc, metric)[s]], "o", color="crimson", ms=8, zorder=5,
                label=f"{mc.counts[s]} ablated")
    names = sorted({c.layer for c in cs})
    ax.set_xlabel("fraction of neurons ablated" if fraction else "neurons ablated")
    ax.set_ylabel("test accuracy" if metric == "accuracy" else "test loss (nats)")
    ax.set_title(f"cumulative ablation: {', '.join(names)} (value={cs[0].value})", fontsize=10)
    ax.legend(fontsize=7, loc="lower left" if metric == "accuracy" else "upper left")
    return ax


def plot_importance_vs_measure(importance, measures: NeuronMeasures, measure: str = "mi",
                               by: str = "loss_increase", *, ax=None):
    """Single-neuron importance against a measure, one colour per layer, Spearman's rho of
    each layer in the legend (and pooled over layers in the title)."""
    from .study import importance_correlations

    ax = _ax(ax)
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}")
    corr = importance_correlations(importance, measures, [measure], by=by)
    for i, (layer, imp) in enumerate(importance.items()):
        ax.scatter(measures.get(layer, measure), getattr(imp, by), s=16, color=f"C{i}", alpha=0.75,
                   label=f"{layer}: rho = {corr.within[layer][measure]:+.2f}")
    ax.set_xlabel(f"{MEASURE_LABELS[measure]} (bits)")
    ax.set_ylabel("loss increase when ablated alone" if by == "loss_increase" else "accuracy drop when ablated alone")
    ax.set_title(f"pooled over layers: rho = {corr.pooled[measure]:+.2f}", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_kl_profile(layer_measures: LayerMeasures, units=None, top: int = 12, class_names=None, *, ax=None):
    """Heat map of ``KL(P_T|y || P_T)`` (bits): rows are neurons (default: the ``top`` most
    selective), columns classes; the row maximum is the selectivity, the p(y)-weighted row
    mean the MI."""
    ax = _ax(ax)
    m = layer_measures
    if units is None:
        units = np.argsort(-m.selectivity, kind="stable")[:top]
    units = np.asarray(units)
    prof = m.kl_profile[units]
    im = ax.imshow(prof, aspect="auto", cmap="magma")
    plt.colorbar(im, ax=ax, label="KL(P_T|y || P_T) (bits)")
    k = prof.shape[1]
    ax.set_xticks(range(k))
    ax.set_xticklabels(class_names if class_names is not None else range(k), rotation=90 if class_names else 0,
                       fontsize=7)
    ax.set_yticks(range(len(units)))
    ax.set_yticklabels([f"{u} (I={m.mi[u]:.2f})" for u in units], fontsize=7)
    ax.set_xlabel("class y")
    ax.set_title(f"{m.layer}: per-class KL profile", fontsize=10)
    return ax


def plot_class_accuracy(curve: AblationCurve, n_ablated: int, class_names=None, *, ax=None):
    """Per-class test accuracy with ``n_ablated`` neurons ablated (bars) against nothing
    ablated (outlines)."""
    ax = _ax(ax)
    s = curve.step_of(n_ablated)
    k = curve.class_accuracy.shape[1]
    x = np.arange(k)
    ax.bar(x, curve.class_accuracy[0], color="none", edgecolor="0.4", label="none ablated")
    ax.bar(x, curve.class_accuracy[s], color="tab:red", alpha=0.7, label=f"{curve.counts[s]} ablated")
    ax.set_xticks(x)
    ax.set_xticklabels(class_names if class_names is not None else x, rotation=90 if class_names else 0, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy per class")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def weight_mosaic(weights, image_shape, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile rows of ``weights`` (k, H*W) as images into one array (NaN between tiles),
    each tile scaled to its own max |w| (vectorised, no loop over neurons)."""
    w = np.asarray(weights, dtype=np.float64)
    H, Wd = image_shape[-2:]
    k = len(w)
    if k == 0:
        return np.full((H, Wd), np.nan)
    if w.shape[1] != H * Wd:
        raise ValueError(f"weights have {w.shape[1]} inputs but image_shape {tuple(image_shape)} has {H * Wd} pixels")
    ncols = ncols or int(np.ceil(np.sqrt(k)))
    nrows = int(np.ceil(k / ncols))
    scale = np.abs(w).max(1, keepdims=True)
    w = w / np.where(scale > 0, scale, 1)
    tiles = np.full((nrows * ncols, H + pad, Wd + pad), np.nan)
    tiles[:k, :H, :Wd] = w.reshape(k, H, Wd)
    return tiles.reshape(nrows, ncols, H + pad, Wd + pad).transpose(0, 2, 1, 3).reshape(
        nrows * (H + pad), ncols * (Wd + pad))


def plot_weight_images(weights, image_shape, *, ax=None, title: str = "incoming weights", max_images: int = 16):
    """The incoming weights of some neurons drawn as images (red +, blue -)."""
    ax = _ax(ax)
    w = np.asarray(weights)[:max_images]
    ax.imshow(weight_mosaic(w, image_shape), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if len(w) else f"{title}: none", fontsize=9)
    return ax
