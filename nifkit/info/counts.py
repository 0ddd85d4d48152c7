r"""Counting: the one family of histograms every measure is computed from.

Binned activity is turned into counts here (and in :mod:`nifkit.info.keys` for packed
group states), over the exact products of :mod:`nifkit.info.kernels`, and only here:

* :func:`marginal_counts` - ``(units, bins)``: how often each unit takes each code;
* :func:`pair_counts` / :class:`PairCounts` - the joint table of every pair of a unit
  of ``a`` and one of ``b`` (or of ``a`` with itself), one one-hot matrix product
  ``O_a^T O_b`` (:func:`inner_counts`); each unit's last bin is left out of the product
  (its cells follow from the marginals, a quarter less work with 8 bins), so a
  :class:`PairCounts` keeps ``inner (units_a, Ba-1, units_b, Bb-1)`` and the marginals
  and gives the full ``joint`` on demand;
* :class:`PairBlocks` - the same counts for layers too large for one table: the blocked
  plan (:func:`plan_pair_blocks`) of :func:`nifkit.info.pairwise_mi`, the one-hot of a
  column block of ``b`` built once and reused by every row block of ``a``;
* :func:`mi_from_inner` / :func:`mi_from_counts` - the plug-in MI of every pair from
  those counts, ``c log2 c`` read from the one table (:func:`nifkit.info.kernels.xlog2x_counts`);
* :func:`label_counts` - ``(units, bins, classes)``: each unit's code against a label,
  one ``bincount`` over ``(unit * bins + code) * classes + label``.

Each has a mergeable accumulator (:class:`PairCounts`, :class:`LabelCounts`,
:class:`MarginalCounts`; :class:`nifkit.info.keys.KeyCounts`): ``update`` adds a batch,
``merge`` adds another accumulator over the same units and bins, and
:func:`reduce_across_processes` sums the counts of every process of a
``torch.distributed`` job (gloo on CPUs, NCCL on GPUs), so a measure run under
``torchrun`` on shards of the data gives the numbers of one process on all of it.
Counts are exact integers (int64, or float64 below 2**53).

Inside :mod:`nifkit.info` dependencies run kernels -> counts (this module, then keys)
-> measures: nothing here imports a measure module.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import (
    as_codes,
    as_counts,
    check_correction,
    check_n_bins,
    check_not_meta,
    check_number,
    resolve_device,
    to_numpy,
)
from .kernels import LN2, blocked_kernel, count_pairs, counting_kernel, kernel_failure, xlog2x, xlog2x_counts
from .._validation import checked

__all__ = [
    "marginal_counts", "pair_counts", "label_counts", "inner_counts", "mi_from_counts", "mi_from_inner",
    "MarginalCounts", "PairCounts", "LabelCounts", "PairBlocks", "plan_pair_blocks", "reduce_across_processes",
]


# ======================================================================================
# Inputs
# ======================================================================================
def codes_tensor(codes, name: str, n_bins: int | None = None, *, bins_name: str = "n_bins",
                 device=None) -> torch.Tensor:
    """Codes ``(samples, units)`` as a uint8 (bins <= 256) or int64 tensor on ``device``
    (``None``: where they are; numpy on the CPU), checked: integers, non-negative, below
    ``n_bins`` (named ``bins_name`` in the error)."""
    if isinstance(codes, torch.Tensor) and codes.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32,
                                                           torch.int64):
        check_not_meta(codes, name)
        t = codes.detach()
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2:
            raise ValueError(f"{name} must be 1-D (samples,) or 2-D (samples, units); got shape {tuple(t.shape)}")
        if t.numel() and int(t.min()) < 0:
            raise ValueError(f"{name} must be non-negative integer codes; found {int(t.min())}")
    else:
        arr = as_codes(codes, name)
        t = torch.from_numpy(np.ascontiguousarray(arr[:, None] if arr.ndim == 1 else arr))
    if device is not None:
        t = t.to(device)
    if n_bins is not None:
        if t.numel() and int(t.max()) >= n_bins:
            raise ValueError(f"{name} has code {int(t.max())} but {bins_name}={n_bins}; codes must lie in "
                             f"0..{bins_name}-1 (pass a larger {bins_name}, or the codes of a Binner with it)")
        if n_bins <= 256 and t.dtype != torch.uint8:
            t = t.to(torch.uint8)  # small codes travel as uint8: one-hots move 8x less data
    return t


def _check_bins(n_bins, name):
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"{name} must be a positive integer, got {n_bins!r}")
    return int(n_bins)


# ======================================================================================
# Marginal and pair counts
# ======================================================================================
#: codes per run of :func:`marginal_bin_counts` (its labels and bincount's own copies: a few MiB)
MARGINAL_RUN_ELEMENTS = 2**18


def marginal_bin_counts(codes: torch.Tensor, n_bins: int) -> torch.Tensor:
    """``(n, m)`` checked codes -> ``(m, n_bins)`` float64 counts, one bincount for all
    units per run of samples (the unchecked step of :func:`marginal_counts`). The labels
    are built :data:`MARGINAL_RUN_ELEMENTS` codes at a time, so the temporaries stay
    within a few MiB whatever ``n`` is (one run for up to 2**18 codes)."""
    n, m = codes.shape
    # int32 labels when they fit: bincount over them is several times faster than int64
    dtype = torch.int32 if m * n_bins < 2**31 else torch.int64
    offsets = torch.arange(m, device=codes.device, dtype=dtype) * n_bins
    run = max(1, MARGINAL_RUN_ELEMENTS // max(m, 1))
    total = None
    for s0 in range(0, max(n, 1), run):  # a loop over runs of samples
        flat = codes[s0:s0 + run].to(dtype)
        flat += offsets
        c = torch.bincount(flat.reshape(-1), minlength=m * n_bins)
        total = c if total is None else total + c
    return total.reshape(m, n_bins).to(torch.float64)


@checked
def marginal_counts(codes, n_bins: int) -> torch.Tensor:
    """``(units, n_bins)`` float64 counts of each unit's codes, one ``bincount``."""
    n_bins = _check_bins(n_bins, "n_bins")
    return marginal_bin_counts(codes_tensor(codes, "codes", n_bins), n_bins)


