r"""Counting kernels: the exact pair counts behind every all-pairs MI and EI_parts table.

Every joint histogram of a block of neuron pairs is one product of one-hot codes,

.. math::

    C[(i,u),(j,v)] = \sum_s [a_{si} = u]\,[b_{sj} = v] = (O_A^\top O_B)[(i,u),(j,v)],

and the product can be computed in more than one exact way. Which one is fastest depends
on the CPU, not on the code:

* ``"int8"``: ``torch._int_mm`` (int8 x int8 -> int32). Several times faster than float32
  on CPUs with int8 dot-product instructions (AVX-512 VNNI); on a CPU without them (an AMD
  EPYC with AVX2 only, torch 2.14.1) it was 50-130x *slower* than float32.
* ``"float32"``: a float32 product, exact while every count stays below 2**24; longer
  runs of samples are cut into blocks of fewer than 2**24 samples whose integer counts
  are summed.
* ``"float32_packed"``: a float32 product with two counted cells per column of the
  one-hot of ``b`` (``[b_j = v] + 4096 [b_j' = v']`` for consecutive cells, packed across
  neurons) over chunks of 4,095 samples, so every packed sum stays below 2**24 and is
  exact, decoded by a mask and a shift: half the multiply-adds of ``float32``
  (measured on the project's AVX2 CPU, 1 thread: 4,095 samples x 64 x 128 neurons x 8
  bins, 23 ms vs 46 ms).

Every kernel is split in three (:class:`CountingKernel`: ``left``, ``right``,
``product``) so that the blocked all-pairs computation (:class:`nifkit.info.counts.PairBlocks`)
builds the one-hot of a column block of ``b`` once over all samples and reuses it for
every row block of ``a``. The product is taken as ``O_B^T O_A`` (the wide one-hot first:
~44 instead of ~30 GMAC/s from MKL on the AVX2 CPU) and returns the counts transposed.

(A third candidate, ``torch.bincount`` of packed pair codes, was measured and left out:
its cost grows with samples x pairs whatever the bins and it needs one int32 label per
sample and pair in memory. On the project's AVX2 machine, 1 thread, it was 2-9x slower
than the float32 product on a 2,048-sample x 32 x 32-neuron block with 2 to 8 bins, 5x
slower on a 10,000 x 100 x 100 block with 8 bins, and only 1.2x faster there with 16
bins.)

So nifkit does not assume: the first time counts are needed on a device type, each
candidate is timed on a small block (best of 3 round-robin runs, a few milliseconds each
for the winner; a kernel 3x slower than the best after the first round is not timed
again), the kernels within 3x of the best again on a block shaped like the all-pairs
blocks (4,095 samples x 64 x 128 neurons), on the CPU on one torch thread and in the
calling thread's CPU time (so other processes' load does not flip the choice), the fastest
is kept for the rest of the process, and :func:`counting_kernel_info` says which one and why, with the
timings. :func:`set_counting_kernel` or the environment variable
``NIFKIT_COUNT_KERNEL=int8|float32|float32_packed|auto`` forces one (tests, benchmarks).

This module is the bottom of :mod:`nifkit.info` (kernels -> counts -> measures; it imports
neither): besides the products it holds the numbers every count is turned into bits
with, once for all of nifkit: :data:`LN2`, the key-bit limit :data:`MAX_KEY_BITS`, the
``c log2 c`` helper :func:`xlog2x` and its cached table (:func:`xlog2x_table`,
:func:`xlog2x_counts`).
"""
from __future__ import annotations

import abc
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from .._validation import checked

__all__ = ["KERNELS", "counting_kernel", "counting_kernel_info", "set_counting_kernel", "count_pairs",
           "KernelChoice", "ENV_VAR", "CountingKernel", "Right", "blocked_kernel", "kernel_failure",
           "LN2", "MAX_KEY_BITS", "xlog2x", "xlog2x_table", "xlog2x_counts"]

ENV_VAR = "NIFKIT_COUNT_KERNEL"
MAX_F32_EXACT = 2**24  # float32 represents every integer count below this

