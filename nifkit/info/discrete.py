r"""Discrete information measures from integer codes, in bits.

A *variable* is either a 1-D array of codes (one value per sample) or a 2-D array
``(samples, k)``; the columns of a 2-D array are packed into one joint variable (its
rows are the symbols). All measures are plug-in estimates from the empirical
distribution, optionally with the Miller–Madow correction.

Formulas (``n`` samples, ``c_x`` counts, ``p_x = c_x / n``):

.. math::

    H(X) = -\sum_x p_x \log_2 p_x = \log_2 n - \frac{1}{n}\sum_x c_x \log_2 c_x

    H_{MM}(X) = H(X) + \frac{m_X - 1}{2 n \ln 2} \quad (m_X = \text{occupied bins})

    I(X;Y) = H(X) + H(Y) - H(X,Y)

    I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)

    I(X_1;\dots;X_k) = -\sum_{\emptyset \ne T \subseteq \{1..k\}} (-1)^{|T|} H(X_T)

The co-information sign convention is the one of ``dit`` and McGill: for three
variables ``I(X;Y;Z) = I(X;Y) - I(X;Y|Z)``, so XOR gives -1 bit.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from .keys import row_keys
from .kernels import LN2, xlog2x
from .._validation import CORRECTIONS, as_codes, as_counts, check_correction, to_numpy

__all__ = [
    "CORRECTIONS",
    "entropy_from_counts",
    "entropy",
    "conditional_entropy",
    "mutual_information",
    "conditional_mutual_information",
    "co_information",
    "pack",
]

def _check_counts(counts, axis):
    """Counts as a finite, non-negative float64 array and ``axis`` as valid axes."""
    c = as_counts(to_numpy(counts, "counts"), "counts")
    axes = axis if isinstance(axis, tuple) else (axis,)
    for ax in axes:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -c.ndim <= ax < max(c.ndim, 1):
            raise ValueError(f"axis={axis!r} is out of range for counts of shape {c.shape}")
    return c


def entropy_from_counts(counts, axis=-1, correction=None):
    """Entropy in bits of the histogram(s) ``counts`` along ``axis`` (int or tuple).

    ``counts`` holds non-negative counts (or unnormalised weights); empty histograms
    give 0. ``correction="miller-madow"`` adds ``(m - 1) / (2 n ln 2)`` with ``m`` the
    number of occupied cells.
    """
    check_correction(correction)
    c = _check_counts(counts, axis)
    n = c.sum(axis=axis)
    s = xlog2x(c).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(n > 0, np.log2(np.where(n > 0, n, 1)) - s / np.where(n > 0, n, 1), 0.0)
        if correction == "miller-madow":
            m = (c > 0).sum(axis=axis)
            h = h + np.where(n > 0, (m - 1) / (2 * np.where(n > 0, n, 1) * LN2), 0.0)
    return h[()] if np.ndim(h) == 0 else h


def pack(*variables, names=None) -> np.ndarray:
    """Pack one or more variables (1-D or 2-D codes, same number of samples) into a
    single 1-D array of joint symbols ``0..m-1``. ``names`` label the variables in
    error messages (default ``"variable 0"``, ...)."""
    if not variables:
        raise ValueError("pack needs at least one variable")
    if names is None:
        names = [f"variable {i}" for i in range(len(variables))]
    elif isinstance(names, str) or len(names) != len(variables):
        got = 1 if isinstance(names, str) else len(names)
        raise ValueError(f"names must give one name per variable: {len(variables)} variables, {got} names")
    cols = []
    n = None
    for i, (v, name) in enumerate(zip(variables, names)):
        v = as_codes(v, name)
        if n is None:
            n = len(v)
        elif len(v) != n:
            raise ValueError(
                f"all variables must have the same number of samples; {names[0]} has {n}, {name} has {len(v)}"
            )
        if len(v) == 0:
            raise ValueError(f"{name} has no samples; pass at least one sample (row) per variable")
        if v.ndim == 2 and v.shape[1] == 0:
            raise ValueError(f"{name} has no columns (shape {v.shape}); pass at least one variable column")
        cols.append(v.reshape(len(v), -1))
    if n == 0:
        raise ValueError(f"{names[0]} has no samples; pass at least one sample (row) per variable")
    joint = np.concatenate(cols, axis=1)
    if joint.shape[1] == 1:
        return joint[:, 0]
    # mixed-radix packing when it fits in int64, otherwise unique rows
    keys = row_keys(joint)
    return keys if keys is not None else np.unique(joint, axis=0, return_inverse=True)[1].ravel()


def _H(correction, *variables, names=None) -> float:
    labels = pack(*variables, names=names)
    counts = np.unique(labels, return_counts=True)[1]
    return float(entropy_from_counts(counts, correction=correction))


def entropy(*variables, correction=None) -> float:
    """Joint entropy ``H(X_1, ..., X_k)`` in bits of the given variables."""
    check_correction(correction)
    return _H(correction, *variables)


def conditional_entropy(x, given, correction=None) -> float:
    """``H(X | Z) = H(X, Z) - H(Z)`` in bits."""
    check_correction(correction)
    return _H(correction, x, given, names=("x", "given")) - _H(correction, given, names=("given",))


def mutual_information(x, y, correction=None) -> float:
    """``I(X;Y) = H(X) + H(Y) - H(X,Y)`` in bits (plug-in, optional Miller–Madow)."""
    check_correction(correction)
    hxy = _H(correction, x, y, names=("x", "y"))  # checks both, and their lengths, first
    return _H(correction, x, names=("x",)) + _H(correction, y, names=("y",)) - hxy


def conditional_mutual_information(x, y, z, correction=None) -> float:
    """``I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)`` in bits."""
    check_correction(correction)
    hxyz = _H(correction, x, y, z, names=("x", "y", "z"))  # checks all three first
    return (
        _H(correction, x, z, names=("x", "z")) + _H(correction, y, z, names=("y", "z")) - hxyz
        - _H(correction, z, names=("z",))
    )


def co_information(*variables, correction=None) -> float:
    """Co-information ``I(X_1; ...; X_k)`` in bits (``k >= 2``), by inclusion–exclusion
    over joint entropies; equals ``I(X;Y)`` for two variables and
    ``I(X;Y) - I(X;Y|Z)`` for three."""
    check_correction(correction)
    k = len(variables)
    if k < 2:
        raise ValueError(f"co_information needs at least two variables, got {k}")
    if k > 12:
        raise ValueError(f"co_information over {k} variables needs 2^{k} entropies; pack some variables together")
    pack(*variables)  # every variable checked (and named) before any entropy
    total = 0.0
    for size in range(1, k + 1):
        for subset in combinations(range(k), size):
            total -= (-1) ** size * _H(correction, *(variables[i] for i in subset),
                                       names=[f"variable {i}" for i in subset])
    return total
