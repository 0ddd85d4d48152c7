"""The result of :func:`nifkit.conductance.layer_conductance`: per-layer maps, the
completeness gap, and reductions of large maps."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import torch
from ..results import Result

__all__ = ["Conductance"]


@dataclass(repr=False)
class Conductance(Result):
    """Conductance of every unit of every chosen layer.

    ``maps[name]``: ``(samples, *layer_shape)`` tensor (CPU); ``activations[name]``:
    the layer's output at the inputs themselves; ``f_input``, ``f_baseline``: ``F(x)`` and
    ``F(x')`` of the target per sample; ``target``: the output index per sample;
    ``gap``: ``(samples, layers)`` completeness gap ``sum_units Cond - (F(x) - F(x'))``.
    """

    names: list
    maps: dict
    activations: dict
    f_input: np.ndarray
    f_baseline: np.ndarray
    target: np.ndarray
    predicted: np.ndarray

    plotter = "nifkit.conductance.plots:plot_layer_gaps"

    def repr_extra(self) -> dict:
        return {"max_abs_gap": float(np.abs(self.gap).max())}

    def __getitem__(self, key) -> torch.Tensor:
        return self.maps[self._name(key)]

    def _name(self, key):
        if isinstance(key, (int, np.integer)):
            return self.names[key]
        if key not in self.maps:
            close = difflib.get_close_matches(str(key), self.names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"no conductance for layer {key!r}.{hint} Layers: {', '.join(self.names)}")
        return key

    @property
    def n_samples(self) -> int:
        return len(self.target)

    @property
    def delta_f(self) -> np.ndarray:
        """``F(x) - F(x')`` per sample: what every layer's total should equal."""
        return self.f_input - self.f_baseline

    def total(self, key) -> np.ndarray:
        """Sum of the layer's conductance over all its units, per sample."""
        m = self[key]
        return m.reshape(len(m), -1).double().sum(1).numpy()

    @property
    def gap(self) -> np.ndarray:
        """Completeness gap ``(samples, layers)``: ``sum_units Cond - (F(x) - F(x'))``."""
        return np.stack([self.total(n) - self.delta_f for n in self.names], axis=1)

    def relative_gap(self) -> np.ndarray:
        """``|gap| / |F(x) - F(x')|`` per layer, median over samples."""
        return np.median(np.abs(self.gap) / np.maximum(np.abs(self.delta_f), 1e-12)[:, None], axis=0)

    def flat(self, key, reduce: str = "channel", k: int = 16, which: str = "conductance") -> np.ndarray:
        """A layer's map as ``(samples, units)``, reduced for large maps:

        * ``"unit"`` - every unit (channel x position) is a column;
        * ``"channel"`` - summed over the spatial axes, one column per channel (a sum, not
          a mean, so the columns still add up to the layer total);
        * ``"topk"`` - the ``k`` units with the largest mean ``|conductance|`` over samples
          (the same units for activations).

        ``which="activation"`` reduces the activations the same way (channel: mean).
        """
        name = self._name(key)
        m = (self.maps if which == "conductance" else self.activations)[name]
        if which not in ("conductance", "activation"):
            raise ValueError(f"which must be 'conductance' or 'activation', got {which!r}")
        m = m.float()
        if reduce == "unit":
            return m.reshape(len(m), -1).numpy()
        if reduce == "channel":
            if m.ndim <= 2:
                return m.reshape(len(m), -1).numpy()
            r = m.reshape(m.shape[0], m.shape[1], -1)
            return (r.sum(2) if which == "conductance" else r.mean(2)).numpy()
        if reduce == "topk":
            u = m.reshape(len(m), -1)
            if not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"k must be a positive integer, got {k!r}")
            idx = torch.argsort(self[name].reshape(len(m), -1).abs().mean(0), descending=True)[: int(k)]
            return u[:, idx].numpy()
        raise ValueError(f"reduce must be 'unit', 'channel' or 'topk', got {reduce!r}")

    def spatial(self, key) -> np.ndarray:
        """Conductance summed over channels: ``(samples, H, W)`` for conv layers."""
        m = self[key]
        if m.ndim != 4:
            raise ValueError(f"layer {self._name(key)!r} has shape {tuple(m.shape[1:])}, not (C, H, W)")
        return m.sum(1).numpy()

    def table(self) -> list[dict]:
        """One row per layer: units, total (mean over samples), completeness gap."""
        g = self.gap
        return [{"layer": n, "units": int(np.prod(self.maps[n].shape[1:])),
                 "mean_total": float(self.total(n).mean()), "mean_delta_f": float(self.delta_f.mean()),
                 "mean_abs_gap": float(np.abs(g[:, i]).mean())} for i, n in enumerate(self.names)]