#: ``ln 2``: nats -> bits. The one definition in nifkit (``nifkit.info.LN2``).
LN2 = math.log(2.0)
#: the largest packed key: a joint state space of 2**62 states or more is refused (int64
#: keys, with room for the multiply-adds that build them). The one limit in nifkit.
MAX_KEY_BITS = 62
#: largest sample count with a ``c log2 c`` table (32 MiB of float64)
LUT_MAX = 2**22
#: entries of the c log2 c table built per run (its temporaries: a few times 512 KiB)
LUT_RUN = 2**16
#: device -> (the c log2 c table, its prefix views by size): see :func:`xlog2x_table`
_LUT_CACHE: dict = {}


# ======================================================================================
# c log2 c: the one helper and the one table behind every plug-in entropy and MI
# ======================================================================================
def xlog2x(c):
    """``c * log2(c)`` elementwise, ``0`` at ``c = 0``, float64; a torch tensor or a
    numpy array (returns the same kind). Written as ``c * log2(c)``, as the discrete and
    group measures always computed it (their values stay the same bit for bit), not as
    ``xlogy(c, c) / ln 2``: the two differ in the last bit."""
    if isinstance(c, torch.Tensor):
        c = c if c.dtype == torch.float64 else c.to(torch.float64)
        return torch.where(c > 0, c * torch.log2(c.clamp(min=1e-300)), torch.zeros((), dtype=c.dtype,
                                                                                      device=c.device))
    c = np.asarray(c, dtype=np.float64)
    out = np.zeros_like(c)
    pos = c > 0
    out[pos] = c[pos] * np.log2(c[pos])
    return out


def xlog2x_table(n: int, device=None) -> torch.Tensor:
    """``c * log2(c)`` for ``c = 0..n`` (float64, :func:`xlog2x` of ``arange``, built with
    numpy's ``log2`` on every device); ``.numpy()`` of a CPU table serves numpy code
    (``table[counts]``).

    The cache is bounded: one table per device, for the largest ``n`` up to
    :data:`LUT_MAX` asked so far (grown to at least twice its size when outgrown, so
    rising sizes rebuild it only a few times); smaller ``n`` get a prefix view of it. It
    holds at most ``8 * (LUT_MAX + 1)`` bytes (32 MiB) per device for the process, the
    one allocation that outlives a call and is not counted in a ``memory_budget``; for the
    sizes of the budget tests it is below 1 MiB (8 bytes per sample). A table for ``n``
    above :data:`LUT_MAX` is built for the caller and not kept."""
    n = int(n)
    dev = torch.device("cpu" if device is None else device)
    if n > LUT_MAX:
        return _build_xlog2x_table(n).to(dev)
    key = str(dev)
    table, views = _LUT_CACHE.get(key, (None, None))
    if table is None or len(table) <= n:
        size = min(LUT_MAX, max(n, 2 * (len(table) - 1) if table is not None else n))
        _LUT_CACHE.pop(key, None)  # the old table (and its views) go before the new one is built
        table, views = _build_xlog2x_table(size).to(dev), {}
        _LUT_CACHE[key] = (table, views)
    if n not in views:  # prefix views share the table's memory; one object per size
        if len(views) >= 256:
            views.clear()
        views[n] = table[:n + 1]
    return views[n]


def _build_xlog2x_table(n: int) -> torch.Tensor:
    table = np.empty(n + 1, dtype=np.float64)
    for s in range(0, len(table), LUT_RUN):  # runs: the temporaries of xlog2x stay small
        table[s:s + LUT_RUN] = xlog2x(np.arange(s, min(s + LUT_RUN, len(table)), dtype=np.float64))
    return torch.from_numpy(table)


def xlog2x_counts(c: torch.Tensor, n: int) -> torch.Tensor:
    """``c log2 c`` (float64) of integer counts ``0 <= c <= n``: one ``index_select`` from
    :func:`xlog2x_table` when ``n`` is at most :data:`LUT_MAX` (~20x faster than ``xlogy``
    on a float64 copy, and than ``table[c]``), else :func:`xlog2x`."""
    if n <= LUT_MAX:
        idx = c.reshape(-1)
        if idx.dtype not in (torch.int32, torch.int64):
            idx = idx.to(torch.int64)
        return xlog2x_table(n, c.device).index_select(0, idx).reshape(c.shape)
    return xlog2x(c)


