"""Plots of chapter 2: pure matplotlib functions ``plot_x(..., *, ax=None) -> Axes``."""
from __future__ import annotations

import numpy as np
import torch

from ..plots import new_ax
from .._validation import checked

__all__ = ["plot_information_plane", "plot_trajectory", "plot_completeness", "plot_overlay", "plot_ite",
           "plot_knockout", "plot_layer_gaps"]

_STYLE = {"conductance": dict(color="tab:red", marker="o"), "activation": dict(color="tab:blue", marker="s")}


def plot_information_plane(planes, *, ax=None, highlight=None, bounds: bool = True, annotate: bool = True,
                           title=None):
    """One polyline per plane (layers in order, first layer small, last large) in the
    ``(I(X;T), I(T;Y))`` plane; bounds ``I(X;T) = log2 N``, ``I(T;Y) = H(Y)`` and the
    diagonal ``I(T;Y) = I(X;T)`` dashed; ``highlight`` (a layer name) circled."""
    ax = new_ax(ax, (5, 4))
    planes = [planes] if not isinstance(planes, (list, tuple)) else list(planes)
    for p in planes:
        st = _STYLE.get(p.source, dict(color="k", marker="^"))
        sizes = np.linspace(20, 90, len(p.names))
        ax.plot(p.i_xt, p.i_ty, "-", color=st["color"], lw=1, alpha=0.7)
        ax.scatter(p.i_xt, p.i_ty, s=sizes, color=st["color"], marker=st["marker"], zorder=3,
                   label=f"{p.source} ({p.settings.get('estimator')})")
        if annotate:  # many layers: name every k-th and the last; labels at four staggered heights with
            # leader lines, so layers that sit on top of each other (deep layers near the H(Y) corner) stay legible
            step = max(1, int(np.ceil(len(p.names) / 8)))
            shown = [k for k in range(len(p.names)) if k % step == 0 or k == len(p.names) - 1]
            for m, k in enumerate(shown):
                ax.annotate(p.names[k], (p.i_xt[k], p.i_ty[k]), fontsize=7, xytext=(6, 10 * (m % 4) - 14),
                            textcoords="offset points", color=st["color"],
                            arrowprops=dict(arrowstyle="-", color=st["color"], lw=0.5, alpha=0.6))
        if highlight is not None and highlight in p.names:
            a, b = p[highlight]
            ax.scatter([a], [b], s=260, facecolors="none", edgecolors="k", lw=1.5, zorder=4)
    if bounds and planes:
        p = planes[0]
        ax.axvline(p.bound_x, color="0.4", ls=":", lw=1, label=f"log2 N = {p.bound_x:.2f}")
        ax.axhline(p.h_y, color="0.4", ls="--", lw=1, label=f"H(Y) = {p.h_y:.2f}")
        top = max(p.bound_x, p.h_y)
        ax.plot([0, top], [0, top], color="0.75", lw=0.8, ls="-.", label="I(T;Y) = I(X;T)")
        ax.set_xlim(left=min(0, np.nanmin([q.i_xt.min() for q in planes])) - 0.1,
                    right=max(p.bound_x, np.nanmax([q.i_xt.max() for q in planes])) * 1.05)
        ax.set_ylim(bottom=min(0, np.nanmin([q.i_ty.min() for q in planes])) - 0.05,
                    top=max(p.h_y, np.nanmax([q.i_ty.max() for q in planes])) * 1.1)
    ax.set_xlabel("I(X;T) (bits)")
    ax.set_ylabel("I(T;Y) (bits)")
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_trajectory(traj, which: str = "conductance", *, ax=None, cmap="viridis"):
    """Each layer's path through the plane over training (colour = epoch)."""
    import matplotlib.pyplot as plt

    ax = new_ax(ax, (5, 4))
    from .plane import plane_series

    x, y = plane_series(traj, which)
    first = getattr(traj.results[0], which)
    ep = np.asarray(traj.epochs, dtype=float)
    norm = plt.Normalize(ep.min(), ep.max() if ep.max() > ep.min() else ep.min() + 1)
    for j, name in enumerate(first.names):
        ax.plot(x[:, j], y[:, j], "-", color="0.6", lw=0.8)
        sc = ax.scatter(x[:, j], y[:, j], c=ep, cmap=cmap, norm=norm, s=18 + 12 * j, zorder=3)
        ax.annotate(name, (x[-1, j], y[-1, j]), fontsize=7, xytext=(6, 10 * j - 12), textcoords="offset points",
                    arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))  # staggered: end points often crowd
    ax.margins(x=0.12, y=0.1)  # room for the layer names at the ends of the paths
    ax.axvline(first.bound_x, color="0.4", ls=":", lw=1)
    ax.axhline(first.h_y, color="0.4", ls="--", lw=1)
    ax.figure.colorbar(sc, ax=ax, label="epoch")
    ax.set_xlabel("I(X;T) (bits)")
    ax.set_ylabel("I(T;Y) (bits)")
    ax.set_title(f"{which} plane through training", fontsize=10)
    return ax


