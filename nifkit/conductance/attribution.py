"""Layer conductance of every unit of every chosen layer, from one interpolation batch.

For an input ``x``, a baseline ``x'`` and the straight path ``x(a) = x' + a (x - x')``,
the conductance of a hidden unit ``y`` for the output ``F`` (Dhamdhere, Yan & Sundararajan
2018; the efficient layer form of Shrikumar et al. 2018) is

    Cond_y(x) = integral_0^1  dF/dy(x(a)) * dy(x(a))/da  da,

and, summed over all units of a layer that every path from input to output crosses,
it equals ``F(x) - F(x')`` (completeness). Like Captum's ``LayerConductance`` it is
approximated on ``steps + 1`` points ``a_0 < ... < a_steps`` of an alpha rule as

    Cond_y(x) ~= sum_{k=0}^{steps-1}  dF/dy(x(a_k)) * (y(x(a_{k+1})) - y(x(a_k)))

(gradient at the left point of each step). With ``"riemann_trapezoid"`` alphas
(``a_0 = 0``, ``a_steps = 1``) the sum of a layer telescopes toward ``F(x) - F(x')``
as ``steps`` grows; Gauss–Legendre alphas (Captum's default) lie strictly inside
``(0, 1)``, so the first and last pieces of the path are never seen and the gap
cannot close.

What :func:`layer_conductance` adds to the per-layer recipe: every chosen layer at once.
The path is recorded by :mod:`nifkit.record.path` in chunks that share their end points
(chunk ``[a_i .. a_j]``, next chunk ``[a_j .. ]``); each chunk is one forward pass with
hooks on all layers and **one** backward pass (``torch.autograd.grad`` with respect to
every layer's output together), so ``L`` layers cost one interpolation batch, not ``L``.
This module sums each chunk's pieces as they come into the preallocated maps (float32, the
same additions in the same order as a list of per-batch sums would make) and keeps nothing
else: the memory beyond the result is one chunk's.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import check_int
from ..config import PATH_MEMORY_BUDGET
from ..models.units import reduce_channels
from ..models.walk import blocks  # the default layers: the one walker's blocks
from ..record.path import (BASELINES, METHODS, OUTPUTS, PathSetup, end_points, make_baseline, path_alphas,
                           path_chunks, path_gradients, path_targets, plan_path_chunks, probe_path)
from ..runtime import ModelState, Progress, cpu_threads, release_freed_memory
from .result import Conductance
from .._validation import checked

__all__ = ["METHODS", "BASELINES", "OUTPUTS", "path_alphas", "blocks", "make_baseline", "layer_conductance",
           "Conductance", "path_gradients"]


@checked
def layer_conductance(model: nn.Module, inputs, layers=None, *, baselines="zeros", target="predicted",
                      labels=None, steps: int = 32, method: str = "riemann_trapezoid", output="logits",
                      chunk_steps: int | None = None, batch_size: int | None = None,
                      memory_budget: int = PATH_MEMORY_BUDGET, device=None, num_threads: int | None = None,
                      seed: int = 0, blur_sigma: float = 4.0, per_channel: bool = False,
                      progress=False) -> Conductance:
    """Conductance of every unit of every layer in ``layers`` (default :func:`blocks`).

    ``target``: ``"predicted"`` (argmax of ``F(x)``), ``"true"`` (``labels``), an index,
    or one index per input; attributed to ``output`` = ``"logits"`` (default; a softmax
    saturates, so the path near the input adds almost nothing and the total is capped at
    1), ``"softmax"``, ``"log_softmax"`` or a callable on the model output. ``baselines``: see :func:`make_baseline`. ``steps``,
    ``method``: the alpha rule (:func:`path_alphas`; ``"gausslegendre"`` is Captum's
    default, ``"riemann_trapezoid"`` ours because its gap closes).

    The ``steps + 1`` points are processed in chunks of ``chunk_steps + 1`` points that
    share end points, ``batch_size`` inputs at a time; by default both are sized from
    ``memory_budget`` bytes (default :data:`nifkit.config.PATH_MEMORY_BUDGET`, 64 MiB): a probe pass measures
    what one input at one point costs (leaf outputs plus the tensors autograd saves,
    :func:`nifkit.record.probe_path`), and a chunk holds as many input-points as fit
    (a ``RuntimeWarning`` when even one input at two points does not). One forward and
    one backward pass per chunk serve all layers.

    ``per_channel=True`` keeps, for a conv layer, only each channel's conductance summed
    over positions ``(samples, channels)`` (a sum, so completeness still holds) and its
    activation's mean over positions (:func:`nifkit.models.reduce_channels`, ``"mean"``),
    summed chunk by chunk: the result no longer holds the full maps (ResNet-18's 20 unit
    layers on 2,000 3x32x32 inputs: ~400 MB of maps and as much of activations).

    The model runs in eval mode on ``device`` with frozen parameters; its modes,
    ``requires_grad`` flags and device are restored and all hooks removed afterwards,
    also on errors. ``num_threads``: torch CPU threads for the run (None = 1 on the CPU,
    the project's policy for a shared machine; restored after).
    """
    p = PathSetup(model, inputs, layers, baselines=baselines, steps=steps, method=method, output=output, seed=seed,
                  blur_sigma=blur_sigma, device=device, memory_budget=memory_budget, default_budget=PATH_MEMORY_BUDGET)
    alphas, x, base, names, budget, dev = p.alphas, p.x, p.base, p.names, p.budget, p.device
    chunk_steps = check_int(chunk_steps, "chunk_steps", minimum=1, allow_none=True)
    batch_size = check_int(batch_size, "batch_size", minimum=1, allow_none=True)
    n = len(x)
    with cpu_threads(num_threads, dev), ModelState(model, eval=True, freeze=True, device=dev):
        probe = probe_path(model, x[:1].to(dev), names, output)
        # end points: F(x), F(x'), activations at x (no grad), written into preallocated outputs
        bs_eval = max(1, budget // (2 * max(probe.leaf_bytes, 1)))
        fx, fb, acts = end_points(model, x, base, names, output, bs_eval, dev,
                                  reduce=reduce_channels if per_channel else None)
        fx, fb = fx.float(), fb.float()
        t = path_targets(target, labels, fx, n, fx.shape[1])
        tt = torch.as_tensor(t)
        f_in = fx[torch.arange(n), tt].double().numpy()
        f_base = fb[torch.arange(n), tt].double().numpy()
        batch_size, pts = plan_path_chunks(n, len(alphas), probe.bytes_per_point, budget,
                                           batch_size=batch_size, chunk_steps=chunk_steps)
        n_chunks = -(-n // batch_size) * len(range(0, len(alphas) - 1, pts - 1))
        maps = {nm: torch.zeros_like(acts[nm]) for nm in names}  # the result, summed into chunk by chunk
        with Progress(progress, n_chunks, "conductance", unit="chunk") as bar:
            for s0, ys, gs in path_chunks(model, x, base, tt, names, alphas, batch_size=batch_size, points=pts,
                                          output=output, device=dev):
                for nm in names:  # gradient at the left point of each step times the step of y
                    piece = (gs[nm][:-1] * (ys[nm][1:] - ys[nm][:-1])).sum(0)
                    if per_channel and piece.ndim > 2:
                        piece = piece.flatten(2).sum(2)
                    maps[nm][s0:s0 + piece.shape[0]] += piece.cpu()
                    del piece
                del ys, gs
                bar.update()
        activations = acts
    release_freed_memory()
    settings = {"steps": int(steps), "method": method, "baselines": baselines if isinstance(baselines, str)
                else "given", "target": (target if isinstance(target, str) else int(target)
                           if isinstance(target, (int, np.integer)) else "given"), "output":
                output if isinstance(output, str) else "callable", "chunk_steps": int(pts - 1),
                "batch_size": int(batch_size), "layers": list(names), "bytes_per_point": probe.bytes_per_point,
                "memory_budget": int(budget), "per_channel": bool(per_channel)}
    notes = []
    if method == "gausslegendre":
        notes.append("Gauss-Legendre alphas lie strictly inside (0, 1): the completeness gap does not close")
    return Conductance(names=list(names), maps=maps, activations=activations, f_input=f_in, f_baseline=f_base,
                       target=t, predicted=fx.argmax(1).numpy(), settings=settings, notes=notes)


