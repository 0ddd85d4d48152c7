r"""Conductance as a lens: one score per hidden unit (the lens protocol,
:func:`neuron_scores`).

``abs_conductance`` = :math:`\frac1N\sum_n |\mathrm{Cond}_j(x_n)|` toward the true class's
output (baseline zeros); per class: the same mean over the samples of class ``t``. The
reduction to one number per unit is nifkit's choice.

A convolutional layer's unit is a **channel**, and ``channel_reduce`` maps onto
conductance as follows (``c_{ncp}``: the conductance of channel ``c`` at position ``p``
for sample ``n``):

* ``"mean"`` (default): the channel's conductance is the **sum** over its positions,
  :math:`\mathrm{Cond}_c(x_n) = \sum_p c_{ncp}` (:meth:`Conductance.flat`,
  ``reduce="channel"``). Not the mean: conductance is additive, and only the sum keeps
  completeness (the channels of a layer every path crosses add up to
  :math:`F(x) - F(x')`); the mean would divide every channel of a layer by the same ``P``,
  ranking the channels of a layer alike but breaking the sum. Computed with
  ``layer_conductance(per_channel=True)``: the maps are never held;
* ``"max"``: :math:`\max_p |c_{ncp}|`, where the channel matters most;
* ``"positions"``: every position a sample of its own, the score the mean of
  :math:`|c_{ncp}|` over samples and positions (per class: the positions of the samples
  of class ``t``).
"""
from __future__ import annotations

import time

import numpy as np

from ..config import PATH_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..models.units import hidden_layout, hidden_neurons, positions_of, reduce_channels
from ..results import NeuronScores
from .attribution import layer_conductance
from .._validation import checked

__all__ = ["neuron_scores"]


def _channel_conductance(cond, name, channel_reduce, y):
    """``(|scores| (rows, units), labels of the rows)`` of one layer (see the module docstring)."""
    if channel_reduce == "mean":
        return np.abs(cond.flat(name, reduce="channel")).astype(np.float64), y
    m = cond.maps[name].float()
    if channel_reduce == "max":
        return reduce_channels(m.abs(), "max").double().numpy(), y
    return reduce_channels(m, "positions").abs().double().numpy(), np.repeat(y, positions_of(m))


@checked
def neuron_scores(model, data, *, layers=None, steps: int = 16, method: str = "riemann_trapezoid",
                  channel_reduce: str = "mean", batch_size: int = 256, split: str = "train",
                  max_samples: int | None = None, seed: int = 0, device=None, memory_budget: int = PATH_MEMORY_BUDGET,
                  num_threads: int | None = None, progress=False) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of ``layers``: any layers of units, see
    :func:`nifkit.models.hidden_layout`) by its mean absolute conductance toward the true
    class over ``data`` (labelled: ``(X, y)``, a Dataset's ``split``, a DataLoader of
    ``(x, y)``); a conv layer's channels as ``channel_reduce`` says (the module docstring).
    ``batch_size=256``: on the capstone's MNIST inputs 256 at a time was 2.2x faster than
    one big chunk (0.27 s vs 0.60 s, AMD EPYC, measured under the old 256 MiB default
    budget) and peaked ~80 MiB above the baseline instead of ~315.
    Returns :class:`~nifkit.results.NeuronScores` (column ``abs_conductance``; ``raw`` is
    the :class:`Conductance`)."""
    t0 = time.perf_counter()
    X, y = as_xy(data, split, max_samples=max_samples, seed=seed)
    names = [u for u, _, _ in hidden_layout(model, layers)]
    cond = layer_conductance(model, X, names, target="true", labels=y, steps=steps, method=method,
                             batch_size=batch_size, memory_budget=memory_budget, device=device,
                             num_threads=num_threads, seed=seed, progress=progress,
                             per_channel=channel_reduce == "mean")  # the channel sums only, not the maps
    y_np = y.numpy()
    n_classes = int(y_np.max()) + 1
    cols, per_class = [], []
    for n in names:  # loop over layers
        a, lab = _channel_conductance(cond, n, channel_reduce, y_np)
        onehot = np.eye(n_classes)[lab]  # (rows, classes)
        cols.append(a.mean(0))
        per_class.append(onehot.T @ a / np.maximum(onehot.sum(0), 1)[:, None])
    gap = float(np.abs(cond.gap).max())
    return NeuronScores(hidden_neurons(model, layers), {"abs_conductance": np.concatenate(cols)}, "abs_conductance",
                        np.concatenate(per_class, 1), seconds=time.perf_counter() - t0, raw=cond,
                        settings={"lens": "conductance", "steps": steps, "method": method,
                                  "channel_reduce": channel_reduce, "n_samples": len(X)},
                        notes=[f"conductance: {steps} steps {method}, baseline zeros, target true class; conv "
                               f"channels: {'summed over positions' if channel_reduce == 'mean' else channel_reduce}; "
                               f"max |completeness gap| {gap:.2g}"])
