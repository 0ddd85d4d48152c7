"""Reading a ``data`` argument as batches: in-memory data cut into rows, a DataLoader
or any iterable of batches as it comes (never gathered), a Dataset's split. The one
batch reader of :func:`~nifkit.record.record` and the flow graph's stream."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch

from .._validation import checked, to_tensor

__all__ = ["batches_of", "data_batches"]


def batches_of(data, targets, batch_size: int, split: str = "train"):
    """``(batches, n_batches, n_samples)`` of ``data`` with optional separate ``targets``
    (what :func:`~nifkit.record.record` reads); the counts are None when unknown."""
    from ..data import Dataset

    if isinstance(data, Dataset):
        X, y = data.split(split)
        return _tensor_batches(X, y, batch_size), math.ceil(len(X) / batch_size), len(X)
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        if targets is not None:
            raise ValueError("targets was given but data is already an (X, y) pair; pass one of them")
        X, y = to_tensor(data[0], "data[0]"), to_tensor(data[1], "data[1]")
        _check_rows(X, "data[0]", inputs=True)
        _check_rows(y, "data[1]")
        if len(X) != len(y):
            raise ValueError(f"data=(X, y) with {len(X)} inputs but {len(y)} targets")
        return _tensor_batches(X, y, batch_size), math.ceil(len(X) / batch_size), len(X)
    if isinstance(data, (torch.Tensor, np.ndarray)):
        X = to_tensor(data, "data")
        _check_rows(X, "data", inputs=True)
        y = None if targets is None else to_tensor(targets, "targets")
        if y is not None:
            _check_rows(y, "targets")
        if y is not None and len(y) != len(X):
            raise ValueError(f"targets has {len(y)} rows but data has {len(X)}")
        return _tensor_batches(X, y, batch_size), math.ceil(len(X) / batch_size), len(X)
    if isinstance(data, Iterable):
        if targets is not None:
            raise ValueError("targets cannot be combined with a DataLoader/iterable; put them in its batches")
        try:
            n = len(data)
        except TypeError:
            n = None
        return _iter_batches(data), n, None
    raise TypeError(
        "data must be a tensor/array of inputs, an (X, y) pair, a DataLoader or iterable of batches, "
        f"or a nifkit.data.Dataset; got {type(data).__name__}"
    )


@checked
def data_batches(data, batch_size: int = 256, split: str = "train"):
    """``(batches, n_batches, n_samples)`` of anything :func:`record` reads: ``batches``
    yields ``(x, y or None)`` in order (a ``DataLoader`` as it comes, never gathered;
    in-memory data cut into ``batch_size`` rows); the counts are None when unknown."""
    return batches_of(data, None, batch_size, split)


def _check_rows(t, name, inputs: bool = False):
    if t.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar; e.g. {name}.reshape(1, -1)")
    if inputs and t.ndim == 1:
        raise ValueError(f"{name} is 1-D (shape {tuple(t.shape)}): one sample of {len(t)} features or {len(t)} samples "
                         f"of one feature? Pass {name}[None] for one sample, {name}[:, None] for one feature")


def _tensor_batches(X, y, batch_size):
    for i in range(0, len(X), batch_size):
        yield X[i:i + batch_size], None if y is None else y[i:i + batch_size]


def _iter_batches(loader):
    for b in loader:
        if isinstance(b, torch.Tensor):
            xb, yb = b, None
        elif isinstance(b, (tuple, list)) and b:
            xb, yb = to_tensor(b[0], "batch[0]"), None if len(b) < 2 else to_tensor(b[1], "batch[1]")
        elif isinstance(b, dict) and b:
            vals = list(b.values())
            xb, yb = to_tensor(vals[0], "batch"), None if len(vals) < 2 else to_tensor(vals[1], "batch")
        else:
            raise TypeError(f"data: each batch must be a tensor or an (x, y) pair, got {type(b).__name__}")
        if xb.ndim == 0:
            raise TypeError("data: a batch's inputs are a single number, so data was read as an iterable of "
                            "batches; pass inputs as one tensor or array instead, e.g. np.asarray(data)")
        yield xb, yb
