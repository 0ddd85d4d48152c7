"""Discrete measures against exact references (dit, pyitlib) and identities."""
import dit
import numpy as np
import pytest
from dit.multivariate import coinformation as dit_coinformation
from dit.multivariate import entropy as dit_entropy
from hypothesis import given, settings
from hypothesis import strategies as st
from pyitlib import discrete_random_variable as drv

from nifkit.info import (
    co_information,
    conditional_entropy,
    conditional_mutual_information,
    entropy,
    entropy_from_counts,
    mutual_information,
    pack,
)


def random_samples(seed, n=400, cards=(3, 4, 2, 3)):
    """Samples from a random joint distribution with dependence between columns."""
    rng = np.random.default_rng(seed)
    cards = np.array(cards)
    p = rng.dirichlet(np.full(int(np.prod(cards)), 0.3))
    flat = rng.choice(len(p), size=n, p=p)
    return np.stack(np.unravel_index(flat, cards), axis=1)


def empirical_dit(samples):
    """dit Distribution equal to the empirical distribution of the samples (the exact
    target of a plug-in estimate)."""
    rows, counts = np.unique(samples, axis=0, return_counts=True)
    return dit.Distribution([tuple(int(v) for v in r) for r in rows], counts / counts.sum())


@pytest.mark.reference
@pytest.mark.parametrize("seed", range(8))
def test_against_dit_on_random_joint_distributions(seed):
    s = random_samples(seed)
    d = empirical_dit(s)
    x, y, z, w = (s[:, i] for i in range(4))
    assert entropy(x) == pytest.approx(dit_entropy(d, [0]), abs=1e-9)
    assert entropy(x, y, z) == pytest.approx(dit_entropy(d, [0, 1, 2]), abs=1e-9)
    assert mutual_information(x, y) == pytest.approx(dit_coinformation(d, [[0], [1]]), abs=1e-9)
    assert conditional_mutual_information(x, y, z) == pytest.approx(dit_coinformation(d, [[0], [1]], [2]), abs=1e-9)
    assert co_information(x, y, z) == pytest.approx(dit_coinformation(d, [[0], [1], [2]]), abs=1e-9)
    assert co_information(x, y, z, w) == pytest.approx(dit_coinformation(d, [[0], [1], [2], [3]]), abs=1e-9)
    # multi-neuron variables are packed: I((X,Y);Z) and I(X;(Y,Z)|W)
    assert mutual_information(s[:, :2], z) == pytest.approx(dit_coinformation(d, [[0, 1], [2]]), abs=1e-9)
    assert conditional_mutual_information(x, s[:, 1:3], w) == pytest.approx(
        dit_coinformation(d, [[0], [1, 2]], [3]), abs=1e-9)


@pytest.mark.reference
@pytest.mark.parametrize("seed", range(4))
def test_against_pyitlib(seed):
    s = random_samples(100 + seed, n=300)
    x, y, z = s[:, 0], s[:, 1], s[:, 2]
    assert entropy(x) == pytest.approx(drv.entropy(x), abs=1e-9)
    assert entropy(x, y) == pytest.approx(drv.entropy_joint(np.vstack([x, y])), abs=1e-9)
    assert mutual_information(x, y) == pytest.approx(drv.information_mutual(x, y), abs=1e-9)
    assert conditional_mutual_information(x, y, z) == pytest.approx(
        drv.information_mutual_conditional(x, y, z), abs=1e-9)
    assert co_information(x, y, z) == pytest.approx(drv.information_co(np.vstack([x, y, z])), abs=1e-9)
    assert conditional_entropy(x, y) == pytest.approx(drv.entropy_conditional(x, y), abs=1e-9)


def test_exact_textbook_values():
    a = np.array([0, 0, 1, 1] * 25)
    b = np.array([0, 1, 0, 1] * 25)
    xor = a ^ b
    assert entropy(a) == pytest.approx(1.0)
    assert mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    assert co_information(a, b, xor) == pytest.approx(-1.0)
    assert conditional_mutual_information(a, b, xor) == pytest.approx(1.0)
    # deterministic chain X -> Y -> Z: I(X;Z;Y) = I(X;Z)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, 1000)
    y = x // 2
    z = y % 2
    assert co_information(x, z, y) == pytest.approx(mutual_information(x, z), abs=1e-12)
    # uniform over 8 symbols: 3 bits
    assert entropy(np.arange(8).repeat(5)) == pytest.approx(3.0)


def test_miller_madow_correction_is_the_documented_term():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, 200)
    m = len(np.unique(x))
    assert entropy(x, correction="miller-madow") == pytest.approx(entropy(x) + (m - 1) / (2 * 200 * np.log(2)))
    # it reduces the upward bias of MI for independent variables on average
    y = rng.integers(0, 5, (50, 200))
    xs = rng.integers(0, 5, (50, 200))
    plug = np.mean([mutual_information(a, b) for a, b in zip(xs, y)])
    mm = np.mean([mutual_information(a, b, correction="miller-madow") for a, b in zip(xs, y)])
    assert abs(mm) < plug / 3


def test_entropy_from_counts_axis_and_empty():
    c = np.array([[1, 1, 0, 0], [4, 0, 0, 0], [0, 0, 0, 0]])
    h = entropy_from_counts(c, axis=1)
    np.testing.assert_allclose(h, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        entropy_from_counts([-1, 2])


codes = st.lists(st.integers(0, 3), min_size=20, max_size=60)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_identities(data):
    n = data.draw(st.integers(20, 60))
    col = st.lists(st.integers(0, 3), min_size=n, max_size=n)
    x, y, z = (np.array(data.draw(col)) for _ in range(3))
    mi = mutual_information(x, y)
    assert -1e-12 <= mi <= min(entropy(x), entropy(y)) + 1e-12
    assert mi == pytest.approx(mutual_information(y, x), abs=1e-12)
    # invariance under relabelling
    perm = np.array([2, 0, 3, 1])
    assert mutual_information(perm[x], y) == pytest.approx(mi, abs=1e-12)
    # chain rule: I(X;(Y,Z)) = I(X;Z) + I(X;Y|Z)
    assert mutual_information(x, np.stack([y, z], 1)) == pytest.approx(
        mutual_information(x, z) + conditional_mutual_information(x, y, z), abs=1e-9)
    assert conditional_mutual_information(x, y, z) >= -1e-12
    # co-information of three: I(X;Y) - I(X;Y|Z), symmetric in its arguments
    ci = co_information(x, y, z)
    assert ci == pytest.approx(mi - conditional_mutual_information(x, y, z), abs=1e-9)
    assert ci == pytest.approx(co_information(z, x, y), abs=1e-9)


def test_pack_and_errors():
    a = np.array([[0, 1], [1, 0], [0, 1]])
    p = pack(a)
    assert p[0] == p[2] and p[0] != p[1]
    with pytest.raises(ValueError, match="same number of samples"):
        mutual_information(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(TypeError, match="discretize"):
        entropy(np.array([0.5, 1.2]))
    with pytest.raises(ValueError, match="NaN"):
        entropy(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="non-negative"):
        entropy(np.array([-1, 0]))
    with pytest.raises(ValueError, match="correction"):
        entropy(np.array([0, 1]), correction="jackknife")
    with pytest.raises(ValueError, match="at least two"):
        co_information(np.array([0, 1]))
    # torch tensors are accepted
    import torch
    assert entropy(torch.tensor([0, 1, 0, 1])) == pytest.approx(1.0)
