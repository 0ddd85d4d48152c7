r"""Neural information flow (NIF): a trained network as a network-science object.

After Davis, Bhatt, Bhardwaj, Marculescu & Moura, *Neural Information Flow* (arXiv
1901.08557; ICASSP 2020 as "On Network Science and Mutual Information for Explaining
Deep Neural Networks"). What the paper states and what nifkit reconstructs is listed in
``shared/papers.md`` section 1; every reconstructed choice below is an option, and its
default is labelled *reconstruction* in the docstrings.

The flow graph
--------------
Nodes are neurons: the input features, the hidden units (their post-activation values,
i.e. what the next layer reads) and the outputs (the model's output, e.g. logits). A
convolutional layer contributes one node per channel, whose activity is the channel's
spatial mean. Edges join *connected* neurons of adjacent layers (a nonzero weight, or a
nonzero kernel slice for channels) and carry the mutual information between the two
neurons' activities over the data,

.. math::

    f_{ij} = I(a_i; a_j) \quad (\text{bits}), \qquad
    \text{optionally } f_{ij} = I(a_i; a_j)\,|w_{ij}| \quad (\texttt{weight\_scale=True}),

where for channels :math:`|w_{ij}|` is the mean absolute value of the kernel slice
(*reconstruction*). Estimators (``estimator=``):

``"binned"`` (default)
    per-neuron bins (:class:`nifkit.info.Binner`), plug-in MI of all pairs of two
    adjacent layers from **one** :func:`nifkit.info.pairwise_mi` call per layer pair.
``"dv"``
    the paper's Donsker–Varadhan neural estimator: the critics of **all** edges of the
    network train together as one batched network (:func:`nifkit.info.dv_mi_pairs`).
``"ksg"``
    Kraskov–Stögbauer–Grassberger (k-NN) for 1-D pairs, vectorised over blocks of edges
    (exact-distance version of :func:`nifkit.info.ksg_mi`; O(n²) memory per pair, so
    meant for small networks or ``max_samples`` of a few thousand).
``"gaussian"``
    :math:`-\tfrac12\log_2(1-\rho_{ij}^2)` from the correlation matrix of two layers:
    exact for jointly Gaussian neurons, a summary of linear dependence otherwise.

``significance=alpha`` prunes edges whose MI is not larger than the shuffle null
(one permutation of the downstream layer's samples per shuffle, shared by all edges,
so every marginal is kept): an edge stays when its p-value is below ``alpha``.

Network science
---------------
:func:`betweenness`, :func:`communities`, :func:`strongest_paths` and
:func:`attribution` (feature attributions by information flow) work on a
:class:`FlowGraph`; the same are methods of the graph. Their defaults are
reconstructions, documented where they are defined.
"""
from __future__ import annotations

import difflib
import math
import operator
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import torch
from torch import nn

from ._validation import check_n_samples, to_numpy
from .info import Binner, dv_mi_pairs, gaussian_mi_pairs, ksg_mi_pairs, pairwise_mi
from .info.binning import METHODS as BINNING_METHODS

__all__ = [
    "ESTIMATORS",
    "FlowGraph",
    "FlowPaths",
    "Attribution",
    "flow_graph",
    "flow_layers",
    "betweenness",
    "communities",
    "strongest_paths",
    "attribution",
    "check_flow_attribution",
    "DV_DEFAULTS",
]

ESTIMATORS = ("binned", "dv", "ksg", "gaussian")
INPUT_LAYER = "input"

#: DV options used by :func:`flow_graph` unless ``dv_options`` overrides them. Smaller
#: critics and batches than :func:`nifkit.info.dv_mi_pairs`'s defaults (hidden 32, batch
#: 512) suit the 1-D pairs of an edge: on the analytic Gaussian edges of
#: tests/test_flow.py the mean error is ~0.03 bits (bias ~-0.025; batch 128 gives
#: ~-0.018), and a step of many batched critics costs ~25 us per critic on one core
#: against ~0.6 ms for a lone critic (benchmarks/bench_flow.py).
DV_DEFAULTS = dict(hidden=16, batch_size=64, steps=1000, lr=3e-3)

# ---------------------------------------------------------------------------------------
# Walking the model
# ---------------------------------------------------------------------------------------
_WEIGHT = (nn.Linear, nn.Conv1d, nn.Conv2d)
_ACTS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus,
         nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.PReLU, nn.Softmax, nn.LogSoftmax,
         nn.Identity, nn.Dropout, nn.AlphaDropout, nn.Dropout1d, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d,
         nn.LayerNorm, nn.GroupNorm)
_RESHAPE = (nn.Flatten, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_RECURRENT = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoderLayer,
              nn.TransformerDecoderLayer)
_FUNCS = {"relu", "relu_", "sigmoid", "tanh", "gelu", "leaky_relu", "elu", "selu", "silu", "softplus", "mish",
          "hardtanh", "softmax", "log_softmax", "dropout", "flatten", "view", "reshape", "contiguous", "squeeze",
          "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
          "adaptive_max_pool2d", "identity", "float"}
_META_METHODS = {"size", "dim"}


