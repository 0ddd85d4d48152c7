r"""Effective information as a lens: one score per hidden unit (the lens protocol,
:func:`neuron_scores`).

``ei`` = the edge EI of the edges touching the unit, :math:`\sum_i EI_{ij} + \sum_k
EI_{jk}`, each edge less the chapter's plug-in bias of an independent edge
(``LayerEI.bias_parts / n_edges``, so layers of different fan-in compare);
``sensitivity`` likewise with edge sensitivities. Inputs of the first layer are noised
over the data's range, those of later layers over the range of the recorded
activations; outputs are binned over their reachable range (``out_range="fit"``). Per
class: the edge EI from the unit to output ``t`` (last hidden layer only).
"""
from __future__ import annotations

import time

import numpy as np

from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..models.units import hidden_layout, hidden_neurons
from ..record import record
from ..results import NeuronScores
from .measure import layer_ei
from .model import measured_layers
from .._validation import checked

__all__ = ["neuron_scores"]


def _ranges(model, X, layout, device, num_threads) -> dict:
    """Noise range of every weight layer's input: the data's for the first, the
    recorded activations' for the others."""
    rec = record(model, X, [u for u, _, _ in layout], batch_size=4096, device=device, num_threads=num_threads,
                 progress=False)
    ranges = {layout[0][1]: (float(X.min()), float(X.max()))}
    for units, _, nxt in layout:
        a = rec.flat(units)
        lo, hi = float(a.min()), float(a.max())
        ranges[nxt] = (lo, hi if hi > lo else lo + 1.0)
    return ranges


def _debiased(r) -> np.ndarray:
    """Edge EI less the chapter's plug-in bias of one independent edge."""
    mask = np.ones_like(r.edge_ei) if r.edge_mask is None else np.asarray(r.edge_mask, dtype=np.float64)
    return r.edge_ei - (r.bias_parts / max(r.n_edges, 1)) * mask


@checked
def neuron_scores(model, data, *, layers=None, n_bins: int = 8, n_samples: int = 5000,
                  n_sensitivity_samples: int = 1000, split: str = "train", max_samples: int | None = None,
                  seed: int = 0, device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  num_threads: int | None = None, progress=False) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of the hidden ``layers``) by the edge EI
    and sensitivity of the weight layers around it (:func:`layer_ei`, ``n_samples`` noise
    samples, ``n_sensitivity_samples`` per input, ``n_bins`` bins). ``data`` sets the noise
    ranges (see the module docstring). ``raw`` is ``{weight layer: LayerEI}``."""
    t0 = time.perf_counter()
    X, _ = as_xy(data, split, labels=False, max_samples=max_samples, seed=seed)
    full = hidden_layout(model)  # every layer, for the ranges; the scores keep `layers`
    layout = hidden_layout(model, layers)
    found = measured_layers(model)
    ranges = _ranges(model, X, full, device, num_threads)
    wanted = {w for _, w, nxt in layout for w in (w, nxt)}
    res = {}
    for name, (mod, act, shape) in found.items():  # loop over layers
        if name in wanted:
            res[name] = layer_ei(mod, act, input_shape=shape, name=name, in_range=ranges[name], out_range="fit",
                                 n_bins=n_bins, n_samples=n_samples, n_sensitivity_samples=n_sensitivity_samples,
                                 measures=("ei_parts", "sensitivity"), seed=seed, device=device,
                                 memory_budget=memory_budget, num_threads=num_threads, progress=progress)
    last_hidden = full[-1][0]
    n_out = res[layout[-1][2]].n_outputs if layout[-1][0] == last_hidden else None
    ei, sens, per_class = [], [], []
    for units, wname, nxt in layout:  # loop over layers
        a, b = res[wname], res[nxt]
        ei.append(_debiased(a).sum(0) + _debiased(b).sum(1))
        sens.append(a.edge_sensitivity.sum(0) + b.edge_sensitivity.sum(1))
        per_class.append(b.edge_ei.T if units == last_hidden else np.full((n_out or 1, a.n_outputs), np.nan))
    return NeuronScores(hidden_neurons(model, layers), {"ei": np.concatenate(ei), "sensitivity": np.concatenate(sens)},
                        "ei", np.concatenate(per_class, 1) if n_out else None, seconds=time.perf_counter() - t0,
                        raw=res, settings={"lens": "ei", "n_bins": n_bins, "n_samples": n_samples,
                                           "n_sensitivity_samples": n_sensitivity_samples, "seed": seed},
                        notes=[f"EI: edge EI_parts ({n_samples} noise samples) and sensitivity "
                               f"({n_sensitivity_samples} per input), {n_bins} bins, out_range='fit'"])
