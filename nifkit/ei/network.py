"""The weight layers of any network the walker traces, as EI measures them.

EI of a layer needs only the layer's weights and the activation its output goes through
(:func:`nifkit.models.walk` finds it), so skip connections, branches and merges elsewhere
in the network do not matter: each layer's input is set by intervention. Per weight layer
(every ``nn.Linear``/``nn.Conv2d`` in data-flow order):

* **BatchNorm** between the layer and its activation (a ResNet's ``conv -> bn -> relu``)
  is folded into the layer in eval mode: ``W' = W * s``, ``b' = (b - mean) * s + beta``
  with ``s = gamma / sqrt(running_var + eps)`` per output unit (a copy; the model is not
  touched). What is measured is the layer as the trained network computes it at test
  time.
* An output that enters a **merge** (a skip addition, ``x + conv2(...)``), feeds several
  operations or goes into a softmax before any activation is measured as the layer's own
  output (identity activation), with a note: the activation after the merge depends on
  the other input, a softmax couples units.
* A layer EI **cannot** measure is listed in ``ModelEI.skipped`` with the reason, and the
  others still run: an operation after it the walker does not know as elementwise, a
  normalisation that is not a per-unit affine map (LayerNorm, GroupNorm, BatchNorm
  without running statistics), a layer called several times, or a weight layer other
  than ``nn.Linear``/``nn.Conv2d``.

:func:`unit_links` finds the weight layers around a layer of units (for the unit scores
of :mod:`.scores`).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from ..models.hooks import hooks
from ..models.walk import ELEMENTWISE_TYPES, walk

__all__ = ["PlannedLayer", "plan_layers", "unit_links"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_IDENTITY_AFTER = ("weight", "reshape", "output", "softmax", "pass", "input", "parameter")


class PlannedLayer(NamedTuple):
    """One weight layer as EI measures it: ``module`` (a BatchNorm-folded copy where one
    was folded), ``activation``, ``conv_shape`` (the ``(C, H, W)`` map a convolution is
    measured on, ``None``: one receptive field), ``notes``."""

    name: str
    module: nn.Module
    activation: object
    conv_shape: tuple | None
    notes: list


def _fold_batchnorm(mod: nn.Module, bns: list, name: str):
    """A copy of ``mod`` with the eval-mode affine maps of ``bns`` folded in, or the
    reason it cannot be done (str)."""
    folded = copy.deepcopy(mod)
    n_out = folded.weight.shape[0]
    with torch.no_grad():
        for bn_name, bn in bns:
            if bn.running_mean is None or bn.running_var is None:
                return (f"{bn_name!r} ({type(bn).__name__} without running statistics) normalises by the batch: "
                        "a data-dependent map EI cannot fold into the layer")
            if bn.num_features != n_out:
                return f"{bn_name!r} has {bn.num_features} features but {name!r} has {n_out} outputs"
            scale = torch.rsqrt(bn.running_var.double() + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.double()
            shift = -bn.running_mean.double() * scale + (bn.bias.double() if bn.bias is not None else 0.0)
            b = folded.bias.double() if folded.bias is not None else torch.zeros(n_out, dtype=torch.float64)
            w = folded.weight.double() * scale.reshape(-1, *[1] * (folded.weight.ndim - 1))
            folded.weight = nn.Parameter(w.to(mod.weight.dtype), requires_grad=False)
            folded.bias = nn.Parameter((b * scale + shift).to(mod.weight.dtype), requires_grad=False)
    return folded


def _skip_reason(lay, mods: dict, calls: dict):
    """Why EI cannot measure walker layer ``lay`` (str), or ``None``."""
    if not isinstance(lay.module, (nn.Linear, nn.Conv2d)):
        return f"{type(lay.module).__name__}: EI measures nn.Linear and nn.Conv2d layers"
    if calls.get(lay.name, 1) > 1:
        return (f"called {calls[lay.name]} times in one forward pass: its uses cannot be told apart (give each use "
                "its own module)")
    if isinstance(lay.module, nn.Conv2d) and lay.module.padding_mode != "zeros":
        return f"Conv2d with padding_mode={lay.module.padding_mode!r} (EI supports 'zeros')"
    for b in lay.between:
        m = mods.get(b)
        if isinstance(m, nn.Module) and not isinstance(m, _BN) and any(True for _ in m.parameters(recurse=False)) \
                or isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)):
            return (f"{b!r} ({type(m).__name__}) between the layer and its activation couples units or depends on "
                    "the data: not a per-unit affine map EI can fold into the layer")
    if lay.after == "other":
        return (f"the operation after it ({lay.after_target!r}) is not one the walker knows as elementwise: EI needs "
                "the activation to act on each unit alone (or measure the layer with layer_ei(module, activation))")
    act = lay.activation
    if isinstance(act, nn.Module) and not isinstance(act, ELEMENTWISE_TYPES):
        return f"its activation {type(act).__name__} is not elementwise"
    return None


def _input_shapes(model: nn.Module, names: list, input_shape) -> dict:
    """The input shape (without the batch) each weight layer sees: one forward pass of
    zeros in eval mode with shape-recording pre-hooks (mode restored)."""
    shapes = {}

    def keep(n):
        return lambda mod, args: shapes.__setitem__(n, tuple(args[0].shape[1:]))

    p = next(model.parameters())
    was = model.training
    try:
        model.eval()
        with hooks(model, pre={n: keep(n) for n in names}), torch.no_grad():
            model(torch.zeros((1, *tuple(int(s) for s in input_shape)), dtype=p.dtype, device=p.device))
    finally:
        model.train(was)
    return shapes


def plan_layers(model: nn.Module, input_shape=None, conv_inputs: str = "auto"):
    """``(planned, skipped, shapes, walk)``: the measurable weight layers (name ->
    :class:`PlannedLayer`, data-flow order), the others (name -> reason), the input shape
    each weight layer sees (from one forward pass when ``input_shape`` is given, else
    ``{}``) and the walk. ``conv_inputs``: ``"field"`` (one receptive field, as deep-ei),
    ``"map"`` (the whole feature map, needs ``input_shape``) or ``"auto"`` (the map when
    ``input_shape`` is given)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if conv_inputs not in ("auto", "field", "map"):
        raise ValueError(f"conv_inputs must be 'auto', 'field' or 'map', got {conv_inputs!r}")
    if conv_inputs == "map" and input_shape is None:
        raise ValueError("conv_inputs='map' measures convolutions on their feature maps: pass input_shape= (of one "
                         "model input, e.g. (3, 32, 32))")
    w = walk(model)
    if not w.layers:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to measure")
    mods = dict(model.named_modules())
    shapes = _input_shapes(model, w.names, input_shape) if input_shape is not None else {}
    on_maps = input_shape is not None and conv_inputs != "field"
    planned, skipped = OrderedDict(), OrderedDict()
    for lay in w.layers:  # loop over layers
        reason = _skip_reason(lay, mods, w.calls)
        notes = []
        mod = lay.module
        bns = [(b, mods[b]) for b in lay.between if isinstance(mods.get(b), _BN)]
        if reason is None and bns:
            mod = _fold_batchnorm(lay.module, bns, lay.name)
            reason = mod if isinstance(mod, str) else None
            notes.append(f"{', '.join(b for b, _ in bns)} folded into {lay.name} in eval mode (running statistics)")
        if reason is not None:
            skipped[lay.name] = reason
            continue
        act = lay.activation
        if lay.after in ("merge", "branch") and act is None:
            notes.append(f"the output of {lay.name} enters {'a merge' if lay.after == 'merge' else 'several operations'}"
                         f" ({lay.after_target!r}) before any activation: measured the layer's own output "
                         "(identity activation)")
        if lay.after == "softmax":
            notes.append(f"the output of {lay.name} goes through a softmax ({lay.after_target!r}), which couples "
                         "units: measured the layer's own output (identity activation)")
        conv_shape = shapes.get(lay.name) if on_maps and isinstance(mod, nn.Conv2d) else None
        planned[lay.name] = PlannedLayer(lay.name, mod, act, conv_shape, notes)
    return planned, skipped, shapes, w


