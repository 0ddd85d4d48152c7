r"""Information-ordered cumulative ablation (Amjad, Liu & Geiger, TNNLS 2022).

The chapter asks: do information-theoretic quantities of single neurons tell which
neurons the network needs? Three quantities of a neuron's *binned* output ``T``:

.. math::

    H(T) = -\sum_t p(t)\log_2 p(t)

    I(T;Y) = H(T) + H(Y) - H(T,Y) = \sum_y p(y)\, D_{KL}(P_{T|y} \,\|\, P_T)

    \mathrm{sel}(T) = \max_y D_{KL}(P_{T|y} \,\|\, P_T)

The second line is an identity; the vector ``KL(P_T|y || P_T)`` over the classes is the
neuron's *per-class KL profile* (kept for plotting). The selectivity is a
**reconstruction**: the paper's abstract speaks of "a class selectivity measure based
on KL divergence"; we take the largest entry of the profile (``selectivity="max"``).
Two variants are offered: ``"max_minus_mean"`` (largest entry minus the mean of the
others) and ``"ratio"`` (``(max - rest) / (max + rest)``, the shape of Morcos et al.'s
index, in ``[0, 1]``).

Neurons are then *cumulatively ablated* (outputs set to 0, or to their mean) in
ascending and descending order of a quantity, and in random orders (the baseline),
per layer and across the whole network; test accuracy and loss are plotted against the
number ablated.

Reading the curves (hypotheses, not proofs):

* **Descending** removes the most informative neurons first. If accuracy holds up for
  a long while, the remaining neurons carry the same class information: *redundancy*.
* **Ascending** removes the least informative first. If accuracy drops early although
  each removed neuron alone says little about the class, those neurons mattered
  *jointly*: a sign of *synergy*.
* A measure that ranks importance well puts the ascending curve above the descending
  one; :func:`curve_gap` measures the area between them (positive = good ranking).
* Quantities are comparable **within** a layer, not **across** layers: their scale depends
  on the layer's width, activation function, bins and place in the network. Pooling
  layers mixes scales, and ordering the whole network by one raw measure partly orders
  layers instead of neurons (``network_normalize="rank"`` in :func:`ablation_study`
  ranks within layers first; :func:`importance_correlations` gives pooled and
  within-layer rank correlations side by side).

The engine (:class:`AblationEngine`) never re-runs the model from the input per step:
for a ``nn.Sequential`` model it runs the layers up to the ablated layer once, then
pushes a batch of masked copies ``(samples, steps, units)`` through the remaining
layers in memory-bounded chunks. When the next layer is ``nn.Linear`` (the usual case)
its output at *every* step of a cumulative order is a partial sum of rank-one updates,
``z_k = z_0 - sum_{j < k} (a_{o_j} - v_{o_j}) w_{o_j}``, built in blocks of 16 units
(block totals accumulated in float64; inside a block one masked matrix product gives
all partial sums); single-neuron ablations are one rank-one update each. Any other
model falls back to hooks (correct, slower). :func:`reference_ablation_curve` is the
plain approach (one hooked forward pass from the input per step) used as the anchor in
tests and in ``benchmarks/bench_ablation.py``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import to_numpy
from .config import DEFAULT_MEMORY_BUDGET
from .info import Binner, entropy_from_counts
from .runtime import with_thread_policy

__all__ = [
    "DIRECTIONS",
    "MEASURES",
    "SELECTIVITY_KINDS",
    "VALUES",
    "AblationCurve",
    "AblationEngine",
    "AblationStudy",
    "ImportanceCorrelation",
    "LayerMeasures",
    "NeuronMeasures",
    "SingleImportance",
    "ablation_curve",
    "ablation_order",
    "ablation_study",
    "check_kl_profile",
    "compare_studies",
    "curve_area",
    "curve_gap",
    "curves_match",
    "hidden_layers",
    "importance_correlations",
    "joint_counts",
    "kl_profile_from_counts",
    "layer_activations",
    "measures_from_counts",
    "neuron_measures",
    "reference_ablation_curve",
    "single_neuron_importance",
    "summarize_study",
]

MEASURES = ("entropy", "mi", "selectivity")
MEASURE_LABELS = {"entropy": "H(T)", "mi": "I(T;Y)", "selectivity": "KL selectivity"}
SELECTIVITY_KINDS = ("max", "max_minus_mean", "ratio")
VALUES = ("zero", "mean")
DIRECTIONS = ("ascending", "descending", "random")
_LN2 = math.log(2.0)


# ======================================================================================
# Input checks
# ======================================================================================
def _labels(y, n: int, what: str, n_classes: int | None = None) -> np.ndarray:
    arr = to_numpy(y, "labels")
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D class indices (samples,), got shape {arr.shape}; "
                         "pass integer labels, not one-hot rows (use y.argmax(1))")
    if len(arr) != n:
        raise ValueError(
            f"labels has {len(arr)} entries but {what} has {n} samples; pass the labels of the same "
            "samples (e.g. data.y_test together with data.X_test)")
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise ValueError("labels must be integer class indices, got non-integer floats")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"labels must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n and arr.min() < 0:
        raise ValueError(f"labels must be class indices >= 0, found {int(arr.min())}")
    if n_classes is not None and n and arr.max() >= n_classes:
        raise ValueError(f"labels go up to {int(arr.max())} but there are only {n_classes} classes "
                         f"(0..{n_classes - 1}); pass n_classes= or labels that match the model's outputs")
    return arr


def _unknown_layer(name, available) -> ValueError:
    import difflib

    close = difflib.get_close_matches(str(name), list(available), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return ValueError(f"unknown layer {name!r}.{hint} Available layers: {', '.join(map(str, available))}")


def _as_float_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = to_numpy(x, name)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not t.is_floating_point():
        t = t.float()
    return t


# ======================================================================================
# 1. Per-neuron measures
# ======================================================================================
@dataclass(repr=False)
class LayerMeasures:
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

    def get(self, measure: str) -> np.ndarray:
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
        return getattr(self, measure)

    def __repr__(self) -> str:
        return (f"LayerMeasures({self.layer!r}, {self.n_units} units, mean H={self.entropy.mean():.3f}, "
                f"mean I={self.mi.mean():.3f}, mean sel={self.selectivity.mean():.3f} bits)")


@dataclass(repr=False)
class NeuronMeasures:
    """Measures of several layers: ``layers[name] -> LayerMeasures``."""

    layers: dict

    @property
    def names(self) -> list:
        return list(self.layers)

    def __getitem__(self, layer: str) -> LayerMeasures:
        if layer not in self.layers:
            raise _unknown_layer(layer, self.layers)
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

    def __repr__(self) -> str:
        return "NeuronMeasures(" + ", ".join(f"{k}: {v.n_units} units" for k, v in self.layers.items()) + ")"


def joint_counts(codes, labels, n_bins: int, n_classes: int, chunk_bytes: int = 64 * 2**20) -> np.ndarray:
    """Joint histogram ``(units, bins, classes)`` of every unit's code with the label,
    in one ``bincount`` over flat indices ``(unit * bins + code) * classes + label``
    (sample chunks of at most ``chunk_bytes`` of indices)."""
    codes = to_numpy(codes, "codes")
    if codes.ndim != 2:
        raise ValueError(f"codes must be (samples, units), got shape {codes.shape}")
    n, m = codes.shape
    y = _labels(labels, n, "codes", n_classes)
    size = m * n_bins * n_classes
    base = (np.arange(m, dtype=np.int64) * n_bins)[None, :]
    out = np.zeros(size, dtype=np.int64)
    rows = max(1, chunk_bytes // max(1, 8 * m))
    for s in range(0, n, rows):
        c = codes[s:s + rows].astype(np.int64)
        if c.size and (c.min() < 0 or c.max() >= n_bins):
            raise ValueError(f"codes must lie in 0..{n_bins - 1}")
        idx = (base + c) * n_classes + y[s:s + rows, None]
        out += np.bincount(idx.ravel(), minlength=size)
    return out.reshape(m, n_bins, n_classes)


def kl_profile_from_counts(counts) -> np.ndarray:
    """Per-class KL profile ``KL(P_T|y || P_T)`` in bits from joint counts
    ``(..., bins, classes)``; returns ``(..., classes)``. Classes without samples get 0."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=(-2, -1), keepdims=True)
    ct = c.sum(axis=-1, keepdims=True)  # (..., B, 1)
    cy = c.sum(axis=-2, keepdims=True)  # (..., 1, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t_given_y = np.where(cy > 0, c / np.where(cy > 0, cy, 1), 0.0)
        p_t = ct / np.where(n > 0, n, 1)
        ratio = np.where(c > 0, p_t_given_y / np.where(p_t > 0, p_t, 1), 1.0)
        kl = (p_t_given_y * np.log2(ratio)).sum(axis=-2)
    return np.maximum(kl, 0.0)


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
                raise _unknown_layer(n, rec.activations)
            t = rec.activations[n]
            out[n] = t.reshape(len(t), -1)
        return out
    if isinstance(source, dict):
        names = list(source) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        out = {}
        for n in names:
            if n not in source:
                raise _unknown_layer(n, source)
            out[n] = source[n]
        return out
    name = layers if isinstance(layers, str) else "layer"
    return {name: source}


