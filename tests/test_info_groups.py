"""Group measures (nifkit.info.groups) and binary splits against exact references:
dit on exact distributions (samples with exact multiplicities, so the plug-in value is
the exact one), the scalar measures of nifkit.info.discrete, and sklearn's KMeans."""
from itertools import product

import dit
import numpy as np
import pytest
from dit.multivariate import coinformation as dit_coi

from nifkit.info import (
    binarize,
    binary_thresholds,
    cmi_all_subsets,
    cmi_extended,
    cmi_subsets,
    co_information_removals,
    conditional_co_information,
    conditional_mutual_information,
    kmeans2_thresholds,
)

TOL = 1e-12


def samples_of(outcomes, reps=4):
    """Rows of equally likely outcomes, each repeated ``reps`` times (exact plug-in)."""
    return np.repeat(np.array(outcomes, dtype=np.int64), reps, axis=0)


def dit_of(outcomes):
    return dit.Distribution(["".join(map(str, o)) for o in outcomes], [1 / len(outcomes)] * len(outcomes))


def dit_relay(d, x, y, group, rest):
    """I_R = I(X;Y|rest) - I(X;Y|group, rest) with dit (variables by index)."""
    return dit_coi(d, [[x], [y]], rest) - dit_coi(d, [[x], [y]], group + rest)


# variables: 0 = input, 1 = output, 2 = Y1, 3 = Y2
COPY_RELAY = [(i, i, i, n) for i, n in product((0, 1), repeat=2)]  # O = Y1 = I, Y2 noise
REDUNDANT = [(i, i, i, i) for i in (0, 1)]  # Y1 = Y2 = O = I
XOR = [(2 * a + b, a ^ b, a, b) for a, b in product((0, 1), repeat=2)]  # I = (a,b), O = a xor b


@pytest.mark.parametrize("name, outcomes, group, want", [
    ("copy relay, Y1", COPY_RELAY, [2], 1.0),
    ("copy relay, noise Y2", COPY_RELAY, [3], 0.0),
    ("copy relay, both", COPY_RELAY, [2, 3], 1.0),
    ("redundant copies, Y1 alone", REDUNDANT, [2], 0.0),
    ("redundant copies, Y2 alone", REDUNDANT, [3], 0.0),
    ("redundant copies, both", REDUNDANT, [2, 3], 1.0),
    ("xor, Y1", XOR, [2], 1.0),
    ("xor, Y2", XOR, [3], 1.0),
    ("xor, both", XOR, [2, 3], 1.0),
])
def test_relay_cases_match_dit(name, outcomes, group, want):
    s = samples_of(outcomes)
    rest = [j for j in (2, 3) if j not in group]
    ref = dit_relay(dit_of(outcomes), 0, 1, group, rest)
    assert ref == pytest.approx(want, abs=1e-12)
    got = conditional_co_information(s[:, 0], s[:, 1], s[:, group], s[:, rest] if rest else None)
    assert abs(got - ref) < TOL, name
    # the batched removal scores agree: removing j from the group leaves I_R(group - j)
    if len(group) == 2:
        scores = co_information_removals(s[:, 0], s[:, 1], s[:, 2:], [g - 2 for g in group])
        for k, j in enumerate(group):
            left = [g for g in group if g != j]
            r = dit_relay(dit_of(outcomes), 0, 1, left, [j])
            assert abs(scores[k] - r) < TOL


def test_three_variable_xor_is_minus_one_bit():
    outcomes = [(a, b, a ^ b) for a, b in product((0, 1), repeat=2)]
    s = samples_of(outcomes, reps=3)
    ref = dit_coi(dit_of(outcomes), [[0], [1], [2]])
    assert ref == pytest.approx(-1.0, abs=1e-12)
    got = conditional_co_information(s[:, 0], s[:, 1], s[:, 2])
    assert abs(got - ref) < TOL and abs(got + 1) < TOL


def _random_samples(seed, m=5, n=600):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, size=(n, m))
    z[:, 3] = rng.integers(0, 3, size=n)  # one ternary variable
    x = (z[:, 0] ^ z[:, 1]) | (rng.random(n) < 0.2)
    y = np.where(rng.random(n) < 0.7, x ^ z[:, 2], rng.integers(0, 2, n)) + (z[:, 3] == 2)
    return x.astype(int), y.astype(int), z


