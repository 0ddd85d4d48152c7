r"""All-pairs mutual information between binned neurons, vectorised.

For neurons ``a_1..a_m`` and ``b_1..b_k`` with codes in ``0..B-1`` the joint counts of
every pair come out of one matrix product of one-hot encodings:

.. math::

    C[(i,u),(j,v)] = \sum_s [a_{si} = u]\,[b_{sj} = v] = (O_A^\top O_B)[(i,u),(j,v)]

and with :math:`S(c) = \sum c \log_2 c` the plug-in MI of pair ``(i, j)`` is

.. math::

    I(a_i; b_j) = \log_2 n - \frac{S(c_{a_i}) + S(c_{b_j}) - S(C_{ij})}{n}.

The product is done in blocks of neurons whose temporaries fit ``memory_budget``
bytes. The product is exact whichever kernel computes it: an int8 x int8 -> int32
product (``torch._int_mm``) or a float32 product (exact for counts below 2**24; blocks
of samples beyond that are summed in float64). Which one is fastest depends on the CPU
(int8 wins with AVX-512 VNNI and loses 50x without), so it is chosen by measurement once
per process: see :func:`nifkit.info.counting_kernel` and :mod:`nifkit.info.kernels`. :class:`PairwiseMI` keeps the counts so that a data
loader can stream batches through it, and two accumulators can be merged.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..runtime import with_thread_policy
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
from .discrete import _check_correction
from .kernels import MAX_F32_EXACT as _MAX_F32_EXACT
from .kernels import count_pairs

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


def _inner_counts(ca: torch.Tensor, cb, ba: int, bb: int) -> torch.Tensor:
    """Joint counts of the cells ``u < ba-1, v < bb-1`` of every pair of the code blocks
    ``ca (n, ka)``, ``cb (n, kb)`` (``cb=None``: ``ca`` with itself), as a float64
    ``(ka, ba-1, kb, bb-1)`` tensor (int32 or float64). The last bin of each neuron is left out of the
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


def _mi_from_inner(inner, marg_a, marg_b, n, correction=None) -> torch.Tensor:
    """MI ``(ka, kb)`` in bits from inner counts ``(ka, ba-1, kb, bb-1)`` and marginal
    counts ``marg_a (ka, ba)``, ``marg_b (kb, bb)``. The missing cells:
    ``C[u, B-1] = c_a[u] - sum_v C[u, v]``, ``C[B-1, v] = c_b[v] - sum_u C[u, v]``,
    and the corner from ``c_b[B-1]``; nothing is assembled into a full table."""
    ba, bb = marg_a.shape[1], marg_b.shape[1]
    last_col = marg_a[:, : ba - 1, None] - inner.sum(3).to(torch.float64)   # (ka, ba-1, kb)
    last_row = marg_b[None, :, : bb - 1] - inner.sum(1).to(torch.float64)   # (ka, kb, bb-1)
    corner = marg_b[None, :, bb - 1] - last_col.sum(1)                      # (ka, kb)
    if not inner.is_floating_point() and n <= _LUT_MAX:
        # integer counts: c log2 c from a table instead of a float64 copy + xlogy
        s_inner = _xlog2x_table(n, inner.device)[inner].sum((1, 3))
    else:
        s_inner = _xlog2x(inner.to(torch.float64)).sum((1, 3))
    s_ab = s_inner + _xlog2x(last_col).sum(1) + _xlog2x(last_row).sum(2) + _xlog2x(corner)
    s_a = _xlog2x(marg_a).sum(1)[:, None]
    s_b = _xlog2x(marg_b).sum(1)[None, :]
    mi = math.log2(n) - (s_a + s_b - s_ab) / n
    if correction == "miller-madow":
        m_ab = (inner > 0).sum((1, 3)) + (last_col > 0).sum(1) + (last_row > 0).sum(2) + (corner > 0)
        m_a = (marg_a > 0).sum(1)[:, None]
        m_b = (marg_b > 0).sum(1)[None, :]
        mi = mi + (m_a + m_b - m_ab - 1).to(torch.float64) / (2 * n * LN2)
    return mi


def _marginal_counts(codes: torch.Tensor, n_bins: int) -> torch.Tensor:
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


def _block_size(n_rows, ba, bb, budget, symmetric):
    """Neurons per block so that one-hots, the joint block and MI temporaries fit."""
    # per block of k neurons on each side: 2 one-hots (n_rows * k * B * 4 bytes),
    # scatter indices (n_rows * k * 8), joint in float32 + float64 + xlogy temp (k^2 B^2 * 20)
    a = 28.0 * ba * bb
    b = n_rows * (4.0 * (ba + bb) + 16.0)
    budget = 0.8 * budget  # headroom for allocator slack and torch's workspaces
    k = (-b + math.sqrt(b * b + 4 * a * budget)) / (2 * a)
    return max(1, int(k))


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
    progress: bool = False,
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

    The counting kernel (int8 or float32 product, both exact) is the one measured fastest
    on this machine: :func:`nifkit.info.counting_kernel_info` says which and why.

    Too few samples for the bins are refused, as in ``flow_graph`` and ``layer_ei``:
    with ``Ba`` and ``Bb`` bins a pair has ``Ba * Bb`` joint cells and ``n`` must be at
    least that (below it the plug-in bias, about ``(Ba-1)(Bb-1) / (2 n ln 2)`` bits,
    swamps the estimate); the ``ValueError`` gives the minimum.

    Returns ``(neurons_a, neurons_b)`` float64 array.
    """
    _check_correction(correction)
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

    ma, mb = ta.shape[1], tb.shape[1]
    cnt_a = _marginal_counts(ta, ba)
    cnt_b = cnt_a if symmetric else _marginal_counts(tb, bb)
    out = torch.empty(ma, mb, dtype=torch.float64)

    k = _block_size(min(n, _MAX_F32_EXACT - 1), ba, bb, memory_budget, symmetric)
    starts_a = list(range(0, ma, k))
    starts_b = list(range(0, mb, k))
    jobs = [(i, j) for i in starts_a for j in starts_b if not symmetric or j >= i]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="all-pairs MI", unit="block")
    try:
        for i0 in starts_a:
            ia = slice(i0, min(i0 + k, ma))
            for j0 in starts_b:
                if symmetric and j0 < i0:
                    continue
                jb = slice(j0, min(j0 + k, mb))
                same = symmetric and i0 == j0
                inner = _inner_counts(ta[:, ia], None if same else tb[:, jb], ba, bb)
                blk = _mi_from_inner(inner, cnt_a[ia], cnt_b[jb], n, correction)
                del inner
                out[ia, jb] = blk.cpu()
                if symmetric and j0 != i0:
                    out[jb, ia] = blk.T.cpu()
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out.numpy()


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
        self.inner_ += _inner_counts(ta, None if self_pairs else tb, ba, bb).to(torch.float64)
        self.count_a_ += _marginal_counts(ta, ba)
        self.count_b_ += _marginal_counts(tb, bb)
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
        _check_correction(correction)
        if self.n_samples < 2:
            raise ValueError("need at least 2 samples; call update() with data first")
        ba, bb = self.count_a_.shape[1], self.count_b_.shape[1]
        check_n_samples(self.n_, ba * bb, f"a pair with {ba} x {bb} bins ({ba * bb} joint cells)",
                        "the updates so far")
        mi = _mi_from_inner(self.inner_, self.count_a_, self.count_b_, self.n_, correction)
        return mi.cpu().numpy()
