"""Plots of the NIF chapter: pure matplotlib functions ``plot_x(..., ax=None) -> Axes``.

* :func:`plot_flow_graph` - the layered flow graph: layers as columns, node size by
  betweenness centrality, colour by community, edge width by flow; a selected neuron's
  incoming and outgoing flow highlighted; optional strongest paths.
* :func:`plot_attribution` - attributions as a bar chart, or as an image for image
  inputs (the 8x8 digits).
* :func:`plot_edge_comparison` - the same edges under two estimators (e.g. DV vs binned).
* :func:`plot_rank_comparison` - two attributions side by side with Spearman's rho.
"""
from __future__ import annotations

from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection

from ..plots import new_ax
from .graph import Attribution, FlowGraph
from .._validation import checked

__all__ = ["layered_positions", "flow_unit", "plot_flow_graph", "plot_attribution", "plot_edge_comparison",
           "plot_rank_comparison"]


def _ax(ax, figsize=(6, 4)):
    return new_ax(ax, figsize)


def layered_positions(fg: FlowGraph) -> list:
    """Per layer, an ``(n, 2)`` array of node positions: ``x`` = depth, ``y`` spread
    evenly over [0, 1] (first neuron on top)."""
    return [np.stack([np.full(m, float(d)), 1.0 - (np.arange(m) + 0.5) / m], 1) for d, m in enumerate(fg.sizes)]


class _Edges(NamedTuple):
    """The drawn edges: segments ``(E, 2, 2)``, flows ``(E,)``, ``(layer, source, target)`` ends ``(E, 3)``."""

    segs: np.ndarray
    flows: np.ndarray
    ends: np.ndarray


def _segments(fg: FlowGraph, pos, threshold) -> _Edges:
    """All drawn edges (flow at least ``threshold``) as segments, flows and endpoints."""
    segs, flows, ends = [], [], []
    for l, (f, m) in enumerate(zip(fg.flows, fg.edge_masks)):
        s, d = np.nonzero(m & (f >= threshold))
        a, b = fg.pairs[l]
        segs.append(np.stack([pos[a][s], pos[b][d]], 1))
        flows.append(f[s, d])
        ends.append(np.stack([np.full(len(s), l), s, d], 1))
    return _Edges(np.concatenate(segs), np.concatenate(flows), np.concatenate(ends))


@checked(skip=('labels',))
def plot_flow_graph(fg: FlowGraph, *, ax=None, threshold: float = 0.0, highlight=None, paths=None,
                    max_edges: int = 1500, centrality: bool = True, communities: bool = True,
                    node_size=(12.0, 260.0), edge_width=(0.15, 3.0), labels: bool | None = None,
                    seed: int = 0, title=None, cmap="tab10", legend: bool = True):
    """Draw the flow graph in layers: one column per node layer (labelled by its units
    name and size), the weight layer of the edges named in grey between two columns.

    ``threshold``: hide edges with flow below it (bits). ``max_edges``: draw at most the
    strongest that many of the rest (a 64-128-64-10 MLP has 17,024 edges). Node size by
    betweenness (``centrality``), colour by community (``communities``, seeded Louvain;
    singletons grey), edge width by flow. ``highlight``: a node (id such as
    ``"act1:3"``, ``Neuron`` or ``(layer, index)``) whose incoming and outgoing edges
    are drawn in red over a faded graph. ``paths``: a list of node-id lists (e.g.
    from :meth:`FlowPaths.best`) drawn in black (a colour no community gets). ``labels``: name the nodes (default:
    when there are at most 100; layers of over 40 neurons stay unlabelled).
    ``legend``: a key right of the axes saying what width (edge flow, bits; bits x |w|
    with ``weight_scale``), size (betweenness centrality) and colour (community) encode.
    """
    ax = _ax(ax, (7, 4.5))
    if highlight is not None:
        highlight = str(fg.neuron(highlight, "highlight"))
    paths = [[fg.locate(v, "paths") for v in path] for path in paths or []]
    pos = layered_positions(fg)
    edges = _segments(fg, pos, threshold)
    segs, flows = edges.segs, edges.flows
    fmax = fg.max_flow if fg.max_flow > 0 else 1.0
    order = np.argsort(-flows, kind="stable")[:max_edges]
    wmin, wmax = edge_width
    faded = highlight is not None or paths
    if len(order):
        lc = LineCollection(segs[order], linewidths=wmin + (wmax - wmin) * flows[order] / fmax,
                            colors="0.35", alpha=0.12 if faded else 0.45, zorder=1)
        ax.add_collection(lc)
    bv, big = _draw_nodes(ax, fg, np.concatenate(pos), centrality=centrality, communities=communities,
                          node_size=node_size, seed=seed, cmap=cmap)
    if highlight is not None:
        _draw_highlight(ax, fg, highlight, pos, edges, fmax, node_size[1])
    for path in paths:
        pts = np.array([pos[d][i] for d, i in path])
        ax.plot(pts[:, 0], pts[:, 1], color="k", lw=2.2, alpha=0.9, zorder=2)
    if labels is None:
        labels = fg.n_nodes <= 100
    if labels:
        _draw_labels(ax, fg, pos)
    _draw_layer_axis(ax, fg)
    shown = min(len(flows), max_edges)
    if legend:
        _flow_legend(ax, fg, flows[order] if len(order) else flows, fmax=fmax, edge_width=edge_width,
                     node_size=node_size, bv=bv, big=big, cmap=cmap, highlight=highlight, paths=paths)
    above = len(flows)
    if title is None:
        what = (f"{fg.n_edges} edges" if above == fg.n_edges
                else f"{above} of {fg.n_edges} edges with flow >= {threshold:.3g} {flow_unit(fg)}")
        title = f"{fg.estimator} flow: " + (what if shown == above else f"the strongest {shown} of {what}")
    ax.set_title(title, fontsize=9)
    return ax


