"""Knock out whole layers (or a random share of their channels), one layer at a time.

For each named layer, its output is replaced by its mean over the set (per unit,
``"mean"``), by zeros (``"zero"``) or by the layer's input (``"bypass"``: a residual
block is skipped; where input and output shapes differ the mean is used, with a note),
and the accuracy and the mean true-class logit of the model are measured against the
intact model. ``fraction < 1`` replaces only that share of the channels (axis 1), drawn
at random, averaged over ``n_repeats`` seeded draws. Chapter 2's knockout check
(``nifkit.conductance.knockout``) runs on this.

Same guarantees as the rest of :mod:`nifkit.intervene`: eval mode under ``no_grad``,
every hook removed and every mode and flag restored, also on exceptions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import to_tensor
from ..models.walk import unknown_layer_error
from ..runtime import ModelState, cpu_threads
from ..results import Result

__all__ = ["LAYER_MODES", "LayerKnockouts", "knock_out_layers"]

LAYER_MODES = ("mean", "zero", "bypass")


@dataclass(repr=False)
class LayerKnockouts(Result):
    """Accuracy and mean target logit with each layer knocked out (``mode``), against the
    intact model: ``drop[l] = base_accuracy - accuracy[l]``."""

    names: list
    accuracy: np.ndarray
    logit: np.ndarray
    base_accuracy: float
    base_logit: float
    mode: str

    @property
    def drop(self) -> np.ndarray:
        return self.base_accuracy - self.accuracy

    @property
    def logit_drop(self) -> np.ndarray:
        return self.base_logit - self.logit

    def repr_extra(self) -> dict:
        return {"drop": self.drop}

    def table(self) -> list[dict]:
        return [{"layer": n, "accuracy": float(a), "accuracy_drop": float(d), "logit_drop": float(g)}
                for n, a, d, g in zip(self.names, self.accuracy, self.drop, self.logit_drop)]

    def rank(self, name: str) -> int:
        """1 = the largest accuracy drop (ties broken by the logit drop)."""
        key = np.lexsort((-self.logit_drop, -self.drop))
        return int(np.flatnonzero(np.array(self.names)[key] == name)[0]) + 1


def knock_out_layers(model: nn.Module, X, y, layers, *, mode: str = "mean", fraction: float = 1.0,
                     n_repeats: int = 1, seed: int = 0, batch_size: int = 256, num_threads=None) -> LayerKnockouts:
    """Knock each of ``layers`` (module names) out in turn; see the module docstring.
    ``num_threads``: the project's thread policy (None = 1 thread on the CPU)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, (int, np.integer)) or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    rng = np.random.default_rng(seed)
    if mode not in LAYER_MODES:
        raise ValueError(f"mode must be one of {LAYER_MODES}, got {mode!r}")
    mods = dict(model.named_modules())
    names = [layers] if isinstance(layers, str) else list(layers)
    for n in names:
        if n not in mods or n == "":
            raise unknown_layer_error(n, [k for k in mods if k])
    X = to_tensor(X, "X").float()
    y = to_tensor(y, "y").reshape(-1).long()
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must hold the same positive number of samples, got {len(X)} and {len(y)}")
    dev = next(model.parameters()).device
    notes: list = []
    noted: set = set()

    def run():
        correct, logit = 0, 0.0
        for s in range(0, len(X), batch_size):
            out = model(X[s:s + batch_size].to(dev)).float().cpu()
            yb = y[s:s + batch_size]
            correct += int((out.argmax(1) == yb).sum())
            logit += float(out[torch.arange(len(yb)), yb].sum())
        return correct / len(X), logit / len(X)

    with cpu_threads(num_threads, dev), ModelState(model, eval=True, no_grad=True):
        sums = {n: None for n in names}

        def acc_hook(name):
            def h(mod, a, o):
                s = o.detach().double().sum(0)
                sums[name] = s if sums[name] is None else sums[name] + s
            return h

        handles = [mods[n].register_forward_hook(acc_hook(n)) for n in names]
        try:
            base_acc, base_logit = run()
        finally:
            for h in handles:
                h.remove()
        means = {n: (sums[n] / len(X)).float() for n in names}
        accs, logits = [], []
        for n in names:  # a loop over layers, then over seeded draws
            n_ch = means[n].shape[0] if means[n].ndim else 1
            reps = 1 if fraction >= 1 else int(n_repeats)
            a_sum = lg_sum = 0.0
            for _ in range(reps):
                mask = None
                if fraction < 1:
                    pick = rng.permutation(n_ch)[: max(1, int(round(fraction * n_ch)))]
                    mask = torch.zeros(n_ch, dtype=torch.bool)
                    mask[torch.as_tensor(pick)] = True

                def replace(mod, args, out, n=n, mask=mask):
                    if mode == "zero":
                        new = torch.zeros_like(out)
                    elif mode == "bypass" and isinstance(args[0], torch.Tensor) and args[0].shape == out.shape:
                        new = args[0]
                    else:
                        if mode == "bypass" and n not in noted:
                            noted.add(n)
                            notes.append(f"{n}: input and output shapes differ, mean used instead of bypass")
                        new = means[n].to(out.device, out.dtype).expand_as(out)
                    if mask is None:
                        return new
                    m = mask.to(out.device).view(1, -1, *([1] * (out.ndim - 2)))
                    return torch.where(m, new, out)

                h = mods[n].register_forward_hook(replace)
                try:
                    a, lg = run()
                finally:
                    h.remove()
                a_sum += a
                lg_sum += lg
            accs.append(a_sum / reps)
            logits.append(lg_sum / reps)
    return LayerKnockouts(names=names, accuracy=np.array(accs), logit=np.array(logits), base_accuracy=base_acc,
                          base_logit=base_logit, mode=mode, notes=notes,
                          settings={"fraction": fraction, "n_repeats": n_repeats, "seed": seed})
