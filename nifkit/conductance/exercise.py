"""The chapter's exercise checker: conductance from the path's outputs and gradients.

Contract (as every nifkit checker): print what is right or wrong and how to fix it,
return a bool, never raise.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_conductance", "reference_conductance"]


def reference_conductance(ys, gs) -> np.ndarray:
    """``sum_k gs[k] * (ys[k+1] - ys[k])`` over the path axis 0: ``(samples, units)``."""
    ys, gs = np.asarray(ys, dtype=np.float64), np.asarray(gs, dtype=np.float64)
    return (gs[:-1] * (ys[1:] - ys[:-1])).sum(0)


def _cases():
    from ..models import mlp
    from .attribution import path_gradients

    g = torch.Generator().manual_seed(0)
    net = mlp([6, 5, 4, 3], activation="relu", seed=0)
    x = torch.rand(7, 6, generator=g)
    ys, gs, _ = path_gradients(net, x, ["act1", "act2"], steps=6, target=1)
    cases = [(f"a small ReLU MLP, layer {n}, 7 inputs, 6 steps", ys[n].numpy(), gs[n].numpy()) for n in ys]
    a = np.linspace(0, 1, 5)[:, None, None]
    v = np.array([[1.0, -2.0, 0.5]])
    cases.append(("a linear path y(a) = a v with constant gradient 2", a * v[None], np.full((5, 1, 3), 2.0)))
    return cases


def check_conductance(fn) -> bool:
    """``fn(ys, gs) -> (samples, units)`` where ``ys[k]``, ``gs[k]`` are a layer's outputs
    and gradients ``dF/dy`` at path point ``k`` (shape ``(points, samples, units)``)."""
    try:
        cases = _cases()
    except Exception as exc:  # pragma: no cover - the checker never raises
        print(f"✗ could not build the test cases ({type(exc).__name__}: {exc})")
        return False
    ok = True
    for name, ys, gs in cases:
        want = reference_conductance(ys, gs)
        try:
            got = np.asarray(fn(ys.copy(), gs.copy()), dtype=np.float64)
        except Exception as exc:  # report, don't crash the notebook
            print(f"✗ {name}: your function raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        if got.shape != want.shape:
            hint = (" (the sum runs over the path points only; samples and units stay)" if got.size != want.size
                    else " (reshape to (samples, units))")
            print(f"✗ {name}: shape {got.shape}, expected {want.shape}{hint}")
            ok = False
            continue
        if np.allclose(got, want, atol=1e-6, rtol=1e-6):
            continue
        ok = False
        right = (gs[1:] * (ys[1:] - ys[:-1])).sum(0)
        gxa = (gs * ys).sum(0)
        gxi = gs[-1] * (ys[-1] - ys[0])
        if np.allclose(got, right, atol=1e-6):
            print(f"✗ {name}: you used the gradient at the right end of each step; conductance (as Captum) "
                  "takes dF/dy at the left point of each step: look at which path points your gradients come from")
        elif np.allclose(got, gxa, atol=1e-6) or np.allclose(got, gs[-1] * ys[-1], atol=1e-6):
            print(f"✗ {name}: that is gradient x activation; conductance multiplies the gradient by how much the "
                  "unit changes along each step, not by its value")
        elif np.allclose(got, gxi, atol=1e-6):
            print(f"✗ {name}: gradient at the input times the total change is a one-step rule; "
                  "sum over every step of the path")
        elif np.allclose(got, -want, atol=1e-6):
            print(f"✗ {name}: wrong sign: look at the direction of your difference (the path runs from the "
                  "baseline to the input)")
        else:
            err = float(np.abs(got - want).max())
            print(f"✗ {name}: largest error {err:.3g}; compare each factor of your sum with the formula in the text "
                  "(which gradient, which change, which path points)")
    print("✓ conductance matches on every case" if ok else "Fix the cases above and run the checker again.")
    return ok
