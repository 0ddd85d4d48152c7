"""Counting kernels and the blocked all-pairs driver: exact counts and MI against a
bincount reference in the edge cases the blocking and packing create (2 bins, odd neuron
counts, different widths of a and b, samples not a multiple of a chunk, counts above a
chunk's exact limit, several column blocks, runs of samples, wide codes)."""
import math

import numpy as np
import pytest
import torch

from nifkit.info import kernels, pairwise_mi
from nifkit.info import counts as info_counts
from nifkit.info import pairwise as pw

REAL_KERNELS = ["float32", "float32_packed", "int8"]


@pytest.fixture
def forced(monkeypatch):
    """Force a kernel for one test; no cached choice or environment override leaks."""
    monkeypatch.setattr(kernels, "_FORCED", None)
    monkeypatch.setattr(kernels, "_CHOSEN", {})
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    yield kernels.set_counting_kernel
    kernels.set_counting_kernel(None)


def bincount_counts(a, b, ba, bb):
    """Reference joint counts ``(ka, ba, kb, bb)``: one numpy bincount per pair (test-only loop)."""
    out = np.zeros((a.shape[1], ba, b.shape[1], bb), dtype=np.int64)
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            out[i, :, j, :] = np.bincount(a[:, i].astype(np.int64) * bb + b[:, j], minlength=ba * bb).reshape(ba, bb)
    return out


def bincount_mi(a, b, ba, bb):
    """Reference plug-in MI (bits) of every pair from the bincount tables."""
    c = bincount_counts(a, b, ba, bb).astype(np.float64).transpose(0, 2, 1, 3)   # (ka, kb, ba, bb)
    n = a.shape[0]
    p = c / n
    pa, pb = p.sum(3, keepdims=True), p.sum(2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p / (pa * pb)), 0.0)
    return terms.sum((2, 3))


