"""EI of one layer (:func:`layer_ei`) and the result objects :class:`LayerEI`,
:class:`ModelEI`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validation import resolve_device
from ..config import DEFAULT_MEMORY_BUDGET
from ..info import MAX_KEY_BITS, plugin_bias
from ..runtime import Progress
from .sampling import (
    AllNoiseCounts, NoiseBlocks, STREAM_NOISE, STREAM_SENS, SensitivityCounts, check_bins,
    check_range, check_samples, drive_layer, fit_out_range, rows_per_block,
)
from .layers import as_layer

__all__ = ["MEASURES", "LayerEI", "plane_kind", "ModelEI", "layer_ei"]


MEASURES = ("ei", "ei_parts", "sensitivity")


@dataclass(repr=False)
class LayerEI:
    """EI measures of one layer, in bits. ``edge_ei[A, B]`` and ``edge_sensitivity[A, B]``
    are per edge (inputs x outputs); non-edges of a convolution are 0 (see ``edge_mask``).

    ``degeneracy = sensitivity - ei`` and ``phi = ei - ei_parts`` need vector EI; when it
    was not measured (wide layers) they are NaN and ``degeneracy_parts = sensitivity -
    ei_parts`` places the layer in the causal plane instead (the paper's tractable proxy).
    ``bias_parts`` is the plug-in bias EI_parts would show for independent edges,
    ``n_edges (in_bins-1)(out_bins-1) / (2 n ln 2)``.
    """

    name: str
    ei: float
    ei_parts: float
    edge_ei: np.ndarray
    sensitivity: float
    edge_sensitivity: np.ndarray
    degeneracy: float
    degeneracy_parts: float
    phi: float
    n_samples: int
    n_sensitivity_samples: int
    n_bins: tuple
    in_range: tuple
    out_range: object
    activation: str
    n_inputs: int
    n_outputs: int
    kind: str = "linear"
    edge_mask: np.ndarray | None = None
    out_of_range: float = 0.0
    bias_parts: float = float("nan")
    sampling: str = "uniform"
    sensitivity_method: str = ""
    trace: list = field(default_factory=list)
    sensitivity_trace: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    counts: dict | None = None

    @property
    def n_edges(self) -> int:
        return int(self.edge_mask.sum()) if self.edge_mask is not None else self.n_inputs * self.n_outputs

    def plane_point(self, which: str = "auto") -> tuple:
        """``(sensitivity, degeneracy)`` with vector EI (``"ei"``), EI_parts (``"parts"``)
        or whichever is available (``"auto"``: vector EI when measured)."""
        which = plane_kind(which, [self])
        return self.sensitivity, (self.degeneracy if which == "ei" else self.degeneracy_parts)

    def __repr__(self) -> str:
        def f(v):
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

        return (f"LayerEI({self.name}: {self.n_inputs}->{self.n_outputs} {self.activation}, EI={f(self.ei)}, "
                f"EI_parts={f(self.ei_parts)}, sensitivity={f(self.sensitivity)}, degeneracy={f(self.degeneracy)}, "
                f"phi={f(self.phi)} bits; {self.n_samples} samples, {self.n_bins[0]}x{self.n_bins[1]} bins)")


def plane_kind(which, layers) -> str:
    """``"ei"`` or ``"parts"``: which EI places layers in the causal plane. ``"auto"``
    means vector EI when every layer in ``layers`` has it, else EI_parts."""
    if which not in ("auto", "ei", "parts"):
        raise ValueError(f"which must be 'auto', 'ei' or 'parts', got {which!r}")
    if which == "auto":
        return "ei" if all(not math.isnan(lay.ei) for lay in layers) else "parts"
    return which


@dataclass(repr=False)
class ModelEI:
    """EI measures of every measured layer of a model, by layer name."""

    layers: "dict[str, LayerEI]"  # in measurement order

    @property
    def names(self) -> list:
        return list(self.layers)

    def __getitem__(self, name) -> LayerEI:
        if isinstance(name, int):
            return list(self.layers.values())[name]
        if name not in self.layers:
            raise KeyError(f"no measured layer {name!r}; measured layers: {self.names}")
        return self.layers[name]

    def __iter__(self):
        return iter(self.layers.values())

    def __len__(self):
        return len(self.layers)

    def values(self, measure: str) -> np.ndarray:
        """One measure (a LayerEI field name) for every layer, as an array."""
        return np.array([getattr(lay, measure) for lay in self.layers.values()], dtype=float)

    def table(self) -> str:
        rows = [f"{'layer':<10}{'EI':>9}{'EI_parts':>10}{'sens.':>9}{'degen.':>9}{'degen_p':>9}{'phi':>9}"]
        for lay in self.layers.values():
            rows.append(f"{lay.name:<10}{lay.ei:>9.3f}{lay.ei_parts:>10.3f}{lay.sensitivity:>9.3f}"
                        f"{lay.degeneracy:>9.3f}{lay.degeneracy_parts:>9.3f}{lay.phi:>9.3f}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"ModelEI({len(self)} layers)\n" + self.table()


def layer_ei(layer, activation=None, *, bias=None, input_shape=None, name: str = "layer",
             in_range=(0.0, 1.0), out_range="default", n_bins=8, n_samples=100_000, n_sensitivity_samples=5000,
             measures="all", sampling: str = "uniform", sensitivity_method: str = "auto",
             threshold: float = 0.05, atol: float = 1e-3, auto_start: int = 10_000,
             max_samples: int = 10_000_000, memory_budget: int = DEFAULT_MEMORY_BUDGET, device=None,
             seed: int = 0, progress=False, keep_counts: bool = False, num_threads: int | None = None) -> LayerEI:
    r"""Vector EI, EI_parts, sensitivity, degeneracy and phi of one layer, in bits.

    Parameters
    ----------
    layer : ``nn.Linear``, ``nn.Conv2d``, ``nn.Sequential(layer, activation)``, a weight
        matrix ``(n_out, n_in)`` or a tuple ``(weight, bias)``.
    activation : the elementwise activation after the layer: a name (``"sigmoid"``,
        ``"tanh"``, ``"relu"``, ...), an ``nn.Module`` or a callable; ``None`` = identity.
    input_shape : for a Conv2d, the ``(C, H, W)`` input to measure (each output unit
        ``(channel, y, x)`` is a node). Default: one receptive field, as deep-ei does
        (``C x kh x kw`` inputs, ``out_channels`` outputs). The convolution is turned into
        its equivalent dense matrix; the edges are the pairs inside receptive fields.
    in_range : ``(lo, hi)`` of the uniform noise put on the inputs (paper: (0, 1)).
    out_range : ``(lo, hi)`` of the equal-width output bins (default ``(0, 1)``), or
        ``"fit"``: each output's reachable range under the noise (exact for monotone
        activations, from a pilot sample otherwise).
    n_bins : bins per node, or ``(in_bins, out_bins)`` (paper: 8).
    n_samples : noise samples for vector EI and EI_parts, or ``"auto"``.
    n_sensitivity_samples : noise samples *per input* for the sensitivity, or ``"auto"``.
    measures : any of ``"ei"`` (vector EI), ``"ei_parts"``, ``"sensitivity"``, or ``"all"``
        (the default: all three, vector EI skipped with a note in ``result.notes`` when the
        layer is too wide). Asking for ``"ei"`` explicitly on a layer whose joint state
        space does not fit 63 bits is an error.
    sampling : ``"uniform"`` (independent uniform noise, as the paper) or ``"grid"``
        (stratified: every input bin cell equally often, uniform within the cell; needs
        ``samples`` to be a multiple of ``in_bins**n_in`` and ``sensitivity_samples`` a
        multiple of ``in_bins``). The grid removes the input side's sampling noise and
        makes identity layers exact.
    sensitivity_method : ``"threshold"`` (monotone activations: sorted noise and bin-edge
        thresholds, no forward pass), ``"dense"`` (evaluate every edge on every sample)
        or ``"auto"``.
    threshold, atol, auto_start, max_samples : for ``"auto"`` sample counts: start at
        ``auto_start`` samples and double until every estimate changes by at most
        ``max(threshold * |estimate|, atol)`` bits, or ``max_samples`` is reached.
    memory_budget : bytes of temporaries per block of samples.
    device : torch device for sampling and counting (``None``: CPU).
    seed : noise seed. The same seed gives the same noise to every layer and snapshot
        (common random numbers make EI-over-training curves smooth).
    progress : ``True`` for a tqdm bar, or a callable ``progress(done, total, what)``.
    keep_counts : keep the count tables in ``result.counts``.
    num_threads : torch CPU threads while measuring (default 1, restored after; see
        :class:`nifkit.runtime.cpu_threads`: on a shared machine extra threads mostly wait).
    """
    from ..runtime import cpu_threads

    dev = resolve_device(device)
    with cpu_threads(num_threads, dev):
        return _layer_ei(layer, activation, bias, input_shape, name, in_range, out_range, n_bins, n_samples,
                         n_sensitivity_samples, measures, sampling, sensitivity_method, threshold, atol, auto_start,
                         max_samples, memory_budget, dev, seed, progress, keep_counts)


def _layer_ei(layer, activation, bias, input_shape, name, in_range, out_range, n_bins, n_samples, n_sensitivity_samples,
              measures, sampling, sensitivity_method, threshold, atol, auto_start, max_samples, memory_budget, dev,
              seed, progress, keep_counts) -> LayerEI:
    lay = as_layer(layer, activation, bias, input_shape, name, dev)
    bi, bo = check_bins(n_bins)
    in_lo, in_hi = check_range(in_range, "in_range")
    measures = _check_measures(measures)
    if sampling not in ("uniform", "grid"):
        raise ValueError(f"sampling must be 'uniform' or 'grid', got {sampling!r}")
    if not (isinstance(memory_budget, (int, float)) and memory_budget > 0):
        raise ValueError("memory_budget must be a positive number of bytes")
    n_samples = check_samples(n_samples, "n_samples", bi, bo)
    n_sensitivity_samples = check_samples(n_sensitivity_samples, "n_sensitivity_samples", bi, bo)
    auto = dict(start=int(auto_start), max_samples=int(max_samples), threshold=float(threshold), atol=float(atol))
    if n_samples == "auto" or n_sensitivity_samples == "auto":
        if auto["start"] < bi * bo or auto["max_samples"] < auto["start"]:
            raise ValueError(f"auto sampling needs bins**2 <= auto_start <= max_samples, got auto_start="
                             f"{auto_start}, max_samples={max_samples}")
    notes = []

    # output bins
    if isinstance(out_range, str) and out_range == "default":
        out_range = (0.0, 1.0)
    if isinstance(out_range, str):
        if out_range != "fit":
            raise ValueError(f"out_range must be (lo, hi) or 'fit', got {out_range!r}")
        out_lo, out_hi = fit_out_range(lay, in_lo, in_hi, seed, dev)
        out_lo, out_hi = out_lo.to(torch.float64), out_hi.to(torch.float64)
        range_desc = np.stack([out_lo.cpu().numpy(), out_hi.cpu().numpy()], 1)
    else:
        lo, hi = check_range(out_range, "out_range")
        out_lo = torch.full((lay.n_out,), lo, dtype=torch.float64, device=dev)
        out_hi = torch.full((lay.n_out,), hi, dtype=torch.float64, device=dev)
        range_desc = (lo, hi)

    # vector EI feasibility
    key_bits = lay.n_in * math.log2(bi) + lay.n_out * math.log2(bo)
    want_vector = "ei" in measures
    if want_vector and key_bits > MAX_KEY_BITS:
        if measures.get("ei") == "auto":
            want_vector = False
            notes.append(f"vector EI skipped: the joint state space {bi}^{lay.n_in} x {bo}^{lay.n_out} "
                         f"(~2^{key_bits:.0f}) is far too large to count or estimate from samples")
        else:
            raise ValueError(
                f"vector EI of layer {name!r} ({lay.n_in} -> {lay.n_out} units, {bi}x{bo} bins) needs the joint "
                f"state space {bi}^{lay.n_in} x {bo}^{lay.n_out} = 2^{key_bits:.0f} states: too large to count, and "
                "no sample could estimate it. Vector EI is realistic for small layers only; use "
                "measures=('ei_parts', 'sensitivity') (EI_parts is the paper's tractable stand-in).")
    if want_vector and isinstance(n_samples, int) and n_samples < bi ** lay.n_in:
        notes.append(f"vector EI: {n_samples} samples for {bi}^{lay.n_in} input states; the plug-in estimate is "
                     f"capped near log2(samples) = {math.log2(n_samples):.1f} bits and biased")
    want_noise = want_vector or "ei_parts" in measures

    if sampling == "grid":
        cells = bi ** lay.n_in
        if want_noise:
            if n_samples == "auto" or n_samples % cells:
                raise ValueError(f"sampling='grid' needs n_samples to be a multiple of in_bins**n_in = {cells}, "
                                 f"got {n_samples}")
        if "sensitivity" in measures and (n_sensitivity_samples == "auto" or n_sensitivity_samples % bi):
            raise ValueError(f"sampling='grid' needs n_sensitivity_samples to be a multiple of in_bins = {bi}, "
                             f"got {n_sensitivity_samples}")

    cb = Progress(progress, unit="sample")
    counts = {}
    nan = float("nan")
    ei = ei_parts = sens = nan
    edge_ei = edge_sens = None
    n_noise = n_sens = 0
    trace, strace = [], []
    out_of_range = 0.0
    mask = lay.edge_mask
    mask_f = None if mask is None else mask.to(torch.float64)

    try:
        if want_noise:
            acc = AllNoiseCounts(lay, bi, bo, out_lo, out_hi, "ei_parts" in measures, want_vector, dev, in_lo, in_hi,
                                 memory_budget)
            if "ei_parts" in measures and lay.n_in * bi * lay.n_out * bo * 8 * 3 > memory_budget:
                raise ValueError(f"the EI_parts count table of layer {name!r} ({lay.n_in} x {lay.n_out} edges, "
                                 f"{bi}x{bo} bins) does not fit memory_budget={memory_budget} bytes; raise the "
                                 "budget or measure a smaller layer / input_shape")
            noise = NoiseBlocks(lay.n_in, in_lo, in_hi, bi, seed, STREAM_NOISE, dev, sampling)
            rows = rows_per_block(acc.bytes_per_row(), memory_budget)

            def est_noise():
                out = {}
                if acc.parts:
                    m = acc.edge_mi()
                    out["ei_parts"] = float(m.sum() if mask_f is None else (m * mask_f).sum())
                if acc.vector:
                    out["ei"] = acc.vector_mi()
                return out

            trace = drive_layer(noise, acc, n_samples, rows, est_noise, auto, cb, f"EI of {name}")
            n_noise = acc.n
            out_of_range = acc.out_of_range / max(1, acc.n * lay.n_out)
            last = trace[-1][1]
            ei = last.get("ei", nan)
            if acc.parts:
                edge_ei = _on_edges(acc.edge_mi(), mask_f)
                ei_parts = float(edge_ei.sum())
                if keep_counts:
                    counts["joint"] = acc.joint.reshape(lay.n_in * bi, lay.n_out * bo).cpu().numpy()
                    counts["count_in"] = acc.count_in.cpu().numpy()
                    counts["count_out"] = acc.count_out.cpu().numpy()
            if acc.vector and keep_counts:
                acc.merge_pending()
                counts["vector_keys"] = acc.states.keys.cpu().numpy()
                counts["vector_counts"] = acc.states.counts.cpu().numpy()
            del acc
        if "sensitivity" in measures:
            sacc = SensitivityCounts(lay, bi, bo, out_lo, out_hi, sensitivity_method, dev, memory_budget)
            noise = NoiseBlocks(lay.n_in, in_lo, in_hi, bi, seed, STREAM_SENS, dev, sampling, per_column=True)
            rows = rows_per_block(sacc.bytes_per_row(), memory_budget)

            def est_sens():
                m = sacc.edge_mi()
                return {"sensitivity": float(m.sum() if mask_f is None else (m * mask_f).sum())}

            strace = drive_layer(noise, sacc, n_sensitivity_samples, rows, est_sens, auto, cb, f"sensitivity of {name}")
            n_sens = sacc.n
            edge_sens = _on_edges(sacc.edge_mi(), mask_f)
            sens = float(edge_sens.sum())
            if keep_counts:
                counts["sensitivity_joint"] = sacc.joint.cpu().numpy()
            sens_method = sacc.method
        else:
            sens_method = ""
    finally:
        cb.close()

    if out_of_range > 0.01:
        notes.append(f"{100 * out_of_range:.1f}% of output values fell outside out_range and were put in the edge "
                     "bins; consider out_range='fit'")
    mask_np = None if mask is None else mask.cpu().numpy()
    n_edges = int(mask_np.sum()) if mask_np is not None else lay.n_in * lay.n_out
    bias_parts = n_edges * plugin_bias(bi, bo, n_noise) if n_noise else nan
    return LayerEI(
        name=name, ei=ei, ei_parts=ei_parts, edge_ei=edge_ei, sensitivity=sens, edge_sensitivity=edge_sens,
        degeneracy=sens - ei, degeneracy_parts=sens - ei_parts, phi=ei - ei_parts,
        n_samples=n_noise, n_sensitivity_samples=n_sens, n_bins=(bi, bo), in_range=(in_lo, in_hi),
        out_range=range_desc, activation=lay.act.name, n_inputs=lay.n_in, n_outputs=lay.n_out, kind=lay.kind,
        edge_mask=mask_np, out_of_range=out_of_range, bias_parts=bias_parts, sampling=sampling,
        sensitivity_method=sens_method, trace=trace, sensitivity_trace=strace, notes=notes,
        counts=counts if keep_counts else None,
    )


def _on_edges(m, mask_f) -> np.ndarray:
    """Per-edge values as numpy, zero off the edges of a convolution (``mask_f``)."""
    return (m if mask_f is None else m * mask_f).cpu().numpy()


def _check_measures(measures):
    """-> dict measure -> 'explicit' | 'auto' (vector EI may be skipped when too large)."""
    if measures == "all":
        return {"ei": "auto", "ei_parts": "explicit", "sensitivity": "explicit"}
    if isinstance(measures, str):
        measures = (measures,)
    out = {}
    for m in measures:
        if m not in MEASURES:
            raise ValueError(f"measures must be among {MEASURES} (or 'all'), got {m!r}")
        out[m] = "explicit"
    if not out:
        raise ValueError(f"measures must name at least one of {MEASURES}")
    return out
