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
  runs of samples are cut into blocks of fewer than 2**24 samples whose counts are summed
  in float64.
* ``"float32_packed"``: a float32 product with two output bins packed into one column
  (``[b = 2h] + 4096 [b = 2h+1]``) over chunks of 4,095 samples, so every packed sum stays
  below 2**24 and is exact; about half the output columns, ~1.5x faster than ``float32``
  with 8 bins on an AVX2 CPU (measured: 10,000 samples x 100 x 100 neurons, 1 thread,
  2.3 s vs 3.4-4.0 s on the loaded project machine).

(A third candidate, ``torch.bincount`` of packed pair codes, was measured and left out:
its cost grows with samples x pairs whatever the bins and it needs one int32 label per
sample and pair in memory. On the project's AVX2 machine, 1 thread, it was 2-9x slower
than the float32 product on a 2,048-sample x 32 x 32-neuron block with 2 to 8 bins, 5x
slower on a 10,000 x 100 x 100 block with 8 bins, and only 1.2x faster there with 16
bins.)

So nifkit does not assume: the first time counts are needed on a device type, each
candidate is timed on a small representative block (best of 3 round-robin runs, a few
milliseconds each for the winner; a kernel 3x slower than the best after the first round
is not timed again), the fastest is kept for the
rest of the process, and :func:`counting_kernel_info` says which one and why, with the
timings. :func:`set_counting_kernel` or the environment variable
``NIFKIT_COUNT_KERNEL=int8|float32|float32_packed|auto`` forces one (tests, benchmarks).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["KERNELS", "counting_kernel", "counting_kernel_info", "set_counting_kernel", "count_pairs",
           "KernelChoice", "ENV_VAR"]

ENV_VAR = "NIFKIT_COUNT_KERNEL"
MAX_F32_EXACT = 2**24  # float32 represents every integer count below this


def _one_hot_t(codes: torch.Tensor, n_cols: int, dtype) -> torch.Tensor:
    """``O^T``: ``(m * n_cols, n)`` one-hot of the values ``0..n_cols-1`` built from the
    transposed codes (transposing codes moves ``n_cols`` times less data than transposing
    the one-hot); larger values (the dropped last bin) give all-zero columns."""
    n = codes.shape[0]
    values = torch.arange(n_cols, device=codes.device, dtype=codes.dtype)
    hot = codes.T.contiguous()[:, None, :] == values[None, :, None]
    # bool and int8 share a layout: a view, not a copy
    hot = hot.view(torch.int8) if dtype == torch.int8 else hot.to(dtype)
    return hot.reshape(-1, n)


def _one_hot(codes: torch.Tensor, n_cols: int, dtype) -> torch.Tensor:
    """``O``: ``(n, m * n_cols)`` one-hot, neuron-major columns."""
    n, m = codes.shape
    values = torch.arange(n_cols, device=codes.device, dtype=codes.dtype)
    hot = codes[:, :, None] == values
    hot = hot.view(torch.int8) if dtype == torch.int8 else hot.to(dtype)
    return hot.reshape(n, m * n_cols)


def _count_int8(ca, cb, ca_cols, cb_cols):
    """int32 counts from ``torch._int_mm``; raises RuntimeError where it is missing."""
    if not hasattr(torch, "_int_mm"):
        raise RuntimeError("this torch build has no torch._int_mm")
    if len(ca) >= 2**31:
        raise RuntimeError("int8 counting needs fewer than 2**31 samples")
    ob = _one_hot(ca if cb is None else cb, cb_cols, torch.int8)
    return torch._int_mm(_one_hot_t(ca, ca_cols, torch.int8), ob)


def _count_float32(ca, cb, ca_cols, cb_cols):
    """float64 counts from float32 products over blocks of < 2**24 samples."""
    n = len(ca)
    total = None
    for s0 in range(0, max(n, 1), MAX_F32_EXACT - 1):  # loop over sample blocks
        sl = slice(s0, s0 + MAX_F32_EXACT - 1)
        oa_t = _one_hot_t(ca[sl], ca_cols, torch.float32)
        ob = _one_hot(ca[sl] if cb is None else cb[sl], cb_cols, torch.float32)
        part = (oa_t @ ob).to(torch.float64)
        total = part if total is None else total + part
    return total


PACK_BASE = 2**12      # two counts per float32: lo + 4096 * hi, exact while both stay < 4096
_PACK_CHUNK = PACK_BASE - 1


