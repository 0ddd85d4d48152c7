"""``data`` as arrays: the one reader of the ``data`` argument for entry points that need
every sample in memory at once (knockouts, ablation curves, the lenses).

``data`` is what :func:`nifkit.record.record` accepts: a :class:`~nifkit.data.Dataset`
(its ``split``), an ``(X, y)`` pair, a tensor or array of inputs, or a ``DataLoader`` /
iterable of ``(x, y)`` batches (concatenated here; entry points that can stream pass the
loader to ``record`` instead).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .._validation import as_labels, check_choice, check_finite, to_tensor
from ..runtime import all_finite
from .dataset import Dataset
from .._validation import checked

__all__ = ["as_xy", "as_float_tensor"]


def as_float_tensor(x, name: str) -> torch.Tensor:
    """``x`` (tensor, array, list, number) as a floating-point tensor (integers become
    float32); non-numbers are a TypeError, NaN/inf a ValueError naming ``name``."""
    t = to_tensor(x, name)
    if not t.is_floating_point():
        t = t.float()
    if not all_finite(t):
        check_finite(t.cpu().numpy(), name)
    return t


def _float_inputs(x, name: str) -> torch.Tensor:
    t = as_float_tensor(x, name)
    if t.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar; e.g. {name}.reshape(1, -1)")
    return t


def _gather(loader) -> tuple:
    xs, ys = [], []
    for b in loader:  # loop over batches
        if isinstance(b, dict):
            b = list(b.values())
        if isinstance(b, torch.Tensor) or not isinstance(b, (tuple, list)) or not b:
            xs.append(b)
            continue
        xs.append(b[0])
        if len(b) > 1:
            ys.append(b[1])
    if not xs:
        raise ValueError("data: the DataLoader/iterable yielded no batch; pass data with at least one sample")
    X = torch.cat([_float_inputs(x, "data batch") for x in xs])
    y = torch.cat([torch.as_tensor(v) for v in ys]) if len(ys) == len(xs) else None
    return X, y


@checked(skip=('labels',))
def as_xy(data, split: str = "train", *, labels: bool = True, max_samples: int | None = None, seed: int = 0,
          min_samples: int = 1) -> tuple:
    """``(X, y)`` of ``data``: float inputs and int64 labels (``y`` None when
    ``labels=False`` and the data carry none). ``split`` picks a Dataset's part
    (``"train"``, ``"test"`` or ``"all"``); ``max_samples`` keeps a seeded random subset
    of that many samples (in their original order); fewer than ``min_samples`` samples is
    a ValueError."""
    check_choice(split, "split", ("train", "test", "all"))
    if isinstance(data, Dataset):
        X, y = data.split(split)
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        X, y = data
    elif isinstance(data, (torch.Tensor, np.ndarray)):
        X, y = data, None
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        X, y = _gather(data)
    else:
        raise TypeError("data must be a nifkit.data.Dataset, an (X, y) pair, a tensor/array of inputs or a "
                        f"DataLoader of (x, y) batches; got {type(data).__name__}")
    X = _float_inputs(X, "data (inputs)")
    if y is None and labels:
        raise ValueError("data holds no labels, and this measure needs them: pass (X, y), a Dataset or a "
                         "DataLoader of (x, y) batches")
    if y is not None:
        if isinstance(y, torch.Tensor) and y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
            raise ValueError(f"data (labels) must be 1-D class labels (samples,); got shape {tuple(y.shape)}")
        y = torch.from_numpy(np.ascontiguousarray(as_labels(y, "data (labels)", n_samples=len(X))))
    if len(X) < min_samples:
        held = "holds no samples" if len(X) == 0 else f"has {len(X)} samples"
        raise ValueError(f"data {held}; this measure needs at least {min_samples}")
    if max_samples is not None and max_samples < len(X):
        rng = np.random.default_rng(seed)
        idx = torch.from_numpy(np.sort(rng.choice(len(X), max_samples, replace=False)))
        X, y = X[idx], None if y is None else y[idx]
    return X, y
