"""Knockouts of edges (weights of Linear layers): in place with restore
(:func:`knock_out_edges`) or many edge sets at once (:func:`evaluate_edge_knockouts`).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_number, to_numpy
from ..config import DEFAULT_MEMORY_BUDGET
from ..models.walk import unknown_layer_error
from ..runtime import ModelState, cpu_threads
from .units import KnockoutResult, Knockouts
from .._validation import checked

__all__ = ["knock_out_edges", "evaluate_edge_knockouts"]


def _as_mask(mask, name):
    """A boolean mask: booleans, or integers/floats that are all 0 or 1 (a 0.5 is no mask)."""
    arr = to_numpy(mask, name)
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf" or (arr.size and not np.isin(arr, (0, 1)).all()):
            raise ValueError(f"{name} must be a boolean mask (True = knocked out); got dtype {arr.dtype} with values "
                             "other than 0 and 1")
        arr = arr.astype(bool)
    return arr


def _knockout_value(value):
    """Edge knockouts set weights to one number (not 'mean' or per-unit values)."""
    if isinstance(value, (str, np.ndarray, torch.Tensor, list, tuple)) and not (
            isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0):
        raise TypeError(f"value must be one number for edge knockouts (the weight the edges are set to), "
                        f"got {value!r:.60}; 'mean' and per-unit values are for unit knockouts (nifkit.intervene."
                        "Knockouts)")
    return check_number(value, "value")


def _edge_masks_for(model, edges):
    modules = dict(model.named_modules())
    out = {}
    for name, mask in edges.items():
        lin = modules.get(name)
        if lin is None or name == "":
            raise unknown_layer_error(name, [n for n in modules if n], what="edges")
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"edge knockouts need an nn.Linear layer; {name!r} is a {type(lin).__name__}")
        mk = torch.as_tensor(_as_mask(mask, f"edges[{name!r}]"))
        if mk.shape[-2:] != lin.weight.T.shape:
            raise ValueError(f"the edge mask for {name!r} has shape {tuple(mk.shape)}, expected "
                             f"(..., {lin.in_features}, {lin.out_features}) (inputs, outputs)")
        out[name] = (lin, mk.to(lin.weight.device))
    return out


@checked
@contextlib.contextmanager
def knock_out_edges(model: nn.Module, edges: dict, value: float = 0.0):
    """Context manager: the weights ``edges[name][A, B] == True`` (masks ``(inputs,
    outputs)``, like ``LayerEI.edge_ei``) of each named ``nn.Linear`` are set to
    ``value`` in place; the model is in eval mode. Weights, modes and flags are restored
    on exit, also on exceptions."""
    masks, value = _edge_masks_for(model, edges), _knockout_value(value)
    with ModelState(model, eval=True, weights=True):
        with torch.no_grad():
            for lin, mk in masks.values():
                lin.weight[mk.T] = value
        yield model


@checked
def evaluate_edge_knockouts(model: nn.Module, data, edges: dict, *, value: float = 0.0, split: str = "test",
                            device=None,
                            memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None,
                            batch_size: int = 4096) -> KnockoutResult:
    """Accuracy, loss and per-class accuracy of ``S`` edge knockouts at once, on labelled
    ``data`` (``(X, y)``, a Dataset's ``split``, a DataLoader of ``(x, y)``).

    ``edges[name]``: bool ``(S, inputs, outputs)`` per ``nn.Linear`` layer; knockout ``s``
    sets the weights ``edges[name][s]`` of every named layer to ``value``. For an
    ``nn.Sequential`` the layers before the first edited one run once; the ``S``
    variants of each edited layer are one batched product ``x @ (W * keep_s)^T`` and the
    rest of the model runs on ``(samples * S)`` rows in memory-bounded chunks. Other
    models run once per knockout with the weights edited in place (restored after). The
    model is in eval mode under ``no_grad``; labels are checked."""
    masks, value = _edge_masks_for(model, edges), _knockout_value(value)
    S = {mk.shape[0] if mk.ndim == 3 else None for _, mk in masks.values()}
    if len(S) != 1 or None in S:
        raise ValueError("every edge mask must be (S, inputs, outputs) with the same number S of knockouts")
    S = S.pop()
    eng = Knockouts(model, data, split=split, device=device, memory_budget=memory_budget, num_threads=num_threads,
                    batch_size=batch_size)
    with cpu_threads(num_threads, eng.device):
        return _edge_knockouts(eng, model, masks, S, value, memory_budget)


def _edge_knockouts(eng, model, masks, S, value, memory_budget) -> KnockoutResult:
    flat = eng.flat
    correct = torch.zeros(S, eng.n_classes, dtype=torch.float64, device=eng.device)
    loss_sum = torch.zeros(S, dtype=torch.float64, device=eng.device)
    if flat is None:
        for s in range(S):  # generic models: one pass per knockout
            with knock_out_edges(model, {n: mk[s] for n, (_, mk) in masks.items()}, value):
                with torch.no_grad():
                    logits = eng.forward_all(eng.X)
            ok = (logits.argmax(1) == eng.y).to(eng.dtype)
            correct[s] = (ok @ eng.onehot).double()
            loss_sum[s] = F.cross_entropy(logits, eng.y, reduction="sum").double()
        return eng.results_from(correct, loss_sum)
    names = [n for n, _ in flat]
    first = min(names.index(n) for n in masks)
    h0 = eng.activations(names[first - 1]) if first > 0 else eng.X.to(eng.device, eng.dtype)
    h0 = h0.reshape(len(h0), -1)
    sb, nc = _edge_blocks(masks, S, h0.shape[1], flat, memory_budget)
    with ModelState(model, eval=True, no_grad=True):
        for s0 in range(0, S, sb):  # blocks of knockouts: their edited weights made once per block
            w = {n: torch.where(mk[s0:s0 + sb].transpose(1, 2), value, lin.weight).to(eng.dtype)
                 for n, (lin, mk) in masks.items()}
            k = next(iter(w.values())).shape[0]
            for ns in range(0, len(h0), nc):  # ... and chunks of samples
                n = min(nc, len(h0) - ns)
                h = h0[ns:ns + n].expand(k, n, h0.shape[1]).reshape(k * n, h0.shape[1])  # knockout-major rows
                for name, mod in flat[first:]:
                    if name in w:
                        z = torch.bmm(h.view(k, n, -1), w[name].transpose(1, 2))
                        h = (z if mod.bias is None else z.add_(mod.bias)).view(k * n, -1)
                    else:
                        h = mod(h)
                logits = h.view(k, n, -1)
                yb = eng.y[ns:ns + n]
                ok = (logits.argmax(-1) == yb).to(eng.dtype)
                correct[s0:s0 + k] += (ok @ eng.onehot[ns:ns + n]).double()
                loss_sum[s0:s0 + k] += F.cross_entropy(logits.reshape(k * n, -1), yb.repeat(k),
                                                       reduction="none").view(k, n).double().sum(1)
            del w
    return eng.results_from(correct, loss_sum)


def _edge_blocks(masks, S, in_width, flat, memory_budget):
    """``(knockouts per block, samples per chunk)``: half of ``memory_budget`` for the
    edited weights of a block of knockouts (one float copy of each masked layer per
    knockout), the other half for a chunk's activations (about four live tensors of the
    widest layer per row, a row being one sample under one knockout)."""
    per_knockout = sum(lin.weight.numel() * lin.weight.element_size() for lin, _ in masks.values())
    sb = int(max(1, min(S, memory_budget // 2 // max(1, per_knockout))))
    width = max([in_width] + [getattr(m, "out_features", 0) or 0 for _, m in flat])
    nc = int(max(1, memory_budget // 2 // max(1, sb * width * 4 * 4)))
    return sb, nc
