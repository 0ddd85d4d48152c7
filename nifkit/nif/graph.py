"""The flow graph (:class:`FlowGraph`) and the network science on it: betweenness,
communities, strongest paths and attributions by information flow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..models.walk import Neuron, unknown_layer_error
from ..results import Result
from .._validation import checked

__all__ = [
    "IDENTITY", "FlowGraph", "DISTANCES", "betweenness", "COMMUNITY_METHODS", "communities", "PATH_MODES", "FlowPaths",
    "strongest_paths", "ATTRIBUTION_METHODS", "Attribution", "attribution",
]


#: ``weight_layer`` of the identity edges of a skip connection (channel ``c`` of a merge's
#: input to channel ``c`` of the merge)
IDENTITY = "identity"


@dataclass(repr=False)
class FlowGraph(Result):
    """A network's information-flow graph.

    ``graph``: ``networkx.DiGraph`` (assembled from the matrices on first access and
    cached: networkx holds one Python object per edge, which for a 17,000-edge graph
    costs about as much as estimating all the edges). Node ids are neuron addresses
    (:class:`nifkit.models.Neuron`, written ``"<layer>:<index>"``): ``"input:j"`` for the
    inputs, then the one walker's units name of every later layer
    (:attr:`nifkit.models.walk.WalkedLayer.units`: ``"act1:3"`` in an ``mlp``, the same
    address ordered ablation and the capstone use; ``"fc_out:1"`` for an output layer
    without an activation module). Node attributes: ``layer`` (that name), ``depth``
    (0 = input), ``index``, ``name`` (= the id) and ``label`` (feature name for inputs);
    edges with ``weight_layer`` (the Linear/Conv layer whose weights they are, e.g.
    ``"fc1"``), ``mi`` (bits, the estimate), ``weight`` (``|w_ij|``), ``flow`` (what the
    network science uses: ``max(mi, 0)``, times ``|w_ij|`` when ``weight_scale``) and
    ``p_value`` when a shuffle test ran.

    ``layers``/``sizes``: node layers (``"input"``, then the units names, in data-flow
    order) and their numbers of nodes. The edges come in *edge groups* ``g``, each
    joining node layer ``pairs[g] = (s, t)`` to a later one (matrices ``(sizes[s],
    sizes[t])``): ``weight_layers[g]`` the weight layer of the group (its output is node
    layer ``t``; :data:`IDENTITY` for the identity edges of a skip connection, channel
    ``c`` to channel ``c`` of a merge), ``mi[g]`` the estimate for every pair (NaN where
    not estimated), ``weights[g]`` the ``|w|`` matrix (1 on an identity group's
    diagonal), ``connected[g]`` the edge mask, ``p_values[g]`` (or None), ``flows[g]``
    the edge flows (0 where there is no edge or it was pruned). In a chain (an ``mlp``,
    a ``small_cnn``) group ``g`` joins layer ``g`` to ``g + 1`` (``pairs=None`` says
    so); a residual network's graph is a DAG whose skip groups jump over layers. ``feature_names``/``image_shape`` describe the inputs (None when
    unknown), ``timings`` the seconds of each stage, ``settings`` how it was estimated.
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
    weight_layers: list = field(default_factory=list)
    pairs: list | None = None
    feature_names: list | None = None
    image_shape: tuple | None = None
    timings: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    repr_skip = ("settings", "notes", "mi", "weights", "connected", "flows", "p_values", "feature_names", "timings")
    plotter = "nifkit.nif.plots:plot_flow_graph"

    def __post_init__(self):
        if self.pairs is None:
            self.pairs = [(l, l + 1) for l in range(len(self.layers) - 1)]
        self.pairs = [(int(a), int(b)) for a, b in self.pairs]
        if len(self.weight_layers) != len(self.pairs) or not all(0 <= a < b < len(self.layers) for a, b in self.pairs):
            raise ValueError(f"weight_layers must name the weight layer of each of the {len(self.pairs)} edge groups "
                             f"(pairs={self.pairs}, each from an earlier to a later node layer of {self.layers}), "
                             f"got {self.weight_layers}")

    @property
    def is_chain(self) -> bool:
        """Whether every edge group joins a node layer to the next (no skip connection)."""
        return self.pairs == [(l, l + 1) for l in range(len(self.layers) - 1)]

    def ends(self, g: int) -> tuple[str, str]:
        """``(source, target)`` node layer names of edge group ``g``."""
        a, b = self.pairs[g]
        return self.layers[a], self.layers[b]

    def groups_into(self, d: int) -> list:
        """Edge groups whose edges end in node layer ``d`` (a depth)."""
        return [g for g, (_, b) in enumerate(self.pairs) if b == d]

    def groups_from(self, d: int) -> list:
        """Edge groups whose edges start in node layer ``d`` (a depth)."""
        return [g for g, (a, _) in enumerate(self.pairs) if a == d]

    @property
    def graph(self) -> nx.DiGraph:
        if "graph" not in self._cache:
            self._cache["graph"] = _assemble(self)
        return self._cache["graph"]

    # -- addressing ------------------------------------------------------------------
    def _unknown_layer(self, name, what: str) -> ValueError:
        """"Did you mean" for a node layer name, also for a weight layer's name (the
        spelling of node ids before they became the walker's units names)."""
        if name in self.weight_layers:
            units = self.ends(self.weight_layers.index(name))[1]
            return ValueError(
                f"{what}: unknown layer {name!r}. Did you mean {units!r}? Nodes are named by their units "
                f"(the one walker's units name, as in every chapter); {name!r} is the weight layer whose edges "
                f"lead into {units!r}. Node layers: {', '.join(self.layers)}")
        return unknown_layer_error(name, self.layers, what)

    def neuron(self, node, what: str = "node") -> Neuron:
        """The :class:`~nifkit.models.Neuron` of a node: an id ``"act1:3"``, a ``Neuron``
        or a ``(layer, index)`` pair (the layer a name or a depth). Unknown layers and
        indices out of range raise ``ValueError`` naming ``what`` (the argument)."""
        if isinstance(node, tuple) and len(node) == 2 and isinstance(node[0], (int, np.integer)):
            d = int(node[0])
            if not 0 <= d < len(self.layers):
                raise ValueError(f"{what}: depth {d} is out of range; the graph has {len(self.layers)} layers "
                                 f"(0 = input .. {len(self.layers) - 1})")
            node = (self.layers[d], node[1])
        try:
            n = Neuron.parse(node)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what}: {exc}; nodes of this graph look like {self.node_id(1, 0)!r}") from None
        if n.layer not in self.layers:
            raise self._unknown_layer(n.layer, what)
        size = self.sizes[self.layers.index(n.layer)]
        if not 0 <= n.index < size:
            raise ValueError(f"{what}: layer {n.layer!r} has {size} neurons; index {n.index} is out of range")
        return n

    def node_id(self, layer, index: int) -> str:
        """Id ``"<layer>:<index>"`` of neuron ``index`` of node layer ``layer`` (a name or
        a depth)."""
        return str(self.neuron((layer, int(index))))

    def locate(self, node, what: str = "node") -> tuple[int, int]:
        """``(depth, index)`` of a node (an id, a ``Neuron`` or a ``(layer, index)`` pair)."""
        n = self.neuron(node, what)
        return self.layers.index(n.layer), n.index

    def nodes(self) -> list:
        """Every node id, layer by layer (index order inside a layer)."""
        return [str(Neuron(name, i)) for name, m in zip(self.layers, self.sizes) for i in range(m)]

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
            if self.p_values is None or self.settings.get("significance") is None:
                self._cache["masks"] = [c.copy() for c in self.connected]
            else:
                a = self.settings["significance"]
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

    def table(self) -> list[dict]:
        """One row per edge group: its weight layer, edges kept of the connections, the
        mean estimate over the connections and the largest flow (bits)."""
        rows = []
        for l, wl in enumerate(self.weight_layers):  # a loop over layers
            c, m = self.connected[l], self.edge_masks[l]
            rows.append({"weight_layer": wl, "source": self.ends(l)[0], "target": self.ends(l)[1],
                         "connections": int(c.sum()), "edges": int(m.sum()),
                         "mean_mi": float(np.nanmean(np.where(c, self.mi[l], np.nan))) if c.any() else float("nan"),
                         "max_flow": float(self.flows[l].max()) if self.flows[l].size else 0.0})
        return rows

    def repr_extra(self) -> dict:
        return {"n_edges": self.n_edges, "connections": sum(int(c.sum()) for c in self.connected),
                "significance": self.settings.get("significance")}


