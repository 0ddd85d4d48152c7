"""The hidden units of a network, as every lens addresses them: layer by layer in
data-flow order (the one walker's order), units in index order, each a
:class:`~nifkit.models.Neuron` ``"layer:index"``.

A *layer of units* is any module whose output is a hidden layer: the walker's units name
of a weight layer (``act1`` in an ``mlp``), or any other module named by the user: a
block (``"layer4.1"`` of a torchvision ResNet, ``"body.block3"`` of
:func:`nifkit.models.residual_cnn`), an activation, a norm, a pool. A unit of a
convolutional output is a **channel**, addressed with the module's name
(``Neuron("layer4.1", 37)`` = ``"layer4.1:37"``); :func:`reduce_channels` is how a
channel's map becomes one value per sample (``channel_reduce=`` in every chapter).

The number of units comes from the walker, without data: a norm's ``num_features``, else
the ``out_channels`` / ``out_features`` of the last weight layer inside the module, else
of the nearest weight layer before it in data-flow order (pools, activations and
identity skips keep the channel count). Modules that change the unit axis otherwise
(``Flatten``/``Unflatten``) are refused rather than guessed.
"""
from __future__ import annotations

import torch
from torch import nn

from .walk import WEIGHT_TYPES, Neuron, blocks, unknown_layer_error, walk
from .._validation import checked
from .._validation.door import CHANNEL_REDUCTIONS

__all__ = ["hidden_layout", "hidden_neurons", "unit_counts", "check_units", "flow_cut", "flow_order", "UnitLayout", "reduce_channels", "positions_of",
           "CHANNEL_REDUCTIONS"]

_NORMS_WITH_FEATURES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
                        nn.InstanceNorm3d)
_RESHAPERS = (nn.Flatten, nn.Unflatten)


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


def _width(m: nn.Module) -> int:
    return int(getattr(m, "out_features", None) or getattr(m, "out_channels"))


