"""Property-based tests (Hypothesis) of the estimators and counts (issue 19 point 2):
random shapes, dtypes, NaN/inf, ties, constant columns and extreme magnitudes; the
invariants 0 <= I(X;Y) <= min(H(X), H(Y)), symmetry, the plug-in estimate equal to the
exact value of the enumerated distribution (dit), and merged counts equal to one pass."""
import dit
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nifkit.info import PairCounts, discretize, entropy, mutual_information, pairwise_mi

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-9


@st.composite
def code_pairs(draw):
    n = draw(st.integers(1, 120))
    ka, kb = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.float64]))
    x = draw(hnp.arrays(np.int64, n, elements=st.integers(0, ka - 1))).astype(dtype)
    y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, kb - 1))).astype(dtype)
    return x, y


@FAST
@given(code_pairs())
def test_mi_is_bounded_by_the_entropies_and_symmetric(xy):
    x, y = xy
    i = mutual_information(x, y)
    assert -TOL <= i <= min(entropy(x), entropy(y)) + TOL
    assert i == pytest.approx(mutual_information(y, x), abs=TOL)
    assert mutual_information(x, x) == pytest.approx(entropy(x), abs=TOL)


@st.composite
def count_tables(draw):
    ka, kb = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    table = draw(hnp.arrays(np.int64, (ka, kb), elements=st.integers(0, 7)))
    if table.sum() == 0:
        table[0, 0] = 1
    return table


@FAST
@given(count_tables())
def test_plugin_mi_equals_the_exact_value_of_the_enumerated_distribution(table):
    # the samples realise the table exactly, so the plug-in estimate is the exact MI of p = table / n
    xs, ys = np.nonzero(table)
    reps = table[xs, ys]
    x, y = np.repeat(xs, reps), np.repeat(ys, reps)
    outcomes = [f"{a}{b}" for a, b in zip(xs, ys)]
    d = dit.Distribution(outcomes, (reps / reps.sum()).tolist())
    exact = dit.shannon.mutual_information(d, [0], [1])
    assert mutual_information(x, y) == pytest.approx(exact, abs=1e-9)
    assert entropy(x, y) == pytest.approx(dit.shannon.entropy(d), abs=1e-9)
    # the all-pairs counter agrees with the scalar estimator
    ba, bb = max(2, table.shape[0]), max(2, table.shape[1])
    if len(x) >= ba * bb:  # pairwise_mi refuses fewer samples than joint cells
        pm = pairwise_mi(x[:, None], y[:, None], n_bins=(ba, bb))
        assert float(pm[0, 0]) == pytest.approx(exact, abs=1e-9)
    else:
        with pytest.raises(ValueError, match="too few samples"):
            pairwise_mi(x[:, None], y[:, None], n_bins=(ba, bb))


@FAST
@given(st.integers(2, 60), st.integers(1, 4), st.integers(1, 4), st.integers(2, 5), st.data())
def test_merged_counts_equal_one_pass(n, ua, ub, bins, data):
    a = data.draw(hnp.arrays(np.int64, (n, ua), elements=st.integers(0, bins - 1)))
    b = data.draw(hnp.arrays(np.int64, (n, ub), elements=st.integers(0, bins - 1)))
    cut = data.draw(st.integers(1, n - 1))
    one = PairCounts(bins).update(a, b)
    left, right = PairCounts(bins).update(a[:cut], b[:cut]), PairCounts(bins).update(a[cut:], b[cut:])
    merged = left.merge(right)
    assert merged.n == one.n == n
    assert torch.equal(merged.joint, one.joint)
    torch.testing.assert_close(merged.mi(), one.mi(), rtol=0, atol=1e-12)


@st.composite
def real_matrices(draw, min_n=2):
    n = draw(st.integers(min_n, 40))
    m = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1e-300, 1e-8, 1.0, 1e8, 1e300]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    x = draw(hnp.arrays(np.float64, (n, m), elements=st.floats(-1, 1, allow_nan=False)))
    if draw(st.booleans()):
        x[:, 0] = x[0, 0]  # a constant column
    if draw(st.booleans()):
        x = np.round(x * 2) / 2  # ties
    if dtype is np.float32:
        scale = min(scale, 1e30)  # float32's largest is 3.4e38
    x = x * scale
    if dtype is np.int32:
        x = np.round(x).clip(-1e9, 1e9)
    return x.astype(dtype)


@FAST
@given(real_matrices(), st.integers(2, 9), st.sampled_from(["minmax", "quantile"]))
def test_discretize_gives_codes_in_range_for_any_finite_input(x, n_bins, binning):
    codes = discretize(x, n_bins=n_bins, binning=binning)
    assert codes.shape == x.shape
    assert codes.min() >= 0 and codes.max() <= n_bins - 1
    constant = np.ptp(x.astype(np.float64), axis=0) == 0
    assert (codes[:, constant] == codes[0, constant]).all()
    # the codes keep the order of the values (equal-width and quantile bins are monotone)
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        assert (np.diff(codes[order, j].astype(int)) >= 0).all()


@FAST
@given(real_matrices(min_n=9))  # 3 x 3 joint cells need 9 samples
def test_pairwise_mi_of_binned_values_is_bounded_and_symmetric(x):
    codes = discretize(x, n_bins=3)
    m = pairwise_mi(codes, n_bins=3)
    h = np.diag(m)
    assert np.all(m >= -TOL)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    assert np.all(m <= np.minimum(h[:, None], h[None, :]) + TOL)
    constant = np.ptp(x.astype(np.float64), axis=0) == 0
    assert np.all(np.abs(m[constant]) <= TOL)


@FAST
@given(st.integers(2, 20), st.integers(1, 3), st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_nan_and_inf_are_refused_by_name(n, m, bad, data):
    x = data.draw(hnp.arrays(np.float64, (n, m), elements=st.floats(-5, 5)))
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, m - 1))
    x[i, j] = bad
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(ValueError, match=rf"x contains {kind} \(first at index \({i}, {j}\)\)"):
        discretize(x, n_bins=4)
