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
    about the normalisation direction: what is wrong and where to look, never the
    answer's code) and returns True when correct; never raises
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
                "Look at the last step: the product of the layer matrices is (inputs x outputs); the "
                "score of an input adds up what reaches every output.")
    if not np.all(np.isfinite(s)):
        return ("✗ your scores contain NaN or inf: look at the normalisation, where a neuron with no incoming "
                "flow gives 0 / 0; such a neuron should pass on nothing (0), not NaN.")
    if s.sum() > 0 and not np.isclose(s.sum(), 1.0, atol=1e-6):
        if np.allclose(s / s.sum(), ref, atol=1e-6):
            return ("almost: the ranking is right, but the scores are shares of the output's information: "
                    "look at the last step, where they should be made to add up to 1.")
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

    if not fg.is_chain:  # the diagnoses below are of the chain's matrix product
        rho = np.corrcoef(s, ref)[0, 1] if np.std(s) > 0 else float("nan")
        return f"✗ not equal to the reference attribution(fg, 'flow') (correlation {rho:.2f})."
    if (s.sum() > 0 and np.allclose(s, s[0], rtol=1e-6)) or np.allclose(s, _product(1), atol=1e-6):
        return ("✗ you normalised each neuron's *outgoing* flows (rows of the (source, target) matrices): "
                "every input then sends out exactly 1 and the scores say nothing about the outputs (all equal, "
                "or equal up to dead units). Look at the normalisation: which neuron's flows should add up "
                "to 1, the sender's or the receiver's?")
    raw = fg.flows[0]
    for f in fg.flows[1:]:
        raw = raw @ f
    raw = raw.sum(1)
    raw_scores = raw / raw.sum() if raw.sum() > 0 else raw
    if np.allclose(s, raw_scores, atol=1e-6):
        return ("✗ you multiplied the raw flow matrices: wide layers then dominate, because nothing makes "
                "each layer's step a share. Look at what happens to each matrix before the product.")
    rho = np.corrcoef(s, ref)[0, 1] if np.std(s) > 0 else float("nan")
    return (f"✗ not equal to the reference (correlation {rho:.2f}). Check each step against the text: "
            "which flows are normalised, the order of the product (input layer first), the sum over "
            "outputs and the final normalisation.")
