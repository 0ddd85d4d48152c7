"""Building the flow graph: the layers (:func:`flow_layers`, from the one walker), the
neurons' activities (one recording), and the edge estimates of every adjacent layer
pair (binned, DV, KSG, Gaussian; shuffle-null p-values).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from .._validation import check_n_samples
from ..info import Binner, dv_mi_pairs, gaussian_mi_pairs, ksg_mi_pairs, p_values, pairwise_mi
from ..info.binning import METHODS as BINNING_METHODS
from ..models.walk import unknown_layer_error, walk
from ..runtime import Progress
from .graph import FlowGraph

__all__ = ["ESTIMATORS", "INPUT_LAYER", "DV_DEFAULTS", "flow_layers", "flow_nodes", "flow_graph"]


ESTIMATORS = ("binned", "dv", "ksg", "gaussian")


INPUT_LAYER = "input"


#: DV options used by :func:`flow_graph` unless ``dv_options`` overrides them. Smaller
#: critics and batches than :func:`nifkit.info.dv_mi_pairs`'s defaults (hidden 32, batch
#: 512) suit the 1-D pairs of an edge: on the analytic Gaussian edges of
#: tests/test_flow.py the mean error is ~0.03 bits (bias ~-0.025; batch 128 gives
#: ~-0.018), and a step of many batched critics costs ~25 us per critic on one core
#: against ~0.6 ms for a lone critic (benchmarks/bench_flow.py).
DV_DEFAULTS = dict(hidden=16, batch_size=64, steps=1000, lr=3e-3)


_WEIGHT = (nn.Linear, nn.Conv1d, nn.Conv2d)


_RECURRENT = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention, nn.Transformer, nn.TransformerEncoderLayer,
              nn.TransformerDecoderLayer)


def _not_feedforward(msg: str) -> ValueError:
    return ValueError(
        f"model is not a feedforward chain nifkit can walk: {msg}. flow_graph needs a sequence of "
        "Linear/Conv1d/Conv2d layers with activations, normalisation, dropout, pooling or flatten "
        "between them (e.g. an nn.Sequential from nifkit.models.mlp or small_cnn); skip connections, "
        "branches, recurrence and attention have no layered flow graph."
    )


def flow_layers(model: nn.Module) -> list[str]:
    """Names of the Linear/Conv layers of a feedforward ``model``, in data-flow order:
    the weight layers whose weights are the flow graph's edges (its nodes are named by
    each layer's units, :func:`flow_nodes`).

    The model is walked by the one walker (:func:`nifkit.models.walk`, a ``torch.fx``
    trace); it must be a chain (every operation reads exactly one tensor and feeds
    exactly one), built from Linear/Conv1d/Conv2d layers and elementwise,
    normalisation, dropout, pooling or flatten steps. Anything else raises
    ``ValueError`` (not feedforward: skip connections, branches, recurrent or attention
    modules, a module called twice) or ``TypeError`` (not a module, or not traceable).
    """
    return _flow_walk(model).names


def flow_nodes(model: nn.Module) -> list[str]:
    """The flow graph's node layers of ``model``: ``"input"``, then the units name
    (:attr:`nifkit.models.walk.WalkedLayer.units`, the one neuron vocabulary of every
    chapter) of each layer of :func:`flow_layers`: ``["input", "act1", "act2",
    "fc_out"]`` for ``mlp([n, h, h, k])``."""
    return [INPUT_LAYER] + [lay.units for lay in _flow_walk(model).layers]


def _flow_walk(model: nn.Module):
    """The walk of a feedforward ``model`` (see :func:`flow_layers` for what is refused)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, m in model.named_modules():
        if isinstance(m, _RECURRENT):
            raise _not_feedforward(f"module {name or '<root>'!r} is a {type(m).__name__} (recurrent/attention)")
    w = walk(model)
    n_inputs = sum(st.kind == "input" for st in w.steps)
    if n_inputs != 1:
        raise _not_feedforward(f"forward() takes {n_inputs} tensor inputs, not one")
    if w.merges:
        raise _not_feedforward(f"operation {w.merges[0]} combines several tensors: a skip connection or merge")
    if w.branches:
        raise _not_feedforward(f"the output of {w.branches[0]} feeds several operations: a branch or skip "
                               "connection")
    for st in w.steps:
        if st.kind == "parameter":
            raise _not_feedforward(f"forward() uses the parameter {st.target!r} directly (functional layer)")
        if st.kind == "weight" and not isinstance(st.module, _WEIGHT):
            raise _not_feedforward(f"module {st.target!r} is a {type(st.module).__name__}, which flow_graph does "
                                   "not know how to pass through")
        if st.kind == "weight" and st.call > 0:
            raise _not_feedforward(f"layer {st.target!r} is applied more than once (weight sharing)")
        if st.kind == "other":
            if st.module is not None:
                raise _not_feedforward(f"module {st.target!r} is a {type(st.module).__name__}, which flow_graph "
                                       "does not know how to pass through")
            raise _not_feedforward(f"operation {st.node!r} ({st.target}) is not elementwise, pooling or reshaping")
    if not w.layers:
        raise _not_feedforward("it has no Linear or Conv layer")
    units = [lay.units for lay in w.layers]
    clash = sorted({u for u in units if units.count(u) > 1 or u == INPUT_LAYER})
    if clash:
        raise _not_feedforward(f"the units of several layers share the name {clash[0]!r} (flow graph nodes need one "
                               "name per layer)")
    return w


