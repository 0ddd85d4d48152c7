"""Binning and all-pairs MI: equal to a per-pair reference, streaming, budget, errors."""
import time

import numpy as np
import pytest
import torch

import nifkit.info

from nifkit.info import (
    Binner,
    PairwiseMI,
    discretize,
    mutual_information,
    pairwise_mi,
    pairwise_shuffle_test,
    plugin_bias,
)
from nifkit.info import kernels
from nifkit.info import counts


def per_pair_reference(a, b, correction=None):
    return np.array([[mutual_information(a[:, i], b[:, j], correction=correction) for j in range(b.shape[1])]
                     for i in range(a.shape[1])])


def correlated_codes(seed=0, n=1500, m=24, bins=6):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    x = z @ rng.standard_normal((4, m)) + 0.7 * rng.standard_normal((n, m))
    return discretize(x, n_bins=bins, binning="quantile")


@pytest.mark.parametrize("correction", [None, "miller-madow"])
def test_all_pairs_equals_per_pair_reference(correction):
    c = correlated_codes()
    ref = per_pair_reference(c, c, correction)
    np.testing.assert_allclose(pairwise_mi(c, correction=correction), ref, atol=1e-9, rtol=0)
    a, b = c[:, :7], c[:, 5:]
    np.testing.assert_allclose(pairwise_mi(a, b, correction=correction), ref[:7, 5:], atol=1e-9, rtol=0)


def test_tiny_budget_gives_same_values_in_many_blocks():
    c = correlated_codes(1, n=800, m=30, bins=5)
    ka, kb, _ = counts.plan_pair_blocks(800, 30, 30, 4, 4, kernels.blocked_kernel(kernels.counting_kernel()), 50_000)
    assert min(ka, kb) < 10  # really blocked
    np.testing.assert_allclose(pairwise_mi(c, memory_budget=50_000), pairwise_mi(c), atol=1e-12, rtol=0)


@pytest.fixture
def fresh_kernel_choice(monkeypatch):
    """No forced kernel, no cached choice, no environment override during the test."""
    monkeypatch.setattr(kernels, "_FORCED", None)
    monkeypatch.setattr(kernels, "_CHOSEN", {})
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    yield
    kernels.set_counting_kernel(None)


def test_every_kernel_gives_the_bincount_counts_and_the_reference_mi(fresh_kernel_choice):
    from pyitlib import discrete_random_variable as drv

    c = correlated_codes(2, n=600, m=12)
    ta = torch.from_numpy(c[:, :5].astype(np.uint8))
    tb = torch.from_numpy(c[:, 5:].astype(np.uint8))
    # reference counts: one numpy bincount per pair (test-only loop)
    ref = np.zeros((5, 6, 7, 6))
    for i in range(5):
        for j in range(7):
            ref[i, :, j, :] = np.bincount(c[:, i] * 6 + c[:, 5 + j], minlength=36).reshape(6, 6)
    mi_ref = np.array([[drv.information_mutual(c[:, i], c[:, j], base=2) for j in range(12)] for i in range(12)])
    assert set(kernels.KERNELS) == {"int8", "float32", "float32_packed"}
    for name in kernels.KERNELS:
        counts = kernels.count_pairs(ta, tb, 6, 6, kernel=name).to(torch.float64).reshape(5, 6, 7, 6)
        np.testing.assert_array_equal(counts.numpy(), ref)
        kernels.set_counting_kernel(name)
        assert kernels.counting_kernel() == name
        np.testing.assert_allclose(pairwise_mi(c), mi_ref, atol=1e-9, rtol=0)
        acc = PairwiseMI(n_bins=6).update(c[:300]).update(c[300:])
        np.testing.assert_allclose(acc.mi(), mi_ref, atol=1e-9, rtol=0)


def test_float32_kernel_sums_sample_blocks_beyond_the_exact_range(fresh_kernel_choice, monkeypatch):
    c = torch.from_numpy(correlated_codes(3, n=500, m=4).astype(np.uint8))
    whole = kernels.count_pairs(c, None, 5, 5, kernel="float32")
    monkeypatch.setattr(kernels, "MAX_F32_EXACT", 64)  # 500 samples -> 8 blocks
    assert torch.equal(kernels.count_pairs(c, None, 5, 5, kernel="float32"), whole)
    # the packed kernel: chunks of 4,095 samples, each packed sum < 2**24; odd and even bins
    big = torch.from_numpy(np.random.default_rng(9).integers(0, 7, (9000, 3)).astype(np.uint8))
    big[:5000, 0] = 5  # one cell with 5,000 > 4,095 counts: exact only through the chunking
    for cols in (6, 5):
        ref = kernels.count_pairs(big, big[:, 1:], cols, cols, kernel="float32")
        packed = kernels.count_pairs(big, big[:, 1:], cols, cols, kernel="float32_packed")
        assert packed.dtype == torch.int32 and torch.equal(packed.to(torch.float64), ref)


