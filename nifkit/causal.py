r"""Effective information (EI) of network layers and the causal plane.

Marrow, Michaud & Hoel, "Examining the causal structures of deep neural networks using
information theory", Entropy 22(12):1429, 2020. The reference implementation is
``deep-ei`` 0.7.0; this module computes the same estimators, vectorised.

A *layer* ``L1 -> L2`` is a weight matrix ``W`` (outputs x inputs), an optional bias
``b`` and an elementwise activation ``g``: ``t_B = g(sum_A W[B, A] t_A + b_B)``. The
inputs are set **by intervention** to independent uniform noise over ``in_range``
(the maximum-entropy perturbation), every node is binned into equal-width bins over a
fixed range, and mutual information is the plug-in estimate from the counts, in bits:

.. math::

    EI(L_1 \to L_2) = I(L_1; L_2)\ |\ do(L_1 = H^{max})
    \qquad\text{(vector EI: whole input vector vs whole output vector)}

    EI_{parts} = \sum_{(A, B)} I(t_A; t_B)\ |\ do(L_1 = H^{max})
    \qquad\text{(all inputs noised together)}

    \mathrm{sensitivity} = \sum_{(A, B)} I(t_A; t_B)\ |\ do(A = H^{max}),\ do(L_1 \setminus A = 0)

    \mathrm{degeneracy} = \mathrm{sensitivity} - EI, \qquad \phi = EI - EI_{parts}

The sums run over the edges of the layer (every input-output pair of a Linear layer;
the pairs inside the receptive fields of a Conv2d layer). The *causal plane* places a
layer at (sensitivity, degeneracy); the line degeneracy = sensitivity is EI = 0.

How it is computed (no Python loop over samples, edges or pairs):

* **Noise in blocks.** Samples are drawn in chunks of ``CHUNK`` rows, each chunk from
  its own generator seeded by ``(seed, stream, chunk index)``, and grouped into blocks
  that fit ``memory_budget``. The samples therefore do not depend on the block size:
  streaming 10^7 samples through small blocks gives exactly the counts of one big block,
  and ``samples=n`` uses the first ``n`` samples of ``samples=2n``.
* **EI_parts**: the joint counts of all input-output pairs of a block are one int8
  one-hot matrix product (the counting of :func:`nifkit.info.pairwise_mi`), accumulated over
  blocks; MI of all pairs from the counts at once (:func:`nifkit.info.mi_from_counts`).
* **Vector EI**: the codes of all inputs and of all outputs are packed into one 64-bit
  key per sample; joint states are counted with ``torch.unique`` per block and merged.
  The estimate needs the joint state space ``in_bins**n_in * out_bins**n_out`` to fit in
  63 bits (and, to mean anything, far more samples than ``in_bins**n_in`` input states):
  it is realistic for small layers only. Wider layers raise a clear error (or, in
  :func:`model_ei` by default, are reported as NaN with a note) - use EI_parts there,
  as the paper does.
* **Sensitivity**: with only input ``A`` noised and the others at 0, output ``B`` is
  ``g(W[B, A] x + b_B)``, a function of ``x = t_A`` alone. For a monotone activation the
  output bin is a step function of ``x``: output code ``>= v`` exactly when ``x`` is past
  the threshold ``(g^{-1}(e_v) - b_B) / W[B, A]`` (``e_v`` the bin edges,
  ``g^{-1}(e) = inf{z : g(z) >= e}`` found by bisection). So each input's noise run is
  sorted once and the counts of *every* edge come from one batched ``searchsorted`` of
  the thresholds: no forward pass at all. Non-monotone activations (GELU, SiLU, custom
  callables) evaluate ``g(W[B, A] x_A + b_B)`` for all edges as one broadcast tensor op
  per block and count with one ``bincount``. Both give the same counts (up to samples
  within float rounding of a bin edge).

The layer is evaluated in float64, so rounding never moves a value across a bin edge
(deep-ei evaluates in float32, where ``sigmoid(z)`` is exactly 0.5 - an edge of 8 bins
on (0, 1) - for ``|z|`` below about 6e-8; at small initial weights that shows up as
spurious sensitivity). Binning follows :class:`nifkit.info.Binner`'s ``method="fixed"`` rule: ``code =
floor((v - lo) / (hi - lo) * bins)``, values outside the range fall into the edge bins
(``deep-ei`` instead drops a pair's out-of-range samples; with the default sigmoid and
(0, 1) nothing is out of range). ``out_range="fit"`` fits each output neuron's range to
what its activation can reach under the noise.

Plug-in MI is biased upward: an independent pair with ``Bx x By`` cells shows about
``(Bx-1)(By-1) / (2 n ln 2)`` bits, and EI_parts sums that over every edge (see
``LayerEI.bias_parts``). The bias falls as ``1/n``; ``samples="auto"`` doubles the sample
until the estimate changes by less than ``threshold`` (relative), as deep-ei does.
"""
from __future__ import annotations

import copy
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import check_finite, check_n_samples, resolve_device, to_numpy
from .config import DEFAULT_MEMORY_BUDGET
from .info import mi_from_counts
from .info.pairwise import _inner_counts, _marginal_counts

__all__ = [
    "LayerEI",
    "ModelEI",
    "CausalHistory",
    "EdgeAblation",
    "layer_ei",
    "model_ei",
    "ei_over_training",
    "edge_ablation",
    "ablate_edges",
    "measured_layers",
    "identity_ei",
    "check_edge_sensitivity",
    "CHUNK",
]

LN2 = math.log(2.0)
#: rows of noise drawn from one seeded generator; blocks are whole numbers of chunks
CHUNK = 4096
_MAX_KEY_BITS = 62
_STREAM_NOISE, _STREAM_SENS, _STREAM_PILOT = 0, 1, 2
MEASURES = ("ei", "ei_parts", "sensitivity")


# ----------------------------------------------------------------------------- activations
@dataclass(frozen=True)
class _Act:
    name: str
    fn: Callable
    monotone: bool  # non-decreasing, so output bins are step functions of the input


def _identity(z):
    return z


_MONOTONE_MODULES = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardsigmoid, nn.Softplus,
                     nn.SELU, nn.Identity, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink)
_OTHER_ELEMENTWISE = (nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softshrink, nn.Hardshrink)
_NAMED = {
    "sigmoid": (torch.sigmoid, True),
    "tanh": (torch.tanh, True),
    "relu": (torch.relu, True),
    "identity": (_identity, True),
    "linear": (_identity, True),
    "leaky_relu": (F.leaky_relu, True),
    "elu": (F.elu, True),
    "softplus": (F.softplus, True),
    "gelu": (F.gelu, False),
    "silu": (F.silu, False),
}
_MONOTONE_FUNCS = {torch.sigmoid: "sigmoid", torch.tanh: "tanh", torch.relu: "relu", F.relu: "relu",
                   F.sigmoid: "sigmoid", F.tanh: "tanh"}


