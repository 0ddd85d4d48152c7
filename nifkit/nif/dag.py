"""The flow graph's structure over the traced tensors of one walk (:func:`flow_plan`):
its node layers (the units of the layer outputs and of the merge points of skip
connections) and its edge groups (the weights of a Linear/Conv layer, or the identity
edges into a merge), found on the one walker's ``torch.fx`` steps
(:func:`nifkit.models.walk`).

Where a node layer's activity is read
-------------------------------------
A node layer starts at the operation that makes its units (the input, a Linear/Conv
layer, an ``add`` of a skip connection) and follows the data flow while the tensor has
one reader that changes no unit into another (activation, normalisation, dropout,
pooling, flatten): the activity is the tensor at the end of that run. In a chain this
is the tensor the next weight layer reads (after the activation and a max-pool), as the
flow graph always read it; in a residual network it is the tensor a block hands to both
the next layer and the skip connection.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..models.walk import walk
from .graph import IDENTITY

__all__ = ["INPUT_LAYER", "FlowNode", "EdgeGroup", "FlowPlan", "flow_plan"]

INPUT_LAYER = "input"

_WEIGHT = (nn.Linear, nn.Conv1d, nn.Conv2d)

_RECURRENT = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoderLayer,
              nn.TransformerDecoderLayer)

#: steps a node layer's tensor passes through unchanged in its units
_FOLLOW = ("pass", "reshape", "norm", "activation", "softmax")

#: fx names of a two-tensor add (``x + y``, ``torch.add``, ``x.add(y)``, ``x += y``)
_ADDS = ("add", "iadd", "add_", "__add__", "__iadd__")


def _not_flowable(msg: str) -> ValueError:
    return ValueError(
        f"model has no flow graph nifkit can build: {msg}. flow_graph needs Linear/Conv1d/Conv2d layers with "
        "activations, normalisation, dropout, pooling or flatten between them, and skip connections that add "
        "tensors (x + f(x), as in a ResNet or nifkit.models.residual_cnn); concatenation, gating (a * b), "
        "recurrence and attention have no flow graph.")


@dataclass
class FlowNode:
    """One node layer: its units name, the walk step whose output is its activity
    (``read``), its number of units and ``kind`` (``"input"``, ``"layer"``, ``"merge"``)."""

    name: str
    read: str
    size: int
    kind: str


@dataclass
class EdgeGroup:
    """The edges from node layer ``src`` to node layer ``dst``: the weights of ``layer``
    (``module``), or identity edges (``layer`` is :data:`~nifkit.nif.graph.IDENTITY`,
    ``module`` None)."""

    src: int
    dst: int
    layer: str
    module: nn.Module | None = None


@dataclass
class FlowPlan:
    """The node layers and edge groups of a model's flow graph (data-flow order: every
    group goes from an earlier to a later node layer), and the walk they come from."""

    nodes: list
    groups: list
    walk: object = None
    weight_names: list = field(default_factory=list)

    @property
    def names(self) -> list:
        return [n.name for n in self.nodes]

    def sub(self, keep_nodes, keep_groups) -> "FlowPlan":
        """The plan of the node layers ``keep_nodes`` and edge groups ``keep_groups``
        (indices; groups must join kept nodes), renumbered in data-flow order."""
        keep_nodes = sorted(set(keep_nodes))
        new = {old: k for k, old in enumerate(keep_nodes)}
        groups = [EdgeGroup(new[g.src], new[g.dst], g.layer, g.module) for g in (self.groups[i] for i in keep_groups)]
        return FlowPlan([self.nodes[i] for i in keep_nodes], groups, self.walk, self.weight_names)

    def between(self, chosen) -> "FlowPlan":
        """The part from the input of weight layer ``chosen[0]`` to the output of
        ``chosen[-1]``: every node layer in between and the edge groups among them."""
        by_layer = {g.layer: g for g in self.groups if g.layer != IDENTITY}
        lo, hi = by_layer[chosen[0]].src, by_layer[chosen[-1]].dst
        keep = [k for k, g in enumerate(self.groups) if lo <= g.src and g.dst <= hi]
        return self.sub(range(lo, hi + 1), keep)

    def around(self, names) -> "FlowPlan":
        """The node layers ``names``, the edge groups into and out of them and the node
        layers at their other ends (what a unit's in- and out-flow needs)."""
        idx = {self.names.index(n) for n in names}
        keep = [k for k, g in enumerate(self.groups) if g.src in idx or g.dst in idx]
        ends = idx | {self.groups[k].src for k in keep} | {self.groups[k].dst for k in keep}
        return self.sub(ends, keep)


def _follow(step, by_node) -> list:
    """The run of steps from ``step`` while the tensor has one reader that keeps its units."""
    run = [step]
    while len(run[-1].users) == 1:
        nxt = by_node[run[-1].users[0]]
        if nxt.kind not in _FOLLOW or len(nxt.inputs) != 1:
            break
        run.append(nxt)
    return run


def _check_step(st) -> None:
    if st.kind == "parameter":
        raise _not_flowable(f"forward() uses the parameter {st.target!r} directly (functional layer)")
    if st.kind == "weight" and not isinstance(st.module, _WEIGHT):
        raise _not_flowable(f"module {st.target!r} is a {type(st.module).__name__}, which flow_graph does not know "
                            "how to pass through")
    if st.kind == "other":
        what = (f"module {st.target!r} is a {type(st.module).__name__}, which flow_graph does not know how to pass "
                "through") if st.module is not None else f"operation {st.node!r} ({st.target}) is not elementwise, " \
                                                          "pooling or reshaping"
        raise _not_flowable(what)
    if st.kind == "merge" and st.target not in _ADDS:
        raise _not_flowable(f"operation {st.node!r} ({st.target}) combines several tensors and is not an add "
                            "(a skip connection)")


def _merge_name(run, w, taken) -> str:
    """A merge's units name: its activation module when used once, else the module that
    holds a shared activation (a ResNet block: ``"layer1.0"``), else the add's own name."""
    for st in run[1:]:
        if st.kind == "activation" and st.module is not None:
            name = st.target if w.calls.get(st.target, 1) == 1 else st.target.rpartition(".")[0]
            if name and name not in taken:
                return name
    return run[0].node


def _n_inputs(module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _n_units(module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, m in model.named_modules():
        if isinstance(m, _RECURRENT):
            raise _not_flowable(f"module {name or '<root>'!r} is a {type(m).__name__} (recurrent/attention)")


def flow_plan(model: nn.Module) -> FlowPlan:
    """Node layers and edge groups of ``model``'s flow graph (see the module docstring);
    ``ValueError`` naming the operation for what has no flow graph (a concatenation, a
    product of two tensors, a weight layer called twice, a module it cannot pass), and
    ``TypeError`` for what is not a traceable module."""
    _check_model(model)
    w = walk(model)
    n_inputs = sum(st.kind == "input" for st in w.steps)
    if n_inputs != 1:
        raise _not_flowable(f"forward() takes {n_inputs} tensor inputs, not one")
    w.require_not_reused(w.names, "flow_graph")
    if not w.layers:
        raise _not_flowable("it has no Linear or Conv layer")
    by_node = {st.node: st for st in w.steps}
    units = {lay.name: lay.units for lay in w.layers}
    owner, nodes, groups = {}, [], []
    for st in w.steps:  # a loop over the operations of the forward pass
        if st.node in owner or st.kind == "output":
            continue
        _check_step(st)
        if st.kind not in ("input", "weight", "merge"):
            owner[st.node] = owner[st.inputs[0]]  # a side branch: the same units, read where the node is
            continue
        run = _follow(st, by_node)
        k = len(nodes)
        if st.kind == "input":
            nodes.append(FlowNode(INPUT_LAYER, run[-1].node, 0, "input"))
        elif st.kind == "weight":
            src = owner[st.inputs[0]]
            if nodes[src].kind == "input" and not nodes[src].size:  # the inputs: as many as the first layer reads
                nodes[src].size = _n_inputs(st.module)
            nodes.append(FlowNode(units[st.target], run[-1].node, _n_units(st.module), "layer"))
            groups.append(EdgeGroup(src, k, st.target, st.module))
        else:
            srcs = sorted({owner[i] for i in st.inputs})
            sizes = {nodes[s].size for s in srcs}
            if len(sizes) != 1:
                raise _not_flowable(f"the add {st.node!r} joins node layers of {sorted(sizes)} units")
            nodes.append(FlowNode(_merge_name(run, w, {n.name for n in nodes}), run[-1].node, sizes.pop(), "merge"))
            groups += [EdgeGroup(s, k, IDENTITY) for s in srcs]
        owner.update({r.node: k for r in run})
    if not nodes[0].size:
        raise _not_flowable("the input feeds no Linear or Conv layer")
    names = [n.name for n in nodes]
    clash = sorted({u for u in names if names.count(u) > 1})
    if clash:
        raise _not_flowable(f"the units of several layers share the name {clash[0]!r} (flow graph nodes need one "
                            "name per layer)")
    return FlowPlan(nodes, groups, w, list(w.names))
