"""The one counter family: checked against plain per-pair histograms and dit-free
analytic cases; merging batches equals counting everything at once."""
import numpy as np
import pytest
import torch

from nifkit.info import (KeyCounts, LabelCounts, MarginalCounts, PairCounts, PairwiseMI, entropy, group_counts,
                         kl_profile_from_counts, label_counts, marginal_counts, mutual_information, pack,
                         pack_keys, p_values, pair_counts, pairwise_mi, reduce_across_processes)


@pytest.fixture
def codes():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(500, 3))
    b = (a[:, :2] + rng.integers(0, 2, size=(500, 2))) % 5
    y = (a[:, 0] + rng.integers(0, 2, size=500)) % 3
    return a, b, y


def test_pair_counts_match_per_pair_histograms(codes):
    a, b, _ = codes
    j = pair_counts(a, b, 4, 5).numpy()
    assert j.shape == (3, 4, 2, 5)
    for i in range(3):  # reference: one histogram per pair (test only)
        for k in range(2):
            ref = np.histogram2d(a[:, i], b[:, k], bins=[np.arange(5), np.arange(6)])[0]
            np.testing.assert_array_equal(j[i, :, k, :], ref)
    np.testing.assert_array_equal(marginal_counts(a, 4).numpy(), j[:, :, 0, :].sum(2))


def test_pair_counts_mi_equals_pairwise_mi_and_merges(codes):
    a, b, _ = codes
    acc = PairCounts(4, 5).update(a[:200], b[:200])
    acc.merge(PairCounts(4, 5).update(a[200:], b[200:]))
    whole = PairCounts(4, 5).update(a, b)
    assert acc.n == 500
    torch.testing.assert_close(acc.joint, whole.joint)
    np.testing.assert_allclose(acc.mi().numpy(), pairwise_mi(a, b, n_bins=4, n_bins_b=5), atol=1e-12)
    assert float(acc.mi()[0, 0]) == pytest.approx(mutual_information(a[:, 0], b[:, 0]), abs=1e-12)
    with pytest.raises(ValueError, match="different neurons"):
        acc.merge(PairCounts(4, 5).update(a[:, :2], b))
    with pytest.raises(TypeError, match="cannot merge"):
        acc.merge(LabelCounts(4, 3))


def test_label_counts_and_kl_profile(codes):
    a, _, y = codes
    t = label_counts(a, y, 4, 3)
    for u in range(3):
        ref = np.histogram2d(a[:, u], y, bins=[np.arange(5), np.arange(4)])[0]
        np.testing.assert_array_equal(t[u], ref)
    acc = LabelCounts(4, 3).update(a[:123], y[:123]).merge(LabelCounts(4, 3).update(a[123:], y[123:]))
    np.testing.assert_array_equal(acc.table.numpy(), t)
    prof = kl_profile_from_counts(t)
    prior = np.bincount(y) / len(y)
    # I(T;Y) = sum_y p(y) KL(P_T|y || P_T)
    np.testing.assert_allclose(prof @ prior, [mutual_information(a[:, u], y) for u in range(3)], atol=1e-12)
    np.testing.assert_allclose(kl_profile_from_counts(np.array([[10, 0], [0, 10]])), [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        kl_profile_from_counts(np.array([[np.nan, 1], [1, 1]]))
    with pytest.raises(ValueError, match="n_classes=2"):
        label_counts(a, y, 4, 2)


def test_packed_keys_and_group_entropies(codes):
    a, _, _ = codes
    keys = pack_keys(a, 4)
    np.testing.assert_array_equal(keys.numpy(), a @ (4 ** np.arange(3)))
    g = group_counts(a, [[0, 1], [2], [0, 1, 2]], 4)
    assert g[0].entropy() == pytest.approx(entropy(a[:, [0, 1]]), abs=1e-12)
    assert g[2].entropy() == pytest.approx(entropy(pack(a)), abs=1e-12)
    kc = KeyCounts().update(keys[:100]).merge(KeyCounts().update(keys[100:]))
    assert kc.n == 500 and kc.entropy() == pytest.approx(g[2].entropy(), abs=1e-12)
    first = kc.grouped(lambda k: k % 4)  # unit 0 alone
    assert first.entropy() == pytest.approx(entropy(a[:, 0]), abs=1e-12)
    with pytest.raises(ValueError, match="62-bit"):
        pack_keys(np.zeros((2, 40), dtype=np.int64), 8)


def test_reduce_is_a_no_op_alone_and_checks_types(codes):
    a, b, _ = codes
    acc = PairCounts(4, 5).update(a, b)
    assert reduce_across_processes(acc) is acc
    m = MarginalCounts(4).update(a)
    assert m.n == 500 and reduce_across_processes(m) is m
    assert reduce_across_processes(PairwiseMI(n_bins=4).update(a)).n_samples == 500


def test_p_values_vectorised_and_nan_safe():
    obs = np.array([0.5, 0.1, np.nan])
    null = [np.array([0.1, 0.2, 0.0]), np.array([0.6, 0.05, 0.0]), np.array([0.7, 0.3, np.nan])]
    np.testing.assert_allclose(p_values(obs, null), [3 / 4, 3 / 4, np.nan])
    # a NaN null value where the observed value is a number would look significant: refused
    with pytest.raises(ValueError, match=r"null holds NaN at \(2, 0\)"):
        p_values(obs, null[:2] + [np.array([np.nan, 0.3, 0.0])])
    with pytest.raises(ValueError, match="shaped like observed"):
        p_values(obs, [np.zeros(2)])


def test_row_keys_is_the_one_mixed_radix_packer():
    """row_keys gives one distinct key per distinct row (mixed radix by column
    cardinality), the keys that pack() and the group measures count; None past 62 bits."""
    from nifkit.info import pack
    from nifkit.info.keys import mixed_radix, row_keys

    rng = np.random.default_rng(5)
    codes = np.column_stack([rng.integers(0, k, 3000) for k in (2, 3, 7, 5)])
    keys = row_keys(codes)
    assert np.array_equal(keys, codes @ np.array([1, 2, 6, 42]))
    _, inv = np.unique(codes, axis=0, return_inverse=True)
    assert len(np.unique(keys)) == inv.max() + 1
    assert np.array_equal(pack(codes), keys)
    assert list(mixed_radix([4, 4, 4])) == [1, 4, 16]
    assert mixed_radix([2] * 62) is None and row_keys(np.zeros((3, 62), int), [2] * 62) is None
    wide = np.column_stack([rng.integers(0, 2, 100) for _ in range(70)])  # 2^70 states: unique rows
    assert pack(wide).max() == len(np.unique(wide, axis=0)) - 1
