"""``FlowExplorer``: the NIF chapter's widget.

Pick an estimator, raise the edge threshold, select a neuron: the layered flow graph
(node size by betweenness, colour by community, edge width by flow) and the attribution
panel update. Flow graphs are cached per estimator, so moving the threshold or the
selection only redraws. The last state is in ``.result`` (a :class:`FlowView`)::

    ex = FlowExplorer(model, data); ex
    ex.controls["threshold"].value = 0.05
    ex.result.n_shown, ex.readout.text
    ex.controls["layer"].value = "act1"   # node layers: the walker's units names
"""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from ..widgets.base import STYLE, Explorer
from .build import ESTIMATORS, flow_graph
from .graph import IDENTITY, Attribution, FlowGraph, attribution
from .plots import flow_unit, plot_attribution, plot_flow_graph
from ..results import Result
from .._validation import checked

__all__ = ["FlowExplorer", "FlowView"]

NONE = "(none)"


def _layer_options(fg: FlowGraph) -> list:
    """The layer picker: ``(label, node layer)``, the label naming the weight layer whose
    output the units are when it has another name (``"act1 (output of fc1)"``); the
    value is the node layer name."""
    return [(name if _made_by(fg, d) in (None, name) else f"{name} (output of {_made_by(fg, d)})", name)
            for d, name in enumerate(fg.layers)]


def _made_by(fg: FlowGraph, d: int):
    """The weight layer whose output node layer ``d`` is (None for the inputs and for a
    merge of a skip connection, whose edges are identities)."""
    names = [fg.weight_layers[g] for g in fg.groups_into(d) if fg.weight_layers[g] != IDENTITY]
    return names[0] if len(names) == 1 else None

@dataclass(repr=False)
class FlowView(Result):
    """What the explorer shows: the graph, the threshold (bits), how many edges pass
    it, the selected neuron (or None) with its total incoming/outgoing flow (bits, over
    the shown edges), and the attribution drawn (of the selection, or of all outputs)."""

    graph: FlowGraph
    threshold: float
    n_shown: int
    n_total: int
    selected: str | None
    flow_in: float
    flow_out: float
    attribution: Attribution