def neuron_measures(activations, labels, layers=None, *, n_bins: int = 8, method: str = "minmax",
                    range=None, binner: Binner | None = None, correction=None, selectivity: str = "max",
                    n_classes: int | None = None) -> NeuronMeasures:
    """H(T), I(T;Y) and KL selectivity of every neuron of every layer.

    ``activations``: a dict ``name -> (samples, units)`` (tensor or array), a
    :class:`nifkit.record.Recording`, or one array (named ``layers`` or ``"layer"``).
    ``labels``: class indices ``(samples,)``. Each layer is binned with its own
    :class:`nifkit.info.Binner` (``n_bins``, ``method``, ``range``; or a copy of the
    settings of ``binner``; a binner that is already fitted is used as is), then one
    joint count ``(units, bins, classes)`` gives all measures at once.
    ``correction="miller-madow"`` corrects ``entropy`` and ``mi``.
    """
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
            y_np = _labels(labels, len(a), f"activations of {name!r}", n_classes)
        k = int(n_classes) if n_classes is not None else int(y_np.max()) + 1 if len(y_np) else 1
        if binner is not None and hasattr(binner, "edges_") and binner.n_features_ == a.shape[1]:
            b = binner
            codes = b.transform(a)
        else:
            b = Binner(n_bins=binner.n_bins, method=binner.method, range=binner.range) if binner is not None \
                else Binner(n_bins=n_bins, method=method, range=range)
            codes = b.fit_transform(a)
        counts = joint_counts(codes, y_np, b.n_bins, k)
        out[name] = measures_from_counts(counts, layer=name, correction=correction, selectivity=selectivity,
                                         binning=b.method)
    return NeuronMeasures(out)


# ======================================================================================
# Model plumbing: flat view of a (nested) nn.Sequential
# ======================================================================================
def _flat_sequential(model: nn.Module):
    """``[(name, module)]`` of the leaves of a (nested) ``nn.Sequential``, or None."""
    if not isinstance(model, nn.Sequential):
        return None
    out = []

    def walk(seq, prefix):
        for n, m in seq.named_children():
            full = f"{prefix}{n}"
            if isinstance(m, nn.Sequential):
                walk(m, full + ".")
            else:
                out.append((full, m))
    walk(model, "")
    return out


_PASS_THROUGH = (nn.Dropout, nn.Identity, nn.AlphaDropout)


def hidden_layers(model: nn.Module) -> list:
    """Names of the hidden neurons' outputs of an MLP: for each ``nn.Linear`` but the last,
    the activation module right after it (or the Linear itself when none follows)."""
    flat = _flat_sequential(model)
    if flat is None:
        raise ValueError("hidden_layers needs an nn.Sequential model; pass layers=[...] explicitly")
    lin = [i for i, (_, m) in enumerate(flat) if isinstance(m, nn.Linear)]
    skip = _PASS_THROUGH + (nn.BatchNorm1d, nn.LayerNorm)
    names = []
    for i in lin[:-1]:
        j = i + 1
        while j < len(flat) and isinstance(flat[j][1], skip):
            j += 1
        if j < lin[lin.index(i) + 1]:
            names.append(flat[j][0])  # the activation (ReLU, Tanh, PReLU, ...) after the Linear
        else:
            names.append(flat[j - 1][0])  # no activation: the Linear (or its last norm/dropout)
    return names


