r"""Relay information and greedy module search (Hintze & Adami, Entropy 2023).

Per class ``n`` of a classifier, with ``X_in = 1[label = n]`` and
``X_out = 1[argmax output = n]`` and the hidden layer's neurons binarised one by one,
the relay information of a set ``Y_R`` of hidden neurons (``Y_0`` = the rest of the
layer) is

.. math::

    I_R(Y_R) = I(X_{in}; X_{out} \mid Y_0) - I(X_{in}; X_{out} \mid Y_R, Y_0)
             = I(X_{in}; X_{out}; Y_R \mid Y_0)

(plug-in, bits). ``I_R(\emptyset) = 0``; it is not monotone and can be negative.

Greedy *shrinking subset aggregation*: start with all neurons in ``Y_R``; at each step
move to ``Y_0`` the neuron whose removal leaves ``I_R`` highest (the authors' code uses
the maximum; the pseudo-code in the paper says "min"); record the nested sets down to
the empty set. One call of :func:`nifkit.info.cmi_extended` scores every candidate of
a step. Ties go to the lowest neuron index.

The aggregated relay information and smearedness are *reconstructions* (the formulas
of the paper's section 2.7 and of Sardar, Khan, Hintze & Mehra 2023 were not at hand):
see :func:`aggregated_relay` and :func:`smearedness` for the documented choices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import torch

from .._validation import as_codes
from ..data.stream import STREAM_BATCH, gather_across_processes
from ..info import KeyCounts, binarize, binary_thresholds, reduce_across_processes
from ..info.keys import mixed_radix, row_keys
from ..models.units import hidden_layout
from ..record.stream import stream_layers
from ..info.groups import MAX_ALL_SUBSETS, cmi_all_subsets, cmi_extended, cmi_from_labels, compact, group_labels
from ..results import Result
from .._validation import checked

__all__ = [
    "class_variables",
    "relay_information",
    "ModuleSearch",
    "module_search",
    "reference_module_search",
    "exhaustive_relay",
    "greedy_vs_exhaustive",
    "aggregated_relay",
    "smearedness",
    "MAX_EXHAUSTIVE",
    "model_module_search",
]

#: widest layer :func:`exhaustive_relay` accepts (2^20 subsets as in the paper; the
#: core enumerates up to nifkit.info.groups.MAX_ALL_SUBSETS)
MAX_EXHAUSTIVE = min(22, MAX_ALL_SUBSETS)


# ----------------------------------------------------------------------------- inputs
def _check_codes(codes):
    c = as_codes(codes, "codes")
    if c.ndim != 2:
        raise ValueError(f"codes must be (samples, neurons) hidden codes, got shape {c.shape}. "
                         "Binarise activations first: nifkit.info.binarize(hidden)")
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"codes must have samples and neurons, got shape {c.shape}")
    return c


def _check_labels(labels, predicted, n):
    lab = as_codes(labels, "labels")
    pred = as_codes(predicted, "predicted")
    if lab.ndim != 1 or pred.ndim != 1:
        raise ValueError("labels and predicted must be 1-D class indices (samples,)")
    if len(lab) != n or len(pred) != n:
        raise ValueError(f"labels ({len(lab)}) and predicted ({len(pred)}) must have one entry per sample of "
                         f"codes ({n}); record the hidden layer and the outputs on the same samples")
    return lab, pred


@checked
def class_variables(labels, predicted, cls: int):
    """``X_in = 1[labels = cls]`` and ``X_out = 1[predicted = cls]`` (uint8 each);
    raises ValueError when ``cls`` never occurs among the labels."""
    lab = as_codes(labels, "labels")
    pred = as_codes(predicted, "predicted")
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)):
        raise TypeError(f"cls must be an integer class index, got {cls!r}")
    if not np.any(lab == cls):
        present = np.unique(lab).tolist()
        raise ValueError(f"class {cls} does not occur in labels (classes present: {present}); pick one of those")
    return (lab == cls).astype(np.uint8), (pred == cls).astype(np.uint8)


def _check_group(group, m):
    g = np.asarray(list(group) if not isinstance(group, np.ndarray) else group)
    if g.dtype == bool:
        if g.shape != (m,):
            raise ValueError(f"a boolean group must have one entry per neuron ({m}), got shape {g.shape}")
        return np.flatnonzero(g)
    g = g.astype(np.int64).reshape(-1)
    bad = [int(i) for i in g if i < 0 or i >= m]
    if bad:
        raise ValueError(f"group has unknown neurons {bad}: the layer has neurons 0..{m - 1}")
    if len(np.unique(g)) != len(g):
        raise ValueError(f"group lists a neuron twice: {g.tolist()}; give each neuron once")
    return np.sort(g)


def relay_information(x_in, x_out, codes, group) -> float:
    r"""``I_R(Y_R) = I(X_in; X_out | Y_0) - I(X_in; X_out | Y_R, Y_0)`` in bits for the
    neurons ``group`` (indices or a boolean mask over the columns of ``codes``);
    ``Y_0`` is every other column. For a class of a classifier get ``x_in, x_out``
    from :func:`class_variables`."""
    c = _check_codes(codes)
    g = _check_group(group, c.shape[1])
    if len(g) == 0:
        return 0.0
    rest = np.setdiff1d(np.arange(c.shape[1]), g)
    l0, g0 = group_labels(c, rest)
    la, ga = group_labels(c)
    return cmi_from_labels(x_in, x_out, l0, g0) - cmi_from_labels(x_in, x_out, la, ga)


# ----------------------------------------------------------------------------- greedy
@dataclass(repr=False)
class ModuleSearch(Result):
    """Greedy shrinking-subset search for every class.

    ``order[i, k]``: the neuron removed at step ``k`` for ``classes[i]``;
    ``curve[i, k]``: ``I_R`` of the set left after ``k`` removals (``curve[:, 0]`` is the
    whole layer, ``curve[:, -1] = 0`` the empty set), bits.
    """

    classes: np.ndarray
    order: np.ndarray
    curve: np.ndarray
    n_neurons: int

    plotter = "nifkit.relay.plots:plot_relay_curves"

    def row(self, cls) -> int:
        """The row of class ``cls`` in ``curve`` and ``order`` (ValueError if not searched)."""
        hits = np.flatnonzero(self.classes == cls)
        if not len(hits):
            raise ValueError(f"class {cls} was not searched; searched classes: {self.classes.tolist()}")
        return int(hits[0])

    def set_at(self, cls, size: int) -> np.ndarray:
        """The greedy set of ``size`` neurons for ``cls`` (sorted indices)."""
        if not 0 <= size <= self.n_neurons:
            raise ValueError(f"size must be in 0..{self.n_neurons}, got {size}")
        return np.sort(self.order[self.row(cls), self.n_neurons - size:])

    def relay_at(self, cls, size: int) -> float:
        return float(self.curve[self.row(cls), self.n_neurons - size])

    def module(self, cls, size: int | None = None) -> np.ndarray:
        """The module of ``cls``: the greedy set of the known ``size``, or (``None``) the
        set just before the largest drop of the curve (the last removal that costs the
        most relay information)."""
        if size is None:
            drops = -np.diff(self.curve[self.row(cls)])  # drop at step k: removing order[k]
            size = self.n_neurons - int(np.argmax(drops))
        return self.set_at(cls, size)

    def recovered(self, true_modules: dict) -> dict:
        """``{cls: True/False}``: does the greedy set of the true module's size equal it?"""
        return {c: bool(np.array_equal(self.set_at(c, len(m)), np.sort(np.asarray(m))))
                for c, m in true_modules.items() if c in self.classes}

    def table(self) -> list:
        return [{"class": int(c), "I_R(all)": float(self.curve[i, 0]), "best pair": self.set_at(c, 2).tolist(),
                 "I_R(pair)": float(self.curve[i, self.n_neurons - 2])} for i, c in enumerate(self.classes)]