def _busy(seconds):
    """Burn CPU time for at least ``seconds`` of wall time and of this thread's CPU time
    (with one torch thread the probe times kernels in CPU time, so a stand-in made slow
    on purpose must work, not sleep)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    while time.thread_time() - c0 < seconds or time.perf_counter() - t0 < seconds:
        pass


def test_the_measured_choice_takes_the_faster_kernel(fresh_kernel_choice, monkeypatch):
    assert kernels.choose_fastest({"int8": 2.0, "float32": 0.5}) == "float32"
    assert kernels.choose_fastest({"int8": 0.1, "float32": 0.5}) == "int8"
    with pytest.raises(RuntimeError, match="no counting kernel"):
        kernels.choose_fastest({})
    # two candidates, so that the stand-ins below decide alone
    monkeypatch.setattr(kernels, "KERNELS", {"float32": kernels.KERNELS["float32"], "int8": kernels.KERNELS["int8"]})
    calls = []

    def slow_int8(*args):  # a stand-in int8 kernel made slow on purpose: it must lose
        calls.append(1)
        _busy(0.1)
        return kernels.KERNELS["float32"](*args).to(torch.int32)

    monkeypatch.setitem(kernels.KERNELS, "int8", slow_int8)
    info = kernels.counting_kernel_info()
    assert info.name == "float32" and info.source == "measured"
    assert info.timings["int8"] > info.timings["float32"]
    assert "float32 on cpu" in str(info) and "int8" in str(info)
    n_calls = len(calls)
    assert kernels.counting_kernel() == "float32" and len(calls) == n_calls  # cached: not measured again

    # and int8 wins where it is the faster (a VNNI CPU): the float32 kernel made slow instead
    monkeypatch.setattr(kernels, "_CHOSEN", {})
    real_f32 = kernels.KERNELS["float32"]
    monkeypatch.setitem(kernels.KERNELS, "int8", lambda *args: real_f32(*args).to(torch.int32))

    def slow_f32(*args):
        _busy(0.1)
        return real_f32(*args)

    monkeypatch.setitem(kernels.KERNELS, "float32", slow_f32)
    assert kernels.counting_kernel() == "int8"

    # a kernel that cannot run on the device is recorded and skipped
    monkeypatch.setattr(kernels, "_CHOSEN", {})
    monkeypatch.setitem(kernels.KERNELS, "float32", real_f32)

    def missing(*args):
        raise RuntimeError("no int8 matmul here")

    monkeypatch.setitem(kernels.KERNELS, "int8", missing)
    info = kernels.counting_kernel_info()
    assert info.name == "float32" and "no int8 matmul" in info.failed["int8"]


def test_forcing_by_environment_and_function(fresh_kernel_choice, monkeypatch):
    c = correlated_codes(4, n=400, m=6)
    monkeypatch.setenv("NIFKIT_COUNT_KERNEL", "int8")
    info = nifkit.info.counting_kernel_info()
    assert info.name == "int8" and info.source == "NIFKIT_COUNT_KERNEL"
    a = pairwise_mi(c)
    nifkit.info.set_counting_kernel("float32")  # the function wins over the environment
    assert nifkit.info.counting_kernel() == "float32"
    np.testing.assert_allclose(pairwise_mi(c), a, atol=1e-12, rtol=0)
    nifkit.info.set_counting_kernel("auto")
    assert nifkit.info.counting_kernel() == "int8"
    monkeypatch.setenv("NIFKIT_COUNT_KERNEL", "auto")
    assert nifkit.info.counting_kernel_info().source == "measured"
    monkeypatch.setenv("NIFKIT_COUNT_KERNEL", "fp16")
    with pytest.raises(ValueError, match="NIFKIT_COUNT_KERNEL must be one of"):
        pairwise_mi(c)
    with pytest.raises(ValueError, match="set_counting_kernel's name must be one of .*float32"):
        nifkit.info.set_counting_kernel("vnni")
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernels.count_pairs(torch.zeros(3, 2, dtype=torch.uint8), None, 2, 2, kernel="bincount")


def test_a_forced_kernel_that_fails_says_how_to_fix_it(fresh_kernel_choice, monkeypatch):
    def missing(*args):
        raise RuntimeError("no int8 matmul here")

    monkeypatch.setitem(kernels.KERNELS, "int8", missing)
    nifkit.info.set_counting_kernel("int8")
    with pytest.raises(RuntimeError, match="'int8' .*set_counting_kernel\\('auto'\\)"):
        pairwise_mi(correlated_codes(5, n=100, m=3))


def test_different_bins_for_a_and_b():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, (500, 4))
    b = (a[:, :2] * 2 + rng.integers(0, 2, (500, 2))) % 7
    np.testing.assert_allclose(pairwise_mi(a, b, n_bins=3, n_bins_b=7), per_pair_reference(a, b), atol=1e-9)


def test_streaming_accumulator_and_merge_equal_one_shot():
    c = correlated_codes(4, n=1200, m=10)
    one_shot = pairwise_mi(c, n_bins=6)
    acc = PairwiseMI(n_bins=6)
    for batch in np.array_split(c, 7):
        acc.update(batch)
    np.testing.assert_allclose(acc.mi(), one_shot, atol=1e-12)
    w1, w2 = PairwiseMI(n_bins=6), PairwiseMI(n_bins=6)
    w1.update(c[:500])
    w2.update(c[500:])
    np.testing.assert_allclose(w1.merge(w2).mi(), one_shot, atol=1e-12)
    assert w1.n_samples == 1200
    acc2 = PairwiseMI(n_bins=6).update(c[:, :3], c[:, 3:])
    np.testing.assert_allclose(acc2.mi(), one_shot[:3, 3:], atol=1e-12)
    with pytest.raises(ValueError, match="same neurons"):
        acc2.update(c[:, :4], c[:, 4:])


def test_torch_input_and_symmetry():
    c = correlated_codes(5, n=700, m=9)
    m = pairwise_mi(torch.from_numpy(c.astype(np.int64)))
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(m), [mutual_information(c[:, i], c[:, i]) for i in range(9)], atol=1e-9)


def test_bias_of_independent_neurons_matches_miller_madow_term():
    rng = np.random.default_rng(6)
    n, b = 2000, 8
    c = rng.integers(0, b, (n, 40))
    m = pairwise_mi(c, n_bins=b)
    off = m[~np.eye(40, dtype=bool)]
    assert off.mean() == pytest.approx(plugin_bias(b, b, n), rel=0.15)
    assert abs(pairwise_mi(c, n_bins=b, correction="miller-madow")[~np.eye(40, dtype=bool)].mean()) < 0.2 * off.mean()


def test_shuffle_null_flags_dependent_pairs_only():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, (600, 3))
    y = np.stack([x[:, 0], rng.integers(0, 4, 600)], axis=1)  # y0 copies x0, y1 independent
    res = pairwise_shuffle_test(x, y, n_shuffles=30, n_bins=4)
    assert res.p_value[0, 0] == pytest.approx(1 / 31)
    assert res.p_value[1, 1] > 0.05 or res.p_value[2, 1] > 0.05
    assert res.null_mean.shape == (3, 2)
    assert res.null_mean[0, 0] < 0.05


def test_binner_methods():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1000, 3)) * [1, 10, 0.1]
    q = discretize(x, n_bins=4, binning="quantile")
    for j in range(3):
        np.testing.assert_array_equal(np.bincount(q[:, j], minlength=4), [250] * 4)
    mm = discretize(x, n_bins=5)
    assert mm.min() == 0 and mm.max() == 4
    f = discretize(np.array([[-1.0], [0.0], [0.49], [0.5], [0.99], [2.0]]), n_bins=2, binning="fixed", bin_range=(0, 1))
    np.testing.assert_array_equal(f[:, 0], [0, 0, 0, 1, 1, 1])
    # a fitted binner applies the same edges to new batches
    bn = Binner(n_bins=5, binning="minmax").fit(x)
    np.testing.assert_array_equal(bn.transform(x[:10]), mm[:10])
    assert bn.transform(x[:10] + 1e6).max() == 4  # outside the fitted range: last bin
    # constant neuron: one bin
    assert set(discretize(np.ones((10, 1)), n_bins=3)[:, 0]) == {0}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: discretize(np.ones((5, 2)), n_bins=1), "n_bins"),
        (lambda: discretize(np.ones((5, 2)), binning="kmeans"), "binning"),
        (lambda: discretize(np.ones((5, 2)), binning="fixed"), "bin_range"),
        (lambda: discretize(np.ones((5, 2)), binning="fixed", bin_range=(1, 1)), "hi > lo"),
        (lambda: discretize(np.array([[0.0, np.nan]])), "NaN"),
        (lambda: discretize(np.ones((2, 3, 4))), "2-D"),
        (lambda: pairwise_mi(np.zeros((1, 3), int)), "too few samples"),
        (lambda: pairwise_mi(np.zeros((5, 3), int), np.zeros((6, 3), int)), "same number of samples"),
        (lambda: pairwise_mi(np.full((5, 3), 9), n_bins=8), "n_bins"),
        (lambda: pairwise_mi(np.zeros((5, 3), int), memory_budget=0), "memory_budget"),
        (lambda: pairwise_mi(np.zeros((5, 3), int), device="cuda:7"), "CUDA"),
        (lambda: PairwiseMI().mi(), "update"),
        (lambda: pairwise_mi(np.zeros((5, 3), int), correction="jackknife"), "correction"),
        (lambda: Binner().transform(np.ones((3, 3))), "before fit"),
    ],
)
def test_bad_input_errors(call, match):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        call()
