"""The chapter's exercise checker (the one contract: print a hint, return a bool).
"""
from __future__ import annotations

import numpy as np

from .._validation import to_numpy
from .graph import FlowGraph, attribution

__all__ = ["check_flow_attribution", "flow_attribution_verdict"]


def check_flow_attribution(fg: FlowGraph, scores) -> bool:
    """Checker for the chapter's exercise: compute the ``"flow"`` attribution of ``fg``
    yourself from ``fg.flows`` and pass your scores. Prints what is right or wrong (e.g.
    about the normalisation direction) and returns True when correct; never raises
    (the one checker contract of :mod:`nifkit.exercises`)."""
    msg = flow_attribution_verdict(fg, scores)
    print(msg)
    return msg.startswith("✓")


def flow_attribution_verdict(fg: FlowGraph, scores) -> str:
    """The message :func:`check_flow_attribution` prints."""
    ref = attribution(fg, "flow").scores
    try:
        s = np.asarray(to_numpy(scores, "scores"), dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        return f"✗ scores must be an array of numbers: {exc}"
    if s.shape != ref.shape:
        return (f"✗ expected one score per input neuron ({ref.shape[0]} values), got {s.shape[0]}. "
                "Sum your (inputs x outputs) matrix over the outputs (axis=1).")
    if not np.all(np.isfinite(s)):
        return "✗ your scores contain NaN or inf: did you divide by a zero column sum? Leave empty columns at 0."
    if s.sum() > 0 and not np.isclose(s.sum(), 1.0, atol=1e-6):
        if np.allclose(s / s.sum(), ref, atol=1e-6):
            return "almost: the shape is right but normalise the scores to sum to 1 (s / s.sum())."
    if np.allclose(s, ref, atol=1e-6):
        return "✓ correct: your scores equal attribution(fg, 'flow')."
    def _product(axis):
        r = None
        for f, m in zip(fg.flows, fg.edge_masks):
            f = np.where(m, f, 0.0)
            t = f.sum(axis=axis, keepdims=True)
            nrm = np.divide(f, t, out=np.zeros_like(f), where=t > 0)
            r = nrm if r is None else r @ nrm
        v = r.sum(1)
        return v / v.sum() if v.sum() > 0 else v

    if (s.sum() > 0 and np.allclose(s, s[0], rtol=1e-6)) or np.allclose(s, _product(1), atol=1e-6):
        return ("✗ you normalised each neuron's *outgoing* flows (rows of the (source, target) matrices): "
                "every input then sends out exactly 1 and the scores say nothing about the outputs (all equal, "
                "or equal up to dead units). Normalise each neuron's *incoming* flows instead: "
                "f / f.sum(axis=0, keepdims=True).")
    raw = fg.flows[0]
    for f in fg.flows[1:]:
        raw = raw @ f
    raw = raw.sum(1)
    raw_scores = raw / raw.sum() if raw.sum() > 0 else raw
    if np.allclose(s, raw_scores, atol=1e-6):
        return ("✗ you multiplied the raw flow matrices: wide layers then dominate. Normalise each neuron's "
                "incoming flows to sum to 1 before multiplying.")
    rho = np.corrcoef(s, ref)[0, 1] if np.std(s) > 0 else float("nan")
    return (f"✗ not equal to the reference (correlation {rho:.2f}). Check: normalise over sources (axis 0) per "
            "layer, multiply the matrices input-first (N0 @ N1 @ ...), sum over outputs, normalise to sum 1.")