class FlowExplorer(Explorer):
    """Interactive flow graph of ``model`` on ``data`` (anything :func:`flow_graph`
    accepts). ``estimators``: the choices of the picker (DV and KSG cost seconds to
    minutes on larger networks; each is computed once, on first use). Other keyword
    arguments (``n_bins``, ``binning``, ``weight_scale``, ``significance``,
    ``max_samples``, ``dv_options`` ...) go to :func:`flow_graph`. ``graphs``: flow
    graphs computed earlier, by estimator (``{"dv": fg_dv}``), used instead of
    recomputing. ``informative``: input indices to colour in the attribution bars."""

    @checked
    def __init__(self, model, data, *, estimators=("binned", "gaussian"), threshold: float = 0.0,
                 max_edges: int = 1500, informative=None, graphs=None, figsize=(11.0, 4.2), seed: int = 0,
                 **flow_kw):
        estimators = tuple(estimators)
        bad = [e for e in estimators if e not in ESTIMATORS]
        if not estimators or bad:
            raise ValueError(f"estimators must be a non-empty subset of {ESTIMATORS}, got {estimators}")
        self.model, self.data = model, data
        self.flow_kw = dict(flow_kw, seed=seed)
        self.max_edges = max_edges
        self.informative = informative
        self.seed = seed
        self.n_computed = 0
        self._graphs: dict = {}
        for est, fg in dict(graphs or {}).items():  # graphs computed earlier, e.g. a slow DV run
            if est not in estimators or not isinstance(fg, FlowGraph) or fg.estimator != est:
                raise ValueError(f"graphs must map estimators of the picker to FlowGraphs made with them; got {est!r}")
            self._graphs[est] = fg
        self._adjusting = False
        first = self.graph_for(estimators[0])
        top = self._slider_max(first)
        controls = {
            "estimator": W.Dropdown(options=list(estimators), value=estimators[0], description="estimator",
                                    style=STYLE),
            "threshold": W.FloatSlider(value=min(float(threshold), top), min=0.0, max=top, step=top / 100,
                                       description="threshold", readout_format=".3f", continuous_update=False,
                                       style=STYLE),
            "layer": W.Dropdown(options=[(NONE, NONE)] + _layer_options(first), value=NONE,
                                description="select layer", style=STYLE),
            "neuron": W.IntSlider(value=0, min=0, max=max(first.sizes[0] - 1, 0), description="neuron",
                                  continuous_update=False, style=STYLE),
        }
        super().__init__(controls, title="Neural information flow", figsize=figsize, ncols=2)

    # -- graphs -----------------------------------------------------------------------
    def graph_for(self, estimator: str) -> FlowGraph:
        """The flow graph of ``estimator`` (computed once, then cached)."""
        if estimator not in self._graphs:
            prog = getattr(self, "progress", None)
            if prog is not None:
                with prog.task(1, f"estimating {estimator} flow ...") as step:
                    self._graphs[estimator] = flow_graph(self.model, self.data, estimator=estimator, **self.flow_kw)
                    step()
            else:
                self._graphs[estimator] = flow_graph(self.model, self.data, estimator=estimator, **self.flow_kw)
            self.n_computed += 1
        return self._graphs[estimator]

    @staticmethod
    def _slider_max(fg: FlowGraph) -> float:
        top = float(np.round(fg.max_flow, 3))
        return top if top > 0 else 1.0

    # -- control coupling -------------------------------------------------------------
    def _on_change(self, change) -> None:
        if self._adjusting:
            return
        self._adjusting = True
        try:
            owner = change.get("owner") if isinstance(change, dict) else getattr(change, "owner", None)
            if owner is self.controls["estimator"]:
                thr = self.controls["threshold"]
                top = self._slider_max(self.graph_for(self.controls["estimator"].value))
                if thr.max != top:
                    thr.max = top
                    thr.step = top / 100
            if owner in (self.controls["layer"], self.controls["estimator"]):
                self._fit_neuron_slider()
        finally:
            self._adjusting = False
        self.update()

    def _fit_neuron_slider(self):
        layer = self.controls["layer"].value
        if layer == NONE:
            return
        fg = self.graph_for(self.controls["estimator"].value)
        n = self.controls["neuron"]
        n.max = max(fg.sizes[fg.layers.index(layer)] - 1, 0)

    # -- Explorer ---------------------------------------------------------------------
    def compute(self) -> FlowView:
        fg = self.graph_for(self.value("estimator"))
        t = float(self.value("threshold"))
        layer = self.value("layer")
        sel = None
        f_in = f_out = 0.0
        if layer != NONE:
            d = fg.layers.index(layer)
            i = min(int(self.value("neuron")), fg.sizes[d] - 1)
            sel = fg.node_id(layer, i)
            for g in fg.groups_into(d):  # a loop over edge groups
                col = np.where(fg.edge_masks[g][:, i], fg.flows[g][:, i], 0.0)
                f_in += float(col[col >= t].sum())
            for g in fg.groups_from(d):
                row = np.where(fg.edge_masks[g][i], fg.flows[g][i], 0.0)
                f_out += float(row[row >= t].sum())
            attr = attribution(fg, target=sel) if d > 0 else attribution(fg)
        else:
            attr = attribution(fg)
        return FlowView(graph=fg, threshold=t, n_shown=fg.edges_above(t), n_total=fg.n_edges, selected=sel,
                        flow_in=f_in, flow_out=f_out, attribution=attr)

    def render(self, r: FlowView) -> None:
        fg = r.graph
        unit = flow_unit(fg)
        text = f"{fg.estimator}: {r.n_shown} of {r.n_total} edges above {r.threshold:.3f} {unit} (flow >= threshold)"
        if r.n_shown > self.max_edges:
            text += f", the strongest {self.max_edges} drawn"
        if r.selected:
            d, _ = fg.locate(r.selected)
            w = _made_by(fg, d)
            via = f" (output of {w})" if w not in (None, fg.layers[d]) else ""
            text += f"; selected {r.selected}{via}: in {r.flow_in:.3f} bits, out {r.flow_out:.3f} bits"
        top = ", ".join(n for n, _ in r.attribution.top(3))
        text += f"; top inputs: {top}"
        self.readout.set(text)
        highlight_input = None
        if r.selected and fg.locate(r.selected)[0] == 0:
            highlight_input = fg.locate(r.selected)[1]

        def draw(axes):
            plot_flow_graph(fg, ax=axes[0], threshold=r.threshold, highlight=r.selected, max_edges=self.max_edges,
                            seed=self.seed)
            plot_attribution(r.attribution, ax=axes[1], informative=self.informative, highlight=highlight_input)

        self.plot.draw(draw)
