"""Input checks shared by the whole package: the one door for user input.

Every public function turns user input into numpy/torch and checks its settings through
these helpers, so that bad input gets one consistent error that names the argument and
says how to fix it, never a message from deep inside torch, numpy, sklearn or ``int()``.

Arrays
    :func:`to_numpy`, :func:`to_tensor`, :func:`as_array`, :func:`as_2d`,
    :func:`as_codes`, :func:`as_labels`, :func:`as_counts`, :func:`check_finite`,
    :func:`check_same_length`,
    :func:`check_n_samples`, :func:`check_pairs`
Settings
    :func:`check_int` (sizes, counts, orders), :func:`check_seed`, :func:`check_n_bins`,
    :func:`check_bin_range`, :func:`check_number`, :func:`check_choice`,
    :func:`check_correction`, :func:`check_memory_budget`, :func:`check_num_threads`,
    :func:`check_callable`, :func:`resolve_device`
Results
    :func:`check_estimate` (what a user-supplied estimator returned)

Policies (one for the whole package):

* **Integers** (sizes, counts, orders, ``n_bins``): a Python ``int``, a numpy integer or
  an integral float (``3.0``, ``1e9``) is accepted; a fractional float (``3.7``) is a
  ``TypeError``, never truncated; ``bool`` is a ``TypeError`` (``True`` is not a size).
* **Seeds**: a Python ``int`` or numpy integer in ``0 .. 2**64-1``; floats (even
  ``3.0``), ``bool`` and strings are ``TypeError``; ``None`` only where a function
  documents it.
* **Arrays**: numbers only (``TypeError`` otherwise), finite (``ValueError`` naming the
  first NaN/inf), the documented number of axes, enough samples.

``TypeError`` means "wrong kind of thing", ``ValueError`` "right kind, bad value".
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = [
    "to_numpy", "to_tensor", "as_array", "as_2d", "as_codes", "as_labels", "as_counts", "check_finite",
    "check_same_length", "check_n_samples", "check_pairs", "check_not_meta",
    "check_int", "check_seed", "check_n_bins", "check_bin_range", "check_number", "check_choice",
    "check_correction", "check_memory_budget", "check_num_threads", "check_callable",
    "resolve_device", "check_estimate", "CORRECTIONS",
    "checked", "check_argument", "VOCABULARY", "MAX_BINS",
]

#: the bias corrections every discrete estimator accepts
CORRECTIONS = (None, "miller-madow")

_SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed's upper limit
_EXACT_FLOAT_INT = 2**53  # beyond it a float cannot hold every integer


def _show(value) -> str:
    """A short repr for messages (arrays and tensors by shape, not by content)."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


