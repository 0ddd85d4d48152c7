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

The counting is the counting layer's (:mod:`nifkit.info.counts`): :class:`~nifkit.info.counts.PairBlocks`
(the blocked plan) for :func:`pairwise_mi`, and :class:`~nifkit.info.counts.PairCounts` for
streaming: :class:`PairwiseMI` is its all-pairs face (a data loader streams batches
through it, accumulators merge and reduce across processes), and both give their MI
with :func:`~nifkit.info.counts.mi_from_inner`. This module only adds the measure's
checks and result shape.
"""
from __future__ import annotations

import numpy as np
import torch

from .._validation import (
    check_correction,
    check_memory_budget,
    check_n_bins,
    check_n_samples,
    resolve_device,
)
from ..config import DEFAULT_MEMORY_BUDGET
from ..runtime import Progress, with_thread_policy
from .counts import PairBlocks, PairCounts, codes_tensor, marginal_bin_counts, mi_from_inner
from .._validation import checked

__all__ = ["pairwise_mi", "PairwiseMI"]


def _prepare(codes, name, n_bins, device, bins_name="n_bins"):
    """Checked codes on ``device`` (uint8 below 257 bins) and their number of bins
    (``None``: the largest code + 1, at least 2)."""
    t = codes_tensor(codes, name, device=device)
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no neurons (shape {tuple(t.shape)}); pass at least one column")
    if n_bins is None:
        n_bins = int(t.max()) + 1 if t.numel() else 2
    return codes_tensor(t, name, n_bins, bins_name=bins_name), int(max(n_bins, 2))


def _bins_pair(n_bins, n_bins_b):
    """Check ``n_bins`` (an int, an ``(a, b)`` pair or None) and ``n_bins_b``."""
    n_bins = check_n_bins(n_bins, "n_bins", allow_pair=True, allow_none=True)
    n_bins_b = check_n_bins(n_bins_b, "n_bins_b", allow_none=True)
    if isinstance(n_bins, tuple):
        if n_bins_b is not None:
            raise ValueError("give the bins of b either in n_bins=(a, b) or in n_bins_b, not both")
        n_bins, n_bins_b = n_bins
    return n_bins, n_bins_b


def _all_pairs(ta, tb, ba, bb, symmetric, correction, budget, progress) -> torch.Tensor:
    """The ``(ma, mb)`` MI matrix (float64, CPU) of the checked codes ``ta``, ``tb``
    (``tb`` is ``ta`` when ``symmetric``; then only pairs ``j >= i`` are counted): the
    counting layer's blocks (:class:`~nifkit.info.counts.PairBlocks`), each block's
    counts straight to the MI step."""
    n, ma = ta.shape
    blocks = PairBlocks(ta, tb, ba, bb, symmetric=symmetric, memory_budget=budget)
    cnt_a = marginal_bin_counts(ta, ba)
    cnt_b = cnt_a if symmetric else marginal_bin_counts(tb, bb)
    out = torch.empty(ma, tb.shape[1], dtype=torch.float64)
    with Progress(progress, len(blocks), "all-pairs MI", unit="block") as bar:
        for (i0, i1, c0, j1), inner in blocks:  # loop over blocks
            # the kernel's counts are transposed: (b neuron, b value, a neuron, a value)
            blk = mi_from_inner(inner, cnt_b[c0:j1], cnt_a[i0:i1], n, correction).cpu()   # (kb, ka)
            del inner
            out[i0:i1, c0:j1] = blk.T
            if symmetric:
                out[c0:j1, i0:i1] = blk
            bar.update(1)
    if symmetric:  # one value per pair (a diagonal block holds both orders, equal to ~1e-15)
        out = torch.triu(out) + torch.triu(out, 1).T
    return out


@checked
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


class PairwiseMI(PairCounts):
    """Streaming all-pairs MI: the all-pairs face of :class:`~nifkit.info.counts.PairCounts`
    (same counts, ``update``, ``merge``, ``reduce_across_processes``); add batches of
    codes, read the MI matrix at any time.

    Keeps the inner count table, ``neurons_a * (n_bins-1) * neurons_b * (n_bins-1)``
    int64 numbers (about 4 MiB for 100 x 100 neurons with 8 bins), so it suits layers of
    up to a few hundred neurons; for one-shot computation on large layers use
    :func:`pairwise_mi`, which works in blocks.

    Example::

        acc = PairwiseMI(n_bins=8)
        for xa, xb in batches:          # codes from a fitted Binner
            acc.update(xa, xb)
        mi = acc.mi()
    """

    @checked
    def __init__(self, n_bins: int = 8, n_bins_b=None, device=None):
        n_bins = check_n_bins(n_bins, "n_bins")
        n_bins_b = check_n_bins(n_bins_b, "n_bins_b", allow_none=True)
        super().__init__(n_bins, n_bins_b, device=device)
        self.bin_names = ("n_bins", "n_bins" if n_bins_b is None else "n_bins_b")

    @property
    def n_bins(self) -> int:
        return self.n_bins_a

    def mi(self, correction=None) -> np.ndarray:
        """The MI matrix (bits, ``(neurons_a, neurons_b)`` float64 array) of everything
        added so far; at least ``Ba * Bb`` samples (``ValueError`` otherwise)."""
        check_correction(correction)
        if self.n < 2:
            raise ValueError("need at least 2 samples; call update() with data first")
        ba, bb = self.n_bins_a, self.n_bins_b
        check_n_samples(self.n, ba * bb, f"a pair with {ba} x {bb} bins ({ba * bb} joint cells)",
                        "the updates so far")
        return super().mi(correction).cpu().numpy()
