"""Checkers for the chapters' exercises: they run your function on cases with known
answers and say what is wrong, not just that something is.

Each checker prints a verdict and returns ``True`` when every case passes. The primer's
checkers live here; each says what is wrong and where to look, never the answer's code. Each chapter's own checker lives in its module and is re-exported
here (``check_flow_attribution``, ``check_edge_sensitivity``, ``check_kl_profile``,
``check_relay_information``, ``check_conductance``, ``check_lens``,
``check_channel_positions``).
"""
from __future__ import annotations

import math

import numpy as np

from .info import LN2

__all__ = ["check_entropy", "check_mutual_information", "check_flow_attribution", "check_edge_sensitivity",
           "check_kl_profile", "check_conductance", "check_relay_information", "check_lens",
           "check_channel_positions"]

_ENTROPY_CASES = [
    ("a fair coin", np.array([0.5, 0.5]), 1.0),
    ("a fair 8-sided die", np.full(8, 1 / 8), 3.0),
    ("a certain outcome", np.array([1.0]), 0.0),
    ("a distribution with an impossible outcome", np.array([0.5, 0.25, 0.25, 0.0]), 1.5),
    ("a biased coin", np.array([0.9, 0.1]), -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))),
]


def _diagnose(got, want):
    if got is None or (isinstance(got, float) and math.isnan(got)):
        return "got NaN/None: look at the zero probabilities (0 * log 0 counts as 0)"
    if want and abs(got - want * LN2) < 1e-6:
        return "that is the value in nats, not bits: look at the base of your logarithm"
    if abs(got + want) < 1e-6 and want:
        return "wrong sign: look at the sign in front of the sum"
    return f"expected {want:.6f} bits, got {got:.6f}"


def check_entropy(fn) -> bool:
    """``fn(p) -> bits`` for a probability vector ``p``."""
    ok = True
    for name, p, want in _ENTROPY_CASES:
        try:
            got = float(fn(p.copy()))
        except Exception as exc:  # report, don't crash the notebook
            print(f"✗ {name}: your function raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        if not abs(got - want) < 1e-6:
            print(f"✗ {name}: {_diagnose(got, want)}")
            ok = False
    print("✓ all entropy cases pass" if ok else "Fix the cases above and run the checker again.")
    return ok


def check_mutual_information(fn) -> bool:
    """``fn(joint) -> bits`` for a 2-D joint probability table ``joint[x, y]``."""
    indep = np.outer([0.3, 0.7], [0.2, 0.5, 0.3])
    cases = [
        ("two independent variables", indep, 0.0),
        ("a perfect copy of a fair coin", np.array([[0.5, 0.0], [0.0, 0.5]]), 1.0),
        ("a copy of a fair 4-sided die", np.eye(4) / 4, 2.0),
        ("a noisy copy of a fair coin", np.array([[0.4, 0.1], [0.1, 0.4]]),
         1 + 0.8 * math.log2(0.8) + 0.2 * math.log2(0.2)),
    ]
    ok = True
    for name, joint, want in cases:
        try:
            got = float(fn(joint.copy()))
        except Exception as exc:
            print(f"✗ {name}: your function raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        if not abs(got - want) < 1e-6:
            hint = _diagnose(got, want)
            if abs(got - (-want)) < 1e-6 or got < -1e-9:
                hint += " (MI is never negative: check the ratio p(x,y) / (p(x) p(y)))"
            print(f"✗ {name}: {hint}")
            ok = False
    print("✓ all mutual-information cases pass" if ok else "Fix the cases above and run the checker again.")
    return ok


def __getattr__(name):
    """The chapters' own checkers, importable from here too (loaded on first use, so
    ``import nifkit.exercises`` stays light)."""
    homes = {
        "check_flow_attribution": "nifkit.nif",
        "check_edge_sensitivity": "nifkit.ei",
        "check_kl_profile": "nifkit.ablation",
        "check_conductance": "nifkit.conductance",
        "check_relay_information": "nifkit.relay",
        "check_lens": "nifkit.compare",
        "check_channel_positions": "nifkit.compare",
    }
    if name in homes:
        import importlib

        return getattr(importlib.import_module(homes[name]), name)
    raise AttributeError(f"module 'nifkit.exercises' has no attribute {name!r}")