def _acc_dtype(n: int):
    """Integer type that holds every count of ``n`` samples."""
    return torch.int32 if n < 2**31 else torch.int64


def _as_index(codes: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Codes as int32 row numbers of a table with ``n_rows`` rows: uint8 codes index a
    256-row table directly; otherwise codes are clipped to the table's last row (a zero
    row: the dropped last bin)."""
    if codes.dtype == torch.uint8 and n_rows >= 256:
        return codes.to(torch.int32)
    return codes.clamp(0, n_rows - 1).to(torch.int32)


def _table(codes: torch.Tensor, cols: int, dtype) -> torch.Tensor:
    """One-hot table ``T[v] = e_v`` (``v < cols``), zero rows for ``v >= cols`` (the
    dropped last bin); 256 rows for uint8 codes, else ``cols + 1``."""
    rows = 256 if codes.dtype == torch.uint8 else cols + 1
    t = torch.zeros(rows, cols, dtype=dtype, device=codes.device)
    if cols:
        t[:cols] = torch.eye(cols, dtype=dtype, device=codes.device)
    return t


def _gather_rows(table: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``table[codes]`` as ``(n, k * table_cols)``: one ``index_select`` of table rows
    (several times faster than a comparison with every value, or ``table[idx]``)."""
    n, k = codes.shape
    idx = _as_index(codes, table.shape[0]).reshape(-1)
    return table.index_select(0, idx).reshape(n, k * table.shape[1])


def _one_hot(codes: torch.Tensor, n_cols: int, dtype) -> torch.Tensor:
    """``O``: ``(n, m * n_cols)`` one-hot, neuron-major columns; values ``>= n_cols`` (the
    dropped last bin) give all-zero rows."""
    return _gather_rows(_table(codes, n_cols, dtype), codes)


def _one_hot_t(codes: torch.Tensor, n_cols: int, dtype) -> torch.Tensor:
    """``O^T``: ``(m * n_cols, n)`` one-hot built from the transposed codes (transposing
    codes moves ``n_cols`` times less data than transposing the one-hot)."""
    n = codes.shape[0]
    values = torch.arange(n_cols, device=codes.device, dtype=codes.dtype)
    hot = codes.T.contiguous()[:, None, :] == values[None, :, None]
    # bool and int8 share a layout: a view, not a copy
    hot = hot.view(torch.int8) if dtype == torch.int8 else hot.to(dtype)
    return hot.reshape(-1, n)