def _fname(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _is_meta(node) -> bool:
    """Shape look-ups (``x.size(0)``, ``x.shape``) are not data flow."""
    if node.op == "call_method" and node.target in _META_METHODS:
        return True
    if node.op == "call_function" and node.target in (getattr, operator.getitem):
        return any(_is_meta(a) or (a.op == "placeholder" and node.target is getattr)
                   for a in node.all_input_nodes)
    return False


def _not_feedforward(msg: str) -> ValueError:
    return ValueError(
        f"model is not a feedforward chain nifkit can walk: {msg}. flow_graph needs a sequence of "
        "Linear/Conv1d/Conv2d layers with activations, normalisation, dropout, pooling or flatten "
        "between them (e.g. an nn.Sequential from nifkit.models.mlp or small_cnn); skip connections, "
        "branches, recurrence and attention have no layered flow graph."
    )


def flow_layers(model: nn.Module) -> list[str]:
    """Names of the Linear/Conv layers of a feedforward ``model``, in data-flow order.

    The model is traced with ``torch.fx``; it must be a chain (every operation reads
    exactly one tensor and feeds exactly one), built from Linear/Conv1d/Conv2d layers
    and elementwise, normalisation, dropout, pooling or flatten steps. Anything else
    raises ``ValueError`` (not feedforward: skip connections, branches, recurrent or
    attention modules, a module called twice) or ``TypeError`` (not a module, or not
    traceable).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, m in model.named_modules():
        if isinstance(m, _RECURRENT):
            raise _not_feedforward(f"module {name or '<root>'!r} is a {type(m).__name__} (recurrent/attention)")
    import torch.fx

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many kinds
        raise TypeError(
            f"cannot trace the model with torch.fx to find its layers ({type(exc).__name__}: {exc}). "
            "Data-dependent control flow in forward() cannot be walked; wrap the layers in an nn.Sequential."
        ) from exc
    nodes = [n for n in gm.graph.nodes if not _is_meta(n)]
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise _not_feedforward(f"forward() takes {len(placeholders)} tensor inputs, not one")
    weight_names, seen = [], set()
    for n in nodes:
        if n.op in ("placeholder", "output"):
            continue
        if n.op == "get_attr":
            raise _not_feedforward(f"forward() uses the parameter {n.target!r} directly (functional layer)")
        ins = [a for a in n.all_input_nodes if not _is_meta(a)]
        if len(ins) != 1:
            raise _not_feedforward(
                f"operation {n.name!r} combines {len(ins)} tensors ({', '.join(a.name for a in ins)}): "
                "a skip connection or merge")
        users = [u for u in n.users if not _is_meta(u)]
        if len(users) > 1:
            raise _not_feedforward(
                f"the output of {n.name!r} feeds {len(users)} operations ({', '.join(u.name for u in users)}): "
                "a branch or skip connection")
        if n.op == "call_module":
            m = gm.get_submodule(n.target)
            if isinstance(m, _WEIGHT):
                if n.target in seen:
                    raise _not_feedforward(f"layer {n.target!r} is applied more than once (weight sharing)")
                seen.add(n.target)
                weight_names.append(str(n.target))
            elif not isinstance(m, _ACTS + _RESHAPE):
                raise _not_feedforward(f"module {n.target!r} is a {type(m).__name__}, which flow_graph does not "
                                       "know how to pass through")
        elif n.op in ("call_function", "call_method"):
            if _fname(n.target) not in _FUNCS:
                raise _not_feedforward(f"operation {n.name!r} ({_fname(n.target)}) is not elementwise, pooling "
                                       "or reshaping")
    for n in placeholders:
        if len([u for u in n.users if not _is_meta(u)]) > 1:
            raise _not_feedforward("the input feeds more than one operation (a branch or skip connection)")
    if not weight_names:
        raise _not_feedforward("it has no Linear or Conv layer")
    return weight_names


def _select_layers(model, weight_names, layers):
    """The contiguous run of weight layers the graph covers."""
    if layers is None:
        return list(weight_names)
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("layers is an empty list; pass None for every Linear/Conv layer")
    modules = dict(model.named_modules())
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"layers must be module names (str), got {name!r}")
        if name not in modules or name == "":
            close = difflib.get_close_matches(name, weight_names, n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"layers: unknown layer {name!r}.{hint} The model's Linear/Conv layers are: "
                             f"{', '.join(weight_names)}")
        if name not in weight_names:
            raise ValueError(f"layers: {name!r} is a {type(modules[name]).__name__}, not a Linear/Conv layer; "
                             f"flow graph layers are: {', '.join(weight_names)}")
    pos = [weight_names.index(n) for n in layers]
    if pos != list(range(pos[0], pos[0] + len(pos))):
        raise ValueError(f"layers must be consecutive Linear/Conv layers in data-flow order "
                         f"({', '.join(weight_names)}); got {layers}")
    return layers


def _per_unit(t: torch.Tensor, m: int, what: str) -> np.ndarray:
    """Activity ``(samples, m)`` of ``m`` units from a recorded tensor: channel maps are
    averaged over positions (also when flattened channel-major, as nn.Flatten does)."""
    t = t.detach().to(torch.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim > 2:
        if t.shape[1] != m:
            raise ValueError(f"{what}: expected {m} channels, got shape {tuple(t.shape)}")
        t = t.flatten(2).mean(2)
    elif t.shape[1] != m:
        if t.shape[1] % m:
            raise ValueError(f"{what}: {t.shape[1]} features cannot be grouped into {m} units")
        t = t.reshape(len(t), m, -1).mean(2)
    return t.cpu().numpy()


def _abs_weights(module, m_prev: int):
    """``(|w|, connected)`` matrices ``(m_prev, m_out)`` of one Linear/Conv layer."""
    w = module.weight.detach().to(torch.float64).cpu()
    if isinstance(module, nn.Linear):
        out_f, in_f = w.shape
        if in_f == m_prev:
            a = w.abs().T
            return a.numpy().copy(), (a > 0).numpy()
        if in_f % m_prev:
            raise ValueError(f"Linear layer with {in_f} inputs follows {m_prev} units; cannot map them")
        # channel-major flattened maps: one edge per (channel, unit), mean |w| over positions
        wr = w.reshape(out_f, m_prev, -1)
        return wr.abs().mean(2).T.numpy().copy(), (wr != 0).any(2).T.numpy()
    out_c, in_per, *_ = w.shape
    g = module.groups
    if in_per * g != m_prev:
        raise ValueError(f"{type(module).__name__} expects {in_per * g} input channels, previous layer has {m_prev}")
    k = w.reshape(g, out_c // g, in_per, -1)
    mag = k.abs().mean(3).transpose(1, 2)  # (g, in_per, out_per)
    con = (k != 0).any(3).transpose(1, 2)
    return torch.block_diag(*mag).numpy().copy(), torch.block_diag(*con.to(torch.float64)).numpy() > 0


def _n_inputs(module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _n_units(module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


# ---------------------------------------------------------------------------------------
# Vectorised pair estimators (beyond the core's)
# ---------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------------------
@dataclass(repr=False)
class FlowGraph:
    """A network's information-flow graph.

    ``graph``: ``networkx.DiGraph`` (assembled from the matrices on first access and
    cached: networkx holds one Python object per edge, which for a 17,000-edge graph
    costs about as much as estimating all the edges); node ids ``"<layer>:<index>"`` with attributes
    ``layer`` (name), ``depth`` (0 = input), ``index``, ``name`` (= the id) and ``label``
    (feature name for inputs); edges with ``mi`` (bits, the estimate), ``weight``
    (``|w_ij|``), ``flow`` (what the network science uses: ``max(mi, 0)``, times
    ``|w_ij|`` when ``weight_scale``) and ``p_value`` when a shuffle test ran.

    ``layers``/``sizes``: node layers (``"input"``, then the Linear/Conv layer names) and
    their numbers of nodes. Per adjacent layer pair ``l`` (matrices ``(sizes[l],
    sizes[l+1])``): ``mi[l]`` the estimate for every pair (NaN where not estimated),
    ``weights[l]`` the ``|w|`` matrix, ``connected[l]`` the edge mask, ``p_values[l]``
    (or None), ``flows[l]`` the edge flows (0 where there is no edge or it was pruned).
    """

    layers: list
    sizes: list
    mi: list
    weights: list
    connected: list
    flows: list
    p_values: list | None
    estimator: str
    n_samples: int
    meta: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def graph(self) -> nx.DiGraph:
        if "graph" not in self._cache:
            self._cache["graph"] = _assemble(self)
        return self._cache["graph"]

    # -- addressing ------------------------------------------------------------------
    def node_id(self, layer, index: int) -> str:
        """Id of neuron ``index`` of ``layer`` (a name or a depth)."""
        name = self.layers[layer] if isinstance(layer, (int, np.integer)) else layer
        if name not in self.layers:
            raise ValueError(f"unknown layer {name!r}; layers are {self.layers}")
        d = self.layers.index(name)
        if not 0 <= int(index) < self.sizes[d]:
            raise ValueError(f"layer {name!r} has {self.sizes[d]} neurons; index {index} is out of range")
        return f"{name}:{int(index)}"

    def locate(self, node) -> tuple[int, int]:
        """``(depth, index)`` of a node id ``"<layer>:<index>"``."""
        name, _, idx = str(node).rpartition(":")
        if name not in self.layers or not idx.isdigit() or int(idx) >= self.sizes[self.layers.index(name)]:
            raise ValueError(f"no node {node!r} in the flow graph (ids look like {self.node_id(0, 0)!r})")
        return self.layers.index(name), int(idx)

    @property
    def n_edges(self) -> int:
        return int(sum(m.sum() for m in self.edge_masks))

    @property
    def n_nodes(self) -> int:
        return int(sum(self.sizes))

    @property
    def max_flow(self) -> float:
        return float(max((f.max() if f.size else 0.0) for f in self.flows))

    def edges_above(self, threshold: float) -> int:
        """Number of edges with ``flow >= threshold`` (vectorised over the matrices)."""
        return int(sum(((f >= threshold) & m).sum() for f, m in zip(self.flows, self.edge_masks)))

    @property
    def edge_masks(self) -> list:
        """Per layer pair: True where the graph has an edge (connected and not pruned)."""
        if "masks" not in self._cache:
            if self.p_values is None or self.meta.get("significance") is None:
                self._cache["masks"] = [c.copy() for c in self.connected]
            else:
                a = self.meta["significance"]
                self._cache["masks"] = [c & (p < a) for c, p in zip(self.connected, self.p_values)]
        return self._cache["masks"]

    def to_graphml(self, path) -> None:
        """Write the graph (node and edge attributes, and settings as graph attributes)
        to GraphML, readable by ``networkx.read_graphml``, Gephi or Cytoscape."""
        nx.write_graphml(self.graph, str(path))

    # -- network science (cached) -----------------------------------------------------
    def betweenness(self, distance: str = "neglog") -> dict:
        key = ("betweenness", distance)
        if key not in self._cache:
            self._cache[key] = betweenness(self, distance=distance)
        return self._cache[key]

    def communities(self, method: str = "louvain", seed: int = 0, resolution: float = 1.0) -> list:
        key = ("communities", method, seed, resolution)
        if key not in self._cache:
            self._cache[key] = communities(self, method=method, seed=seed, resolution=resolution)
        return self._cache[key]

    def strongest_paths(self, mode: str = "product") -> "FlowPaths":
        key = ("paths", mode)
        if key not in self._cache:
            self._cache[key] = strongest_paths(self, mode=mode)
        return self._cache[key]

    def attribution(self, method: str = "flow", target=None) -> "Attribution":
        return attribution(self, method=method, target=target)

    def __repr__(self) -> str:
        sizes = "-".join(str(s) for s in self.sizes)
        sig = f", significance={self.meta.get('significance')}" if self.meta.get("significance") else ""
        return (f"FlowGraph({self.estimator}, {sizes} neurons, {self.n_edges} edges of "
                f"{sum(int(c.sum()) for c in self.connected)} connections, {self.n_samples} samples{sig})")


def _assemble(fg: FlowGraph) -> nx.DiGraph:
    """The networkx graph of a FlowGraph (one Python object per node and edge; the
    numbers were computed vectorised)."""
    g = nx.DiGraph()
    m = fg.meta
    g.graph.update(estimator=fg.estimator, n_samples=int(fg.n_samples), weight_scale=bool(m.get("weight_scale")),
                   layers=",".join(fg.layers), n_bins=int(m.get("n_bins", 0)), binning=str(m.get("binning")),
                   significance=float(m["significance"]) if m.get("significance") is not None else -1.0)
    names = m.get("feature_names")
    for d, (name, size) in enumerate(zip(fg.layers, fg.sizes)):
        labels = names if d == 0 else None
        g.add_nodes_from((f"{name}:{i}", {"layer": name, "depth": d, "index": i, "name": f"{name}:{i}",
                                          "label": str(labels[i]) if labels is not None else f"{name}:{i}"})
                         for i in range(size))
    for l, keep in enumerate(fg.edge_masks):
        src, dst = np.nonzero(keep)
        cols = {"mi": fg.mi[l][src, dst], "weight": fg.weights[l][src, dst], "flow": fg.flows[l][src, dst]}
        if fg.p_values is not None:
            cols["p_value"] = fg.p_values[l][src, dst]
        keys = list(cols)
        vals = zip(*(v.tolist() for v in cols.values()))
        a, b = fg.layers[l], fg.layers[l + 1]
        g.add_edges_from(zip((f"{a}:{i}" for i in src.tolist()), (f"{b}:{j}" for j in dst.tolist()),
                             (dict(zip(keys, v)) for v in vals)))
    return g


def _record_activities(model, data, chosen, weight_names, split, max_samples, batch_size, num_threads):
    """Activities ``(samples, units)`` of every node layer, from one recording."""
    from .record import record

    modules = dict(model.named_modules())
    i0 = weight_names.index(chosen[0])
    i1 = weight_names.index(chosen[-1])
    # each layer's units are read at the input of the next weight layer; the last layer's
    # units at the model output
    to_record = weight_names[i0:i1 + 2]
    rec = record(model, data, layers=to_record, inputs=True, progress=False, split=split,
                 max_samples=max_samples, batch_size=batch_size, num_threads=num_threads)
    first = modules[chosen[0]]
    m_in = _n_inputs(first)
    inp = rec.inputs[chosen[0]]
    if isinstance(first, nn.Linear):
        inp = inp.reshape(len(inp), -1)
    acts = [_per_unit(inp, m_in, f"input of {chosen[0]!r}")]
    for j, name in enumerate(chosen):
        m = _n_units(modules[name])
        if i0 + j + 1 < len(weight_names):
            nxt = weight_names[i0 + j + 1]
            t = rec.inputs[nxt]
            acts.append(_per_unit(t, m, f"units of {name!r} (input of {nxt!r})"))
        else:
            acts.append(_per_unit(rec.outputs, m, f"units of {name!r} (model output)"))
    return acts, rec


def _edges_of(mask):
    return np.nonzero(mask)


def flow_graph(
    model: nn.Module,
    data,
    *,
    estimator: str = "binned",
    n_bins: int = 8,
    binning: str = "quantile",
    bin_range=None,
    correction=None,
    weight_scale: bool = False,
    significance: float | None = None,
    n_shuffles: int = 20,
    layers=None,
    split: str = "train",
    max_samples: int | None = None,
    batch_size: int = 512,
    dv_options: dict | None = None,
    ksg_k: int = 3,
    feature_names=None,
    image_shape=None,
    seed: int = 0,
    memory_budget: int | None = None,
    num_threads: int | None = None,
    progress: bool = False,
) -> FlowGraph:
    """Build the information-flow graph of a feedforward ``model`` over ``data``.

    Parameters
    ----------
    model : a feedforward ``nn.Module`` (see :func:`flow_layers`).
    data : anything :func:`nifkit.record.record` accepts (inputs, ``(X, y)``, a
        ``DataLoader``, a :class:`nifkit.data.Dataset` of which ``split`` is used).
    estimator : ``"binned"`` (default), ``"dv"``, ``"ksg"`` or ``"gaussian"``.
    n_bins, binning, bin_range, correction : binned estimator: bins per neuron, the
        :class:`~nifkit.info.Binner` method (``"quantile"``, ``"minmax"``, ``"fixed"``
        with ``bin_range=(lo, hi)``), plug-in ``correction`` (None or "miller-madow").
    weight_scale : multiply each edge's MI by ``|w_ij|`` (*reconstruction*).
    significance : None, or ``alpha``: keep only edges whose shuffle-null p-value
        (``n_shuffles`` permutations, ``seed``) is below ``alpha``.
    layers : None (all Linear/Conv layers) or consecutive layer names; the graph then
        starts at the input of the first one.
    max_samples, batch_size : how much data and how it is batched through the model.
    dv_options : options for :func:`nifkit.info.dv_mi_pairs` (over :data:`DV_DEFAULTS`).
    ksg_k : neighbours of the KSG estimator.
    num_threads : torch CPU threads for recording and estimation (None: 1 on the CPU,
        restored after; see :class:`nifkit.runtime.cpu_threads`: on a shared machine
        one thread is often several times faster for these small matrices).
    feature_names, image_shape : labels of the input nodes and, for images, their
        ``(H, W)`` (taken from a ``Dataset`` when not given).

    Returns a :class:`FlowGraph`.
    """
    t0 = time.perf_counter()
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "binned":
        Binner(n_bins=n_bins, method=binning, range=bin_range).validate()
    if binning not in BINNING_METHODS:
        raise ValueError(f"binning must be one of {BINNING_METHODS}, got {binning!r}")
    if significance is not None:
        if not 0 < float(significance) < 1:
            raise ValueError(f"significance must be None or a level alpha in (0, 1), got {significance!r}")
        if not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
            raise ValueError(f"n_shuffles must be a positive integer, got {n_shuffles!r}")
        if significance <= 1.0 / (n_shuffles + 1):
            raise ValueError(f"with n_shuffles={n_shuffles} the smallest possible p-value is 1/{n_shuffles + 1} = "
                             f"{1 / (n_shuffles + 1):.3g}, so significance={significance} would prune every edge; "
                             f"use n_shuffles >= {math.ceil(1 / significance)}")
    weight_names = flow_layers(model)
    chosen = _select_layers(model, weight_names, layers)
    modules = dict(model.named_modules())
    acts, _ = _record_activities(model, data, chosen, weight_names, split, max_samples, batch_size, num_threads)
    n = len(acts[0])
    if estimator == "binned":
        check_n_samples(n, n_bins * n_bins, f"binned MI with n_bins={n_bins} ({n_bins * n_bins} joint cells per pair)")
    elif estimator == "dv":
        check_n_samples(n, 16, "the DV estimator")
    elif estimator == "ksg":
        check_n_samples(n, ksg_k + 2, f"KSG with k={ksg_k}")
    else:
        check_n_samples(n, 3, "a correlation")
    t_rec = time.perf_counter()

    i0 = weight_names.index(chosen[0])
    first_name = INPUT_LAYER if i0 == 0 else weight_names[i0 - 1]
    names = [first_name] + list(chosen)
    sizes = [a.shape[1] for a in acts]
    weights, connected = [], []
    for l, name in enumerate(chosen):
        w, c = _abs_weights(modules[name], sizes[l])
        weights.append(w)
        connected.append(c)

    from .config import DEFAULT_MEMORY_BUDGET

    budget = memory_budget or DEFAULT_MEMORY_BUDGET
    from .runtime import cpu_threads

    with cpu_threads(num_threads):
        mi, pv = _estimate(estimator, acts, connected, n_bins=n_bins, binning=binning, bin_range=bin_range,
                           correction=correction, significance=significance, n_shuffles=n_shuffles, seed=seed,
                           dv_options=dv_options, ksg_k=ksg_k, budget=budget, progress=progress)
    t_est = time.perf_counter()

    keep = [c if pv is None else c & (p < significance) for c, p in zip(connected, pv or connected)]
    flows = []
    for l in range(len(chosen)):
        f = np.clip(np.nan_to_num(mi[l], nan=0.0), 0.0, None)
        if weight_scale:
            f = f * weights[l]
        flows.append(np.where(keep[l], f, 0.0))

    # labels of the inputs
    if feature_names is None and i0 == 0:
        feature_names = getattr(data, "feature_names", None)
    if image_shape is None and i0 == 0:
        image_shape = getattr(data, "image_shape", None)
    if feature_names is not None and len(feature_names) != sizes[0]:
        feature_names = None  # e.g. pixel names of a CNN whose inputs are channels
    if image_shape is not None and int(np.prod(image_shape)) != sizes[0]:
        image_shape = None

    meta = dict(n_bins=n_bins, binning=binning, bin_range=bin_range, correction=correction,
                weight_scale=weight_scale, significance=significance, n_shuffles=n_shuffles, seed=seed,
                feature_names=list(feature_names) if feature_names is not None else None,
                image_shape=tuple(image_shape) if image_shape is not None else None,
                dv_options={**DV_DEFAULTS, **(dv_options or {})} if estimator == "dv" else None,
                timings={"record": t_rec - t0, "estimate": t_est - t_rec, "assemble": time.perf_counter() - t_est})
    return FlowGraph(layers=names, sizes=sizes, mi=mi, weights=weights, connected=connected,
                     flows=flows, p_values=pv, estimator=estimator, n_samples=int(n), meta=meta)


def _p_values(obs, nulls):
    ge = sum((nl >= obs) for nl in nulls)
    return (1.0 + ge) / (1.0 + len(nulls))


def _estimate(estimator, acts, connected, *, n_bins, binning, bin_range, correction, significance, n_shuffles,
              seed, dv_options, ksg_k, budget, progress):
    """MI matrices (NaN where not estimated) and p-values per adjacent layer pair."""
    L = len(connected)
    n = len(acts[0])
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(n_shuffles)] if significance is not None else []
    mi, pv = [], None if significance is None else []

    if estimator == "binned":
        codes = [Binner(n_bins=n_bins, method=binning, range=bin_range).fit_transform(a) for a in acts]
        for l in range(L):  # one all-pairs call per adjacent layer pair
            kw = dict(n_bins=n_bins, correction=correction, memory_budget=budget)
            obs = pairwise_mi(codes[l], codes[l + 1], **kw)
            mi.append(obs)
            if perms:
                pv.append(_p_values(obs, [pairwise_mi(codes[l], codes[l + 1][p], **kw) for p in perms]))
        return mi, pv

    if estimator == "gaussian":
        for l in range(L):
            obs = gaussian_mi_pairs(acts[l], acts[l + 1])
            mi.append(obs)
            if perms:
                pv.append(_p_values(obs, [gaussian_mi_pairs(acts[l], acts[l + 1][p]) for p in perms]))
        return mi, pv

    if estimator == "ksg":
        # blocks of a few MiB stay in cache: fastest (4 MiB ~1.6x faster than 64 MiB)
        ksg_budget = min(budget // 2, 2 * 2**20)
        for l in range(L):
            src, dst = _edges_of(connected[l])
            pairs = np.stack([src, dst], 1)
            full = np.full(connected[l].shape, np.nan)
            full[src, dst] = ksg_mi_pairs(acts[l], acts[l + 1], pairs, k=ksg_k, seed=seed, memory_budget=ksg_budget)
            mi.append(full)
            if perms:
                nulls = []
                for p in perms:
                    nl = np.full(connected[l].shape, np.nan)
                    nl[src, dst] = ksg_mi_pairs(acts[l], acts[l + 1][p], pairs, k=ksg_k, seed=seed,
                                                memory_budget=ksg_budget)
                    nulls.append(nl)
                pv.append(_p_values(full, nulls))
        return mi, pv

    # DV: every edge of the network (and of every shuffled copy) in one batched training
    z = np.concatenate(acts, axis=1).astype(np.float32)
    offsets = np.cumsum([0] + [a.shape[1] for a in acts])
    pair_blocks = []
    for l in range(L):
        src, dst = _edges_of(connected[l])
        pair_blocks.append(np.stack([src + offsets[l], dst + offsets[l + 1]], 1))
    pairs = np.concatenate(pair_blocks)
    n_nodes = z.shape[1]
    b = np.concatenate([z] + [z[p] for p in perms], axis=1) if perms else z
    all_pairs = np.concatenate([pairs] + [pairs + [0, (s + 1) * n_nodes] for s in range(len(perms))])
    opts = {**DV_DEFAULTS, "seed": seed, "progress": progress, **(dv_options or {})}
    est = dv_mi_pairs(z, b, all_pairs, **opts)
    P = len(pairs)
    obs_flat = est[:P]
    null_flat = [est[(s + 1) * P:(s + 2) * P] for s in range(len(perms))]
    start = 0
    for l in range(L):
        src, dst = _edges_of(connected[l])
        sl = slice(start, start + len(src))
        start += len(src)
        full = np.full(connected[l].shape, np.nan)
        full[src, dst] = obs_flat[sl]
        mi.append(full)
        if perms:
            p = np.full(connected[l].shape, np.nan)
            p[src, dst] = _p_values(obs_flat[sl], [nf[sl] for nf in null_flat])
            pv.append(p)
    return mi, pv


# ---------------------------------------------------------------------------------------
# Network science
# ---------------------------------------------------------------------------------------
DISTANCES = ("neglog", "inverse")


def _positive_subgraph(fg: FlowGraph, distance: str) -> nx.DiGraph:
    """Edges with positive flow, with a ``distance`` attribute (see :func:`betweenness`)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    fmax = fg.max_flow
    h = nx.DiGraph()
    h.add_nodes_from(fg.graph.nodes)
    if fmax <= 0:
        return h
    src, dst, fl = [], [], []
    for l in range(len(fg.flows)):
        s, d = np.nonzero(fg.edge_masks[l] & (fg.flows[l] > 0))
        src.append([f"{fg.layers[l]}:{i}" for i in s.tolist()])
        dst.append([f"{fg.layers[l + 1]}:{j}" for j in d.tolist()])
        fl.append(fg.flows[l][s, d])
    f = np.concatenate(fl) / fmax
    dist = -np.log2(f) if distance == "neglog" else 1.0 / f
    h.add_weighted_edges_from(zip(sum(src, []), sum(dst, []), dist.tolist()), weight="distance")
    return h


def betweenness(fg: FlowGraph, distance: str = "neglog", normalized: bool = True) -> dict:
    """Betweenness centrality of every neuron on the directed flow graph.

    Shortest paths use a *distance* per edge, so that strong flow means near
    (*reconstruction*; the paper draws node size by betweenness without stating the
    metric): ``"neglog"`` (default) ``d = -log2(f / f_max)``, so a path's length is
    minus the log of the product of its normalised flows and the shortest path is the
    max-product path of :func:`strongest_paths`; ``"inverse"`` ``d = f_max / f``.
    Zero-flow edges are left out. Inputs and outputs start or end every path, so in a
    layered graph only hidden neurons have nonzero betweenness. Computed with
    ``networkx.betweenness_centrality`` (Brandes' algorithm).
    """
    h = _positive_subgraph(fg, distance)
    return nx.betweenness_centrality(h, weight="distance", normalized=normalized)


COMMUNITY_METHODS = ("louvain", "greedy")


def communities(fg: FlowGraph, method: str = "louvain", seed: int = 0, resolution: float = 1.0) -> list:
    """Communities of neurons maximising modularity on the undirected flow graph with
    edge weight ``flow``: ``"louvain"`` (default, seeded) or ``"greedy"`` (Clauset–
    Newman–Moore). Returns a list of sets of node ids, largest first; isolated
    neurons (no positive flow) form singletons."""
    if method not in COMMUNITY_METHODS:
        raise ValueError(f"method must be one of {COMMUNITY_METHODS}, got {method!r}")
    h = nx.Graph()
    h.add_nodes_from(fg.graph.nodes)
    h.add_weighted_edges_from(((u, v, f) for u, v, f in fg.graph.edges(data="flow") if f > 0), weight="flow")
    if h.number_of_edges() == 0:
        return [{v} for v in h.nodes]
    if method == "louvain":
        comms = nx.community.louvain_communities(h, weight="flow", seed=seed, resolution=resolution)
    else:
        comms = nx.community.greedy_modularity_communities(h, weight="flow", resolution=resolution)
    return sorted((set(c) for c in comms), key=lambda c: (-len(c), min(c)))


PATH_MODES = ("product", "widest")


@dataclass(repr=False)
class FlowPaths:
    """Strongest flow path from every input to every output.

    ``value[i, o]``: the path's strength (``"product"``: product of the normalised
    flows ``f / f_max`` along it, in (0, 1]; ``"widest"``: its weakest edge's flow,
    bits). ``nodes[i, o]``: the neuron index in every layer (``len(layers)`` entries,
    first ``i``, last ``o``)."""

    value: np.ndarray
    nodes: np.ndarray
    layers: list
    mode: str

    def path(self, i: int, o: int) -> list:
        """Node ids of the strongest path from input ``i`` to output ``o``."""
        return [f"{name}:{int(k)}" for name, k in zip(self.layers, self.nodes[i, o])]

    def best(self, k: int = 5) -> list:
        """The ``k`` strongest ``(value, path)`` pairs over all input-output pairs."""
        order = np.argsort(-self.value, axis=None)[:k]
        ii, oo = np.unravel_index(order, self.value.shape)
        return [(float(self.value[i, o]), self.path(i, o)) for i, o in zip(ii.tolist(), oo.tolist())]

    def __repr__(self) -> str:
        return f"FlowPaths({self.mode}, {self.value.shape[0]} inputs x {self.value.shape[1]} outputs)"


def strongest_paths(fg: FlowGraph, mode: str = "product") -> FlowPaths:
    """Strongest flow path from each input to each output, by dynamic programming over
    the layers (each layer one numpy broadcast, no loop over neurons or edges).

    ``mode="product"`` (default) maximises the product of normalised flows
    ``f / f_max`` (the shortest path under betweenness' ``"neglog"`` distance);
    ``"widest"`` maximises the smallest flow on the path (the bottleneck). Memory:
    ``inputs x width_l x width_{l+1}`` floats per layer.
    """
    if mode not in PATH_MODES:
        raise ValueError(f"mode must be one of {PATH_MODES}, got {mode!r}")
    fmax = fg.max_flow
    mats = [np.where(m, f, 0.0) / (fmax if (mode == "product" and fmax > 0) else 1.0)
            for f, m in zip(fg.flows, fg.edge_masks)]
    best = mats[0]
    args = []
    for F in mats[1:]:
        cand = best[:, :, None] * F[None] if mode == "product" else np.minimum(best[:, :, None], F[None])
        args.append(cand.argmax(1))
        best = cand.max(1)
    m_in, m_out = best.shape
    L = len(fg.layers)
    nodes = np.empty((m_in, m_out, L), dtype=np.int64)
    nodes[:, :, 0] = np.arange(m_in)[:, None]
    nodes[:, :, -1] = np.arange(m_out)[None, :]
    ii = np.broadcast_to(np.arange(m_in)[:, None], (m_in, m_out))
    for l in range(L - 2, 0, -1):  # backtrack, one layer at a time
        nodes[:, :, l] = args[l - 1][ii, nodes[:, :, l + 1]]
    return FlowPaths(value=best, nodes=nodes, layers=list(fg.layers), mode=mode)


ATTRIBUTION_METHODS = ("flow", "path", "maxflow", "strength")


@dataclass(repr=False)
class Attribution:
    """Feature attribution by information flow.

    ``scores``: one per input, summing to 1 (unless all are 0). ``per_target``: the
    ``(inputs, targets)`` matrix behind them when the method has one (``"flow"``: the
    share of each target's incoming information that traces back to each input).
    ``target``: None (all outputs) or the node the attribution was computed for."""

    scores: np.ndarray
    per_target: np.ndarray | None
    method: str
    target: str | None = None
    feature_names: list | None = None
    image_shape: tuple | None = None

    def ranking(self) -> np.ndarray:
        """Input indices, most attributed first (ties keep index order)."""
        return np.argsort(-self.scores, kind="stable")

    def top(self, k: int = 5) -> list:
        names = self.feature_names or [f"input:{i}" for i in range(len(self.scores))]
        return [(names[i], float(self.scores[i])) for i in self.ranking()[:k]]

    def as_image(self) -> np.ndarray:
        if self.image_shape is None:
            raise ValueError("these inputs have no image_shape; use the scores as a bar chart")
        return self.scores.reshape(self.image_shape)

    def __repr__(self) -> str:
        tgt = f", target={self.target}" if self.target else ""
        return f"Attribution({self.method}{tgt}, top: {', '.join(f'{n}={s:.3f}' for n, s in self.top(3))})"


def _target_normalised(fg: FlowGraph) -> list:
    """Each flow matrix with every target's incoming flows scaled to sum to 1 (columns
    of the ``(source, target)`` matrices; rows of torch's ``(out, in)`` orientation)."""
    out = []
    for f, m in zip(fg.flows, fg.edge_masks):
        f = np.where(m, f, 0.0)
        s = f.sum(0, keepdims=True)
        out.append(np.divide(f, s, out=np.zeros_like(f), where=s > 0))
    return out


def attribution(fg: FlowGraph, method: str = "flow", target=None) -> Attribution:
    """Attribute the network's information to its input features (*reconstruction*:
    the paper derives attributions from the flow graph; the exact formula is not
    available, so these are documented choices).

    ``"flow"`` (default)
        Normalise each layer's flow matrix over *sources*: every neuron's incoming
        flows are scaled to sum to 1 (in torch's ``(out, in)`` orientation, the rows:
        the "row-normalised layer flow matrices" of the reconstruction), so ``N_l[i, j]``
        is the share of neuron ``j``'s incoming information that comes from ``i``. The
        product ``R = N_0 N_1 ... N_{L-1}`` sums these shares over all paths: ``R[i, o]``
        is the share of output ``o``'s information that flows from input ``i``, and
        the score of input ``i`` is ``sum_o R[i, o]`` (normalised to sum 1). Normalising
        the other way (every neuron's *outgoing* flows sum to 1) would make each
        input's total exactly 1, ranking nothing: a pitfall the chapter shows.
    ``"path"``
        The strength of the input's strongest (max-product) path to any output.
    ``"maxflow"``
        The maximum flow from the input to the set of outputs with edge capacities
        ``flow`` (networkx ``maximum_flow_value``; one call per input neuron).
    ``"strength"``
        The input's total outgoing flow (weighted out-degree centrality).

    ``target``: None (all outputs) or a node id / ``(layer, index)``: attribute that
    neuron's information instead (``"flow"`` and ``"path"`` only).
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"method must be one of {ATTRIBUTION_METHODS}, got {method!r}")
    tgt_id, depth, idx = None, len(fg.layers) - 1, None
    if target is not None:
        tgt_id = fg.node_id(*target) if isinstance(target, tuple) else target
        depth, idx = fg.locate(tgt_id)
        if method not in ("flow", "path"):
            raise ValueError(f"target= works with method 'flow' or 'path', not {method!r}")
    per = None
    if depth == 0:  # an input neuron: all its attribution is its own
        scores = np.zeros(fg.sizes[0])
        scores[idx] = 1.0
    elif method == "flow":
        mats = _target_normalised(fg)[:depth]
        r = mats[0]
        for m in mats[1:]:
            r = r @ m
        per = r if idx is None else r[:, [idx]]
        scores = per.sum(1)
    elif method == "path":
        sub = fg if depth == len(fg.layers) - 1 else _truncate(fg, depth)
        paths = strongest_paths(sub, "product")
        per = paths.value if idx is None else paths.value[:, [idx]]
        scores = per.max(1)
    elif method == "strength":
        scores = np.where(fg.edge_masks[0], fg.flows[0], 0.0).sum(1)
    else:
        scores = _maxflow_scores(fg)
    total = scores.sum()
    scores = scores / total if total > 0 else scores
    return Attribution(scores=scores, per_target=per, method=method, target=tgt_id,
                       feature_names=fg.meta.get("feature_names"), image_shape=fg.meta.get("image_shape"))


def _truncate(fg: FlowGraph, depth: int) -> FlowGraph:
    """A view of the first ``depth`` layer pairs (for paths into a hidden neuron)."""
    return FlowGraph(layers=fg.layers[:depth + 1], sizes=fg.sizes[:depth + 1], mi=fg.mi[:depth],
                     weights=fg.weights[:depth], connected=fg.connected[:depth], flows=fg.flows[:depth],
                     p_values=None if fg.p_values is None else fg.p_values[:depth], estimator=fg.estimator,
                     n_samples=fg.n_samples, meta=fg.meta,
                     _cache={"masks": fg.edge_masks[:depth]})


def _maxflow_scores(fg: FlowGraph) -> np.ndarray:
    h = nx.DiGraph()
    h.add_edges_from((u, v, {"capacity": f}) for u, v, f in fg.graph.edges(data="flow") if f > 0)
    sink = "__outputs__"
    last = fg.layers[-1]
    h.add_edges_from((f"{last}:{o}", sink, {"capacity": float("inf")}) for o in range(fg.sizes[-1]))
    src = [f"{fg.layers[0]}:{i}" for i in range(fg.sizes[0])]
    # a loop over input neurons (not edges): networkx has no batched max-flow
    return np.array([nx.maximum_flow_value(h, s, sink) if s in h else 0.0 for s in src])


# ---------------------------------------------------------------------------------------
# Exercise checker
# ---------------------------------------------------------------------------------------
def check_flow_attribution(fg: FlowGraph, scores) -> str:
    """Checker for the chapter's exercise: compute the ``"flow"`` attribution of ``fg``
    yourself from ``fg.flows`` and pass your scores. Returns a message saying what is
    right or wrong (and raises nothing), e.g. about the normalisation direction."""
    ref = attribution(fg, "flow").scores
    try:
        s = np.asarray(to_numpy(scores, "scores"), dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        return f"✗ scores must be an array of numbers: {exc}"
    if s.shape != ref.shape:
        return (f"✗ expected one score per input neuron ({ref.shape[0]} values), got {s.shape[0]}. "
                "Sum your (inputs x outputs) matrix over the outputs (axis=1).")
    if not np.all(np.isfinite(s)):
        return "✗ your scores contain NaN or inf: did you divide by a zero column sum? Leave empty columns at 0."
    if s.sum() > 0 and not np.isclose(s.sum(), 1.0, atol=1e-6):
        if np.allclose(s / s.sum(), ref, atol=1e-6):
            return "almost: the shape is right but normalise the scores to sum to 1 (s / s.sum())."
    if np.allclose(s, ref, atol=1e-6):
        return "✓ correct: your scores equal attribution(fg, 'flow')."
    def _product(axis):
        r = None
        for f, m in zip(fg.flows, fg.edge_masks):
            f = np.where(m, f, 0.0)
            t = f.sum(axis=axis, keepdims=True)
            nrm = np.divide(f, t, out=np.zeros_like(f), where=t > 0)
            r = nrm if r is None else r @ nrm
        v = r.sum(1)
        return v / v.sum() if v.sum() > 0 else v

    if (s.sum() > 0 and np.allclose(s, s[0], rtol=1e-6)) or np.allclose(s, _product(1), atol=1e-6):
        return ("✗ you normalised each neuron's *outgoing* flows (rows of the (source, target) matrices): "
                "every input then sends out exactly 1 and the scores say nothing about the outputs (all equal, "
                "or equal up to dead units). Normalise each neuron's *incoming* flows instead: "
                "f / f.sum(axis=0, keepdims=True).")
    raw = fg.flows[0]
    for f in fg.flows[1:]:
        raw = raw @ f
    raw = raw.sum(1)
    raw_scores = raw / raw.sum() if raw.sum() > 0 else raw
    if np.allclose(s, raw_scores, atol=1e-6):
        return ("✗ you multiplied the raw flow matrices: wide layers then dominate. Normalise each neuron's "
                "incoming flows to sum to 1 before multiplying.")
    rho = np.corrcoef(s, ref)[0, 1] if np.std(s) > 0 else float("nan")
    return (f"✗ not equal to the reference (correlation {rho:.2f}). Check: normalise over sources (axis 0) per "
            "layer, multiply the matrices input-first (N0 @ N1 @ ...), sum over outputs, normalise to sum 1.")
