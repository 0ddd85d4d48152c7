"""Input checks shared by the whole package.

Every public function turns user input into numpy/torch through these helpers, so
that bad input gets one consistent, clear error that names the argument and the fix.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_numpy", "to_tensor", "check_finite", "as_codes", "as_2d", "check_n_samples", "resolve_device"]


def to_numpy(x, name: str = "x") -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor, list) as a numpy array, without copying
    when possible. Torch tensors are detached and moved to the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}") from exc


def to_tensor(x, name: str = "x") -> torch.Tensor:
    """Return ``x`` as a torch tensor (a tensor is detached, an array is shared, not
    copied, when it is contiguous); non-numeric data raise ``TypeError``."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    arr = to_numpy(x, name)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def check_finite(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Raise ``ValueError`` naming the first NaN/inf position of ``x``."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        kind = "NaN" if np.isnan(x[tuple(bad)]) else "inf"
        raise ValueError(
            f"{name} contains {kind} (first at index {tuple(int(i) for i in bad)}). "
            "Remove or impute those samples first, e.g. x[np.isfinite(x).all(axis=1)]; "
            "NaN activations usually mean the model diverged (lower the learning rate)."
        )
    return x


def as_2d(x, name: str = "x") -> np.ndarray:
    """Samples-by-features float array: 1-D input becomes one column."""
    arr = to_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (samples,) or 2-D (samples, features); got shape {arr.shape}. "
            "Flatten extra axes first, e.g. x.reshape(len(x), -1)."
        )
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return check_finite(arr, name)


def as_codes(x, name: str = "codes") -> np.ndarray:
    """Validate discrete codes: non-negative integers, 1-D (samples,) or 2-D
    (samples, variables). Returns an int64 array."""
    arr = to_numpy(x, name)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (samples,) or 2-D (samples, variables); got shape {arr.shape}")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
        if not np.all(arr == np.round(arr)):
            raise TypeError(
                f"{name} must hold integer codes, got non-integer floats. "
                "Discretize continuous values first: nifkit.info.discretize(x, n_bins=8)."
            )
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer codes, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative integer codes; found {int(arr.min())}")
    return arr


def check_n_samples(n: int, needed: int, what: str) -> None:
    """Raise when ``n`` samples are too few for ``needed`` (e.g. the joint cells of two
    binned neurons)."""
    if n < needed:
        raise ValueError(
            f"too few samples for the bins: {n} samples but {what} needs at least {needed}. "
            "Use fewer bins (about sqrt(n_samples) cells per pair is a sane maximum) or more samples."
        )


def resolve_device(device) -> torch.device:
    """``None`` means CPU; strings like ``"cuda"`` are checked for availability."""
    if device is None:
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use device='cpu'")
    return dev
