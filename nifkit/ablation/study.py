"""All curves of several layers (:func:`ablation_study`), single-neuron importance and
its rank correlations with the measures, and the areas that summarise curves.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from torch import nn

from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..models.units import hidden_layout, positions_of
from ..record import record
from ..runtime import Progress, with_thread_policy
from .curves import AblationCurve, AblationEngine, ablation_order
from .measures import MEASURES, NeuronMeasures, neuron_measures
from ..results import Result
from .._validation import checked

__all__ = [
    "AblationStudy", "ablation_study", "measure_layers", "SingleImportance", "single_neuron_importance", "ImportanceCorrelation",
    "importance_correlations", "curve_area", "curve_gap", "summarize_study", "compare_studies",
]


@dataclass(repr=False)
class AblationStudy(Result):
    """Curves for several layers, measures, directions and random seeds, plus the
    network-wide curves (``layer == "network"``). Look-ups: :meth:`get`, :meth:`random`."""

    curves: list  # of AblationCurve: per layer (and the network), measure, direction, random seed
    measures: NeuronMeasures
    base_accuracy: float
    layers: list
    value: str = "zero"  # what an ablated unit is set to

    plotter = "nifkit.ablation.plots:plot_ablation_curves"

    def table(self) -> list[dict]:
        """:func:`summarize_study`: per layer and measure the areas and the gap."""
        return summarize_study(self)

    def get(self, layer: str, measure: str, direction: str) -> AblationCurve:
        for c in self.curves:
            if c.layer == layer and c.measure == measure and c.direction == direction:
                return c
        raise KeyError(f"no curve for layer={layer!r}, measure={measure!r}, direction={direction!r}; "
                       f"have layers {sorted({c.layer for c in self.curves})}")

    def random(self, layer: str) -> list:
        return [c for c in self.curves if c.layer == layer and c.direction == "random"]

    def for_layer(self, layer: str) -> list:
        return [c for c in self.curves if c.layer == layer]


@checked
def measure_layers(model: nn.Module, data, layers=None, *, channel_reduce: str = "mean", n_bins: int = 8,
                   binning="minmax", split: str = "train", max_samples: int | None = None, seed: int = 0,
                   device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None,
                   progress=False) -> NeuronMeasures:
    """:func:`neuron_measures` of the layers of units ``layers`` (default and meaning: see
    :func:`nifkit.models.hidden_layout`) recorded over labelled ``data`` (its ``split``). A
    conv layer's unit is a channel, its map reduced by ``channel_reduce``
    (:func:`nifkit.models.reduce_channels`); with ``"positions"`` every position is a
    sample and carries its sample's label. Each layer is binned on its own, so measuring
    layer by layer equals measuring them together."""
    X, y = as_xy(data, split, max_samples=max_samples, seed=seed)
    names = [u for u, _, _ in hidden_layout(model, layers)]
    rec = record(model, X, names, batch_size=4096, device=device, num_threads=num_threads, progress=progress)
    parts, settings = {}, {}
    for n in names:  # loop over layers (with "positions" each has its own number of rows)
        P = positions_of(rec[n]) if channel_reduce == "positions" else 1
        nm = neuron_measures({n: rec.flat(n, per_channel=True, channel_reduce=channel_reduce).float()},
                             y.repeat_interleave(P), n_bins=n_bins, binning=binning, device=device,
                             memory_budget=memory_budget, num_threads=num_threads)
        parts[n], settings = nm[n], nm.settings
    return NeuronMeasures(parts, settings={**settings, "channel_reduce": channel_reduce, "n_samples": len(X)})


@checked
@with_thread_policy
def ablation_study(model: nn.Module, data, measures: NeuronMeasures | None = None, layers=None, *,
                   split: str = "test", channel_reduce: str = "mean", measure_data=None,
                   measure_names: Sequence[str] = MEASURES, directions=("ascending", "descending"),
                   n_random: int = 5, seed: int = 0, value="zero", counts=None, network: bool = False,
                   network_normalize: str | None = None, engine: AblationEngine | None = None,
                   device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None,
                   progress=False, **engine_kw) -> AblationStudy:
    """All curves on labelled ``data`` (``(X, y)``, a Dataset's ``split``, a DataLoader of
    ``(x, y)``): for each layer (default: the layers of ``measures``), each measure and
    direction, plus ``n_random`` random orders (seeds ``seed .. seed+n_random-1``).
    ``network=True`` adds whole-network curves ordered by each measure over all
    ``layers`` (``network_normalize="rank"`` first turns each layer's values into
    within-layer ranks in ``[0, 1]``, the fix for the cross-layer pitfall).

    ``measures=None``: measured here by :func:`measure_layers` on ``measure_data`` (default
    ``data``'s ``"train"`` split, or ``data`` itself when it has no splits) for ``layers``
    (any layers of units, e.g. the blocks of a ResNet), a conv layer's channels reduced by
    ``channel_reduce``. The knockouts always fix a channel's whole map (0, its mean over samples and positions, or
    a value), whatever the reduction that ordered them."""
    if measures is None:
        measures = measure_layers(model, data if measure_data is None else measure_data, layers,
                                  channel_reduce=channel_reduce, device=device, memory_budget=memory_budget,
                                  num_threads=num_threads)
    elif measures.settings.get("channel_reduce", channel_reduce) != channel_reduce:
        raise ValueError(f"measures were computed with channel_reduce={measures.settings['channel_reduce']!r} but "
                         f"channel_reduce={channel_reduce!r}; pass the same reduction (or measures=None)")
    layers = list(measures.names) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    for mname in measure_names:
        if mname not in MEASURES:
            raise ValueError(f"measure {mname!r} unknown; choose from {MEASURES}")
    eng = engine or AblationEngine(model, data, split=split, device=device, memory_budget=memory_budget,
                                   num_threads=num_threads, **engine_kw)
    for n in layers:
        eng.index(n)
        if n not in measures.layers:
            raise ValueError(f"no measures for layer {n!r}; compute neuron_measures(..., layers=[..., {n!r}])")
        if measures[n].n_units != eng.n_units(n):
            raise ValueError(f"measures of {n!r} have {measures[n].n_units} neurons but the model's layer has "
                             f"{eng.n_units(n)}; compute the measures from this model")
    jobs = [(n, mn, d) for n in layers for mn in measure_names for d in directions if d != "random"]
    jobs += [(n, None, "random", seed + r) for n in layers for r in range(n_random)]
    if network:
        jobs += [("network", mn, d) for mn in measure_names for d in directions if d != "random"]
        jobs += [("network", None, "random", seed + r) for r in range(n_random)]
    bar = Progress(progress, total=len(jobs), what="ablation curves", unit="curve")
    curves = []
    try:
        for job in jobs:
            layer, mname, d = job[:3]
            sd = job[3] if len(job) > 3 else None
            if layer != "network":
                vals = measures.get(layer, mname) if mname else np.zeros(eng.n_units(layer))
                order = ablation_order(vals, d, sd)
                curves.append(eng.curve(layer, order, counts, value, measure=mname, direction=d, seed=sd))
            else:
                if mname:
                    vals, li, unit = measures.network(mname, layers)
                    if network_normalize == "rank":
                        vals = _within_layer_rank(vals, li)
                    elif network_normalize is not None:
                        raise ValueError("network_normalize must be None or 'rank'")
                else:
                    vals, li, unit = measures.network("entropy", layers)
                perm = ablation_order(vals, d, sd)
                curves.append(eng.network_curve(layers, li[perm], unit[perm], counts, value,
                                                measure=mname, direction=d, seed=sd))
            bar.update()
    finally:
        bar.close()
    return AblationStudy(curves=curves, measures=measures, base_accuracy=eng.base_accuracy, layers=layers,
                         value=value if isinstance(value, str) else "custom",
                         settings={"n_random": n_random, "seed": seed, "network_normalize": network_normalize})


def _within_layer_rank(vals, li):
    """Each value's rank within its layer scaled to [0, 1] (vectorised: one lexsort)."""
    o = np.lexsort((vals, li))
    rank = np.empty(len(vals))
    sizes = np.bincount(li)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(len(vals)) - starts[li[o]]
    rank[o] = pos / np.maximum(sizes[li[o]] - 1, 1)
    return rank


