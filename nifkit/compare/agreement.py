r"""Do the lenses agree? The lens x lens rank-correlation matrix, its bootstrap interval
over samples and its spread over training seeds, and chapter 4's cross-layer pitfall
applied to every lens.

* :func:`agreement_matrix`: Spearman's :math:`\rho` between the primary scores of every
  pair of lenses, over the hidden neurons (pooled over layers, or within one layer).
* :func:`bootstrap_agreement`: the whole comparison recomputed on ``n_boot`` resamples
  of the samples (drawn with replacement, seeded); the interval of each entry is the
  ``(alpha/2, 1 - alpha/2)`` percentile over resamples. Duplicated samples make binned
  estimates slightly optimistic; the interval says how much the agreement depends on
  which samples were measured, not on which network was trained.
* :func:`seed_agreement`: the comparison on networks trained with different seeds
  (neurons do not correspond between seeds, but the lens x lens matrix does); the
  interval is the range over seeds.
* :func:`cross_layer`: per lens, the rank correlation with the knockout truth pooled over
  all hidden neurons against the mean of the within-layer correlations, and the share of
  each layer in the lens's pooled top-``k``: a lens whose scale differs between layers
  ranks layers, not neurons, when pooled (chapter 4).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..runtime import check_seed
from .harness import DEFAULT_LENSES, Comparison, compare, lens_data
from .truth import KnockoutTruth, spearman
from ..results import Result
from .._validation import checked

__all__ = ["Agreement", "agreement_matrix", "bootstrap_agreement", "seed_agreement", "CrossLayer", "cross_layer"]


@checked
def agreement_matrix(comparison: Comparison, layer: str | None = None) -> np.ndarray:
    """``(lenses, lenses)`` Spearman's rho of the primary scores (NaN for a constant score),
    over all hidden neurons or those of ``layer``."""
    S = comparison.scores()
    if layer is not None:
        if layer not in comparison.layers:
            raise ValueError(f"unknown layer {layer!r}; hidden layers: {comparison.layers}")
        S = S[:, np.array([a.layer == layer for a in comparison.neurons])]
    L = len(S)
    out = np.eye(L)
    for i in range(L):  # loop over lens pairs (5 lenses: 10 pairs), each rho vectorised over neurons
        for j in range(i + 1, L):
            out[i, j] = out[j, i] = spearman(S[i], S[j])
    return out


@dataclass(repr=False)
class Agreement(Result):
    """``matrix``: the agreement of the reference comparison; ``replicates``: the matrices
    of every resample (or seed), ``(reps, lenses, lenses)``; ``low``/``high``: the
    interval; ``what``: ``"bootstrap over samples"`` or ``"training seeds"``."""

    names: list  # lens names: the rows and columns of matrix
    matrix: np.ndarray
    replicates: np.ndarray  # (replicates, lenses, lenses)
    low: np.ndarray
    high: np.ndarray
    what: str
    comparisons: list = field(default_factory=list)

    repr_skip = ("settings", "notes", "comparisons")
    plotter = "nifkit.compare.plots:plot_agreement"

    def table(self) -> list:
        n = self.names
        return [{"lens a": n[i], "lens b": n[j], "rho": float(self.matrix[i, j]), "low": float(self.low[i, j]),
                 "high": float(self.high[i, j])} for i in range(len(n)) for j in range(i + 1, len(n))]


@checked
def bootstrap_agreement(model, data, lenses=DEFAULT_LENSES, *, n_boot: int = 5, alpha: float = 0.1, seed: int = 0,
                        reference: Comparison | None = None, **compare_kw) -> Agreement:
    """The agreement matrix with a bootstrap interval over samples (see the module
    docstring). ``reference``: the comparison on the data itself, if already computed."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    X, y = lens_data(data, compare_kw.pop("split", "train"), compare_kw.pop("max_samples", None), seed)
    ref = reference if reference is not None else compare(model, (X, y), lenses, seed=seed, **compare_kw)
    rng = np.random.default_rng(seed)
    mats, comps = [], []
    for b in range(n_boot):  # loop over resamples
        idx = torch.from_numpy(rng.integers(0, len(X), len(X)))
        c = compare(model, (X[idx], y[idx]), lenses, seed=seed, **compare_kw)
        comps.append(c)
        mats.append(agreement_matrix(c))
    mats = np.array(mats)
    return Agreement(names=ref.names, matrix=agreement_matrix(ref), replicates=mats,
                     low=np.nanpercentile(mats, 100 * alpha / 2, axis=0),
                     high=np.nanpercentile(mats, 100 * (1 - alpha / 2), axis=0), what="bootstrap over samples",
                     settings={"n_boot": n_boot, "alpha": alpha, "seed": seed}, comparisons=[ref] + comps)


def seed_agreement(build: Callable, seeds, data, lenses=DEFAULT_LENSES, **compare_kw) -> Agreement:
    """The agreement matrix of networks ``build(seed)`` for each of ``seeds`` (train them
    in ``build``; keep it to a few seeds); ``matrix`` is the mean over seeds and the
    interval the range."""
    if not callable(build):
        raise TypeError("build must be a function seed -> trained model")
    seeds = [check_seed(s, allow_none=False) for s in seeds]
    if len(seeds) < 2:
        raise ValueError("seed_agreement needs at least two seeds")
    mats, comps = [], []
    for s in seeds:  # loop over training seeds
        c = compare(build(s), data, lenses, seed=s, **compare_kw)
        comps.append(c)
        mats.append(agreement_matrix(c))
    mats = np.array(mats)
    return Agreement(names=comps[0].names, matrix=np.nanmean(mats, 0), replicates=mats, low=np.nanmin(mats, 0),
                     high=np.nanmax(mats, 0), what="training seeds", settings={"seeds": seeds}, comparisons=comps)


@dataclass(repr=False)
class CrossLayer(Result):
    """Per lens: ``pooled`` rho with the knockout drop over all hidden neurons,
    ``within`` the mean of the per-layer rhos (``per_layer``), and ``top_share[layer]``
    the share of the pooled top-``k`` neurons from each layer."""

    rows: list
    layers: list
    k: int

    def table(self) -> list:
        return self.rows


@checked
def cross_layer(comparison: Comparison, truth: KnockoutTruth, k: int | None = None) -> CrossLayer:
    """Chapter 4's cross-layer pitfall for every lens and for the truth itself (needs more
    than one hidden layer)."""
    layers = comparison.layers
    if len(layers) < 2:
        raise ValueError("cross_layer needs a network with more than one hidden layer; this one has "
                         f"{layers}. Pooled and within-layer rankings are the same for one layer.")
    li = comparison.layer_of()
    k = max(1, len(li) // 4) if k is None else int(k)
    rows = []
    for name in comparison.names + ["knockout (truth)"]:
        s = truth.drop if name == "knockout (truth)" else comparison.score(name)
        per = {lay: spearman(s[li == L], truth.drop[li == L]) for L, lay in enumerate(layers)}
        top = np.argsort(-s, kind="stable")[:k]
        rows.append({"lens": name, "pooled": spearman(s, truth.drop), "within": float(np.nanmean(list(per.values()))),
                     "per_layer": per, "top_share": {lay: float(np.mean(li[top] == L)) for L, lay in enumerate(layers)}})
    return CrossLayer(rows=rows, layers=layers, k=k)
