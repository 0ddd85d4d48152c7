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
from ..results import Result
from .._validation import checked

__all__ = ["MEASURES", "LayerEI", "plane_kind", "ModelEI", "layer_ei"]


MEASURES = ("ei", "ei_parts", "sensitivity")
#: the per-layer numbers of :meth:`ModelEI.table` (bits)
SUMMARY_MEASURES = ("ei", "ei_parts", "sensitivity", "degeneracy", "degeneracy_parts", "phi")


@dataclass(repr=False)
class LayerEI(Result):
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
    counts: dict | None = None

    repr_skip = ("settings", "notes", "edge_ei", "edge_sensitivity", "edge_mask", "trace", "sensitivity_trace",
                 "counts")
    plotter = "nifkit.ei.plots:plot_edge_ei"

    @property
    def n_edges(self) -> int:
        return int(self.edge_mask.sum()) if self.edge_mask is not None else self.n_inputs * self.n_outputs

    def plane_point(self, which: str = "auto") -> tuple:
        """``(sensitivity, degeneracy)`` with vector EI (``"ei"``), EI_parts (``"parts"``)
        or whichever is available (``"auto"``: vector EI when measured)."""
        which = plane_kind(which, [self])
        return self.sensitivity, (self.degeneracy if which == "ei" else self.degeneracy_parts)


@checked(skip=('layers',))
def plane_kind(which, layers) -> str:
    """``"ei"`` or ``"parts"``: which EI places layers in the causal plane. ``"auto"``
    means vector EI when every layer in ``layers`` has it, else EI_parts."""
    if which not in ("auto", "ei", "parts"):
        raise ValueError(f"which must be 'auto', 'ei' or 'parts', got {which!r}")
    if which == "auto":
        return "ei" if all(not math.isnan(lay.ei) for lay in layers) else "parts"
    return which


@dataclass(repr=False)
class ModelEI(Result):
    """EI measures of every measured layer of a model, by layer name. ``skipped``: the
    layers EI could not measure (name -> reason); ``input_shapes``: the input shape each
    weight layer sees in the network (when :func:`model_ei` got ``input_shape``)."""

    layers: "dict[str, LayerEI]"  # in measurement order
    skipped: dict = field(default_factory=dict)
    input_shapes: dict = field(default_factory=dict)

    plotter = "nifkit.ei.plots:plot_causal_plane"

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

    def table(self) -> list[dict]:
        """One row per layer: its measures in bits."""
        return [{"layer": lay.name, **{m: float(getattr(lay, m)) for m in SUMMARY_MEASURES}} for lay in self]

    def summary(self, max_rows: int | None = None) -> str:
        """:meth:`table` as aligned text, one line per layer (for ``print``; the chapter's
        column names)."""
        rows = [f"{'layer':<10}{'EI':>9}{'EI_parts':>10}{'sens.':>9}{'degen.':>9}{'degen_p':>9}{'phi':>9}"]
        for lay in list(self.layers.values())[:max_rows]:
            rows.append(f"{lay.name:<10}{lay.ei:>9.3f}{lay.ei_parts:>10.3f}{lay.sensitivity:>9.3f}"
                        f"{lay.degeneracy:>9.3f}{lay.degeneracy_parts:>9.3f}{lay.phi:>9.3f}")
        return "\n".join(rows)


@checked(skip=('layer', 'n_samples', 'n_sensitivity_samples',))
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
        lay = as_layer(layer, activation, bias, input_shape, name, dev)
        settings = EISettings.checked(
            name=name, n_bins=n_bins, in_range=in_range, out_range=out_range, measures=measures, sampling=sampling,
            sensitivity_method=sensitivity_method, n_samples=n_samples, n_sensitivity_samples=n_sensitivity_samples,
            threshold=threshold, atol=atol, auto_start=auto_start, max_samples=max_samples,
            memory_budget=memory_budget, device=dev, seed=seed, keep_counts=keep_counts)
        return _layer_ei(lay, settings, progress)


@dataclass(frozen=True)
class EISettings:
    """The checked settings of one :func:`layer_ei` measurement (see its parameters):
    ``bins = (in_bins, out_bins)``, ``in_range = (lo, hi)``, ``measures`` maps each
    wanted measure to ``"explicit"`` or ``"auto"`` (vector EI skipped when too large),
    ``auto`` holds the doubling rule of ``"auto"`` sample counts."""

    name: str
    bins: tuple
    in_range: tuple
    out_range: object
    measures: dict
    sampling: str
    sensitivity_method: str
    n_samples: object
    n_sensitivity_samples: object
    auto: dict
    memory_budget: float
    device: torch.device
    seed: int
    keep_counts: bool

    @classmethod
    def checked(cls, *, name, n_bins, in_range, out_range, measures, sampling, sensitivity_method, n_samples,
                n_sensitivity_samples, threshold, atol, auto_start, max_samples, memory_budget, device, seed,
                keep_counts) -> "EISettings":
        """Check :func:`layer_ei`'s arguments (``ValueError`` naming the argument);
        ``out_range`` is checked when the output bins are made (:func:`_output_bins`)."""
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
        return cls(name=name, bins=(bi, bo), in_range=(in_lo, in_hi), out_range=out_range, measures=measures,
                   sampling=sampling, sensitivity_method=sensitivity_method, n_samples=n_samples,
                   n_sensitivity_samples=n_sensitivity_samples, auto=auto, memory_budget=memory_budget,
                   device=device, seed=seed, keep_counts=keep_counts)


