"""Explorers of the primer chapter: the bias of binned MI, and the all-pairs MI map."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from .. import plots
from ..info import LN2, discretize, gaussian_mi_analytic, mutual_information, pairwise_mi, plugin_bias
from .._validation import as_2d, to_numpy
from .base import Explorer, bins_slider, layer_picker, neuron_picker, samples_slider
from ..results import Result

__all__ = ["BiasExplorer", "BiasResult", "MIMapExplorer", "MIMapResult", "binned_mi_curve", "small_sample_warning"]


@dataclass(repr=False)
class BiasResult(Result):
    rho: float
    n_bins: int
    n_samples: int
    estimate: float          # plug-in binned MI at the current setting (bits)
    estimate_mm: float       # Miller–Madow corrected
    truth: float             # analytic -1/2 log2(1 - rho^2)
    bias_term: float         # first-order prediction (B-1)^2 / (2 n ln 2)
    grid_n: np.ndarray       # sample sizes of the curve
    grid_estimate: np.ndarray
    ceiling: float = float("inf")  # log2(min(n, B)): the most MI n samples in B bins can show
    warning: str = ""        # why the first-order bias and Miller–Madow do not apply ("" if they do)


def small_sample_warning(n_bins: int, n_samples: int, estimate: float, estimate_mm: float, truth: float,
                         bias_term: float) -> str:
    """What goes wrong at this setting, from the numbers themselves ("" when nothing does).

    Both the first-order bias (B-1)^2 / (2 n ln 2) and Miller–Madow's correction assume
    many samples per histogram cell. With fewer samples than cells the plug-in estimate
    saturates at log2(min(n, B)) (each sample in a cell of its own), so the predicted bias
    can exceed what is possible, and Miller–Madow's marginal terms outgrow its joint term:
    the correction then *raises* the estimate instead of lowering it.
    """
    cells = n_bins * n_bins
    ceiling = float(np.log2(min(n_samples, n_bins)))
    notes = []
    if n_samples < cells:
        notes.append(f"{n_samples} samples for {n_bins}x{n_bins} = {cells} cells: fewer samples than cells")
    if bias_term > ceiling:
        notes.append(f"the first-order bias {bias_term:.2f} bits is above log2(min(n, B)) = {ceiling:.2f} bits, "
                     "the most MI these samples can show: the formula needs many samples per cell")
    if estimate_mm > estimate + 1e-12:
        notes.append(f"Miller–Madow raises the estimate ({estimate_mm:.3f} vs plug-in {estimate:.3f} bits) "
                     "instead of removing an upward bias: with few samples per cell its marginal terms "
                     "outgrow its joint term")
    return "; ".join(notes)


def binned_mi_curve(x, y, n_bins, sizes, binning="minmax", correction=None):
    """Binned MI of the first ``n`` samples of ``(x, y)`` for each ``n`` in ``sizes``
    (bins re-fitted on each subsample, as a user with ``n`` samples would)."""
    out = []
    for n in sizes:
        c = discretize(np.stack([x[:n], y[:n]], axis=1), n_bins=n_bins, binning=binning)
        out.append(mutual_information(c[:, 0], c[:, 1], correction=correction))
    return np.array(out)


class BiasExplorer(Explorer):
    """Binned MI of a correlated Gaussian pair against its analytic value, live.

    Sliders: ``bins``, ``samples`` (log scale), ``rho``. The plot shows the estimate
    against sample size for the current bin count; the readout the numbers.
    """

    def __init__(self, rho: float = 0.8, n_bins: int = 8, n_samples: int = 500, max_samples: int = 20000,
                 seed: int = 0, binning: str = "minmax"):
        self.seed = seed
        self.binning = binning
        self.max_samples = max_samples
        self._cache = {}
        controls = {
            "bins": bins_slider(n_bins, 2, 40),
            "samples": samples_slider(n_samples, 20, max_samples),
            "rho": W.FloatSlider(value=rho, min=0.0, max=0.99, step=0.01, description="rho",
                                 continuous_update=False),
        }
        super().__init__(controls, title="Binned MI against the truth", figsize=(6.5, 3.6))

    def _data(self, rho):
        key = round(rho, 4)
        if key not in self._cache:
            rng = np.random.default_rng(self.seed)
            x = rng.standard_normal(self.max_samples)
            y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(self.max_samples)
            self._cache = {key: (x, y)}
        return self._cache[key]

    def compute(self) -> BiasResult:
        b, n, rho = self.value("bins"), self.value("samples"), self.value("rho")
        x, y = self._data(rho)
        grid = np.unique(np.geomspace(20, self.max_samples, 14).astype(int))
        c = discretize(np.stack([x[:n], y[:n]], axis=1), n_bins=b, binning=self.binning)
        estimate = mutual_information(c[:, 0], c[:, 1])
        estimate_mm = mutual_information(c[:, 0], c[:, 1], correction="miller-madow")
        truth = gaussian_mi_analytic(rho) if rho > 0 else 0.0
        bias_term = plugin_bias(b, b, n)
        return BiasResult(
            rho=rho, n_bins=b, n_samples=n, estimate=estimate, estimate_mm=estimate_mm, truth=truth,
            bias_term=bias_term, grid_n=grid, grid_estimate=binned_mi_curve(x, y, b, grid, self.binning),
            ceiling=float(np.log2(min(n, b))),
            warning=small_sample_warning(b, n, estimate, estimate_mm, truth, bias_term),
        )

    def render(self, r: BiasResult) -> None:
        text = (
            f"bins={r.n_bins}, samples={r.n_samples}: plug-in {r.estimate:.4f} bits, "
            f"Miller–Madow {r.estimate_mm:.4f}, analytic {r.truth:.4f}; "
            f"error {r.estimate - r.truth:+.4f}, first-order bias {r.bias_term:+.4f}"
        )
        if r.warning:
            text += f". ⚠ Too few samples: {r.warning}."
        self.readout.set(text)
        # the first-order prediction, capped where it passes what n samples can show
        ceiling = np.log2(np.minimum(r.grid_n, r.n_bins))
        bias = np.minimum((r.n_bins - 1) ** 2 / (2 * r.grid_n * LN2), np.maximum(ceiling - r.truth, 0))

        def draw(ax):
            plots.plot_bias_curve(r.grid_n, r.grid_estimate, r.truth, ax=ax, current=(r.n_samples, r.estimate),
                                  bias_term=bias, label=f"plug-in, {r.n_bins} bins")
            for line in ax.lines:
                if line.get_linestyle() == "--":
                    line.set_label("analytic + (B-1)²/(2n ln2), capped")
            ax.plot(r.grid_n, ceiling, ":", color="grey", lw=1, label="most MI n samples can show, log2 min(n, B)")
            ax.set_ylim(0, 1.15 * max(ax.get_ylim()[1], r.estimate_mm))
            ax.legend(fontsize=7, loc="upper right")
            if r.warning:
                ax.set_title("⚠ fewer samples than the bias formula needs (see the readout)", fontsize=9,
                             color="darkred")
        self.plot.draw(draw)


@dataclass(repr=False)
class MIMapResult(Result):
    layer: str
    n_bins: int
    neuron: int
    mi: np.ndarray           # (units, units) pairwise MI, entropies on the diagonal
    mi_label: np.ndarray     # (units,) I(neuron; class)
    partner: int             # the neuron sharing most information with the selected one


class MIMapExplorer(Explorer):
    """All-pairs MI within a layer, and each neuron's MI with the class.

    ``activations``: dict layer name -> ``(samples, units)`` (e.g. ``Recording.activations``);
    ``labels``: ``(samples,)`` class labels.
    """

    def __init__(self, activations: dict, labels, n_bins: int = 8, binning: str = "quantile"):
        if not activations:
            raise ValueError("activations is empty: record at least one layer")
        self.acts = {k: as_2d(to_numpy(v).reshape(len(v), -1), k) for k, v in activations.items()}
        self.labels = to_numpy(labels).astype(np.int64).ravel()
        for k, v in self.acts.items():
            if len(v) != len(self.labels):
                raise ValueError(f"layer {k!r} has {len(v)} samples but labels has {len(self.labels)}")
        self.binning = binning
        self._cache = {}
        first = next(iter(self.acts))
        controls = {
            "layer": layer_picker(list(self.acts)),
            "bins": bins_slider(n_bins, 2, 16),
            "neuron": neuron_picker(self.acts[first].shape[1]),
        }
        super().__init__(controls, title="All-pairs MI map", figsize=(10, 4), ncols=2)

    def _measures(self, layer, b):
        key = (layer, b)
        if key not in self._cache:
            codes = discretize(self.acts[layer], n_bins=b, binning=self.binning)
            mi = pairwise_mi(codes, n_bins=b)
            y = np.unique(self.labels, return_inverse=True)[1]
            mi_label = pairwise_mi(codes, y[:, None], n_bins=b, n_bins_b=int(y.max()) + 1)[:, 0]
            self._cache[key] = (mi, mi_label)
        return self._cache[key]

    def compute(self) -> MIMapResult:
        layer, b = self.value("layer"), self.value("bins")
        units = self.acts[layer].shape[1]
        picker = self.controls["neuron"]
        if picker.max != units - 1:
            picker.max = units - 1  # may clamp the value; the resulting update is cached
        i = min(picker.value, units - 1)
        mi, mi_label = self._measures(layer, b)
        others = mi[i].copy()
        others[i] = -np.inf
        return MIMapResult(layer, b, i, mi, mi_label, int(np.argmax(others)) if units > 1 else i)

    def render(self, r: MIMapResult) -> None:
        h = r.mi[r.neuron, r.neuron]
        self.readout.set(
            f"{r.layer}: {len(r.mi)} neurons, {r.n_bins} bins; neuron {r.neuron}: H = {h:.3f} bits, "
            f"I(neuron; class) = {r.mi_label[r.neuron]:.3f} bits, strongest partner {r.partner} "
            f"({r.mi[r.neuron, r.partner]:.3f} bits)"
        )

        def draw(axes):
            off = r.mi.copy()
            np.fill_diagonal(off, np.nan)  # entropies would dominate the colour scale
            plots.plot_mi_matrix(off, ax=axes[0], selected=r.neuron, title=f"{r.layer}: MI between neurons")
            axes[0].set_xlabel(f"neuron of {r.layer}")
            axes[0].set_ylabel(f"neuron of {r.layer}")
            plots.plot_profile(r.mi_label, ax=axes[1], highlight=r.neuron, ylabel="I(neuron; class) (bits)",
                               title="information about the class")
            axes[1].set_xlabel(f"neuron of {r.layer}")

        self.plot.draw(draw)