def _assemble(fg: FlowGraph) -> nx.DiGraph:
    """The networkx graph of a FlowGraph (one Python object per node and edge; the
    numbers were computed vectorised)."""
    g = nx.DiGraph()
    m = fg.settings
    g.graph.update(estimator=fg.estimator, n_samples=int(fg.n_samples), weight_scale=bool(m.get("weight_scale")),
                   layers=",".join(fg.layers), weight_layers=",".join(fg.weight_layers),
                   n_bins=int(m.get("n_bins", 0)), binning=str(m.get("binning")),
                   significance=float(m["significance"]) if m.get("significance") is not None else -1.0)
    names = fg.feature_names
    for d, (name, size) in enumerate(zip(fg.layers, fg.sizes)):
        labels = names if d == 0 else None
        g.add_nodes_from((f"{name}:{i}", {"layer": name, "depth": d, "index": i, "name": f"{name}:{i}",
                                          "label": str(labels[i]) if labels is not None else f"{name}:{i}"})
                         for i in range(size))
    for l, keep in enumerate(fg.edge_masks):
        src, dst = np.nonzero(keep)
        wl = fg.weight_layers[l]
        cols = {"mi": fg.mi[l][src, dst], "weight": fg.weights[l][src, dst], "flow": fg.flows[l][src, dst]}
        if fg.p_values is not None:
            cols["p_value"] = fg.p_values[l][src, dst]
        keys = list(cols)
        vals = zip(*(v.tolist() for v in cols.values()))
        a, b = fg.ends(l)
        g.add_edges_from(zip((f"{a}:{i}" for i in src.tolist()), (f"{b}:{j}" for j in dst.tolist()),
                             ({"weight_layer": wl, **dict(zip(keys, v))} for v in vals)))
    return g


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
        a, b = fg.ends(l)
        src.append([f"{a}:{i}" for i in s.tolist()])
        dst.append([f"{b}:{j}" for j in d.tolist()])
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


