r"""Ordered ablation's measures as a lens: one score per hidden unit (the lens protocol,
:func:`neuron_scores`).

``mi`` = :math:`I(T;Y)` (primary), ``entropy`` = :math:`H(T)`, ``selectivity`` (KL,
max over classes), ``knockout`` = the accuracy drop of the unit alone set to 0. Per
class: the KL profile :math:`D_{KL}(P_{T|y=t}\|P_T)`. A convolutional layer's unit is a
channel: the measures read its map reduced by ``channel_reduce``
(:func:`nifkit.models.reduce_channels`; ``"positions"``: every position a sample with its
sample's label), the knockout fixes the whole map to 0. Layers: any layers of units
(:func:`nifkit.models.hidden_layout`).
"""
from __future__ import annotations

import time

import numpy as np

from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..models.units import hidden_layout, hidden_neurons
from ..results import NeuronScores
from .study import measure_layers, single_neuron_importance
from .._validation import checked

__all__ = ["neuron_scores"]


@checked
def neuron_scores(model, data, *, layers=None, n_bins: int = 8, binning: str = "minmax", channel_reduce: str = "mean",
                  split: str = "train", max_samples: int | None = None, seed: int = 0, device=None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None,
                  knockout_data=None, progress=False) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of ``layers``) by chapter 4's measures over
    ``data`` (labelled): :func:`measure_layers` (``n_bins`` ``binning`` bins per unit, conv
    channels reduced by ``channel_reduce``) and :func:`single_neuron_importance` (each unit
    alone set to 0, a channel's whole map) over ``knockout_data`` (default: ``data``; a
    knockout is a forward pass per unit, so held-out test images, fewer than the
    information measures need, are the usual choice on a CNN). ``raw`` is
    ``(NeuronMeasures, {layer: SingleImportance})``."""
    t0 = time.perf_counter()
    X, y = as_xy(data, split, max_samples=max_samples, seed=seed)
    names = [u for u, _, _ in hidden_layout(model, layers)]
    nm = measure_layers(model, (X, y), names, channel_reduce=channel_reduce, n_bins=n_bins, binning=binning,
                        device=device, memory_budget=memory_budget, num_threads=num_threads, progress=progress)
    ko = (X, y) if knockout_data is None else as_xy(knockout_data, "test")
    imp = single_neuron_importance(model, ko, layers=names, device=device, memory_budget=memory_budget,
                                   num_threads=num_threads)
    cols = {k: np.concatenate([nm[n].get(k) for n in names]) for k in ("mi", "entropy", "selectivity")}
    cols["knockout"] = np.concatenate([imp[n].accuracy_drop for n in names])
    per_class = np.concatenate([nm[n].kl_profile.T for n in names], 1)
    return NeuronScores(hidden_neurons(model, layers), cols, "mi", per_class, seconds=time.perf_counter() - t0,
                        raw=(nm, imp), settings={"lens": "ablation", "n_bins": n_bins, "binning": binning,
                                                 "channel_reduce": channel_reduce, "n_samples": len(X),
                                                 "knockout_samples": len(ko[0])},
                        notes=[f"ablation: {n_bins} {binning} bins per unit (conv channels: {channel_reduce} over "
                               "positions); knockout = accuracy drop, unit (a channel's whole map) set to 0"])