def _greedy_one(x_in, x_out, codes):
    n, m = codes.shape
    full, gf = group_labels(codes)
    const = cmi_from_labels(x_in, x_out, full, gf)
    remaining = list(range(m))
    base = np.zeros(n, np.int64)  # compact labels of Y_0 (empty at first)
    order, curve = [], [0.0]
    curve[0] = cmi_from_labels(x_in, x_out, base, 1) - const
    for _ in range(m):  # greedy steps; each scores every candidate in one call
        scores = cmi_extended(x_in, x_out, base, codes[:, remaining]) - const
        k = int(np.argmax(scores))
        j = remaining.pop(k)
        order.append(j)
        curve.append(float(scores[k]))
        base, _ = compact(base * (int(codes[:, j].max()) + 1) + codes[:, j])
    curve[-1] = 0.0  # the empty set: I(X;Y|all) - I(X;Y|all), exactly
    return np.array(order), np.array(curve)


@checked
def module_search(codes, labels, predicted, classes=None) -> ModuleSearch:
    """Greedy module search for each class (default: every class in ``labels``).

    ``codes``: binary (or small-integer) hidden codes ``(samples, neurons)``;
    ``labels``: true classes; ``predicted``: the network's argmax outputs.
    """
    c = _check_codes(codes)
    lab, pred = _check_labels(labels, predicted, len(c))
    classes = np.unique(lab) if classes is None else np.atleast_1d(np.asarray(classes))
    orders, curves = [], []
    for cls in classes:  # loop over classes (not candidates)
        xi, xo = class_variables(lab, pred, int(cls))
        o, cv = _greedy_one(xi, xo, c)
        orders.append(o)
        curves.append(cv)
    return ModuleSearch(classes=classes.astype(int), order=np.array(orders), curve=np.array(curves),
                        n_neurons=c.shape[1], settings={"greedy": "max I_R after removal, ties to lowest index"})


