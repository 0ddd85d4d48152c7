r"""Effective information as a lens: one score per hidden unit (the lens protocol,
:func:`neuron_scores`), on any network the walker traces.

A unit is a neuron of a dense layer or a **channel** of a convolutional one, addressed as
:func:`nifkit.models.hidden_neurons` addresses it (``"act1:3"``, ``"layer2.0:17"``), in
that order. The weight layers *around* a layer of units (:func:`.network.unit_links`):
the incoming ones, whose output reaches the units, and the outgoing ones, which read them,
each through elementwise, normalisation, pass-through and reshaping steps and at most one
skip addition (in a chain: the layer before and the layer after, as before). Every one
is measured once with :func:`layer_ei` (a convolution on one receptive field:
``C x kh x kw`` inputs, ``out_channels`` outputs; BatchNorm folded in eval mode).

``ei`` of unit ``j`` = the edge EI of the edges touching it, :math:`\sum_{in}\sum_i EI_{ij}
+ \sum_{out}\sum_k EI_{jk}`, each edge less the chapter's plug-in bias of an independent
edge (``LayerEI.bias_parts / n_edges``, so layers of different fan-in compare); for a
channel, the edges of its receptive-field inputs (outgoing) and of its output (incoming).
``sensitivity`` likewise with edge sensitivities. Each weight layer's inputs are noised
over the range of what it reads on ``data`` (the data's range for the first layer, the
recorded activations' for the others); outputs are binned over their reachable range
(``out_range="fit"``). Per class: the edge EI from the unit to output ``t``, for units
read by the output layer alone.

``channel_reduce`` is accepted for the protocol's uniformity and changes nothing here: EI
puts its noise on every input position of a receptive field, so the noise range is that
of the raw recorded values, not of a per-channel reduction.
"""
from __future__ import annotations

import time

import numpy as np
from torch import nn

from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..models.hooks import hooks
from ..models.units import hidden_layout, hidden_neurons
from ..results import NeuronScores
from ..runtime import ModelState
from .measure import layer_ei
from .network import plan_layers, unit_links
from .._validation import checked

__all__ = ["neuron_scores"]


