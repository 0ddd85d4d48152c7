"""Explorer of chapter 2: conductance of every layer, laid over the input, the
information plane with the chosen layer highlighted, ITE per layer, and a completeness
readout."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from ..data.arrays import as_xy
from ..widgets.base import STYLE, Explorer, layer_picker
from .attribution import BASELINES, Conductance, blocks, layer_conductance
from .plane import information_plane, ite
from .plots import plot_information_plane, plot_ite, plot_overlay
from ..results import Result
from .._validation import checked

__all__ = ["ConductanceExplorer", "ConductanceView"]

@dataclass(repr=False)
class ConductanceView(Result):
    """What the explorer shows for the current controls."""

    layer: str
    sample: int
    conductance: Conductance
    planes: list
    ites: list
    mean_total: float
    mean_delta_f: float
    mean_abs_gap: float
    relative_gap: float


class ConductanceExplorer(Explorer):
    """Pick a layer, the target, the number of steps, the baseline, the alpha rule and the
    sample shown.

    Parameters
    ----------
    model : a classifier
    data : labelled inputs ``(N, C, H, W)`` (or flat), as ``(X, y)`` or a Dataset (its test
        part); conductance is computed for all of them at once (keep ``N`` modest: a few hundred small inputs or a few photos)
    images : what to draw under the conductance map, ``(N, H, W)`` or ``(N, H, W, 3)``
        (default: ``X[:, 0]`` for images)
    layers : default :func:`~nifkit.conductance.blocks`
    class_names : optional names for the readout and the target picker (predicted class,
        true class, or one fixed class when the model has at most 20 outputs)
    n_bins, estimator, reduce : the information plane's settings

    Results are cached per (steps, baseline, method, target): moving the layer or sample
    control only redraws. ``.result`` is a :class:`ConductanceView`.
    """

    @checked
    def __init__(self, model: nn.Module, data, *, images=None, layers=None, class_names=None, steps: int = 16,
                 max_steps: int = 64, n_bins: int = 4, estimator: str = "binned", reduce: str = "channel",
                 memory_budget=None, num_threads=None):
        self.model = model
        self.X, self.y = as_xy(data, "test")
        if images is None:
            images = self.X[:, 0].numpy() if self.X.ndim == 4 else None
        self.images = None if images is None else np.asarray(images)
        self.layers = blocks(model) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
        self.class_names = class_names
        self.n_bins, self.estimator, self.reduce = int(n_bins), estimator, reduce
        self.memory_budget, self.num_threads = memory_budget, num_threads
        self._cache: dict = {}
        self.n_computed = 0
        controls = {
            "layer": layer_picker(self.layers, value=self.layers[len(self.layers) // 2]),
            "target": W.Dropdown(options=self._target_options(), value="predicted", description="target",
                                 style=STYLE),
            "baseline": W.Dropdown(options=list(BASELINES), value="zeros", description="baseline", style=STYLE),
            "steps": W.IntSlider(value=int(steps), min=1, max=int(max_steps), description="steps",
                                 continuous_update=False, style=STYLE),
            "method": W.Dropdown(options=[("trapezoid", "riemann_trapezoid"), ("Gauss-Legendre", "gausslegendre")],
                                 value="riemann_trapezoid", description="alphas", style=STYLE),
            "sample": W.IntSlider(value=0, min=0, max=len(self.X) - 1, description="sample",
                                  continuous_update=False, style=STYLE),
        }
        super().__init__(controls, title="Conductance, the information plane and ITE", figsize=(13, 3.8), ncols=3)

    def _target_options(self):
        """Predicted class, true class, and (up to 20 classes) each class by name."""
        opts = [("predicted class", "predicted"), ("true class", "true")]
        with torch.no_grad():
            n_out = int(self.model(self.X[:1]).shape[1])
        if n_out <= 20:
            names = self.class_names if self.class_names is not None else [str(i) for i in range(n_out)]
            opts += [(f"class {names[i]}", i) for i in range(n_out)]
        return opts

    @checked
    def conductance(self, steps, baseline, method, target):
        """The cached result for these settings (computed on first use)."""
        key = (int(steps), baseline, method, target)
        if key not in self._cache:
            with self.progress.task(1, f"conductance: {steps} steps, {baseline} baseline"):
                c = layer_conductance(self.model, self.X, self.layers, baselines=baseline, target=target,
                                      labels=self.y, steps=int(steps), method=method,
                                      num_threads=self.num_threads,
                                      **({} if self.memory_budget is None else {"memory_budget": self.memory_budget}))
                planes = [information_plane(c, self.y, which=w, estimator=self.estimator, n_bins=self.n_bins,
                                            reduce=self.reduce, inputs=self.X)
                          for w in ("conductance", "activation")]
                ites = [ite(planes[0], "ratio"), ite(planes[1], "ratio")]
            self._cache[key] = (c, planes, ites)
            self.n_computed += 1
        return self._cache[key]

    def compute(self) -> ConductanceView:
        layer = self.value("layer")
        c, planes, ites = self.conductance(self.value("steps"), self.value("baseline"), self.value("method"),
                                           self.value("target"))
        i = c.names.index(layer)
        gap = c.gap[:, i]
        df = c.delta_f
        rel = float(np.median(np.abs(gap) / np.maximum(np.abs(df), 1e-12)))
        return ConductanceView(layer=layer, sample=int(self.value("sample")), conductance=c, planes=planes, ites=ites,
                               mean_total=float(c.total(layer).mean()), mean_delta_f=float(df.mean()),
                               mean_abs_gap=float(np.abs(gap).mean()), relative_gap=rel)

    def render(self, r: ConductanceView) -> None:
        c, layer = r.conductance, r.layer
        pc, pa = r.planes
        s = c.settings
        self.readout.set(
            f"{layer}, {s['steps']} steps ({s['method']}), baseline {s['baselines']}, target {s['target']}: "
            f"sum of conductance {r.mean_total:+.4f} vs F(x)-F(x') {r.mean_delta_f:+.4f} (means over {c.n_samples}); "
            f"completeness gap {r.mean_abs_gap:.4f} (median {r.relative_gap:.1%}) | "
            f"conductance plane ({pc[layer][0]:.2f}, {pc[layer][1]:.2f}) bits, activations "
            f"({pa[layer][0]:.2f}, {pa[layer][1]:.2f}); ITE ratio {r.ites[0].values[c.names.index(layer)]:.3f}")
        k = r.sample
        m = c[layer][k]
        label = int(c.target[k])
        name = self.class_names[label] if self.class_names is not None else str(label)

        def draw(axes):
            if m.ndim == 3 and self.images is not None:
                plot_overlay(self.images[k], m.sum(0).numpy(), ax=axes[0],
                             title=f"sample {k}, target {name}: {layer}")
            else:
                v = m.reshape(-1).numpy()
                axes[0].bar(np.arange(len(v)), v, color=np.where(v >= 0, "tab:red", "tab:blue"))
                axes[0].set_xlabel(f"unit of {layer}")
                axes[0].set_ylabel("conductance (logit)")
                axes[0].set_title(f"sample {k}, target {name}", fontsize=9)
            plot_information_plane([pc, pa], ax=axes[1], highlight=layer, annotate=len(c.names) <= 8)
            plot_ite(r.ites, ax=axes[2], highlight=layer)

        self.plot.draw(draw)
