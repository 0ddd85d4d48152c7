"""EI of whole models (layers found by the one walker), through training (via
:mod:`nifkit.dynamics`), and edge ablation by EI deciles (via :mod:`nifkit.intervene`).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..dynamics import over_snapshots
from ..intervene import Knockouts, evaluate_edge_knockouts
from ..runtime import check_seed
from .measure import ModelEI, layer_ei, plane_kind
from .network import plan_layers
from ..results import Result
from .._validation import checked

__all__ = [
    "measured_layers", "model_ei", "CausalHistory", "history_from_results", "ei_over_training", "EdgeAblation",
    "edge_ablation",
]


def measured_layers(model: nn.Module, input_shape=None, conv_inputs: str = "auto") -> "OrderedDict[str, tuple]":
    """The layers :func:`model_ei` measures: name -> ``(module, activation, conv_input_shape)``.

    Found by the one walker (:func:`nifkit.models.walk`), which follows the **data
    flow** of any network it traces (chains, skip connections, branches): each
    ``nn.Linear``/``nn.Conv2d`` is a layer, and its activation is the elementwise
    activation its output really goes through - a module (also one shared by several
    layers) or a function such as ``torch.sigmoid``. Dropout, pooling and flattening
    between layers are fine (the next layer's input is set by intervention anyway);
    BatchNorm between a layer and its activation is folded into a copy of the layer in
    eval mode (``module`` is then that copy); an output that enters a skip addition is
    measured as the layer's own output. Layers EI cannot measure are left out (see
    :mod:`nifkit.ei.network`; :func:`model_ei` lists them in ``ModelEI.skipped``).
    ``input_shape`` (of one model input, e.g. ``(1, 5, 5)``) lets convolutions be
    measured on their whole feature map (``conv_inputs="auto"`` or ``"map"``); without
    it, or with ``conv_inputs="field"``, each is measured on one receptive field.
    """
    planned, _, _, _ = plan_layers(model, input_shape, conv_inputs)
    return OrderedDict((n, (p.module, p.activation, p.conv_shape)) for n, p in planned.items())


@checked
def model_ei(model: nn.Module, *, layers=None, input_shape=None, conv_inputs: str = "auto", measures="all",
             device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None, progress=False,
             **kwargs) -> ModelEI:
    """:func:`layer_ei` of every Linear/Conv2d layer of any network the walker traces
    (chains, residual networks: see :func:`measured_layers` and :mod:`nifkit.ei.network`).

    ``layers``: weight-layer names to measure (default: all, in data-flow order); a layer
    EI cannot measure (e.g. a LayerNorm before its activation, an unknown operation after
    it) is listed in ``result.skipped`` with the reason, and the others still run.
    ``input_shape`` (of one model input): one forward pass records the input shape each
    weight layer sees (``result.input_shapes``); convolutions are then measured on their
    whole feature map unless ``conv_inputs="field"`` (one receptive field, the default
    without ``input_shape``: ``C x kh x kw`` inputs, ``out_channels`` outputs, as deep-ei).
    ``measures="all"`` measures vector EI where the layer is small enough and reports it
    as NaN (with a note) where it is not; pass ``measures=("ei", ...)`` to insist.
    ``device``, ``memory_budget``, ``num_threads`` and every other keyword go to
    :func:`layer_ei` (bins, samples, ranges, seed, ...).
    Each layer gets the same ``seed`` (common random numbers).
    """
    planned, skipped, shapes, w = plan_layers(model, input_shape, conv_inputs)
    names = w.names if layers is None else [layers] if isinstance(layers, str) else list(layers)
    for n in names:
        if n not in planned and n not in skipped:
            mods = dict(model.named_modules())
            what = (f"{n!r} is a {type(mods[n]).__name__}, not a weight layer" if n in mods
                    else f"no layer {n!r} in the model")
            raise KeyError(f"{what}; model_ei measures the weight layers (nn.Linear/nn.Conv2d): {w.names}")
    out, skip = OrderedDict(), OrderedDict()
    for n in names:  # loop over layers
        if n in skipped:
            skip[n] = skipped[n]
            continue
        p = planned[n]
        out[n] = layer_ei(p.module, p.activation, input_shape=p.conv_shape, name=n, measures=measures,
                          progress=progress, device=device, memory_budget=memory_budget, num_threads=num_threads,
                          **kwargs)
        out[n].notes.extend(p.notes)
    notes = [f"{n} not measured: {r}" for n, r in skip.items()]
    return ModelEI(out, skipped=dict(skip), input_shapes=dict(shapes),
                   settings={"layers": names, "measures": measures, "conv_inputs": conv_inputs, **kwargs}, notes=notes)


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