def _input_ranges(model, X, names, memory_budget, device) -> dict:
    """Noise range of every weight layer in ``names``: the min and max of its input over
    ``X`` (batches sized to ``memory_budget``; model in eval mode, restored)."""
    lo, hi = {}, {}

    def keep(n):
        def fn(mod, args):
            t = args[0].detach()
            lo[n] = min(lo.get(n, np.inf), float(t.min()))
            hi[n] = max(hi.get(n, -np.inf), float(t.max()))
        return fn

    rows = max(1, int(memory_budget // max(1, 64 * X[0].numel() * 4)))
    with ModelState(model, eval=True, no_grad=True, device=device), hooks(model, pre={n: keep(n) for n in names}):
        dev = next(model.parameters()).device
        for a in range(0, len(X), rows):  # loop over batches of samples
            model(X[a:a + rows].to(dev))
    return {n: (lo[n], hi[n] if hi[n] > lo[n] else lo[n] + 1.0) for n in names}


def _by_unit(m: np.ndarray, width: int, axis: int):
    """Sum a per-edge matrix ``(inputs, outputs)`` to one value per unit along ``axis``
    (0: the inputs, channel-major; 1: the outputs), or None when the layer's side is not
    a whole number of units."""
    n = m.shape[axis]
    if n % width:
        return None
    return m.reshape(width, -1, m.shape[1]).sum((1, 2)) if axis == 0 else m.reshape(m.shape[0], width, -1).sum((0, 2))


def _debiased(r) -> np.ndarray:
    """Edge EI less the chapter's plug-in bias of one independent edge."""
    mask = np.ones_like(r.edge_ei) if r.edge_mask is None else np.asarray(r.edge_mask, dtype=np.float64)
    return r.edge_ei - (r.bias_parts / max(r.n_edges, 1)) * mask


def _links(names, planned, skipped, w) -> dict:
    """``{units layer: (incoming, outgoing)}`` measurable weight layers; ValueError for a
    layer of units without any."""
    out = {}
    for n in names:  # loop over layers
        inc, outg = unit_links(w, n)
        keep_in, keep_out = [x for x in inc if x in planned], [x for x in outg if x in planned]
        if not keep_in and not keep_out:
            why = "; ".join(f"{x}: {skipped[x]}" for x in inc + outg if x in skipped)
            raise ValueError(f"layers: EI cannot score the units of {n!r}: it needs an nn.Linear/nn.Conv2d layer with "
                             "an elementwise activation whose output reaches these units or that reads them, and "
                             f"found {'only layers it cannot measure (' + why + ')' if why else 'none'}")
        out[n] = (keep_in, keep_out)
    return out


def _unit_columns(names, widths, links, res, last) -> tuple:
    """The ``ei`` and ``sensitivity`` columns, the per-class matrix rows and notes."""
    ei, sens, per_class, notes = [], [], [], []
    n_cls = res[last].n_outputs if last in res else None
    for n in names:  # loop over layers
        c = widths[n]
        e, s = np.zeros(c), np.zeros(c)
        for side, layers in ((1, links[n][0]), (0, links[n][1])):
            for x in layers:  # loop over the few weight layers around one layer of units
                de, ds = _by_unit(_debiased(res[x]), c, side), _by_unit(res[x].edge_sensitivity, c, side)
                if de is None:
                    notes.append(f"{x}'s {'outputs' if side else 'inputs'} ({res[x].edge_ei.shape[1 - side]}) are not "
                                 f"a whole number of the {c} units of {n}: left out of their scores")
                    continue
                e, s = e + de, s + ds
        ei.append(e)
        sens.append(s)
        pc = np.full((n_cls or 1, c), np.nan)
        if links[n][1] == [last] and res[last].n_inputs % c == 0:
            pc = res[last].edge_ei.reshape(c, -1, n_cls).sum(1).T
        per_class.append(pc)
    return ei, sens, per_class, notes


@checked
def neuron_scores(model, data, *, layers=None, channel_reduce: str = "mean", n_bins: int = 8,
                  n_samples: int = 5000, n_sensitivity_samples: int = 1000, split: str = "train",
                  max_samples: int | None = None, seed: int = 0, device=None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None,
                  progress=False) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of the layers of units ``layers``, as
    :func:`nifkit.models.hidden_layout` reads them) by the edge EI and sensitivity of the
    weight layers around it (:func:`layer_ei`, ``n_samples`` noise samples,
    ``n_sensitivity_samples`` per input, ``n_bins`` bins). ``data`` sets the noise ranges
    (see the module docstring, also for ``channel_reduce``: accepted, changes nothing).
    ``raw`` is ``{weight layer: LayerEI}``. ValueError naming a layer of units that has no
    weight layer around it that EI can measure."""
    t0 = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X, _ = as_xy(data, split, labels=False, max_samples=max_samples, seed=seed)
    names = [u for u, _, _ in hidden_layout(model, layers)]
    neurons = hidden_neurons(model, layers)
    widths = {n: 0 for n in names}
    for a in neurons:  # addresses: counting the units of each layer
        widths[a.layer] += 1
    planned, skipped, _, w = plan_layers(model, conv_inputs="field")
    links = _links(names, planned, skipped, w)
    last = w.names[-1]
    needed = [x for x in w.names if any(x in i or x in o for i, o in links.values())]
    ranges = _input_ranges(model, X, needed, memory_budget, device)
    res = {}
    for x in needed:  # loop over layers
        p = planned[x]
        res[x] = layer_ei(p.module, p.activation, name=x, in_range=ranges[x], out_range="fit", n_bins=n_bins,
                          n_samples=n_samples, n_sensitivity_samples=n_sensitivity_samples,
                          measures=("ei_parts", "sensitivity"), seed=seed, device=device,
                          memory_budget=memory_budget, num_threads=num_threads, progress=progress)
        res[x].notes.extend(p.notes)
    ei, sens, per_class, notes = _unit_columns(names, widths, links, res, last)
    any_class = any(np.isfinite(pc).any() for pc in per_class)
    return NeuronScores(neurons, {"ei": np.concatenate(ei), "sensitivity": np.concatenate(sens)}, "ei",
                        np.concatenate(per_class, 1) if any_class else None, seconds=time.perf_counter() - t0,
                        raw=res, settings={"lens": "ei", "n_bins": n_bins, "n_samples": n_samples,
                                           "n_sensitivity_samples": n_sensitivity_samples, "seed": seed,
                                           "channel_reduce": channel_reduce,
                                           "links": {n: {"in": i, "out": o} for n, (i, o) in links.items()}},
                        notes=[f"EI: edge EI_parts ({n_samples} noise samples) and sensitivity "
                               f"({n_sensitivity_samples} per input), {n_bins} bins, out_range='fit'; convolutions "
                               "on one receptive field, a channel's score from the edges of its inputs and output;"
                               " channel_reduce changes nothing (the noise covers every input position)"] + notes)
