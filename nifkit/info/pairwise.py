r"""All-pairs mutual information between binned neurons, vectorised.

For neurons ``a_1..a_m`` and ``b_1..b_k`` with codes in ``0..B-1`` the joint counts of
every pair come out of one matrix product of one-hot encodings:

.. math::

    C[(i,u),(j,v)] = \sum_s [a_{si} = u]\,[b_{sj} = v] = (O_A^\top O_B)[(i,u),(j,v)]

and with :math:`S(c) = \sum c \log_2 c` the plug-in MI of pair ``(i, j)`` is

.. math::

    I(a_i; b_j) = \log_2 n - \frac{S(c_{a_i}) + S(c_{b_j}) - S(C_{ij})}{n}.

The product is done in blocks whose temporaries fit ``memory_budget`` bytes: the
one-hot of a column block of ``b`` (all of ``b`` when it fits) is built once and reused
by every row block of ``a`` (~64 neurons: in the symmetric case each row block starts at
its own diagonal, so only ``j >= i`` is counted, plus half a row block's square). Each
neuron's last bin is left out of the product (its cells follow from the marginals).
The product is exact whichever kernel computes it: an int8 x int8 -> int32 product
(``torch._int_mm``), a float32 product (exact for counts below 2**24) or a float32
product with two counts per column (``float32_packed``). Which one is fastest depends on
the CPU (int8 wins with AVX-512 VNNI and loses 50x without), so it is chosen by
measurement once per process: see :func:`nifkit.info.counting_kernel` and
:mod:`nifkit.info.kernels`. Counts stay integers until ``c log2 c``, read from a table.
:class:`PairwiseMI` keeps the counts so that a data
loader can stream batches through it, and two accumulators can be merged.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import (
    as_codes,
    as_counts,
    check_correction,
    check_memory_budget,
    check_n_bins,
    check_n_samples,
    check_number,
    resolve_device,
)
from ..config import DEFAULT_MEMORY_BUDGET
from ..runtime import Progress, with_thread_policy
from .kernels import blocked_kernel, count_pairs, counting_kernel, kernel_failure

__all__ = ["pairwise_mi", "PairwiseMI", "mi_from_counts"]

LN2 = math.log(2.0)


def _xlog2x(c: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(c, c) / LN2


def mi_from_counts(joint, count_a, count_b, n, correction=None):
    """Plug-in MI (bits) of pairs from their counts.

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
    s_ab = _xlog2x(j).sum(dim=(-2, -1))
    s_a = _xlog2x(ca).sum(dim=-1)
    s_b = _xlog2x(cb).sum(dim=-1)
    mi = math.log2(n) - (s_a + s_b - s_ab) / n
    if correction == "miller-madow":
        m_ab = (j > 0).sum(dim=(-2, -1))
        m_a = (ca > 0).sum(dim=-1)
        m_b = (cb > 0).sum(dim=-1)
        mi = mi + (m_a + m_b - m_ab - 1).to(torch.float64) / (2 * n * LN2)
    return mi.numpy() if as_np else mi


def _count_matmul(ca: torch.Tensor, cb, ca_cols: int, cb_cols: int) -> torch.Tensor:
    """``O_a^T O_b`` for one-hots of ``ca`` / ``cb`` (``None``: ``ca``), exact, with the
    counting kernel chosen for this device (:mod:`nifkit.info.kernels`)."""
    return count_pairs(ca, cb, ca_cols, cb_cols)


def inner_counts(ca: torch.Tensor, cb, ba: int, bb: int) -> torch.Tensor:
    """Joint counts of the cells ``u < ba-1, v < bb-1`` of every pair of the code blocks
    ``ca (n, ka)``, ``cb (n, kb)`` (``cb=None``: ``ca`` with itself), as an integer
    ``(ka, ba-1, kb, bb-1)`` tensor. The last bin of each neuron is left out of the
    product: its cells follow from the marginals (see :func:`_mi_from_inner`), which
    saves ``1 - (1 - 1/B)^2`` of the work (a quarter with 8 bins)."""
    ka = ca.shape[1]
    kb = ka if cb is None else cb.shape[1]
    return _count_matmul(ca, cb, ba - 1, bb - 1).reshape(ka, ba - 1, kb, bb - 1)


_LUT_MAX = 2**22  # largest sample count with a c*log2(c) table (32 MiB)
_LUT_CACHE: dict = {}


