"""Explorer of the effective-information chapter: scrub through training and watch each
layer move through the causal plane."""
from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as W
from torch import nn

from ..widgets.base import Explorer, bins_slider, layer_picker, samples_slider
from .measure import LayerEI, ModelEI, plane_kind
from .model import CausalHistory, history_from_results, measured_layers, model_ei
from .plots import plot_causal_plane, plot_edge_ei

__all__ = ["CausalExplorer", "CausalView"]


@dataclass
class CausalView:
    """What :class:`CausalExplorer` shows: the selected layer at the selected epoch, and
    every layer's path at the current bins and samples."""

    epoch: int
    layer: str
    layer_ei: LayerEI
    history: CausalHistory
    which: str
    bins: int
    samples: int

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
    :func:`~nifkit.ei.model_ei` (``sensitivity_samples``, ranges, ``seed``...).
    """

    def __init__(self, source, *, history: CausalHistory | None = None, bins: int | None = None,
                 samples: int | None = None, sensitivity_samples: int = 2000, which: str = "auto",
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
        bins = int(bins if bins is not None else settings.get("bins", 8))
        samples = int(samples if samples is not None else settings.get("samples", 20_000))
        self.sensitivity_samples = int(settings.get("sensitivity_samples", sensitivity_samples))
        self.which = which
        self.measure_kw = {k: v for k, v in measure_kw.items() if k not in ("bins", "samples")}
        self._cache: dict = {}
        if history is not None:
            self._seed_cache(history, bins, samples)
        self._models: dict = {}
        controls = {
            "epoch": W.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                       continuous_update=False, style={"description_width": "initial"}),
            "layer": layer_picker(self.layer_names),
            "bins": bins_slider(bins, 2, 16),
            "samples": samples_slider(samples, 1000, max(max_samples, samples)),
        }
        super().__init__(controls, title="Layers in the causal plane", figsize=(11, 4.2), ncols=2)

    # -- caching -----------------------------------------------------------------------
    def _seed_cache(self, history, bins, samples):
        if int(history.settings.get("bins", 8)) != bins or int(history.settings.get("samples", -1)) != samples:
            return
        for e, res in zip(history.epochs, history.results):
            for name in res.names:
                self._cache[(int(e), name, bins, samples)] = res[name]

    def _model_at(self, epoch):
        if self.train_result is None:
            return self.model
        if epoch not in self._models:
            self._models = {epoch: self.train_result.model_at(epoch)}  # keep one copy
        return self._models[epoch]

    def _measure(self, epoch, bins, samples):
        res = model_ei(self._model_at(epoch), bins=bins, samples=samples,
                       sensitivity_samples=max(self.sensitivity_samples, bins * bins), **self.measure_kw)
        for name in res.names:
            self._cache[(epoch, name, bins, samples)] = res[name]

    def _missing(self, bins, samples):
        return [e for e in self.controls["epoch"].options
                if any((e, n, bins, samples) not in self._cache for n in self.layer_names)]

    def _fill(self, missing, bins, samples):
        """Measure the epochs ``missing`` behind the progress bar (loop over epochs)."""
        with self.progress.task(len(missing), f"measuring {len(missing)} more epochs at {bins} bins") as step:
            for e in missing:
                self._measure(e, bins, samples)
                step()

    def history_at(self, bins: int, samples: int, fill: bool = True) -> CausalHistory:
        """Every epoch's measurements at ``bins`` and ``samples`` (computing the missing
        ones behind the progress bar; ``fill=False``: only the epochs measured so far)."""
        if fill:
            missing = self._missing(bins, samples)
            if missing:
                self._fill(missing, bins, samples)
        epochs = [e for e in self.controls["epoch"].options
                  if all((e, n, bins, samples) in self._cache for n in self.layer_names)]
        results = [ModelEI({n: self._cache[(e, n, bins, samples)] for n in self.layer_names}) for e in epochs]
        hist = self.train_result.history if self.train_result is not None else {}
        return history_from_results(epochs, results, hist, dict(bins=bins, samples=samples))

    # -- Explorer ----------------------------------------------------------------------
    def compute(self) -> CausalView:
        """The shown epoch first: measured now if it is new (the readout says so
        meanwhile); the plane's paths hold the epochs measured so far at these settings."""
        epoch, layer = int(self.value("epoch")), self.value("layer")
        bins, samples = int(self.value("bins")), int(self.value("samples"))
        if any((epoch, n, bins, samples) not in self._cache for n in self.layer_names):
            self.readout.set(f"⟳ recomputing epoch {epoch} at {bins} bins, {samples} samples ...")
            self._measure(epoch, bins, samples)
        hist = self.history_at(bins, samples, fill=False)
        lay = self._cache[(epoch, layer, bins, samples)]
        which = plane_kind(self.which, [x for r in hist.results for x in r])
        return CausalView(epoch, layer, lay, hist, which, bins, samples)

    def update(self) -> None:
        """Show the selected epoch at once, then measure the other epochs at the new
        settings behind the progress bar (the readout marks the plane as being filled
        in) and redraw with every layer's full path."""
        super().update()
        if self.error is not None:
            return
        bins, samples = int(self.value("bins")), int(self.value("samples"))
        missing = self._missing(bins, samples)
        if not missing:
            return
        shown = self.readout.text
        self.readout.set(f"{shown} · ⟳ recomputing {len(missing)} other epochs for the causal plane ...")
        self._fill(missing, bins, samples)
        super().update()

    def render(self, v: CausalView) -> None:
        r = v.layer_ei

        def f(x):
            return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

        deg = r.degeneracy if v.which == "ei" else r.degeneracy_parts
        self.readout.set(
            f"epoch {v.epoch} · {v.layer}: EI {f(r.ei)} · EI_parts {f(r.ei_parts)} · sensitivity "
            f"{f(r.sensitivity)} · degeneracy {f(deg)}{'' if v.which == 'ei' else ' (from EI_parts)'} · "
            f"phi {f(r.phi)} bits ({v.bins} bins, {v.samples} samples)")

        def draw(axes):
            plot_causal_plane(v.history, ax=axes[0], which=v.which, epoch=v.epoch)
            plot_edge_ei(r, ax=axes[1])

        self.plot.draw(draw)