@dataclass(repr=False)
class SingleImportance(Result):
    """Importance of each neuron alone: ``accuracy_drop[j] = base - acc(without j)``,
    ``loss_increase`` likewise, ``class_drop (units, classes)``."""

    layer: str
    accuracy_drop: np.ndarray
    loss_increase: np.ndarray
    class_drop: np.ndarray
    base_accuracy: float
    value: str = "zero"

    def table(self) -> list[dict]:
        """One row per neuron: the accuracy drop and the loss increase without it."""
        return [{"layer": self.layer, "unit": j, "accuracy_drop": float(a), "loss_increase": float(l)}
                for j, (a, l) in enumerate(zip(self.accuracy_drop.tolist(), self.loss_increase.tolist()))]


@checked
@with_thread_policy
def single_neuron_importance(model_or_engine, data=None, layers=None, value="zero", *, split: str = "test",
                             **engine_kw) -> dict:
    """``{layer: SingleImportance}``: the drop in accuracy (and rise in loss) when one
    neuron alone is ablated, all neurons of a layer in one batched evaluation (a conv
    layer's unit is a channel, its whole map fixed; ``layers``: any layers of units,
    default :func:`nifkit.models.hidden_layout`'s). Pass a
    model and labelled ``data`` (``(X, y)``, a Dataset's ``split``, ...) or an
    :class:`AblationEngine` (then ``data`` is None)."""
    if isinstance(model_or_engine, AblationEngine):
        if data is not None:
            raise ValueError("data was given with an AblationEngine, which holds its data already; pass one of them")
        eng = model_or_engine
    else:
        if data is None:
            raise ValueError("data is missing: pass labelled data, e.g. (X, y), or an AblationEngine")
        eng = AblationEngine(model_or_engine, data, split=split, **engine_kw)
    if layers is None:  # the default layers of units (a chain's hidden layers, a residual network's blocks)
        layers = [u for u, _, _ in hidden_layout(eng.model)]
    layers = [layers] if isinstance(layers, str) else list(layers)
    out = {}
    base_loss = float(F.cross_entropy(eng.base_logits, eng.y).double())
    base_cls = eng.base_class_accuracy
    for n in layers:
        acc, loss, cls = eng.single(n, value)
        out[n] = SingleImportance(layer=n, accuracy_drop=eng.base_accuracy - acc, loss_increase=loss - base_loss,
                                  class_drop=base_cls[None] - cls, base_accuracy=eng.base_accuracy,
                                  value=value if isinstance(value, str) else "custom")
    return out