def skewed_codes(seed, n, m, bins, heavy=None):
    """Codes with dependence between neurons; ``heavy``: (neuron, value) given to the
    first 5,000 samples, so that one cell's count exceeds a 4,095-sample chunk."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, bins, (n, 1))
    c = np.where(rng.random((n, m)) < 0.5, z, rng.integers(0, bins, (n, m)))
    if heavy is not None:
        c[:5000, heavy[0]] = heavy[1]
    return c.astype(np.uint8)


@pytest.mark.parametrize("name", REAL_KERNELS)
@pytest.mark.parametrize("ba, bb, ka, kb", [(2, 2, 3, 5), (8, 8, 5, 7), (8, 3, 4, 3), (5, 8, 1, 1)])
def test_counts_equal_bincount(name, ba, bb, ka, kb):
    # 2 * 4,095 + 17 samples: not a multiple of a packed chunk; neuron 0 of b holds one
    # value 5,000 times (more than a chunk's exact limit of 4,095)
    n = 2 * 4095 + 17
    a = skewed_codes(1, n, ka, ba)
    b = skewed_codes(2, n, kb, bb, heavy=(0, bb - 2))
    ref = bincount_counts(a, b, ba, bb)[:, : ba - 1, :, : bb - 1]
    got = kernels.count_pairs(torch.from_numpy(a), torch.from_numpy(b), ba - 1, bb - 1, kernel=name)
    assert got.shape == (ka * (ba - 1), kb * (bb - 1))
    assert not got.is_floating_point()
    np.testing.assert_array_equal(got.reshape(ka, ba - 1, kb, bb - 1).numpy(), ref)


def test_packed_operand_pairs_neurons_and_slices_at_even_neurons():
    n = 300
    b = skewed_codes(3, n, 7, 8)
    k = kernels.KERNELS["float32_packed"]
    right = k.right(torch.from_numpy(b), 7)
    assert right.t.shape == (n, 4 * 7)          # 7 neurons -> 4 pairs x 7 packed columns
    left = k.left(torch.from_numpy(b[:, :3]), 7)
    ref = bincount_counts(b[:, :3], b, 8, 8)[:, :7, :, :7]
    for j0, j1 in [(0, 7), (2, 7), (4, 5), (2, 3), (6, 7)]:
        counts = k.product(left, right.neurons(j0, j1), 7).T    # product: (b cells, a cells)
        np.testing.assert_array_equal(counts.reshape(3, 7, j1 - j0, 7).numpy(), ref[:, :, j0:j1])
    with pytest.raises(ValueError, match="even neuron"):
        right.neurons(1, 3)


def test_wide_codes_use_the_two_table_gather():
    # 300 bins: codes travel as int64 and the table of value pairs would be too large
    n = 5000
    rng = np.random.default_rng(4)
    a = rng.integers(0, 300, (n, 3))
    b = (a + rng.integers(0, 3, (n, 3))) % 300
    ref = bincount_counts(a, b, 300, 300)[:, :299, :, :299]
    for name in ("float32_packed", "float32"):
        got = kernels.count_pairs(torch.from_numpy(a), torch.from_numpy(b), 299, 299, kernel=name)
        np.testing.assert_array_equal(got.reshape(3, 299, 3, 299).numpy(), ref)
    # the blocked driver on them (called directly: the public function asks for at least
    # 300 x 300 samples with 300 bins)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    mi = pw._all_pairs(ta, tb, 300, 300, False, None, 512 * 2**20, False).numpy()
    np.testing.assert_allclose(mi, bincount_mi(a, b, 300, 300), atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", REAL_KERNELS)
def test_all_pairs_equal_bincount_mi_in_every_blocking(name, forced):
    forced(name)
    n = 4095 + 905
    c = skewed_codes(5, n, 23, 8, heavy=(4, 6))       # 23 neurons: odd, blocks end mid-pair
    d = skewed_codes(6, n, 9, 3)
    ref = bincount_mi(c, c, 8, 8)
    ref_cd = bincount_mi(c, d, 8, 3)
    kern = kernels.blocked_kernel(name)
    for budget in (512 * 2**20, 3 * 2**20, 2**19, 2**16):  # one block ... runs of samples
        ka, kb, s = info_counts.plan_pair_blocks(n, 23, 23, 7, 7, kern, budget)
        mi = pairwise_mi(c, n_bins=8, memory_budget=budget)
        np.testing.assert_allclose(mi, ref, atol=1e-9, rtol=0, err_msg=f"{name} budget {budget}: {ka, kb, s}")
        np.testing.assert_allclose(mi, mi.T, atol=0, rtol=0)
        mi_cd = pairwise_mi(c, d, n_bins=8, n_bins_b=3, memory_budget=budget)
        np.testing.assert_allclose(mi_cd, ref_cd, atol=1e-9, rtol=0)
    # the budgets above really reach several column blocks and runs of samples
    assert info_counts.plan_pair_blocks(n, 23, 23, 7, 7, kern, 2**19)[1] < 23
    assert info_counts.plan_pair_blocks(n, 23, 23, 7, 7, kern, 2**16)[2] < n


def test_two_bins_and_a_single_neuron(forced):
    for name in REAL_KERNELS:
        forced(name)
        c = skewed_codes(7, 5000, 9, 2)
        np.testing.assert_allclose(pairwise_mi(c, n_bins=2), bincount_mi(c, c, 2, 2), atol=1e-9, rtol=0)
        np.testing.assert_allclose(pairwise_mi(c[:, :1], c[:, 4:5], n_bins=2), bincount_mi(c[:, :1], c[:, 4:5], 2, 2),
                                   atol=1e-9, rtol=0)


def test_plan_is_even_and_fits_the_budget():
    kern = kernels.KERNELS["float32_packed"]
    for n, m, cols, budget in [(10_000, 1000, 7, 512 * 2**20), (10_000, 1000, 7, 64 * 2**20),
                               (1797, 128, 7, 512 * 2**20), (50_000, 301, 1, 2**20), (10**6, 5, 15, 2**20)]:
        ka, kb, s = info_counts.plan_pair_blocks(n, m, m, cols, cols, kern, budget)
        assert 1 <= ka <= m and 1 <= kb <= m and 1 <= s <= n
        assert ka == m or ka % 2 == 0
        assert kb == m or kb % 2 == 0
        need = s * (ka * cols * kern.left_bytes + kb * cols * kern.right_bytes)
        need += ka * cols * kb * cols * (kern.cell_bytes + info_counts.MI_CELL_BYTES)
        assert need <= budget or (ka, kb) == (2, 2), (n, m, cols, budget)
    # the foundation's problem: one column block (the one-hot of b built once), rows of 64
    assert info_counts.plan_pair_blocks(10_000, 1000, 1000, 7, 7, kern, 512 * 2**20) == (64, 1000, 10_000)


def test_a_plain_function_kernel_runs_block_by_block(forced, monkeypatch):
    real = kernels.KERNELS["float32"]
    calls = []

    def stand_in(ca, cb, ca_cols, cb_cols):  # a plain function, as a test or a user may add
        calls.append(ca.shape[1])
        return real(ca, cb, ca_cols, cb_cols)

    monkeypatch.setitem(kernels.KERNELS, "float32", stand_in)
    forced("float32")
    c = skewed_codes(8, 1500, 11, 5)
    mi = pairwise_mi(c, n_bins=5, memory_budget=2**17)
    np.testing.assert_allclose(mi, bincount_mi(c, c, 5, 5), atol=1e-9, rtol=0)
    assert len(calls) > 1  # really blocked


def test_mi_step_is_exact_for_float_and_integer_counts():
    c = skewed_codes(9, 3000, 6, 4)
    t = torch.from_numpy(c)
    inner = info_counts.inner_counts(t, None, 4, 4)
    marg = info_counts.marginal_bin_counts(t, 4)
    ref = bincount_mi(c, c, 4, 4)
    for counts in (inner, inner.to(torch.float64), inner.to(torch.int64)):
        np.testing.assert_allclose(info_counts.mi_from_inner(counts, marg, marg, 3000).numpy(), ref, atol=1e-9, rtol=0)
    # beyond the c log c table: xlogy on float64, same values
    big = kernels.xlog2x_counts(torch.tensor([0, 1, 7, 3000]), kernels.LUT_MAX + 1)
    np.testing.assert_allclose(big.numpy(), [0.0, 0.0, 7 * math.log2(7), 3000 * math.log2(3000)], rtol=1e-15)
