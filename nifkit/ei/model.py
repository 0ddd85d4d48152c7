"""EI of whole models (layers found by the one walker), through training (via
:mod:`nifkit.dynamics`), and edge ablation by EI deciles (via :mod:`nifkit.intervene`).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..dynamics import over_snapshots
from ..intervene import Knockouts, evaluate_edge_knockouts
from ..models.hooks import hooks
from ..models.walk import ELEMENTWISE_TYPES, walk
from ..runtime import check_seed
from .measure import ModelEI, layer_ei, plane_kind
from ..results import Result
from .._validation import checked

__all__ = [
    "measured_layers", "model_ei", "CausalHistory", "history_from_results", "ei_over_training", "EdgeAblation",
    "edge_ablation",
]


def measured_layers(model: nn.Module, input_shape=None) -> "OrderedDict[str, tuple]":
    """The layers :func:`model_ei` measures: name -> ``(module, activation, conv_input_shape)``.

    Found by the one walker (:func:`nifkit.models.walk`), which follows the **data
    flow**: each ``nn.Linear``/``nn.Conv2d`` is a layer, and its activation is the
    elementwise activation its output really goes through - a module (also one shared
    by several layers) or a function such as ``torch.sigmoid``. Dropout between them is
    fine; pooling and flattening between layers too (the next layer's input is set by
    intervention anyway). A normalisation between a layer and its activation, any other
    module with parameters, a layer used twice, or a skip connection is an error: each
    would change what a layer computes. ``input_shape`` (of one model input, e.g.
    ``(1, 5, 5)``) lets convolutions be measured on their whole feature map; without it
    each is measured on one receptive field.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    w = walk(model)
    w.require_chain("model_ei")
    for st in w.steps:
        if st.module is None or st.kind in ("activation", "pass", "reshape"):
            continue
        if st.kind == "weight" and isinstance(st.module, (nn.Linear, nn.Conv2d)):
            continue
        if st.kind == "norm" or any(True for _ in st.module.parameters(recurse=False)):
            raise TypeError(f"unsupported layer type {type(st.module).__name__} at {st.target!r}: model_ei measures "
                            "nn.Linear and nn.Conv2d layers (with elementwise activations) of feedforward models. "
                            "Measure the other layers one by one with layer_ei(weight_matrix, activation) if they "
                            "are linear.")
    w.require_not_reused([lay.name for lay in w.layers], "model_ei")
    conv_shapes = {}
    convs = [lay.name for lay in w.layers if isinstance(lay.module, nn.Conv2d)]
    if input_shape is not None and convs:
        def shape_of(n):
            return lambda mod, inp, out: conv_shapes.__setitem__(n, tuple(inp[0].shape[1:]))

        p = next(model.parameters())
        with hooks(model, {n: shape_of(n) for n in convs}), torch.no_grad():
            model(torch.zeros((1, *tuple(input_shape)), dtype=p.dtype, device=p.device))
    out = OrderedDict()
    for lay in w.layers:
        act = lay.activation
        if isinstance(act, nn.Module) and not isinstance(act, ELEMENTWISE_TYPES):
            act = None
        out[lay.name] = (lay.module, act, conv_shapes.get(lay.name))
    if not out:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to measure")
    return out


@checked
def model_ei(model: nn.Module, *, layers=None, input_shape=None, measures="all", device=None,
             memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None, progress=False,
             **kwargs) -> ModelEI:
    """:func:`layer_ei` of every Linear/Conv2d layer of a feedforward model.

    ``layers``: names to measure (default: all, see :func:`measured_layers`).
    ``measures="all"`` measures vector EI where the layer is small enough and reports it
    as NaN (with a note) where it is not; pass ``measures=("ei", ...)`` to insist.
    ``device``, ``memory_budget``, ``num_threads`` and every other keyword go to
    :func:`layer_ei` (bins, samples, ranges, seed, ...).
    Each layer gets the same ``seed`` (common random numbers).
    """
    found = measured_layers(model, input_shape)
    names = list(found) if layers is None else [layers] if isinstance(layers, str) else list(layers)
    for n in names:
        if n not in found:
            raise KeyError(f"no measurable layer {n!r}; measurable layers: {list(found)}")
    out = OrderedDict()
    for n in names:  # loop over layers
        mod, act, shape = found[n]
        out[n] = layer_ei(mod, act, input_shape=shape, name=n, measures=measures, progress=progress, device=device,
                          memory_budget=memory_budget, num_threads=num_threads, **kwargs)
    return ModelEI(out, settings={"layers": names, "measures": measures, **kwargs})


@dataclass(repr=False)
class CausalHistory(Result):
    """Every measured layer's EI measures at each snapshot epoch.

    Arrays are ``(n_epochs, n_layers)``; ``results[i]`` is the :class:`ModelEI` at
    ``epochs[i]``. ``history`` is the training history (loss and accuracy per epoch).
    """

    epochs: np.ndarray
    layers: list
    ei: np.ndarray
    ei_parts: np.ndarray
    sensitivity: np.ndarray
    degeneracy: np.ndarray
    degeneracy_parts: np.ndarray
    phi: np.ndarray
    results: list
    history: dict = field(default_factory=dict)

    repr_skip = ("settings", "notes", "results")
    plotter = "nifkit.ei.plots:plot_ei_over_training"

    def table(self) -> list[dict]:
        """One row per epoch and layer: the measures of :meth:`ModelEI.table`."""
        return [{"epoch": int(e), **row} for e, r in zip(self.epochs.tolist(), self.results) for row in r.table()]

    def at(self, epoch: int) -> ModelEI:
        idx = np.flatnonzero(self.epochs == epoch)
        if not len(idx):
            raise KeyError(f"no measurement at epoch {epoch}; measured epochs: {self.epochs.tolist()}")
        return self.results[int(idx[0])]

    def plane(self, which: str = "auto") -> tuple:
        """``(sensitivity, degeneracy, which)`` arrays ``(n_epochs, n_layers)``."""
        which = plane_kind(which, [lay for r in self.results for lay in r])
        return self.sensitivity, (self.degeneracy if which == "ei" else self.degeneracy_parts), which