@dataclass(repr=False)
class ImportanceCorrelation(Result):
    """Spearman rank correlations between single-neuron importance and each measure:
    ``within[layer][measure]`` (and p-values ``p_within``) and ``pooled[measure]`` over
    all neurons of all layers together (the cross-layer comparison)."""

    within: dict
    p_within: dict
    pooled: dict
    p_pooled: dict
    importance: str = "loss_increase"

    def table(self) -> list:
        rows = [{"layer": l, "measure": m, "spearman": r, "p": self.p_within[l][m]}
                for l, d in self.within.items() for m, r in d.items()]
        rows += [{"layer": "all (pooled)", "measure": m, "spearman": r, "p": self.p_pooled[m]}
                 for m, r in self.pooled.items()]
        return rows


def importance_correlations(importance: dict, measures: NeuronMeasures, measure_names=MEASURES,
                            by: str = "loss_increase") -> ImportanceCorrelation:
    """Spearman's rho between importance (``by="loss_increase"`` or
    ``"accuracy_drop"``) and each measure, within each layer and pooled across layers.
    A constant vector (e.g. a layer where no single ablation changes accuracy) gives NaN."""
    from scipy.stats import spearmanr

    if by not in ("loss_increase", "accuracy_drop"):
        raise ValueError("by must be 'loss_increase' or 'accuracy_drop'")
    within, pw, pooled, pp = {}, {}, {}, {}
    imps, vals = [], {m: [] for m in measure_names}

    def rho(a, b):
        if np.ptp(a) == 0 or np.ptp(b) == 0 or len(a) < 3:
            return float("nan"), float("nan")
        r = spearmanr(a, b)
        return float(r.statistic if hasattr(r, "statistic") else r[0]), float(r.pvalue if hasattr(r, "pvalue") else r[1])

    for layer, imp in importance.items():
        v = getattr(imp, by)
        if len(v) != measures[layer].n_units:
            raise ValueError(f"importance of {layer!r} has {len(v)} neurons but the measures {measures[layer].n_units}")
        within[layer], pw[layer] = {}, {}
        imps.append(v)
        for m in measure_names:
            mv = measures.get(layer, m)
            within[layer][m], pw[layer][m] = rho(v, mv)
            vals[m].append(mv)
    all_imp = np.concatenate(imps)
    for m in measure_names:
        pooled[m], pp[m] = rho(all_imp, np.concatenate(vals[m]))
    return ImportanceCorrelation(within=within, p_within=pw, pooled=pooled, p_pooled=pp, importance=by)


def curve_area(curve: AblationCurve) -> float:
    """Area under accuracy against the *fraction* ablated (trapezoid), in ``[0, 1]``."""
    x = curve.fraction
    return float(np.trapezoid(curve.accuracy, x) if hasattr(np, "trapezoid") else np.trapz(curve.accuracy, x))


def curve_gap(ascending: AblationCurve, descending: AblationCurve) -> float:
    """Area between the ascending and descending curves (ascending minus descending,
    over the fraction ablated). Positive: removing low-measure neurons first hurts less,
    so the measure ranks importance; near zero: no better than any order; negative: the
    measure ranks backwards."""
    if not np.array_equal(ascending.counts, descending.counts):
        raise ValueError("the two curves must share their counts")
    return curve_area(ascending) - curve_area(descending)


def summarize_study(study: AblationStudy, name: str = "") -> list:
    """Rows ``{net, layer, measure, gap, area_asc, area_desc, area_random}`` per layer
    (and ``"network"``) and measure."""
    rows = []
    layers = sorted({c.layer for c in study.curves}, key=lambda l: (l == "network", str(l)))
    for layer in layers:
        rnd = study.random(layer)
        area_r = float(np.mean([curve_area(c) for c in rnd])) if rnd else float("nan")
        for m in MEASURES:
            try:
                a, d = study.get(layer, m, "ascending"), study.get(layer, m, "descending")
            except KeyError:
                continue
            rows.append({"net": name, "layer": layer, "measure": m, "gap": curve_gap(a, d),
                         "area_asc": curve_area(a), "area_desc": curve_area(d), "area_random": area_r})
    return rows


def compare_studies(studies: dict) -> list:
    """``summarize_study`` rows of several nets (e.g. ``{"relu": s1, "tanh": s2}``)."""
    return [row for name, s in studies.items() for row in summarize_study(s, name)]