def _select_layers(model, weight_names, units, layers):
    """The contiguous run of weight layers the graph covers (``layers=`` names weight
    layers: the edges; a units name gets a hint at its weight layer)."""
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
        if name in units and name not in weight_names:
            w = weight_names[units.index(name)]
            raise ValueError(f"layers: {name!r} names the units after weight layer {w!r}; layers= takes the weight "
                             f"layers whose weights are the edges (the graph's nodes keep the units names). Did you "
                             f"mean {w!r}? Weight layers: {', '.join(weight_names)}")
        module = modules.get(name) if name else None
        if module is not None and name not in weight_names:
            raise ValueError(f"layers: {name!r} is a {type(module).__name__}, not a Linear/Conv layer; "
                             f"flow graph layers are: {', '.join(weight_names)}")
        if name not in weight_names:
            raise unknown_layer_error(name, weight_names, "layers")
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


def _record_activities(model, data, chosen, weight_names, split, max_samples, batch_size, num_threads, device=None):
    """Activities ``(samples, units)`` of every node layer, from one recording."""
    from ..record import record

    modules = dict(model.named_modules())
    i0 = weight_names.index(chosen[0])
    i1 = weight_names.index(chosen[-1])
    # each layer's units are read at the input of the next weight layer; the last layer's
    # units at the model output
    to_record = weight_names[i0:i1 + 2]
    rec = record(model, data, layers=to_record, inputs=True, progress=False, split=split, device=device,
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
    device=None,
    memory_budget: int | None = None,
    num_threads: int | None = None,
    progress=False,
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
    layers : None (all Linear/Conv layers) or consecutive weight layer names (the
        edges, e.g. ``["fc2", "fc_out"]``); the graph then starts at the input of the
        first one (node layer ``act1`` in an ``mlp``).
    max_samples, batch_size : how much data and how it is batched through the model.
    dv_options : options for :func:`nifkit.info.dv_mi_pairs` (over :data:`DV_DEFAULTS`).
    ksg_k : neighbours of the KSG estimator.
    device : where to record and count (the binned estimator's all-pairs counts and the
        recording and the DV critics run there; the Gaussian and KSG estimators run on the CPU).
    num_threads : torch CPU threads for recording and estimation (None: 1 on the CPU,
        restored after; see :class:`nifkit.runtime.cpu_threads`: on a shared machine
        one thread is often several times faster for these small matrices).
    feature_names, image_shape : labels of the input nodes and, for images, their
        ``(H, W)`` (taken from a ``Dataset`` when not given).

    Returns a :class:`FlowGraph`: nodes named by the one walker's units names
    (``"input:j"``, ``"act1:j"``, ..., the output layer's units), edges by their weight
    layer (``fg.weight_layers``, edge attribute ``weight_layer``).
    """
    t0 = time.perf_counter()
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "binned":
        Binner(n_bins=n_bins, binning=binning, bin_range=bin_range).validate()
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
    fw = _flow_walk(model)
    weight_names = fw.names
    units = [lay.units for lay in fw.layers]
    chosen = _select_layers(model, weight_names, units, layers)
    modules = dict(model.named_modules())
    acts, _ = _record_activities(model, data, chosen, weight_names, split, max_samples, batch_size, num_threads,
                                 device)
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
    # nodes: the inputs (or the units the first chosen layer reads), then each layer's units
    names = [INPUT_LAYER if i0 == 0 else units[i0 - 1]] + units[i0:i0 + len(chosen)]
    sizes = [a.shape[1] for a in acts]
    weights, connected = [], []
    for l, name in enumerate(chosen):
        w, c = _abs_weights(modules[name], sizes[l])
        weights.append(w)
        connected.append(c)

    from ..config import DEFAULT_MEMORY_BUDGET

    budget = memory_budget or DEFAULT_MEMORY_BUDGET
    from ..runtime import cpu_threads

    with cpu_threads(num_threads):
        mi, pv = _estimate(estimator, acts, connected, n_bins=n_bins, binning=binning, bin_range=bin_range,
                           correction=correction, significance=significance, n_shuffles=n_shuffles, seed=seed,
                           dv_options=dv_options, ksg_k=ksg_k, budget=budget, progress=progress, device=device)
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
                     flows=flows, p_values=pv, estimator=estimator, n_samples=int(n), weight_layers=list(chosen),
                     meta=meta)


def _per_layer_pair(L, perms, pv, progress, estimate):
    """MI of every adjacent layer pair ``estimate(l, None)``, and with shuffles the p-values
    against ``estimate(l, perm)`` for each permutation; one progress step per call."""
    mi = []
    with Progress(progress, L * (1 + len(perms)), "flow edges", unit="layer pair") as bar:
        for l in range(L):  # loop over layer pairs (each call is all pairs at once)
            mi.append(estimate(l, None))
            bar.update()
            null = []
            for p in perms:  # loop over shuffles
                null.append(estimate(l, p))
                bar.update()
            if perms:
                pv.append(p_values(mi[-1], null))
    return mi, pv


def _estimate(estimator, acts, connected, *, n_bins, binning, bin_range, correction, significance, n_shuffles,
              seed, dv_options, ksg_k, budget, progress, device=None):
    """MI matrices (NaN where not estimated) and p-values per adjacent layer pair."""
    L = len(connected)
    n = len(acts[0])
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(n_shuffles)] if significance is not None else []
    mi, pv = [], None if significance is None else []

    if estimator == "binned":
        codes = [Binner(n_bins=n_bins, binning=binning, bin_range=bin_range).fit_transform(a) for a in acts]
        kw = dict(n_bins=n_bins, correction=correction, memory_budget=budget, device=device)
        return _per_layer_pair(L, perms, pv, progress,
                               lambda l, p: pairwise_mi(codes[l], codes[l + 1] if p is None else codes[l + 1][p], **kw))
    if estimator == "gaussian":
        return _per_layer_pair(L, perms, pv, progress,
                               lambda l, p: gaussian_mi_pairs(acts[l], acts[l + 1] if p is None else acts[l + 1][p]))
    if estimator == "ksg":
        # blocks of a few MiB stay in cache: fastest (4 MiB ~1.6x faster than 64 MiB)
        ksg_budget = min(budget // 2, 2 * 2**20)

        def ksg(l, p):
            src, dst = _edges_of(connected[l])
            full = np.full(connected[l].shape, np.nan)
            full[src, dst] = ksg_mi_pairs(acts[l], acts[l + 1] if p is None else acts[l + 1][p],
                                          np.stack([src, dst], 1), k=ksg_k, seed=seed, memory_budget=ksg_budget)
            return full

        return _per_layer_pair(L, perms, pv, progress, ksg)

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
    opts = {**DV_DEFAULTS, "seed": seed, "progress": progress, "device": device, **(dv_options or {})}
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
            p[src, dst] = p_values(obs_flat[sl], [nf[sl] for nf in null_flat])
            pv.append(p)
    return mi, pv
