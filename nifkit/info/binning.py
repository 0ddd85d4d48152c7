"""Discretisation of activations into small integer codes.

Three schemes, chosen with ``binning``:

``"fixed"``
    Equal-width bins over one fixed ``bin_range=(lo, hi)`` shared by all neurons (the
    effective-information papers use ``(0, 1)`` for sigmoid units). Values outside
    the range fall into the first or last bin.
``"minmax"``
    Equal-width bins over each neuron's own minimum and maximum (the default).
``"quantile"``
    Equal-mass bins per neuron: edges at the neuron's quantiles. Ties (e.g. the many
    exact zeros of a ReLU) share a bin, so some bins may stay empty.

A :class:`Binner` is fitted once and then transforms any number of batches with the
same edges, which is what streaming over a data loader needs.

Binary splits (one threshold per neuron, codes 0/1): :func:`binarize` with
``binning="kmeans2"`` (exact 1-D 2-means, Hintze & Adami), ``"median"`` or
``"threshold"`` (a fixed value).
"""
from __future__ import annotations

import numpy as np

from .._validation import as_2d, check_bin_range, check_choice, check_n_bins
from .._validation import checked

__all__ = ["Binner", "discretize", "METHODS", "BINARY_METHODS", "kmeans2_thresholds", "binary_thresholds", "binarize"]

METHODS = ("fixed", "minmax", "quantile")


