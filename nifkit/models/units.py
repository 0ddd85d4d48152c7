"""The hidden units of a network, as every lens addresses them: layer by layer in
data-flow order (the one walker's order), units in index order, each a
:class:`~nifkit.models.Neuron` ``"layer:index"`` named by the walker's units name
(``act1`` in an ``mlp``)."""
from __future__ import annotations

import torch

from .walk import Neuron, unknown_layer_error, walk
from .._validation import checked
from .._validation.door import CHANNEL_REDUCTIONS

__all__ = ["hidden_layout", "hidden_neurons", "reduce_channels", "positions_of", "CHANNEL_REDUCTIONS"]


def positions_of(t: torch.Tensor) -> int:
    """Positions per sample of a layer's output ``(N, C, *positions)``: 1 for ``(N, C)``."""
    return 1 if t.ndim <= 2 else int(torch.Size(t.shape[2:]).numel())


@checked
def reduce_channels(t: torch.Tensor, channel_reduce: str = "mean") -> torch.Tensor:
    r"""A layer's output as ``(samples, units)``, one unit per channel: THE reduction every
    lens uses for a convolutional layer (``channel_reduce=`` in every chapter).

    ``t`` is ``(N, C, *positions)`` (a conv map) or ``(N, C)`` (returned as is).
    ``"mean"``: :math:`\bar a_{nc} = \frac1P\sum_p a_{ncp}` (the default: a channel's
    average response); ``"max"``: :math:`\max_p a_{ncp}` (whether the feature occurs
    anywhere); ``"positions"``: every position a sample of its own, ``(N*P, C)`` in
    sample-major order (sample ``n``'s ``P`` positions are rows ``n*P .. n*P+P-1``; repeat
    its label with ``y.repeat_interleave(P)``, :func:`positions_of` gives ``P``).
    """
    if t.ndim == 1:
        return t[:, None]
    if t.ndim == 2:
        return t
    flat = t.flatten(2)  # (N, C, P)
    if channel_reduce == "mean":
        return flat.mean(2)
    if channel_reduce == "max":
        return flat.amax(2)
    return flat.transpose(1, 2).reshape(-1, t.shape[1])  # (N*P, C), sample-major


@checked
def hidden_layout(model, layers=None) -> list:
    """``[(units name, weight layer name, next weight layer name)]`` of the hidden layers
    (all, or those named in ``layers``: units names such as ``"act1"``, in data-flow
    order). ValueError without a hidden layer or for an unknown name (with "did you mean")."""
    w = walk(model)
    if len(w.layers) < 2:
        raise ValueError("model has no hidden layer: the lenses score hidden neurons, so it needs at least two "
                         f"Linear/Conv layers (found {len(w.layers)}: {w.names}). Use a network with a hidden "
                         "layer, e.g. nifkit.models.mlp([n_in, 20, n_out]).")
    layout = [(lay.units, lay.name, nxt.name) for lay, nxt in zip(w.layers[:-1], w.layers[1:])]
    if layers is None:
        return layout
    names = [layers] if isinstance(layers, str) else list(layers)
    known = [u for u, _, _ in layout]
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"layers must hold layer names (str), got {n!r}")
        if n not in known:  # the walker's units names of the hidden layers, with "did you mean"
            raise unknown_layer_error(n, known, what="layers (not a hidden layer of this model)")
    if len(set(names)) != len(names):
        raise ValueError(f"layers names a layer twice: {names}; name each layer once")
    if not names:
        raise ValueError(f"layers is empty; name at least one hidden layer of {known}, or pass None for all")
    return [entry for entry in layout if entry[0] in names]


@checked
def hidden_neurons(model, layers=None) -> list:
    """The addresses (:class:`~nifkit.models.Neuron`) of the hidden units of ``layers``
    (default all), in the order every lens returns its scores. Unit counts are read
    from the weight layers (``out_features`` / ``out_channels``)."""
    mods = dict(model.named_modules())
    out = []
    for units, wname, _ in hidden_layout(model, layers):
        m = mods[wname]
        n = getattr(m, "out_features", None) or getattr(m, "out_channels")
        out += [Neuron(units, j) for j in range(int(n))]
    return out