def _plugin_entropy_unique(*cols):
    """H of the joint rows with np.unique (the authors' style of computation)."""
    joint = np.column_stack(cols)
    _, counts = np.unique(joint, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _cmi_unique(x, y, z):
    if z.shape[1] == 0:
        return _plugin_entropy_unique(x) + _plugin_entropy_unique(y) - _plugin_entropy_unique(x, y)
    return (_plugin_entropy_unique(x, z) + _plugin_entropy_unique(y, z) - _plugin_entropy_unique(x, y, z)
            - _plugin_entropy_unique(z))


@checked
def reference_module_search(codes, labels, predicted, classes=None) -> ModuleSearch:
    """The same greedy search written the straightforward way: a Python loop over the
    candidate sets of every step, each ``I_R`` from plug-in entropies of ``np.unique``
    rows. Slow; the anchor of ``benchmarks/bench_relay.py`` and a test reference."""
    c = _check_codes(codes)
    lab, pred = _check_labels(labels, predicted, len(c))
    classes = np.unique(lab) if classes is None else np.atleast_1d(np.asarray(classes))
    m = c.shape[1]
    orders, curves = [], []
    for cls in classes:
        xi, xo = class_variables(lab, pred, int(cls))
        const = _cmi_unique(xi, xo, c)
        remaining, removed = list(range(m)), []
        order, curve = [], [_cmi_unique(xi, xo, c[:, []]) - const]
        for _ in range(m):
            scores = [_cmi_unique(xi, xo, c[:, removed + [j]]) - const for j in remaining]
            k = int(np.argmax(scores))
            order.append(remaining[k])
            removed.append(remaining.pop(k))
            curve.append(scores[k])
        curve[-1] = 0.0
        orders.append(order)
        curves.append(curve)
    return ModuleSearch(classes=classes.astype(int), order=np.array(orders), curve=np.array(curves),
                        n_neurons=m, settings={"reference": "np.unique loop"})


# ----------------------------------------------------------------------------- exhaustive
@checked
def exhaustive_relay(codes, labels, predicted, cls: int, *, progress=False) -> np.ndarray:
    """``I_R`` of every subset of the layer for class ``cls``: an array of ``2^m`` values,
    entry ``b`` for the set of neurons whose bits are set in ``b``. Layers of at most
    :data:`MAX_EXHAUSTIVE` neurons (2^20 subsets take about a minute here)."""
    c = _check_codes(codes)
    m = c.shape[1]
    if m > MAX_EXHAUSTIVE:
        raise ValueError(f"the layer has {m} neurons; exhaustive search is limited to {MAX_EXHAUSTIVE} neurons "
                         f"(2^{MAX_EXHAUSTIVE} subsets). Use module_search (greedy) instead.")
    lab, pred = _check_labels(labels, predicted, len(c))
    xi, xo = class_variables(lab, pred, cls)
    cmi = cmi_all_subsets(xi, xo, c, progress=progress)  # indexed by the conditioning set Y_0
    # Y_R = b  <->  Y_0 = complement of b = (2^m - 1) - b: the reversed array
    return cmi[::-1] - cmi[0 if m == 0 else -1]


def popcount(b) -> np.ndarray:
    """Number of set bits of each integer of ``b`` (vectorised)."""
    b = np.asarray(b, dtype=np.uint64)
    out = np.zeros(b.shape, np.int64)
    while np.any(b):
        out += (b & np.uint64(1)).astype(np.int64)
        b = b >> np.uint64(1)
    return out


def greedy_vs_exhaustive(search: ModuleSearch, relay_all: np.ndarray, cls: int) -> np.ndarray:
    """For each set size ``k = 1..m``, the fraction of the ``C(m, k)`` subsets whose
    ``I_R`` is strictly higher than the greedy set's (Hintze & Adami report 0.04-0.23 %)."""
    m = search.n_neurons
    relay_all = np.asarray(relay_all, dtype=np.float64)
    if relay_all.shape != (1 << m,):
        raise ValueError(f"relay_all must hold 2^{m} values (exhaustive_relay of the same layer)")
    sizes = popcount(np.arange(1 << m))
    out = np.empty(m)
    for k in range(1, m + 1):  # loop over sizes
        g = search.set_at(cls, k)
        val = relay_all[int(np.sum(1 << g.astype(np.int64)))]
        same = sizes == k
        out[k - 1] = np.mean(relay_all[same] > val + 1e-12)
    return out


# ----------------------------------------------------------------------------- aggregates
AGGREGATIONS = ("drop", "last")


def aggregated_relay(search: ModuleSearch, how: str = "drop") -> np.ndarray:
    """Class x neuron matrix of aggregated relay information (bits) from the greedy
    curves. *Reconstruction* (the paper's exact formula was not at hand):

    ``"drop"`` (default): the relay information lost when the neuron was removed,
    ``I_R(S_k) - I_R(S_k \\ {j})`` at the step ``k`` that removed ``j``; a row sums to
    ``I_R`` of the whole layer.
    ``"last"``: ``I_R`` of the smallest greedy set that still contains the neuron.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"how must be one of {AGGREGATIONS}, got {how!r}")
    C, m = len(search.classes), search.n_neurons
    A = np.zeros((C, m))
    rows = np.arange(C)[:, None]
    if how == "drop":
        A[rows, search.order] = search.curve[:, :-1] - search.curve[:, 1:]
    else:
        A[rows, search.order] = search.curve[:, :-1]
    return A


def smearedness(matrix, axis: int = 1, clip_negative: bool = True) -> np.ndarray:
    r"""How evenly relay information is spread: *reconstruction* of Sardar, Khan,
    Hintze & Mehra's "smearedness" (their formula was not at hand).

    Each row (``axis=1``: per class, over neurons; ``axis=0``: per neuron, over classes)
    is turned into a distribution ``p = max(a, 0) / sum`` and its normalised entropy
    ``H(p) / log2(len)`` is returned: 0 when one neuron carries everything, 1 when all
    carry the same. Rows without positive mass give NaN. Average the result for one
    number per network.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 1:
        raise ValueError(f"matrix must be 2-D (classes, neurons), got shape {a.shape}")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (per neuron) or 1 (per class), got {axis!r}")
    if axis == 0:
        a = a.T
    if clip_negative:
        a = np.maximum(a, 0.0)
    elif np.any(a < 0):
        raise ValueError("matrix has negative entries; pass clip_negative=True to drop them")
    tot = a.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tot > 0, a / np.where(tot > 0, tot, 1), 0.0)
        h = -np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0.0).sum(axis=1)
    k = a.shape[1]
    out = h / np.log2(k) if k > 1 else np.zeros(len(a))
    out[tot[:, 0] <= 0] = np.nan
    return out


