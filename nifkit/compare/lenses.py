r"""The lens registry: a lens is a function ``(model, data, **options) -> scores``.

The five built-in lenses are the chapters' own model-level entries of the lens protocol,
only registered here: :func:`nifkit.nif.neuron_scores`, :func:`nifkit.conductance.neuron_scores`,
:func:`nifkit.relay.neuron_scores`, :func:`nifkit.ablation.neuron_scores` and
:func:`nifkit.ei.neuron_scores` (each documents its columns and its reduction to one
number per unit). ``data`` is anything :func:`nifkit.record.record` accepts with labels.

A user's lens returns :class:`~nifkit.results.NeuronScores` or one number per hidden unit
in the order of :func:`nifkit.models.hidden_neurons`: an array, a dict ``{address: value}``
(addresses as ``"act1:3"`` or :class:`~nifkit.models.Neuron`) or a dict ``{layer: array}``.
:func:`register_lens` adds one to the registry; :func:`validate_scores` checks it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..models.walk import Neuron
from ..results import NeuronScores

__all__ = ["LENSES", "register_lens", "unregister_lens", "get_lens", "lens_names", "validate_scores", "BUILTIN"]


@dataclass
class _Lens:
    name: str
    fn: Callable
    description: str
    builtin: bool


LENSES: dict = {}


def register_lens(name: str, fn: Callable, description: str = "", *, replace: bool = False) -> None:
    """Add a lens ``fn(model, data) -> scores`` under ``name`` (see the module docstring
    for what ``scores`` may be). ``replace=True`` overwrites an existing lens."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be a function (model, data) -> scores per hidden neuron, got {type(fn).__name__}")
    if name in LENSES and not replace:
        raise ValueError(f"a lens named {name!r} exists already; pick another name or pass replace=True")
    LENSES[name] = _Lens(name, fn, description, builtin=False)


def unregister_lens(name: str) -> None:
    if name not in LENSES:
        raise ValueError(f"no lens named {name!r}")
    if LENSES[name].builtin:
        raise ValueError(f"{name!r} is a built-in lens and cannot be removed")
    del LENSES[name]


def lens_names() -> list:
    return list(LENSES)


def get_lens(name):
    """The registered lens ``name``; an unknown name raises ValueError with "did you mean"."""
    if callable(name):
        return _Lens(getattr(name, "__name__", "custom"), name, "", builtin=False)
    if not isinstance(name, str):
        raise TypeError(f"a lens is a registered name or a function (model, data) -> scores, got {name!r}")
    if name not in LENSES:
        close = difflib.get_close_matches(name, list(LENSES), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"lenses: unknown lens {name!r}.{hint} Registered lenses: {', '.join(LENSES)}; "
                         "add one with nifkit.compare.register_lens(name, fn).")
    return LENSES[name]


def validate_scores(out, neurons: list, lens: str = "lens") -> NeuronScores:
    """Turn a lens's output into :class:`~nifkit.results.NeuronScores` over ``neurons``,
    checking it has exactly one finite number per hidden unit; anything else is a
    ValueError/TypeError naming the fix."""
    n = len(neurons)
    layers = list(dict.fromkeys(a.layer for a in neurons))
    fix = (f"return one number per hidden neuron: an array of shape ({n},) in the order of "
           f"nifkit.models.hidden_neurons(model) ({', '.join(f'{lay}: {sum(a.layer == lay for a in neurons)}' for lay in layers)}), "
           "a dict {'layer:index': value}, a dict {layer: array} or a nifkit.results.NeuronScores")
    if isinstance(out, NeuronScores):
        return _checked_scores(out, neurons, lens, fix)
    if isinstance(out, dict):
        keys = list(out)
        by_layer = keys and all(isinstance(k, str) and k in layers for k in keys)
        vec = _from_layer_dict(out, neurons, layers, lens, fix) if by_layer else _from_unit_dict(out, neurons, lens, fix)
        out = vec
    return NeuronScores(list(neurons), {"score": _vector(out, n, lens, "score", fix)}, "score")