def _xlog2x_table(n: int, device) -> torch.Tensor:
    """``c * log2(c)`` for ``c = 0..n`` (float64), cached per size and device."""
    key = (n, str(device))
    if key not in _LUT_CACHE:
        if len(_LUT_CACHE) > 8:
            _LUT_CACHE.clear()
        _LUT_CACHE[key] = _xlog2x(torch.arange(n + 1, dtype=torch.float64, device=device))
    return _LUT_CACHE[key]


def _xlog2x_counts(c: torch.Tensor, n: int) -> torch.Tensor:
    """``c log2 c`` (float64) of integer counts ``0 <= c <= n``: one ``index_select`` from
    a table when ``n`` is at most :data:`_LUT_MAX` (~20x faster than ``xlogy`` on a
    float64 copy, and than ``table[c]``), else ``xlogy``."""
    if n <= _LUT_MAX:
        idx = c.reshape(-1)
        if idx.dtype not in (torch.int32, torch.int64):
            idx = idx.to(torch.int64)
        return _xlog2x_table(n, c.device).index_select(0, idx).reshape(c.shape)
    return _xlog2x(c.to(torch.float64))


def _mi_from_inner(inner, marg_a, marg_b, n, correction=None) -> torch.Tensor:
    """MI ``(ka, kb)`` in bits from inner counts ``(ka, ba-1, kb, bb-1)`` (integer, or
    float64 holding integers) and marginal counts ``marg_a (ka, ba)``, ``marg_b (kb, bb)``.
    The missing cells: ``C[u, B-1] = c_a[u] - sum_v C[u, v]``,
    ``C[B-1, v] = c_b[v] - sum_u C[u, v]``, and the corner from ``c_b[B-1]``; nothing is
    assembled into a full table. Counts stay integers (exact) until ``c log2 c``."""
    ka, ca, kb, cb = inner.shape
    inner = inner.contiguous()
    if inner.is_floating_point():
        inner = inner.to(torch.int64)   # streaming totals: integer counts held in float64
    it = inner.dtype if n < 2**31 else torch.int64   # sums of counts stay below n
    ma = marg_a.to(it)
    mb = marg_b.to(it)
    last_col = ma[:, :ca, None] - inner.sum(3, dtype=it)        # (ka, ca, kb)
    last_row = mb[None, :, :cb] - inner.sum(1, dtype=it)        # (ka, kb, cb)
    corner = mb[None, :, cb] - last_col.sum(1, dtype=it)        # (ka, kb)
    s_inner = _xlog2x_counts(inner, n).view(ka, ca, kb * cb).sum(1).view(ka, kb, cb).sum(2)
    s_ab = (s_inner + _xlog2x_counts(last_col, n).sum(1) + _xlog2x_counts(last_row, n).sum(2)
            + _xlog2x_counts(corner, n))
    s_a = _xlog2x_counts(ma, n).sum(1)[:, None]
    s_b = _xlog2x_counts(mb, n).sum(1)[None, :]
    mi = math.log2(n) - (s_a + s_b - s_ab) / n
    if correction == "miller-madow":
        m_ab = (inner > 0).sum((1, 3)) + (last_col > 0).sum(1) + (last_row > 0).sum(2) + (corner > 0)
        m_a = (ma > 0).sum(1)[:, None]
        m_b = (mb > 0).sum(1)[None, :]
        mi = mi + (m_a + m_b - m_ab - 1).to(torch.float64) / (2 * n * LN2)
    return mi


def marginal_bin_counts(codes: torch.Tensor, n_bins: int) -> torch.Tensor:
    """(n, m) codes -> (m, n_bins) float64 counts, one bincount for all neurons."""
    n, m = codes.shape
    # int32 labels when they fit: bincount over them is several times faster than int64
    dtype = torch.int32 if m * n_bins < 2**31 else torch.int64
    offsets = torch.arange(m, device=codes.device, dtype=dtype) * n_bins
    flat = (codes.to(dtype) + offsets).reshape(-1)
    return torch.bincount(flat, minlength=m * n_bins).reshape(m, n_bins).to(torch.float64)


def _prepare(codes, name, n_bins, device, bins_name="n_bins"):
    c = as_codes(codes, name)
    if c.ndim == 1:
        c = c[:, None]
    if c.shape[1] == 0:
        raise ValueError(f"{name} has no neurons (shape {c.shape}); pass at least one column")
    if n_bins is None:
        n_bins = int(c.max()) + 1 if c.size else 2
    if c.size and c.max() >= n_bins:
        raise ValueError(f"{name} has code {int(c.max())} but {bins_name}={n_bins}; codes must lie in "
                         f"0..{bins_name}-1 (pass a larger {bins_name}, or the codes of a Binner with it)")
    # small codes travel as uint8: one-hot comparisons and transposes move 8x less data
    t = torch.from_numpy(c.astype(np.uint8) if n_bins <= 256 else c)
    return t.to(device), int(max(n_bins, 2))