# ----------------------------------------------------------------------------- streaming
class _RelayRows:
    """The counts behind a module search: how often each row ``(codes of the layer's m
    units, label, predicted class)`` occurs, a :class:`nifkit.info.KeyCounts` of its
    mixed-radix key (binary codes, ``K`` classes); a layer whose rows need more than 62
    bits keeps the rows themselves (``m + 2`` small integers per sample)."""

    def __init__(self, m: int, k: int):
        self.card = np.array([2] * m + [k, k], np.int64)
        self.radix = mixed_radix(self.card)
        self.keys = KeyCounts() if self.radix is not None else None
        self.rows: list = []

    def update(self, codes, labels, predicted) -> None:
        rows = np.column_stack([codes, labels, predicted]).astype(np.int64)
        if self.keys is not None:
            self.keys.update(torch.from_numpy(row_keys(rows, self.card)))
        else:
            self.rows.append(rows.astype(np.uint8 if self.card.max() <= 256 else np.int64))

    def samples(self) -> tuple:
        """``(codes, labels, predicted)`` of every sample of every process, summed over
        processes (rows in key order: plug-in measures do not depend on the order)."""
        if self.keys is None:
            rows = gather_across_processes(np.concatenate(self.rows) if self.rows else
                                           np.zeros((0, len(self.card)), np.uint8)).astype(np.int64)
        else:
            reduce_across_processes(self.keys)
            keys, counts = self.keys.keys.cpu().numpy(), self.keys.counts.cpu().numpy()
            rows = np.repeat((keys[:, None] // self.radix[None, :]) % self.card[None, :], counts, axis=0)
        m = len(self.card) - 2
        return rows[:, :m].astype(np.uint8), rows[:, m], rows[:, m + 1]


def _relay_pass(model, data, name, binning, threshold, run) -> _RelayRows:
    """Stream the layer: ``"threshold"`` codes every batch at once (one pass); ``"kmeans2"``
    and ``"median"`` need every value of a unit (exact 1-D 2-means, the median), so the
    layer's reduced outputs ``(samples, units)`` are kept, gathered over processes for the
    thresholds (the same on every process), and then coded and counted."""
    acc, kept = None, []

    def visit(batch):
        nonlocal acc
        a = batch.acts[name].float().cpu().numpy()
        lab = batch.labels(name).numpy()
        pred = batch.logits.argmax(1).cpu().repeat_interleave(batch.positions[name]).numpy()
        if acc is None:
            acc = _RelayRows(a.shape[1], batch.logits.shape[1])
        if binning == "threshold":
            acc.update(binarize(a, "threshold", threshold), lab, pred)
        else:
            kept.append((a, lab, pred))

    run(visit)
    if acc is None:
        raise ValueError("data holds no samples; nothing to search")
    if kept:
        a = np.concatenate([k[0] for k in kept])
        thr = binary_thresholds(gather_across_processes(a), binning)
        acc.update(binarize(a, thresholds=thr), np.concatenate([k[1] for k in kept]),
                   np.concatenate([k[2] for k in kept]))
    return acc


@checked
def model_module_search(model, data, *, layer: str | None = None, binning: str = "kmeans2", threshold=0.0,
                        classes=None, channel_reduce: str = "mean", split: str = "train",
                        max_samples: int | None = None, batch_size: int = STREAM_BATCH, device=None,
                        num_threads: int | None = None, progress=False) -> ModuleSearch:
    """:func:`module_search` of a hidden ``layer`` of ``model`` (a units name, default the
    last hidden layer) over ``data`` read batch by batch (a DataLoader, a Dataset's
    ``split``, ``(X, y)``): each unit binarised (``binning``: ``"kmeans2"``, ``"median"``
    or ``"threshold"`` at ``threshold``; a conv layer's unit is a channel,
    ``channel_reduce``), the output variable the network's own prediction. The search
    reads only the counts of the distinct rows (codes, label, prediction), accumulated per
    batch and, under ``torchrun`` with a DistributedSampler-sharded loader, reduced across
    processes (``threshold``: one pass, nothing kept; ``kmeans2`` / ``median``: the layer's
    reduced outputs are kept for the thresholds, gathered over processes), so every
    process gets what one process gets on all the data, and the result equals
    :func:`module_search` on the recorded codes. ``device``: where the model runs (None:
    where it is); the counts are exact integers on the CPU."""
    from ..runtime import cpu_threads, model_device
    from .._validation import resolve_device

    if binning not in ("kmeans2", "median", "threshold"):
        raise ValueError(f"binning must be 'kmeans2', 'median' or 'threshold', got {binning!r}")
    dev = resolve_device(device) if device is not None else model_device(model)[0]  # None: the model's
    name = hidden_layout(model, None if layer is None else [layer])[-1][0]

    def run(visit):
        return stream_layers(model, data, [name], visit, channel_reduce=channel_reduce, split=split,
                             batch_size=batch_size, max_samples=max_samples, device=dev, progress=progress,
                             what="relay counts")

    with cpu_threads(num_threads, dev):
        codes, labels, predicted = _relay_pass(model, data, name, binning, threshold, run).samples()
        out = module_search(codes, labels, predicted, classes)
    out.settings.update(layer=name, binning=binning, n_samples=len(labels), channel_reduce=channel_reduce,
                        streamed=True)
    return out
