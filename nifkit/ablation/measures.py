"""Per-neuron measures of the ordered-ablation chapter: H(T), I(T;Y) and KL selectivity
of every neuron, from one label count per layer (:func:`nifkit.info.label_counts`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_n_samples, to_numpy
from ..config import DEFAULT_MEMORY_BUDGET
from ..info import Binner, LabelCounts, entropy_from_counts, kl_profile_from_counts, label_counts, \
    reduce_across_processes
from ..data.arrays import as_float_tensor
from ..data.stream import STREAM_BATCH, all_reduce_extrema, distributed, is_stream
from ..models.units import hidden_layout
from ..record.stream import stream_layers
from ..intervene import check_labels
from ..models.walk import unknown_layer_error, walk
from ..record import record
from ..results import Result
from .._validation import checked

__all__ = [
    "MEASURES", "MEASURE_LABELS", "SELECTIVITY_KINDS", "LayerMeasures", "NeuronMeasures", "measures_from_counts",
    "neuron_measures", "model_neuron_measures", "hidden_layers", "layer_activations",
]


MEASURES = ("entropy", "mi", "selectivity")


MEASURE_LABELS = {"entropy": "H(T)", "mi": "I(T;Y)", "selectivity": "KL selectivity"}


SELECTIVITY_KINDS = ("max", "max_minus_mean", "ratio")


@dataclass(repr=False)
class LayerMeasures(Result):
    """The three quantities for every neuron of one layer, in bits.

    ``entropy``, ``mi``, ``selectivity``: arrays ``(units,)``. ``kl_profile``:
    ``(units, classes)``, entry ``[j, y] = KL(P_{T_j|y} || P_{T_j})`` (plug-in).
    ``class_prior``: ``p(y)`` ``(classes,)``; ``label_entropy``: ``H(Y)``; ``counts``:
    the joint histogram ``(units, bins, classes)``. With ``correction="miller-madow"``
    ``entropy`` and ``mi`` are corrected while the profile (and so the selectivity) is
    plug-in: then ``mi`` = ``kl_profile @ class_prior`` + the Miller-Madow term.
    """

    layer: str
    entropy: np.ndarray
    mi: np.ndarray
    selectivity: np.ndarray
    kl_profile: np.ndarray
    class_prior: np.ndarray
    label_entropy: float
    counts: np.ndarray
    n_bins: int
    correction: str | None = None
    selectivity_kind: str = "max"
    binning: str = "minmax"

    @property
    def n_units(self) -> int:
        return len(self.entropy)

    @property
    def n_samples(self) -> int:
        return int(self.counts[0].sum()) if len(self.counts) else 0

    plotter = "nifkit.ablation.plots:plot_measures"

    def get(self, measure: str) -> np.ndarray:
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        return getattr(self, measure)

    def repr_extra(self) -> dict:
        return {"n_units": self.n_units, "mean_entropy": float(self.entropy.mean()), "mean_mi": float(self.mi.mean()),
                "mean_selectivity": float(self.selectivity.mean())}

    def table(self) -> list[dict]:
        """One row per neuron: the three measures (bits)."""
        return [{"layer": self.layer, "unit": j, "entropy": float(h), "mi": float(i), "selectivity": float(s)}
                for j, (h, i, s) in enumerate(zip(self.entropy.tolist(), self.mi.tolist(), self.selectivity.tolist()))]


@dataclass(repr=False)
class NeuronMeasures(Result):
    """Measures of several layers: ``layers[name] -> LayerMeasures``."""

    layers: dict

    plotter = "nifkit.ablation.plots:plot_measures"

    @property
    def names(self) -> list:
        return list(self.layers)

    def table(self) -> list[dict]:
        """One row per neuron of every layer."""
        return [row for m in self.layers.values() for row in m.table()]

    def __getitem__(self, layer: str) -> LayerMeasures:
        if layer not in self.layers:
            raise unknown_layer_error(layer, list(self.layers), what="layer")
        return self.layers[layer]

    def __iter__(self):
        return iter(self.layers.values())

    def get(self, layer: str, measure: str) -> np.ndarray:
        return self[layer].get(measure)

    def network(self, measure: str, layers=None):
        """``(values, layer_index, unit)`` of all neurons of ``layers`` concatenated."""
        layers = list(self.layers) if layers is None else list(layers)
        vals = [self.get(n, measure) for n in layers]
        li = np.concatenate([np.full(len(v), i) for i, v in enumerate(vals)])
        unit = np.concatenate([np.arange(len(v)) for v in vals])
        return np.concatenate(vals), li, unit


def _selectivity(profile: np.ndarray, prior: np.ndarray, kind: str) -> np.ndarray:
    present = prior > 0
    prof = profile[:, present]
    if prof.shape[1] == 0:
        return np.zeros(len(profile))
    mx = prof.max(axis=1)
    if kind == "max":
        return mx
    k = prof.shape[1]
    rest = (prof.sum(axis=1) - mx) / max(k - 1, 1)
    if kind == "max_minus_mean":
        return mx - rest
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mx + rest > 0, (mx - rest) / np.where(mx + rest > 0, mx + rest, 1), 0.0)


@checked
def measures_from_counts(counts, layer: str = "layer", correction=None, selectivity: str = "max",
                         binning: str = "codes") -> LayerMeasures:
    """All three quantities from joint counts ``(units, bins, classes)``, vectorised."""
    if selectivity not in SELECTIVITY_KINDS:
        raise ValueError(f"selectivity must be one of {SELECTIVITY_KINDS}, got {selectivity!r}")
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 3:
        raise ValueError(f"counts must be (units, bins, classes), got shape {c.shape}")
    m, b, k = c.shape
    ct = c.sum(axis=2)
    cy = c.sum(axis=(0, 1)) / max(m, 1)
    n = cy.sum()
    h_t = entropy_from_counts(ct, axis=-1, correction=correction)
    h_y = float(entropy_from_counts(cy, correction=correction))
    h_ty = entropy_from_counts(c.reshape(m, b * k), axis=-1, correction=correction)
    mi = np.atleast_1d(h_t + h_y - h_ty).astype(np.float64)
    if correction is None:
        mi = np.maximum(mi, 0.0)  # rounding only: plug-in MI is >= 0
    prof = kl_profile_from_counts(c)
    prior = cy / n if n > 0 else np.zeros(k)
    return LayerMeasures(
        layer=layer, entropy=np.atleast_1d(np.asarray(h_t, dtype=np.float64)), mi=mi,
        selectivity=_selectivity(prof, prior, selectivity), kl_profile=prof, class_prior=prior,
        label_entropy=h_y, counts=np.asarray(counts).astype(np.int64), n_bins=b, correction=correction,
        selectivity_kind=selectivity, binning=binning,
    )


def _layer_dict(source, layers) -> dict:
    """Normalise activations input into ``{name: (samples, units) tensor}``."""
    if hasattr(source, "activations") and isinstance(source.activations, dict):
        rec = source
        names = list(rec.activations) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        out = {}
        for n in names:
            if n not in rec.activations:
                raise unknown_layer_error(n, list(rec.activations))
            t = rec.activations[n]
            out[n] = t.reshape(len(t), -1)
        return out
    if isinstance(source, dict):
        names = list(source) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        out = {}
        for n in names:
            if n not in source:
                raise unknown_layer_error(n, list(source))
            out[n] = source[n]
        return out
    name = layers if isinstance(layers, str) else "layer"
    return {name: source}


@checked
def neuron_measures(activations, labels, layers=None, *, n_bins: int = 8, binning="minmax", bin_range=None,
                    correction=None, selectivity: str = "max", n_classes: int | None = None, device=None,
                    memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None) -> NeuronMeasures:
    """H(T), I(T;Y) and KL selectivity of every neuron of every layer.

    ``activations``: a dict ``name -> (samples, units)`` (tensor or array), a
    :class:`nifkit.record.Recording`, or one array (named ``layers`` or ``"layer"``).
    ``labels``: class indices ``(samples,)``. Each layer is binned with its own
    :class:`nifkit.info.Binner` (``n_bins``, ``binning``, ``bin_range``; ``binning`` may
    also be a :class:`~nifkit.info.Binner`: its settings are copied, and one already
    fitted on as many units is used as is), then one joint count ``(units, bins,
    classes)`` (:func:`nifkit.info.label_counts`, on ``device``, in chunks of at most
    ``memory_budget`` bytes, with ``num_threads`` CPU threads) gives all measures at once.
    ``correction="miller-madow"`` corrects ``entropy`` and ``mi``.
    """
    from ..runtime import cpu_threads
    from .._validation import resolve_device

    dev = resolve_device(device)
    budget = int(memory_budget)
    if budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    binner = binning if isinstance(binning, Binner) else None
    if binner is None and not isinstance(binning, str):
        raise TypeError(f"binning must be a method name ('minmax', 'quantile', 'fixed') or a Binner, got "
                        f"{type(binning).__name__}")
    with cpu_threads(num_threads, dev):
        return _neuron_measures(activations, labels, layers, n_bins=n_bins, binning=binning, bin_range=bin_range,
                                binner=binner, correction=correction, selectivity=selectivity,
                                n_classes=n_classes, dev=dev, budget=budget)


def _neuron_measures(activations, labels, layers, *, n_bins, binning, bin_range, binner, correction, selectivity,
                     n_classes, dev, budget) -> NeuronMeasures:
    acts = _layer_dict(activations, layers)
    if not acts:
        raise ValueError("no layers to measure")
    out = {}
    y_np = None
    for name, a in acts.items():
        a = to_numpy(a, f"activations[{name!r}]")
        if a.ndim != 2:
            a = a.reshape(len(a), -1)
        if y_np is None or len(y_np) != len(a):
            y_np = check_labels(labels, len(a), f"activations of {name!r}", n_classes)
        k = int(n_classes) if n_classes is not None else int(y_np.max()) + 1 if len(y_np) else 1
        if binner is not None and hasattr(binner, "edges_") and binner.n_features_ == a.shape[1]:
            b = binner
            codes = b.transform(a, chunk_bytes=budget)
        else:
            b = Binner(n_bins=binner.n_bins, binning=binner.binning, bin_range=binner.bin_range) \
                if binner is not None else Binner(n_bins=n_bins, binning=binning, bin_range=bin_range)
            codes = b.fit(a).transform(a, chunk_bytes=budget)  # temporaries within the budget
        # as flow_graph and layer_ei refuse: a plug-in I(T;Y) over more joint cells than samples
        check_n_samples(len(a), b.n_bins * k, f"a neuron of {name!r} with {b.n_bins} bins x {k} classes",
                        "activations")
        counts = label_counts(codes, y_np, b.n_bins, k, chunk_bytes=budget, device=dev)
        out[name] = measures_from_counts(counts, layer=name, correction=correction, selectivity=selectivity,
                                         binning=b.binning)
    return NeuronMeasures(out, settings={"n_bins": n_bins, "binning": binning, "bin_range": bin_range,
                                         "correction": correction, "selectivity": selectivity})


def hidden_layers(model: nn.Module) -> list:
    """Names of the hidden units' outputs, from the one walker
    (:func:`nifkit.models.walk`): for each weight layer but the last, the activation
    module that follows it in the data flow (or the layer itself, or its last
    norm/dropout, when none follows)."""
    names = walk(model).hidden()
    if not names:
        raise ValueError("the model has no hidden layer (fewer than two Linear/Conv layers); pass layers=[...] "
                         "explicitly")
    return names


@checked
def layer_activations(model: nn.Module, X, layers=None, batch_size: int = 4096) -> dict:
    """Outputs ``(samples, units)`` of the named layers (default :func:`hidden_layers`),
    recorded in eval mode without gradients (:func:`nifkit.record.record`); the model is
    left as it was."""
    if layers is None:
        layers = hidden_layers(model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    rec = record(model, as_float_tensor(X, "X"), layers, batch_size=batch_size, progress=False)
    return {n: rec.flat(n) for n in layers}


# ----------------------------------------------------------------------------- streaming
def _stream_binners(names, binner, n_bins, binning, bin_range, run) -> dict:
    """One :class:`Binner` per layer for the counting pass: a fitted ``binner`` as is;
    ``"fixed"`` at once (fitted on the first batch: its edges need only the width);
    ``"minmax"`` from pass 1, each unit's minimum and maximum over every batch (and every
    process: ``all_reduce_extrema``), so the edges are those of a fit on all the data."""
    if binner is not None and hasattr(binner, "edges_"):
        return {n: binner for n in names}
    spec = (binner.n_bins, binner.binning, binner.bin_range) if binner is not None else (n_bins, binning, bin_range)
    if spec[1] == "quantile":
        raise ValueError("binning='quantile' needs every sample of a unit at once (its quantiles), so it cannot "
                         "be counted batch by batch on a DataLoader or across processes; use binning='minmax' "
                         "(two passes) or binning='fixed' with bin_range=(lo, hi) (one pass), or record the "
                         "activations and call neuron_measures(activations, labels, binning='quantile')")
    if spec[1] == "fixed":
        return {n: Binner(*spec) for n in names}
    lo, hi = {}, {}

    def extrema(batch):
        for n in names:  # a loop over layers
            a = batch.acts[n]
            lo[n] = a.amin(0) if n not in lo else torch.minimum(lo[n], a.amin(0))
            hi[n] = a.amax(0) if n not in hi else torch.maximum(hi[n], a.amax(0))

    run(extrema, "minmax (pass 1)")
    out = {}
    for n in names:  # a loop over layers
        if n not in lo:
            raise ValueError("data holds no samples; nothing to measure")
        lo_n, hi_n = all_reduce_extrema(lo[n], hi[n])
        out[n] = Binner(*spec).fit(torch.stack([lo_n, hi_n]).cpu().numpy())  # the edges of a fit on all data
    return out


def _stream_counts(names, binners, n_classes, dev, budget, run) -> tuple:
    """Pass 2 (or the one pass): per batch and layer, codes of the reduced outputs and
    one :class:`nifkit.info.LabelCounts` update; returns ``({layer: LabelCounts},
    largest label seen)``, both summed / maximised over processes."""
    counts, top = {}, torch.tensor([-1.0])

    def count(batch):
        nonlocal top
        k = n_classes
        if k is None:
            if batch.logits.ndim != 2:
                raise ValueError("the model's output is not (samples, classes) logits; pass n_classes")
            k = batch.logits.shape[1]
        for n in names:  # a loop over layers
            a = batch.acts[n].float().cpu().numpy()
            b = binners[n]
            if not hasattr(b, "edges_"):  # fixed bins: the edges need only the width
                b.fit(np.zeros((1, a.shape[1]), np.float32))
            codes = b.transform(a)
            acc = counts.setdefault(n, LabelCounts(b.n_bins, k, device=dev, chunk_bytes=budget))
            acc.update(codes, batch.labels(n).numpy())
        top = torch.maximum(top, batch.y.max().double().reshape(1) if len(batch.y) else top)

    run(count, "count")
    if not counts:
        raise ValueError("data holds no samples; nothing to measure")
    top = all_reduce_extrema(top, top)[1]
    return {n: reduce_across_processes(c) for n, c in counts.items()}, int(top[0])


def _quantile_in_memory(names, n_bins, correction, selectivity, n_classes, dev, budget, run) -> NeuronMeasures:
    """Quantile bins on in-memory data: the reduced outputs of every layer recorded batch
    by batch, then :func:`neuron_measures` (quantiles need every sample at once)."""
    kept = {n: ([], []) for n in names}

    def keep(batch):
        for n in names:  # a loop over layers
            kept[n][0].append(batch.acts[n].cpu())
            kept[n][1].append(batch.labels(n))

    run(keep, "record")
    out = {}
    for n, (acts, labels) in kept.items():  # a loop over layers
        out.update(neuron_measures({n: torch.cat(acts)}, torch.cat(labels), n_bins=n_bins, binning="quantile",
                                   correction=correction, selectivity=selectivity, n_classes=n_classes, device=dev,
                                   memory_budget=budget).layers)
    return NeuronMeasures(out, settings={"n_bins": n_bins, "binning": "quantile", "correction": correction,
                                         "selectivity": selectivity, "streamed": False})


@checked
def model_neuron_measures(model: nn.Module, data, layers=None, *, n_bins: int = 8, binning="minmax",
                          bin_range=None, correction=None, selectivity: str = "max", channel_reduce: str = "mean",
                          n_classes: int | None = None, split: str = "train", max_samples: int | None = None,
                          batch_size: int = STREAM_BATCH, device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                          num_threads: int | None = None, progress=False) -> NeuronMeasures:
    """:func:`neuron_measures` of the hidden ``layers`` (units names, default all) of
    ``model`` over ``data``, streamed: ``data`` (a DataLoader, a Dataset's ``split``,
    ``(X, y)``) is read batch by batch (:func:`nifkit.record.stream.stream_layers`; a
    conv layer's unit is a channel, ``channel_reduce``), and each batch's codes add to
    one :class:`nifkit.info.LabelCounts` per layer; no activation is kept.

    Bins: ``binning="fixed"`` with a ``bin_range`` (or a fitted Binner) counts in one
    pass; ``"minmax"`` takes two, pass 1 the minimum and maximum of every unit, so the
    result equals :func:`neuron_measures` on all the recorded activations exactly (both
    passes must see the same samples: a loader with random augmentation would put values
    outside pass 1's range into the end bins);
    ``"quantile"`` is refused on a stream (see the error) and, on in-memory data, records
    the reduced activations and calls :func:`neuron_measures`. Under ``torchrun`` (a
    DistributedSampler-sharded loader, or in-memory data each process shards itself) the
    extrema and counts are reduced across processes: every process gets the result of
    one process over all the data. Labels: classes ``0..K-1`` with ``K`` the largest label
    (over all processes) + 1, as in :func:`neuron_measures` (``n_classes`` fixes it).
    The model runs on ``device`` (None: where it is); codes are counted there in chunks of
    ``memory_budget``."""
    from ..runtime import cpu_threads, model_device
    from .._validation import resolve_device

    dev = resolve_device(device) if device is not None else model_device(model)[0]  # None: the model's
    names = [u for u, _, _ in hidden_layout(model, layers)]
    binner = binning if isinstance(binning, Binner) else None
    if binner is None:
        Binner(n_bins=n_bins, binning=binning, bin_range=bin_range)  # settings checked before any pass

    def run(visit, what):
        return stream_layers(model, data, names, visit, channel_reduce=channel_reduce, split=split,
                             batch_size=batch_size, max_samples=max_samples, device=dev, progress=progress, what=what)

    settings = {"n_bins": n_bins, "binning": binning if binner is None else binner.binning, "bin_range": bin_range,
                "correction": correction, "selectivity": selectivity, "channel_reduce": channel_reduce,
                "streamed": True}
    with cpu_threads(num_threads, dev):
        if binner is None and binning == "quantile" and not is_stream(data) and distributed()[1] == 1:
            return _quantile_in_memory(names, n_bins, correction, selectivity, n_classes, dev, memory_budget, run)
        binners = _stream_binners(names, binner, n_bins, binning, bin_range, run)
        counts, top = _stream_counts(names, binners, n_classes, dev, int(memory_budget), run)
    out = {}
    for n in names:  # a loop over layers
        table = counts[n].table.numpy()
        k = table.shape[2] if n_classes is not None else top + 1
        check_n_samples(counts[n].n, binners[n].n_bins * k, f"a neuron of {n!r} with {binners[n].n_bins} bins x {k} "
                        "classes", "data")
        out[n] = measures_from_counts(table[:, :, :k], layer=n, correction=correction, selectivity=selectivity,
                                      binning=binners[n].binning)
    settings["n_samples"] = counts[names[0]].n
    return NeuronMeasures(out, settings=settings)