def _resolve_activation(act) -> _Act:
    """None / name / elementwise nn.Module / callable -> _Act."""
    if act is None:
        return _Act("identity", _identity, True)
    if isinstance(act, str):
        key = act.lower()
        if key not in _NAMED:
            raise ValueError(f"activation must be one of {sorted(_NAMED)}, an elementwise nn.Module or a "
                             f"callable; got {act!r}")
        fn, mono = _NAMED[key]
        return _Act(key, fn, mono)
    if isinstance(act, type) and issubclass(act, nn.Module):
        act = act()
    if isinstance(act, nn.Module):
        name = type(act).__name__
        if isinstance(act, nn.LeakyReLU):
            return _Act(name, act, act.negative_slope >= 0)
        if isinstance(act, (nn.ELU, nn.CELU)):
            return _Act(name, act, act.alpha >= 0)
        if isinstance(act, nn.PReLU):
            return _Act(name, act, bool((act.weight.detach() >= 0).all()))
        if isinstance(act, _MONOTONE_MODULES):
            return _Act(name, act, True)
        if isinstance(act, _OTHER_ELEMENTWISE):
            return _Act(name, act, False)
        raise TypeError(f"activation {name} is not a supported elementwise activation; EI treats each output "
                        "unit as a node, so the activation must act on each unit alone (Sigmoid, Tanh, ReLU, "
                        "GELU, ...). Softmax-like layers couple units: measure the layer before them.")
    if callable(act):
        if act in _MONOTONE_FUNCS:
            name = _MONOTONE_FUNCS[act]
            return _Act(name, act, True)
        return _Act(getattr(act, "__name__", "callable"), act, False)
    raise TypeError(f"activation must be None, a name, an nn.Module or a callable; got {type(act).__name__}")


def _z_thresholds(act: _Act, edges: torch.Tensor) -> torch.Tensor:
    """``inf{z : g(z) >= e}`` for every edge value ``e`` (float64), by bisection;
    ``-inf`` when every z qualifies, ``+inf`` when none does. ``g`` non-decreasing."""
    e = edges.to(torch.float64)
    big = 1e6
    lo = torch.full_like(e, -big)
    hi = torch.full_like(e, big)
    with torch.no_grad():
        all_ok = act.fn(lo) >= e
        none_ok = act.fn(hi) < e
        for _ in range(90):  # 2e6 / 2**90: far below float64 resolution
            mid = 0.5 * (lo + hi)
            ok = act.fn(mid) >= e
            hi = torch.where(ok, mid, hi)
            lo = torch.where(ok, lo, mid)
    t = hi.clone()
    t[all_ok] = -math.inf
    t[none_ok] = math.inf
    return t


# ----------------------------------------------------------------------------- layers
@dataclass
class _Layer:
    name: str
    weight: torch.Tensor  # (n_out, n_in) float64 on device
    bias: torch.Tensor  # (n_out,) float64 (zeros when the layer has none)
    act: _Act
    kind: str
    edge_mask: torch.Tensor | None  # (n_in, n_out) bool; None = every pair is an edge
    in_shape: tuple
    out_shape: tuple

    def __post_init__(self):
        # the layer is evaluated in float64: rounding never moves a value across a bin edge
        self.weight = self.weight.to(torch.float64)
        self.bias = self.bias.to(torch.float64)

    @property
    def n_in(self):
        return self.weight.shape[1]

    @property
    def n_out(self):
        return self.weight.shape[0]


def _check_weight(w: torch.Tensor, name: str):
    arr = w.detach().cpu().numpy()
    check_finite(arr, f"the weights of layer {name!r}")


def _conv_dense(conv: nn.Conv2d, input_shape):
    """Dense ``(n_out, n_in)`` matrix, bias and edge mask of a Conv2d on one input shape."""
    if conv.padding_mode != "zeros":
        raise TypeError(f"Conv2d with padding_mode={conv.padding_mode!r} is not supported (only 'zeros')")
    w = conv.weight.detach().double().cpu()
    if input_shape is None:  # one receptive field, as deep-ei measures a convolution
        kh = conv.dilation[0] * (conv.kernel_size[0] - 1) + 1
        kw = conv.dilation[1] * (conv.kernel_size[1] - 1) + 1
        input_shape, padding = (conv.in_channels, kh, kw), 0
    else:
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) == 4:
            input_shape = input_shape[1:]
        if len(input_shape) != 3 or input_shape[0] != conv.in_channels:
            raise ValueError(f"input_shape for a Conv2d must be (channels={conv.in_channels}, H, W), "
                             f"got {input_shape}")
        padding = conv.padding
    n_in = int(np.prod(input_shape))
    if n_in > 20000:
        raise ValueError(f"Conv2d input of {n_in} units is too large to measure edge by edge; pass a smaller "
                         "input_shape (e.g. one receptive field: input_shape=None)")
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *input_shape)
    kw = dict(stride=conv.stride, padding=padding, dilation=conv.dilation, groups=conv.groups)
    out = F.conv2d(basis, w, None, **kw)
    out_shape = tuple(out.shape[1:])
    dense = out.reshape(n_in, -1).T.contiguous()
    mask = F.conv2d(basis, torch.ones_like(w), None, **kw).reshape(n_in, -1) != 0
    if conv.bias is not None:
        bias = conv.bias.detach().double().cpu().repeat_interleave(out_shape[1] * out_shape[2])
    else:
        bias = torch.zeros(dense.shape[0], dtype=torch.float64)
    return dense, bias, mask, tuple(input_shape), out_shape


def _as_layer(layer, activation=None, bias=None, input_shape=None, name="layer", device=None) -> _Layer:
    """Accept nn.Linear, nn.Conv2d, nn.Sequential(layer, activation), a weight matrix
    ``(n_out, n_in)`` or a tuple ``(weight, bias)``."""
    dev = resolve_device(device)
    if isinstance(layer, nn.Sequential):
        mods = [m for m in layer.children()]
        if len(mods) == 2 and isinstance(mods[0], (nn.Linear, nn.Conv2d)):
            if activation is not None:
                raise ValueError("layer is a Sequential(layer, activation); do not pass activation= as well")
            return _as_layer(mods[0], mods[1], bias, input_shape, name, device)
        if len(mods) == 1:
            return _as_layer(mods[0], activation, bias, input_shape, name, device)
        raise TypeError("an nn.Sequential layer must be (Linear or Conv2d, activation); for whole models use "
                        "model_ei(model)")
    act = _resolve_activation(activation)
    mask = None
    if isinstance(layer, nn.Linear):
        if bias is not None:
            raise ValueError("bias= is only for weight matrices; an nn.Linear has its own bias")
        w = layer.weight.detach().double().cpu()
        b = layer.bias.detach().double().cpu() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        kind, in_shape, out_shape = "linear", (w.shape[1],), (w.shape[0],)
    elif isinstance(layer, nn.Conv2d):
        _check_weight(layer.weight, name)
        w, b, mask, in_shape, out_shape = _conv_dense(layer, input_shape)
        kind = "conv2d"
    elif isinstance(layer, (torch.Tensor, np.ndarray)) or (isinstance(layer, tuple) and len(layer) == 2):
        if isinstance(layer, tuple):
            if bias is not None:
                raise ValueError("pass the bias either in the tuple (weight, bias) or as bias=, not both")
            layer, bias = layer
        w = torch.as_tensor(to_numpy(layer, "weight"), dtype=torch.float64)
        if w.ndim != 2:
            raise ValueError(f"a weight matrix must be 2-D (n_out, n_in), got shape {tuple(w.shape)}")
        b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else torch.as_tensor(to_numpy(bias, "bias"),
                                                                         dtype=torch.float64).reshape(-1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"bias has {b.shape[0]} entries but the weight matrix has {w.shape[0]} outputs")
        kind, in_shape, out_shape = "matrix", (w.shape[1],), (w.shape[0],)
    else:
        raise TypeError(f"unsupported layer type {type(layer).__name__}: layer_ei measures nn.Linear, nn.Conv2d "
                        "(each output unit a node), nn.Sequential(layer, activation), a weight matrix "
                        "(n_out, n_in) or a tuple (weight, bias)")
    if w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"layer {name!r} has no inputs or no outputs (weight shape {tuple(w.shape)})")
    check_finite(w.numpy(), f"the weights of layer {name!r}")
    check_finite(b.numpy(), f"the bias of layer {name!r}")
    return _Layer(name, w.to(dev), b.to(dev), act, kind, None if mask is None else mask.to(dev),
                  tuple(in_shape), tuple(out_shape))


