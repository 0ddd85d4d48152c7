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

from ..data.arrays import as_xy
from ..models.hooks import hooks
from ..models.walk import unknown_layer_error
from ..runtime import ModelState, cpu_threads
from ..results import Result
from .._validation import checked

__all__ = ["LAYER_MODES", "LayerKnockouts", "LayerKnockoutSettings", "knock_out_layers"]

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


@dataclass(frozen=True)
class LayerKnockoutSettings:
    """How :func:`knock_out_layers` knocks a layer out: ``mode``, the ``fraction`` of its
    channels, ``n_repeats`` seeded draws of them, ``batch_size`` rows per forward pass."""

    mode: str = "mean"
    fraction: float = 1.0
    n_repeats: int = 1
    seed: int = 0
    batch_size: int = 256

    def __post_init__(self):
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if isinstance(self.n_repeats, bool) or not isinstance(self.n_repeats, (int, np.integer)) \
                or self.n_repeats < 1:
            raise ValueError(f"n_repeats must be a positive integer, got {self.n_repeats!r}")
        if self.mode not in LAYER_MODES:
            raise ValueError(f"mode must be one of {LAYER_MODES}, got {self.mode!r}")

    @property
    def draws(self) -> int:
        """Forward passes per layer: one when the whole layer goes, else ``n_repeats``."""
        return 1 if self.fraction >= 1 else int(self.n_repeats)


@checked
def knock_out_layers(model: nn.Module, data, layers, *, mode: str = "mean", fraction: float = 1.0,
                     n_repeats: int = 1, seed: int = 0, batch_size: int = 256, split: str = "test",
                     num_threads=None) -> LayerKnockouts:
    """Knock each of ``layers`` (module names) out in turn on labelled ``data`` (``(X, y)``,
    a Dataset's ``split``, a DataLoader of ``(x, y)``); see the module docstring.
    ``num_threads``: the project's thread policy (None = 1 thread on the CPU)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    settings = LayerKnockoutSettings(mode, fraction, n_repeats, seed, batch_size)
    rng = np.random.default_rng(seed)
    names = _layer_names(model, layers)
    X, y = as_xy(data, split)
    dev = next(model.parameters()).device
    notes: list = []
    with cpu_threads(num_threads, dev), ModelState(model, eval=True, no_grad=True):
        score = _Scorer(model, X, y, settings.batch_size, dev)
        means, (base_acc, base_logit) = _layer_means(model, names, score)
        rows = [_knock_out_one(model, n, means[n], score, settings, rng, notes) for n in names]  # loop over layers
    return LayerKnockouts(names=names, accuracy=np.array([r[0] for r in rows]), logit=np.array([r[1] for r in rows]),
                          base_accuracy=base_acc, base_logit=base_logit, mode=mode, notes=notes,
                          settings={"fraction": fraction, "n_repeats": n_repeats, "seed": seed})


def _layer_names(model, layers) -> list:
    mods = dict(model.named_modules())
    names = [layers] if isinstance(layers, str) else list(layers)
    for n in names:
        if n not in mods or n == "":
            raise unknown_layer_error(n, [k for k in mods if k])
    return names


class _Scorer:
    """Accuracy and mean true-class logit of the model (as it is now) on ``(X, y)``."""

    def __init__(self, model, X, y, batch_size, device):
        self.model, self.X, self.y, self.batch_size, self.device = model, X, y, batch_size, device

    def __call__(self) -> tuple[float, float]:
        correct, logit = 0, 0.0
        for s in range(0, len(self.X), self.batch_size):
            out = self.model(self.X[s:s + self.batch_size].to(self.device)).float().cpu()
            yb = self.y[s:s + self.batch_size]
            correct += int((out.argmax(1) == yb).sum())
            logit += float(out[torch.arange(len(yb)), yb].sum())
        return correct / len(self.X), logit / len(self.X)


def _layer_means(model, names, score):
    """Each layer's mean output over the set (per unit) and the intact model's score,
    from one hooked pass."""
    sums = {n: None for n in names}

    def add_to(name):
        def hook(mod, args, out):
            s = out.detach().double().sum(0)
            sums[name] = s if sums[name] is None else sums[name] + s
        return hook

    with hooks(model, {n: add_to(n) for n in names}):
        base = score()
    return {n: (sums[n] / len(score.X)).float() for n in names}, base


def _knock_out_one(model, name, mean, score, settings, rng, notes) -> tuple[float, float]:
    """The score with layer ``name`` knocked out, averaged over the seeded draws of its
    channels (``settings.fraction < 1``)."""
    n_ch = mean.shape[0] if mean.ndim else 1
    a_sum = lg_sum = 0.0
    for _ in range(settings.draws):  # a loop over seeded draws
        mask = None
        if settings.fraction < 1:
            pick = rng.permutation(n_ch)[: max(1, int(round(settings.fraction * n_ch)))]
            mask = torch.zeros(n_ch, dtype=torch.bool)
            mask[torch.as_tensor(pick)] = True
        with hooks(model, {name: _replacement(name, mean, mask, settings.mode, notes)}):
            a, lg = score()
        a_sum += a
        lg_sum += lg
    return a_sum / settings.draws, lg_sum / settings.draws


def _replacement(name, mean, mask, mode, notes):
    """The forward hook that knocks layer ``name`` out (where ``mask`` is True, or all)."""
    def replace(mod, args, out):
        if mode == "zero":
            new = torch.zeros_like(out)
        elif mode == "bypass" and isinstance(args[0], torch.Tensor) and args[0].shape == out.shape:
            new = args[0]
        else:
            note = f"{name}: input and output shapes differ, mean used instead of bypass"
            if mode == "bypass" and note not in notes:
                notes.append(note)
            new = mean.to(out.device, out.dtype).expand_as(out)
        if mask is None:
            return new
        m = mask.to(out.device).view(1, -1, *([1] * (out.ndim - 2)))
        return torch.where(m, new, out)
    return replace