def _output_step(w, name: str):
    """The walker step whose output is module ``name``'s output: its last call (the last
    step inside it, for a block), or None when it is never called as a module."""
    hits = [s for s in w.steps if s.module is not None and (s.target == name or s.target.startswith(name + "."))]
    return hits[-1] if hits else None


def _reach(w, start, forward: bool) -> list:
    """Weight layers reached from step ``start`` along the data flow (``forward``: its
    users; else its inputs) through pass-through, normalisation, activation and reshaping
    steps and at most one merge, stopping at the first weight layer on each path. Going
    back, past the merge only pass-through and normalisation steps: the weight layers
    *added* into the units (a block's ``conv2``, its downsampling conv), not whatever made
    the identity skip's input."""
    by_node = {s.node: s for s in w.steps}
    found, frontier, seen = [], [(start, 0)], set()
    while frontier:  # a walk over the traced graph's steps (a handful per layer)
        step, merges = frontier.pop()
        for u in (step.users if forward else step.inputs):
            nxt = by_node.get(u)
            if nxt is None or nxt.node in seen:
                continue
            seen.add(nxt.node)
            if nxt.kind == "weight":
                if nxt.target not in found:
                    found.append(nxt.target)
            elif nxt.kind in ("pass", "norm") or (nxt.kind in ("activation", "reshape") and (forward or not merges)):
                frontier.append((nxt, merges))
            elif nxt.kind == "merge" and merges == 0:
                frontier.append((nxt, 1))
    order = {n: i for i, n in enumerate(w.names)}
    return sorted(found, key=lambda n: order.get(n, len(order)))


def unit_links(w, name: str) -> tuple:
    """``(incoming, outgoing)``: the weight layers whose output reaches the output of
    module ``name`` (the layer of units), and those that read it, through elementwise,
    normalisation, pass-through and reshaping steps and at most one merge (a skip
    addition) on each path (back through the merge: only the layers added into it).
    A weight layer named itself is its own incoming layer.
    A block whose last operation is a function (not a module) is located by its last
    module call."""
    start = _output_step(w, name)
    if start is None:
        return [], []
    incoming = [start.target] if start.kind == "weight" else _reach(w, start, forward=False)
    return incoming, _reach(w, start, forward=True)
