"""The door: every vocabulary argument of a public function or constructor is checked
by its name, on entry, by one rule with one message (:data:`VOCABULARY`, :func:`checked`).

The idea is scikit-learn's ``validate_params``: the signature says which arguments a
function takes; the argument's name says what it must be. ``None`` passes only where the
signature's default is ``None`` or its annotation says ``| None`` (``device`` and
``num_threads``: always, meaning the default). Entry points keep only the checks that
are truly their own (``n_bins`` against the number of samples, a binning method against
the methods that function knows, a layer name against the model). A name that means
something else in one function is declared there: ``@checked(skip=("labels",))``.
"""
from __future__ import annotations

import difflib

import functools
import inspect

import numpy as np
import torch

from . import (
    as_array, as_labels, check_bin_range, check_int, check_n_bins, check_num_threads, check_number,
    check_seed, resolve_device,
)

__all__ = ["VOCABULARY", "MAX_BINS", "check_argument", "checked"]


def _show(value) -> str:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


#: the largest number of bins per neuron: a pair of neurons makes n_bins**2 cells, and
#: more bins than about sqrt(samples) per neuron only measures the sample size
MAX_BINS = 2**16


def _positive(minimum=1):
    return lambda v, n: check_int(v, n, minimum=minimum)


def _bytes(v, n):
    try:
        return check_int(v, n, minimum=1)
    except ValueError:
        raise ValueError(f"{n} must be a positive number of bytes, got {v!r}; e.g. {n}=256 * 2**20") from None


def _bins(v, n):
    return check_n_bins(v, n, allow_pair=True, maximum=MAX_BINS)


def _layer(v, n):
    if not isinstance(v, str):
        raise TypeError(f"{n} must be one module name (str), e.g. {n}='act1'; got {_show(v)} of type "
                        f"{type(v).__name__} (several layers go to layers=[...])")
    return v  # the walker resolves the name ('' is the model itself; unknown names get close matches)


def _layers(v, n):
    if isinstance(v, str):
        return _layer(v, n)
    if callable(v) and not isinstance(v, (list, tuple)):
        return v  # a filter name -> bool
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"{n} must be a module name, a list of names or a filter name -> bool; "
                        f"got {_show(v)} of type {type(v).__name__}")
    if not v:
        raise ValueError(f"{n} is empty: name at least one layer (or pass None where the default is None)")
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise TypeError(f"{n} must hold layer names (str), e.g. {n}=['act1', 'act2']; {n}[{i}] is {_show(s)} "
                            f"of type {type(s).__name__}")
        _layer(s, f"{n}[{i}]")
    twice = sorted({s for s in v if v.count(s) > 1})
    if twice:
        raise ValueError(f"{n} names {', '.join(map(repr, twice))} twice; name each layer once "
                         "(a repeated layer would be measured, knocked out or counted twice)")
    return v


def _progress(v, n):
    if not (isinstance(v, (bool, np.bool_)) or callable(v)):
        raise TypeError(f"{n} must be True (a tqdm bar), False, or a callable {n}(done, total, what); got {_show(v)}")
    return v


def _binning(v, n):
    if isinstance(v, str):
        if not v:
            raise ValueError(f"{n} is an empty string; name a binning method, e.g. {n}='minmax'")
        return v
    if hasattr(v, "transform") and hasattr(v, "fit"):
        return v  # a Binner
    raise TypeError(f"{n} must name a binning method (str, e.g. 'minmax') or be a Binner; got {_show(v)}")


def _image_size(v, n):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{n} must be one integer or a (height, width) pair, got {len(v)} values")
        return tuple(check_int(s, f"{n}[{i}]", minimum=1) for i, s in enumerate(v))
    return check_int(v, n, minimum=1)


#: the largest float32: a value beyond it becomes inf in a float32 model
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _numbers(v, n, what):
    """Finite numbers (0-d or 1-D), not booleans, within float32's range."""
    arr = as_array(v, n, ndim=(0, 1))  # numbers, finite
    if arr.dtype.kind == "b":
        raise TypeError(f"{n} must hold numbers, got booleans; pass {what} as numbers (1.0, not True)")
    if arr.size and float(np.abs(arr).max()) > FLOAT32_MAX:
        raise ValueError(f"{n} holds {float(np.abs(arr).max()):g}, beyond float32's range: it becomes inf in a "
                         "float32 model and poisons every prediction")
    return arr


def _value(v, n):
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)) and any(isinstance(e, (str, list, tuple, np.ndarray, torch.Tensor)) for e in v):
        for i, e in enumerate(v):  # one value per layer
            _value(e, f"{n}[{i}]")
        return v
    if isinstance(v, (np.ndarray, torch.Tensor, list, tuple)):  # one value per unit
        _numbers(v, n, "knock-out values")
        return v
    out = check_number(v, n)  # NaN/inf knock-out values would poison every prediction
    _numbers(out, n, "knock-out values")
    return out


#: how a channel map ``(N, C, *positions)`` becomes one value per sample and channel
#: (:func:`nifkit.models.units.reduce_channels`): the mean or the max over positions,
#: or every position as a sample of its own
CHANNEL_REDUCTIONS = ("mean", "max", "positions")


def _channel_reduce(v, n):
    if not isinstance(v, str):
        raise TypeError(f"{n} must be one of {CHANNEL_REDUCTIONS} (str); got {_show(v)}")
    if v not in CHANNEL_REDUCTIONS:
        close = difflib.get_close_matches(v, CHANNEL_REDUCTIONS, n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{n}={v!r} is not a channel reduction.{hint} Use 'mean' (mean over positions), "
                         "'max' (max over positions) or 'positions' (every position a sample)")
    return v


