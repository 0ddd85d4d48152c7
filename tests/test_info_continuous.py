"""Continuous estimators against the analytic MI of correlated Gaussians."""
import numpy as np
import pytest

from nifkit.info import (
    discretize,
    dv_mi,
    dv_mi_pairs,
    gaussian_mi,
    gaussian_mi_analytic,
    ksg_mi,
    mutual_information,
    shuffle_test,
)


def gaussian_pair(rho, n, seed=0, dim=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, dim))
    return x, y


def test_analytic_formula():
    assert gaussian_mi_analytic(0.0) == 0.0
    assert gaussian_mi_analytic(np.sqrt(0.75)) == pytest.approx(1.0)  # 1 - rho^2 = 1/4
    assert gaussian_mi_analytic(0.5, dim=3) == pytest.approx(3 * gaussian_mi_analytic(0.5))
    with pytest.raises(ValueError, match="rho"):
        gaussian_mi_analytic(1.0)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_gaussian_and_ksg_estimators(rho):
    x, y = gaussian_pair(rho, 4000, seed=int(rho * 10))
    truth = gaussian_mi_analytic(rho)
    assert gaussian_mi(x, y) == pytest.approx(truth, abs=0.02)
    assert ksg_mi(x, y, k=3) == pytest.approx(truth, abs=0.04)


def test_ksg_multivariate():
    x, y = gaussian_pair(0.7, 3000, seed=3, dim=2)
    assert ksg_mi(x, y) == pytest.approx(gaussian_mi_analytic(0.7, dim=2), abs=0.08)


def test_binned_estimate_converges_when_samples_and_bins_grow_together():
    rho = 0.8
    truth = gaussian_mi_analytic(rho)
    errors = []
    for n, b in [(500, 4), (8000, 10), (120000, 24)]:
        x, y = gaussian_pair(rho, n, seed=n)
        c = discretize(np.concatenate([x, y], 1), n_bins=b, binning="quantile")
        errors.append(abs(mutual_information(c[:, 0], c[:, 1]) - truth))
    assert errors[-1] < 0.03
    assert errors[0] > errors[-1]


def test_dv_estimator_approaches_analytic_value():
    x, y = gaussian_pair(0.8, 4000, seed=11)
    assert dv_mi(x, y, steps=600, seed=0) == pytest.approx(gaussian_mi_analytic(0.8), abs=0.08)


def test_dv_pairs_estimates_each_pair_independently():
    rng = np.random.default_rng(12)
    n = 3000
    a = rng.standard_normal((n, 3))
    rhos = np.array([0.0, 0.5, 0.9])
    b = rhos * a + np.sqrt(1 - rhos**2) * rng.standard_normal((n, 3))
    est = dv_mi_pairs(a, b, np.array([[0, 0], [1, 1], [2, 2], [2, 0]]), steps=600)
    truth = [gaussian_mi_analytic(r) for r in rhos] + [0.0]
    np.testing.assert_allclose(est, truth, atol=0.1)
    # seeded: reproducible
    np.testing.assert_allclose(dv_mi_pairs(a, b, [[1, 1]], steps=50, seed=3),
                               dv_mi_pairs(a, b, [[1, 1]], steps=50, seed=3))


def test_shuffle_test_single_pair():
    x, y = gaussian_pair(0.5, 500, seed=2)
    res = shuffle_test(x, y, gaussian_mi, n_shuffles=40)
    assert res.p_value == pytest.approx(1 / 41)
    ind = shuffle_test(x, np.random.default_rng(0).standard_normal(500), gaussian_mi, n_shuffles=40)
    assert ind.p_value > 0.05


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ksg_mi(np.ones(3), np.ones(3), k=3), "more than"),
        (lambda: ksg_mi(np.ones(30), np.ones(31)), "same number"),
        (lambda: ksg_mi(np.ones(30), np.ones(30), k=0), "positive"),
        (lambda: gaussian_mi(np.ones(30), np.ones(30)), "singular"),
        (lambda: dv_mi(np.ones(8), np.ones(8)), "16 samples"),
        (lambda: dv_mi(np.ones(30), np.ones(30), epochs=3), "unknown DV options"),
        (lambda: dv_mi_pairs(np.ones((30, 2)), np.ones((30, 2)), [[0, 5]]), "outside"),
        (lambda: gaussian_mi(np.array([1.0, np.inf, 2.0]), np.ones(3)), "inf"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
