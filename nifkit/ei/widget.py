"""Explorer of the effective-information chapter: scrub through training and watch each
layer move through the causal plane."""
from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as W
from torch import nn

from ..widgets.base import STYLE, Explorer, bins_slider, layer_picker, samples_slider
from .measure import LayerEI, ModelEI, plane_kind
from .model import CausalHistory, history_from_results, measured_layers, model_ei
from .plots import plot_causal_plane, plot_edge_ei
from ..results import Result
from .._validation import checked

__all__ = ["CausalExplorer", "CausalView"]


@dataclass(repr=False)
class CausalView(Result):
    """What :class:`CausalExplorer` shows: the selected layer at the selected epoch, and
    every layer's path at the current bins and samples."""

    epoch: int
    layer: str
    layer_ei: LayerEI
    history: CausalHistory
    which: str
    n_bins: int
    n_samples: int

    @property
    def plane_point(self):
        return self.layer_ei.plane_point(self.which)


class CausalExplorer(Explorer):
    """Epoch slider (``epoch``), layer picker, bins and samples controls; the causal
    plane with every layer's path through training (current epoch ringed) beside the
    selected layer's edge-EI heatmap, and a readout of its EI, EI_parts, sensitivity,
    degeneracy and phi.

    ``source``: a :class:`nifkit.models.TrainResult` (its snapshots are the epochs) or
    a model (one "epoch", 0). ``history``: an :func:`~nifkit.ei.ei_over_training`
    result to reuse (its measurements fill the cache for its bins and samples).
    Measurements are cached per ``(epoch, layer, bins, samples)``. A new ``bins`` or
    ``samples`` measures the shown epoch first and shows it (the readout says
    "recomputing" while it is stale), then fills in the other epochs behind the progress
    bar and redraws the plane with the full paths. Other keywords go to
    :func:`~nifkit.ei.model_ei` (``n_sensitivity_samples``, ranges, ``seed``...).
    """

    @checked
    def __init__(self, source, *, history: CausalHistory | None = None, n_bins: int | None = None,
                 n_samples: int | None = None, n_sensitivity_samples: int = 2000, which: str = "auto",
                 max_samples: int = 200_000, **measure_kw):
        if isinstance(source, nn.Module):
            self.model, self.train_result, epochs = source, None, [0]
        elif hasattr(source, "model_at") and hasattr(source, "epochs_snapshotted"):
            self.model, self.train_result = source.model, source
            epochs = list(source.epochs_snapshotted)
            if not epochs:
                raise ValueError("the training result has no snapshots; train with snapshot_every=k")
        else:
            raise TypeError(f"CausalExplorer needs a TrainResult or an nn.Module, got {type(source).__name__}")
        self.layer_names = list(measured_layers(self.model))
        settings = dict(history.settings) if history is not None else {}
        n_bins = int(n_bins if n_bins is not None else settings.get("n_bins", 8))
        n_samples = int(n_samples if n_samples is not None else settings.get("n_samples", 20_000))
        self.n_sensitivity_samples = int(settings.get("n_sensitivity_samples", n_sensitivity_samples))
        self.which = which
        self.measure_kw = {k: v for k, v in measure_kw.items() if k not in ("n_bins", "n_samples")}
        self._cache: dict = {}
        if history is not None:
            self._seed_cache(history, n_bins, n_samples)
        self._models: dict = {}
        controls = {
            "epoch": W.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                       continuous_update=False, style=STYLE),
            "layer": layer_picker(self.layer_names),
            "bins": bins_slider(n_bins, 2, 16),
            "samples": samples_slider(n_samples, 1000, max(max_samples, n_samples)),
        }
        super().__init__(controls, title="Layers in the causal plane", figsize=(11, 4.2), ncols=2)

    # -- caching -----------------------------------------------------------------------
    def _seed_cache(self, history, n_bins, n_samples):
        if int(history.settings.get("n_bins", 8)) != n_bins or int(history.settings.get("n_samples", -1)) != n_samples:
            return
        for e, res in zip(history.epochs, history.results):
            for name in res.names:
                self._cache[(int(e), name, n_bins, n_samples)] = res[name]

    def _model_at(self, epoch):
        if self.train_result is None:
            return self.model
        if epoch not in self._models:
            self._models = {epoch: self.train_result.model_at(epoch)}  # keep one copy
        return self._models[epoch]

    def _measure(self, epoch, n_bins, n_samples):
        res = model_ei(self._model_at(epoch), n_bins=n_bins, n_samples=n_samples,
                       n_sensitivity_samples=max(self.n_sensitivity_samples, n_bins * n_bins), **self.measure_kw)
        for name in res.names:
            self._cache[(epoch, name, n_bins, n_samples)] = res[name]

    def _missing(self, n_bins, n_samples):
        return [e for e in self.controls["epoch"].options
                if any((e, n, n_bins, n_samples) not in self._cache for n in self.layer_names)]

    def _fill(self, missing, n_bins, n_samples):
        """Measure the epochs ``missing`` behind the progress bar (loop over epochs)."""
        with self.progress.task(len(missing), f"measuring {len(missing)} more epochs at {n_bins} bins") as step:
            for e in missing:
                self._measure(e, n_bins, n_samples)
                step()

    @checked
    def history_at(self, n_bins: int, n_samples: int, fill: bool = True) -> CausalHistory:
        """Every epoch's measurements at ``bins`` and ``samples`` (computing the missing
        ones behind the progress bar; ``fill=False``: only the epochs measured so far)."""
        if fill:
            missing = self._missing(n_bins, n_samples)
            if missing:
                self._fill(missing, n_bins, n_samples)
        epochs = [e for e in self.controls["epoch"].options
                  if all((e, n, n_bins, n_samples) in self._cache for n in self.layer_names)]
        results = [ModelEI({n: self._cache[(e, n, n_bins, n_samples)] for n in self.layer_names}) for e in epochs]
        hist = self.train_result.history if self.train_result is not None else {}
        return history_from_results(epochs, results, hist, dict(n_bins=n_bins, n_samples=n_samples))

    # -- Explorer ----------------------------------------------------------------------
    def compute(self) -> CausalView:
        """The shown epoch first: measured now if it is new (the readout says so
        meanwhile); the plane's paths hold the epochs measured so far at these settings."""
        epoch, layer = int(self.value("epoch")), self.value("layer")
        n_bins, n_samples = int(self.value("bins")), int(self.value("samples"))
        if any((epoch, n, n_bins, n_samples) not in self._cache for n in self.layer_names):
            self.readout.set(f"⟳ recomputing epoch {epoch} at {n_bins} bins, {n_samples} samples ...")
            self._measure(epoch, n_bins, n_samples)
        hist = self.history_at(n_bins, n_samples, fill=False)
        lay = self._cache[(epoch, layer, n_bins, n_samples)]
        which = plane_kind(self.which, [x for r in hist.results for x in r])
        return CausalView(epoch, layer, lay, hist, which, n_bins, n_samples)

    def update(self) -> None:
        """Show the selected epoch at once, then measure the other epochs at the new
        settings behind the progress bar (the readout marks the plane as being filled
        in) and redraw with every layer's full path."""
        super().update()
        if self.error is not None:
            return
        n_bins, n_samples = int(self.value("bins")), int(self.value("samples"))
        missing = self._missing(n_bins, n_samples)
        if not missing:
            return
        shown = self.readout.text
        self.readout.set(f"{shown} · ⟳ recomputing {len(missing)} other epochs for the causal plane ...")
        self._fill(missing, n_bins, n_samples)
        super().update()

    def render(self, v: CausalView) -> None:
        r = v.layer_ei

        def f(x):
            return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

        deg = r.degeneracy if v.which == "ei" else r.degeneracy_parts
        self.readout.set(
            f"epoch {v.epoch} · {v.layer}: EI {f(r.ei)} · EI_parts {f(r.ei_parts)} · sensitivity "
            f"{f(r.sensitivity)} · degeneracy {f(deg)}{'' if v.which == 'ei' else ' (from EI_parts)'} · "
            f"phi {f(r.phi)} bits ({v.n_bins} bins, {v.n_samples} samples)")

        def draw(axes):
            plot_causal_plane(v.history, ax=axes[0], which=v.which, epoch=v.epoch)
            plot_edge_ei(r, ax=axes[1])

        self.plot.draw(draw)