class UnitLayout:
    """The walked model (one trace) and the four facts of each layer of units: its name,
    the weight layer its units come from, the next weight layer in data-flow order, and its
    width (:meth:`entry`); the data-flow order of modules (:meth:`order`) and whether a
    module's output is a cut of the data flow (:meth:`is_cut`)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.walk = w = walk(model)
        if len(w.layers) < 2:
            raise ValueError("model has no hidden layer: the lenses score hidden neurons, so it needs at least two "
                             f"Linear/Conv layers (found {len(w.layers)}: {w.names}). Use a network with a hidden "
                             "layer, e.g. nifkit.models.mlp([n_in, 20, n_out]).")
        self.modules = dict(model.named_modules())
        self.chain = {lay.units: (lay.units, lay.name, nxt.name, _width(lay.module))
                      for lay, nxt in zip(w.layers[:-1], w.layers[1:])}
        self.module_steps = [s for s in w.steps if s.module is not None]  # module calls in data-flow order
        self.weight_pos = [i for i, s in enumerate(self.module_steps) if isinstance(s.module, WEIGHT_TYPES)]

    def default(self) -> list:
        """The walker's hidden units of a chain; the blocks (:func:`blocks`) of a network with
        skip connections or branches, those that are layers of units."""
        if self.walk.is_chain:
            return list(self.chain)
        out = []
        for n in blocks(self.model):
            try:
                self.entry(n)
            except ValueError:
                continue
            out.append(n)
        if not out:
            raise ValueError("layers: found no block of this network whose output is a hidden layer of units; "
                             "name the modules to score, e.g. layers=['layer4.1']")
        return out

    def entry(self, name: str) -> tuple:
        """``(name, weight layer, next weight layer, units)`` of a layer of units, or a
        ValueError saying why ``name`` is not one."""
        if name in self.chain:
            return self.chain[name]
        if name == "":
            raise ValueError("layers: '' is the model itself, whose output is the network's output, not a hidden "
                             "layer of units; name a module inside it, e.g. one of " + ", ".join(self.chain))
        if name not in self.modules:
            known = list(self.chain) + [n for n in self.modules if n and n not in self.chain]
            raise unknown_layer_error(name, known, what="layers (not a module of this model)")
        mod = self.modules[name]
        if isinstance(mod, _RESHAPERS):
            raise ValueError(f"layers: {name!r} ({type(mod).__name__}) reshapes the unit axis, so its output is not "
                             "a layer of channels or neurons; name the module before it")
        inside = [i for i, s in enumerate(self.module_steps) if s.target == name or s.target.startswith(name + ".")]
        if not inside:
            raise ValueError(f"layers: module {name!r} is never called in the model's forward pass (as the walker "
                             "traced it); name a module that runs")
        calls = self.walk.calls.get(name, 1)
        if calls > 1:
            raise ValueError(f"layers: module {name!r} is called {calls} times in one forward pass, so its output is "
                             "not one layer of units. Name the block around it, or give each use its own module")
        last_w = self.weight_pos[-1]
        if inside[-1] >= last_w:
            what = "holds the output layer" if last_w in inside else "comes after the output layer"
            raise ValueError(f"layers: module {name!r} {what} ({self.walk.names[-1]!r}), so its output is not a "
                             "hidden layer of units; name a module before it, e.g. one of " + ", ".join(self.default()))
        own = [i for i in self.weight_pos if i in inside]
        before = [i for i in self.weight_pos if i < inside[0]]
        src = own[-1] if own else (before[-1] if before else None)
        if src is None:
            raise ValueError(f"layers: module {name!r} comes before the first weight layer, so it has no units of "
                             "its own; name a module after the first Linear/Conv layer")
        nxt = next(i for i in self.weight_pos if i > inside[-1])
        width = int(mod.num_features) if isinstance(mod, _NORMS_WITH_FEATURES) else _width(self.module_steps[src].module)
        return name, self.module_steps[src].target, self.module_steps[nxt].target, width

    def last_step(self, name: str) -> int:
        """Index in ``walk.steps`` of the last call inside module ``name`` (-1: never called)."""
        hits = [i for i, s in enumerate(self.walk.steps)
                if s.module is not None and (s.target == name or s.target.startswith(name + "."))]
        return hits[-1] if hits else -1

    def order(self, names) -> list:
        """Module ``names`` in data-flow order (see :func:`flow_order`)."""
        names = [names] if isinstance(names, str) else list(names)
        last = {n: self.last_step(n) for n in names}
        missing = [n for n, k in last.items() if k < 0]
        if missing:
            raise ValueError(f"module(s) {missing} are never called in the model's forward pass (as the walker "
                             "traced it); name modules that run")
        return sorted(names, key=last.get)

    def is_cut(self, name: str) -> bool:
        """Whether everything after module ``name``'s output reads only that output and what
        is computed from it (no skip connection around it, no input read again)."""
        steps = self.walk.steps
        k = self.last_step(name)
        if k < 0:
            return False
        pos = {s.node: i for i, s in enumerate(steps)}
        for s in steps[k + 1:]:  # a loop over operations of one forward pass
            if any(pos[a] < k and steps[pos[a]].kind != "parameter" for a in s.inputs if a in pos):
                return False
        return True

    def entries(self, layers) -> list:
        if layers is None:
            return [self.entry(n) for n in self.default()]
        names = [layers] if isinstance(layers, str) else list(layers)
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"layers must hold layer names (str), got {n!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"layers names a layer twice: {names}; name each layer once")
        if not names:
            raise ValueError(f"layers is empty; name at least one hidden layer of {list(self.chain)}, or pass None "
                             "for the default")
        found = [self.entry(n) for n in names]  # in data-flow order (a units name may be a function's)
        return sorted(found, key=lambda e: self.last_step(e[0]) if self.last_step(e[0]) >= 0 else
                      self.last_step(e[1]))


@checked
def hidden_layout(model, layers=None) -> list:
    """``[(units name, weight layer name, next weight layer name)]`` of the layers of units
    (see the module docstring), in data-flow order.

    ``layers=None``: for a chain (an ``mlp``, a ``small_cnn``) every hidden weight layer's
    units name (``act1, act2, ...``); for a network with skip connections or branches (a
    ResNet, :func:`~nifkit.models.residual_cnn`) its **blocks**
    (:func:`nifkit.models.blocks`: ``layer1.0 .. layer4.1``, ``body.block1 ..``): the
    residual stream after each block. ``layers``: names of modules whose output is a layer
    of units (units names such as ``"act1"``, blocks, activations, norms, pools). The weight
    layer of a module without one of its own is the nearest before it. ValueError for an
    unknown name (with "did you mean"), the model itself, a module holding or following the
    output layer, a module called twice, a ``Flatten``, a name given twice."""
    return [e[:3] for e in UnitLayout(model).entries(layers)]


@checked
def unit_counts(model, layers=None) -> dict:
    """``{layer: number of units}`` of the layers of :func:`hidden_layout` (channels of a
    convolutional output, neurons of a dense one), read from the walker (see the module
    docstring), in data-flow order."""
    return {e[0]: e[3] for e in UnitLayout(model).entries(layers)}


@checked
def hidden_neurons(model, layers=None) -> list:
    """The addresses (:class:`~nifkit.models.Neuron`) of the hidden units of ``layers``
    (default: see :func:`hidden_layout`), in the order every lens returns its scores: layer
    by layer, units (channels) in index order."""
    return [Neuron(n, j) for n, c in unit_counts(model, layers).items() for j in range(c)]


def check_units(model, units) -> dict:
    """Unit addresses (``"layer4.1:37"``, :class:`~nifkit.models.Neuron`, pairs) grouped as
    ``{layer: [indices]}`` in data-flow order, each layer checked as in
    :func:`hidden_layout` and each index against its layer's width (a channel index out of
    range is a ValueError naming the layer's channels)."""
    if isinstance(units, (str, Neuron)):
        units = [units]
    addrs = [Neuron.parse(u) for u in units]
    if not addrs:
        raise ValueError("units is empty; name at least one unit, e.g. 'layer4.1:37'")
    lay = UnitLayout(model)
    counts = {e[0]: e[3] for e in lay.entries(list(dict.fromkeys(a.layer for a in addrs)))}
    out = {n: [] for n in counts}
    for a in addrs:  # one entry per address the user wrote
        if not 0 <= a.index < counts[a.layer]:
            raise ValueError(f"unit {str(a)!r} is out of range: layer {a.layer!r} has {counts[a.layer]} units "
                             f"(channels or neurons) 0..{counts[a.layer] - 1}")
        out[a.layer].append(a.index)
    return out


def flow_cut(model, layer: str) -> bool:
    """Whether ``layer``'s output is a *cut* of the data flow: every later operation reads
    only that output and what is computed from it (true for a block of a ResNet stack and
    any layer of a chain; false inside a block, where the skip connection goes around it).
    Then knockouts of ``layer`` can run the layers before it once and only the rest for
    every knockout (:mod:`nifkit.intervene.hooked`)."""
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module name (str), got {type(layer).__name__}")
    return UnitLayout(model).is_cut(layer)


def flow_order(model, names) -> list:
    """Module ``names`` sorted in data-flow order (by the last call inside each module, as
    the walker traced the forward pass); a module never called is a ValueError."""
    return UnitLayout(model).order(names)
