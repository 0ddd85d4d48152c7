r"""NIF as a lens: one score per hidden unit (the lens protocol, :func:`neuron_scores`).

``flow`` = information flowing through the unit, the sum of the flows ``f_ij`` of its
incoming and outgoing edges, :math:`\sum_i f_{ij} + \sum_k f_{jk}` (bits; in a residual
network also its identity edges into and out of the merges of skip connections);
``betweenness`` = :func:`~nifkit.nif.betweenness` of the unit. Per class: the flow from
the unit to output ``t`` (units with edges into the output layer only; NaN elsewhere).
These reductions of the flow graph to one number per unit are nifkit's choice (the
paper ranks edges and paths, not units).

Units are :func:`nifkit.models.hidden_neurons` (a conv unit is a channel, reduced by
``channel_reduce``). Without ``layers`` the graph is the whole network's; with
``layers`` it holds those node layers, their edges and the layers at the other ends
(``flow_graph(nodes=...)``): ``flow`` is the same, ``betweenness`` is then of that part
(what makes a ResNet-18 affordable: its whole graph has over a million edges).
"""
from __future__ import annotations

import time

import numpy as np

from ..config import DEFAULT_MEMORY_BUDGET
from ..models.units import hidden_layout, hidden_neurons
from ..results import NeuronScores
from .build import flow_graph
from .dag import flow_plan
from .._validation import checked

__all__ = ["neuron_scores"]


def _node_layer(plan, units: str) -> str:
    """The flow graph's node layer holding the units of ``units``: itself when it is one
    (a Linear/Conv layer's units name, a merge), else, for a block or another module, the
    node layer its output belongs to: follow the module's last call in the trace through
    single-reader steps to the point a node layer is read (a residual block's output is
    the merge node of its skip connection)."""
    if units in plan.names:
        return units
    steps = plan.walk.steps
    by_node = {st.node: st for st in steps}
    hits = [st for st in steps if st.module is not None and (st.target == units or st.target.startswith(units + "."))]
    read = {n.read: n.name for n in plan.nodes}
    st = hits[-1] if hits else None
    while st is not None and st.node not in read:  # along single-reader steps (a few per block)
        st = by_node.get(st.users[0]) if len(st.users) == 1 else None
    if st is None:
        raise ValueError(f"layers: the flow graph has no node layer for {units!r} (its node layers are the units of "
                         f"the Linear/Conv layers and the merges of skip connections: {', '.join(plan.names)}); name "
                         "one of those or a block whose output is one")
    return read[st.node]


@checked
def neuron_scores(model, data, *, layers=None, channel_reduce: str = "mean", n_bins: int = 8, binning: str = "quantile", split: str = "train",
                  max_samples: int | None = None, seed: int = 0, device=None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None, progress=False,
                  **flow_kw) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of the hidden ``layers``, units names such
    as ``"act1"``) by the information flowing through it in the NIF flow graph of
    ``data`` (anything :func:`nifkit.record.record` accepts). Other keywords go to
    :func:`~nifkit.nif.flow_graph`. Returns :class:`~nifkit.results.NeuronScores` with
    columns ``flow`` (primary) and ``betweenness``; ``raw`` is the :class:`FlowGraph`."""
    t0 = time.perf_counter()
    layout = hidden_layout(model, layers)
    plan = flow_plan(model)
    names = plan.names
    node = {units: _node_layer(plan, units) for units, _, _ in layout}
    if "nodes" in flow_kw or "layers" in flow_kw:
        raise TypeError("neuron_scores chooses the graph's part from layers=; pass no nodes= (or flow layers=)")
    fg = flow_graph(model, data, channel_reduce=channel_reduce, n_bins=n_bins, binning=binning, split=split,
                    max_samples=max_samples, seed=seed, device=device, memory_budget=memory_budget,
                    num_threads=num_threads, progress=progress,
                    nodes=None if layers is None else list(dict.fromkeys(node.values())), **flow_kw)
    flow, per_class = [], []
    out = len(fg.layers) - 1
    for units, _, _ in layout:  # loop over layers; the graph's node layers are the walker's units names
        d = fg.layers.index(node[units])
        flow.append(sum(fg.flows[g].sum(0) for g in fg.groups_into(d))
                    + sum(fg.flows[g].sum(1) for g in fg.groups_from(d)))  # in + out
        last = [g for g in fg.groups_from(d) if fg.pairs[g][1] == out and fg.layers[out] == names[-1]]
        per_class.append(fg.flows[last[0]].T if last else np.full((fg.sizes[out], fg.sizes[d]), np.nan))
    neurons = hidden_neurons(model, layers)
    bt = fg.betweenness()  # keyed by node id, the unit's address "act1:3"
    betw = np.array([bt[f"{node[n.layer]}:{n.index}"] for n in neurons])
    return NeuronScores(neurons, {"flow": np.concatenate(flow), "betweenness": betw}, "flow",
                        np.concatenate(per_class, axis=1), seconds=time.perf_counter() - t0, raw=fg,
                        settings={"lens": "nif", "n_bins": n_bins, "binning": binning, "n_samples": fg.n_samples,
                                  "seed": seed, "channel_reduce": channel_reduce},
                        notes=[f"NIF: binned MI ({n_bins} {binning} bins) on {fg.n_samples} samples"])
