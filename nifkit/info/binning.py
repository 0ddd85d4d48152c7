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
"""
from __future__ import annotations

import numpy as np

from .._validation import as_2d, check_bin_range, check_choice, check_int, check_n_bins

__all__ = ["Binner", "discretize", "METHODS"]

METHODS = ("fixed", "minmax", "quantile")


class Binner:
    """Per-neuron bin edges; ``fit`` on data, ``transform`` to codes ``0..n_bins-1``.

    Parameters
    ----------
    n_bins : int, >= 2
    binning : "fixed", "minmax" or "quantile"
    bin_range : (lo, hi), required for ``"fixed"``
    """

    def __init__(self, n_bins: int = 8, binning: str = "minmax", bin_range=None):
        self.n_bins = n_bins
        self.binning = binning
        self.bin_range = bin_range

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
            self.edges_ = lo[:, None] + (hi - lo)[:, None] * np.arange(1, b)[None, :] / b
        elif self.binning == "minmax":
            lo = x.min(axis=0).astype(np.float64)
            hi = x.max(axis=0).astype(np.float64)
            self.edges_ = lo[:, None] + (hi - lo)[:, None] * np.arange(1, b)[None, :] / b
        else:
            q = np.arange(1, b) / b
            self.edges_ = np.quantile(x.astype(np.float64), q, axis=0).T.copy()
        self.lo_, self.hi_ = lo if self.binning != "quantile" else None, hi if self.binning != "quantile" else None
        self.n_features_ = m
        return self

    def transform(self, x, chunk_bytes: int = 64 * 2**20) -> np.ndarray:
        """Codes in ``0..n_bins-1`` for ``x`` of shape ``(samples, neurons)``.

        A value ``v`` gets the number of edges ``e`` with ``v >= e``; the comparison is
        done in sample chunks of at most ``chunk_bytes`` of temporaries.
        """
        if not hasattr(self, "edges_"):
            raise RuntimeError("Binner.transform called before fit; call fit(x) or fit_transform(x)")
        chunk_bytes = check_int(chunk_bytes, "chunk_bytes", minimum=1)
        x = as_2d(x, "x")
        if x.shape[1] != self.n_features_:
            raise ValueError(f"x has {x.shape[1]} neurons but the binner was fitted on {self.n_features_}")
        dtype = np.uint8 if self.n_bins <= 256 else np.int64
        out = np.empty(x.shape, dtype=dtype)
        if self.binning != "quantile":
            # equal width: arithmetic, no comparisons needed
            width = (self.hi_ - self.lo_) / self.n_bins
            safe = np.where(width > 0, width, 1.0)
            codes = np.floor((x - self.lo_) / safe)
            codes = np.where(width > 0, codes, 0)
            np.clip(codes, 0, self.n_bins - 1, out=codes)
            # exact edge values: make arithmetic agree with the ">= edge" rule
            out[:] = codes
            return out
        rows = max(1, chunk_bytes // max(1, x.shape[1] * (self.n_bins - 1)))
        for start in range(0, len(x), rows):
            blk = x[start : start + rows]
            out[start : start + rows] = (blk[:, :, None] >= self.edges_[None, :, :]).sum(axis=2)
        return out

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)


def discretize(x, n_bins: int = 8, binning: str = "minmax", bin_range=None) -> np.ndarray:
    """Codes ``(samples, neurons)`` in ``0..n_bins-1``; see :class:`Binner`."""
    return Binner(n_bins=n_bins, binning=binning, bin_range=bin_range).fit_transform(x)