@checked
def history_from_results(epochs, results, history=None, settings=None) -> CausalHistory:
    layers = results[0].names

    def arr(f):
        return np.array([[getattr(r[n], f) for n in layers] for r in results], dtype=float)

    return CausalHistory(np.asarray(epochs, dtype=int), layers, arr("ei"), arr("ei_parts"), arr("sensitivity"),
                         arr("degeneracy"), arr("degeneracy_parts"), arr("phi"), list(results),
                         dict(history or {}), settings=dict(settings or {}))


@checked
def ei_over_training(train_result, *, epochs=None, every: int | None = None, layers=None, progress=False,
                     **kwargs) -> CausalHistory:
    """:func:`model_ei` at the training snapshots of ``train_result``
    (a :class:`nifkit.models.TrainResult`).

    ``epochs``: which snapshot epochs (default: all); ``every=k`` keeps the snapshots
    whose epoch is a multiple of ``k``. Other keywords go to :func:`model_ei`. The same
    noise seed is used at every epoch, so changes over training are not sampling noise.
    """
    traj = over_snapshots(train_result, lambda m: model_ei(m, layers=layers, **kwargs), epochs=epochs,
                          every=every, progress=progress, what="EI over training")
    return history_from_results(traj.epochs, traj.results, traj.history, kwargs)


@dataclass(repr=False)
class EdgeAblation(Result):
    """Accuracy after zeroing one decile (group) of edges at a time.

    ``accuracy[score][k]``: accuracy with group ``k`` of edges zeroed in every ablated
    layer, groups ranked within each layer by the score (0 = lowest). ``baseline``: no
    ablation.
    """

    groups: np.ndarray
    accuracy: dict
    baseline: float
    layers: list
    n_groups: int

    plotter = "nifkit.ei.plots:plot_edge_ablation"

    def table(self) -> list[dict]:
        """One row per group of edges: the accuracy with it zeroed, for every score."""
        return [{"group": int(g), **{f"accuracy by {k}": float(v[i]) for k, v in self.accuracy.items()}}
                for i, g in enumerate(np.asarray(self.groups).tolist())]


def _group_masks(score: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n_groups, *score.shape)`` bool: group k holds the edges of rank decile k."""
    flat = score.reshape(-1)
    ranks = np.empty(len(flat), dtype=np.int64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(len(flat))
    group = ranks * n_groups // len(flat)
    return (group[None, :] == np.arange(n_groups)[:, None]).reshape(n_groups, *score.shape)


@checked
def edge_ablation(model: nn.Module, data, measures: ModelEI, *, layers=None, n_groups: int = 10,
                  scores=("ei", "weight"), seed: int = 0, split: str = "test", device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  num_threads: int | None = None) -> EdgeAblation:
    """Zero the edges of one decile at a time and measure accuracy on labelled ``data``
    (``(X, y)``, a Dataset's ``split``, a DataLoader of ``(x, y)``).

    The model runs in eval mode (Dropout off, BatchNorm statistics untouched) and is
    restored; all groups of one score are evaluated in one batch
    (:func:`nifkit.intervene.evaluate_edge_knockouts`); labels are checked.

    Deciles are taken within each layer of ``layers`` (default: every Linear layer in
    ``measures``) by ``"ei"`` (``edge_ei``), ``"sensitivity"`` (``edge_sensitivity``),
    ``"weight"`` (``|W|``) or ``"random"``; decile ``k`` is zeroed in all those layers
    at once.
    """
    X, y = as_xy(data, split)
    names = measures.names if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive integer, got {n_groups!r}")
    rng = np.random.default_rng(check_seed(seed))
    mods = dict(model.named_modules())
    for n in names:
        measures[n]  # KeyError naming the measured layers
        if not isinstance(mods.get(n), nn.Linear):
            raise TypeError(f"edge ablation needs nn.Linear layers; {n!r} is a {type(mods.get(n)).__name__}")
    lay0 = measures[names[0]]
    if lay0.n_inputs * lay0.n_outputs < n_groups:
        raise ValueError(f"n_groups={n_groups} is more than the {lay0.n_inputs * lay0.n_outputs} edges of "
                         f"{names[0]!r}; use fewer groups")

    def score_of(kind, name):
        lay = measures[name]
        if kind == "ei":
            return lay.edge_ei
        if kind == "sensitivity":
            return lay.edge_sensitivity
        if kind == "weight":
            return np.abs(mods[name].weight.detach().cpu().numpy().T)
        if kind == "random":
            return rng.random((lay.n_inputs, lay.n_outputs))
        raise ValueError(f"scores must be among 'ei', 'sensitivity', 'weight', 'random'; got {kind!r}")

    out = {}
    kw = dict(device=device, memory_budget=memory_budget, num_threads=num_threads)
    baseline = Knockouts(model, (X, y), **kw).base_accuracy  # eval mode, labels checked
    for kind in scores:  # all groups of one score in one batched evaluation
        masks = {n: _group_masks(score_of(kind, n), n_groups) for n in names}
        out[kind] = evaluate_edge_knockouts(model, (X, y), masks, **kw).accuracy
    return EdgeAblation(np.arange(n_groups), out, baseline, names, n_groups,
                        settings={"scores": list(scores), "seed": seed})
