"""The chapter's exercise checker (the one contract: print a hint, return a bool).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..info import LN2, kl_profile_from_counts

__all__ = ["check_kl_profile"]



def check_kl_profile(fn: Callable) -> bool:
    """Checker for the chapter's exercise: ``fn(counts)`` takes a joint histogram
    ``(bins, classes)`` of one neuron and must return the per-class profile
    ``KL(P_T|y || P_T)`` in bits, shape ``(classes,)``. Prints what is right or wrong
    and returns True when correct; never raises (the one checker contract)."""
    try:
        print("✓ " + _kl_profile_verdict(fn))
        return True
    except AssertionError as exc:
        print(f"✗ {exc}")
        return False


def _kl_profile_verdict(fn: Callable) -> str:
    cases = [
        np.array([[10, 0], [0, 10]]),               # copies a balanced binary label
        np.array([[5, 5], [5, 5]]),                 # independent of the label
        np.array([[25, 0, 0, 0], [0, 25, 25, 25]]), # fires for class 0 only
        np.array([[3, 1, 0], [1, 4, 2], [0, 2, 7]]),
    ]
    for c in cases:
        want = kl_profile_from_counts(c)
        try:
            got = np.asarray(fn(c.copy()), dtype=np.float64)
        except Exception as exc:
            raise AssertionError(f"your function raised {type(exc).__name__}: {exc} on counts\n{c}") from exc
        if got.shape != want.shape:
            raise AssertionError(f"expected one value per class, shape {want.shape}, got {got.shape}. "
                                 "Look at which axis of the (bins, classes) table your sums run over.")
        if np.allclose(got, want, atol=1e-9):
            continue
        if np.allclose(got, want * LN2, atol=1e-9):
            raise AssertionError("your values are in nats, not bits: look at the base of your logarithm")
        pt = c.sum(1) / c.sum()
        pty = c / c.sum(0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            rev = np.nansum(np.where(pt[:, None] > 0, pt[:, None] * np.log2(pt[:, None] / pty), 0), axis=0)
        if np.allclose(got, rev, atol=1e-9, equal_nan=True) or not np.all(np.isfinite(got)):
            raise AssertionError("this looks like KL(P_T || P_T|y), the divergence reversed (or it gives inf/nan): "
                                 "look at which distribution weights the sum and which one is in the numerator, "
                                 "and at the cells whose count is 0 (0 log 0 counts as 0)")
        prior = c.sum(0) / c.sum()
        if np.allclose(got, want * prior, atol=1e-9):
            raise AssertionError("you weighted each class by p(y): that gives the terms of I(T;Y); "
                                 "the profile itself is unweighted")
        raise AssertionError(f"wrong values for counts\n{c}\nexpected {np.round(want, 4)}, got {np.round(got, 4)}. "
                             "Check the two distributions you compare: p(t|y) within each class, and p(t) over all samples.")
    return "correct: the p(y)-weighted mean of your profile is I(T;Y), its maximum the selectivity"