def _count_float32_packed(ca, cb, ca_cols, cb_cols):
    """int32 counts from float32 products with two output bins per column: the column of
    output bins ``(2h, 2h+1)`` holds ``[b = 2h] + 4096 [b = 2h+1]``, so one product gives
    ``C[u, 2h] + 4096 C[u, 2h+1]``, exact in float32 over chunks of 4,095 samples (both
    counts < 4096, the sum < 2**24), and decoded by one division. ``ceil(B/2)`` instead of
    ``B`` columns on the output side: ~1.5x less time than ``float32`` with 8 bins on the
    project's AVX2 CPU, ~2x with 16, a little more with 4."""
    cbb = ca if cb is None else cb
    n, kb = cbb.shape
    half = (cb_cols + 1) // 2
    hv = torch.arange(half, device=ca.device, dtype=cbb.dtype)
    total = None
    for s0 in range(0, max(n, 1), _PACK_CHUNK):  # loop over sample chunks
        b = cbb[s0:s0 + _PACK_CHUNK]
        a_t = _one_hot_t(ca[s0:s0 + _PACK_CHUNK], ca_cols, torch.float32)
        weight = torch.where(b % 2 == 0, 1.0, float(PACK_BASE)) * (b < cb_cols)
        packed = ((b // 2)[:, :, None] == hv).to(torch.float32).mul_(weight[:, :, None]).reshape(len(b), kb * half)
        r = a_t @ packed
        hi = torch.floor_(r / PACK_BASE)
        lo = r - hi * PACK_BASE
        c = torch.stack([lo, hi], -1).reshape(r.shape[0], kb, 2 * half)[:, :, :cb_cols].to(torch.int32)
        total = c if total is None else total + c
    return total.reshape(-1, kb * cb_cols)


#: name -> kernel ``f(ca, cb, ca_cols, cb_cols) -> (ka*ca_cols, kb*cb_cols)`` exact counts
#: (float32 first: it runs everywhere, and a kernel timed later stops early once it is
#: clearly slower)
KERNELS: dict[str, Callable] = {"float32": _count_float32, "float32_packed": _count_float32_packed,
                                "int8": _count_int8}


@dataclass
class KernelChoice:
    """Which counting kernel runs on a device type, and why."""

    name: str
    device_type: str
    source: str                      # "measured", "set_counting_kernel" or "NIFKIT_COUNT_KERNEL"
    timings: dict = field(default_factory=dict)   # seconds per probe block (measured choices)
    failed: dict = field(default_factory=dict)    # kernel -> error, kernels that did not run

    def __str__(self) -> str:
        if self.source != "measured":
            return f"{self.name} on {self.device_type} (forced by {self.source})"
        t = ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in sorted(self.timings.items(), key=lambda kv: kv[1]))
        f = "".join(f"; {k} unavailable ({e})" for k, e in self.failed.items())
        return (f"{self.name} on {self.device_type}: fastest on a {_PROBE[0]} samples x "
                f"{_PROBE[1]}x{_PROBE[1]} neurons x {_PROBE[2] + 1} bins probe ({t}){f}")


_PROBE = (2048, 32, 7)            # samples, neurons per side, one-hot columns (8 bins)
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


def _probe_codes(device):
    n, k, cols = _PROBE
    g = torch.Generator().manual_seed(0)
    ca = torch.randint(0, cols + 1, (n, k), generator=g, dtype=torch.uint8)
    cb = torch.randint(0, cols + 1, (n, k), generator=g, dtype=torch.uint8)
    return ca.to(device), cb.to(device), cols


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_kernels(device=None, repeats: int = 3) -> KernelChoice:
    """Time every kernel of :data:`KERNELS` on the probe block on ``device`` and return the
    choice (not cached; :func:`counting_kernel_info` caches): the best of ``repeats``
    round-robin runs. A kernel that raises is recorded in ``failed``; one 3x slower than
    the best after the first round is not timed again."""
    device = torch.device("cpu" if device is None else device)
    ca, cb, cols = _probe_codes(device)
    timings, failed = {}, {}
    for name, fn in KERNELS.items():  # warm-up: thread pools, allocator; drops kernels that cannot run
        try:
            fn(ca[:64, :4], cb[:64, :4], cols, cols)
        except RuntimeError as exc:
            failed[name] = str(exc).splitlines()[0][:120]
    alive = [k for k in KERNELS if k not in failed]
    for r in range(repeats):  # round-robin: a burst of other load does not hit one kernel only
        for name in alive:
            if r and timings[name] > 3 * min(timings.values()):
                continue  # clearly slower: no need to wait for it again
            _sync(device)
            t0 = time.perf_counter()
            KERNELS[name](ca, cb, cols, cols)
            _sync(device)
            timings[name] = min(timings.get(name, float("inf")), time.perf_counter() - t0)
    return KernelChoice(choose_fastest(timings), device.type, "measured", timings, failed)


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


def counting_kernel(device=None) -> str:
    """Name of the counting kernel used on ``device`` (``"int8"``, ``"float32"`` or
    ``"float32_packed"``); see
    :func:`counting_kernel_info` for why."""
    return counting_kernel_info(device).name


def count_pairs(ca: torch.Tensor, cb, ca_cols: int, cb_cols: int, kernel: str | None = None) -> torch.Tensor:
    """``O_a^T O_b`` for one-hots of the codes ``ca (n, ka)`` / ``cb (n, kb)`` (``cb=None``:
    ``ca`` with itself) over the values ``0..cols-1``: exact counts ``(ka*ca_cols, kb*cb_cols)``,
    int32 (int8, float32_packed) or float64 (float32). ``kernel=None``: the chosen one."""
    name = counting_kernel(ca.device) if kernel is None else _check_name(kernel, "kernel")
    try:
        return KERNELS[name](ca, cb, ca_cols, cb_cols)
    except RuntimeError as exc:
        info = counting_kernel_info(ca.device)
        if kernel is None and info.source == "measured":
            raise  # a measured kernel ran on the probe: this is a real error
        raise RuntimeError(f"the counting kernel {name!r} ({info.source if kernel is None else 'kernel='}) "
                           f"failed on {ca.device.type}: {exc}. Use set_counting_kernel('auto') or "
                           f"{ENV_VAR}=auto to let nifkit choose one that works.") from exc
