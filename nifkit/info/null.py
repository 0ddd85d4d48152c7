"""Shuffle null for MI: is an estimate larger than chance?

Permuting the samples of one variable keeps both marginals and destroys the
dependence, so MI values of shuffled data form a null distribution that includes the
estimator's own bias. The p-value is ``(1 + #{null >= observed}) / (1 + n_shuffles)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_callable, check_estimate, check_int, check_seed, to_numpy
from .pairwise import pairwise_mi
from ..results import Result
from .._validation import checked

__all__ = ["ShuffleTest", "shuffle_test", "pairwise_shuffle_test", "p_values"]


@dataclass(repr=False)
class ShuffleTest(Result):
    """Observed MI, null samples (bits) and the one-sided p-value."""

    observed: np.ndarray | float
    null: np.ndarray
    p_value: np.ndarray | float

    def table(self) -> list[dict]:
        """One row per tested pair (one row for a single test): observed, null mean, p."""
        obs, mean, p = (np.atleast_1d(np.asarray(v, dtype=float)).ravel().tolist()
                        for v in (self.observed, self.null_mean, self.p_value))
        return [{"observed": o, "null_mean": m, "p_value": q} for o, m, q in zip(obs, mean, p)]

    @property
    def null_mean(self):
        """Mean MI under shuffling: the estimator's bias at this sample size."""
        return self.null.mean(axis=0)

    def significant(self, alpha: float = 0.05):
        return self.p_value < alpha


def _check(n_shuffles, seed):
    return check_int(n_shuffles, "n_shuffles", minimum=1), check_seed(seed)


@checked
def shuffle_test(x, y, estimator, n_shuffles: int = 100, seed=0) -> ShuffleTest:
    """Null distribution of ``estimator(x, y_shuffled)`` for one pair; ``estimator`` is
    any function ``(x, y) -> bits``, e.g. :func:`mutual_information` or :func:`ksg_mi`.

    The estimator must return one finite number for the data and for every shuffle:
    a NaN would compare false with everything and make the p-value look significant,
    so it raises ``ValueError`` (which call, and what it returned) instead."""
    n_shuffles, seed = _check(n_shuffles, seed)
    check_callable(estimator, "estimator")
    y = to_numpy(y, "y")
    if y.ndim == 0:
        raise ValueError(f"y must hold one value per sample, got a scalar {y!r}")
    try:
        n_x = len(x)
    except TypeError:  # a scalar or a 0-d array: the estimator will say what it needs
        n_x = len(y)
    if n_x != len(y):
        raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    obs = check_estimate(estimator(x, y), "estimator", " on the observed (unshuffled) data")
    null = np.array([check_estimate(estimator(x, y[rng.permutation(len(y))]), "estimator", f" on shuffle {i}")
                     for i in range(n_shuffles)])
    p = (1 + np.sum(null >= obs)) / (1 + n_shuffles)
    return ShuffleTest(obs, null, float(p), settings={"n_shuffles": n_shuffles, "seed": seed})


@checked
def pairwise_shuffle_test(a, b=None, n_shuffles: int = 20, seed=0, **kwargs) -> ShuffleTest:
    """Shuffle null for every pair of :func:`pairwise_mi` at once: each shuffle permutes
    the samples of ``b`` (or of a copy of ``a``) with one permutation for all neurons,
    which keeps every pair's marginals. ``kwargs`` go to :func:`pairwise_mi`."""
    n_shuffles, seed = _check(n_shuffles, seed)
    a = to_numpy(a, "a")
    other = a if b is None else to_numpy(b, "b")
    obs = pairwise_mi(a, other, **kwargs)  # checks a, b and kwargs
    rng = np.random.default_rng(seed)
    null = np.stack([pairwise_mi(a, other[rng.permutation(len(other))], **kwargs) for _ in range(n_shuffles)])
    p = (1 + (null >= obs[None]).sum(axis=0)) / (1 + n_shuffles)
    return ShuffleTest(obs, null, p, settings={"n_shuffles": n_shuffles, "seed": seed, **kwargs})


def p_values(observed, null) -> np.ndarray:
    """One-sided permutation p-values ``(1 + #{null >= observed}) / (1 + n_null)``,
    vectorised: ``null`` is a sequence (or an array stacked on axis 0) of null
    estimates shaped like ``observed``. Where ``observed`` is NaN (undefined) the p-value is NaN;
    a NaN null value where ``observed`` is a number is refused (``ValueError``)."""
    obs = np.asarray(observed, dtype=np.float64)
    nl = np.asarray([np.asarray(v, dtype=np.float64) for v in null]) if not isinstance(null, np.ndarray) \
        else null.astype(np.float64, copy=False)
    if nl.ndim == 0 or nl.shape[1:] != obs.shape:
        raise ValueError(f"null must stack estimates shaped like observed {obs.shape}, got {nl.shape}")
    if len(nl) < 1:
        raise ValueError("null holds no estimates; use n_shuffles >= 1")
    bad = np.isnan(nl) & ~np.isnan(obs)[None]
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"null holds NaN at {where} where observed is a number: a NaN null estimate would never "
                         "count as >= observed and make the p-value look significant. Check the estimator on the "
                         "shuffled data (constant columns? too few samples?)")
    with np.errstate(invalid="ignore"):
        ge = (nl >= obs[None]).sum(axis=0)
    p = (1.0 + ge) / (1.0 + len(nl))
    return np.where(np.isnan(obs), np.nan, p)