class _ModelState:
    """Put the model in eval mode for the duration; restore every module's flag."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self.grad = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        torch.set_grad_enabled(self.grad)
        for m, f in self.flags:
            m.training = f
        return False


def _model_dtype(model):
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def layer_activations(model: nn.Module, X, layers=None, batch_size: int = 4096) -> dict:
    """Outputs ``(samples, units)`` of the named layers (default :func:`hidden_layers`),
    computed in eval mode without gradients; the model is left as it was."""
    flat = _flat_sequential(model)
    if layers is None:
        layers = hidden_layers(model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    X = _as_float_tensor(X, "X")
    if flat is None:
        from .record import record

        rec = record(model, X, layers, batch_size=batch_size, progress=False)
        return {n: rec.flat(n) for n in layers}
    names = [n for n, _ in flat]
    for n in layers:
        if n not in names:
            raise _unknown_layer(n, names)
    last = max(names.index(n) for n in layers)
    dev, dt = _model_dtype(model)
    parts = {n: [] for n in layers}
    with _ModelState(model):
        for s in range(0, len(X), batch_size):
            h = X[s:s + batch_size].to(dev, dt)
            for i, (n, m) in enumerate(flat[:last + 1]):
                h = m(h)
                if n in parts:
                    parts[n].append(h.reshape(len(h), -1).clone().cpu())
    return {n: torch.cat(v) for n, v in parts.items()}


# ======================================================================================
# 2. Cumulative ablation
# ======================================================================================
@dataclass(repr=False)
class AblationCurve:
    """Accuracy and loss against the number of ablated neurons.

    ``counts[s]`` neurons ablated at step ``s``: the first ``counts[s]`` entries of
    ``order`` (unit indices within ``layers[order_layer[i]]``). ``accuracy``, ``loss``:
    ``(steps,)``; ``class_accuracy``: ``(steps, classes)`` (NaN for a class without test
    samples). ``layer`` is the layer name, or ``"network"`` for an order over several
    layers. ``direction`` is ascending/descending/random (``seed`` for random) and
    ``measure`` the quantity that ordered it (None for random orders).
    """

    layer: str
    layers: tuple
    measure: str | None
    direction: str
    counts: np.ndarray
    accuracy: np.ndarray
    loss: np.ndarray
    class_accuracy: np.ndarray
    order: np.ndarray
    order_layer: np.ndarray
    value: str = "zero"
    seed: int | None = None
    n_units: int = 0
    method: str = "fast"

    @property
    def baseline(self) -> float:
        """Accuracy with nothing ablated (when ``counts`` starts at 0)."""
        return float(self.accuracy[0]) if len(self.counts) and self.counts[0] == 0 else float("nan")

    @property
    def fraction(self) -> np.ndarray:
        return self.counts / max(self.n_units, 1)

    def step_of(self, n_ablated: int) -> int:
        """Index of the step with the largest count <= ``n_ablated``."""
        s = int(np.searchsorted(self.counts, n_ablated, side="right")) - 1
        return max(s, 0)

    def accuracy_at(self, n_ablated: int) -> float:
        return float(self.accuracy[self.step_of(n_ablated)])

    def ablated(self, n_ablated: int):
        """``(layer names, units)`` of the first ``n_ablated`` neurons in the order."""
        k = int(n_ablated)
        return [self.layers[i] for i in self.order_layer[:k]], self.order[:k].copy()

    @property
    def label(self) -> str:
        if self.direction == "random":
            return f"random (seed {self.seed})"
        return f"{self.direction} {MEASURE_LABELS.get(self.measure, self.measure)}"

    def __repr__(self) -> str:
        return (f"AblationCurve({self.layer!r}, {self.label}, {len(self.counts)} steps, "
                f"acc {self.accuracy[0]:.3f} -> {self.accuracy[-1]:.3f}, value={self.value!r})")


def _counts_arg(counts, n_units: int, what: str) -> np.ndarray:
    if counts is None:
        return np.arange(n_units + 1)
    if isinstance(counts, (int, np.integer)) and not isinstance(counts, bool):
        if counts < 2:
            raise ValueError("counts as an integer is a number of steps and must be >= 2")
        return np.unique(np.round(np.linspace(0, n_units, int(counts))).astype(np.int64))
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "iu":
        raise ValueError("counts must be None, a number of steps, or a 1-D array of integers")
    if c.min() < 0:
        raise ValueError(f"counts must be >= 0, found {int(c.min())}")
    if c.max() > n_units:
        raise ValueError(
            f"{what} has {n_units} neurons but counts asks to ablate up to {int(c.max())}; "
            f"use counts <= {n_units} (or counts=None for 0..{n_units})")
    return c.astype(np.int64)


class AblationEngine:
    """Evaluate many ablations of one model on one evaluation set, fast.

    Construction stores the model and ``(X, y)``; the output of each layer up to an
    ablated one is computed once and cached (``prefix``), so build the engine after
    training. Methods: :meth:`curve` (one layer, one order), :meth:`network_curve`
    (an order over units of several layers), :meth:`single` (each neuron alone),
    :meth:`evaluate_masks` (any masks). ``value`` is ``"zero"``, ``"mean"`` (the mean of
    each neuron over ``X``) or an array per layer. The model is put in eval mode
    during each call and restored afterwards; no hooks are left behind and no weight is
    touched.

    ``memory_budget`` bounds the bytes of temporaries (default 512 MiB);
    ``method="auto"`` uses the fast path for ``nn.Sequential`` models and hooks
    otherwise (``"hooks"`` forces the slow, generic path).
    """

    def __init__(self, model: nn.Module, X, y, *, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 method: str = "auto", batch_size: int = 4096):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if method not in ("auto", "fast", "hooks"):
            raise ValueError(f"method must be 'auto', 'fast' or 'hooks', got {method!r}")
        self.model = model
        self.X = _as_float_tensor(X, "X")
        self.flat = _flat_sequential(model)
        if method == "fast" and self.flat is None:
            raise ValueError("method='fast' needs an nn.Sequential model; use method='auto' or 'hooks'")
        self.method = "hooks" if (method == "hooks" or self.flat is None) else "fast"
        self.memory_budget = int(memory_budget)
        self.batch_size = int(batch_size)
        self.chunk_samples = 32  # samples per chunk: small, so temporaries stay in cache
        self.block = 16  # units per block of the cumulative sums
        self.device, self.dtype = _model_dtype(model)
        self._prefix: dict = {}
        self._layer_names = [n for n, _ in self.flat] if self.flat is not None else \
            [n for n, _ in model.named_modules() if n]
        with _ModelState(model):
            logits = self._forward_full(self.X)
        if logits.ndim != 2:
            raise ValueError(f"the model's output must be (samples, classes) logits, got shape {tuple(logits.shape)}")
        self.n_classes = logits.shape[1]
        self.y_np = _labels(y, len(self.X), "X", self.n_classes)
        self.y = torch.from_numpy(self.y_np).to(self.device)
        self.class_counts = np.bincount(self.y_np, minlength=self.n_classes)
        self._onehot = F.one_hot(self.y, self.n_classes).to(self.dtype)
        self.base_logits = logits
        self.base_accuracy = float((logits.argmax(1) == self.y).double().mean())

    # -- plumbing -----------------------------------------------------------------------
    @property
    def layer_names(self) -> list:
        return list(self._layer_names)

    def _forward_full(self, X):
        outs = []
        for s in range(0, len(X), self.batch_size):
            out = self.model(X[s:s + self.batch_size].to(self.device, self.dtype))
            outs.append(out[0] if isinstance(out, (tuple, list)) else out)
        return torch.cat(outs)

    def _index(self, layer: str) -> int:
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a module name (str), got {type(layer).__name__}")
        if layer not in self._layer_names:
            raise _unknown_layer(layer, self._layer_names)
        return self._layer_names.index(layer)

    def activations(self, layer: str) -> torch.Tensor:
        """Output ``(samples, units)`` of ``layer`` on the evaluation set (cached)."""
        if layer not in self._prefix:
            k = self._index(layer)
            if self.method == "fast":
                parts = []
                with _ModelState(self.model):
                    for s in range(0, len(self.X), self.batch_size):
                        h = self.X[s:s + self.batch_size].to(self.device, self.dtype)
                        for _, m in self.flat[:k + 1]:
                            h = m(h)
                        parts.append(h.clone())
                a = torch.cat(parts)
            else:
                a = layer_activations(self.model, self.X, [layer])[layer].to(self.device)
            if a.ndim != 2:
                raise ValueError(
                    f"layer {layer!r} outputs shape {tuple(a.shape[1:])} per sample; ablation works on "
                    "layers with one unit axis (samples, units), e.g. the Linear/activation layers of an MLP")
            self._prefix[layer] = a
        return self._prefix[layer]

    def n_units(self, layer: str) -> int:
        return self.activations(layer).shape[1]

    def _value(self, layer: str, value) -> torch.Tensor:
        a = self.activations(layer)
        if isinstance(value, str):
            if value == "zero":
                return torch.zeros(a.shape[1], dtype=a.dtype, device=a.device)
            if value == "mean":
                return a.mean(0)
            raise ValueError(f"value must be 'zero', 'mean' or an array of per-neuron values, got {value!r}")
        v = _as_float_tensor(value, "value").to(a.device, a.dtype).reshape(-1)
        if v.numel() != a.shape[1]:
            raise ValueError(f"value has {v.numel()} entries but layer {layer!r} has {a.shape[1]} neurons")
        return v

    # -- the core: masks per touched layer ------------------------------------------------
    def evaluate_masks(self, layers: Sequence[str], masks: Sequence, value="zero", *,
                       cumulative: Sequence | None = None, single: bool = False):
        """Accuracy ``(S,)``, mean loss ``(S,)`` and per-class accuracy ``(S, C)`` with
        the outputs of ``layers[i]`` replaced by ``value`` where ``masks[i]`` (bool
        ``(S, units_i)``) is True.

        ``cumulative[i] = (order, counts)`` may replace ``masks[i]`` (None) for the first
        layer: step ``s`` ablates ``order[:counts[s]]``. ``single=True`` says that the
        first layer's mask is the identity (step ``j`` ablates unit ``j`` alone). Both
        let a following ``nn.Linear`` be evaluated with rank-one updates instead of one
        matrix product per step.
        """
        if self.method == "hooks":
            return self._evaluate_hooks(layers, masks, value, cumulative)
        layers = list(layers)
        idx = [self._index(n) for n in layers]
        if sorted(idx) != idx or len(set(idx)) != len(idx):
            raise ValueError("layers must be distinct and given in the model's order")
        vals = [self._value(n, value if isinstance(value, str) else value[i]) for i, n in enumerate(layers)]
        cum = list(cumulative) if cumulative is not None else [None] * len(layers)
        masks = list(masks)
        for i, n in enumerate(layers):
            if masks[i] is None and cum[i] is None:
                raise ValueError(f"no mask for layer {n!r}")
            if masks[i] is None:
                order, counts = cum[i]
                masks[i] = _cumulative_masks(order, counts, self.n_units(n))
            masks[i] = torch.as_tensor(masks[i], dtype=torch.bool, device=self.device)
            if masks[i].ndim != 2 or masks[i].shape[1] != self.n_units(n):
                raise ValueError(f"mask for {n!r} must be (steps, {self.n_units(n)}), got {tuple(masks[i].shape)}")
        S = masks[0].shape[0]
        if any(m.shape[0] != S for m in masks):
            raise ValueError("all masks must have the same number of steps")

        a0 = self.activations(layers[0])
        k0 = idx[0]
        # the Linear right after the first ablated layer (skipping pass-through modules)?
        j = k0 + 1
        while j < len(self.flat) and isinstance(self.flat[j][1], _PASS_THROUGH):
            j += 1
        lin = self.flat[j][1] if (j < len(self.flat) and isinstance(self.flat[j][1], nn.Linear)
                                  and (len(idx) == 1 or idx[1] > j)) else None
        kind = "general"
        if lin is not None and cum[0] is not None:
            kind = "cumulative"
        elif lin is not None and single:
            kind = "single"
        start = j + 1 if lin is not None else k0 + 1
        rest = self.flat[start:]
        touched = {ix: i for i, ix in enumerate(idx)}

        N, m0 = a0.shape
        out_f = lin.out_features if lin is not None else m0
        width = max([m0, out_f, self.n_classes] + [getattr(m, "out_features", 0) for _, m in rest])
        budget = max(self.memory_budget, 1 << 20)
        if kind == "general":
            per_sample = 4 * 3 * m0
        else:  # (units+1, out) outputs, the masked products and a copy per sample
            per_sample = 4 * (m0 + 16) * out_f * 4
        # small sample chunks keep the temporaries in cache; never above the budget
        n_chunk = int(min(N, self.chunk_samples, max(1, (budget // 2) // per_sample)))
        s_chunk = int(min(S, max(1, (budget // 2) // max(n_chunk * width * 4 * 4, 1))))

        correct = torch.zeros(S, self.n_classes, dtype=torch.float64, device=self.device)
        loss_sum = torch.zeros(S, dtype=torch.float64, device=self.device)
        with _ModelState(self.model):
            if kind != "general":
                W = lin.weight.detach()
                if kind == "cumulative":
                    order0 = torch.as_tensor(np.asarray(cum[0][0]), dtype=torch.long, device=self.device)
                    steps0 = torch.as_tensor(np.asarray(cum[0][1]), dtype=torch.long, device=self.device)
                    full = len(order0) == m0
                else:
                    order0 = torch.arange(m0, device=self.device)
                    steps0 = torch.arange(S, device=self.device)
                K = len(order0)
                W_ordT = W[:, order0].T.contiguous()  # (K, out): row j = weights leaving unit order[j]
                v_ord = vals[0][order0]
                zf = lin(vals[0][None])  # all ablated, exactly as the model computes it
                steps_np = steps0.cpu().numpy()
                B = self.block
                nb = -(-K // B)
                pad = nb * B - K
                Wb = F.pad(W_ordT, (0, 0, 0, pad)).view(nb, B, out_f)  # blocks of rows
                Wb64 = Wb.double()
                L = torch.tril(torch.ones(B, B, dtype=self.dtype, device=self.device), -1)
                all_steps = kind == "cumulative" and np.array_equal(steps_np, np.arange(K + 1))
            for ns in range(0, N, n_chunk):
                a = a0[ns:ns + n_chunk]
                n = len(a)
                yb = self.y[ns:ns + n]
                oh = self._onehot[ns:ns + n]
                if kind != "general":
                    z0 = lin(a)  # nothing ablated, exactly as the model computes it
                    d = a[:, order0] - v_ord  # (n, K): change of each unit when ablated
                    if kind == "cumulative":
                        # zz[:, c] = output of the Linear with order[:c] ablated
                        #   = z0 - sum_{j<c} d_j w_j, in blocks of B units: the block totals are
                        #   accumulated in float64, inside a block one small matmul with a
                        #   strictly lower-triangular mask gives every partial sum at once.
                        db = F.pad(d, (0, pad)).view(n, nb, B)
                        tot = torch.bmm(db.transpose(0, 1).double(), Wb64)  # (nb, n, out)
                        Zb = z0.double()[None] - torch.cumsum(tot, 0)  # after each block
                        Zb = torch.cat([z0.double()[None], Zb]).to(self.dtype)  # (nb+1, n, out)
                        zz = torch.empty(n, nb * B + 1, out_f, dtype=self.dtype, device=self.device)
                        for bi in range(nb):
                            part = (db[:, bi, None, :] * L).reshape(n * B, B) @ Wb[bi]  # (n*B, out)
                            torch.sub(Zb[bi][:, None, :], part.view(n, B, out_f),
                                      out=zz[:, bi * B:(bi + 1) * B])
                        zz[:, K] = zf if full else Zb[nb]
                        zz = zz[:, :K + 1]
                    else:  # single: zz[:, j] = output with unit j alone ablated
                        zz = torch.addcmul(z0[:, None, :], d[:, :, None], W_ordT[None], value=-1)
                for ss in range(0, S, s_chunk):
                    sl = slice(ss, ss + s_chunk)
                    s = min(ss + s_chunk, S) - ss
                    if kind != "general":
                        if all_steps and s == S:
                            h = zz
                        else:
                            c = steps_np[sl]
                            h = zz[:, int(c[0]):int(c[0]) + s] if np.array_equal(c, c[0] + np.arange(s)) \
                                else zz.index_select(1, steps0[sl])
                    else:
                        h = torch.where(masks[0][sl][None], vals[0], a[:, None, :])  # (n, s, m0)
                        if lin is not None:
                            h = lin(h)
                    h = h.reshape(n * s, -1)
                    for off, (_, mod) in enumerate(rest):
                        h = mod(h)
                        i = touched.get(start + off)
                        if i is not None:
                            h = torch.where(masks[i][sl][None], vals[i], h.reshape(n, s, -1)).reshape(n * s, -1)
                    logits = h.reshape(n, s, -1)
                    ok = (logits.argmax(-1) == yb[:, None]).to(self.dtype)  # (n, s)
                    correct[sl] += (oh.T @ ok).T.double()
                    # cross-entropy = logsumexp - logit of the class (4x faster than F.cross_entropy
                    # on many rows of 10 classes)
                    mx = logits.amax(-1, keepdim=True)
                    lse = (logits - mx).exp_().sum(-1).log_().add_(mx[..., 0])
                    picked = logits.gather(2, yb[:, None, None].expand(n, s, 1))[..., 0]
                    loss_sum[sl] += (lse - picked).double().sum(0)
        return self._finish(correct, loss_sum)

    def _finish(self, correct, loss_sum):
        correct = correct.cpu().numpy()
        N = len(self.y_np)
        acc = correct.sum(1) / N
        with np.errstate(divide="ignore", invalid="ignore"):
            cls = np.where(self.class_counts > 0, correct / np.maximum(self.class_counts, 1), np.nan)
        return acc, loss_sum.cpu().numpy() / N, cls

    def _evaluate_hooks(self, layers, masks, value, cumulative):
        """Generic path: one hooked forward pass from the input per step."""
        layers = list(layers)
        for n in layers:
            self._index(n)
        modules = dict(self.model.named_modules())
        vals = [self._value(n, value if isinstance(value, str) else value[i]) for i, n in enumerate(layers)]
        masks = list(masks)
        cum = list(cumulative) if cumulative is not None else [None] * len(layers)
        for i, n in enumerate(layers):
            if masks[i] is None:
                masks[i] = _cumulative_masks(*cum[i], self.n_units(n))
            masks[i] = torch.as_tensor(masks[i], dtype=torch.bool, device=self.device)
        S = masks[0].shape[0]
        correct = torch.zeros(S, self.n_classes, dtype=torch.float64)
        loss_sum = torch.zeros(S, dtype=torch.float64)
        current = {}
        handles = []

        def make(i):
            def hook(mod, args, out):
                return torch.where(current[i], vals[i], out)
            return hook
        try:
            with _ModelState(self.model):
                for i, n in enumerate(layers):
                    handles.append(modules[n].register_forward_hook(make(i)))
                for s in range(S):
                    for i in range(len(layers)):
                        current[i] = masks[i][s]
                    logits = self._forward_full(self.X)
                    ok = (logits.argmax(1) == self.y).to(self.dtype)
                    correct[s] = (ok @ self._onehot).double().cpu()
                    loss_sum[s] = F.cross_entropy(logits, self.y, reduction="sum").double().cpu()
        finally:
            for h in handles:
                h.remove()
        return self._finish(correct, loss_sum)

    # -- user-facing ---------------------------------------------------------------------
    def curve(self, layer: str, order, counts=None, value="zero", *, measure=None,
              direction: str = "custom", seed=None) -> AblationCurve:
        """Cumulative ablation of ``layer`` in ``order`` (unit indices); ``counts``
        default ``0..units``."""
        m = self.n_units(layer)
        order = _check_order(order, m, layer)
        counts = _counts_arg(counts, len(order), f"layer {layer!r} (order of {len(order)})"
                             if len(order) < m else f"layer {layer!r}")
        acc, loss, cls = self.evaluate_masks([layer], [None], value, cumulative=[(order, counts)])
        return AblationCurve(layer=layer, layers=(layer,), measure=measure, direction=direction, counts=counts,
                             accuracy=acc, loss=loss, class_accuracy=cls, order=order,
                             order_layer=np.zeros(len(order), dtype=np.int64),
                             value=value if isinstance(value, str) else "custom", seed=seed, n_units=m,
                             method=self.method)

    def network_curve(self, layers: Sequence[str], order_layer, order, counts=None, value="zero", *,
                      measure=None, direction="custom", seed=None) -> AblationCurve:
        """Cumulative ablation over several layers: step ``s`` ablates the first
        ``counts[s]`` pairs ``(layers[order_layer[i]], order[i])``. The prefix up to the
        first layer is computed once and reused."""
        layers = list(layers)
        pos = [self._index(n) for n in layers]
        srt = np.argsort(pos, kind="stable")
        if not np.array_equal(srt, np.arange(len(layers))):
            raise ValueError("layers must be given in the model's order, e.g. " + str([layers[i] for i in srt]))
        order_layer = np.asarray(order_layer, dtype=np.int64)
        order = np.asarray(order, dtype=np.int64)
        sizes = [self.n_units(n) for n in layers]
        total = sum(sizes)
        if len(order) != len(order_layer):
            raise ValueError("order and order_layer must have the same length")
        if order_layer.size and (order_layer.min() < 0 or order_layer.max() >= len(layers)):
            raise ValueError("order_layer must index into layers")
        flat_id = np.concatenate([[0], np.cumsum(sizes)])[order_layer] + order
        if order.size and (order.min() < 0 or np.any(order >= np.asarray(sizes)[order_layer])):
            raise ValueError("order holds a unit index beyond its layer's size")
        if len(np.unique(flat_id)) != len(flat_id):
            raise ValueError("order lists a neuron twice")
        counts = _counts_arg(counts, len(order), f"the network ({total} neurons in {layers})")
        masks, cum = [], []
        for i, n in enumerate(layers):
            sel = order_layer == i
            sub = order[sel]
            pos_in_global = np.flatnonzero(sel)  # positions where this layer's units appear
            c_i = np.searchsorted(pos_in_global, counts, side="left")  # units of layer i among the first counts[s]
            if i == 0:
                masks.append(None)
                cum.append((sub, c_i))
            else:
                masks.append(_cumulative_masks(sub, c_i, sizes[i]))
                cum.append(None)
        acc, loss, cls = self.evaluate_masks(layers, masks, value, cumulative=cum)
        return AblationCurve(layer="network", layers=tuple(layers), measure=measure, direction=direction,
                             counts=counts, accuracy=acc, loss=loss, class_accuracy=cls, order=order,
                             order_layer=order_layer, value=value if isinstance(value, str) else "custom",
                             seed=seed, n_units=total, method=self.method)

    def single(self, layer: str, value="zero"):
        """Accuracy, loss and per-class accuracy with each neuron ablated alone: arrays
        ``(units,)``, ``(units,)``, ``(units, classes)``."""
        m = self.n_units(layer)
        eye = torch.eye(m, dtype=torch.bool)
        return self.evaluate_masks([layer], [eye], value, single=True)


def _cumulative_masks(order, counts, m: int) -> torch.Tensor:
    """Bool ``(steps, m)``: step ``s`` masks ``order[:counts[s]]`` (no loop)."""
    order = torch.as_tensor(np.asarray(order), dtype=torch.long)
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.long)
    rank = torch.full((m,), len(order) + 1, dtype=torch.long)
    rank[order] = torch.arange(len(order))
    return rank[None, :] < counts[:, None]


def _check_order(order, m: int, layer: str) -> np.ndarray:
    o = np.asarray(to_numpy(order, "order")).astype(np.int64).reshape(-1)
    if o.size > m:
        raise ValueError(f"layer {layer!r} has {m} neurons but the order lists {o.size}; "
                         "an order is a permutation (or a subset) of 0..units-1")
    if o.size and (o.min() < 0 or o.max() >= m):
        raise ValueError(f"order holds unit indices outside 0..{m - 1} of layer {layer!r}")
    if len(np.unique(o)) != len(o):
        raise ValueError("order lists a neuron twice; pass a permutation of the units")
    return o


def ablation_order(values, direction: str = "descending", seed: int | None = None) -> np.ndarray:
    """Unit indices sorted by ``values`` (stable, ties keep index order), or a random
    permutation (``direction="random"``, ``seed``)."""
    values = np.asarray(to_numpy(values, "values"), dtype=np.float64).reshape(-1)
    if direction == "ascending":
        return np.argsort(values, kind="stable")
    if direction == "descending":
        return np.argsort(-values, kind="stable")
    if direction == "random":
        g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        return torch.randperm(len(values), generator=g).numpy()
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def ablation_curve(model: nn.Module, X, y, layer: str, order, counts=None, value="zero",
                   **engine_kw) -> AblationCurve:
    """One cumulative-ablation curve (a convenience around :class:`AblationEngine`)."""
    return AblationEngine(model, X, y, **engine_kw).curve(layer, order, counts, value)


def reference_ablation_curve(model: nn.Module, X, y, layer: str, order, counts=None, value="zero",
                             batch_size: int = 100_000) -> AblationCurve:
    """The plain approach (the anchor): for every step, a forward hook on ``layer`` sets
    the ablated outputs to ``value`` and the whole model runs again from the input.
    ``value="mean"`` uses the mean over ``X``. Slow by design; hooks always removed."""
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        raise _unknown_layer(layer, [n for n in modules if n])
    X = _as_float_tensor(X, "X")
    dev, dt = _model_dtype(model)
    X = X.to(dev, dt)
    flags = [(m, m.training) for m in model.modules()]
    handles = []
    state = {"mask": None}
    captured = []

    def hook(mod, args, out):
        if state["mask"] is not None:
            return torch.where(state["mask"], state["value"], out)
        captured.append(out.detach().clone())
        return None

    try:
        model.eval()
        with torch.no_grad():
            handles.append(modules[layer].register_forward_hook(hook))
            base = torch.cat([model(X[s:s + batch_size]) for s in range(0, len(X), batch_size)])
            acts_all = torch.cat(captured)
            if acts_all.ndim != 2:
                raise ValueError(f"layer {layer!r} must output (samples, units)")
            m = acts_all.shape[1]
            y_np = _labels(y, len(X), "X", base.shape[1])
            yt = torch.from_numpy(y_np).to(dev)
            if isinstance(value, str):
                if value not in VALUES:
                    raise ValueError(f"value must be one of {VALUES} or an array, got {value!r}")
                v = acts_all.mean(0) if value == "mean" else torch.zeros(m, dtype=dt, device=dev)
            else:
                v = _as_float_tensor(value, "value").to(dev, dt)
            order = _check_order(order, m, layer)
            counts = _counts_arg(counts, len(order), f"layer {layer!r}")
            state["value"] = v
            C = base.shape[1]
            acc = np.empty(len(counts))
            loss = np.empty(len(counts))
            cls = np.empty((len(counts), C))
            ccount = np.bincount(y_np, minlength=C)
            for s, c in enumerate(counts):  # the plain approach: one full forward per step
                mask = torch.zeros(m, dtype=torch.bool, device=dev)
                mask[torch.as_tensor(order[:c], dtype=torch.long)] = True
                state["mask"] = mask
                out = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
                ok = out.argmax(1) == yt
                acc[s] = float(ok.double().mean())
                loss[s] = float(F.cross_entropy(out, yt, reduction="sum").double()) / len(X)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cls[s] = np.bincount(y_np, weights=ok.cpu().numpy().astype(np.float64), minlength=C) / ccount
    finally:
        for h in handles:
            h.remove()
        for mod, f in flags:
            mod.training = f
    return AblationCurve(layer=layer, layers=(layer,), measure=None, direction="custom", counts=counts,
                         accuracy=acc, loss=loss, class_accuracy=cls, order=order,
                         order_layer=np.zeros(len(order), dtype=np.int64),
                         value=value if isinstance(value, str) else "custom", n_units=m, method="reference")


def curves_match(fast: AblationCurve, ref: AblationCurve, loss_rtol: float = 1e-4, max_flips: int | None = None,
                 n_samples: int | None = None) -> tuple[bool, str]:
    """Whether two curves agree to float tolerance: same counts, losses within
    ``loss_rtol`` and accuracies differing by at most ``max_flips`` predictions (near-ties
    in float32 may flip; default 0.05% of the samples, at least 1)."""
    if not np.array_equal(fast.counts, ref.counts):
        return False, "counts differ"
    n = n_samples or 10_000
    flips = max(1, int(0.0005 * n)) if max_flips is None else max_flips
    dacc = np.abs(fast.accuracy - ref.accuracy).max()
    dloss = np.abs(fast.loss - ref.loss).max() / max(np.abs(ref.loss).max(), 1e-12)
    ok = dacc <= flips / n + 1e-12 and dloss <= loss_rtol
    return bool(ok), f"max |d accuracy| = {dacc:.2e} ({dacc * n:.0f} of {n} predictions), max rel |d loss| = {dloss:.2e}"


# ======================================================================================
# The study: all curves of several layers
# ======================================================================================
@dataclass(repr=False)
class AblationStudy:
    """Curves for several layers, measures, directions and random seeds, plus the
    network-wide curves (``layer == "network"``). Look-ups: :meth:`get`, :meth:`random`."""

    curves: list
    measures: NeuronMeasures
    base_accuracy: float
    layers: list
    value: str = "zero"
    meta: dict = field(default_factory=dict)

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

    def __repr__(self) -> str:
        return (f"AblationStudy({len(self.curves)} curves, layers={self.layers}, "
                f"base accuracy {self.base_accuracy:.3f}, value={self.value!r})")


@with_thread_policy
def ablation_study(model: nn.Module, X, y, measures: NeuronMeasures, layers=None, *,
                   measure_names: Sequence[str] = MEASURES, directions=("ascending", "descending"),
                   n_random: int = 5, seed: int = 0, value="zero", counts=None, network: bool = False,
                   network_normalize: str | None = None, engine: AblationEngine | None = None,
                   progress: bool = False, **engine_kw) -> AblationStudy:
    """All curves: for each layer (default: the layers of ``measures``), each measure and
    direction, plus ``n_random`` random orders (seeds ``seed .. seed+n_random-1``).
    ``network=True`` adds whole-network curves ordered by each measure over all
    ``layers`` (``network_normalize="rank"`` first turns each layer's values into
    within-layer ranks in ``[0, 1]``, the fix for the cross-layer pitfall)."""
    layers = list(measures.names) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    for mname in measure_names:
        if mname not in MEASURES:
            raise ValueError(f"measure {mname!r} unknown; choose from {MEASURES}")
    eng = engine or AblationEngine(model, X, y, **engine_kw)
    for n in layers:
        eng._index(n)
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
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="ablation curves", leave=False)
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
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return AblationStudy(curves=curves, measures=measures, base_accuracy=eng.base_accuracy, layers=layers,
                         value=value if isinstance(value, str) else "custom",
                         meta={"n_random": n_random, "seed": seed, "network_normalize": network_normalize})


def _within_layer_rank(vals, li):
    """Each value's rank within its layer scaled to [0, 1] (vectorised: one lexsort)."""
    o = np.lexsort((vals, li))
    rank = np.empty(len(vals))
    sizes = np.bincount(li)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(len(vals)) - starts[li[o]]
    rank[o] = pos / np.maximum(sizes[li[o]] - 1, 1)
    return rank