# ----------------------------------------------------------------------------- settings
def _check_range(r, what):
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (lo, hi), got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        raise ValueError(f"{what} must be finite with hi > lo (a non-empty range), got {r!r}")
    return lo, hi


def _check_bins(bins):
    if isinstance(bins, (tuple, list)):
        if len(bins) != 2:
            raise ValueError(f"bins must be an int or a pair (in_bins, out_bins), got {bins!r}")
        bi, bo = bins
    else:
        bi = bo = bins
    for v in (bi, bo):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 2:
            raise ValueError(f"bins must be integers >= 2, got {bins!r}")
        if v > 256:
            raise ValueError(f"bins must be at most 256, got {bins!r}")
    return int(bi), int(bo)


def _check_samples(samples, what, bi, bo):
    if isinstance(samples, str):
        if samples != "auto":
            raise ValueError(f"{what} must be a positive integer or 'auto', got {samples!r}")
        return samples
    if not isinstance(samples, (int, np.integer)) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"{what} must be a positive integer or 'auto', got {samples!r}")
    check_n_samples(int(samples), bi * bo, f"{what} with {bi} x {bo} bins per edge")
    return int(samples)


def _seed_for(seed, stream, chunk):
    return int(np.random.SeedSequence([int(seed) % 2**63, stream, chunk]).generate_state(1, np.uint64)[0] >> 1)


