"""Knockouts through forward hooks, for any model the hook context reaches (ResNets, the
residual CNN, anything that is not an ``nn.Sequential``): the batched generic path of
:class:`~nifkit.intervene.Knockouts` (:func:`evaluate_hooked`) and the context manager
:func:`knock_out`.

A unit is a neuron of a dense output ``(samples, units)`` or a **channel** of a
convolutional one ``(samples, channels, *positions)``; knocking a channel out fixes its
whole map (to 0, to its mean over the evaluation set and all positions, or to a given value).

Batching: one forward pass carries ``n`` samples times ``s`` knockouts as ``n*s`` rows
(sample-major), and the hook on each knocked-out layer views its output as ``(n, s,
units, ...)`` and overwrites the masked units of each of the ``s`` knockouts. The layers
before the knocked-out one run ``s`` times on the same input: a full forward per batch
of knockouts, never one per knockout. When the first knocked-out layer is a cut of the
data flow (nothing after it reads what came before it) and expanding the batch there
gives what repeating the input gives (:func:`expansion_works`, checked once on two
samples), the layers before it run once per batch of samples and its hook expands the
batch: the knockouts then cost only the layers after the knocked-out one. ``n*s`` is
sized from ``memory_budget`` by one probe pass of one sample (the bytes of every
module's output).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ..models.hooks import hooks
from ..models.walk import Neuron, unknown_layer_error
from ..runtime import ModelState
from .._validation import checked
from .units import KnockoutResult, knocked

__all__ = ["evaluate_hooked", "expansion_works", "rows_per_forward", "knock_out"]


@checked
def rows_per_forward(model: nn.Module, x1: torch.Tensor, memory_budget: int, cap: int = 4096) -> int:
    """How many input rows one forward pass may take within ``memory_budget`` bytes: the
    budget over the bytes of every module output for the one sample ``x1`` (an upper bound
    of what a forward pass holds at once), at least 1, at most ``cap``."""
    sizes = []

    def add(mod, args, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel() * out.element_size())

    leaves = [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    with torch.no_grad(), hooks(model, [(n, add) for n in leaves]):
        model(x1)
    per = max(sum(sizes), x1.numel() * x1.element_size(), 1)
    return int(max(1, min(cap, memory_budget // (2 * per))))


def evaluate_hooked(engine, spec) -> KnockoutResult:
    """The ``S`` knockouts of ``spec`` (a checked :class:`~nifkit.intervene.units.KnockoutSpec`)
    on ``engine``'s evaluation set, ``n`` samples x ``s`` knockouts per forward pass (see
    the module docstring); tallied by ``engine.tally``. When the first knocked-out layer is
    a cut of the data flow (:func:`nifkit.models.units.flow_cut`: a block of a ResNet stack,
    any layer of a chain) the layers before it run on the ``n`` samples once and its hook
    expands the batch to ``n*s`` rows; otherwise the input is repeated ``s`` times."""
    S, N = spec.n_steps, len(engine.X)
    dev, dt = engine.device, engine.dtype
    correct = torch.zeros(S, engine.n_classes, dtype=torch.float64, device=dev)
    loss_sum = torch.zeros(S, dtype=torch.float64, device=dev)
    first, cut = engine.flow(spec.layers)
    state = {}

    def make(i, name):
        expand = state["expand"] and name == first

        def hook(mod, args, out):
            n, s, sl = state["n"], state["s"], state["sl"]
            h = out[:, None].expand(n, s, *out.shape[1:]) if expand else out.reshape(n, s, *out.shape[1:])
            return knocked(spec.masks[i][sl], spec.values[i], h).reshape(n * s, *out.shape[1:])
        return hook

    with ModelState(engine.model, eval=True, no_grad=True):
        state["expand"] = cut and expansion_works(engine, first)
        rows = rows_per_forward(engine.model, engine.X[:1].to(dev, dt), engine.memory_budget, engine.batch_size)
        s_chunk = min(S, rows)
        n_chunk = max(1, min(N, rows // s_chunk))
        with hooks(engine.model, [(n, make(i, n)) for i, n in enumerate(spec.layers)]):
            for ns in range(0, N, n_chunk):  # a loop over blocks of samples
                x = engine.X[ns:ns + n_chunk].to(dev, dt)
                n = len(x)
                for ss in range(0, S, s_chunk):  # a loop over blocks of knockouts
                    s = min(ss + s_chunk, S) - ss
                    state.update(n=n, s=s, sl=slice(ss, ss + s))
                    xx = x if state["expand"] else x[:, None].expand(n, s, *x.shape[1:]).reshape(n * s, *x.shape[1:])
                    out = engine.model(xx)
                    out = out[0] if isinstance(out, (tuple, list)) else out
                    engine.tally(out.reshape(n, s, -1), engine.y[ns:ns + n], engine.onehot[ns:ns + n],
                                 state["sl"], correct, loss_sum)
    return engine.results_from(correct, loss_sum)


def expansion_works(engine, first: str) -> bool:
    """Whether expanding the batch at ``first`` (a cut of the data flow) gives what repeating
    the input gives: checked once per engine and layer on two samples. A model whose
    forward reads the batch size from its input (``x.view(inputs.size(0), -1)``, as
    EfficientNet does) fails here and keeps repeating the input."""
    if first in engine.expansion:
        return engine.expansion[first]
    x = engine.X[:2].to(engine.device, engine.dtype)
    n, s = len(x), 2

    def expand(mod, args, out):
        return out[:, None].expand(n, s, *out.shape[1:]).reshape(n * s, *out.shape[1:])

    try:
        with hooks(engine.model, {first: expand}):
            got = engine.model(x)
        want = engine.model(x)
        got, want = (o[0] if isinstance(o, (tuple, list)) else o for o in (got, want))
        ok = got.shape == (n * s, *want.shape[1:]) and bool(
            torch.allclose(got.reshape(n, s, -1), want.reshape(n, 1, -1).expand(n, s, -1), rtol=1e-4, atol=1e-5))
    except RuntimeError:  # shapes broken by the expansion: repeat the input instead
        ok = False
    engine.expansion[first] = ok
    return ok


def _unit_dict(model, units) -> dict:
    """``units`` as ``{layer: indices or mask}``: a dict as given, or unit addresses
    (``"layer4.1:37"``, :class:`Neuron`) grouped and range-checked by
    :func:`nifkit.models.units.check_units`."""
    if isinstance(units, dict):
        if not units:
            raise TypeError("units must be a non-empty dict {layer name: unit indices or bool mask} or a list of "
                            "unit addresses such as ['layer4.1:37']")
        return units
    if isinstance(units, (str, Neuron, list, tuple)):
        from ..models.units import check_units

        return check_units(model, units)
    raise TypeError("units must be a dict {layer name: unit indices or bool mask} or a list of unit addresses "
                    f"such as ['layer4.1:37'], got {type(units).__name__}")


def _check_selection(name, sel) -> None:
    arr = np.asarray(sel.detach().cpu() if isinstance(sel, torch.Tensor) else sel)
    if arr.dtype != bool and (arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not (
            np.isfinite(arr).all() and (arr == np.round(arr)).all()))):
        raise TypeError(f"units[{name!r}] must be integer unit indices or a bool mask, got {arr.dtype} values "
                        f"{arr.ravel()[:6].tolist()}: fractional indices are not truncated silently")


def _knock_hook(name, sel, value):
    """The forward hook of :func:`knock_out` for one layer: its units (a conv output's
    channels, axis 1) in ``sel`` replaced by ``value``."""
    def hook(mod, args, out):
        m = out.shape[1] if out.ndim > 1 else 1
        mask = torch.zeros(m, dtype=torch.bool, device=out.device)
        idx = torch.as_tensor(np.asarray(sel))
        what = "channels" if out.ndim > 2 else "units"
        if idx.dtype == torch.bool:
            if idx.numel() != m:
                raise ValueError(f"the mask for {name!r} has {idx.numel()} entries but the layer has {m} {what}")
            mask = idx.reshape(-1).to(out.device)
        else:
            idx = idx.reshape(-1).long()
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= m):
                raise ValueError(f"unit indices for {name!r} must lie in 0..{m - 1} (its {what}), got {idx.tolist()}")
            mask[idx.to(out.device)] = True
        if value == "zero":
            v = torch.zeros((), dtype=out.dtype, device=out.device)
        elif isinstance(value, str):
            raise ValueError(f"value must be 'zero', a number or one value per unit, got {value!r} (for "
                             "'mean' use Knockouts, which knows the evaluation set)")
        else:
            v = torch.as_tensor(value, dtype=out.dtype, device=out.device).reshape(-1)
            if v.numel() > 1 and v.numel() != m:
                raise ValueError(f"value has {v.numel()} entries but layer {name!r} has {m} {what}")
            v = v.reshape(m, *[1] * (out.ndim - 2)) if v.numel() > 1 else v.reshape(())
        return torch.where(mask.reshape(m, *[1] * (out.ndim - 2)), v, out)
    return hook


@checked
@contextlib.contextmanager
def knock_out(model: nn.Module, units, value="zero"):
    """Context manager: while inside, the units of ``units`` output ``value`` (``"zero"``,
    a number, or one value per unit). ``units``: ``{layer: unit indices or a bool mask
    over the layer's units}`` or unit addresses (``["layer4.1:37", "act1:3"]``, checked
    against the layers of :func:`nifkit.models.hidden_layout`, a channel out of range is a
    ValueError). A unit of a convolutional output is a channel: its whole map is fixed.
    You run the model; it is in eval mode, and hooks, modes and flags are restored on exit.

    >>> with knock_out(model, {"act1": [0, 3]}):
    ...     logits = model(x)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    units = _unit_dict(model, units)
    modules = dict(model.named_modules())
    for name, sel in units.items():
        _check_selection(name, sel)
    for name in units:
        if name not in modules or name == "":
            raise unknown_layer_error(name, [n for n in modules if n], what="units")
    with hooks(model, [(name, _knock_hook(name, sel, value)) for name, sel in units.items()]), \
            ModelState(model, eval=True):
        yield model