# ======================================================================================
# 3. Analysis
# ======================================================================================
@dataclass(repr=False)
class SingleImportance:
    """Importance of each neuron alone: ``accuracy_drop[j] = base - acc(without j)``,
    ``loss_increase`` likewise, ``class_drop (units, classes)``."""

    layer: str
    accuracy_drop: np.ndarray
    loss_increase: np.ndarray
    class_drop: np.ndarray
    base_accuracy: float
    value: str = "zero"

    def __repr__(self) -> str:
        return (f"SingleImportance({self.layer!r}, {len(self.accuracy_drop)} units, "
                f"max drop {self.accuracy_drop.max():.4f})")


@with_thread_policy
def single_neuron_importance(model_or_engine, X=None, y=None, layers=None, value="zero", **engine_kw) -> dict:
    """``{layer: SingleImportance}``: the drop in accuracy (and rise in loss) when one
    neuron alone is ablated, all neurons of a layer in one batched evaluation."""
    eng = model_or_engine if isinstance(model_or_engine, AblationEngine) else \
        AblationEngine(model_or_engine, X, y, **engine_kw)
    if layers is None:
        layers = hidden_layers(eng.model)
    layers = [layers] if isinstance(layers, str) else list(layers)
    out = {}
    base_loss = float(F.cross_entropy(eng.base_logits, eng.y).double())
    with np.errstate(invalid="ignore", divide="ignore"):
        base_cls = np.where(eng.class_counts > 0,
                            np.bincount(eng.y_np, weights=(eng.base_logits.argmax(1) == eng.y).cpu().numpy()
                                        .astype(np.float64), minlength=eng.n_classes) / np.maximum(eng.class_counts, 1),
                            np.nan)
    for n in layers:
        acc, loss, cls = eng.single(n, value)
        out[n] = SingleImportance(layer=n, accuracy_drop=eng.base_accuracy - acc, loss_increase=loss - base_loss,
                                  class_drop=base_cls[None] - cls, base_accuracy=eng.base_accuracy,
                                  value=value if isinstance(value, str) else "custom")
    return out