# --------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------
def to_numpy(x, name: str = "x") -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor, list) as a numpy array, without copying
    when possible. Torch tensors are detached and moved to the CPU (half precision and
    bfloat16 become float32, sparse tensors dense)."""
    if isinstance(x, torch.Tensor):
        check_not_meta(x, name)
        t = x.detach()
        if t.is_sparse:
            t = t.to_dense()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        return t.cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like: numpy's message would not name x
        raise TypeError(
            f"{name} must be a numpy array, a torch tensor or a rectangular list of numbers; "
            f"got {type(x).__name__} that numpy cannot turn into an array (ragged rows?)"
        ) from exc
    if arr.dtype == object and arr.ndim == 0:
        raise TypeError(f"{name} must be a numpy array, a torch tensor or a list of numbers; "
                        f"got {type(x).__name__}")
    return arr


def _check_kind(arr: np.ndarray, name: str, kinds: str = "fiub") -> None:
    if arr.dtype.kind not in kinds:
        want = "integer codes" if kinds == "iub" else "numbers"
        raise TypeError(f"{name} must hold {want}, got dtype {arr.dtype}. "
                        "Convert it first, e.g. np.asarray(x, dtype=float).")


def to_tensor(x, name: str = "x") -> torch.Tensor:
    """Return ``x`` as a torch tensor (a tensor is detached, an array is shared, not
    copied, when it is contiguous); non-numeric data raise ``TypeError``."""
    if isinstance(x, torch.Tensor):
        check_not_meta(x, name)
        if x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x.detach()
    arr = to_numpy(x, name)
    _check_kind(arr, name)
    return torch.from_numpy(np.ascontiguousarray(arr).reshape(arr.shape))  # 0-d stays 0-d


def check_finite(x, name: str = "x"):
    """Raise ``ValueError`` naming the first NaN/inf position of ``x`` (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            check_finite(to_numpy(x, name), name)
        return x
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        kind = "NaN" if np.isnan(x[tuple(bad)]) else "inf"
        raise ValueError(
            f"{name} contains {kind} (first at index {tuple(int(i) for i in bad)}). "
            "Remove or impute those samples first, e.g. x[np.isfinite(x).all(axis=1)]; "
            "NaN activations usually mean the model diverged (lower the learning rate)."
        )
    return x


def as_array(x, name: str = "x", *, ndim=None, kinds: str = "fiub", finite: bool = True,
             min_samples: int = 0) -> np.ndarray:
    """``x`` as a numpy array holding numbers (dtype kinds ``kinds``), with ``ndim`` axes
    (an int or a tuple of allowed counts), finite when ``finite``, and at least
    ``min_samples`` rows."""
    arr = to_numpy(x, name)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            axes = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {axes}; got shape {arr.shape}")
    _check_kind(arr, name, kinds)
    if finite:
        check_finite(arr, name)
    if min_samples and (arr.ndim == 0 or len(arr) < min_samples):
        n = 0 if arr.ndim == 0 else len(arr)
        raise ValueError(f"{name} has {n} samples; at least {min_samples} are needed")
    return arr


def as_2d(x, name: str = "x", min_samples: int = 0) -> np.ndarray:
    """Samples-by-features array of numbers, finite: 1-D input becomes one column."""
    arr = to_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (samples,) or 2-D (samples, features); got shape {arr.shape}. "
            "Flatten extra axes first, e.g. x.reshape(len(x), -1)."
        )
    _check_kind(arr, name)
    check_finite(arr, name)
    if len(arr) < min_samples:
        raise ValueError(f"{name} has {len(arr)} samples; at least {min_samples} are needed")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape}); pass at least one column")
    return arr


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
        if arr.size and np.abs(arr).max() >= 2**62:
            raise ValueError(f"{name} holds codes too large for int64; relabel them with np.unique")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer codes, got dtype {arr.dtype}. "
                        "Map symbols to codes first, e.g. np.unique(x, return_inverse=True)[1].")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative integer codes; found {int(arr.min())}. "
                         "Shift or relabel them, e.g. np.unique(x, return_inverse=True)[1].")
    return arr


def as_labels(y, name: str = "labels", n_samples: int | None = None,
              n_classes: int | None = None) -> np.ndarray:
    """Class labels as a 1-D int64 array of ``0..K-1`` (an ``(n, 1)`` column is
    flattened). Integral floats are accepted; NaN, fractions, negative values, strings,
    a wrong length (``n_samples``) or labels ``>= n_classes`` are refused."""
    arr = to_numpy(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels (samples,); got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}. "
                        "Map them to 0..K-1 first: np.unique(y, return_inverse=True)[1].")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
        if not np.all(arr == np.round(arr)):
            raise TypeError(f"{name} must hold integer class labels, got non-integer floats")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be class indices 0..K-1; found {int(arr.min())}. "
                         "Relabel them: np.unique(y, return_inverse=True)[1].")
    if n_samples is not None and len(arr) != n_samples:
        raise ValueError(f"{name} has {len(arr)} labels but the data have {n_samples} samples; "
                         "pass one label per sample")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise ValueError(f"{name} holds label {int(arr.max())} but n_classes={n_classes}; "
                         f"labels must lie in 0..{n_classes - 1}")
    return arr


