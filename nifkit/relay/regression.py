r"""The knockout regression of Hintze & Adami: does relay information predict what a
knockout costs, beyond the size of the knocked-out set?

The knockouts themselves are scored by :meth:`nifkit.intervene.Knockouts.readout`
(per-class balanced accuracy of many sets, or of all ``2^m`` subsets of a layer);
:func:`knockout_regression` fits

.. math::  \tilde a_S = \beta_0 + \beta_{I}\,\tilde I_R(S) + \beta_k\,\tilde k_S + \varepsilon

by ordinary least squares over the sets ``S``, with ``~`` a min-max normalisation over
the sets (the size ``k`` too unless ``normalize_size=False``). A negative ``beta_I``:
sets that relay more information cost more accuracy when knocked out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ..results import Result

__all__ = ["OLSResult", "knockout_regression"]


# ----------------------------------------------------------------------------- regression
@dataclass(repr=False)
class OLSResult(Result):
    """Ordinary least squares ``y ~ 1 + X``: coefficients, standard errors, t values, R^2."""

    names: list
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    r2: float
    n: int

    def table(self) -> list:
        return [{"term": n, "coef": float(c), "se": float(s), "t": float(t)}
                for n, c, s, t in zip(self.names, self.coef, self.se, self.t)]

    def __getitem__(self, name: str) -> float:
        return float(self.coef[self.names.index(name)])


def _minmax(v):
    v = np.asarray(v, dtype=np.float64)
    lo, hi = v.min(), v.max()
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def knockout_regression(accuracy, relay, size, *, normalize_size: bool = True) -> OLSResult:
    """OLS of min-max-normalised knockout accuracy on min-max-normalised ``I_R`` and the
    set size (normalised too unless ``normalize_size=False``), with an intercept, over
    any number of knocked-out sets (the paper: all 2^20)."""
    a = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    r = np.asarray(relay, dtype=np.float64).reshape(-1)
    k = np.asarray(size, dtype=np.float64).reshape(-1)
    if not (len(a) == len(r) == len(k)):
        raise ValueError(f"accuracy ({len(a)}), relay ({len(r)}) and size ({len(k)}) must have one entry per set")
    if len(a) < 4:
        raise ValueError(f"the regression needs at least 4 sets, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(r).all() and np.isfinite(k).all()):
        raise ValueError("accuracy, relay and size must be finite")
    yv = _minmax(a)
    X = np.column_stack([np.ones_like(r), _minmax(r), _minmax(k) if normalize_size else k])
    coef, *_ = np.linalg.lstsq(X, yv, rcond=None)
    resid = yv - X @ coef
    n, p = X.shape
    sigma2 = resid @ resid / max(n - p, 1)
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    se = np.sqrt(np.maximum(np.diag(cov), 0))
    ss_tot = ((yv - yv.mean()) ** 2).sum()
    r2 = 1 - (resid @ resid) / ss_tot if ss_tot > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, coef / se, np.nan)
    return OLSResult(names=["intercept", "I_R", "size"], coef=coef, se=se, t=t, r2=float(r2), n=n,
                     settings={"normalize_size": normalize_size})
