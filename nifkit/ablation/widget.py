"""Explorer of the ordered-ablation chapter: pick a layer, a measure and an order, slide
the number of ablated neurons, watch test accuracy, the per-class accuracy and (for the
first layer of image inputs) the incoming weights of the ablated neurons."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np
from torch import nn

from ..data.arrays import as_xy
from ..models import walk
from ..widgets.base import STYLE, Explorer, layer_picker
from .curves import DIRECTIONS, AblationCurve, AblationEngine, ablation_order
from .measures import MEASURE_LABELS, MEASURES, NeuronMeasures, hidden_layers, layer_activations, neuron_measures
from .plots import (
    plot_ablation_curves,
    plot_class_accuracy,
    plot_weight_images,
)
from ..results import Result
from .._validation import checked

__all__ = ["AblationExplorer", "AblationView"]

@dataclass(repr=False)
class AblationView(Result):
    """What the explorer shows: the curve of (layer, measure, order) at ``n_ablated``.
    The numbers are read from ``curve`` at that point (one source, nothing copied)."""

    layer: str
    measure: str
    order: str
    n_ablated: int
    n_units: int
    curve: AblationCurve
    random_curves: list

    @property
    def _step(self) -> int:
        return self.curve.step_of(self.n_ablated)

    @property
    def accuracy(self) -> float:
        return float(self.curve.accuracy[self._step])

    @property
    def base_accuracy(self) -> float:
        return float(self.curve.accuracy[0])

    @property
    def loss(self) -> float:
        return float(self.curve.loss[self._step])

    @property
    def class_accuracy(self) -> np.ndarray:
        return self.curve.class_accuracy[self._step].copy()

    @property
    def ablated_units(self) -> np.ndarray:
        return self.curve.order[:self.n_ablated].copy()


class AblationExplorer(Explorer):
    """Cumulative ablation, live.

    Parameters
    ----------
    model : a trained ``nn.Sequential`` classifier (e.g. :func:`nifkit.models.mlp`)
    data : the labelled evaluation set (``(X, y)``, or a Dataset: its test part)
    measures : :class:`nifkit.ablation.NeuronMeasures`, or None to compute them from
        ``measure_data=(X_train, y_train)`` (default: ``(X, y)``) with ``n_bins`` bins
    layers : layer names (default: the measures' layers, or :func:`~nifkit.ablation.hidden_layers`)
    image_shape : ``(H, W)`` when inputs are images: the incoming weights of ablated
        neurons of the first layer are then drawn as pictures
    value : ``"zero"`` or ``"mean"``; ``n_random``: random orders per layer (band)

    Controls: ``layer``, ``measure``, ``order`` (ascending, descending, random) and the
    slider ``ablated``. Curves are computed once per (layer, measure, order) and cached, so
    moving the slider only redraws. ``.result`` is an :class:`AblationView`.
    """

    @checked
    def __init__(self, model: nn.Module, data, measures: NeuronMeasures | None = None, layers=None, *,
                 measure_data=None, n_bins: int = 8, image_shape=None, class_names=None, value: str = "zero",
                 n_random: int = 5, seed: int = 0, engine: AblationEngine | None = None):
        self.model = model
        X, y = as_xy(data, "test")
        self.engine = engine or AblationEngine(model, (X, y))
        if layers is None:
            layers = measures.names if measures is not None else hidden_layers(model)
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        if measures is None:
            Xm, ym = measure_data if measure_data is not None else (X, y)
            measures = neuron_measures(layer_activations(model, Xm, self.layers), ym, n_bins=n_bins)
        for n in self.layers:
            self.engine.index(n)
            if n not in measures.layers:
                raise ValueError(f"no measures for layer {n!r}; measures have {measures.names}")
        self.measures = measures
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.class_names = class_names
        self.ablation_value = value
        self.n_random = int(n_random)
        self.seed = int(seed)
        self._cache: dict = {}
        self.n_computed = 0
        self._syncing = False
        m0 = self.engine.n_units(self.layers[0])
        controls = {
            "layer": layer_picker(self.layers),
            "measure": W.Dropdown(options=[(MEASURE_LABELS[m], m) for m in MEASURES], value="mi",
                                  description="measure", style=STYLE),
            "order": W.Dropdown(options=list(DIRECTIONS), value="descending", description="order", style=STYLE),
            "ablated": W.IntSlider(value=min(m0 // 4, m0), min=0, max=m0, description="ablated",
                                   continuous_update=False, style=STYLE),
        }
        super().__init__(controls, title="Information-ordered cumulative ablation", figsize=(12.5, 3.6), ncols=3)

    # -- curves, cached ------------------------------------------------------------------
    def _random(self, layer):
        key = (layer, None, "random")
        if key not in self._cache:
            m = self.engine.n_units(layer)
            n = max(self.n_random, 1)
            curves = []
            with self.progress.task(n, f"{layer}: {n} random orders") as step:
                for r in range(n):
                    order = ablation_order(np.zeros(m), "random", self.seed + r)
                    curves.append(self.engine.curve(layer, order, value=self.ablation_value, direction="random",
                                                    seed=self.seed + r))
                    step()
            self._cache[key] = curves
            self.n_computed += n
        return self._cache[key]

    @checked
    def curve(self, layer: str, measure: str, order: str) -> AblationCurve:
        """The cached curve (computed on first use)."""
        if order == "random":
            return self._random(layer)[0]
        key = (layer, measure, order)
        if key not in self._cache:
            vals = self.measures.get(layer, measure)
            with self.progress.task(1, f"{layer}: {order} {MEASURE_LABELS[measure]}"):
                self._cache[key] = self.engine.curve(layer, ablation_order(vals, order),
                                                     value=self.ablation_value, measure=measure, direction=order)
            self.n_computed += 1
        return self._cache[key]

    # -- controls ------------------------------------------------------------------------
    def _on_change(self, change) -> None:
        if self._syncing:
            return
        if change is not None and change.get("owner") is self.controls["layer"]:
            m = self.engine.n_units(self.controls["layer"].value)
            s = self.controls["ablated"]
            self._syncing = True
            try:
                s.value = min(s.value, m)
                s.max = m
            finally:
                self._syncing = False
        self.update()

    def compute(self) -> AblationView:
        layer, measure, order = self.value("layer"), self.value("measure"), self.value("order")
        m = self.engine.n_units(layer)
        k = int(min(self.value("ablated"), m))
        c = self.curve(layer, measure, order)
        return AblationView(layer=layer, measure=measure, order=order, n_ablated=k, n_units=m, curve=c,
                            random_curves=self._random(layer))

    def _first_layer_weights(self, layer):
        """Incoming weights (units, inputs) when ``layer`` sits right after the model's first
        Linear and the inputs are images, else None."""
        if self.image_shape is None:
            return None
        first = walk(self.model).layers[0]
        if layer not in (first.name, first.units, first.activation_name, *first.between) \
                or not isinstance(first.module, nn.Linear):
            return None
        w = first.module.weight.detach().cpu().numpy()
        return w if w.shape[1] == int(np.prod(self.image_shape)) else None

    def render(self, r: AblationView) -> None:
        if r.order == "random":
            how = f"random order, seed {r.curve.seed}"
        else:
            how = f"{r.order} {MEASURE_LABELS[r.measure]}"
        self.readout.set(f"ablated {r.n_ablated} of {r.n_units} neurons of {r.layer} ({how}): "
                         f"accuracy {r.accuracy:.3f} (none ablated: {r.base_accuracy:.3f}), loss {r.loss:.3f}")
        shown = list(r.random_curves)
        if r.order != "random":
            other = "ascending" if r.order == "descending" else "descending"
            shown += [self.curve(r.layer, r.measure, r.order), self.curve(r.layer, r.measure, other)]
        weights = self._first_layer_weights(r.layer)

        def draw(axes):
            plot_ablation_curves(shown, ax=axes[0], marker_at=r.n_ablated, marker_curve=r.curve)
            plot_class_accuracy(r.curve, r.n_ablated, class_names=self.class_names, ax=axes[1])
            if weights is not None:
                last = r.ablated_units[::-1][:16]  # the most recently ablated first
                plot_weight_images(weights[last], self.image_shape, ax=axes[2],
                                   title=f"incoming weights of the last {len(last)} ablated")
            else:
                vals = self.measures.get(r.layer, r.measure)
                order = ablation_order(vals, "descending")
                colors = np.where(np.isin(order, r.ablated_units), "tab:red", "0.7")
                axes[2].bar(np.arange(len(order)), vals[order], color=colors, width=1.0)
                axes[2].set_xlabel("neurons, by decreasing " + MEASURE_LABELS[r.measure])
                axes[2].set_ylabel("bits")
                axes[2].set_title("ablated neurons in red", fontsize=9)

        self.plot.draw(draw)