def _bins_pair(n_bins, n_bins_b):
    """Check ``n_bins`` (an int, an ``(a, b)`` pair or None) and ``n_bins_b``."""
    n_bins = check_n_bins(n_bins, "n_bins", allow_pair=True, allow_none=True)
    n_bins_b = check_n_bins(n_bins_b, "n_bins_b", allow_none=True)
    if isinstance(n_bins, tuple):
        if n_bins_b is not None:
            raise ValueError("give the bins of b either in n_bins=(a, b) or in n_bins_b, not both")
        n_bins, n_bins_b = n_bins
    return n_bins, n_bins_b
_MI_CELL_BYTES = 24.0   # MI step per counted cell: the int32 counts, their c log2 c (float64), sums


def _row_target(ca: int) -> int:
    """Neurons per row block: ~450 one-hot rows (the float32 product runs near its peak
    on AVX2 from ~450 rows on) between 16 and 128 neurons, even. Small, because in the
    symmetric case each row block also counts the lower half of its diagonal square:
    ``ka / m`` of extra work."""
    return max(16, min(128, 448 // max(ca, 1))) // 2 * 2


def _plan(n, ma, mb, ca, cb, kernel, budget):
    """Block sizes ``(ka, kb, s)`` for counting ``ma x mb`` neurons with ``ca``/``cb``
    counted values each over ``n`` samples within ``budget`` bytes: row blocks of ``ka``
    neurons, column blocks of ``kb`` neurons (one-hot built once per column block and
    reused by every row block: as wide as fits, ideally all of ``b``), samples in runs
    of ``s`` (``n`` unless even a 2 x 2 block of all samples does not fit). Block sizes
    are even unless they cover everything (packed operands pair neurons)."""
    room = 0.8 * budget  # headroom for allocator slack and torch's workspaces
    cell = kernel.cell_bytes + _MI_CELL_BYTES
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


def _block_size(n_rows, ba, bb, budget, symmetric):
    """Neurons per square block under ``budget`` for the chosen kernel (see :func:`_plan`)."""
    from .kernels import blocked_kernel, counting_kernel

    ka, kb, _ = _plan(n_rows, 10**9, 10**9, ba - 1, bb - 1, blocked_kernel(counting_kernel()), budget)
    return min(ka, kb)


def _all_pairs(ta, tb, ba, bb, symmetric, correction, budget, progress) -> torch.Tensor:
    """The ``(ma, mb)`` MI matrix (float64, CPU) of the uint8 codes ``ta``, ``tb`` (``tb``
    is ``ta`` when ``symmetric``; then only pairs ``j >= i`` are counted). Loops over
    column blocks (their one-hot built once), row blocks and, for huge ``n`` only, runs
    of samples; every block's counts go straight to the MI step."""
    n, ma = ta.shape
    mb = tb.shape[1]
    ca, cb = ba - 1, bb - 1
    dev = ta.device
    name = counting_kernel(dev)
    kern = blocked_kernel(name)
    ka, kb, s = _plan(n, ma, mb, ca, cb, kern, budget)
    cnt_a = marginal_bin_counts(ta, ba)
    cnt_b = cnt_a if symmetric else marginal_bin_counts(tb, bb)
    out = torch.empty(ma, mb, dtype=torch.float64)
    col_blocks = [(j0, min(j0 + kb, mb)) for j0 in range(0, mb, kb)]
    jobs = [(j0, j1, i0) for j0, j1 in col_blocks for i0 in range(0, j1 if symmetric else ma, ka)]
    bar = Progress(progress, len(jobs), "all-pairs MI", unit="block")
    right = None
    try:
        for j0, j1, i0 in jobs:  # loop over blocks
            i1 = min(i0 + ka, ma)
            c0 = max(i0, j0) if symmetric else j0
            counts = None
            for s0 in range(0, n, s):  # one run of samples unless n is huge
                try:
                    if s >= n:
                        if right is None or right[0] != j0:
                            right = (j0, kern.right(tb[:, j0:j1], cb))
                        r = right[1].neurons(c0 - j0, j1 - j0)
                    else:
                        r = kern.right(tb[s0:s0 + s, c0:j1], cb)
                    part = kern.product(kern.left(ta[s0:s0 + s, i0:i1], ca), r, ca)
                except RuntimeError as exc:
                    err = kernel_failure(name, False, dev, exc)
                    if err is exc:
                        raise
                    raise err from exc
                counts = part if counts is None else counts.to(torch.int64) + part
            # the kernel's counts are transposed: (b neuron, b value, a neuron, a value)
            inner = counts.reshape(j1 - c0, cb, i1 - i0, ca)
            blk = _mi_from_inner(inner, cnt_b[c0:j1], cnt_a[i0:i1], n, correction).cpu()   # (kb, ka)
            del inner, counts
            out[i0:i1, c0:j1] = blk.T
            if symmetric:
                out[c0:j1, i0:i1] = blk
            bar.update(1)
    finally:
        bar.close()
    if symmetric:  # one value per pair (a diagonal block holds both orders, equal to ~1e-15)
        out = torch.triu(out) + torch.triu(out, 1).T
    return out


@with_thread_policy
def pairwise_mi(
    a,
    b=None,
    *,
    n_bins=None,
    n_bins_b=None,
    correction=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    device=None,
    progress=False,
) -> np.ndarray:
    """MI in bits between every neuron of ``a`` and every neuron of ``b``.

    Parameters
    ----------
    a, b : integer codes ``(samples, neurons)`` (e.g. from :func:`discretize`). With
        ``b=None`` the MI matrix of ``a`` with itself is returned (symmetric, entropies
        on the diagonal) and only half of the pairs are computed.
    n_bins, n_bins_b : number of code values (default: max code + 1); ``n_bins`` may
        also be an ``(a, b)`` pair.
    correction : None or ``"miller-madow"``.
    memory_budget : bytes of temporaries allowed (default 512 MiB).
    device : torch device for the counting (``None``: CPU).
    num_threads : torch CPU threads (default: nifkit's thread policy, 1; see
        :mod:`nifkit.runtime`).
    progress : True for a bar, or a callable ``progress(done, total, "all-pairs MI")``
        called after each block of pairs.

    The counting kernel (int8 or float32 product, both exact) is the one measured fastest
    on this machine: :func:`nifkit.info.counting_kernel_info` says which and why.

    Too few samples for the bins are refused, as in ``flow_graph`` and ``layer_ei``:
    with ``Ba`` and ``Bb`` bins a pair has ``Ba * Bb`` joint cells and ``n`` must be at
    least that (below it the plug-in bias, about ``(Ba-1)(Bb-1) / (2 n ln 2)`` bits,
    swamps the estimate); the ``ValueError`` gives the minimum.

    Returns ``(neurons_a, neurons_b)`` float64 array.
    """
    check_correction(correction)
    n_bins, n_bins_b = _bins_pair(n_bins, n_bins_b)
    memory_budget = check_memory_budget(memory_budget)
    dev = resolve_device(device)
    ta, ba = _prepare(a, "a", n_bins, dev)
    symmetric = b is None
    if symmetric:
        tb, bb = ta, ba
    else:
        tb, bb = _prepare(b, "b", n_bins_b if n_bins_b is not None else n_bins, dev,
                          "n_bins_b" if n_bins_b is not None else "n_bins")
        if len(tb) != len(ta):
            raise ValueError(f"a and b must have the same number of samples, got {len(ta)} and {len(tb)}")
    n = len(ta)
    if n == 0:
        raise ValueError("a has no samples")
    check_n_samples(n, max(2, ba * bb), f"a pair with {ba} x {bb} bins ({ba * bb} joint cells)", "a")

    return _all_pairs(ta, tb, ba, bb, symmetric, correction, memory_budget, progress).numpy()


class PairwiseMI:
    """Streaming all-pairs MI: add batches of codes, read the MI matrix at any time.

    Keeps the joint count table, ``neurons_a * (n_bins-1) * neurons_b * (n_bins-1)``
    float64 numbers (about 4 MiB for 100 x 100 neurons with 8 bins), so it suits layers of
    up to a few hundred neurons; for one-shot computation on large layers use
    :func:`pairwise_mi`, which works in blocks.

    Example::

        acc = PairwiseMI(n_bins=8)
        for xa, xb in batches:          # codes from a fitted Binner
            acc.update(xa, xb)
        mi = acc.mi()
    """

    def __init__(self, n_bins: int = 8, n_bins_b=None, device=None):
        self.n_bins = n_bins
        self.n_bins_b = n_bins_b
        self.device = device

    def _settings(self):
        """Checked ``(n_bins, n_bins_b, device)`` of this accumulator."""
        ba = check_n_bins(self.n_bins, "n_bins")
        bb = check_n_bins(self.n_bins_b, "n_bins_b", allow_none=True)
        return ba, ba if bb is None else bb, resolve_device(self.device)

    def update(self, a, b=None) -> "PairwiseMI":
        """Add a batch of codes (``b=None``: pairs within ``a``)."""
        ba, bb, dev = self._settings()
        ta, _ = _prepare(a, "a", ba, dev)
        self_pairs = b is None
        tb = ta if self_pairs else _prepare(b, "b", bb, dev, "n_bins_b" if self.n_bins_b is not None else "n_bins")[0]
        if self_pairs:
            bb = ba
        if len(tb) != len(ta):
            raise ValueError(f"a and b must have the same number of samples, got {len(ta)} and {len(tb)}")
        if not hasattr(self, "inner_"):
            self.self_pairs_ = self_pairs
            self.inner_ = torch.zeros(ta.shape[1], ba - 1, tb.shape[1], bb - 1, dtype=torch.float64, device=dev)
            self.count_a_ = torch.zeros(ta.shape[1], ba, dtype=torch.float64, device=dev)
            self.count_b_ = torch.zeros(tb.shape[1], bb, dtype=torch.float64, device=dev)
            self.n_ = 0
        elif self.self_pairs_ != self_pairs or self.inner_.shape != (ta.shape[1], ba - 1, tb.shape[1], bb - 1):
            raise ValueError(
                "batch shape differs from earlier batches: every update needs the same neurons "
                f"(got {ta.shape[1]} x {tb.shape[1]})"
            )
        self.inner_ += inner_counts(ta, None if self_pairs else tb, ba, bb).to(torch.float64)
        self.count_a_ += marginal_bin_counts(ta, ba)
        self.count_b_ += marginal_bin_counts(tb, bb)
        self.n_ += len(ta)
        return self

    def merge(self, other: "PairwiseMI") -> "PairwiseMI":
        """Add the counts of another accumulator over the same neurons (e.g. a worker's).

        Both must count the same kind of pairs (within ``a``, or ``a`` x ``b``) with the
        same bins and neurons, else ``ValueError``; ``other``'s counts are moved to this
        accumulator's ``device`` (counts are exact, so the result does not depend on it).
        """
        if not isinstance(other, PairwiseMI):
            raise TypeError(f"other must be a PairwiseMI accumulator, got {type(other).__name__}")
        if other is self:
            raise ValueError("other is this accumulator itself; merging it would double its counts")
        ba, bb, dev = self._settings()
        oba, obb, _ = other._settings()
        if (ba, bb) != (oba, obb):
            raise ValueError(f"cannot merge accumulators with different bins: n_bins={ba}, n_bins_b={bb} here "
                             f"but n_bins={oba}, n_bins_b={obb} in other; build both with the same settings")
        if not hasattr(other, "inner_"):
            return self
        if not hasattr(self, "inner_"):
            for attr in ("self_pairs_", "inner_", "count_a_", "count_b_", "n_"):
                v = getattr(other, attr)
                setattr(self, attr, v.to(dev, copy=True) if isinstance(v, torch.Tensor) else v)
            return self
        if self.self_pairs_ != other.self_pairs_:
            kinds = {True: "pairs within a (update(a))", False: "pairs of a x b (update(a, b))"}
            raise ValueError(f"cannot merge accumulators of different pairs: this one counts "
                             f"{kinds[self.self_pairs_]}, other {kinds[other.self_pairs_]}")
        if self.inner_.shape != other.inner_.shape:
            raise ValueError(f"cannot merge accumulators over different neurons: "
                             f"{self.count_a_.shape[0]} x {self.count_b_.shape[0]} here, "
                             f"{other.count_a_.shape[0]} x {other.count_b_.shape[0]} in other")
        self.inner_ += other.inner_.to(self.inner_.device)
        self.count_a_ += other.count_a_.to(self.inner_.device)
        self.count_b_ += other.count_b_.to(self.inner_.device)
        self.n_ += other.n_
        return self

    @property
    def n_samples(self) -> int:
        return getattr(self, "n_", 0)

    def mi(self, correction=None) -> np.ndarray:
        """The MI matrix (bits) of everything added so far."""
        check_correction(correction)
        if self.n_samples < 2:
            raise ValueError("need at least 2 samples; call update() with data first")
        ba, bb = self.count_a_.shape[1], self.count_b_.shape[1]
        check_n_samples(self.n_, ba * bb, f"a pair with {ba} x {bb} bins ({ba * bb} joint cells)",
                        "the updates so far")
        mi = _mi_from_inner(self.inner_, self.count_a_, self.count_b_, self.n_, correction)
        return mi.cpu().numpy()
