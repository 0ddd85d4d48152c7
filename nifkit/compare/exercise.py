"""The exercise checkers of the capstone (a sixth lens, scored with the same harness) and of
chapter 7 (every position of a channel map as a sample)."""
from __future__ import annotations

import numpy as np

__all__ = ["check_lens", "check_channel_positions"]


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


def _position_map(n: int, c: int, h: int, w: int):
    """A map whose every value says where it sits: ``1000 n + 100 c + p`` (``p`` the
    row-major position), so a wrong row can be decoded."""
    import torch

    idx = torch.arange(n)[:, None, None] * 1000 + torch.arange(c)[None, :, None] * 100 + torch.arange(h * w)
    return idx.reshape(n, c, h, w).to(torch.float32)


def _positions_diagnosis(got: np.ndarray, n: int, c: int, p: int) -> str | None:
    """What is wrong with ``got`` as the ``(n*p, c)`` sample-major position rows of
    :func:`_position_map` (None when it is right)."""
    if got.shape != (n * p, c):
        if got.shape == (c, n * p):
            return f"shape {got.shape}: the channels must be the columns (one column per channel, {c} here)"
        if got.shape == (n, c):
            return (f"shape {got.shape}: that is one row per sample, a reduction over positions; here every "
                    f"position of every sample is a row of its own ({n} samples x {p} positions = {n * p} rows)")
        return f"shape {got.shape}: expected ({n * p}, {c}) = (samples x positions, channels)"
    sample, chan, pos = got // 1000, (got % 1000) // 100, got % 100
    if not (chan == np.arange(c)[None]).all():
        return ("a row holds values of several channels (or a column of several): before the map is flattened "
                "into rows, the channel axis must be the last one, so that each row is one position's channel "
                "values. Look at which axes a reshape keeps together")
    if not ((sample == sample[:, :1]).all() and (pos == pos[:, :1]).all()):
        return "the channels of a row come from different samples or positions: one row is one (sample, position)"
    s, q = sample[:, 0], pos[:, 0]
    if not (s == np.repeat(np.arange(n), p)).all():
        if (s == np.tile(np.arange(n), p)).all():
            return ("the rows are position-major (position 0 of every sample, then position 1, ...): sample n's "
                    "positions must be the consecutive rows n*P .. n*P+P-1, or y.repeat_interleave(P) labels "
                    "them wrongly")
        return "the rows are not grouped by sample: sample n's positions must be the rows n*P .. n*P+P-1"
    if not (q == np.tile(np.arange(p), n)).all():
        return ("the rows of each sample are its positions in another order (rows and columns of the map "
                "swapped?): keep the map's own row-major order of positions")
    return None


def check_channel_positions(fn) -> bool:
    """``fn(t) -> (N*P, C)``: a conv map ``t`` ``(N, C, H, W)`` with every position as a
    sample of its own, sample-major (what ``channel_reduce="positions"`` gives). Runs it
    on maps whose values encode their sample, channel and position, and prints what is
    wrong and where to look (never the answer's code); returns True when every case is
    right; never raises."""
    import torch

    ok = True
    for n, c, h, w in [(3, 4, 2, 5), (2, 5, 3, 3), (5, 2, 4, 1)]:  # N, C and H, W all differ
        t = _position_map(n, c, h, w)
        try:
            got = fn(t.clone())
            got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
        except Exception as exc:  # report, don't crash the notebook
            print(f"✗ a map of shape {(n, c, h, w)}: your function raised {type(exc).__name__}: {exc}")
            ok = False
            break
        why = _positions_diagnosis(np.rint(got).astype(np.int64) if got.dtype.kind == "f" else got, n, c, h * w)
        if why is not None:
            print(f"✗ a map of shape (N, C, H, W) = {(n, c, h, w)}: {why}")
            ok = False
            break
    print("✓ every position of every sample is one row, sample-major, one column per channel" if ok
          else "Fix the point above and run the checker again.")
    return ok