@checked
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
class FlowPaths(Result):
    """Strongest flow path from every input to every output.

    ``value[i, o]``: the path's strength (``"product"``: product of the normalised
    flows ``f / f_max`` along it, in (0, 1]; ``"widest"``: its weakest edge's flow,
    bits). ``nodes[i, o]``: the neuron index in every layer (``len(layers)`` entries,
    first ``i``, last ``o``; -1 in a layer a skip connection jumps over)."""

    value: np.ndarray
    nodes: np.ndarray
    layers: list
    mode: str

    repr_skip = ("settings", "notes", "nodes")

    def table(self) -> list[dict]:
        """One row per input-output pair, strongest first: its value and its path."""
        return [{"value": v, "input": p[0], "output": p[-1], "path": " -> ".join(p)}
                for v, p in self.best(self.value.size)]

    def path(self, i: int, o: int) -> list:
        """Node ids of the strongest path from input ``i`` to output ``o`` (the node
        layers it passes through)."""
        return [f"{name}:{int(k)}" for name, k in zip(self.layers, self.nodes[i, o]) if k >= 0]

    def best(self, k: int = 5) -> list:
        """The ``k`` strongest ``(value, path)`` pairs over all input-output pairs."""
        order = np.argsort(-self.value, axis=None)[:k]
        ii, oo = np.unravel_index(order, self.value.shape)
        return [(float(self.value[i, o]), self.path(i, o)) for i, o in zip(ii.tolist(), oo.tolist())]


