"""Teaching helpers and the chapter's exercise checker (the one contract: print a hint,
return a bool).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..info import LN2
from .measure import layer_ei
from .._validation import checked

__all__ = ["identity_ei", "check_edge_sensitivity"]


@checked
def identity_ei(n: int, n_bins: int) -> float:
    """EI (= EI_parts = sensitivity) of an identity layer ``n -> n`` whose input and
    output bins coincide: ``n log2(n_bins)`` bits. Degeneracy and phi are 0."""
    return n * math.log2(n_bins)


def check_edge_sensitivity(fn: Callable) -> bool:
    """Checker for the chapter's exercise.

    ``fn(w, b, bins=8, n=200_000, seed=0) -> bits``: the sensitivity of one sigmoid
    edge ``y = sigmoid(w x + b)``, ``x ~ U(0, 1)``, both binned into ``bins`` equal bins
    over (0, 1), plug-in MI. Compared with :func:`layer_ei` on a 1 -> 1 layer; says what
    looks wrong and where to look (never the answer's code).
    """
    cases = [("a zero weight", 0.0, 0.0), ("a weak edge", 1.0, 0.0), ("a steep edge", 12.0, -6.0),
             ("a steep negative edge", -12.0, 6.0), ("a shifted edge", 6.0, -1.0)]
    ok = True
    for label, w, b in cases:
        kw = dict(bias=np.array([b]), measures="sensitivity", n_sensitivity_samples=400_000, seed=12345)
        ref = layer_ei(np.array([[w]]), "sigmoid", **kw).sensitivity
        try:
            got = float(fn(w, b, bins=8, n=200_000, seed=0))
        except Exception as exc:  # report, don't crash the notebook
            print(f"✗ {label} (w={w}, b={b}): your function raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        tol = 0.02 + 0.02 * ref
        if abs(got - ref) <= tol:
            continue
        ok = False
        fitted = layer_ei(np.array([[w]]), "sigmoid", out_range="fit", **kw).sensitivity if w else 0.0
        if math.isnan(got):
            hint = "got NaN: look at the empty cells of the table (0 log 0 counts as 0)"
        elif ref > 0.05 and abs(got - ref * LN2) <= tol:
            hint = "that is the value in nats, not bits: look at the base of your logarithm"
        elif got < -1e-9:
            hint = "MI is never negative: check the ratio p(x,y) / (p(x) p(y))"
        elif w and abs(got - fitted) <= 0.05 + 0.02 * fitted:
            hint = (f"about {got:.2f} bits is what bins stretched over y's own min..max give (expected about "
                    f"{ref:.3f} bits). The paper's bins are the same 8 equal bins over (0, 1) for every neuron: "
                    "look at where your histogram takes its bin edges from")
        elif w < 0 and abs(got) < 0.02 < ref:
            hint = "a negative weight is just as informative: did you bin w*x instead of sigmoid(w*x + b)?"
        elif got > 3.0 + 1e-9:
            hint = ("more than log2(8) = 3 bits is impossible with 8 bins: look at where a value of exactly 1.0 "
                    "lands (a 9th bin?)")
        else:
            hint = (f"expected about {ref:.3f} bits, got {got:.3f}. Check: bins over (0, 1) for both x and y, the "
                    "bias inside the sigmoid, and that x is uniform on (0, 1)")
        print(f"✗ {label} (w={w}, b={b}): {hint}")
    print("✓ all edge-sensitivity cases pass" if ok else "Fix the cases above and run the checker again.")
    return ok