def _labels(v, n):
    return as_labels(v, n)


def _threshold(v, n):
    if isinstance(v, (np.ndarray, torch.Tensor, list, tuple)):
        arr = _numbers(v, n, "thresholds")
        return arr if not isinstance(v, (list, tuple)) else v
    return check_number(v, n)


def _lr(v, n):
    out = check_number(v, n, minimum=0, strict_min=True)
    if out > FLOAT32_MAX:
        raise ValueError(f"{n}={out:g} is beyond float32's range: every update would be inf; e.g. {n}=1e-2")
    return out


#: the vocabulary: argument name -> (rule, what it must be). A public function or
#: constructor decorated with :func:`checked` checks each of these by name on entry;
#: ``None`` passes only where the signature's default is ``None`` or its
#: annotation says ``| None`` (the docstring then says what ``None`` means).
VOCABULARY = {
    "seed": (check_seed, "an integer in 0..2**64-1"),
    "n_bins": (_bins, f"an integer in 2..{MAX_BINS} (or an (in, out) pair where documented)"),
    "n_bins_a": (_bins, f"an integer in 2..{MAX_BINS}"),
    "n_bins_b": (_bins, f"an integer in 2..{MAX_BINS}"),
    "n_samples": (_positive(), "a positive integer"),
    "max_samples": (_positive(), "a positive integer"),
    "batch_size": (_positive(), "a positive integer"),
    "steps": (_positive(), "a positive integer"),
    "k": (_positive(), "a positive integer"),
    "n_train": (_positive(), "a positive integer"),
    "n_test": (_positive(), "a positive integer"),
    "n_hidden": (_positive(), "a positive integer"),
    "n_classes": (_positive(), "a positive integer"),
    "n_sensitivity_samples": (_positive(), "a positive integer"),
    "n_shuffles": (_positive(0), "an integer >= 0"),
    "image_size": (_image_size, "a positive integer or a (height, width) pair"),
    "memory_budget": (_bytes, "a positive number of bytes"),
    "chunk_bytes": (_bytes, "a positive number of bytes"),
    "num_threads": (check_num_threads, "a positive integer"),
    "device": (resolve_device, "'cpu', 'cuda' (when available) or a torch.device"),
    "layer": (_layer, "one module name (str)"),
    "layers": (_layers, "a module name, a list of distinct names or a filter"),
    "progress": (_progress, "True, False or a callable progress(done, total, what)"),
    "binning": (_binning, "a binning method's name or a Binner"),
    "channel_reduce": (_channel_reduce, "'mean', 'max' or 'positions'"),
    "bin_range": (check_bin_range, "a pair (lo, hi) of finite numbers with hi > lo"),
    "value": (_value, "a method's name, a finite number or finite numbers (one per unit)"),
    "labels": (_labels, "1-D integer class labels 0..K-1"),
    "threshold": (_threshold, "a finite number (or one per neuron)"),
    "lr": (_lr, "a finite number > 0"),
}


#: arguments whose ``None`` means the package's default everywhere (the CPU or the
#: model's device; one thread)
NONE_MEANS_DEFAULT = ("device", "num_threads")


def check_argument(name: str, value, *, allow_none: bool = False):
    """Check one vocabulary argument by its rule (the door's single step); ``None`` passes
    only with ``allow_none``."""
    if value is None:
        if allow_none:
            return None
        if name in NONE_MEANS_DEFAULT:
            return None
        if name == "seed":
            return check_seed(None, name)
        raise TypeError(f"{name}=None is not allowed here; {name} must be {VOCABULARY[name][1]}")
    return VOCABULARY[name][0](value, name)


def _normal(out, value) -> bool:
    """Whether the body gets the rule's normal form instead of ``value``: Python ints,
    floats and tuples of them (a numpy integer or a one-element tensor becomes an int),
    never arrays, devices or callables (those the body converts itself)."""
    if out is value or out is None:
        return False
    if isinstance(out, tuple):
        return all(type(v) in (int, float) for v in out)
    return type(out) in (int, float)


def checked(obj=None, *, skip=()):
    """The door: decorate a public function (or a class: its ``__init__``) so that every
    argument named in :data:`VOCABULARY` is checked by its rule before the body runs; the
    body gets integer and number settings in their normal form (``np.int64(3)``,
    ``torch.tensor(3)`` and ``3.0`` arrive as ``3``).

    ``skip`` lists parameters that share a vocabulary name but mean something else there
    (a plot's ``labels`` are tick labels); the wrapped function lists what it checks in
    ``__door__``."""
    if obj is None:
        return lambda o: checked(o, skip=skip)
    if inspect.isclass(obj):
        obj.__init__ = checked(obj.__init__, skip=skip)
        return obj
    plan = []
    for i, p in enumerate(inspect.signature(obj).parameters.values()):
        if p.name in VOCABULARY and p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            pos = i if p.kind is p.POSITIONAL_OR_KEYWORD else None
            plan.append((pos, p.name, p.default is None or "None" in str(p.annotation)))

    @functools.wraps(obj)
    def door(*args, **kwargs):
        for pos, name, allow_none in plan:
            if pos is not None and pos < len(args):
                value = args[pos]
                out = check_argument(name, value, allow_none=allow_none)
                if _normal(out, value):
                    args = args[:pos] + (out,) + args[pos + 1:]
            elif name in kwargs:
                value = kwargs[name]
                out = check_argument(name, value, allow_none=allow_none)
                if _normal(out, value):
                    kwargs[name] = out
        return obj(*args, **kwargs)

    door.__door__ = tuple(name for _, name, _ in plan)
    door.__door_skip__ = tuple(skip)
    return door