def _draw_nodes(ax, fg: FlowGraph, allpos, *, centrality, communities, node_size, seed, cmap):
    """Nodes sized by betweenness (``centrality``), coloured by community
    (``communities``; singletons grey). Returns ``(betweenness, communities)`` for the
    legend, each None when not drawn."""
    nodes = fg.nodes()
    smin, smax = node_size
    bv = None
    if centrality:
        b = fg.betweenness()
        bv = np.array([b.get(v, 0.0) for v in nodes])
        sizes = smin + (smax - smin) * (bv / bv.max() if bv.max() > 0 else bv)
    else:
        sizes = np.full(len(nodes), (smin + smax) / 3)
    colours = np.tile(np.array([0.7, 0.7, 0.7, 1.0]), (len(nodes), 1))
    big = None
    if communities:
        index = {v: k for k, v in enumerate(nodes)}
        cm = plt.get_cmap(cmap)
        big = [c for c in fg.communities(seed=seed) if len(c) > 1]
        for k, c in enumerate(big):
            colours[[index[v] for v in c]] = cm(k % cm.N)
    ax.scatter(allpos[:, 0], allpos[:, 1], s=sizes, c=colours, edgecolors="k", linewidths=0.4, zorder=3)
    return bv, big


def _draw_highlight(ax, fg: FlowGraph, highlight, pos, edges: _Edges, fmax, smax):
    """The highlighted node's incoming and outgoing edges in red, and a red ring around it."""
    d, i = fg.locate(highlight)
    sel = np.zeros(len(edges.flows), bool)
    if d > 0:
        sel |= (edges.ends[:, 0] == d - 1) & (edges.ends[:, 2] == i)
    if d < len(fg.layers) - 1:
        sel |= (edges.ends[:, 0] == d) & (edges.ends[:, 1] == i)
    if sel.any():
        ax.add_collection(LineCollection(edges.segs[sel], linewidths=0.5 + 3.0 * edges.flows[sel] / fmax,
                                         colors="tab:red", alpha=0.85, zorder=2))
    p = pos[d][i]
    ax.scatter([p[0]], [p[1]], s=smax * 1.2, facecolors="none", edgecolors="tab:red", linewidths=2, zorder=4)


def _draw_labels(ax, fg: FlowGraph, pos):
    """Name the nodes (the inputs by their feature names when known); layers of over 40
    neurons stay unlabelled."""
    names = fg.feature_names
    for d, (name, m) in enumerate(zip(fg.layers, fg.sizes)):
        if m > 40:
            continue
        for i in range(m):
            text = names[i] if (d == 0 and names) else str(i)
            ha, dx = ("right", -0.06) if d == 0 else ("left", 0.06)
            ax.text(pos[d][i, 0] + dx, pos[d][i, 1], text, fontsize=7, ha=ha, va="center", zorder=5)