def _layer_ei(lay, s: EISettings, progress) -> LayerEI:
    """Measure one layer: output bins, what can be measured, the noise counts (vector EI
    and EI_parts), the sensitivity counts, and the result."""
    notes = []
    out_lo, out_hi, range_desc = _output_bins(lay, s)
    want_vector = _want_vector(lay, s, notes)
    want_noise = want_vector or "ei_parts" in s.measures
    _check_grid(lay, s, want_noise)
    nan = float("nan")
    found = dict(ei=nan, ei_parts=nan, edge_ei=None, n_samples=0, trace=[], out_of_range=0.0, sensitivity=nan,
                 edge_sensitivity=None, n_sensitivity_samples=0, sensitivity_trace=[], sensitivity_method="")
    counts = {}
    with Progress(progress, unit="sample") as cb:
        if want_noise:
            found.update(_measure_noise(lay, s, (out_lo, out_hi), want_vector, cb, counts))
        if "sensitivity" in s.measures:
            found.update(_measure_sensitivity(lay, s, (out_lo, out_hi), cb, counts))
    return _layer_result(lay, s, found, range_desc, notes, counts)


def _output_bins(lay, s: EISettings):
    """``(out_lo, out_hi, range_desc)``: each output's bin range (float64 tensors) and
    how the result reports it (``(lo, hi)``, or the fitted ranges ``(n_out, 2)``)."""
    out_range = s.out_range
    if isinstance(out_range, str) and out_range == "default":
        out_range = (0.0, 1.0)
    if isinstance(out_range, str):
        if out_range != "fit":
            raise ValueError(f"out_range must be (lo, hi) or 'fit', got {out_range!r}")
        out_lo, out_hi = fit_out_range(lay, *s.in_range, s.seed, s.device)
        out_lo, out_hi = out_lo.to(torch.float64), out_hi.to(torch.float64)
        return out_lo, out_hi, np.stack([out_lo.cpu().numpy(), out_hi.cpu().numpy()], 1)
    lo, hi = check_range(out_range, "out_range")
    out_lo = torch.full((lay.n_out,), lo, dtype=torch.float64, device=s.device)
    out_hi = torch.full((lay.n_out,), hi, dtype=torch.float64, device=s.device)
    return out_lo, out_hi, (lo, hi)


def _want_vector(lay, s: EISettings, notes: list) -> bool:
    """Whether vector EI is measured: asked for and its joint state space countable
    (skipped with a note when only implied by ``"all"``, an error when asked for)."""
    bi, bo = s.bins
    key_bits = lay.n_in * math.log2(bi) + lay.n_out * math.log2(bo)
    want_vector = "ei" in s.measures
    if want_vector and key_bits > MAX_KEY_BITS:
        if s.measures.get("ei") == "auto":
            want_vector = False
            notes.append(f"vector EI skipped: the joint state space {bi}^{lay.n_in} x {bo}^{lay.n_out} "
                         f"(~2^{key_bits:.0f}) is far too large to count or estimate from samples")
        else:
            raise ValueError(
                f"vector EI of layer {s.name!r} ({lay.n_in} -> {lay.n_out} units, {bi}x{bo} bins) needs the joint "
                f"state space {bi}^{lay.n_in} x {bo}^{lay.n_out} = 2^{key_bits:.0f} states: too large to count, and "
                "no sample could estimate it. Vector EI is realistic for small layers only; use "
                "measures=('ei_parts', 'sensitivity') (EI_parts is the paper's tractable stand-in).")
    if want_vector and isinstance(s.n_samples, int) and s.n_samples < bi ** lay.n_in:
        notes.append(f"vector EI: {s.n_samples} samples for {bi}^{lay.n_in} input states; the plug-in estimate is "
                     f"capped near log2(samples) = {math.log2(s.n_samples):.1f} bits and biased")
    return want_vector