def _checked_scores(out: NeuronScores, neurons, lens, fix) -> NeuronScores:
    if [str(a) for a in out.neurons] != [str(a) for a in neurons]:
        got = [str(a) for a in out.neurons[:3]]
        want = [str(a) for a in neurons[:3]]
        raise ValueError(f"lens {lens!r} scored the units {got}... ({len(out.neurons)}) but the comparison needs "
                         f"{want}... ({len(neurons)}); score the hidden units of the layers asked for")
    n = len(neurons)
    cols = {k: _vector(v, n, lens, k, fix) for k, v in out.columns.items()}
    pc = out.per_class
    if pc is not None:
        pc = np.asarray(pc, dtype=np.float64)
        if pc.ndim != 2 or pc.shape[1] != n:
            raise ValueError(f"lens {lens!r}: per_class must be (classes, {n}), got shape {pc.shape}")
    return NeuronScores(list(neurons), cols, out.primary, pc, seconds=out.seconds, raw=out.raw,
                        settings=dict(out.settings), notes=list(out.notes))


def _from_layer_dict(out, neurons, layers, lens, fix) -> np.ndarray:
    missing = [lay for lay in layers if lay not in out]
    if missing:
        raise ValueError(f"lens {lens!r}: no scores for layer(s) {missing}; {fix}")
    parts = []
    for lay in layers:  # loop over layers
        v = np.asarray(out[lay].detach().cpu() if isinstance(out[lay], torch.Tensor) else out[lay],
                       dtype=np.float64).reshape(-1)
        want = sum(a.layer == lay for a in neurons)
        if len(v) != want:
            raise ValueError(f"lens {lens!r}: layer {lay!r} has {want} neurons but the lens returned "
                             f"{len(v)} values for it; {fix}")
        parts.append(v)
    return np.concatenate(parts)


def _from_unit_dict(out, neurons, lens, fix) -> np.ndarray:
    index = {str(a): i for i, a in enumerate(neurons)}
    vec = np.full(len(neurons), np.nan)
    for k, v in out.items():  # one entry per unit the user wrote
        key = str(Neuron.parse(k)) if isinstance(k, (str, tuple)) else str(k)
        if key not in index:
            close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"lens {lens!r}: unknown neuron {k!r}.{hint} {fix}")
        vec[index[key]] = float(v)
    if np.isnan(vec).any():
        miss = [str(neurons[i]) for i in np.flatnonzero(np.isnan(vec))[:5]]
        raise ValueError(f"lens {lens!r}: no score for neuron(s) {miss}...; {fix}")
    return vec


def _vector(v, n, lens, col, fix) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if v is None or isinstance(v, (str, bytes)):
        raise TypeError(f"lens {lens!r} returned {type(v).__name__}; {fix}")
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lens {lens!r} returned {type(v).__name__}, not numbers ({exc}); {fix}") from None
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"lens {lens!r} (column {col!r}) returned shape {arr.shape}, expected ({n},); {fix}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"lens {lens!r} (column {col!r}) returned NaN or inf for "
                         f"{int((~np.isfinite(arr)).sum())} neuron(s); return finite scores")
    return arr


# ======================================================================================
# The five built-in lenses: the chapters' own entries, registered
# ======================================================================================
def _builtin() -> dict:
    from .. import ablation, conductance, ei, nif, relay

    return {
        "nif": (nif.neuron_scores, "NIF: information flow through the neuron (and betweenness), chapter 1"),
        "conductance": (conductance.neuron_scores, "mean |conductance| toward the true class, chapter 2"),
        "relay": (relay.neuron_scores, "aggregated relay information, chapter 3"),
        "ablation": (ablation.neuron_scores, "I(T;Y), H(T), selectivity, single-neuron knockout, chapter 4"),
        "ei": (ei.neuron_scores, "edge EI and sensitivity of the node, chapter 5"),
    }


BUILTIN = _builtin()
for _name, (_fn, _desc) in BUILTIN.items():
    LENSES[_name] = _Lens(_name, _fn, _desc, builtin=True)