@checked(skip=('steps',))
def plot_completeness(steps, gaps: dict, *, ax=None, delta_f=None):
    """Mean ``|completeness gap|`` against ``steps`` for each alpha rule
    (``gaps[method] = values per steps``); log-log axes."""
    ax = new_ax(ax, (5, 3.5))
    for method, g in gaps.items():
        ax.plot(steps, g, "o-", ms=4, label=method)
    if delta_f is not None:
        ax.axhline(delta_f, color="0.5", ls=":", lw=1, label="mean |F(x) - F(x')|")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter

    ax.yaxis.set_minor_formatter(NullFormatter())  # label the decades only: minor labels collide
    ax.set_xticks(list(steps), [str(s) for s in steps])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("steps")
    ax.set_ylabel("mean |sum Cond - (F(x) - F(x'))| (logits)")
    ax.legend(fontsize=8)
    return ax


def plot_overlay(image, heat, *, ax=None, alpha: float = 0.6, title=None, colorbar: bool = True):
    """``image`` (``(H, W, 3)`` uint8, or ``(H, W)``) with a signed map ``heat``
    (``(h, w)``, upsampled) over it: red = positive conductance, blue = negative."""
    ax = new_ax(ax, (3.5, 3.5))
    img = np.asarray(image)
    h = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None, None]
    size = img.shape[:2]
    up = torch.nn.functional.interpolate(h, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    lim = float(np.abs(up).max()) or 1.0
    im = ax.imshow(up, cmap="bwr", vmin=-lim, vmax=lim, alpha=alpha)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="conductance (logit)")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_ite(ites, *, ax=None, highlight=None):
    """ITE per layer, one group of bars per ITE result; the critical layer of each (its
    largest value) marked with a star, explained in the legend, which sits right of the
    axes so it never covers a bar."""
    ax = new_ax(ax, (5, 3.5))
    ites = [ites] if not isinstance(ites, (list, tuple)) else list(ites)
    names = ites[0].names
    w = 0.8 / len(ites)
    xs = np.arange(len(names))
    for i, r in enumerate(ites):
        v = np.nan_to_num(r.values, nan=0.0)
        bars = ax.bar(xs + i * w - 0.4 + w / 2, v, width=w, label=f"{r.formula} ({r.source})")
        c = names.index(r.critical)
        ax.annotate("*", (xs[c] + i * w - 0.4 + w / 2, v[c]), ha="center", fontsize=14,
                    color=bars.patches[c].get_facecolor())
    if highlight is not None and highlight in names:
        ax.axvspan(names.index(highlight) - 0.45, names.index(highlight) + 0.45, color="0.9", zorder=0)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(xs, names, rotation=45 if len(names) > 6 else 0, fontsize=7, ha="right" if len(names) > 6 else "center")
    ax.set_xlabel("layer")
    ax.set_ylabel("ITE (reconstruction)")
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls="none", marker="$*$", ms=9, color="k"))
    labels.append("* critical layer (largest ITE)")
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax


def plot_knockout(ko, *, ax=None, critical=None):
    """Accuracy drop when each layer is knocked out; ``critical`` layers (names) hatched."""
    ax = new_ax(ax, (5, 3.5))
    crit = set([critical] if isinstance(critical, str) else (critical or []))
    xs = np.arange(len(ko.names))
    bars = ax.bar(xs, ko.drop, color=["tab:red" if n in crit else "tab:gray" for n in ko.names])
    for b, n in zip(bars, ko.names):
        if n in crit:
            b.set_hatch("//")
    ax.set_xticks(xs, ko.names, rotation=45 if len(ko.names) > 6 else 0, fontsize=7,
                  ha="right" if len(ko.names) > 6 else "center")
    ax.set_xlabel("layer knocked out")
    ax.set_ylabel("accuracy drop")
    ax.set_title(f"knockout ({ko.mode}), intact accuracy {ko.base_accuracy:.3f}", fontsize=9)
    return ax


def plot_layer_gaps(cond, *, ax=None):
    """Per layer: mean total conductance against the mean ``F(x) - F(x')`` (completeness)."""
    ax = new_ax(ax, (5, 3.5))
    xs = np.arange(len(cond.names))
    tot = [cond.total(n).mean() for n in cond.names]
    ax.bar(xs, tot, color="tab:red", alpha=0.7, label="mean sum of conductance")
    ax.axhline(cond.delta_f.mean(), color="k", ls="--", lw=1, label="mean F(x) - F(x')")
    ax.set_xticks(xs, cond.names, rotation=45 if len(xs) > 6 else 0, fontsize=7,
                  ha="right" if len(xs) > 6 else "center")
    ax.set_xlabel("layer")
    ax.set_ylabel("logit")
    ax.legend(fontsize=7)
    return ax