def _check_grid(lay, s: EISettings, want_noise: bool) -> None:
    """``sampling="grid"`` needs sample counts that fill every input bin cell equally."""
    if s.sampling != "grid":
        return
    bi = s.bins[0]
    cells = bi ** lay.n_in
    if want_noise and (s.n_samples == "auto" or s.n_samples % cells):
        raise ValueError(f"sampling='grid' needs n_samples to be a multiple of in_bins**n_in = {cells}, "
                         f"got {s.n_samples}")
    if "sensitivity" in s.measures and (s.n_sensitivity_samples == "auto" or s.n_sensitivity_samples % bi):
        raise ValueError(f"sampling='grid' needs n_sensitivity_samples to be a multiple of in_bins = {bi}, "
                         f"got {s.n_sensitivity_samples}")


def _measure_noise(lay, s: EISettings, out_bins, want_vector, cb, counts) -> dict:
    """Vector EI and EI_parts from all inputs noised at once (outputs binned over
    ``out_bins = (out_lo, out_hi)``): the LayerEI fields they fill (count tables into
    ``counts`` with ``keep_counts``)."""
    (bi, bo), budget, out_lo, out_hi = s.bins, s.memory_budget, *out_bins
    mask_f = _mask_f(lay)
    parts = "ei_parts" in s.measures
    in_lo, in_hi = s.in_range
    noise = NoiseBlocks(lay.n_in, in_lo, in_hi, bi, seed=s.seed, stream=STREAM_NOISE, device=s.device,
                        sampling=s.sampling)
    if parts and lay.n_in * bi * lay.n_out * bo * 8 * 3 > budget:
        if want_vector or s.n_samples == "auto" or s.keep_counts:
            raise ValueError(f"the EI_parts count table of layer {s.name!r} ({lay.n_in} x {lay.n_out} edges, "
                             f"{bi}x{bo} bins) does not fit memory_budget={budget} bytes, and vector EI, "
                             "n_samples='auto' and keep_counts need it whole; raise the budget, measure a smaller "
                             "layer / input_shape, or use measures=('ei_parts', 'sensitivity') with a fixed n_samples")
        return _in_output_groups(lay, s, out_bins, noise, lay.n_in * bi * bo * 8 * 3, cb, "EI_parts")
    acc = AllNoiseCounts(lay, bi, bo, out_lo, out_hi, parts=parts, vector=want_vector, dev=s.device, in_lo=in_lo,
                         in_hi=in_hi, budget=budget)

    def estimate():
        out = {}
        if acc.parts:
            out["ei_parts"] = _edge_sum(acc.edge_mi(), mask_f)
        if acc.vector:
            out["ei"] = acc.vector_mi()
        return out

    trace = drive_layer(noise, acc, s.n_samples, rows_per_block(acc.bytes_per_row(), budget), estimate, s.auto,
                        cb, f"EI of {s.name}")
    found = dict(ei=trace[-1][1].get("ei", float("nan")), n_samples=acc.n, trace=trace,
                 out_of_range=acc.out_of_range / max(1, acc.n * lay.n_out))
    if acc.parts:
        found["edge_ei"] = _on_edges(acc.edge_mi(), mask_f)
        found["ei_parts"] = float(found["edge_ei"].sum())
        if s.keep_counts:
            counts["joint"] = acc.joint.reshape(lay.n_in * bi, lay.n_out * bo).cpu().numpy()
            counts["count_in"] = acc.count_in.cpu().numpy()
            counts["count_out"] = acc.count_out.cpu().numpy()
    if acc.vector and s.keep_counts:
        acc.merge_pending()
        counts["vector_keys"] = acc.states.keys.cpu().numpy()
        counts["vector_counts"] = acc.states.counts.cpu().numpy()
    return found