class _Noise:
    """Deterministic uniform noise, chunk by chunk: sample ``i`` depends only on
    ``(seed, stream, i)``, never on how samples are grouped into blocks.

    ``sampling="grid"`` stratifies: sample ``i`` lies in the input bin cell ``i mod
    cells`` (all inputs' cells enumerated in mixed radix), uniformly within the cell, so
    every cell gets the same number of samples when ``n`` is a multiple of ``cells``.
    With ``per_column=True`` (sensitivity) each column is stratified on its own axis.
    """

    def __init__(self, n_cols, lo, hi, bins, seed, stream, device, sampling="uniform", per_column=False):
        self.n_cols, self.lo, self.hi, self.bins = n_cols, lo, hi, bins
        self.seed, self.stream, self.dev = seed, stream, device
        self.sampling, self.per_column = sampling, per_column

    def block(self, start, stop):
        """Rows ``start:stop`` of the noise, float64 ``(rows, n_cols)``, and their input
        codes ``0..bins-1`` (uint8)."""
        rows = stop - start
        u = torch.empty(rows, self.n_cols, dtype=torch.float64, device=self.dev)
        for c in range(start // CHUNK, (stop - 1) // CHUNK + 1):  # loop over chunks of samples
            g = torch.Generator(device=self.dev)
            g.manual_seed(_seed_for(self.seed, self.stream, c))
            a, b = max(start, c * CHUNK), min(stop, (c + 1) * CHUNK)
            if a == c * CHUNK and b == (c + 1) * CHUNK:
                torch.rand(CHUNK, self.n_cols, generator=g, dtype=torch.float64, out=u[a - start:b - start])
            else:
                full = torch.rand(CHUNK, self.n_cols, generator=g, dtype=torch.float64, device=self.dev)
                u[a - start:b - start] = full[a - c * CHUNK:b - c * CHUNK]
        w = self.hi - self.lo
        if self.sampling == "grid":
            idx = torch.arange(start, stop, device=self.dev, dtype=torch.int64)
            if self.per_column:
                digits = (idx % self.bins)[:, None].expand(-1, self.n_cols)
            else:
                powers = self.bins ** torch.arange(self.n_cols, device=self.dev, dtype=torch.int64)
                digits = (idx[:, None] // powers[None, :]) % self.bins
            x = u.add_(digits).mul_(w / self.bins).add_(self.lo)
            codes = digits.to(torch.uint8)
        else:
            # the code is the bin of u; x = lo + w u is monotone in u, so codes are monotone in x
            t = u.mul_(self.bins)
            codes = t.to(torch.uint8).clamp_(max=self.bins - 1)  # t >= 0: truncation is the floor
            x = torch.add(self.lo, t, alpha=w / self.bins, out=t)
        return x, codes


def _out_codes(y, lo, hi, bins, inplace=False):
    """Per-neuron equal-width codes (uint8) of ``y (rows, n_out)``; ``lo``, ``hi``
    ``(n_out,)``: ``floor((y - lo) / (hi - lo) * bins)`` clamped to ``0..bins-1`` (a
    constant neuron, ``hi == lo``, is code 0). ``inplace=True`` overwrites ``y``."""
    width = hi - lo
    scale = torch.where(width > 0, bins / torch.where(width > 0, width, 1.0), torch.zeros_like(width))
    t = torch.addcmul(-lo * scale, y, scale, out=y if inplace else None).clamp_(0, bins - 1)
    return t.to(torch.uint8)  # after clamping to [0, bins - 1], truncation is the floor


def _fit_out_range(layer: _Layer, in_lo, in_hi, seed, dev):
    """Per-output ranges ``(lo, hi)`` reachable under the all-input noise."""
    w = layer.weight.to(torch.float64)
    b = layer.bias.to(torch.float64)
    if layer.act.monotone:
        zmin = b + torch.minimum(w * in_lo, w * in_hi).sum(1)
        zmax = b + torch.maximum(w * in_lo, w * in_hi).sum(1)
        with torch.no_grad():
            return layer.act.fn(zmin), layer.act.fn(zmax)
    noise = _Noise(layer.n_in, in_lo, in_hi, 2, seed, _STREAM_PILOT, dev)
    x, _ = noise.block(0, 4 * CHUNK)
    with torch.no_grad():
        y = layer.act.fn(torch.addmm(layer.bias, x, layer.weight.T))
    return y.min(0).values, y.max(0).values


#: blocks use at most this many bytes of temporaries (and never more than memory_budget):
#: moderate blocks stay closer to the caches and are faster than huge ones
_BLOCK_BYTES = 128 * 2**20


def _rows_per_block(bytes_per_row, budget):
    rows = int(min(budget, _BLOCK_BYTES) // max(1, bytes_per_row))
    return max(CHUNK, rows // CHUNK * CHUNK)


# ----------------------------------------------------------------------------- counting
def _pair_counts(xc, yc, bi, bo):
    """Joint counts ``(n_in, bi, n_out, bo)`` (float64, exact) of every input-output pair
    of a block of uint8 codes ``xc (S, n_in)``, ``yc (S, n_out)``.

    One one-hot matrix product ``O_x^T O_y`` counts all pairs at once: the core's
    counting (``nifkit.info.pairwise``), as in :func:`nifkit.info.pairwise_mi`. Only the first ``bi - 1`` input bins and
    ``bo - 1`` output bins go into the product (a quarter less work with 8 bins): each
    sample has exactly one code per node, so the last row and column of every pair's
    table follow from the marginal counts.
    """
    n_in, n_out = xc.shape[1], yc.shape[1]
    inner = _inner_counts(xc, yc, bi, bo).to(torch.float64)  # (n_in, bi-1, n_out, bo-1)
    cin = _marginal_counts(xc, bi)  # (n_in, bi)
    cout = _marginal_counts(yc, bo)  # (n_out, bo)
    joint = torch.empty(n_in, bi, n_out, bo, dtype=torch.float64, device=xc.device)
    joint[:, :-1, :, :-1] = inner
    joint[:, :-1, :, -1] = cin[:, :-1, None] - inner.sum(3)
    joint[:, -1, :, :] = cout[None, :, :] - joint[:, :-1, :, :].sum(1)
    return joint


class _AllNoiseCounts:
    """Counts of the all-inputs-noised run: pair tables for EI_parts and the packed
    joint-state table for vector EI. ``update`` adds one block."""

    def __init__(self, layer, bi, bo, out_lo, out_hi, parts, vector, dev, in_lo=0.0, in_hi=1.0,
                 budget=DEFAULT_MEMORY_BUDGET):
        self.budget = budget
        self.layer, self.bi, self.bo, self.lo, self.hi = layer, bi, bo, out_lo, out_hi
        self.parts, self.vector, self.dev = parts, vector, dev
        self.n = 0
        self.out_of_range = 0
        self.check_range = True
        if layer.act.monotone:  # the reachable range is known: count only if it can leave the bins
            rlo, rhi = _fit_out_range(layer, in_lo, in_hi, None, dev)
            self.check_range = bool(((rlo < out_lo) | (rhi > out_hi)).any())
        if parts:
            self.joint = torch.zeros(layer.n_in, bi, layer.n_out, bo, dtype=torch.float64, device=dev)
        if vector:
            self.pow_in = bi ** torch.arange(layer.n_in, device=dev, dtype=torch.int64)
            self.pow_out = bo ** torch.arange(layer.n_out, device=dev, dtype=torch.int64)
            self.k_out = bo ** layer.n_out
            self.keys = torch.zeros(0, dtype=torch.int64, device=dev)
            self.kcounts = torch.zeros(0, dtype=torch.int64, device=dev)
            self.pending = []
            self.pending_size = 0

    def bytes_per_row(self):
        n_in, n_out = self.layer.n_in, self.layer.n_out
        b = 8 * n_in * 3 + 8 * n_out * 4 + 64
        if self.parts:
            b += 2 * n_in * self.bi + n_out * self.bo + 9 * (n_in + n_out)
        if self.vector:
            b += 48
        return b

    def update(self, x, xc):
        lay = self.layer
        with torch.no_grad():
            y = lay.act.fn(torch.addmm(lay.bias, x, lay.weight.T))
        if self.check_range:
            self.out_of_range += int(((y < self.lo) | (y > self.hi)).sum())
        yc = _out_codes(y, self.lo, self.hi, self.bo, inplace=True)
        del y
        if self.parts:
            self.joint += _pair_counts(xc, yc, self.bi, self.bo)
        if self.vector:
            key = _pack(xc, self.pow_in) * self.k_out + _pack(yc, self.pow_out)
            self.pending.append(key)
            self.pending_size += len(key)
            if self.pending_size * 8 * 4 > min(self.budget, _BLOCK_BYTES):  # fold raw keys into the table
                self._merge()
        self.n += len(x)

    def _merge(self):
        """Fold the raw keys of the pending blocks into the (key, count) table."""
        if not self.pending:
            return
        raw = self.pending[0] if len(self.pending) == 1 else torch.cat(self.pending)
        self.pending, self.pending_size = [], 0
        k, c = _unique_counts(raw)
        del raw
        if len(self.keys) == 0:
            self.keys, self.kcounts = k, c
            return
        keys, inv = _unique_inverse(torch.cat([self.keys, k]))
        self.kcounts = torch.zeros(len(keys), dtype=torch.int64, device=self.dev).index_add_(
            0, inv, torch.cat([self.kcounts, c]))
        self.keys = keys

    @property
    def count_in(self):  # every sample has one code per input: any output's table gives the marginal
        return self.joint[:, :, 0, :].sum(2)

    @property
    def count_out(self):
        return self.joint[0].sum(0)

    def edge_mi(self):
        joint = self.joint.permute(0, 2, 1, 3)
        # plug-in MI is >= 0; clamp the float rounding of log2(n) - S/n (about 1e-14)
        return mi_from_counts(joint, self.count_in[:, None, :], self.count_out[None, :, :], self.n).clamp_(min=0)

    def vector_mi(self):
        self._merge()
        n = float(self.kcounts.sum())

        def h(counts):
            c = counts.to(torch.float64)
            return math.log2(n) - float(torch.special.xlogy(c, c).sum()) / (n * LN2)

        hx = h(_group_counts(self.keys // self.k_out, self.kcounts, self.bi ** self.layer.n_in))
        hy = h(_group_counts(self.keys % self.k_out, self.kcounts, self.k_out))
        return max(0.0, hx + hy - h(self.kcounts))


def _sort_rows(a):
    """Each row sorted (numpy's vectorised sort is several times faster than torch's on CPUs)."""
    a = a.contiguous() if a.device.type != "cpu" else a.clone(memory_format=torch.contiguous_format)
    if a.device.type == "cpu":
        arr = a.numpy()
        arr.sort(axis=1)  # in place, on our own contiguous copy
        return a
    return torch.sort(a, dim=1).values


def _unique_counts(keys):
    """Distinct values and their counts (numpy's sort is much faster than torch's on CPUs)."""
    if keys.device.type == "cpu":
        k, c = np.unique(keys.numpy(), return_counts=True)
        return torch.from_numpy(k), torch.from_numpy(c.astype(np.int64))
    return torch.unique(keys, return_counts=True)


def _unique_inverse(keys):
    if keys.device.type == "cpu":
        k, inv = np.unique(keys.numpy(), return_inverse=True)
        return torch.from_numpy(k), torch.from_numpy(inv.reshape(-1).astype(np.int64))
    return torch.unique(keys, return_inverse=True)


def _pack(codes, powers):
    """Mixed-radix int64 key of each row of uint8 ``codes``: ``sum_i codes[:, i] * powers[i]``."""
    if int(powers[-1]) < 2**45:  # bins <= 256, so every key < 2**53: one float64 product is exact
        return torch.mv(codes.to(torch.float64), powers.to(torch.float64)).to(torch.int64)
    return (codes.to(torch.int64) * powers).sum(1)


def _group_counts(keys, counts, n_keys=None):
    if n_keys is not None and n_keys <= 2**26:  # small key space: one bincount, no sort
        return torch.bincount(keys, weights=counts.to(torch.float64), minlength=n_keys)
    _, inv = _unique_inverse(keys)
    return torch.zeros(int(inv.max()) + 1, dtype=torch.int64, device=keys.device).index_add_(0, inv, counts)


class _SensitivityCounts:
    """Edge counts of the one-input-at-a-time run. Column ``A`` of a noise block is
    input ``A``'s own noise run (the other inputs held at 0)."""

    def __init__(self, layer, bi, bo, out_lo, out_hi, method, dev, budget):
        self.layer, self.bi, self.bo, self.lo, self.hi = layer, bi, bo, out_lo, out_hi
        self.dev, self.budget = dev, budget
        self.n = 0
        self.joint = torch.zeros(layer.n_in, layer.n_out, bi, bo, dtype=torch.float64, device=dev)
        if method == "auto":
            method = "threshold" if layer.act.monotone else "dense"
        if method == "threshold" and not layer.act.monotone:
            raise ValueError(f"method='threshold' needs a monotone activation; {layer.act.name} is not. "
                             "Use method='dense'.")
        if method not in ("threshold", "dense"):
            raise ValueError(f"method must be 'auto', 'threshold' or 'dense', got {method!r}")
        self.method = method
        if method == "threshold":
            self._prepare_thresholds()

    def _prepare_thresholds(self):
        lay, bo = self.layer, self.bo
        v = torch.arange(1, bo, device=self.dev, dtype=torch.float64)
        lo, hi = self.lo.to(torch.float64), self.hi.to(torch.float64)
        edges = lo[:, None] + (hi - lo)[:, None] * v[None, :] / bo  # (n_out, bo-1)
        t = _z_thresholds(lay.act, edges)
        t[(hi - lo) <= 0] = math.inf  # a constant neuron stays in bin 0
        w = lay.weight.to(torch.float64).T[:, :, None]  # (n_in, n_out, 1)
        b = lay.bias.to(torch.float64)[None, :, None]
        safe_w = torch.where(w != 0, w, torch.ones_like(w))
        self.thr = ((t[None] - b) / safe_w).reshape(lay.n_in, -1)  # (n_in, n_out*(bo-1))
        self.sign = torch.sign(w).expand(-1, -1, bo - 1).reshape(lay.n_in, -1)
        self.zero_all = (b >= t[None]).expand(lay.n_in, -1, -1).reshape(lay.n_in, -1)

    def bytes_per_row(self):
        n_in, n_out = self.layer.n_in, self.layer.n_out
        if self.method == "threshold":
            return 8 * n_in * 5
        return 8 * n_in * 3 + 40 * n_in * n_out

    def update(self, x, xc):
        if self.method == "threshold":
            self._update_threshold(x, xc)
        else:
            self._update_dense(x, xc)
        self.n += len(x)

    def _update_threshold(self, x, xc):
        lay, bi, bo = self.layer, self.bi, self.bo
        s = len(x)
        xs = _sort_rows(x.T)  # (n_in, s)
        cnt = _marginal_counts(xc, bi).to(torch.int64)  # (n_in, bi)
        q = torch.cat([torch.zeros(lay.n_in, 1, dtype=torch.int64, device=self.dev), cnt.cumsum(1)], 1)
        left = torch.searchsorted(xs, self.thr, side="left")
        right = torch.searchsorted(xs, self.thr, side="right")
        full = torch.full_like(left, s)
        zero = torch.zeros_like(left)
        # samples whose output code is >= v form an interval [lo_pos, hi_pos) of the sorted run
        lo_pos = torch.where(self.sign > 0, left, zero)
        hi_pos = torch.where(self.sign > 0, full, torch.where(self.sign < 0, right, torch.where(self.zero_all, full, zero)))
        lo_pos = lo_pos.reshape(lay.n_in, lay.n_out, 1, bo - 1)
        hi_pos = hi_pos.reshape(lay.n_in, lay.n_out, 1, bo - 1)
        qa = q[:, None, :-1, None]
        qb = q[:, None, 1:, None]
        ge = (torch.minimum(qb, hi_pos) - torch.maximum(qa, lo_pos)).clamp_(min=0)  # (n_in, n_out, bi, bo-1)
        tot = (qb - qa).expand(-1, lay.n_out, -1, -1)
        ge = torch.cat([tot, ge, torch.zeros_like(tot)], dim=3)
        self.joint += (ge[..., :-1] - ge[..., 1:]).to(torch.float64)

    def _update_dense(self, x, xc):
        lay, bi, bo = self.layer, self.bi, self.bo
        s = len(x)
        wt = lay.weight.T  # (n_in, n_out)
        per_col = max(1, int(self.budget // max(1, 40 * s * lay.n_out)))
        b_idx = torch.arange(lay.n_out, device=self.dev)
        for a0 in range(0, lay.n_in, per_col):  # loop over blocks of inputs
            a1 = min(lay.n_in, a0 + per_col)
            with torch.no_grad():
                y = lay.act.fn(x[:, a0:a1, None] * wt[None, a0:a1, :] + lay.bias)
            yc = _out_codes(y, self.lo, self.hi, bo)
            del y
            a_idx = torch.arange(a1 - a0, device=self.dev)
            cell = (a_idx[:, None] * lay.n_out + b_idx[None, :])[None] * (bi * bo)
            idx = cell + xc[:, a0:a1, None].to(torch.int64) * bo + yc.to(torch.int64)
            cnt = torch.bincount(idx.reshape(-1), minlength=(a1 - a0) * lay.n_out * bi * bo)
            self.joint[a0:a1] += cnt.reshape(a1 - a0, lay.n_out, bi, bo).to(torch.float64)

    def edge_mi(self):
        return mi_from_counts(self.joint, self.joint.sum(3), self.joint.sum(2), self.n).clamp_(min=0)


def _drive(noise, counter, samples, block_rows, estimate, auto, progress_cb, what):
    """Stream noise blocks into ``counter`` until ``samples`` (int) or, for ``"auto"``,
    until the estimates stop moving. Returns the trace ``[(n, estimates), ...]``."""
    trace = []
    if samples == "auto":
        start, max_n, thr, atol = auto["start"], auto["max_samples"], auto["threshold"], auto["atol"]
        targets = []
        t = start
        while t < max_n:
            targets.append(t)
            t *= 2
        targets.append(max_n)
    else:
        targets = [samples]
    done = 0
    total = targets[-1]
    for i, target in enumerate(targets):
        while done < target:
            stop = min(target, done + block_rows)
            x, xc = noise.block(done, stop)
            counter.update(x, xc)
            del x, xc
            done = stop
            if progress_cb is not None:
                progress_cb(done, total, what)
        est = estimate()
        trace.append((done, est))
        if samples == "auto" and i > 0:
            prev = trace[-2][1]
            if all(abs(est[k] - prev[k]) <= max(thr * abs(est[k]), atol) for k in est):
                break
    else:
        if samples == "auto" and len(trace) > 1:
            warnings.warn(f"{what}: not stable after max_samples={done} samples (last change "
                          f"{max(abs(trace[-1][1][k] - trace[-2][1][k]) for k in trace[-1][1]):.3g} bits); "
                          "raise max_samples or use fewer bins", stacklevel=4)
    return trace


# ----------------------------------------------------------------------------- results
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
    bins: tuple
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
        which = _which(which, [self])
        return self.sensitivity, (self.degeneracy if which == "ei" else self.degeneracy_parts)

    def __repr__(self) -> str:
        def f(v):
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

        return (f"LayerEI({self.name}: {self.n_inputs}->{self.n_outputs} {self.activation}, EI={f(self.ei)}, "
                f"EI_parts={f(self.ei_parts)}, sensitivity={f(self.sensitivity)}, degeneracy={f(self.degeneracy)}, "
                f"phi={f(self.phi)} bits; {self.n_samples} samples, {self.bins[0]}x{self.bins[1]} bins)")


def _which(which, layers):
    if which not in ("auto", "ei", "parts"):
        raise ValueError(f"which must be 'auto', 'ei' or 'parts', got {which!r}")
    if which == "auto":
        return "ei" if all(not math.isnan(lay.ei) for lay in layers) else "parts"
    return which


@dataclass(repr=False)
class ModelEI:
    """EI measures of every measured layer of a model, by layer name."""

    layers: "OrderedDict[str, LayerEI]"

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


# ----------------------------------------------------------------------------- main entry
def layer_ei(layer, activation=None, *, bias=None, input_shape=None, name: str = "layer",
             in_range=(0.0, 1.0), out_range="default", bins=8, samples=100_000, sensitivity_samples=5000,
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
    bins : bins per node, or ``(in_bins, out_bins)`` (paper: 8).
    samples : noise samples for vector EI and EI_parts, or ``"auto"``.
    sensitivity_samples : noise samples *per input* for the sensitivity, or ``"auto"``.
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
    from .runtime import cpu_threads

    dev = resolve_device(device)
    with cpu_threads(num_threads, dev):
        return _layer_ei(layer, activation, bias, input_shape, name, in_range, out_range, bins, samples,
                         sensitivity_samples, measures, sampling, sensitivity_method, threshold, atol, auto_start,
                         max_samples, memory_budget, dev, seed, progress, keep_counts)


def _layer_ei(layer, activation, bias, input_shape, name, in_range, out_range, bins, samples, sensitivity_samples,
              measures, sampling, sensitivity_method, threshold, atol, auto_start, max_samples, memory_budget, dev,
              seed, progress, keep_counts) -> LayerEI:
    lay = _as_layer(layer, activation, bias, input_shape, name, dev)
    bi, bo = _check_bins(bins)
    in_lo, in_hi = _check_range(in_range, "in_range")
    measures = _check_measures(measures)
    if sampling not in ("uniform", "grid"):
        raise ValueError(f"sampling must be 'uniform' or 'grid', got {sampling!r}")
    if not (isinstance(memory_budget, (int, float)) and memory_budget > 0):
        raise ValueError("memory_budget must be a positive number of bytes")
    samples = _check_samples(samples, "samples", bi, bo)
    sensitivity_samples = _check_samples(sensitivity_samples, "sensitivity_samples", bi, bo)
    auto = dict(start=int(auto_start), max_samples=int(max_samples), threshold=float(threshold), atol=float(atol))
    if samples == "auto" or sensitivity_samples == "auto":
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
        out_lo, out_hi = _fit_out_range(lay, in_lo, in_hi, seed, dev)
        out_lo, out_hi = out_lo.to(torch.float64), out_hi.to(torch.float64)
        range_desc = np.stack([out_lo.cpu().numpy(), out_hi.cpu().numpy()], 1)
    else:
        lo, hi = _check_range(out_range, "out_range")
        out_lo = torch.full((lay.n_out,), lo, dtype=torch.float64, device=dev)
        out_hi = torch.full((lay.n_out,), hi, dtype=torch.float64, device=dev)
        range_desc = (lo, hi)

    # vector EI feasibility
    key_bits = lay.n_in * math.log2(bi) + lay.n_out * math.log2(bo)
    want_vector = "ei" in measures
    if want_vector and key_bits > _MAX_KEY_BITS:
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
    if want_vector and isinstance(samples, int) and samples < bi ** lay.n_in:
        notes.append(f"vector EI: {samples} samples for {bi}^{lay.n_in} input states; the plug-in estimate is "
                     f"capped near log2(samples) = {math.log2(samples):.1f} bits and biased")
    want_noise = want_vector or "ei_parts" in measures

    if sampling == "grid":
        cells = bi ** lay.n_in
        if want_noise:
            if samples == "auto" or samples % cells:
                raise ValueError(f"sampling='grid' needs samples to be a multiple of in_bins**n_in = {cells}, "
                                 f"got {samples}")
        if "sensitivity" in measures and (sensitivity_samples == "auto" or sensitivity_samples % bi):
            raise ValueError(f"sampling='grid' needs sensitivity_samples to be a multiple of in_bins = {bi}, "
                             f"got {sensitivity_samples}")

    cb = _progress_callback(progress)
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
            acc = _AllNoiseCounts(lay, bi, bo, out_lo, out_hi, "ei_parts" in measures, want_vector, dev, in_lo, in_hi,
                                 memory_budget)
            if "ei_parts" in measures and lay.n_in * bi * lay.n_out * bo * 8 * 3 > memory_budget:
                raise ValueError(f"the EI_parts count table of layer {name!r} ({lay.n_in} x {lay.n_out} edges, "
                                 f"{bi}x{bo} bins) does not fit memory_budget={memory_budget} bytes; raise the "
                                 "budget or measure a smaller layer / input_shape")
            noise = _Noise(lay.n_in, in_lo, in_hi, bi, seed, _STREAM_NOISE, dev, sampling)
            rows = _rows_per_block(acc.bytes_per_row(), memory_budget)

            def est_noise():
                out = {}
                if acc.parts:
                    m = acc.edge_mi()
                    out["ei_parts"] = float(m.sum() if mask_f is None else (m * mask_f).sum())
                if acc.vector:
                    out["ei"] = acc.vector_mi()
                return out

            trace = _drive(noise, acc, samples, rows, est_noise, auto, cb, f"EI of {name}")
            n_noise = acc.n
            out_of_range = acc.out_of_range / max(1, acc.n * lay.n_out)
            last = trace[-1][1]
            ei = last.get("ei", nan)
            if acc.parts:
                m = acc.edge_mi()
                if mask_f is not None:
                    m = m * mask_f
                edge_ei = m.cpu().numpy()
                ei_parts = float(edge_ei.sum())
                if keep_counts:
                    counts["joint"] = acc.joint.reshape(lay.n_in * bi, lay.n_out * bo).cpu().numpy()
                    counts["count_in"] = acc.count_in.cpu().numpy()
                    counts["count_out"] = acc.count_out.cpu().numpy()
            if acc.vector and keep_counts:
                acc._merge()
                counts["vector_keys"] = acc.keys.cpu().numpy()
                counts["vector_counts"] = acc.kcounts.cpu().numpy()
            del acc
        if "sensitivity" in measures:
            sacc = _SensitivityCounts(lay, bi, bo, out_lo, out_hi, sensitivity_method, dev, memory_budget)
            noise = _Noise(lay.n_in, in_lo, in_hi, bi, seed, _STREAM_SENS, dev, sampling, per_column=True)
            rows = _rows_per_block(sacc.bytes_per_row(), memory_budget)

            def est_sens():
                m = sacc.edge_mi()
                return {"sensitivity": float(m.sum() if mask_f is None else (m * mask_f).sum())}

            strace = _drive(noise, sacc, sensitivity_samples, rows, est_sens, auto, cb, f"sensitivity of {name}")
            n_sens = sacc.n
            m = sacc.edge_mi()
            if mask_f is not None:
                m = m * mask_f
            edge_sens = m.cpu().numpy()
            sens = float(edge_sens.sum())
            if keep_counts:
                counts["sensitivity_joint"] = sacc.joint.cpu().numpy()
            sens_method = sacc.method
        else:
            sens_method = ""
    finally:
        if cb is not None and hasattr(cb, "close"):
            cb.close()

    if out_of_range > 0.01:
        notes.append(f"{100 * out_of_range:.1f}% of output values fell outside out_range and were put in the edge "
                     "bins; consider out_range='fit'")
    mask_np = None if mask is None else mask.cpu().numpy()
    n_edges = int(mask_np.sum()) if mask_np is not None else lay.n_in * lay.n_out
    bias_parts = n_edges * (bi - 1) * (bo - 1) / (2 * n_noise * LN2) if n_noise else nan
    return LayerEI(
        name=name, ei=ei, ei_parts=ei_parts, edge_ei=edge_ei, sensitivity=sens, edge_sensitivity=edge_sens,
        degeneracy=sens - ei, degeneracy_parts=sens - ei_parts, phi=ei - ei_parts,
        n_samples=n_noise, n_sensitivity_samples=n_sens, bins=(bi, bo), in_range=(in_lo, in_hi),
        out_range=range_desc, activation=lay.act.name, n_inputs=lay.n_in, n_outputs=lay.n_out, kind=lay.kind,
        edge_mask=mask_np, out_of_range=out_of_range, bias_parts=bias_parts, sampling=sampling,
        sensitivity_method=sens_method, trace=trace, sensitivity_trace=strace, notes=notes,
        counts=counts if keep_counts else None,
    )


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


class _TqdmCallback:
    def __init__(self):
        self.bar = None
        self.what = None

    def __call__(self, done, total, what):
        from tqdm.auto import tqdm

        if self.bar is None or self.what != what:
            self.close()
            self.bar = tqdm(total=total, desc=what, unit="sample", unit_scale=True, leave=False)
            self.what = what
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _progress_callback(progress):
    if progress is True:
        return _TqdmCallback()
    if progress in (False, None):
        return None
    if callable(progress):
        return progress
    raise TypeError("progress must be True/False or a callable progress(done, total, what)")


# ----------------------------------------------------------------------------- models
_SKIP = (nn.Flatten, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
         nn.AdaptiveMaxPool2d, nn.MaxPool1d, nn.AvgPool1d, nn.Unflatten)
_ELEMENTWISE = _MONOTONE_MODULES + _OTHER_ELEMENTWISE + (nn.LeakyReLU, nn.ELU, nn.CELU, nn.PReLU)


def measured_layers(model: nn.Module, input_shape=None) -> "OrderedDict[str, tuple]":
    """The layers :func:`model_ei` measures: name -> ``(module, activation, conv_input_shape)``.

    Walks the model's leaf modules in registration order (a feedforward model, e.g. an
    ``nn.Sequential``). Each ``nn.Linear``/``nn.Conv2d`` is a layer; the elementwise
    activation right after it (if any) is its activation. Pooling, flattening and
    dropout between layers are fine (the next layer's input is set by intervention
    anyway). Any other module with parameters is an error: it would change what a layer
    computes. ``input_shape`` (of one model input, e.g. ``(1, 5, 5)``) lets convolutions
    be measured on their whole feature map; without it each is measured on one
    receptive field.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    conv_shapes = {}
    if input_shape is not None and any(isinstance(m, nn.Conv2d) for _, m in leaves):
        hooks = []
        try:
            for n, m in leaves:
                if isinstance(m, nn.Conv2d):
                    hooks.append(m.register_forward_hook(
                        lambda mod, inp, out, n=n: conv_shapes.__setitem__(n, tuple(inp[0].shape[1:]))))
            p = next(model.parameters())
            with torch.no_grad():
                model(torch.zeros((1, *tuple(input_shape)), dtype=p.dtype, device=p.device))
        finally:
            for h in hooks:
                h.remove()
    out = OrderedDict()
    i = 0
    while i < len(leaves):
        n, m = leaves[i]
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            act = None
            if i + 1 < len(leaves) and isinstance(leaves[i + 1][1], _ELEMENTWISE):
                act = leaves[i + 1][1]
                i += 1
            out[n] = (m, act, conv_shapes.get(n))
        elif isinstance(m, _ELEMENTWISE + _SKIP) or not any(True for _ in m.parameters(recurse=False)):
            pass
        else:
            raise TypeError(f"unsupported layer type {type(m).__name__} at {n!r}: model_ei measures nn.Linear and "
                            "nn.Conv2d layers (with elementwise activations) of feedforward models. Measure the "
                            "other layers one by one with layer_ei(weight_matrix, activation) if they are linear.")
        i += 1
    if not out:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to measure")
    return out


def model_ei(model: nn.Module, *, layers=None, input_shape=None, measures="all", progress=False,
             **kwargs) -> ModelEI:
    """:func:`layer_ei` of every Linear/Conv2d layer of a feedforward model.

    ``layers``: names to measure (default: all, see :func:`measured_layers`).
    ``measures="all"`` measures vector EI where the layer is small enough and reports it
    as NaN (with a note) where it is not; pass ``measures=("ei", ...)`` to insist.
    Every other keyword goes to :func:`layer_ei` (bins, samples, ranges, seed, device, ...).
    Each layer gets the same ``seed`` (common random numbers).
    """
    found = measured_layers(model, input_shape)
    names = list(found) if layers is None else [layers] if isinstance(layers, str) else list(layers)
    for n in names:
        if n not in found:
            raise KeyError(f"no measurable layer {n!r}; measurable layers: {list(found)}")
    out = OrderedDict()
    for n in names:  # loop over layers
        mod, act, shape = found[n]
        out[n] = layer_ei(mod, act, input_shape=shape, name=n, measures=measures, progress=progress, **kwargs)
    return ModelEI(out)


# ----------------------------------------------------------------------------- training dynamics
@dataclass(repr=False)
class CausalHistory:
    """Every measured layer's EI measures at each snapshot epoch.

    Arrays are ``(n_epochs, n_layers)``; ``results[i]`` is the :class:`ModelEI` at
    ``epochs[i]``. ``history`` is the training history (loss and accuracy per epoch).
    """

    epochs: np.ndarray
    layers: list
    ei: np.ndarray
    ei_parts: np.ndarray
    sensitivity: np.ndarray
    degeneracy: np.ndarray
    degeneracy_parts: np.ndarray
    phi: np.ndarray
    results: list
    history: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def at(self, epoch: int) -> ModelEI:
        idx = np.flatnonzero(self.epochs == epoch)
        if not len(idx):
            raise KeyError(f"no measurement at epoch {epoch}; measured epochs: {self.epochs.tolist()}")
        return self.results[int(idx[0])]

    def plane(self, which: str = "auto") -> tuple:
        """``(sensitivity, degeneracy, which)`` arrays ``(n_epochs, n_layers)``."""
        which = _which(which, [lay for r in self.results for lay in r])
        return self.sensitivity, (self.degeneracy if which == "ei" else self.degeneracy_parts), which

    def __repr__(self) -> str:
        return (f"CausalHistory({len(self.epochs)} epochs {self.epochs[0]}..{self.epochs[-1]}, "
                f"layers {self.layers})")


def _history_from_results(epochs, results, history=None, settings=None) -> CausalHistory:
    layers = results[0].names

    def arr(f):
        return np.array([[getattr(r[n], f) for n in layers] for r in results], dtype=float)

    return CausalHistory(np.asarray(epochs, dtype=int), layers, arr("ei"), arr("ei_parts"), arr("sensitivity"),
                         arr("degeneracy"), arr("degeneracy_parts"), arr("phi"), list(results),
                         dict(history or {}), dict(settings or {}))


def ei_over_training(train_result, *, epochs=None, every: int | None = None, layers=None, progress=False,
                     **kwargs) -> CausalHistory:
    """:func:`model_ei` at the training snapshots of ``train_result``
    (a :class:`nifkit.models.TrainResult`).

    ``epochs``: which snapshot epochs (default: all); ``every=k`` keeps the snapshots
    whose epoch is a multiple of ``k``. Other keywords go to :func:`model_ei`. The same
    noise seed is used at every epoch, so changes over training are not sampling noise.
    """
    snaps = list(getattr(train_result, "epochs_snapshotted", []))
    if not snaps:
        raise ValueError("train_result has no snapshots; train with snapshot_every=k")
    chosen = snaps if epochs is None else [int(e) for e in epochs]
    missing = [e for e in chosen if e not in snaps]
    if missing:
        raise KeyError(f"no snapshots at epochs {missing}; snapshots exist for {snaps}")
    if every is not None:
        chosen = [e for e in chosen if e % int(every) == 0]
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(chosen), desc="EI over training", unit="epoch")
    results = []
    try:
        for e in chosen:  # loop over epochs
            results.append(model_ei(train_result.model_at(e), layers=layers, **kwargs))
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(len(results), len(chosen), f"epoch {e}")
    finally:
        if bar is not None:
            bar.close()
    return _history_from_results(chosen, results, getattr(train_result, "history", {}), kwargs)


# ----------------------------------------------------------------------------- edge ablation
def ablate_edges(model: nn.Module, masks: dict) -> nn.Module:
    """A copy of ``model`` with the edges ``masks[name][A, B] == True`` of each named
    Linear layer set to 0 (``masks`` are ``(n_in, n_out)`` like ``LayerEI.edge_ei``)."""
    m = copy.deepcopy(model)
    mods = dict(m.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            lin = mods.get(name)
            if not isinstance(lin, nn.Linear):
                raise TypeError(f"edge ablation needs an nn.Linear layer, {name!r} is {type(lin).__name__}")
            mk = torch.as_tensor(np.asarray(mask, dtype=bool)).T.to(lin.weight.device)
            if mk.shape != lin.weight.shape:
                raise ValueError(f"mask for {name!r} has shape {tuple(mk.T.shape)}, expected "
                                 f"{tuple(lin.weight.T.shape)} (inputs, outputs)")
            lin.weight[mk] = 0.0
    return m


@dataclass(repr=False)
class EdgeAblation:
    """Accuracy after zeroing one decile (group) of edges at a time.

    ``accuracy[score][k]``: accuracy with group ``k`` of edges zeroed in every ablated
    layer, groups ranked within each layer by the score (0 = lowest). ``baseline``: no
    ablation.
    """

    groups: np.ndarray
    accuracy: dict
    baseline: float
    layers: list
    n_groups: int

    def __repr__(self) -> str:
        rows = [f"EdgeAblation(baseline accuracy {self.baseline:.3f}; layers {self.layers})"]
        for k, v in self.accuracy.items():
            rows.append(f"  by {k:<8}: " + " ".join(f"{a:.2f}" for a in v))
        return "\n".join(rows)


def _group_masks(score: np.ndarray, n_groups: int) -> np.ndarray:
    """``(n_groups, *score.shape)`` bool: group k holds the edges of rank decile k."""
    flat = score.reshape(-1)
    ranks = np.empty(len(flat), dtype=np.int64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(len(flat))
    group = ranks * n_groups // len(flat)
    return (group[None, :] == np.arange(n_groups)[:, None]).reshape(n_groups, *score.shape)


def edge_ablation(model: nn.Module, X, y, measures: ModelEI, *, layers=None, n_groups: int = 10,
                  scores=("ei", "weight"), seed: int = 0) -> EdgeAblation:
    """Zero the edges of one decile at a time and measure accuracy on ``(X, y)``.

    Deciles are taken within each layer of ``layers`` (default: every Linear layer in
    ``measures``) by ``"ei"`` (``edge_ei``), ``"sensitivity"`` (``edge_sensitivity``),
    ``"weight"`` (``|W|``) or ``"random"``; decile ``k`` is zeroed in all those layers
    at once.
    """
    names = measures.names if layers is None else list(layers)
    mods = dict(model.named_modules())
    X = torch.as_tensor(to_numpy(X, "X"), dtype=torch.float32)
    y = torch.as_tensor(to_numpy(y, "y")).long()
    rng = np.random.default_rng(seed)

    def acc(m):
        with torch.no_grad():
            p = next(m.parameters())
            return float((m(X.to(p.device)).argmax(1).cpu() == y).float().mean())

    def score_of(kind, name):
        lay = measures[name]
        if kind == "ei":
            return lay.edge_ei
        if kind == "sensitivity":
            return lay.edge_sensitivity
        if kind == "weight":
            return np.abs(mods[name].weight.detach().cpu().numpy().T)
        if kind == "random":
            return rng.random((lay.n_inputs, lay.n_outputs))
        raise ValueError(f"scores must be among 'ei', 'sensitivity', 'weight', 'random'; got {kind!r}")

    out = {}
    for kind in scores:
        masks = {n: _group_masks(score_of(kind, n), n_groups) for n in names}
        out[kind] = np.array([acc(ablate_edges(model, {n: masks[n][k] for n in names})) for k in range(n_groups)])
    return EdgeAblation(np.arange(n_groups), out, acc(model), names, n_groups)


# ----------------------------------------------------------------------------- teaching helpers
def identity_ei(n: int, bins: int) -> float:
    """EI (= EI_parts = sensitivity) of an identity layer ``n -> n`` whose input and
    output bins coincide: ``n log2(bins)`` bits. Degeneracy and phi are 0."""
    return n * math.log2(bins)


def check_edge_sensitivity(fn: Callable) -> bool:
    """Checker for the chapter's exercise.

    ``fn(w, b, bins=8, n=200_000, seed=0) -> bits``: the sensitivity of one sigmoid
    edge ``y = sigmoid(w x + b)``, ``x ~ U(0, 1)``, both binned into ``bins`` equal bins
    over (0, 1), plug-in MI. Compared with :func:`layer_ei` on a 1 -> 1 layer; says what
    looks wrong.
    """
    cases = [("a zero weight", 0.0, 0.0), ("a weak edge", 1.0, 0.0), ("a steep edge", 12.0, -6.0),
             ("a steep negative edge", -12.0, 6.0), ("a shifted edge", 6.0, -1.0)]
    ok = True
    for label, w, b in cases:
        kw = dict(bias=np.array([b]), measures="sensitivity", sensitivity_samples=400_000, seed=12345)
        ref = layer_ei(np.array([[w]]), "sigmoid", **kw).sensitivity
        try:
            got = float(fn(w, b, bins=8, n=200_000, seed=0))
        except Exception as exc:  # report, don't crash the notebook
            print(f"✗ {label} (w={w}, b={b}): your function raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        tol = 0.02 + 0.02 * ref
        if abs(got - ref) <= tol:
            continue
        ok = False
        fitted = layer_ei(np.array([[w]]), "sigmoid", out_range="fit", **kw).sensitivity if w else 0.0
        if math.isnan(got):
            hint = "got NaN: skip empty cells (0 log 0 = 0)"
        elif ref > 0.05 and abs(got - ref * LN2) <= tol:
            hint = "that is the value in nats: use log2"
        elif got < -1e-9:
            hint = "MI is never negative: check the ratio p(x,y) / (p(x) p(y))"
        elif w and abs(got - fitted) <= 0.05 + 0.02 * fitted:
            hint = (f"about {got:.2f} bits is what bins over y's own min..max give; the paper's bins are fixed on "
                    f"(0, 1) for every neuron (expected about {ref:.3f} bits). Pass range=((0, 1), (0, 1)) to "
                    "np.histogram2d, or bin by hand")
        elif w < 0 and abs(got) < 0.02 < ref:
            hint = "a negative weight is just as informative: did you bin w*x instead of sigmoid(w*x + b)?"
        elif got > 3.0 + 1e-9:
            hint = "more than log2(8) = 3 bits is impossible with 8 bins: are values of exactly 1.0 put in a 9th bin?"
        else:
            hint = (f"expected about {ref:.3f} bits, got {got:.3f}. Check: bins over (0, 1) for both x and y, the "
                    "bias inside the sigmoid, and that x is uniform on (0, 1)")
        print(f"✗ {label} (w={w}, b={b}): {hint}")
    print("✓ all edge-sensitivity cases pass" if ok else "Fix the cases above and run the checker again.")
    return ok
