r"""Ground truth by knockouts, and each lens scored against it.

The truth of a neuron's importance is what the network loses without it: the measured
accuracy drop when the neuron is fixed at its mean (or 0) alone, and the mean drop over sets of
``k`` neurons of its layer that contain it (all :math:`\binom{m}{k}` sets when there are
at most ``max_sets``, else a seeded random sample), all through the one intervention
mechanism, :class:`nifkit.intervene.Knockouts` (batched; no loop over sets).

Each lens is scored by

* Spearman's :math:`\rho` between its score and the single-knockout drop (and the
  ``k``-set drop), pooled over the network and within each layer;
* precision of its top-``k``: :math:`|\mathrm{top}_k(\text{lens}) \cap
  \mathrm{top}_k(\text{drop})| / k`;
* the accuracy drop when its top-``k`` neurons are knocked out **together**, beside the
  best ``k``-set found by the knockouts;
* on a composed network with known modules: how many modules it recovers (the top-``h``
  neurons of its per-class scores for class ``t`` are the module of ``t``).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from ..data.stream import distributed, is_stream
from ..intervene import Knockouts
from ..runtime import cpu_threads
from ..models.units import hidden_neurons
from .harness import Comparison, check_inputs_fit, lens_data
from .streamed import StreamedKnockouts
from ..results import Result
from .._validation import as_array, checked

__all__ = ["KnockoutTruth", "knockout_truth", "LensScore", "score_lenses", "module_knockouts", "spearman"]


def spearman(a, b) -> float:
    """Spearman's rho (NaN when either vector is constant or shorter than 3: no ranking
    to correlate). Vectors of unequal length or holding NaN/inf are refused."""
    from scipy.stats import spearmanr

    a, b = as_array(a, "a", ndim=1).astype(float), as_array(b, "b", ndim=1).astype(float)
    if len(a) != len(b):
        raise ValueError(f"a and b must score the same units: {len(a)} and {len(b)} values")
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


@dataclass(repr=False)
class KnockoutTruth(Result):
    """Measured knockout drops. ``drop[i]``: accuracy drop with neuron ``i`` alone at 0;
    ``class_drop (neurons, classes)``; ``set_drop[i]``: mean drop over the ``k``-sets of
    its layer containing it; ``best_sets[layer]``: the ``k``-set with the largest drop and
    that drop; ``knockouts``: the :class:`~nifkit.intervene.Knockouts` (for more sets)."""

    neurons: list
    drop: np.ndarray
    class_drop: np.ndarray
    set_drop: np.ndarray
    k: int
    n_sets: dict
    best_sets: dict
    base_accuracy: float
    knockouts: Knockouts

    repr_skip = ("settings", "notes", "knockouts")

    def repr_extra(self) -> dict:
        return {"max_drop": float(self.drop.max())}

    def table(self) -> list[dict]:
        """One row per neuron: its single and mean ``k``-set knockout drops."""
        return [{"neuron": str(a), "drop": float(d), "set_drop": float(s)}
                for a, d, s in zip(self.neurons, self.drop.tolist(), self.set_drop.tolist())]

    @property
    def layers(self) -> list:
        return list(dict.fromkeys(a.layer for a in self.neurons))

    def masks(self, indices) -> list:
        """Per-layer bool masks ``(1, units)`` of a set of neuron indices."""
        idx = set(int(i) for i in np.atleast_1d(indices))
        out = []
        for lay in self.layers:
            pos = [i for i, a in enumerate(self.neurons) if a.layer == lay]
            out.append(np.array([[p in idx for p in pos]]))
        return out

    def set_accuracy_drop(self, sets) -> np.ndarray:
        """Accuracy drop of each set of neuron indices knocked out together (one batched
        evaluation; sets may span layers)."""
        sets = [np.atleast_1d(s) for s in sets]
        per = [self.masks(s) for s in sets]
        masks = [np.concatenate([p[li] for p in per]) for li in range(len(self.layers))]
        res = self.knockouts.evaluate(self.layers, masks, self.settings.get("value", "mean"))
        return self.base_accuracy - res.accuracy


@checked
def knockout_truth(model, data, *, layers=None, k: int = 2, max_sets: int = 5000, value: str = "mean",
                   split: str = "test", max_samples: int | None = None, seed: int = 0, device=None,
                   memory_budget: int | None = None, num_threads: int | None = None) -> KnockoutTruth:
    """Single-neuron and ``k``-set knockout drops of every hidden unit of ``layers``
    (default and meaning as in :func:`nifkit.models.hidden_layout`: a chain's hidden
    layers, a residual network's blocks; a unit of a conv output is a channel, knocked out
    as its whole map) (see the module docstring). ``data``: ``(X, y)`` or a Dataset (its
    ``split``, default the test part, so the truth is measured on samples the lenses did
    not see).

    ``value``: what a knocked-out neuron is fixed to, ``"mean"`` (default: its mean over
    the samples, so it carries no information about the input) or ``"zero"`` (the relay
    paper's choice). For tanh units with output biases 0 is not "absent" but a third
    state that can push an output up: on the composed network a zeroed module can make
    its class predicted more often, not less. A channel's mean is one value, its mean over the
    samples and all positions (:meth:`nifkit.intervene.Knockouts.unit_value`).

    ``data`` may be a DataLoader: it is read batch by batch, never gathered
    (:class:`nifkit.compare.streamed.StreamedKnockouts`: one pass for the base accuracy
    and the units' means, then per evaluation one pass in which every batch's correct
    answers per knockout are counted); under ``torchrun`` (a DistributedSampler-sharded
    loader, or in-memory data each process shards) the counts are reduced across
    processes and every process gets the truth of one process over all the data. On a
    stream ``max_samples`` keeps the first samples. The result's ``knockouts`` is then the
    streamed engine (``set_accuracy_drop`` and :func:`score_lenses` stream again).

    ``device``, ``memory_budget`` go to the batched knockouts
    (:class:`nifkit.intervene.Knockouts`; None = their defaults); ``num_threads``: torch
    CPU threads (None = 1 on the CPU, restored after)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (the size of the knocked-out sets), got {k!r}")
    if isinstance(max_sets, bool) or not isinstance(max_sets, (int, np.integer)) or max_sets < 1:
        raise ValueError(f"max_sets must be a positive integer (how many k-sets to knock out at most), got {max_sets!r}")
    if value not in ("mean", "zero"):
        raise ValueError(f"value must be 'mean' or 'zero' (what a knocked-out neuron is fixed to), got {value!r}")
    neurons = hidden_neurons(model, layers)
    layer_names = list(dict.fromkeys(a.layer for a in neurons))
    heavy = {} if memory_budget is None else {"memory_budget": memory_budget}
    with cpu_threads(num_threads, device):
        if is_stream(data) or distributed()[1] > 1:  # batch by batch, counts reduced across processes
            ko = StreamedKnockouts(model, data, layer_names, split=split, max_samples=max_samples, device=device,
                                   memory_budget=memory_budget, num_threads=num_threads)
            n_samples = ko.n
        else:
            X, y = lens_data(data, split, max_samples, seed)
            check_inputs_fit(model, X)
            ko = Knockouts(model, (X, y), device=device, **heavy)
            n_samples = len(X)
        settings = {"layers": layer_names, "k": int(k), "max_sets": max_sets, "split": split, "n_samples": n_samples,
                    "value": value, "seed": seed, "streamed": isinstance(ko, StreamedKnockouts)}
        return _truth(ko, neurons, k, max_sets, value, seed, settings)


def _truth(ko, neurons, k, max_sets, value, seed, settings) -> KnockoutTruth:
    layers = list(dict.fromkeys(a.layer for a in neurons))
    base_cls = ko.base_class_accuracy
    drop, cdrop, sdrop, n_sets, best = [], [], [], {}, {}
    rng = np.random.default_rng(seed)
    for lay in layers:  # loop over layers
        m = sum(a.layer == lay for a in neurons)
        if k > m:
            raise ValueError(f"k={k} is larger than layer {lay!r} ({m} neurons); pass k <= {m}")
        r = ko.evaluate(lay, np.eye(m, dtype=bool), value, single=True)
        drop.append(ko.base_accuracy - r.accuracy)
        cdrop.append(base_cls[None] - r.class_accuracy)
        total = comb(m, k)
        if total <= max_sets:
            sets = np.array(list(combinations(range(m), k)), dtype=np.int64)
        else:  # a seeded sample of distinct k-sets (argsort of random keys per row)
            sets = np.sort(np.argsort(rng.random((max_sets, m)), axis=1)[:, :k], axis=1)
            sets = np.unique(sets, axis=0)
        masks = np.zeros((len(sets), m), bool)
        np.put_along_axis(masks, sets, True, axis=1)
        acc = ko.evaluate(lay, masks, value).accuracy
        d = ko.base_accuracy - acc
        sdrop.append((masks.T @ d) / np.maximum(masks.sum(0), 1))
        n_sets[lay] = len(sets)
        b = int(np.argmax(d))
        best[lay] = (sets[b].tolist(), float(d[b]))
    return KnockoutTruth(neurons=neurons, drop=np.concatenate(drop), class_drop=np.concatenate(cdrop),
                         set_drop=np.concatenate(sdrop), k=int(k), n_sets=n_sets, best_sets=best,
                         base_accuracy=ko.base_accuracy, knockouts=ko, settings=settings)


def module_knockouts(truth: KnockoutTruth, modules: dict) -> np.ndarray:
    """``drop[t, c]``: the accuracy drop of class ``c`` when module ``t`` (neuron indices)
    is knocked out; on a composed network the largest entry of row ``t`` is ``c = t``."""
    ko = truth.knockouts
    keys = sorted(modules)
    per = [truth.masks(modules[t]) for t in keys]
    masks = [np.concatenate([p[li] for p in per]) for li in range(len(truth.layers))]
    res = ko.evaluate(truth.layers, masks, truth.settings.get("value", "mean"))
    return ko.base_class_accuracy[None] - res.class_accuracy


@dataclass(repr=False)
class LensScore(Result):
    """How well each lens predicts the knockout truth: one row per lens (see
    :func:`score_lenses`)."""

    rows: list
    k: int

    plotter = "nifkit.compare.plots:plot_topk_drops"

    def table(self) -> list:
        return self.rows

    def __getitem__(self, lens: str) -> dict:
        for r in self.rows:
            if r["lens"] == lens:
                return r
        raise KeyError(f"no lens {lens!r}; lenses: {[r['lens'] for r in self.rows]}")


@checked
def score_lenses(comparison: Comparison, truth: KnockoutTruth, *, k: int | None = None, modules: dict | None = None,
                 columns: dict | None = None) -> LensScore:
    """Score every lens of ``comparison`` against ``truth`` (same network).

    ``k``: size of the top sets (default ``truth.k``); ``modules``: ``{class: [neuron
    indices]}`` when known, to count recovered modules from each lens's per-class
    scores; ``columns``: ``{lens: column}`` to score another column than the primary.
    """
    if [str(a) for a in comparison.neurons] != [str(a) for a in truth.neurons]:
        raise ValueError("comparison and truth are of different networks (their hidden neurons differ); "
                         "compute both for the same model")
    k = truth.k if k is None else int(k)
    if not 1 <= k <= len(truth.neurons):
        raise ValueError(f"k must be in 1..{len(truth.neurons)}, got {k}")
    columns = dict(columns or {})
    true_top = set(np.argsort(-truth.drop, kind="stable")[:k].tolist())
    names = comparison.names
    tops = {n: np.argsort(-comparison.score(n, columns.get(n)), kind="stable")[:k] for n in names}
    joint = truth.set_accuracy_drop([tops[n] for n in names] + [sorted(true_top)])
    li = comparison.layer_of()
    rows = []
    for i, n in enumerate(names):
        s = comparison.score(n, columns.get(n))
        within = [spearman(s[li == L], truth.drop[li == L]) for L in range(len(comparison.layers))]
        row = {"lens": n, "column": columns.get(n, comparison.lenses[n].primary),
               "spearman": spearman(s, truth.drop), "spearman_sets": spearman(s, truth.set_drop),
               "spearman_within": float(np.nanmean(within)) if not np.all(np.isnan(within)) else float("nan"),
               "precision": len(true_top & set(tops[n].tolist())) / k, "topk": tops[n].tolist(),
               "topk_drop": float(joint[i]), "modules": None}
        pc = comparison.lenses[n].per_class
        if modules is not None and pc is not None:
            hit = 0
            for t, mem in modules.items():
                if t < len(pc) and np.all(np.isfinite(pc[t])):
                    hit += set(np.argsort(-pc[t], kind="stable")[:len(mem)].tolist()) == set(mem)
            row["modules"] = int(hit)
        rows.append(row)
    rows.append({"lens": "knockout (truth)", "column": "drop", "spearman": 1.0,
                 "spearman_sets": spearman(truth.drop, truth.set_drop), "spearman_within": 1.0, "precision": 1.0,
                 "topk": sorted(true_top), "topk_drop": float(joint[-1]), "modules": None})
    if modules is not None:
        cd = truth.class_drop.T  # (classes, neurons)
        rows[-1]["modules"] = int(sum(set(np.argsort(-cd[t], kind="stable")[:len(m)].tolist()) == set(m)
                                      for t, m in modules.items() if t < len(cd)))
    return LensScore(rows=rows, k=k)
