"""Relay from a model: record a hidden layer, binarise it, search its modules
(:func:`search_modules`), and relay as a lens (:func:`neuron_scores`, the lens protocol).

``relay`` = the unit's aggregated relay information (:func:`aggregated_relay`, ``"drop"``)
summed over the classes (bits; a reconstruction, see chapter 3). Per class: the greedy
step at which the unit left the set (the last ``h`` units left are the module of size
``h``, :meth:`ModuleSearch.set_at`). A convolutional layer's unit is a **channel**:
its map becomes one value per sample by ``channel_reduce`` (:func:`nifkit.models.reduce_channels`:
the mean over positions by default, the max, or every position a sample of its own with
the sample's true and predicted class repeated) before it is binarised. Layers: any layer
of units (:func:`nifkit.models.hidden_layout`: a chain's hidden layers by default, a
residual network's blocks).
"""
from __future__ import annotations

import time

import numpy as np

from ..info import binarize
from ..models.units import hidden_layout, hidden_neurons, positions_of
from ..record import record
from ..results import NeuronScores
from .measures import ModuleSearch, aggregated_relay, module_search
from .._validation import checked

__all__ = ["search_modules", "neuron_scores"]


def _searches(model, data, names, *, binning, classes, channel_reduce, split, max_samples, device, num_threads,
              progress) -> dict:
    rec = record(model, data, names, split=split, max_samples=max_samples, device=device, num_threads=num_threads,
                 progress=progress, batch_size=4096)
    if rec.targets is None:
        raise ValueError("data holds no labels, and relay information needs the true classes: pass (X, y), a "
                         "Dataset or a DataLoader of (x, y) batches")
    labels = rec.targets.cpu().numpy()
    predicted = rec.outputs.argmax(1).cpu().numpy()
    out = {}
    for n in names:  # loop over layers
        acts = rec.flat(n, per_channel=True, channel_reduce=channel_reduce)
        P = positions_of(rec[n]) if channel_reduce == "positions" else 1  # rows per sample
        codes = binarize(acts.float().numpy(), binning)
        out[n] = module_search(codes, labels.repeat(P), predicted.repeat(P), classes)
        out[n].settings.update(layer=n, binning=binning, channel_reduce=channel_reduce, n_samples=len(labels),
                               positions=P)
    return out


@checked
def search_modules(model, data, *, layer: str | None = None, binning: str = "kmeans2", classes=None,
                   channel_reduce: str = "mean", split: str = "train", max_samples: int | None = None, device=None,
                   num_threads: int | None = None, progress=False) -> ModuleSearch:
    """The greedy module search of chapter 3 on a model: record the hidden ``layer``
    (default: the last of :func:`nifkit.models.hidden_layout`'s layers; a units name such as
    ``"act1"``, or any layer of units such as a block ``"layer4.1"``) over ``data``
    (labelled), binarise every unit (a conv layer's channels, reduced by ``channel_reduce``,
    see the module docstring; ``binning``: ``"kmeans2"`` = exact 1-D 2-means, as in the
    chapter, ``"median"`` or ``"threshold"``), and search the modules of ``classes``
    (default every class) with the network's own predictions as the output variable."""
    layout = hidden_layout(model, None if layer is None else [layer])
    name = layout[-1][0]
    return _searches(model, data, [name], binning=binning, classes=classes, channel_reduce=channel_reduce,
                     split=split, max_samples=max_samples, device=device, num_threads=num_threads,
                     progress=progress)[name]


@checked
def neuron_scores(model, data, *, layers=None, binning: str = "kmeans2", channel_reduce: str = "mean",
                  split: str = "train", max_samples: int | None = None, device=None, num_threads: int | None = None,
                  progress=False) -> NeuronScores:
    """Score every hidden unit of ``model`` (or of ``layers``: any layers of units, see
    :func:`nifkit.models.hidden_layout`) by its aggregated relay information, summed over
    the classes (see the module docstring; a conv layer's channels binarised after
    ``channel_reduce``). ``raw`` holds the :class:`ModuleSearch` of each layer."""
    t0 = time.perf_counter()
    names = [u for u, _, _ in hidden_layout(model, layers)]
    searches = _searches(model, data, names, binning=binning, classes=None, channel_reduce=channel_reduce,
                         split=split, max_samples=max_samples, device=device, num_threads=num_threads,
                         progress=progress)
    n_classes = 1 + max(int(s.classes.max()) for s in searches.values())
    cols, per_class = [], []
    for n in names:  # loop over layers
        s = searches[n]
        cols.append(aggregated_relay(s).sum(0))
        step = np.empty_like(s.order)  # the greedy step at which each unit left the set
        np.put_along_axis(step, s.order, np.arange(s.order.shape[1])[None], axis=1)
        full = np.full((n_classes, s.n_neurons), np.nan)
        full[s.classes] = step
        per_class.append(full)
    return NeuronScores(hidden_neurons(model, layers), {"relay": np.concatenate(cols)}, "relay",
                        np.concatenate(per_class, 1), seconds=time.perf_counter() - t0, raw=searches,
                        settings={"lens": "relay", "binning": binning, "channel_reduce": channel_reduce},
                        notes=[f"relay: hidden layers binarised by {binning} (conv channels: {channel_reduce} over "
                               "positions first); aggregated relay (drop) summed over classes (a reconstruction, "
                               "see chapter 3)"])