@dataclass
class Right:
    """The right-hand operand of a counting product, built once for a block of neurons
    over all samples and reused by every row block: ``t`` holds ``step`` (kernel-specific)
    columns per neuron for ``k`` neurons with ``cols`` counted values each; a packed
    operand (``per_pair``) holds ``cols`` columns per pair of neurons."""

    t: torch.Tensor
    k: int
    cols: int
    step: int = 0
    per_pair: bool = False

    def neurons(self, j0: int, j1: int) -> "Right":
        """The operand of neurons ``j0 .. j1-1`` (a view; ``j0`` even for packed operands)."""
        if self.per_pair:
            if j0 % 2:
                raise ValueError("a packed operand starts at an even neuron")
            t = self.t[:, (j0 // 2) * self.cols:((j1 + 1) // 2) * self.cols]
        else:
            step = self.step or self.cols
            t = self.t[:, j0 * step:j1 * step]
        return Right(t, j1 - j0, self.cols, self.step, self.per_pair)


class CountingKernel(abc.ABC):
    r"""An exact counting kernel, split in three so that a blocked all-pairs computation
    builds each one-hot once: :meth:`left` (codes of a row block), :meth:`right` (codes
    of a column block, reused by every row block; :meth:`Right.neurons` slices it) and
    :meth:`product`: the exact counts **transposed**, ``(kb * cols_b, ka * cols_a)``, int32
    below 2**31 samples (on the project's AVX2 CPU MKL's float32 product runs at ~44
    instead of ~30 GMAC/s when the wide right operand is the product's first factor).
    Calling the kernel, ``kernel(ca, cb, ca_cols, cb_cols)``, does all three and returns
    ``(ka * cols_a, kb * cols_b)`` (a transposed view).

    ``left_bytes`` / ``right_bytes``: bytes per sample and neuron of the operands;
    ``cell_bytes``: bytes of product temporaries per counted cell (for block planning)."""

    name = "?"
    left_bytes = right_bytes = 4.0
    cell_bytes = 12.0

    @abc.abstractmethod
    def left(self, codes, cols):
        """Implemented by each kernel."""

    @abc.abstractmethod
    def right(self, codes, cols) -> Right:
        """Implemented by each kernel."""

    @abc.abstractmethod
    def product(self, left, right: Right, cols_a: int) -> torch.Tensor:
        """Implemented by each kernel."""

    def __call__(self, ca, cb, ca_cols, cb_cols):
        return self.product(self.left(ca, ca_cols), self.right(ca if cb is None else cb, cb_cols), ca_cols).T

    def __repr__(self):
        return f"<counting kernel {self.name}>"


class _Float32(CountingKernel):
    """float32 products of one-hots over blocks of fewer than 2**24 samples (every count
    in a block is exact in float32), converted to integers and summed."""

    name = "float32"

    def left(self, codes, cols):
        return _one_hot(codes, cols, torch.float32)          # (n, ka*cols)

    def right(self, codes, cols):
        return Right(_one_hot(codes, cols, torch.float32), codes.shape[1], cols)

    def product(self, left, right, cols_a):
        n = left.shape[0]
        total = None
        step = MAX_F32_EXACT - 1
        for s0 in range(0, max(n, 1), step):  # loop over sample blocks
            part = torch.mm(right.t[s0:s0 + step].T, left[s0:s0 + step]).to(_acc_dtype(n))
            total = part if total is None else total.add_(part)
        return total


PACK_BASE = 2**12      # two counts per float32: lo + 4096 * hi, exact while both stay < 4096
_PACK_CHUNK = PACK_BASE - 1
_PACK_SHIFT = 12


class _Float32Packed(CountingKernel):
    r"""float32 products with two counted cells per output column: the right operand's
    columns (neuron ``j``, value ``v``) are numbered ``f = j * cols + v`` and column
    ``f // 2`` holds ``[b_j = v]`` (``f`` even) or ``4096 [b_j = v]`` (``f`` odd), so one
    product gives ``C[f] + 4096 C[f+1]``, exact in float32 over chunks of 4,095 samples
    (both counts < 4096, the sum < 2**24), and decoded by a mask and a shift. Packing runs
    across neurons, so ``kb * cols / 2`` columns instead of ``kb * cols`` whatever the
    parity of ``cols``: ~2x fewer multiply-adds than ``float32``."""

    name = "float32_packed"
    right_bytes = 2.0            # per value column: half a float32
    cell_bytes = 14.0

    def left(self, codes, cols):
        return _one_hot(codes, cols, torch.float32)

    def right(self, codes, cols):
        n, k = codes.shape
        if k % 2:  # pad to a pair with a neuron whose code selects no column
            codes = torch.cat([codes, torch.full((n, 1), cols, dtype=codes.dtype, device=codes.device)], 1)
        # a pair of neurons (2i, 2i+1) fills cols packed columns: value v of the first is
        # slot v, of the second slot cols + v; slot f goes to column f // 2 with weight
        # 1 (f even) or 4096 (f odd); values >= cols (the dropped last bin) select nothing
        r = cols + 1
        tables = torch.zeros(2, r, cols, dtype=torch.float32, device=codes.device)
        v = torch.arange(cols, device=codes.device)
        for second in (0, 1):
            f = v + second * cols
            tables[second, v, f // 2] = torch.where(f % 2 == 0, 1.0, float(PACK_BASE))
        first, second = codes[:, 0::2].clamp(max=cols), codes[:, 1::2].clamp(max=cols)
        if r * r * cols <= 2**20:
            # one gather from a table of value pairs (fewer passes over the large operand)
            pairs = (tables[0][:, None, :] + tables[1][None, :, :]).reshape(r * r, cols)
            t = _gather_rows(pairs, first.to(torch.int32) * r + second)
        else:
            t = _gather_rows(tables[0], first)
            t += _gather_rows(tables[1], second)
        return Right(t, k, cols, per_pair=True)

    def product(self, left, right, cols_a):
        n = left.shape[0]
        lo = hi = None
        for s0 in range(0, max(n, 1), _PACK_CHUNK):  # loop over sample chunks
            r = torch.mm(right.t[s0:s0 + _PACK_CHUNK].T, left[s0:s0 + _PACK_CHUNK]).to(torch.int32)
            if lo is None:
                hi = torch.bitwise_right_shift(r, _PACK_SHIFT).to(_acc_dtype(n))
                lo = r.bitwise_and_(PACK_BASE - 1).to(_acc_dtype(n))
            else:
                hi += torch.bitwise_right_shift(r, _PACK_SHIFT)
                lo += r.bitwise_and_(PACK_BASE - 1)
        out = torch.stack((lo, hi), 1).reshape(-1, lo.shape[1])   # row f = j * cols + v
        return out[:right.k * right.cols]


class _Int8(CountingKernel):
    """int32 counts from ``torch._int_mm`` (int8 x int8); raises RuntimeError where it is
    missing."""

    name = "int8"
    left_bytes = right_bytes = 1.0
    cell_bytes = 8.0

    def left(self, codes, cols):
        if not hasattr(torch, "_int_mm"):
            raise RuntimeError("this torch build has no torch._int_mm")
        if len(codes) >= 2**31:
            raise RuntimeError("int8 counting needs fewer than 2**31 samples")
        return _one_hot_t(codes, cols, torch.int8)           # (ka*cols, n)

    def right(self, codes, cols):
        return Right(_one_hot(codes, cols, torch.int8), codes.shape[1], cols)

    def product(self, left, right, cols_a):
        return torch._int_mm(left, right.t).T


#: name -> kernel ``f(ca, cb, ca_cols, cb_cols) -> (ka*ca_cols, kb*cb_cols)`` exact counts
#: (:class:`CountingKernel`; float32 first: it runs everywhere, and a kernel timed later
#: stops early once it is clearly slower)
KERNELS: dict[str, Callable] = {"float32": _Float32(), "float32_packed": _Float32Packed(), "int8": _Int8()}


class _PlainKernel(CountingKernel):
    """A plain function ``f(ca, cb, ca_cols, cb_cols)`` (e.g. a stand-in in a test) used
    block by block: its operands are the codes themselves."""

    left_bytes = right_bytes = 1.0
    cell_bytes = 16.0

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def left(self, codes, cols):
        return codes, cols

    def right(self, codes, cols):
        return Right(codes, codes.shape[1], cols, step=1)

    def product(self, left, right, cols_a):
        return self.fn(left[0], right.t, left[1], right.cols).T

    def __call__(self, ca, cb, ca_cols, cb_cols):
        return self.fn(ca, cb, ca_cols, cb_cols)


def blocked_kernel(name: str) -> CountingKernel:
    """The kernel ``name`` of :data:`KERNELS` as a :class:`CountingKernel` (a plain
    function is wrapped: it then runs once per block)."""
    fn = KERNELS[name]
    return fn if isinstance(fn, CountingKernel) else _PlainKernel(name, fn)


@dataclass
class KernelChoice:
    """Which counting kernel runs on a device type, and why."""

    name: str
    device_type: str
    source: str                      # "measured", "set_counting_kernel" or "NIFKIT_COUNT_KERNEL"
    timings: dict = field(default_factory=dict)   # seconds per small probe block (measured choices)
    failed: dict = field(default_factory=dict)    # kernel -> error, kernels that did not run
    timings_large: dict = field(default_factory=dict)  # seconds per large probe block (the finalists)

    def __str__(self) -> str:
        if self.source != "measured":
            return f"{self.name} on {self.device_type} (forced by {self.source})"

        def fmt(d):
            return ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in sorted(d.items(), key=lambda kv: kv[1]))

        f = "".join(f"; {k} unavailable ({e})" for k, e in self.failed.items())
        large = (f"; then {_PROBE_LARGE[0]} samples x {_PROBE_LARGE[1]}x{_PROBE_LARGE[2]} neurons: "
                 f"{fmt(self.timings_large)}" if self.timings_large else "")
        return (f"{self.name} on {self.device_type}: fastest on a {_PROBE[0]} samples x "
                f"{_PROBE[1]}x{_PROBE[1]} neurons x {_PROBE[2] + 1} bins probe ({fmt(self.timings)}){large}{f}")


_PROBE = (2048, 32, 7)            # samples, neurons per side, one-hot columns (8 bins)
# the finalists (within 3x of the best on the small probe) again on a block shaped like the
# all-pairs blocks: on the small probe fixed costs hide float32_packed's halved product
_PROBE_LARGE = (4095, 64, 128)    # samples, neurons left, neurons right (8 bins)
_CHOSEN: dict[str, KernelChoice] = {}   # device type -> measured choice (once per process)
_FORCED: str | None = None              # set_counting_kernel


def _check_name(name, where):
    if name not in KERNELS:
        raise ValueError(f"{where} must be one of {sorted(KERNELS) + ['auto']}, got {name!r}")
    return name


def set_counting_kernel(name: str | None) -> None:
    """Force a counting kernel for this process (``"int8"``, ``"float32"``,
    ``"float32_packed"``), or ``None`` /
    ``"auto"`` to go back to choosing by measurement. Takes precedence over the
    ``NIFKIT_COUNT_KERNEL`` environment variable."""
    global _FORCED
    if name is None or name == "auto":
        _FORCED = None
    else:
        _FORCED = _check_name(name, "set_counting_kernel's name")


def choose_fastest(timings: dict) -> str:
    """The kernel with the smallest time (ties: the first in :data:`KERNELS` order)."""
    if not timings:
        raise RuntimeError("no counting kernel ran on this device")
    order = list(KERNELS)
    return min(timings, key=lambda k: (timings[k], order.index(k) if k in order else len(order)))


def _probe_codes(device, n, ka, kb, cols):
    g = torch.Generator().manual_seed(0)
    ca = torch.randint(0, cols + 1, (n, ka), generator=g, dtype=torch.uint8)
    cb = torch.randint(0, cols + 1, (n, kb), generator=g, dtype=torch.uint8)
    return ca.to(device), cb.to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(device):
    """The probe's clock: on the CPU (probed on one torch thread) the calling thread's CPU
    time (all the work runs on it; a kernel that waits for a core that another process
    holds is not charged for the wait, so a busy machine does not flip the choice);
    elsewhere the wall clock after a sync."""
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.thread_time
    return time.perf_counter


def _time_round_robin(names, ca, cb, cols, device, repeats, timings):
    """Best of ``repeats`` round-robin runs of each kernel on ``ca``, ``cb`` (a burst of
    other load does not hit one kernel only); a kernel 3x slower than the best after the
    first round is not timed again."""
    clock = _clock(device)
    for r in range(repeats):
        for name in names:
            if r and timings[name] > 3 * min(timings.values()):
                continue  # clearly slower: no need to wait for it again
            _sync(device)
            t0 = clock()
            KERNELS[name](ca, cb, cols, cols)
            _sync(device)
            timings[name] = min(timings.get(name, float("inf")), clock() - t0)
    return timings


def measure_kernels(device=None, repeats: int = 3) -> KernelChoice:
    """Time every kernel of :data:`KERNELS` on the probe block on ``device`` and return the
    choice (not cached; :func:`counting_kernel_info` caches): the best of ``repeats``
    round-robin runs, on the CPU on one thread in CPU time (see :func:`_clock`); the kernels within 3x
    of the best are then timed again on a larger block shaped like the all-pairs blocks
    (``_PROBE_LARGE``), which decides. A kernel that raises is recorded in ``failed``;
    one 3x slower than the best after the first round is not timed again."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cpu":
        # one thread: CPU time measures each kernel's work whatever the machine's load
        # (with more threads the wall clock would have to do, and under load it flipped
        # the choice); the kernels are the same products with more threads
        from ..runtime import cpu_threads

        with cpu_threads(1):
            return _measure(device, repeats)
    return _measure(device, repeats)


def _measure(device, repeats):
    n, k, cols = _PROBE
    ca, cb = _probe_codes(device, n, k, k, cols)
    timings, failed = {}, {}
    for name, fn in KERNELS.items():  # warm-up: thread pools, allocator; drops kernels that cannot run
        try:
            fn(ca[:64, :4], cb[:64, :4], cols, cols)
        except RuntimeError as exc:
            failed[name] = str(exc).splitlines()[0][:120]
    _time_round_robin([k for k in KERNELS if k not in failed], ca, cb, cols, device, repeats, timings)
    finalists = [k for k in KERNELS if k in timings and timings[k] <= 3 * min(timings.values())]
    large = {}
    if len(finalists) > 1:
        n, ka, kb = _PROBE_LARGE
        ca, cb = _probe_codes(device, n, ka, kb, cols)
        _time_round_robin(finalists, ca, cb, cols, device, repeats, large)
    return KernelChoice(choose_fastest(large or timings), device.type, "measured", timings, failed, large)


@checked
def counting_kernel_info(device=None) -> KernelChoice:
    """The counting kernel used on ``device`` (default CPU) and why: forced by
    :func:`set_counting_kernel`, by ``NIFKIT_COUNT_KERNEL``, or measured (once per
    process and device type; the timings are in the result)."""
    dev = torch.device("cpu" if device is None else device)
    if _FORCED is not None:
        return KernelChoice(_FORCED, dev.type, "set_counting_kernel")
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env and env != "auto":
        return KernelChoice(_check_name(env, f"the environment variable {ENV_VAR}"), dev.type, ENV_VAR)
    if dev.type not in _CHOSEN:
        _CHOSEN[dev.type] = measure_kernels(dev)
    return _CHOSEN[dev.type]


@checked
def counting_kernel(device=None) -> str:
    """Name of the counting kernel used on ``device`` (``"int8"``, ``"float32"`` or
    ``"float32_packed"``); see
    :func:`counting_kernel_info` for why."""
    return counting_kernel_info(device).name


def count_pairs(ca: torch.Tensor, cb, ca_cols: int, cb_cols: int, kernel: str | None = None) -> torch.Tensor:
    """``O_a^T O_b`` for one-hots of the codes ``ca (n, ka)`` / ``cb (n, kb)`` (``cb=None``:
    ``ca`` with itself) over the values ``0..cols-1``: exact counts ``(ka*ca_cols, kb*cb_cols)``,
    int32 (int64 from 2**31 samples). ``kernel=None``: the chosen one."""
    name = counting_kernel(ca.device) if kernel is None else _check_name(kernel, "kernel")
    try:
        return KERNELS[name](ca, cb, ca_cols, cb_cols)
    except RuntimeError as exc:
        err = kernel_failure(name, kernel is not None, ca.device, exc)
        if err is exc:
            raise
        raise err from exc


def kernel_failure(name: str, explicit: bool, device, exc: Exception) -> Exception:
    """The error to raise when the kernel ``name`` failed: the original one for a measured
    choice (it ran on the probe, so this is a real error), else a RuntimeError that says
    how to let nifkit choose a kernel that works."""
    info = counting_kernel_info(device)
    if not explicit and info.source == "measured":
        return exc
    return RuntimeError(f"the counting kernel {name!r} ({'kernel=' if explicit else info.source}) "
                        f"failed on {torch.device(device).type}: {exc}. Use set_counting_kernel('auto') or "
                        f"{ENV_VAR}=auto to let nifkit choose one that works.")