def _draw_layer_axis(ax, fg: FlowGraph):
    """One tick per node layer (units name and size), the weight layer of the edges in
    grey between two columns, no y axis."""
    ax.set_xticks(range(len(fg.layers)), [f"{n}\n({m})" for n, m in zip(fg.layers, fg.sizes)], fontsize=8)
    for l, wname in enumerate(fg.weight_layers):  # the weight layer whose weights are the edges between columns
        a, b = fg.pairs[l]
        if b != a + 1:  # a skip connection's identity edges jump over columns: not labelled
            continue
        ax.annotate(wname, (a + 0.5, 0.0), xycoords=("data", "axes fraction"), xytext=(0, -4),
                    textcoords="offset points", ha="center", va="top", fontsize=7, color="0.4", style="italic")
    ax.set_yticks([])
    ax.set_xlim(-0.5, len(fg.layers) - 0.5)
    ax.set_ylim(-0.03, 1.03)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def flow_unit(fg: FlowGraph) -> str:
    """Unit of the graph's edge flow: bits, or bits x |w| when the flow was weight-scaled."""
    return "bits x |w|" if fg.settings.get("weight_scale") else "bits"


def _flow_legend(ax, fg, flows, *, fmax, edge_width, node_size, bv, big, cmap, highlight, paths,
                 max_communities: int = 6):
    """Proxy-artist key of :func:`plot_flow_graph`: width -> edge flow (in the graph's
    unit), size -> betweenness centrality, colour -> community; highlight and paths."""
    from matplotlib.lines import Line2D

    unit = flow_unit(fg)
    wmin, wmax = edge_width
    smin, smax = node_size
    handles = []
    top = float(flows.max()) if len(flows) else fmax
    for v in sorted({top, top / 2, top / 10}, reverse=True) if top > 0 else []:
        handles.append(Line2D([], [], color="0.35", lw=wmin + (wmax - wmin) * v / fmax,
                              label=f"width: edge flow {v:.2g} {unit}"))
    if bv is not None:
        bmax = float(bv.max())
        for v in ([bmax, bmax / 2, 0.0] if bmax > 0 else [0.0]):
            s = smin + (smax - smin) * (v / bmax if bmax > 0 else 0.0)
            handles.append(Line2D([], [], ls="none", marker="o", ms=np.sqrt(s), mfc="white", mec="k", mew=0.5,
                                  label=f"size: betweenness {v:.2g}"))
    if big is not None:
        cm = plt.get_cmap(cmap)
        for k, c in enumerate(big[:max_communities]):
            handles.append(Line2D([], [], ls="none", marker="o", ms=6, mfc=cm(k % cm.N), mec="k", mew=0.4,
                                  label=f"colour: community {k + 1} ({len(c)} neurons)"))
        if len(big) > max_communities:
            handles.append(Line2D([], [], ls="none", label=f"... {len(big) - max_communities} more communities"))
        handles.append(Line2D([], [], ls="none", marker="o", ms=6, mfc="0.7", mec="k", mew=0.4,
                              label="grey: no community (alone)"))
    if highlight is not None:
        handles.append(Line2D([], [], color="tab:red", lw=2, label=f"flow in/out of {highlight}"))
    if paths:
        handles.append(Line2D([], [], color="k", lw=2.2, label="strongest paths"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6, frameon=False,
                  borderaxespad=0.2, labelspacing=0.6, handlelength=2.2)


def plot_attribution(attr: Attribution, *, ax=None, informative=None, highlight=None, image=None,
                     top: int | None = 30, title=None, cmap="magma"):
    """Attribution scores as a bar chart (feature order; ``informative`` indices in a
    second colour; at most ``top`` bars, the largest, when there are more features) or,
    for inputs with an ``image_shape`` (or ``image=True``), as a heat map image.
    ``highlight``: an input index outlined in red."""
    ax = _ax(ax, (5, 3.5))
    s = np.asarray(attr.scores)
    as_image = attr.image_shape is not None if image is None else image
    what = attr.target or "outputs"
    title = title or f"{attr.method} attribution of {what}"
    if as_image:
        im = ax.imshow(attr.as_image(), cmap=cmap, interpolation="nearest")
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share")
        if highlight is not None:
            r, c = np.unravel_index(int(highlight), attr.image_shape)
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="tab:red", lw=2))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        return ax
    names = attr.feature_names or [str(i) for i in range(len(s))]
    idx = np.arange(len(s)) if top is None or len(s) <= top else np.sort(attr.ranking()[:top])
    colours = np.array(["tab:blue"] * len(s), dtype=object)
    if informative is not None:
        colours[list(informative)] = "tab:orange"
    bars = ax.bar(range(len(idx)), s[idx], color=list(colours[idx]))
    if highlight is not None and int(highlight) in idx.tolist():
        bars[idx.tolist().index(int(highlight))].set_edgecolor("tab:red")
        bars[idx.tolist().index(int(highlight))].set_linewidth(2)
    ax.set_xticks(range(len(idx)), [names[i] for i in idx], rotation=90 if len(idx) > 8 else 0, fontsize=7)
    ax.set_ylabel("share of information")
    if informative is not None:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color="tab:orange", label="informative (planted)"),
                           Patch(color="tab:blue", label="noise")], fontsize=7)
    ax.set_title(title, fontsize=9)
    return ax


