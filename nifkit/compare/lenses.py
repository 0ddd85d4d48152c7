r"""The five lenses, one score per hidden neuron each, and the lens registry.

Every built-in lens calls its chapter's **own** public functions and only reduces their
output to one number per hidden neuron (the reductions are the capstone's choices,
documented here and labelled in the chapter):

``nif`` (chapter 1, :func:`nifkit.nif.flow_graph`)
    ``flow`` = information flowing through the neuron, the sum of the flows ``f_ij`` of
    its incoming and outgoing edges, :math:`\sum_i f_{ij} + \sum_k f_{jk}` (bits);
    ``betweenness`` = :func:`nifkit.nif.betweenness` of the neuron. Per class: the flow
    from the neuron to output ``t`` (last hidden layer only).
``conductance`` (chapter 2, :func:`nifkit.conductance.layer_conductance`)
    ``abs_conductance`` = :math:`\frac1N\sum_n |\mathrm{Cond}_j(x_n)|` toward the true
    class's output. Per class: the same mean over the samples of class ``t``.
``relay`` (chapter 3, :func:`nifkit.relay.module_search` and
    :func:`nifkit.relay.aggregated_relay`)
    ``relay`` = the neuron's aggregated relay information summed over the classes (bits);
    the hidden layer is binarised with 1-D 2-means as in the chapter. Per class: the
    greedy step at which the neuron left the set (the last ``h`` neurons left are the
    chapter's module of size ``h``, ``ModuleSearch.set_at(t, h)``); the aggregated
    matrix itself is in ``raw``.
``ablation`` (chapter 4, :func:`nifkit.ablation.neuron_measures`,
    :func:`nifkit.ablation.single_neuron_importance`)
    ``mi`` = :math:`I(T;Y)`, ``entropy`` = :math:`H(T)`, ``selectivity`` (KL, max),
    ``knockout`` = accuracy drop of the neuron alone set to 0. Per class: the KL profile
    :math:`D_{KL}(P_{T|y=t}\|P_T)`.
``ei`` (chapter 5, :func:`nifkit.ei.layer_ei` on each layer of
    :func:`nifkit.ei.measured_layers`)
    ``ei`` = the edge EI of the edges touching the neuron, :math:`\sum_i EI_{ij} +
    \sum_k EI_{jk}`, each edge less the chapter's plug-in bias of an independent edge
    (``LayerEI.bias_parts / n_edges``, so layers of different fan-in compare); ``sensitivity`` likewise with edge sensitivities. Inputs of the
    first layer are noised over the data's range, those of later layers over the range
    of the recorded activations; outputs are binned over their reachable range
    (``out_range="fit"``). Per class: the edge EI from the neuron to output ``t``.

A lens is a function ``(model, data) -> scores`` where ``data`` is the ``(X, y)`` pair
of tensors, and ``scores`` is one number per hidden neuron in the order of
:func:`hidden_neurons` (an array), a dict ``{address: value}`` (addresses as
``"act1:3"`` or :class:`~nifkit.models.Neuron`), a dict ``{layer: array}``, or a
:class:`LensScores`. :func:`register_lens` adds one to the registry.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..models.walk import Neuron, walk
from ..record import record

__all__ = ["LensScores", "LENSES", "register_lens", "unregister_lens", "get_lens", "lens_names", "hidden_neurons",
           "hidden_layout", "validate_scores", "BUILTIN"]


@dataclass
class LensScores:
    """A lens's output: ``columns[name]`` one value per hidden neuron, ``primary`` the
    column that ranks neurons, ``per_class`` an optional ``(classes, neurons)`` matrix
    (NaN where undefined), ``notes``."""

    columns: dict
    primary: str
    per_class: np.ndarray | None = None
    notes: list = field(default_factory=list)
    raw: object = None  # the chapter's own result object(s), for checks

    @property
    def score(self) -> np.ndarray:
        return self.columns[self.primary]


@dataclass
class _Lens:
    name: str
    fn: Callable
    description: str
    builtin: bool


LENSES: dict = {}


def hidden_layout(model) -> list:
    """``[(units name, weight layer name, next weight layer name)]`` of every hidden layer
    (the one walker's :meth:`~nifkit.models.walk.ModelWalk.hidden`); ValueError without one."""
    w = walk(model)
    if len(w.layers) < 2:
        raise ValueError("model has no hidden layer: the lenses score hidden neurons, so it needs at least two "
                         f"Linear/Conv layers (found {len(w.layers)}: {w.names}). Compare a network with a hidden "
                         "layer, e.g. nifkit.models.mlp([n_in, 20, n_out]).")
    return [(lay.units, lay.name, nxt.name) for lay, nxt in zip(w.layers[:-1], w.layers[1:])]


def hidden_neurons(model, X=None) -> list:
    """The shared addresses (:class:`~nifkit.models.Neuron`) of every hidden neuron, in the
    order every lens returns its scores: layer by layer in data-flow order, units in
    index order. The unit counts are read from the weight layers (``out_features`` /
    ``out_channels``)."""
    w = walk(model)
    hidden_layout(model)
    out = []
    for lay in w.layers[:-1]:
        m = lay.module
        n = getattr(m, "out_features", None) or getattr(m, "out_channels")
        out += [Neuron(lay.units, j) for j in range(int(n))]
    return out


def register_lens(name: str, fn: Callable, description: str = "", *, replace: bool = False) -> None:
    """Add a lens ``fn(model, data) -> scores`` under ``name`` (see the module docstring
    for what ``scores`` may be). ``replace=True`` overwrites an existing lens."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be a function (model, data) -> scores per hidden neuron, got {type(fn).__name__}")
    if name in LENSES and not replace:
        raise ValueError(f"a lens named {name!r} exists already; pick another name or pass replace=True")
    LENSES[name] = _Lens(name, fn, description, builtin=False)


def unregister_lens(name: str) -> None:
    if name not in LENSES:
        raise ValueError(f"no lens named {name!r}")
    if LENSES[name].builtin:
        raise ValueError(f"{name!r} is a built-in lens and cannot be removed")
    del LENSES[name]


def lens_names() -> list:
    return list(LENSES)


def get_lens(name):
    """The registered lens ``name``; an unknown name raises ValueError with "did you mean"."""
    if callable(name):
        return _Lens(getattr(name, "__name__", "custom"), name, "", builtin=False)
    if not isinstance(name, str):
        raise TypeError(f"a lens is a registered name or a function (model, data) -> scores, got {name!r}")
    if name not in LENSES:
        close = difflib.get_close_matches(name, list(LENSES), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"lenses: unknown lens {name!r}.{hint} Registered lenses: {', '.join(LENSES)}; "
                         "add one with nifkit.compare.register_lens(name, fn).")
    return LENSES[name]


def validate_scores(out, neurons: list, lens: str = "lens", n_classes: int | None = None) -> LensScores:
    """Turn a lens's output into :class:`LensScores`, checking it has exactly one finite
    number per hidden neuron; anything else is a ValueError/TypeError naming the fix."""
    n = len(neurons)
    layers = list(dict.fromkeys(a.layer for a in neurons))
    fix = (f"return one number per hidden neuron: an array of shape ({n},) in the order of "
           f"nifkit.compare.hidden_neurons(model) ({', '.join(f'{lay}: {sum(a.layer == lay for a in neurons)}' for lay in layers)}), "
           "a dict {'layer:index': value} or a dict {layer: array}")
    if isinstance(out, LensScores):
        cols = {k: _vector(v, n, lens, k, fix) for k, v in out.columns.items()}
        if out.primary not in cols:
            raise ValueError(f"lens {lens!r}: primary column {out.primary!r} is not among {list(cols)}")
        pc = out.per_class
        if pc is not None:
            pc = np.asarray(pc, dtype=np.float64)
            if pc.ndim != 2 or pc.shape[1] != n:
                raise ValueError(f"lens {lens!r}: per_class must be (classes, {n}), got shape {pc.shape}")
        return LensScores(cols, out.primary, pc, list(out.notes), out.raw)
    if isinstance(out, dict):
        keys = list(out)
        if keys and all(isinstance(k, str) and k in layers for k in keys):
            missing = [lay for lay in layers if lay not in out]
            if missing:
                raise ValueError(f"lens {lens!r}: no scores for layer(s) {missing}; {fix}")
            parts = []
            for lay in layers:
                v = np.asarray(out[lay].detach().cpu() if isinstance(out[lay], torch.Tensor) else out[lay],
                               dtype=np.float64).reshape(-1)
                want = sum(a.layer == lay for a in neurons)
                if len(v) != want:
                    raise ValueError(f"lens {lens!r}: layer {lay!r} has {want} neurons but the lens returned "
                                     f"{len(v)} values for it; {fix}")
                parts.append(v)
            vec = np.concatenate(parts)
        else:
            index = {str(a): i for i, a in enumerate(neurons)}
            vec = np.full(n, np.nan)
            for k, v in out.items():
                key = str(Neuron.parse(k)) if isinstance(k, (str, tuple)) else str(k)
                if key not in index:
                    close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.5)
                    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(f"lens {lens!r}: unknown neuron {k!r}.{hint} {fix}")
                vec[index[key]] = float(v)
            if np.isnan(vec).any():
                miss = [str(neurons[i]) for i in np.flatnonzero(np.isnan(vec))[:5]]
                raise ValueError(f"lens {lens!r}: no score for neuron(s) {miss}...; {fix}")
        return LensScores({"score": _vector(vec, n, lens, "score", fix)}, "score")
    return LensScores({"score": _vector(out, n, lens, "score", fix)}, "score")


def _vector(v, n, lens, col, fix) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if v is None or isinstance(v, (str, bytes)):
        raise TypeError(f"lens {lens!r} returned {type(v).__name__}; {fix}")
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lens {lens!r} returned {type(v).__name__}, not numbers ({exc}); {fix}") from None
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"lens {lens!r} (column {col!r}) returned shape {arr.shape}, expected ({n},); {fix}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"lens {lens!r} (column {col!r}) returned NaN or inf for "
                         f"{int((~np.isfinite(arr)).sum())} neuron(s); return finite scores")
    return arr


# ======================================================================================
# The five built-in lenses
# ======================================================================================
def _acts(model, X, names, device=None):
    rec = record(model, X, names, progress=False, batch_size=4096, device=device)
    return {n: rec.flat(n).float() for n in names}


def lens_nif(model, data, *, n_bins: int = 8, binning: str = "quantile", seed: int = 0, **kw) -> LensScores:
    from ..nif import flow_graph

    X, y = data
    layout = hidden_layout(model)
    fg = flow_graph(model, X, n_bins=n_bins, binning=binning, seed=seed, **kw)
    flow, per_class = [], []
    for units, _, _ in layout:  # the flow graph's node layers are the walker's units names
        d = fg.layers.index(units)
        flow.append(fg.flows[d - 1].sum(0) + fg.flows[d].sum(1))  # in + out
        last = d + 1 == len(fg.layers) - 1
        per_class.append(fg.flows[d].T if last else np.full((fg.sizes[-1], fg.sizes[d]), np.nan))
    bt = fg.betweenness()  # keyed by node id = the Neuron address "act1:3" every lens uses
    betw = np.array([bt[str(n)] for n in hidden_neurons(model)])
    return LensScores({"flow": np.concatenate(flow), "betweenness": betw}, "flow",
                      np.concatenate(per_class, axis=1), raw=fg,
                      notes=[f"NIF: binned MI ({n_bins} {binning} bins) on {fg.n_samples} samples"])


def lens_conductance(model, data, *, steps: int = 16, method: str = "riemann_trapezoid", batch_size: int = 256,
                     **kw) -> LensScores:
    from ..conductance import layer_conductance

    X, y = data
    names = [u for u, _, _ in hidden_layout(model)]
    # batch_size=256: the plan sized from a 256 MiB budget (the default until 2026-12) put ~2,900 of the capstone's
    # MNIST inputs in one chunk; 256 at a time was 2.2x faster (0.27 s vs 0.60 s, AMD EPYC) and
    # peaks ~80 MiB above the baseline instead of ~315 MiB
    cond = layer_conductance(model, X, names, target="true", labels=y, steps=steps, method=method,
                             batch_size=batch_size, **kw)
    cols, per_class = [], []
    y_np = np.asarray(y)
    C = int(cond.f_input.shape[0] and max(int(y_np.max()) + 1, 1))
    onehot = np.eye(C)[y_np]  # (samples, classes)
    cnt = np.maximum(onehot.sum(0), 1)[:, None]
    for n in names:
        a = np.abs(cond.flat(n, reduce="channel")).astype(np.float64)
        cols.append(a.mean(0))
        per_class.append(onehot.T @ a / cnt)
    gap = float(np.abs(cond.gap).max())
    return LensScores({"abs_conductance": np.concatenate(cols)}, "abs_conductance", np.concatenate(per_class, 1),
                      raw=cond, notes=[f"conductance: {steps} steps {method}, baseline zeros, target true class; "
                                       f"max |completeness gap| {gap:.2g}"])


def lens_relay(model, data, *, binarization: str = "kmeans2", device=None, memory_budget=None, **kw) -> LensScores:
    from ..info import binarize
    from ..relay import aggregated_relay, module_search

    X, y = data
    names = [u for u, _, _ in hidden_layout(model)]
    rec = record(model, X, names, progress=False, batch_size=4096, device=device)
    acts = {n: rec.flat(n).float() for n in names}
    pred = rec.outputs.argmax(1).cpu().numpy()  # the search itself counts on the CPU (memory_budget: unused)
    cols, per_class, raws = [], [], {}
    for n in names:
        codes = binarize(acts[n].numpy(), binarization)
        search = module_search(codes, np.asarray(y), pred, **kw)
        A = aggregated_relay(search)
        raws[n] = search
        cols.append(A.sum(0))
        full = np.full((int(np.asarray(y).max()) + 1, A.shape[1]), np.nan)
        step = np.empty_like(search.order)  # the greedy step at which each neuron left the set
        np.put_along_axis(step, search.order, np.arange(search.order.shape[1])[None], axis=1)
        full[search.classes] = step
        per_class.append(full)
    return LensScores({"relay": np.concatenate(cols)}, "relay", np.concatenate(per_class, 1), raw=raws,
                      notes=[f"relay: hidden layer binarised by {binarization}; aggregated relay (drop) summed "
                             "over classes (a reconstruction, see chapter 3)"])


def lens_ablation(model, data, *, n_bins: int = 8, binning: str = "minmax", device=None, memory_budget=None,
                  **kw) -> LensScores:
    from ..ablation import neuron_measures, single_neuron_importance

    X, y = data
    names = [u for u, _, _ in hidden_layout(model)]
    acts = _acts(model, X, names, device)
    heavy = {k: v for k, v in (("device", device), ("memory_budget", memory_budget)) if v is not None}
    nm = neuron_measures(acts, y, n_bins=n_bins, binning=binning, **heavy, **kw)
    imp = single_neuron_importance(model, X, y, layers=names, **heavy)
    cols = {k: np.concatenate([nm[n].get(k) for n in names]) for k in ("mi", "entropy", "selectivity")}
    cols["knockout"] = np.concatenate([imp[n].accuracy_drop for n in names])
    per_class = np.concatenate([nm[n].kl_profile.T for n in names], 1)
    return LensScores(cols, "mi", per_class, raw=(nm, imp),
                      notes=[f"ablation: {n_bins} {binning} bins per neuron; knockout = accuracy drop, unit set to 0"])


def lens_ei(model, data, *, n_bins: int = 8, n_samples: int = 5000, n_sensitivity_samples: int = 1000, seed: int = 0,
            device=None, **kw) -> LensScores:
    from ..ei import layer_ei, measured_layers

    X, y = data
    layout = hidden_layout(model)
    found = measured_layers(model)
    acts = _acts(model, X, [u for u, _, _ in layout], device)
    ranges = {layout[0][1]: (float(X.min()), float(X.max()))}
    for (units, _, nxt) in layout:
        a = acts[units]
        lo, hi = float(a.min()), float(a.max())
        ranges[nxt] = (lo, hi if hi > lo else lo + 1.0)
    res = {}
    for name, (mod, act, shape) in found.items():  # loop over layers
        if name not in ranges:
            continue
        res[name] = layer_ei(mod, act, input_shape=shape, name=name, in_range=ranges[name], out_range="fit",
                             n_bins=n_bins, n_samples=n_samples, n_sensitivity_samples=n_sensitivity_samples,
                             measures=("ei_parts", "sensitivity"), seed=seed, device=device, **kw)
    ei, sens, per_class = [], [], []

    def debiased(r):  # the chapter's plug-in bias of one independent edge, removed from every edge
        mask = np.ones_like(r.edge_ei) if r.edge_mask is None else np.asarray(r.edge_mask, dtype=np.float64)
        return r.edge_ei - (r.bias_parts / max(r.n_edges, 1)) * mask

    for i, (units, wname, nxt) in enumerate(layout):
        a, b = res[wname], res[nxt]
        ei.append(debiased(a).sum(0) + debiased(b).sum(1))
        sens.append(a.edge_sensitivity.sum(0) + b.edge_sensitivity.sum(1))
        per_class.append(b.edge_ei.T if i == len(layout) - 1 else np.full((b.n_outputs, a.n_outputs), np.nan))
    C = per_class[-1].shape[0]
    per_class = [p if p.shape[0] == C else np.full((C, p.shape[1]), np.nan) for p in per_class]
    return LensScores({"ei": np.concatenate(ei), "sensitivity": np.concatenate(sens)}, "ei",
                      np.concatenate(per_class, 1), raw=res,
                      notes=[f"EI: edge EI_parts ({n_samples} noise samples) and sensitivity ({n_sensitivity_samples} "
                             f"per input), {n_bins} bins, out_range='fit'"])


BUILTIN = {
    "nif": (lens_nif, "NIF: information flow through the neuron (and betweenness), chapter 1"),
    "conductance": (lens_conductance, "mean |conductance| toward the true class, chapter 2"),
    "relay": (lens_relay, "aggregated relay information, chapter 3"),
    "ablation": (lens_ablation, "I(T;Y), H(T), selectivity, single-neuron knockout, chapter 4"),
    "ei": (lens_ei, "edge EI and sensitivity of the node, chapter 5"),
}
for _name, (_fn, _desc) in BUILTIN.items():
    LENSES[_name] = _Lens(_name, _fn, _desc, builtin=True)
