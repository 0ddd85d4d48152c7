"""Noise by intervention and counting: deterministic noise blocks, output codes, the
all-inputs-noised counts (EI_parts pairs and packed joint states for vector EI, from
:mod:`nifkit.info.counts`) and the one-input-at-a-time counts (sensitivity).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .._validation import check_n_samples
from ..config import DEFAULT_MEMORY_BUDGET
from ..info import KeyCounts, PairCounts, marginal_counts, mi_from_counts, pack_keys
from .layers import EILayer, z_thresholds

__all__ = ["CHUNK"]


CHUNK = 4096


STREAM_NOISE = 0


STREAM_SENS = 1


_STREAM_PILOT = 2


def check_range(r, what):
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (lo, hi), got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        raise ValueError(f"{what} must be finite with hi > lo (a non-empty range), got {r!r}")
    return lo, hi


def check_bins(n_bins):
    if isinstance(n_bins, (tuple, list)):
        if len(n_bins) != 2:
            raise ValueError(f"n_bins must be an int or a pair (in_bins, out_bins), got {n_bins!r}")
        bi, bo = n_bins
    else:
        bi = bo = n_bins
    for v in (bi, bo):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 2:
            raise ValueError(f"n_bins must be integers >= 2, got {n_bins!r}")
        if v > 256:
            raise ValueError(f"n_bins must be at most 256, got {n_bins!r}")
    return int(bi), int(bo)


def check_samples(n_samples, what, bi, bo):
    if isinstance(n_samples, str):
        if n_samples != "auto":
            raise ValueError(f"{what} must be a positive integer or 'auto', got {n_samples!r}")
        return n_samples
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"{what} must be a positive integer or 'auto', got {n_samples!r}")
    check_n_samples(int(n_samples), bi * bo, f"{what} with {bi} x {bo} bins per edge")
    return int(n_samples)


def _seed_for(seed, stream, chunk):
    return int(np.random.SeedSequence([int(seed) % 2**63, stream, chunk]).generate_state(1, np.uint64)[0] >> 1)


class NoiseBlocks:
    """Deterministic uniform noise, chunk by chunk: sample ``i`` depends only on
    ``(seed, stream, i)``, never on how samples are grouped into blocks.

    ``sampling="grid"`` stratifies: sample ``i`` lies in the input bin cell ``i mod
    cells`` (all inputs' cells enumerated in mixed radix), uniformly within the cell, so
    every cell gets the same number of samples when ``n`` is a multiple of ``cells``.
    With ``per_column=True`` (sensitivity) each column is stratified on its own axis.
    """

    def __init__(self, n_cols, lo, hi, n_bins, seed, stream, device, sampling="uniform", per_column=False,
                 chunk=CHUNK):
        self.n_cols, self.lo, self.hi, self.n_bins = n_cols, lo, hi, n_bins
        self.seed, self.stream, self.dev = seed, stream, device
        self.sampling, self.per_column = sampling, per_column
        self.chunk = int(chunk)  # rows per seeded chunk (CHUNK for layers; fewer for wide block inputs)

    def block(self, start, stop):
        """Rows ``start:stop`` of the noise, float64 ``(rows, n_cols)``, and their input
        codes ``0..bins-1`` (uint8)."""
        rows = stop - start
        u = torch.empty(rows, self.n_cols, dtype=torch.float64, device=self.dev)
        ch = self.chunk
        for c in range(start // ch, (stop - 1) // ch + 1):  # loop over chunks of samples
            g = torch.Generator(device=self.dev)
            g.manual_seed(_seed_for(self.seed, self.stream, c))
            a, b = max(start, c * ch), min(stop, (c + 1) * ch)
            if a == c * ch and b == (c + 1) * ch:
                torch.rand(ch, self.n_cols, generator=g, dtype=torch.float64, out=u[a - start:b - start])
            else:
                full = torch.rand(ch, self.n_cols, generator=g, dtype=torch.float64, device=self.dev)
                u[a - start:b - start] = full[a - c * ch:b - c * ch]
        w = self.hi - self.lo
        if self.sampling == "grid":
            idx = torch.arange(start, stop, device=self.dev, dtype=torch.int64)
            if self.per_column:
                digits = (idx % self.n_bins)[:, None].expand(-1, self.n_cols)
            else:
                powers = self.n_bins ** torch.arange(self.n_cols, device=self.dev, dtype=torch.int64)
                digits = (idx[:, None] // powers[None, :]) % self.n_bins
            x = u.add_(digits).mul_(w / self.n_bins).add_(self.lo)
            codes = digits.to(torch.uint8)
        else:
            # the code is the bin of u; x = lo + w u is monotone in u, so codes are monotone in x
            t = u.mul_(self.n_bins)
            codes = t.to(torch.uint8).clamp_(max=self.n_bins - 1)  # t >= 0: truncation is the floor
            x = torch.add(self.lo, t, alpha=w / self.n_bins, out=t)
        return x, codes


def out_codes(y, lo, hi, n_bins, inplace=False):
    """Per-neuron equal-width codes (uint8) of ``y (rows, n_out)``; ``lo``, ``hi``
    ``(n_out,)``: ``floor((y - lo) / (hi - lo) * bins)`` clamped to ``0..bins-1`` (a
    constant neuron, ``hi == lo``, is code 0). ``inplace=True`` overwrites ``y``."""
    width = hi - lo
    scale = torch.where(width > 0, n_bins / torch.where(width > 0, width, 1.0), torch.zeros_like(width))
    t = torch.addcmul(-lo * scale, y, scale, out=y if inplace else None).clamp_(0, n_bins - 1)
    return t.to(torch.uint8)  # after clamping to [0, bins - 1], truncation is the floor


def fit_out_range(layer: EILayer, in_lo, in_hi, seed, dev):
    """Per-output ranges ``(lo, hi)`` reachable under the all-input noise."""
    w = layer.weight.to(torch.float64)
    b = layer.bias.to(torch.float64)
    if layer.act.monotone:
        zmin = b + torch.minimum(w * in_lo, w * in_hi).sum(1)
        zmax = b + torch.maximum(w * in_lo, w * in_hi).sum(1)
        with torch.no_grad():
            return layer.act.fn(zmin), layer.act.fn(zmax)
    noise = NoiseBlocks(layer.n_in, in_lo, in_hi, 2, seed, _STREAM_PILOT, dev)
    x, _ = noise.block(0, 4 * CHUNK)
    with torch.no_grad():
        y = layer.act.fn(torch.addmm(layer.bias, x, layer.weight.T))
    return y.min(0).values, y.max(0).values


# Noise blocks of at most 16 MiB of temporaries. Larger blocks (128 MiB was measured) are no
# faster here, and their temporaries (< 32 MiB each) end up on glibc's heap once its
# dynamic mmap threshold has risen; freed, they stay resident: chapter 5's EI over 81
# snapshots kept ~1 GB this way. Results do not depend on the block size.
_BLOCK_BYTES = 16 * 2**20


def rows_per_block(bytes_per_row, budget):
    rows = int(min(budget, _BLOCK_BYTES) // max(1, bytes_per_row))
    return max(CHUNK, rows // CHUNK * CHUNK)


class AllNoiseCounts:
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
            rlo, rhi = fit_out_range(layer, in_lo, in_hi, None, dev)
            self.check_range = bool(((rlo < out_lo) | (rhi > out_hi)).any())
        if parts:
            self.pairs = PairCounts(bi, bo)  # the core's pair counts: (n_in, bi, n_out, bo)
        if vector:
            self.k_out = bo ** layer.n_out
            self.states = KeyCounts()  # joint (input, output) states, packed keys
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
        yc = out_codes(y, self.lo, self.hi, self.bo, inplace=True)
        del y
        if self.parts:
            self.pairs.update(xc, yc)
        if self.vector:
            key = pack_keys(xc, self.bi) * self.k_out + pack_keys(yc, self.bo)
            self.pending.append(key)
            self.pending_size += len(key)
            if self.pending_size * 8 * 4 > min(self.budget, _BLOCK_BYTES):  # fold raw keys into the table
                self.merge_pending()
        self.n += len(x)

    def merge_pending(self):
        """Fold the raw keys of the pending blocks into the (key, count) table."""
        if not self.pending:
            return
        raw = self.pending[0] if len(self.pending) == 1 else torch.cat(self.pending)
        self.pending, self.pending_size = [], 0
        self.states.update(raw)

    @property
    def joint(self):
        return self.pairs.joint

    @property
    def count_in(self):  # every sample has one code per input: any output's table gives the marginal
        return self.pairs.count_a

    @property
    def count_out(self):
        return self.pairs.count_b

    def edge_mi(self):
        # plug-in MI is >= 0; clamped against the float rounding of log2(n) - S/n (about 1e-14)
        return self.pairs.mi()

    def vector_mi(self):
        """I(inputs; outputs) = H(in) + H(out) - H(in, out) from the packed joint states."""
        self.merge_pending()
        k = self.k_out
        h_in = self.states.grouped(lambda key: key // k).entropy()
        h_out = self.states.grouped(lambda key: key % k).entropy()
        return max(0.0, h_in + h_out - self.states.entropy())


def _sort_rows(a):
    """Each row sorted (numpy's vectorised sort is several times faster than torch's on CPUs)."""
    a = a.contiguous() if a.device.type != "cpu" else a.clone(memory_format=torch.contiguous_format)
    if a.device.type == "cpu":
        arr = a.numpy()
        arr.sort(axis=1)  # in place, on our own contiguous copy
        return a
    return torch.sort(a, dim=1).values


class SensitivityCounts:
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
        t = z_thresholds(lay.act, edges)
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
        cnt = marginal_counts(xc, bi).to(torch.int64)  # (n_in, bi)
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
            yc = out_codes(y, self.lo, self.hi, bo)
            del y
            a_idx = torch.arange(a1 - a0, device=self.dev)
            cell = (a_idx[:, None] * lay.n_out + b_idx[None, :])[None] * (bi * bo)
            idx = cell + xc[:, a0:a1, None].to(torch.int64) * bo + yc.to(torch.int64)
            cnt = torch.bincount(idx.reshape(-1), minlength=(a1 - a0) * lay.n_out * bi * bo)
            self.joint[a0:a1] += cnt.reshape(a1 - a0, lay.n_out, bi, bo).to(torch.float64)

    def edge_mi(self):
        return mi_from_counts(self.joint, self.joint.sum(3), self.joint.sum(2), self.n).clamp_(min=0)


def drive_layer(noise, counter, n_samples, block_rows, estimate, auto, progress_cb, what):
    """Stream noise blocks into ``counter`` until ``samples`` (int) or, for ``"auto"``,
    until the estimates stop moving. Returns the trace ``[(n, estimates), ...]``."""
    trace = []
    if n_samples == "auto":
        start, max_n, thr, atol = auto["start"], auto["max_samples"], auto["threshold"], auto["atol"]
        targets = []
        t = start
        while t < max_n:
            targets.append(t)
            t *= 2
        targets.append(max_n)
    else:
        targets = [n_samples]
    done = 0
    total = targets[-1]
    for i, target in enumerate(targets):
        while done < target:
            stop = min(target, done + block_rows)
            x, xc = noise.block(done, stop)
            counter.update(x, xc)
            del x, xc
            done = stop
            progress_cb(done, total, what)
        est = estimate()
        trace.append((done, est))
        if n_samples == "auto" and i > 0:
            prev = trace[-2][1]
            if all(abs(est[k] - prev[k]) <= max(thr * abs(est[k]), atol) for k in est):
                break
    else:
        if n_samples == "auto" and len(trace) > 1:
            warnings.warn(f"{what}: not stable after max_samples={done} samples (last change "
                          f"{max(abs(trace[-1][1][k] - trace[-2][1][k]) for k in trace[-1][1]):.3g} bits); "
                          "raise max_samples or use fewer bins", stacklevel=4)
    return trace
