"""Binning and all-pairs MI: equal to a per-pair reference, streaming, budget, errors."""
import numpy as np
import pytest
import torch

from nifkit.info import (
    Binner,
    PairwiseMI,
    discretize,
    mutual_information,
    pairwise_mi,
    pairwise_shuffle_test,
    plugin_bias,
)
from nifkit.info import pairwise as pw


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
    k = pw._block_size(800, 5, 5, 50_000, True)
    assert k < 10  # really blocked
    np.testing.assert_allclose(pairwise_mi(c, memory_budget=50_000), pairwise_mi(c), atol=1e-12, rtol=0)


def test_float32_fallback_path_is_exact(monkeypatch):
    c = correlated_codes(2, n=600, m=12)
    fast = pairwise_mi(c)
    monkeypatch.setattr(pw, "_INT_MM_FAILED", {"cpu"})
    np.testing.assert_allclose(pairwise_mi(c), fast, atol=1e-12, rtol=0)


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