def _in_output_groups(lay, s: EISettings, out_bins, noise, bytes_per_output, cb, what) -> dict:
    """EI_parts (``what="EI_parts"``) or the sensitivity of a layer whose count tables do
    not fit ``memory_budget`` at once: the outputs in groups that fit, each group counted
    over the same noise samples (the tables of an output depend only on its own row), so
    the per-edge values are those of one pass. Fixed sample counts only."""
    (bi, bo), budget = s.bins, s.memory_budget
    k = int(budget // bytes_per_output)
    if k < 1:
        raise ValueError(f"the {what} count tables of one output of layer {s.name!r} ({lay.n_in} inputs, {bi}x{bo} "
                         f"bins) do not fit memory_budget={budget} bytes; raise the budget or use fewer bins")
    edge = torch.empty(lay.n_in, lay.n_out, dtype=torch.float64, device=s.device)  # filled group by group
    oor, n, method = 0, 0, ""
    for a in range(0, lay.n_out, k):  # loop over groups of outputs within the budget
        sub, sl = lay.outputs(a, min(lay.n_out, a + k)), slice(a, a + k)
        if what == "EI_parts":
            acc = AllNoiseCounts(sub, bi, bo, out_bins[0][sl], out_bins[1][sl], parts=True, vector=False,
                                 dev=s.device, in_lo=s.in_range[0], in_hi=s.in_range[1], budget=budget)
            n_wanted = s.n_samples
        else:
            acc = SensitivityCounts(sub, bi, bo, out_bins[0][sl], out_bins[1][sl], method=s.sensitivity_method,
                                    dev=s.device, budget=budget)
            n_wanted, method = s.n_sensitivity_samples, acc.method
        drive_layer(noise, acc, n_wanted, rows_per_block(acc.bytes_per_row(), budget), dict, s.auto, cb,
                    f"{what} of {s.name} (outputs {a}..{min(lay.n_out, a + k) - 1})")
        edge[:, a:a + k] = acc.edge_mi()
        oor, n = oor + getattr(acc, "out_of_range", 0), acc.n
        del acc
    edge = _on_edges(edge, _mask_f(lay))
    total = float(edge.sum())
    if what == "EI_parts":
        return dict(ei=float("nan"), ei_parts=total, edge_ei=edge, n_samples=n, trace=[(n, {"ei_parts": total})],
                    out_of_range=oor / max(1, n * lay.n_out))
    return dict(sensitivity=total, edge_sensitivity=edge, n_sensitivity_samples=n,
                sensitivity_trace=[(n, {"sensitivity": total})], sensitivity_method=method)


def _measure_sensitivity(lay, s: EISettings, out_bins, cb, counts) -> dict:
    """Sensitivity from one input noised at a time: the LayerEI fields it fills."""
    (bi, bo), budget, out_lo, out_hi = s.bins, s.memory_budget, *out_bins
    mask_f = _mask_f(lay)
    noise = NoiseBlocks(lay.n_in, *s.in_range, bi, seed=s.seed, stream=STREAM_SENS, device=s.device,
                        sampling=s.sampling, per_column=True)
    per_output = lay.n_in * bi * bo * 8 * 8  # the joint table and ~7 more of its size (threshold counting, MI)
    if (lay.n_in * lay.n_out * bi * bo * 8 > 16 * 2**20 and per_output * lay.n_out > budget
            and s.n_sensitivity_samples != "auto" and not s.keep_counts):
        return _in_output_groups(lay, s, out_bins, noise, per_output, cb, "sensitivity")
    sacc = SensitivityCounts(lay, bi, bo, out_lo, out_hi, method=s.sensitivity_method, dev=s.device, budget=budget)
    trace = drive_layer(noise, sacc, s.n_sensitivity_samples, rows_per_block(sacc.bytes_per_row(), budget),
                        lambda: {"sensitivity": _edge_sum(sacc.edge_mi(), mask_f)}, s.auto, cb,
                        f"sensitivity of {s.name}")
    edge_sens = _on_edges(sacc.edge_mi(), mask_f)
    if s.keep_counts:
        counts["sensitivity_joint"] = sacc.joint.cpu().numpy()
    return dict(sensitivity=float(edge_sens.sum()), edge_sensitivity=edge_sens, n_sensitivity_samples=sacc.n,
                sensitivity_trace=trace, sensitivity_method=sacc.method)


def _layer_result(lay, s: EISettings, found: dict, range_desc, notes: list, counts: dict) -> LayerEI:
    """The :class:`LayerEI` of the measured fields (``found``), with the derived ones."""
    if found["out_of_range"] > 0.01:
        notes.append(f"{100 * found['out_of_range']:.1f}% of output values fell outside out_range and were put in "
                     "the edge bins; consider out_range='fit'")
    bi, bo = s.bins
    mask_np = None if lay.edge_mask is None else lay.edge_mask.cpu().numpy()
    n_edges = int(mask_np.sum()) if mask_np is not None else lay.n_in * lay.n_out
    n_noise = found["n_samples"]
    bias_parts = n_edges * plugin_bias(bi, bo, n_noise) if n_noise else float("nan")
    ei, ei_parts, sens = found["ei"], found["ei_parts"], found["sensitivity"]
    return LayerEI(
        name=s.name, **found, degeneracy=sens - ei, degeneracy_parts=sens - ei_parts, phi=ei - ei_parts,
        n_bins=(bi, bo), in_range=s.in_range, out_range=range_desc, activation=lay.act.name, n_inputs=lay.n_in,
        n_outputs=lay.n_out, kind=lay.kind, edge_mask=mask_np, bias_parts=bias_parts, sampling=s.sampling,
        notes=notes, counts=counts if s.keep_counts else None,
    )


def _mask_f(lay):
    """A convolution's edge mask as float64 (None for a dense layer: every pair is an edge)."""
    return None if lay.edge_mask is None else lay.edge_mask.to(torch.float64)


def _edge_sum(m, mask_f) -> float:
    """The sum of per-edge values over the edges of the layer (all pairs, or a convolution's)."""
    return float(m.sum() if mask_f is None else (m * mask_f).sum())


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
