"""Shuffle null for MI: is an estimate larger than chance?

Permuting the samples of one variable keeps both marginals and destroys the
dependence, so MI values of shuffled data form a null distribution that includes the
estimator's own bias. The p-value is ``(1 + #{null >= observed}) / (1 + n_shuffles)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import to_numpy
from .pairwise import pairwise_mi

__all__ = ["ShuffleTest", "shuffle_test", "pairwise_shuffle_test", "p_values"]


@dataclass
class ShuffleTest:
    """Observed MI, null samples (bits) and the one-sided p-value."""

    observed: np.ndarray | float
    null: np.ndarray
    p_value: np.ndarray | float

    @property
    def null_mean(self):
        """Mean MI under shuffling: the estimator's bias at this sample size."""
        return self.null.mean(axis=0)

    def significant(self, alpha: float = 0.05):
        return self.p_value < alpha


def _check(n_shuffles):
    if not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
        raise ValueError(f"n_shuffles must be a positive integer, got {n_shuffles!r}")


def shuffle_test(x, y, estimator, n_shuffles: int = 100, seed=0) -> ShuffleTest:
    """Null distribution of ``estimator(x, y_shuffled)`` for one pair; ``estimator`` is
    any function ``(x, y) -> bits``, e.g. :func:`mutual_information` or :func:`ksg_mi`."""
    _check(n_shuffles)
    y = to_numpy(y, "y")
    rng = np.random.default_rng(seed)
    obs = float(estimator(x, y))
    null = np.array([estimator(x, y[rng.permutation(len(y))]) for _ in range(n_shuffles)])
    p = (1 + np.sum(null >= obs)) / (1 + n_shuffles)
    return ShuffleTest(obs, null, float(p))


def pairwise_shuffle_test(a, b=None, n_shuffles: int = 20, seed=0, **kwargs) -> ShuffleTest:
    """Shuffle null for every pair of :func:`pairwise_mi` at once: each shuffle permutes
    the samples of ``b`` (or of a copy of ``a``) with one permutation for all neurons,
    which keeps every pair's marginals. ``kwargs`` go to :func:`pairwise_mi`."""
    _check(n_shuffles)
    a = to_numpy(a, "a")
    other = a if b is None else to_numpy(b, "b")
    obs = pairwise_mi(a, other, **kwargs)
    rng = np.random.default_rng(seed)
    null = np.stack([pairwise_mi(a, other[rng.permutation(len(other))], **kwargs) for _ in range(n_shuffles)])
    p = (1 + (null >= obs[None]).sum(axis=0)) / (1 + n_shuffles)
    return ShuffleTest(obs, null, p)


def p_values(observed, null) -> np.ndarray:
    """One-sided permutation p-values ``(1 + #{null >= observed}) / (1 + n_null)``,
    vectorised: ``null`` is a sequence (or an array stacked on axis 0) of null
    estimates shaped like ``observed``. Where ``observed`` is NaN the p-value is NaN;
    NaN null values never count as ``>= observed``."""
    obs = np.asarray(observed, dtype=np.float64)
    nl = np.asarray([np.asarray(v, dtype=np.float64) for v in null]) if not isinstance(null, np.ndarray) \
        else null.astype(np.float64, copy=False)
    if nl.ndim == 0 or nl.shape[1:] != obs.shape:
        raise ValueError(f"null must stack estimates shaped like observed {obs.shape}, got {nl.shape}")
    if len(nl) < 1:
        raise ValueError("null holds no estimates; use n_shuffles >= 1")
    with np.errstate(invalid="ignore"):
        ge = (nl >= obs[None]).sum(axis=0)
    p = (1.0 + ge) / (1.0 + len(nl))
    return np.where(np.isnan(obs), np.nan, p)