def strongest_paths(fg: FlowGraph, mode: str = "product") -> FlowPaths:
    """Strongest flow path from each input to each output, by dynamic programming over
    the node layers in data-flow order (each edge group one numpy broadcast, no loop over
    neurons or edges; in a residual network's DAG a path may take a skip connection).

    ``mode="product"`` (default) maximises the product of normalised flows
    ``f / f_max`` (the shortest path under betweenness' ``"neglog"`` distance);
    ``"widest"`` maximises the smallest flow on the path (the bottleneck). Memory:
    ``inputs x width_s x width_t`` floats per edge group. ``nodes[i, o, d]`` is -1 for
    a node layer ``d`` the path skips.
    """
    if mode not in PATH_MODES:
        raise ValueError(f"mode must be one of {PATH_MODES}, got {mode!r}")
    fmax = fg.max_flow
    mats = [np.where(m, f, 0.0) / (fmax if (mode == "product" and fmax > 0) else 1.0)
            for f, m in zip(fg.flows, fg.edge_masks)]
    m_in, L = fg.sizes[0], len(fg.layers)
    best = [np.where(np.eye(m_in) > 0, 1.0 if mode == "product" else np.inf, 0.0)]
    came = [None]  # per layer: (group, source index) of the best way in, each (m_in, width)
    for d in range(1, L):  # a loop over node layers (and the groups into each)
        cands, srcs = [], []
        groups = fg.groups_into(d) or [-1]
        for g in groups:
            if g < 0:  # no way in: value 0
                cands.append(np.zeros((m_in, fg.sizes[d])))
                srcs.append(np.zeros((m_in, fg.sizes[d]), np.int64))
                continue
            b = best[fg.pairs[g][0]]
            cand = b[:, :, None] * mats[g][None] if mode == "product" else np.minimum(b[:, :, None], mats[g][None])
            cands.append(cand.max(1))
            srcs.append(cand.argmax(1))
        which = np.stack(cands).argmax(0)  # the first group on ties
        best.append(np.take_along_axis(np.stack(cands), which[None], 0)[0])
        src = np.take_along_axis(np.stack(srcs), which[None], 0)[0]
        came.append((np.array(groups)[which], src))
    nodes = np.full((m_in, fg.sizes[-1], L), -1, dtype=np.int64)
    nodes[:, :, -1] = np.arange(fg.sizes[-1])[None, :]
    ii = np.broadcast_to(np.arange(m_in)[:, None], nodes.shape[:2])
    for d in range(L - 1, 0, -1):  # backtrack, one node layer at a time
        on = nodes[:, :, d] >= 0
        g, src = (a[ii, np.maximum(nodes[:, :, d], 0)] for a in came[d])
        for k in fg.groups_into(d):
            sel = on & (g == k)
            nodes[:, :, fg.pairs[k][0]][sel] = src[sel]
    nodes[:, :, 0] = np.arange(m_in)[:, None]
    return FlowPaths(value=best[-1], nodes=nodes, layers=list(fg.layers), mode=mode)


ATTRIBUTION_METHODS = ("flow", "path", "maxflow", "strength")


@dataclass(repr=False)
class Attribution(Result):
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

    repr_skip = ("settings", "notes", "feature_names")
    plotter = "nifkit.nif.plots:plot_attribution"

    def table(self) -> list[dict]:
        """One row per input, most attributed first."""
        return [{"input": n, "score": s} for n, s in self.top(len(self.scores))]

    def repr_extra(self) -> dict:
        return {"top": [n for n, _ in self.top(3)]}

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


def _target_normalised(fg: FlowGraph) -> list:
    """Each flow matrix with every target's incoming flows (over every edge group into
    its layer) scaled to sum to 1 (columns of the ``(source, target)`` matrices; rows of
    torch's ``(out, in)`` orientation)."""
    fs = [np.where(m, f, 0.0) for f, m in zip(fg.flows, fg.edge_masks)]
    into = [sum((fs[g].sum(0, keepdims=True) for g in fg.groups_into(d)), np.zeros((1, m)))
            for d, m in enumerate(fg.sizes)]
    out = []
    for f, (_, b) in zip(fs, fg.pairs):
        s = into[b]
        out.append(np.divide(f, s, out=np.zeros_like(f), where=s > 0))
    return out


