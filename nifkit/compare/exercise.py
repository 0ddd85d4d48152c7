"""The capstone's exercise checker: a sixth lens, scored with the same harness."""
from __future__ import annotations

import numpy as np

__all__ = ["check_lens"]


def check_lens(fn, model, data, truth=None, *, name: str = "my_lens") -> bool:
    """``fn(model, data) -> scores`` (one number per hidden neuron, in the order of
    :func:`nifkit.compare.hidden_neurons`; ``data`` is the ``(X, y)`` pair). Runs it
    through :func:`nifkit.compare.compare` as a lens, and with ``truth`` (a
    :class:`~nifkit.compare.KnockoutTruth` of the same network) scores it against the
    knockouts. Prints what is wrong and where to look (never the answer's code); returns True when the
    lens is valid (right shape, finite, not constant, the same on a second call); never
    raises."""
    from .harness import compare
    from ..models.units import hidden_neurons

    try:
        neurons = hidden_neurons(model)
    except Exception as exc:  # report, don't crash the notebook
        print(f"✗ the model cannot be compared: {exc}")
        return False
    if not callable(fn):
        print(f"✗ a lens is a function (model, data) -> scores; got {type(fn).__name__}")
        return False
    try:
        comp = compare(model, data, [fn])
    except Exception as exc:
        msg = str(exc)
        print(f"✗ the harness rejected your lens: {type(exc).__name__}: {msg}")
        if "shape" in msg:
            print(f"  hint: the network has {len(neurons)} hidden neurons ({neurons[0]} ... {neurons[-1]}), one "
                  "score each. Look at the shape of the weight matrix you reduce (torch stores a layer's "
                  "weight as (outputs, inputs)) and ask which axis indexes the hidden neurons: the sum must "
                  "run over the other one")
        return False
    s = comp.score(comp.names[0])
    ok = True
    if np.ptp(s) == 0:
        print("✗ every neuron gets the same score, so the lens ranks nothing: make it depend on the neuron")
        ok = False
    else:
        print(f"✓ one finite score for each of the {len(neurons)} hidden neurons "
              f"(range {s.min():.3g} .. {s.max():.3g}), computed in {comp.seconds[comp.names[0]]:.2f} s")
    try:
        again = compare(model, data, [fn]).score(comp.names[0])
        if not np.allclose(again, s, equal_nan=True):
            print("✗ a second call gives other scores: look for a random step in your lens that is not seeded")
            ok = False
    except Exception as exc:
        print(f"✗ a second call failed: {type(exc).__name__}: {exc}")
        ok = False
    if ok and truth is not None:
        try:
            from .truth import score_lenses

            row = score_lenses(comp, truth)[comp.names[0]]
            print(f"✓ scored against the knockouts: Spearman rho {row['spearman']:+.3f}, precision of the top-"
                  f"{truth.k} {row['precision']:.2f}, top-{truth.k} knocked out together: accuracy drop "
                  f"{row['topk_drop']:.3f}")
        except Exception as exc:
            print(f"✗ could not score it against the truth: {type(exc).__name__}: {exc}")
            ok = False
    print("✓ your lens works in the harness" if ok else "Fix the point above and run the checker again.")
    return ok