def _dit_from_samples(x, y, z):
    rows = np.column_stack([x, y, z])
    keys, counts = np.unique(rows, axis=0, return_counts=True)
    return dit.Distribution(["".join(map(str, r)) for r in keys], counts / counts.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_all_subsets_match_dit_and_scalar(seed):
    x, y, z = _random_samples(seed)
    m = z.shape[1]
    d = _dit_from_samples(x, y, z)
    allv = cmi_all_subsets(x, y, z, block_vars=3)
    masks = np.array([[(b >> i) & 1 for i in range(m)] for b in range(1 << m)], dtype=bool)
    batch = cmi_subsets(x, y, z, masks)
    assert np.max(np.abs(allv - batch)) < TOL
    for b in range(1 << m):
        cols = [i for i in range(m) if (b >> i) & 1]
        ref = dit_coi(d, [[0], [1]], [2 + i for i in cols])
        assert abs(allv[b] - ref) < 1e-10, (b, allv[b], ref)
        if cols and b % 7 == 0:
            assert abs(allv[b] - conditional_mutual_information(x, y, z[:, cols])) < TOL


def test_extended_scores_every_candidate_in_one_call():
    x, y, z = _random_samples(3)
    base = z[:, [0, 3]]
    got = cmi_extended(x, y, base, z[:, [1, 2, 4]])
    for k, j in enumerate([1, 2, 4]):
        assert abs(got[k] - conditional_mutual_information(x, y, z[:, [0, 3, j]])) < TOL
    assert abs(cmi_extended(x, y, None, z[:, [1]])[0] - conditional_mutual_information(x, y, z[:, 1])) < TOL


def test_group_errors_are_clear():
    x, y, z = _random_samples(0)
    with pytest.raises(ValueError, match="same samples|samples but x"):
        cmi_extended(x, y, None, z[:-1])
    with pytest.raises(ValueError, match="x has"):
        cmi_subsets(x, y[:-3], z, np.ones((1, 5), bool))
    with pytest.raises(ValueError, match="masks must be"):
        cmi_subsets(x, y, z, np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="limit of 24"):
        cmi_all_subsets(x[:10], y[:10], np.zeros((10, 25), int))
    with pytest.raises(ValueError, match="distinct column indices"):
        co_information_removals(x, y, z, [0, 0])
    with pytest.raises(ValueError, match="distinct column indices"):
        co_information_removals(x, y, z, [7])


# ------------------------------------------------------------------- binary splits
def _sse(col, thr):
    lo, hi = col[col <= thr], col[col > thr]
    return sum(((g - g.mean()) ** 2).sum() for g in (lo, hi) if len(g))


def test_kmeans2_is_exact_and_matches_sklearn():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    x = np.column_stack([
        np.concatenate([rng.normal(-1, 0.3, 300), rng.normal(1.5, 0.5, 200)]),
        np.tanh(rng.normal(0, 2, 500)),
        rng.exponential(1.0, 500),
        np.round(rng.normal(0, 1, 500), 1),  # many ties
    ])
    thr = kmeans2_thresholds(x)
    codes = binarize(x)
    for j in range(x.shape[1]):
        col = x[:, j]
        # exact: no threshold between sorted distinct values does better
        u = np.unique(col)
        best = min(_sse(col, t) for t in (u[:-1] + u[1:]) / 2)
        assert _sse(col, thr[j]) <= best + 1e-9
        km = KMeans(n_clusters=2, n_init=10, random_state=0).fit(col[:, None])
        assert _sse(col, thr[j]) <= km.inertia_ + 1e-6
        lab = km.labels_ if km.cluster_centers_[1, 0] > km.cluster_centers_[0, 0] else 1 - km.labels_
        assert np.mean(lab == codes[:, j]) > 0.99
    assert kmeans2_thresholds(np.ones((5, 1)))[0] == 1.0  # a constant neuron: its value, all codes 0
    assert binarize(np.ones((5, 1))).sum() == 0


def test_median_and_fixed_threshold():
    x = np.arange(12.0).reshape(6, 2)
    assert np.array_equal(binary_thresholds(x, "median"), np.median(x, axis=0))
    assert np.array_equal(binarize(x, "threshold", threshold=4.5)[:, 0], (x[:, 0] > 4.5).astype(np.uint8))
    assert np.array_equal(binarize(x, thresholds=[0.0, 100.0])[:, 1], np.zeros(6))
    with pytest.raises(ValueError, match="binning must be one of"):
        binarize(x, "otsu")
    with pytest.raises(ValueError, match="one per neuron"):
        binarize(x, "threshold", threshold=[1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        binarize(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="at least 2 samples"):
        kmeans2_thresholds(np.ones((1, 3)))