def inner_counts(ca: torch.Tensor, cb, ba: int, bb: int) -> torch.Tensor:
    """Joint counts of the cells ``u < ba-1, v < bb-1`` of every pair of the checked code
    blocks ``ca (n, ka)``, ``cb (n, kb)`` (``cb=None``: ``ca`` with itself), an integer
    ``(ka, ba-1, kb, bb-1)`` tensor from the counting kernel chosen for the device
    (:func:`nifkit.info.kernels.count_pairs`). The last bin of each unit is left out:
    its cells follow from the marginals (:func:`mi_from_inner`, :attr:`PairCounts.joint`),
    which saves ``1 - (1 - 1/B)^2`` of the work (a quarter with 8 bins)."""
    ka = ca.shape[1]
    kb = ka if cb is None else cb.shape[1]
    return count_pairs(ca, cb, ba - 1, bb - 1).reshape(ka, ba - 1, kb, bb - 1)


def full_table(inner, count_a, count_b) -> torch.Tensor:
    """The full joint table ``(ka, Ba, kb, Bb)`` float64 from inner counts
    ``(ka, Ba-1, kb, Bb-1)`` and the marginals ``count_a (ka, Ba)``, ``count_b (kb, Bb)``."""
    ka, ca, kb, cb = inner.shape
    joint = torch.empty(ka, ca + 1, kb, cb + 1, dtype=torch.float64, device=inner.device)
    joint[:, :-1, :, :-1] = inner
    joint[:, :-1, :, -1] = count_a[:, :-1, None].to(torch.float64) - joint[:, :-1, :, :-1].sum(3)
    joint[:, -1, :, :] = count_b[None, :, :].to(torch.float64) - joint[:, :-1, :, :].sum(1)
    return joint