def plot_edge_comparison(fg_x: FlowGraph, fg_y: FlowGraph, *, ax=None, title=None):
    """Scatter of the edge MI of two flow graphs of the same network (e.g. binned on x,
    DV on y), one colour per layer pair (labelled ``"fc1: input -> act1"``: the weight
    layer, then its node layers), with Spearman's rank correlation."""
    from scipy.stats import spearmanr

    ax = _ax(ax, (4.2, 4))
    xs, ys = [], []
    for l, (c1, c2) in enumerate(zip(fg_x.connected, fg_y.connected)):
        m = c1 & c2 & np.isfinite(fg_x.mi[l]) & np.isfinite(fg_y.mi[l])
        ax.scatter(fg_x.mi[l][m], fg_y.mi[l][m], s=8, alpha=0.6, label=f"{fg_x.weight_layers[l]}: {' -> '.join(fg_x.ends(l))}")
        xs.append(fg_x.mi[l][m])
        ys.append(fg_y.mi[l][m])
    x, y = np.concatenate(xs), np.concatenate(ys)
    hi = max(x.max(), y.max(), 1e-3)
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    rho = spearmanr(x, y).statistic
    ax.set_xlabel(f"{fg_x.estimator} MI (bits)")
    ax.set_ylabel(f"{fg_y.estimator} MI (bits)")
    ax.legend(fontsize=7)
    ax.set_title(title or f"edge MI: {fg_y.estimator} vs {fg_x.estimator} (Spearman {rho:.2f})", fontsize=9)
    return ax


def _label_extremes(ax, a, b, names, k):
    """Name the points among the ``k`` largest of ``a`` or of ``b``; each label takes the
    first of four offsets around its point that keeps it ~10 px from labels already placed."""
    idx = np.union1d(np.argsort(-a, kind="stable")[:k], np.argsort(-b, kind="stable")[:k])
    idx = idx[np.argsort(-b[idx], kind="stable")]
    ax.autoscale_view()
    xy = ax.transData.transform(np.stack([a[idx], b[idx]], 1))
    offsets = [(4, 3, "left"), (4, -10, "left"), (-4, 3, "right"), (-4, -10, "right")]
    placed = []
    for (px, py), i in zip(xy, idx):
        for dx, dy, ha in offsets:
            anchor = np.array([px + dx, py + dy])
            if all(np.abs(anchor - q).max() > 10 for q in placed):
                break
        placed.append(anchor)
        ax.annotate(names[i], (a[i], b[i]), fontsize=7, xytext=(dx, dy), textcoords="offset points", ha=ha)


@checked(skip=('labels',))
def plot_rank_comparison(scores_a, scores_b, *, ax=None, labels=("NIF", "IG"), names=None, informative=None,
                         title=None, label_top: int = 3):
    """Two attributions of the same inputs, each normalised to sum 1, as a scatter with
    Spearman's rank correlation (planted features in orange, with a legend).
    ``names``: feature names; only the points among the ``label_top`` largest of either
    attribution are named, offset so the labels do not overlap (0: no labels)."""
    from scipy.stats import spearmanr

    ax = _ax(ax, (4.2, 4))
    a = np.abs(np.asarray(scores_a, float))
    b = np.abs(np.asarray(scores_b, float))
    a, b = a / a.sum(), b / b.sum()
    c = np.array(["tab:blue"] * len(a), dtype=object)
    if informative is not None:
        c[list(informative)] = "tab:orange"
    ax.scatter(a, b, c=list(c), s=18)
    if names is not None and label_top:
        _label_extremes(ax, a, b, [str(n) for n in names], label_top)
    if informative is not None:
        from matplotlib.lines import Line2D

        ax.legend(handles=[Line2D([], [], ls="none", marker="o", color="tab:orange", label="informative (planted)"),
                           Line2D([], [], ls="none", marker="o", color="tab:blue", label="noise")], fontsize=7)
    rho = spearmanr(a, b).statistic
    ax.set_xlabel(f"{labels[0]} share")
    ax.set_ylabel(f"{labels[1]} share")
    ax.set_title(title or f"{labels[0]} vs {labels[1]}: Spearman {rho:.2f}", fontsize=9)
    return ax