class Binner:
    """Per-neuron bin edges; ``fit`` on data, ``transform`` to codes ``0..n_bins-1``.

    Parameters
    ----------
    n_bins : int, >= 2
    binning : "fixed", "minmax" or "quantile"
    bin_range : (lo, hi), required for ``"fixed"``
    """

    @checked
    def __init__(self, n_bins: int = 8, binning: str = "minmax", bin_range=None):
        self.n_bins = n_bins
        self.binning = binning
        self.bin_range = bin_range
        self.validate()  # settings checked where they are given, not at fit

    def validate(self) -> "Binner":
        """Check the settings now (fit does it too); raises ValueError naming the fix."""
        self.n_bins = check_n_bins(self.n_bins, "n_bins")
        check_choice(self.binning, "binning", METHODS)
        if self.binning == "fixed":
            if self.bin_range is None:
                raise ValueError('binning="fixed" needs bin_range=(lo, hi), e.g. bin_range=(0, 1) for sigmoid units')
            self.bin_range = check_bin_range(self.bin_range, "bin_range")
        elif self.bin_range is not None:
            raise ValueError(f"bin_range={self.bin_range!r} is only used by binning='fixed' (got binning={self.binning!r}); "
                             "drop it or pass binning='fixed'")
        return self

    def fit(self, x) -> "Binner":
        """Learn the edges from ``x`` of shape ``(samples, neurons)``."""
        self.validate()
        x = as_2d(x, "x")
        if self.binning != "fixed" and len(x) == 0:
            raise ValueError("x has no samples: cannot fit bins on zero samples")
        m = x.shape[1]
        b = self.n_bins
        if self.binning == "fixed":
            lo = np.full(m, float(self.bin_range[0]))
            hi = np.full(m, float(self.bin_range[1]))
            self.edges_ = lo[:, None] + (hi / b - lo / b)[:, None] * np.arange(1, b)[None, :]  # no overflow at +-1e308
        elif self.binning == "minmax":
            lo = x.min(axis=0).astype(np.float64)
            hi = x.max(axis=0).astype(np.float64)
            self.edges_ = lo[:, None] + (hi / b - lo / b)[:, None] * np.arange(1, b)[None, :]  # no overflow at +-1e308
        else:
            q = np.arange(1, b) / b
            self.edges_ = np.quantile(x.astype(np.float64), q, axis=0).T.copy()
        self.lo_, self.hi_ = lo if self.binning != "quantile" else None, hi if self.binning != "quantile" else None
        self.n_features_ = m
        return self

    @checked
    def transform(self, x, chunk_bytes: int = 64 * 2**20) -> np.ndarray:
        """Codes in ``0..n_bins-1`` for ``x`` of shape ``(samples, neurons)``.

        A value ``v`` gets the number of edges ``e`` with ``v >= e``; the comparison is
        done in sample chunks of at most ``chunk_bytes`` of temporaries.
        """
        if not hasattr(self, "edges_"):
            raise RuntimeError("Binner.transform called before fit; call fit(x) or fit_transform(x)")
        x = as_2d(x, "x")
        if x.shape[1] != self.n_features_:
            raise ValueError(f"x has {x.shape[1]} neurons but the binner was fitted on {self.n_features_}")
        dtype = np.uint8 if self.n_bins <= 256 else np.int64
        out = np.empty(x.shape, dtype=dtype)
        if self.binning != "quantile":
            # equal width: arithmetic, no comparisons; in sample chunks of about chunk_bytes
            # of float64 temporaries (three of them: x / width, the shift, the floor)
            width = self.hi_ / self.n_bins - self.lo_ / self.n_bins  # hi - lo would overflow at +-1e308
            safe = np.where(width > 0, width, 1.0)
            rows = max(1, chunk_bytes // max(1, 3 * 8 * x.shape[1]))
            for start in range(0, len(x), rows):  # chunks of samples
                codes = np.floor(x[start:start + rows] / safe - self.lo_ / safe)
                codes = np.where(width > 0, codes, 0)
                np.clip(codes, 0, self.n_bins - 1, out=codes)
                out[start:start + rows] = codes
            return out
        rows = max(1, chunk_bytes // max(1, x.shape[1] * (self.n_bins - 1)))
        for start in range(0, len(x), rows):
            blk = x[start : start + rows]
            out[start : start + rows] = (blk[:, :, None] >= self.edges_[None, :, :]).sum(axis=2)
        return out

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)


@checked
def discretize(x, n_bins: int = 8, binning: str = "minmax", bin_range=None) -> np.ndarray:
    """Codes ``(samples, neurons)`` in ``0..n_bins-1``; see :class:`Binner`."""
    return Binner(n_bins=n_bins, binning=binning, bin_range=bin_range).fit_transform(x)


# ----------------------------------------------------------------------------- binary splits
BINARY_METHODS = ("kmeans2", "median", "threshold")


def kmeans2_thresholds(x) -> np.ndarray:
    r"""Exact 1-D 2-means split of every column of ``x`` ``(samples, neurons)``, vectorised.

    In one dimension the optimal 2-means partition is contiguous in sorted order, so
    for each neuron every split ``k`` of its sorted values is scored at once with
    cumulative sums: with prefix sum ``S_k`` and total ``T`` of ``n`` values the
    within-cluster sum of squares is ``sum x^2 - S_k^2/k - (T-S_k)^2/(n-k)``; the best
    ``k`` (splits only between distinct values) minimises it. Returns the threshold
    per neuron: the midpoint of the two cluster means (the nearest-centroid rule), so
    ``x > threshold`` reproduces the optimal partition. A constant neuron gets
    its own value as threshold (finite; ``x > threshold`` gives all codes 0). Hintze & Adami binarise hidden neurons this way (with
    sklearn's KMeans, which finds the same split up to local optima).
    """
    x = as_2d(x, "x").astype(np.float64)
    n, m = x.shape
    if n < 2:
        raise ValueError(f"a 2-means split needs at least 2 samples, got {n}")
    s = np.sort(x, axis=0)
    # centre per neuron for numerical stability (the split does not change)
    s = s - s.mean(axis=0, keepdims=True)
    cs = np.cumsum(s, axis=0)[:-1]  # S_k for k = 1..n-1
    tot = cs[-1] + s[-1]
    k = np.arange(1, n, dtype=np.float64)[:, None]
    gain = cs**2 / k + (tot - cs) ** 2 / (n - k)  # between-cluster term to maximise
    valid = s[1:] > s[:-1]  # split only between distinct values
    gain = np.where(valid, gain, -np.inf)
    best = np.argmax(gain, axis=0)  # split after index best
    cols = np.arange(m)
    kk = best + 1.0
    mu_lo = cs[best, cols] / kk
    mu_hi = (tot - cs[best, cols]) / (n - kk)
    mean = x.mean(axis=0)
    thr = (mu_lo + mu_hi) / 2 + mean
    lo_v = np.sort(x, axis=0)[best, cols]
    hi_v = np.sort(x, axis=0)[np.minimum(best + 1, n - 1), cols]
    # keep the threshold strictly between the two sides (rounding of the means)
    thr = np.clip(thr, lo_v, np.nextafter(hi_v, -np.inf))
    const = ~valid.any(axis=0)
    thr[const] = x[0, const]  # a constant neuron: its value (x > value is all 0), not inf
    return thr


@checked
def binary_thresholds(x, binning: str = "kmeans2", threshold=0.0) -> np.ndarray:
    """Per-neuron thresholds of a binary split, by ``binning``: ``"kmeans2"`` (exact 1-D 2-means, see
    :func:`kmeans2_thresholds`), ``"median"`` (each neuron's median), or
    ``"threshold"`` (the fixed ``threshold``, a number or one per neuron)."""
    x = as_2d(x, "x")
    if not isinstance(binning, str) or binning not in BINARY_METHODS:
        raise ValueError(f"binning must be one of {BINARY_METHODS}, got {binning!r}")
    if len(x) == 0:
        raise ValueError("cannot fit a binary split on zero samples")
    if binning == "kmeans2":
        return kmeans2_thresholds(x)
    if binning == "median":
        return np.median(x.astype(np.float64), axis=0)
    t = np.asarray(threshold, dtype=np.float64).reshape(-1)
    if not np.isfinite(t).all():
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    if t.size not in (1, x.shape[1]):
        raise ValueError(f"threshold must be one number or one per neuron ({x.shape[1]}), got {t.size} values")
    return np.broadcast_to(t, (x.shape[1],)).copy()


@checked
def binarize(x, binning: str = "kmeans2", threshold=0.0, *, thresholds=None) -> np.ndarray:
    """Binary codes ``(samples, neurons)`` (uint8, 1 where ``x > threshold``).

    ``binning`` as in :func:`binary_thresholds`; pass ``thresholds`` (fitted on other
    data, one per neuron) to apply an existing split instead of fitting one.
    """
    x = as_2d(x, "x")
    if thresholds is None:
        thresholds = binary_thresholds(x, binning, threshold)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thr.size != x.shape[1]:
        raise ValueError(f"thresholds has {thr.size} entries but x has {x.shape[1]} neurons")
    return (x > thr[None, :]).astype(np.uint8)