@dataclass(repr=False)
class ImportanceCorrelation:
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

    def __repr__(self) -> str:
        lines = [f"{r['layer']:>14} {r['measure']:>12}: rho = {r['spearman']:+.3f}" for r in self.table()]
        return "ImportanceCorrelation(\n  " + "\n  ".join(lines) + "\n)"


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


# ======================================================================================
# Exercise checker
# ======================================================================================
def check_kl_profile(fn: Callable) -> str:
    """Checker for the chapter's exercise: ``fn(counts)`` takes a joint histogram
    ``(bins, classes)`` of one neuron and must return the per-class profile
    ``KL(P_T|y || P_T)`` in bits, shape ``(classes,)``. Returns a message on success;
    raises ``AssertionError`` saying what is wrong otherwise."""
    cases = [
        np.array([[10, 0], [0, 10]]),               # copies a balanced binary label
        np.array([[5, 5], [5, 5]]),                 # independent of the label
        np.array([[25, 0, 0, 0], [0, 25, 25, 25]]), # fires for class 0 only
        np.array([[3, 1, 0], [1, 4, 2], [0, 2, 7]]),
    ]
    for c in cases:
        want = kl_profile_from_counts(c)
        try:
            got = np.asarray(fn(c.copy()), dtype=np.float64)
        except Exception as exc:
            raise AssertionError(f"your function raised {type(exc).__name__}: {exc} on counts\n{c}") from exc
        if got.shape != want.shape:
            raise AssertionError(f"expected one value per class, shape {want.shape}, got {got.shape}. "
                                 "Sum over the bins axis (axis 0), not over the classes.")
        if np.allclose(got, want, atol=1e-9):
            continue
        if np.allclose(got, want * _LN2, atol=1e-9):
            raise AssertionError("your values are in nats: use np.log2 (bits), not np.log")
        pt = c.sum(1) / c.sum()
        pty = c / c.sum(0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            rev = np.nansum(np.where(pt[:, None] > 0, pt[:, None] * np.log2(pt[:, None] / pty), 0), axis=0)
        if np.allclose(got, rev, atol=1e-9, equal_nan=True) or not np.all(np.isfinite(got)):
            raise AssertionError("this looks like KL(P_T || P_T|y) (reversed) or gives inf/nan: the profile is "
                                 "KL(P_T|y || P_T) = sum_t p(t|y) log2(p(t|y) / p(t)), and 0 log 0 = 0")
        prior = c.sum(0) / c.sum()
        if np.allclose(got, want * prior, atol=1e-9):
            raise AssertionError("you weighted each class by p(y): that gives the terms of I(T;Y); "
                                 "the profile itself is unweighted")
        raise AssertionError(f"wrong values for counts\n{c}\nexpected {np.round(want, 4)}, got {np.round(got, 4)}. "
                             "Normalise each class column to p(t|y), the row sums to p(t).")
    return "correct: the p(y)-weighted mean of your profile is I(T;Y), its maximum the selectivity"