def _flow_shares(fg: FlowGraph, depth: int) -> np.ndarray:
    """``R[i, j]``: the share of node ``j``'s (of layer ``depth``) information that flows
    from input ``i``, summed over all paths: ``R_t = sum over groups g (s -> t) of R_s
    N_g`` in data-flow order, ``R_0 = I`` (in a chain, the product ``N_0 N_1 ...``)."""
    mats = _target_normalised(fg)
    r = [None] * (depth + 1)
    for d in range(1, depth + 1):  # a loop over node layers
        for g in fg.groups_into(d):
            a = fg.pairs[g][0]
            term = mats[g] if a == 0 else r[a] @ mats[g]
            r[d] = term if r[d] is None else r[d] + term
        if r[d] is None:
            r[d] = np.zeros((fg.sizes[0], fg.sizes[d]))
    return r[depth]


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

    ``target``: None (all outputs) or a node (an id such as ``"act1:3"``, a
    :class:`~nifkit.models.Neuron` or ``(layer, index)``): attribute that neuron's information instead (``"flow"`` and ``"path"`` only).
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"method must be one of {ATTRIBUTION_METHODS}, got {method!r}")
    tgt_id, depth, idx = None, len(fg.layers) - 1, None
    if target is not None:
        n = fg.neuron(target, "target")
        tgt_id, depth, idx = str(n), fg.layers.index(n.layer), n.index
        if method not in ("flow", "path"):
            raise ValueError(f"target= works with method 'flow' or 'path', not {method!r}")
    per = None
    if depth == 0:  # an input neuron: all its attribution is its own
        scores = np.zeros(fg.sizes[0])
        scores[idx] = 1.0
    elif method == "flow":
        r = _flow_shares(fg, depth)
        per = r if idx is None else r[:, [idx]]
        scores = per.sum(1)
    elif method == "path":
        sub = fg if depth == len(fg.layers) - 1 else _truncate(fg, depth)
        paths = strongest_paths(sub, "product")
        per = paths.value if idx is None else paths.value[:, [idx]]
        scores = per.max(1)
    elif method == "strength":
        scores = sum((np.where(fg.edge_masks[g], fg.flows[g], 0.0).sum(1) for g in fg.groups_from(0)),
                     np.zeros(fg.sizes[0]))
    else:
        scores = _maxflow_scores(fg)
    total = scores.sum()
    scores = scores / total if total > 0 else scores
    return Attribution(scores=scores, per_target=per, method=method, target=tgt_id,
                       feature_names=fg.feature_names, image_shape=fg.image_shape)


def _truncate(fg: FlowGraph, depth: int) -> FlowGraph:
    """A view of the node layers up to ``depth`` and the edge groups among them (for
    paths into a hidden neuron)."""
    keep = [g for g, (_, b) in enumerate(fg.pairs) if b <= depth]

    def pick(xs):
        return None if xs is None else [xs[g] for g in keep]

    return FlowGraph(layers=fg.layers[:depth + 1], sizes=fg.sizes[:depth + 1], mi=pick(fg.mi),
                     weights=pick(fg.weights), connected=pick(fg.connected), flows=pick(fg.flows),
                     p_values=pick(fg.p_values), estimator=fg.estimator, n_samples=fg.n_samples,
                     weight_layers=pick(fg.weight_layers), pairs=pick(fg.pairs), settings=fg.settings,
                     feature_names=fg.feature_names, image_shape=fg.image_shape,
                     _cache={"masks": pick(fg.edge_masks)})


def _maxflow_scores(fg: FlowGraph) -> np.ndarray:
    h = nx.DiGraph()
    h.add_edges_from((u, v, {"capacity": f}) for u, v, f in fg.graph.edges(data="flow") if f > 0)
    sink = "__outputs__"
    last = fg.layers[-1]
    h.add_edges_from((f"{last}:{o}", sink, {"capacity": float("inf")}) for o in range(fg.sizes[-1]))
    src = [f"{fg.layers[0]}:{i}" for i in range(fg.sizes[0])]
    # a loop over input neurons (not edges): networkx has no batched max-flow
    return np.array([nx.maximum_flow_value(h, s, sink) if s in h else 0.0 for s in src])