def as_masks(masks, m: int, meaning: str, name: str = "masks") -> np.ndarray:
    """Boolean masks ``(n_sets, m)`` (a single mask ``(m,)`` becomes one row); 0/1
    integers are accepted, anything else raises naming ``name`` and what True means."""
    mk = np.asarray(masks)
    if mk.ndim == 1:
        mk = mk[None]
    if mk.ndim != 2 or mk.shape[1] != m:
        raise ValueError(f"{name} must be (n_sets, {m}) booleans ({meaning}), got shape {mk.shape}")
    if mk.dtype != bool:
        if mk.dtype.kind not in "iub" or not np.isin(mk, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans or 0/1 (True = {meaning})")
        mk = mk.astype(bool)
    return mk


def as_counts(x, name: str = "counts"):
    """Histogram counts (or unnormalised weights): numbers, finite, non-negative. A torch
    tensor comes back as a float64 tensor on its device, anything else as a float64 numpy
    array."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must hold real numbers (counts), got dtype {x.dtype}")
        c = x.detach().to(torch.float64)
        finite = bool(torch.isfinite(c).all())
    else:
        c = to_numpy(x, name)
        if c.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold numbers (counts), got dtype {c.dtype}")
        c = c.astype(np.float64, copy=False)
        finite = bool(np.isfinite(c).all())
    if not finite:
        arr = to_numpy(c, name)
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} contains {'NaN' if np.isnan(arr[bad]) else 'inf'} (first at index {bad}); "
                         "counts must be finite non-negative numbers")
    if c.numel() if isinstance(c, torch.Tensor) else c.size:
        low = float(c.min())
        if low < 0:
            raise ValueError(f"{name} must be non-negative counts; found {low}")
    return c


def check_same_length(name_a: str, a, name_b: str, b) -> int:
    """Raise unless ``a`` and ``b`` have the same number of samples; returns it."""
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same number of samples, "
                         f"got {len(a)} and {len(b)}")
    return len(a)


def check_n_samples(n: int, needed: int, what: str, name: str | None = None) -> None:
    """Raise when ``n`` samples are too few for ``needed`` (e.g. the joint cells of two
    binned neurons); ``name`` is the argument holding the samples."""
    if n < needed:
        where = f" in {name}" if name else ""
        raise ValueError(
            f"too few samples{where} for the bins: {n} samples but {what} needs at least {needed}. "
            "Use fewer bins (about sqrt(n_samples) cells per pair is a sane maximum) or more samples."
        )


def check_pairs(pairs, name: str = "pairs", size_a: int | None = None, size_b: int | None = None,
                names=("a", "b")) -> np.ndarray:
    """``(P, 2)`` int64 index pairs ``(i, j)`` with ``0 <= i < size_a``, ``0 <= j < size_b``.
    A single pair may be given as ``(i, j)``; no pairs give a ``(0, 2)`` array. Negative
    indices are refused (they would silently wrap around to the last neuron), as are
    fractional floats."""
    arr = to_numpy(pairs, name)
    if arr.size == 0 and arr.ndim <= 2 and (arr.ndim < 2 or arr.shape[1] in (0, 2)):
        return np.zeros((0, 2), dtype=np.int64)  # no pairs asked, none estimated
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be (P, 2) rows of (i, j) indices; got shape {arr.shape}")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
        if not np.all(arr == np.round(arr)):
            raise TypeError(f"{name} must hold integer indices, got non-integer floats")
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        row = int(np.argwhere(arr < 0)[0, 0])
        raise ValueError(f"{name} row {row} is {tuple(int(v) for v in arr[row])}: negative indices are not "
                         "allowed (they would wrap around to the last neuron); use 0..m-1")
    for col, size, side in ((0, size_a, names[0]), (1, size_b, names[1])):
        if size is not None and arr[:, col].max() >= size:
            row = int(np.argmax(arr[:, col] >= size))
            raise ValueError(f"{name} row {row} is {tuple(int(v) for v in arr[row])}: index "
                             f"{int(arr[row, col])} is outside {side}, which has {size} neurons (0..{size - 1})")
    return arr


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------
def check_not_meta(x, name: str):
    """A tensor on the meta device has a shape but no values: refused by name."""
    if isinstance(x, torch.Tensor) and x.is_meta:
        raise TypeError(f"{name} is a tensor on the meta device (a shape without values); pass real values, "
                        f"e.g. a CPU tensor or a number")


def _scalar(value, name: str = "value"):
    """A 0-d numpy array or one-element tensor -> its Python scalar; else unchanged."""
    check_not_meta(value, name)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.ndim == 0:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False):
    """An integer setting (a size, count or order) as a Python ``int``.

    Accepts ints, numpy integers and integral floats (``3.0``, ``1e9``); refuses
    fractional floats (``3.7``: never truncated), ``bool``, strings (``TypeError``) and
    values outside ``[minimum, maximum]`` (``ValueError``)."""
    if value is None and allow_none:
        return None
    value = _scalar(value, name)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, numbers.Real):
        if not math.isfinite(value) or not float(value).is_integer():
            raise TypeError(f"{name} must be an integer, got {value!r}; fractional values are not "
                            f"truncated silently: pass {math.floor(value) if math.isfinite(value) else 'an int'} "
                            "or the value you mean")
        if abs(value) > _EXACT_FLOAT_INT:
            raise ValueError(f"{name}={value!r} is a float beyond 2**53, where floats skip integers: no count or "
                             f"size that large can be meant; pass an int")
        out = int(value)
    else:
        none = " or None" if allow_none else ""
        raise TypeError(f"{name} must be an integer{none}, got {_show(value)} of type {type(value).__name__}")
    if minimum is not None and out < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be a positive integer, got {out}")
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    if maximum is not None and out > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {out}")
    return out


def check_seed(seed, name: str = "seed", *, allow_none: bool = False):
    """A reproducibility seed: a Python ``int`` or numpy integer in ``0..2**64-1``.
    Floats (even ``3.0``), ``bool`` and strings are refused; ``None`` only when
    ``allow_none`` (the function then documents what ``None`` means)."""
    if seed is None:
        if allow_none:
            return None
        raise TypeError(f"{name}=None would give a different result on every run; pass an integer, e.g. {name}=0")
    seed = _scalar(seed, name)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an integer (int or numpy integer), got {_show(seed)} of type "
                        f"{type(seed).__name__}; e.g. {name}=0")
    seed = int(seed)
    if not 0 <= seed <= _SEED_MAX:
        raise ValueError(f"{name} must lie in 0..2**64-1, got {seed}")
    return seed


def check_n_bins(n_bins, name: str = "n_bins", *, allow_pair: bool = False, allow_none: bool = False,
                 maximum: int | None = None):
    """Bins per neuron: an integer ``>= 2``, or with ``allow_pair`` an ``(in, out)``
    pair of them (returned as a tuple of ints)."""
    if n_bins is None and allow_none:
        return None
    if allow_pair and isinstance(n_bins, (tuple, list)):
        if len(n_bins) != 2:
            raise ValueError(f"{name} must be an integer or an (in, out) pair, got {len(n_bins)} values")
        return tuple(check_n_bins(b, f"{name}[{i}]", maximum=maximum) for i, b in enumerate(n_bins))
    if isinstance(n_bins, (tuple, list)) or (isinstance(n_bins, np.ndarray) and n_bins.ndim > 0):
        raise TypeError(f"{name} must be one integer >= 2 here, got {_show(n_bins)}")
    try:
        return check_int(n_bins, name, minimum=2, maximum=maximum)
    except ValueError:
        raise ValueError(f"{name} must be an integer >= 2{'' if maximum is None else f' and <= {maximum}'}, "
                         f"got {n_bins!r}: one bin carries no information") from None


def check_number(value, name: str, *, minimum=None, maximum=None, strict_min: bool = False,
                 strict_max: bool = False, allow_none: bool = False) -> float | None:
    """A finite real number (``float``) within the given bounds; ``bool`` and strings are
    ``TypeError``, NaN/inf and out-of-range values ``ValueError``."""
    if value is None and allow_none:
        return None
    value = _scalar(value, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_show(value)} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict_min else '>='} {minimum}, got {value}")
    if maximum is not None and (value >= maximum if strict_max else value > maximum):
        raise ValueError(f"{name} must be {'<' if strict_max else '<='} {maximum}, got {value}")
    return value


def check_bin_range(bin_range, name: str = "bin_range", *, allow_none: bool = True):
    """A fixed bin range ``(lo, hi)`` of finite numbers with ``hi > lo`` (floats)."""
    if bin_range is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required: pass (lo, hi), e.g. {name}=(0, 1) for sigmoid units")
    check_not_meta(bin_range, name)
    try:
        pair = not isinstance(bin_range, (str, bytes)) and len(bin_range) == 2
    except TypeError:  # no length (a number, a 0-d array)
        pair = False
    if not pair:
        raise TypeError(f"{name} must be a pair (lo, hi), got {_show(bin_range)}")
    lo = check_number(bin_range[0], f"{name}[0]")
    hi = check_number(bin_range[1], f"{name}[1]")
    if not hi > lo:
        raise ValueError(f"{name} must be finite with hi > lo, got {tuple(bin_range)!r}")
    return lo, hi


def check_choice(value, name: str, choices) -> object:
    """``value`` must be one of ``choices`` (compared with ``==``)."""
    ok = False
    for c in choices:
        if c is None or value is None:
            ok = value is c
        elif type(value) is type(c) or (isinstance(value, str) and isinstance(c, str)):
            try:
                ok = bool(value == c)
            except Exception:
                ok = False
        if ok:
            break
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {_show(value)}")
    return value


def check_correction(correction, name: str = "correction"):
    """One of :data:`CORRECTIONS` (``None`` or ``"miller-madow"``)."""
    return check_choice(correction, name, CORRECTIONS)


def check_memory_budget(memory_budget, name: str = "memory_budget") -> int:
    """A positive number of bytes (an integer; ``1e9`` is accepted)."""
    try:
        return check_int(memory_budget, name, minimum=1)
    except ValueError:
        raise ValueError(f"{name} must be a positive number of bytes, got {memory_budget!r}; "
                         "e.g. memory_budget=256 * 2**20") from None


def check_num_threads(num_threads, name: str = "num_threads"):
    """``None`` (the package's policy: one thread on the CPU) or a positive integer."""
    return check_int(num_threads, name, minimum=1, allow_none=True)


def check_callable(f, name: str):
    if not callable(f):
        raise TypeError(f"{name} must be a function, got {_show(f)} of type {type(f).__name__}")
    return f


def resolve_device(device, name: str = "device") -> torch.device:
    """``None`` means CPU; strings like ``"cuda"`` are checked for availability."""
    if device is None:
        return torch.device("cpu")
    if isinstance(device, (bool, float)) or not isinstance(device, (str, int, torch.device)):
        raise TypeError(f"{name} must be None, a string such as 'cpu' or 'cuda', or a torch.device; "
                        f"got {_show(device)}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"{name}={device!r} is not a device torch knows; use 'cpu', 'cuda' or 'cuda:0'") from exc
    if dev.type == "meta":
        raise ValueError(f"{name}={device!r}: the meta device holds shapes without values, so nothing can be "
                         f"computed there; use {name}='cpu' (or 'cuda')")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r} was requested but CUDA is not available; use {name}='cpu'")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{name}={device!r} was requested but MPS is not available; use {name}='cpu'")
    return dev


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
def check_estimate(value, name: str = "estimator", what: str = "") -> float:
    """What a user-supplied estimator returned must be one finite real number; NaN or
    inf would make every comparison false (and a p-value look significant)."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            raise TypeError(f"{name} must return one number{what}, got {_show(value)}")
        value = value.reshape(-1)[0].item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must return one number{what}, got {_show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} returned {value}{what}; a NaN/inf estimate cannot be compared with a null. "
                         "Check the estimator on these inputs (too few samples? constant variables?)")
    return value



# the door (nifkit/_validation/door.py): imported last, it uses the checks above
from .door import MAX_BINS, VOCABULARY, check_argument, checked  # noqa: E402
