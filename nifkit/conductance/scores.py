r"""Conductance as a lens: one score per hidden unit (the lens protocol,
:func:`neuron_scores`).

``abs_conductance`` = :math:`\frac1N\sum_n |\mathrm{Cond}_j(x_n)|` toward the true class's
output (baseline zeros); per class: the same mean over the samples of class ``t``. A
convolutional layer's unit is a channel (its map summed, :meth:`Conductance.flat` with
``reduce="channel"``). The reduction to one number per unit is nifkit's choice.
"""
from __future__ import annotations

import time

import numpy as np

from ..config import PATH_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..models.units import hidden_layout, hidden_neurons
from ..results import NeuronScores
from .attribution import layer_conductance
from .._validation import checked

__all__ = ["neuron_scores"]


@checked
def neuron_scores(model, data, *, layers=None, steps: int = 16, method: str = "riemann_trapezoid",
                  batch_size: int = 256, split: str = "train", max_samples: int | None = None, seed: int = 0,
                  device=None, memory_budget: int = PATH_MEMORY_BUDGET, num_threads: int | None = None,
                  progress=False) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of the hidden ``layers``) by its mean
    absolute conductance toward the true class over ``data`` (labelled: ``(X, y)``, a
    Dataset's ``split``, a DataLoader of ``(x, y)``). ``batch_size=256``: on the
    capstone's MNIST inputs 256 at a time was 2.2x faster than one big chunk (0.27 s vs
    0.60 s, AMD EPYC, measured under the old 256 MiB default budget) and peaked ~80 MiB
    above the baseline instead of ~315.
    Returns :class:`~nifkit.results.NeuronScores` (column ``abs_conductance``; ``raw`` is
    the :class:`Conductance`)."""
    t0 = time.perf_counter()
    X, y = as_xy(data, split, max_samples=max_samples, seed=seed)
    names = [u for u, _, _ in hidden_layout(model, layers)]
    cond = layer_conductance(model, X, names, target="true", labels=y, steps=steps, method=method,
                             batch_size=batch_size, memory_budget=memory_budget, device=device,
                             num_threads=num_threads, seed=seed, progress=progress)
    y_np = y.numpy()
    onehot = np.eye(int(y_np.max()) + 1)[y_np]  # (samples, classes)
    count = np.maximum(onehot.sum(0), 1)[:, None]
    cols, per_class = [], []
    for n in names:  # loop over layers
        a = np.abs(cond.flat(n, reduce="channel")).astype(np.float64)
        cols.append(a.mean(0))
        per_class.append(onehot.T @ a / count)
    gap = float(np.abs(cond.gap).max())
    return NeuronScores(hidden_neurons(model, layers), {"abs_conductance": np.concatenate(cols)}, "abs_conductance",
                        np.concatenate(per_class, 1), seconds=time.perf_counter() - t0, raw=cond,
                        settings={"lens": "conductance", "steps": steps, "method": method, "n_samples": len(X)},
                        notes=[f"conductance: {steps} steps {method}, baseline zeros, target true class; "
                               f"max |completeness gap| {gap:.2g}"])