@checked
def pair_counts(a, b, n_bins_a: int, n_bins_b: int | None = None) -> torch.Tensor:
    """Joint counts ``(units_a, n_bins_a, units_b, n_bins_b)`` (float64, exact) of every
    pair of a unit of ``a (samples, units_a)`` and one of ``b``: one :class:`PairCounts`
    update (one one-hot product ``O_a^T O_b`` for all pairs)."""
    return PairCounts(n_bins_a, n_bins_b).update(a, b).joint


@checked
def label_counts(codes, labels, n_bins: int, n_classes: int, chunk_bytes: int = 64 * 2**20,
                 device=None) -> np.ndarray:
    """Joint histogram ``(units, n_bins, n_classes)`` (int64) of every unit's code with
    the label, one ``bincount`` over ``(unit * bins + code) * classes + label`` per chunk
    of samples (at most ``chunk_bytes`` of indices); on ``device`` (torch) when given,
    else numpy on the CPU. Returns a numpy array."""
    c = to_numpy(codes, "codes")
    if c.ndim != 2:
        raise ValueError(f"codes must be (samples, units), got shape {c.shape}")
    n, m = c.shape
    y = as_codes(labels, "labels")
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be 1-D with one class per sample ({n}), got shape {y.shape}")
    n_bins, n_classes = _check_bins(n_bins, "n_bins"), _check_bins(n_classes, "n_classes")
    if n and y.max() >= n_classes:
        raise ValueError(f"labels go up to {int(y.max())} but n_classes={n_classes}")
    size = m * n_bins * n_classes
    rows = max(1, int(chunk_bytes) // max(1, 8 * m))
    if n and (c.min() < 0 or c.max() >= n_bins):
        raise ValueError(f"codes must lie in 0..{n_bins - 1}")
    if device is not None and torch.device(device).type != "cpu":
        dev = torch.device(device)
        tbase = (torch.arange(m, dtype=torch.int64, device=dev) * n_bins)[None, :]
        ty = torch.from_numpy(y).to(dev)
        tout = torch.zeros(size, dtype=torch.int64, device=dev)
        for s in range(0, n, rows):  # loop over chunks of samples
            cc = torch.from_numpy(np.ascontiguousarray(c[s:s + rows])).to(dev, torch.int64)
            tout += torch.bincount(((tbase + cc) * n_classes + ty[s:s + rows, None]).reshape(-1), minlength=size)
        return tout.cpu().numpy().reshape(m, n_bins, n_classes)
    base = (np.arange(m, dtype=np.int64) * n_bins)[None, :]
    out = np.zeros(size, dtype=np.int64)
    for s in range(0, n, rows):  # loop over chunks of samples
        cc = c[s:s + rows].astype(np.int64)
        if cc.size and (cc.min() < 0 or cc.max() >= n_bins):
            raise ValueError(f"codes must lie in 0..{n_bins - 1}")
        idx = (base + cc) * n_classes + y[s:s + rows, None]
        out += np.bincount(idx.ravel(), minlength=size)
    return out.reshape(m, n_bins, n_classes)


# ======================================================================================
# Plug-in MI of pairs from their counts
# ======================================================================================
def mi_from_counts(joint, count_a, count_b, n, correction=None):
    """Plug-in MI (bits) of pairs from their full count tables.

    ``joint``: ``(..., Ba, Bb)`` joint counts; ``count_a``: ``(..., Ba)``;
    ``count_b``: ``(..., Bb)`` (broadcastable); ``n``: number of samples.
    ``correction="miller-madow"`` adds ``(m_a + m_b - m_ab - 1) / (2 n ln 2)``.
    Works on torch tensors or numpy arrays (returns the same kind), float64.
    Counts must be finite and non-negative and ``n`` positive (``ValueError`` otherwise).
    """
    check_correction(correction)
    as_np = not isinstance(joint, torch.Tensor)
    j, ca, cb = (torch.as_tensor(as_counts(v, name)) for v, name in ((joint, "joint"), (count_a, "count_a"),
                                                                       (count_b, "count_b")))
    if j.ndim < 2:
        raise ValueError(f"joint must have shape (..., Ba, Bb); got shape {tuple(j.shape)}")
    if ca.ndim < 1 or cb.ndim < 1 or ca.shape[-1] != j.shape[-2] or cb.shape[-1] != j.shape[-1]:
        raise ValueError(f"count_a (..., Ba) and count_b (..., Bb) must match joint (..., Ba, Bb); got shapes "
                         f"{tuple(ca.shape)}, {tuple(cb.shape)} and {tuple(j.shape)}")
    n = check_number(n, "n", minimum=0, strict_min=True)
    s_ab = xlog2x(j).sum(dim=(-2, -1))
    mi = math.log2(n) - (xlog2x(ca).sum(dim=-1) + xlog2x(cb).sum(dim=-1) - s_ab) / n
    if correction == "miller-madow":
        m_ab = (j > 0).sum(dim=(-2, -1))
        mi = mi + ((ca > 0).sum(dim=-1) + (cb > 0).sum(dim=-1) - m_ab - 1).to(torch.float64) / (2 * n * LN2)
    return mi.numpy() if as_np else mi


def mi_from_inner(inner, count_a, count_b, n, correction=None) -> torch.Tensor:
    """MI ``(ka, kb)`` in bits from inner counts ``(ka, ba-1, kb, bb-1)`` (integer, or
    float64 holding integers) and marginal counts ``count_a (ka, ba)``, ``count_b (kb, bb)``.
    The missing cells: ``C[u, B-1] = c_a[u] - sum_v C[u, v]``,
    ``C[B-1, v] = c_b[v] - sum_u C[u, v]``, and the corner from ``c_b[B-1]``; nothing is
    assembled into a full table. Counts stay integers (exact) until ``c log2 c``, read
    from the one table (:func:`nifkit.info.kernels.xlog2x_counts`)."""
    ka, ca, kb, cb = inner.shape
    inner = inner.contiguous()
    if inner.is_floating_point():
        inner = inner.to(torch.int64)   # integer counts held in float64
    it = inner.dtype if n < 2**31 else torch.int64   # sums of counts stay below n
    ma, mb = count_a.to(it), count_b.to(it)
    last_col = ma[:, :ca, None] - inner.sum(3, dtype=it)        # (ka, ca, kb)
    last_row = mb[None, :, :cb] - inner.sum(1, dtype=it)        # (ka, kb, cb)
    corner = mb[None, :, cb] - last_col.sum(1, dtype=it)        # (ka, kb)
    s_inner = xlog2x_counts(inner, n).view(ka, ca, kb * cb).sum(1).view(ka, kb, cb).sum(2)
    s_ab = (s_inner + xlog2x_counts(last_col, n).sum(1) + xlog2x_counts(last_row, n).sum(2)
            + xlog2x_counts(corner, n))
    s_a = xlog2x_counts(ma, n).sum(1)[:, None]
    s_b = xlog2x_counts(mb, n).sum(1)[None, :]
    mi = math.log2(n) - (s_a + s_b - s_ab) / n
    if correction == "miller-madow":
        m_ab = (inner > 0).sum((1, 3)) + (last_col > 0).sum(1) + (last_row > 0).sum(2) + (corner > 0)
        m_a = (ma > 0).sum(1)[:, None]
        m_b = (mb > 0).sum(1)[None, :]
        mi = mi + (m_a + m_b - m_ab - 1).to(torch.float64) / (2 * n * LN2)
    return mi


# ======================================================================================
# Blocked pair counts (layers too large for one table)
# ======================================================================================
MI_CELL_BYTES = 24.0   # MI step per counted cell: the int32 counts, their c log2 c (float64), sums


def _row_target(ca: int) -> int:
    """Neurons per row block: ~450 one-hot rows (the float32 product runs near its peak
    on AVX2 from ~450 rows on) between 16 and 128 neurons, even. Small, because in the
    symmetric case each row block also counts the lower half of its diagonal square:
    ``ka / m`` of extra work."""
    return max(16, min(128, 448 // max(ca, 1))) // 2 * 2


def plan_pair_blocks(n, ma, mb, ca, cb, kernel, budget):
    """Block sizes ``(ka, kb, s)`` for counting ``ma x mb`` neurons with ``ca``/``cb``
    counted values each over ``n`` samples within ``budget`` bytes: row blocks of ``ka``
    neurons, column blocks of ``kb`` neurons (one-hot built once per column block and
    reused by every row block: as wide as fits, ideally all of ``b``), samples in runs
    of ``s`` (``n`` unless even a 2 x 2 block of all samples does not fit). Block sizes
    are even unless they cover everything (packed operands pair neurons)."""
    room = 0.8 * budget  # headroom for allocator slack and torch's workspaces
    cell = kernel.cell_bytes + MI_CELL_BYTES
    lb, rb = ca * kernel.left_bytes, cb * kernel.right_bytes   # bytes per sample and neuron

    def even(k, total):
        return total if k >= total else max(2, int(k) // 2 * 2)

    ka = even(_row_target(ca), ma)
    kb = (room - n * ka * lb) / (n * rb + ka * ca * cb * cell)
    if kb >= min(mb, ka):
        return ka, even(kb, mb), n
    # square blocks k x k: k n (lb + rb) + k^2 ca cb cell <= room
    a, b = ca * cb * cell, n * (lb + rb)
    k = (-b + math.sqrt(b * b + 4 * a * room)) / (2 * a)
    if k >= 2:
        return even(k, ma), even(k, mb), n
    s = max(1, int((room - 4 * a) / (2 * (lb + rb))))
    return even(2, ma), even(2, mb), min(n, s)


class PairBlocks:
    """The inner counts of every pair of the checked codes ``ta (n, ma)``, ``tb (n, mb)``
    (``ba``/``bb`` bins; ``symmetric``: ``tb`` is ``ta`` and only pairs ``j >= i`` are
    counted), block by block within ``memory_budget`` bytes (:func:`plan_pair_blocks`).
    Iterating yields ``((i0, i1, c0, j1), inner)``: rows ``i0:i1`` of ``a``, columns
    ``c0:j1`` of ``b``, and their counts **transposed** as the kernel gives them,
    ``(j1-c0, bb-1, i1-i0, ba-1)``. The one-hot of a column block of ``b`` is built once
    and reused by every row block; runs of samples only when even a 2 x 2 block of all
    samples does not fit. ``len()`` is the number of blocks (for a progress bar)."""

    def __init__(self, ta: torch.Tensor, tb: torch.Tensor, ba: int, bb: int, *, symmetric: bool,
                 memory_budget: int):
        self.ta, self.tb, self.ca, self.cb, self.symmetric = ta, tb, ba - 1, bb - 1, symmetric
        self.name = counting_kernel(ta.device)
        self.kernel = blocked_kernel(self.name)
        n, ma = ta.shape
        mb = tb.shape[1]
        self.ka, self.kb, self.s = plan_pair_blocks(n, ma, mb, self.ca, self.cb, self.kernel, memory_budget)
        col_blocks = [(j0, min(j0 + self.kb, mb)) for j0 in range(0, mb, self.kb)]
        self.jobs = [(j0, j1, i0) for j0, j1 in col_blocks for i0 in range(0, j1 if symmetric else ma, self.ka)]
        self.right = None   # (j0, the right operand of column block j0), built once per column block

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self):
        ma = self.ta.shape[1]
        for j0, j1, i0 in self.jobs:  # loop over blocks
            i1 = min(i0 + self.ka, ma)
            c0 = max(i0, j0) if self.symmetric else j0
            try:
                counts = self._count(j0, j1, i0, i1, c0)
            except RuntimeError as exc:
                err = kernel_failure(self.name, False, self.ta.device, exc)
                if err is exc:
                    raise
                raise err from exc
            yield (i0, i1, c0, j1), counts.reshape(j1 - c0, self.cb, i1 - i0, self.ca)
            del counts  # before the next block is counted (the caller drops its reference too)

    def _count(self, j0, j1, i0, i1, c0):
        kern, ta, tb, s, n = self.kernel, self.ta, self.tb, self.s, len(self.ta)
        counts = None
        for s0 in range(0, n, s):  # one run of samples unless n is huge
            if s >= n:
                if self.right is None or self.right[0] != j0:
                    self.right = (j0, kern.right(tb[:, j0:j1], self.cb))
                r = self.right[1].neurons(c0 - j0, j1 - j0)
            else:
                r = kern.right(tb[s0:s0 + s, c0:j1], self.cb)
            part = kern.product(kern.left(ta[s0:s0 + s, i0:i1], self.ca), r, self.ca)
            counts = part if counts is None else counts.to(torch.int64) + part
        return counts


# ======================================================================================
# Mergeable accumulators
# ======================================================================================
class _Mergeable:
    """``update``, ``merge`` and ``reduce_across_processes`` over named tensor fields."""

    _fields: tuple = ()

    def _signature(self):
        return tuple(tuple(getattr(self, f).shape) for f in self._fields)

    def _check_merge(self, other):
        if not self._empty() and self._signature() != other._signature():
            raise ValueError(f"cannot merge {type(self).__name__} over different units or bins: "
                             f"{self._signature()} vs {other._signature()}")

    def _empty(self) -> bool:
        return getattr(self, self._fields[0], None) is None

    @property
    def n_samples(self) -> int:
        """Samples counted so far."""
        return self.n

    def merge(self, other) -> "_Mergeable":
        """Add the counts of ``other`` (same kind, same units and bins); its counts are
        moved to this accumulator's device (counts are exact: the result does not depend
        on it)."""
        if not (isinstance(other, type(self)) or isinstance(self, type(other))):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        if other is self:
            raise ValueError("other is this accumulator itself; merging it would double its counts")
        if other._empty():
            return self
        self._check_merge(other)
        dev = None if self._empty() else getattr(self, self._fields[0]).device
        for f in self._fields:
            mine, theirs = getattr(self, f), getattr(other, f)
            setattr(self, f, theirs.clone() if mine is None else mine + theirs.to(dev))
        self.n += other.n
        return self

    def reduce_across_processes(self, group=None) -> "_Mergeable":
        """Sum the counts of every process of the ``torch.distributed`` job, in place
        (nothing happens when no process group is initialised)."""
        if not dist_ready():
            return self
        for f in self._fields:
            setattr(self, f, _all_reduce(getattr(self, f), group))
        self.n = int(_all_reduce(torch.tensor([self.n], dtype=torch.int64), group)[0])
        return self


class MarginalCounts(_Mergeable):
    """Streaming :func:`marginal_counts`: ``counts (units, n_bins)``, ``n``."""

    _fields = ("counts",)

    @checked
    def __init__(self, n_bins: int):
        self.n_bins = _check_bins(n_bins, "n_bins")
        self.counts, self.n = None, 0

    def update(self, codes) -> "MarginalCounts":
        c = marginal_counts(codes, self.n_bins)
        if self.counts is not None and c.shape != self.counts.shape:
            raise ValueError(f"codes have {c.shape[0]} units but earlier batches had {self.counts.shape[0]}")
        self.counts = c if self.counts is None else self.counts + c
        self.n += int(c[0].sum()) if len(c) else 0
        return self


class PairCounts(_Mergeable):
    """Streaming pair counts of every unit of ``a`` with every unit of ``b``
    (``update(a, b)``), or of ``a`` with itself (``update(a)``): ``inner
    (units_a, Ba-1, units_b, Bb-1)`` int64 (each unit's last bin follows from the
    marginals), ``count_a (units_a, Ba)``, ``count_b (units_b, Bb)``, ``n``; ``joint``
    is the full table ``(units_a, Ba, units_b, Bb)`` (float64). :meth:`mi` gives the
    plug-in MI of every pair in bits. Counts go to ``device`` (``None``: where the first
    batch is). :class:`nifkit.info.PairwiseMI` is its face for all-pairs MI."""

    _fields = ("inner", "count_a", "count_b")

    @checked
    def __init__(self, n_bins_a: int, n_bins_b: int | None = None, *, device=None):
        self.n_bins_a = check_n_bins(n_bins_a, "n_bins_a")
        self.n_bins_b = self.n_bins_a if n_bins_b is None else check_n_bins(n_bins_b, "n_bins_b")
        self.device = None if device is None else resolve_device(device)
        self.bin_names = ("n_bins_a", "n_bins_b")   # how errors name the bins
        self.inner = self.count_a = self.count_b = None
        self.self_pairs = None    # True: pairs within a (update(a)); False: a x b
        self.n = 0

    def _codes(self, a, b):
        ba, bb = self.n_bins_a, self.n_bins_b
        ta = codes_tensor(a, "a", ba, bins_name=self.bin_names[0], device=self.device)
        if ta.shape[1] == 0:
            raise ValueError(f"a has no neurons (shape {tuple(ta.shape)}); pass at least one column")
        if b is None:
            if ba != bb:
                raise ValueError(f"update(a) counts pairs within a, which needs n_bins_b == n_bins_a; got "
                                 f"{ba} and {bb}: pass b, or build the accumulator with one n_bins")
            return ta, None
        tb = codes_tensor(b, "b", bb, bins_name=self.bin_names[1], device=ta.device)
        if tb.shape[1] == 0:
            raise ValueError(f"b has no neurons (shape {tuple(tb.shape)}); pass at least one column")
        if len(tb) != len(ta):
            raise ValueError(f"a and b must have the same number of samples, got {len(ta)} and {len(tb)}")
        return ta, tb

    def update(self, a, b=None) -> "PairCounts":
        """Add a batch of codes ``a (samples, units_a)``, ``b (samples, units_b)``
        (``b=None``: pairs within ``a``); every update needs the same units."""
        ta, tb = self._codes(a, b)
        both = ta if tb is None else tb
        shape = (ta.shape[1], self.n_bins_a - 1, both.shape[1], self.n_bins_b - 1)
        if self.inner is not None and (self.self_pairs != (tb is None) or tuple(self.inner.shape) != shape):
            raise ValueError("batch shape differs from earlier batches: every update needs the same neurons "
                             f"(got {shape[0]} x {shape[2]}, earlier {self.inner.shape[0]} x {self.inner.shape[2]}"
                             f"{'' if self.self_pairs == (tb is None) else ', and the other kind of pairs'})")
        inner = inner_counts(ta, tb, self.n_bins_a, self.n_bins_b).to(torch.int64)
        ca = marginal_bin_counts(ta, self.n_bins_a).to(torch.int64)
        cb = ca if tb is None else marginal_bin_counts(tb, self.n_bins_b).to(torch.int64)
        if self.inner is None:
            self.inner, self.count_a, self.count_b, self.self_pairs = inner, ca, cb.clone(), tb is None
        else:
            self.inner += inner.to(self.inner.device)
            self.count_a += ca.to(self.inner.device)
            self.count_b += cb.to(self.inner.device)
        self.n += len(ta)
        return self

    def _signature(self):
        return self.self_pairs, tuple(self.inner.shape)

    def _check_merge(self, other):
        if (self.n_bins_a, self.n_bins_b) != (other.n_bins_a, other.n_bins_b):
            raise ValueError(f"cannot merge accumulators with different bins: {self.n_bins_a} x {self.n_bins_b} "
                             f"here but {other.n_bins_a} x {other.n_bins_b} in other; build both with the same "
                             "settings")
        if self._empty():
            return
        if self.self_pairs != other.self_pairs:
            kinds = {True: "pairs within a (update(a))", False: "pairs of a x b (update(a, b))"}
            raise ValueError(f"cannot merge accumulators of different pairs: this one counts "
                             f"{kinds[self.self_pairs]}, other {kinds[other.self_pairs]}")
        if self.inner.shape != other.inner.shape:
            raise ValueError(f"cannot merge accumulators over different neurons: {self.inner.shape[0]} x "
                             f"{self.inner.shape[2]} here, {other.inner.shape[0]} x {other.inner.shape[2]} in other")

    def merge(self, other) -> "PairCounts":
        was_empty = self._empty()
        super().merge(other)
        if was_empty and not other._empty():
            self.self_pairs = other.self_pairs
            if self.device is not None:
                for f in self._fields:
                    setattr(self, f, getattr(self, f).to(self.device))
        return self

    @property
    def joint(self) -> torch.Tensor:
        """The full joint table ``(units_a, Ba, units_b, Bb)`` (float64, exact)."""
        if self.inner is None:
            raise ValueError("no samples counted yet; call update() first")
        return full_table(self.inner, self.count_a, self.count_b)

    def mi(self, correction=None) -> torch.Tensor:
        """``(units_a, units_b)`` MI in bits (float64 tensor) from the inner counts and the
        marginals (:func:`mi_from_inner`): the plug-in estimate is clamped at 0 against the
        rounding of ``log2 n - S / n`` (~1e-15); a Miller-Madow corrected one is not (it
        is negative for independent pairs by design)."""
        check_correction(correction)
        if self.n < 1:
            raise ValueError("no samples counted yet; call update() first")
        mi = mi_from_inner(self.inner, self.count_a, self.count_b, self.n, correction)
        return mi.clamp_(min=0) if correction is None else mi


class LabelCounts(_Mergeable):
    """Streaming :func:`label_counts`: ``table (units, n_bins, n_classes)``, ``n``;
    each update counts on ``device`` in chunks of ``chunk_bytes`` (as
    :func:`label_counts`; the table is kept on the CPU)."""

    _fields = ("table",)

    @checked
    def __init__(self, n_bins: int, n_classes: int, *, device=None, chunk_bytes: int = 64 * 2**20):
        self.n_bins = _check_bins(n_bins, "n_bins")
        self.n_classes = _check_bins(n_classes, "n_classes")
        self.device, self.chunk_bytes = device, chunk_bytes
        self.table, self.n = None, 0

    @checked
    def update(self, codes, labels) -> "LabelCounts":
        t = torch.from_numpy(label_counts(codes, labels, self.n_bins, self.n_classes, chunk_bytes=self.chunk_bytes,
                                          device=self.device))
        if self.table is not None and t.shape != self.table.shape:
            raise ValueError(f"codes have {t.shape[0]} units but earlier batches had {self.table.shape[0]}")
        self.table = t if self.table is None else self.table + t
        self.n += int(t[0].sum()) if len(t) else 0
        return self


# ======================================================================================
# Across processes
# ======================================================================================
def dist_ready() -> bool:
    """Whether a ``torch.distributed`` process group is initialised."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _all_reduce(t: torch.Tensor, group=None) -> torch.Tensor:
    """Sum a tensor over the processes; NCCL needs it on this process's GPU, gloo on the CPU."""
    import torch.distributed as dist

    backend = dist.get_backend(group)
    dev = t.device
    work = t.to(torch.device("cuda", torch.cuda.current_device())) if backend == "nccl" else t.cpu()
    work = work.clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM, group=group)
    return work.to(dev)


def reduce_across_processes(counts, group=None):
    """Sum counts over every process of a ``torch.distributed`` job and return them.

    ``counts``: an accumulator of the counting family (:class:`PairCounts` and its face
    :class:`nifkit.info.PairwiseMI`, :class:`LabelCounts`, :class:`MarginalCounts`,
    :class:`nifkit.info.keys.KeyCounts`: reduced in place and returned), a tensor or a
    numpy array (a reduced copy is returned). Without an initialised process group it
    returns ``counts`` unchanged, so the same script runs alone or under ``torchrun``.
    Every process must call it (it is a collective)."""
    if not dist_ready():
        return counts
    if isinstance(counts, torch.Tensor):
        return _all_reduce(counts, group)
    if isinstance(counts, np.ndarray):
        return _all_reduce(torch.from_numpy(np.ascontiguousarray(counts)), group).numpy()
    if callable(getattr(counts, "reduce_across_processes", None)):
        return counts.reduce_across_processes(group)
    raise TypeError("reduce_across_processes takes a counts accumulator of nifkit.info (PairCounts, PairwiseMI, "
                    f"LabelCounts, MarginalCounts, KeyCounts), a tensor or a numpy array; got {type(counts).__name__}")
