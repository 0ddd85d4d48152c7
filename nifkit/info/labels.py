r"""Measures of single units against a class label, from label counts
``(units, bins, classes)`` (:func:`nifkit.info.counts.label_counts`).

.. math::

    I(T;Y) = \sum_y p(y)\, D_{KL}(P_{T|y} \,\|\, P_T)

so the per-class KL profile ``KL(P_T|y || P_T)`` (:func:`kl_profile_from_counts`) is the
part of the MI that each class contributes before weighting by ``p(y)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["kl_profile_from_counts"]


def kl_profile_from_counts(counts) -> np.ndarray:
    """Per-class KL profile ``KL(P_T|y || P_T)`` in bits from joint counts
    ``(..., bins, classes)``; returns ``(..., classes)``. Classes without samples get 0.

    >>> kl_profile_from_counts(np.array([[10, 0], [0, 10]]))  # a unit copying a fair coin
    array([1., 1.])
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim < 2:
        raise ValueError(f"counts must be (..., bins, classes), got shape {c.shape}")
    if c.size and (not np.isfinite(c).all() or c.min() < 0):
        raise ValueError("counts must be finite and non-negative")
    n = c.sum(axis=(-2, -1), keepdims=True)
    ct = c.sum(axis=-1, keepdims=True)  # (..., B, 1)
    cy = c.sum(axis=-2, keepdims=True)  # (..., 1, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t_given_y = np.where(cy > 0, c / np.where(cy > 0, cy, 1), 0.0)
        p_t = ct / np.where(n > 0, n, 1)
        ratio = np.where(c > 0, p_t_given_y / np.where(p_t > 0, p_t, 1), 1.0)
        kl = (p_t_given_y * np.log2(ratio)).sum(axis=-2)
    return np.maximum(kl, 0.0)
