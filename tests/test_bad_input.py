"""Bad input on every public entry point gives a clear ValueError/TypeError naming the
argument; and the silent wrong results found by the reliability pass (issue 9) now raise
or give the right value.

The entry points and the classes of bad input live in tests/bad_input_registry.py; to
cover a new entry point add an ``Entry`` there (the file's docstring says how): the
parametrisation below picks it up (entry point x argument x class of bad input).
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from bad_input_registry import ENTRIES, SKIP, bad_values
from nifkit import _validation as V
from nifkit.info import (
    PairwiseMI,
    dv_mi,
    dv_mi_pairs,
    entropy_from_counts,
    gaussian_mi_analytic,
    ksg_mi,
    ksg_mi_pairs,
    mutual_information,
    pairwise_mi,
    shuffle_test,
)


def _cases():
    for e in ENTRIES:
        for arg, kind in e.kinds.items():
            for cls, bad in bad_values(kind):
                if (e.name, arg, cls) not in SKIP:
                    yield pytest.param(e, arg, cls, bad, id=f"{e.name}-{arg}-{cls}")


def _names_argument(message: str, name: str) -> bool:
    """``name`` occurs as a word of its own (``x`` in "x contains NaN", not in "max")."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w(])", message) is not None


def _call(e, **changes):
    kwargs = dict(e.valid)
    kwargs.update(changes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return e.fn(**kwargs)


@pytest.mark.parametrize("e", [pytest.param(e, id=e.name) for e in ENTRIES])
def test_minimal_valid_call_works(e):
    """The registry's valid calls succeed, so a failure below is due to the bad value."""
    _call(e)


@pytest.mark.parametrize("e, arg, cls, bad", list(_cases()))
def test_bad_input_names_the_argument(e, arg, cls, bad):
    value = bad(e.valid[arg]) if callable(bad) and not isinstance(bad, type) else bad
    with pytest.raises((ValueError, TypeError)) as info:
        _call(e, **{arg: value})
    name = e.names.get(arg, arg)
    assert _names_argument(str(info.value), name), f"message does not name {name!r}: {info.value}"


@pytest.mark.parametrize("e", [pytest.param(e, id=e.name) for e in ENTRIES if e.too_few])
def test_too_few_samples(e):
    with pytest.raises(ValueError) as info:
        _call(e, **e.too_few)
    name = e.too_few_name or next(iter(e.too_few))
    assert _names_argument(str(info.value), name), f"message does not name {name!r}: {info.value}"
    assert re.search(r"\d", str(info.value)), "the message should say how many samples are needed"


def test_no_error_leaks_from_deep_inside():
    """The registry's bad-input errors are raised by nifkit, not by numpy/torch/sklearn."""
    leaked = []
    for p in _cases():
        e, arg, cls, bad = p.values
        value = bad(e.valid[arg]) if callable(bad) else bad
        try:
            _call(e, **{arg: value})
        except (ValueError, TypeError) as exc:
            tb = exc.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            where = tb.tb_frame.f_code.co_filename
            if "nifkit" not in where:
                leaked.append(f"{e.name}({arg}={cls}): raised in {where}: {exc}")
    assert not leaked, "\n".join(leaked)


# --------------------------------------------------------------------------------------
# The helpers' policies
# --------------------------------------------------------------------------------------
def test_integer_policy_no_silent_truncation():
    assert V.check_int(3, "n") == 3 and V.check_int(np.int16(3), "n") == 3
    assert V.check_int(3.0, "n") == 3 and V.check_int(1e9, "memory_budget") == 10**9
    assert V.check_int(np.array(4), "n") == 4 and V.check_int(torch.tensor(4), "n") == 4
    with pytest.raises(TypeError, match=r"n must be an integer, got 3\.7.*not truncated"):
        V.check_int(3.7, "n")
    with pytest.raises(TypeError, match="bool"):
        V.check_int(True, "n")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        V.check_int(0, "n", minimum=1)
    assert V.check_int(None, "n", allow_none=True) is None


def test_seed_policy():
    for ok in (0, 7, np.int64(7), np.uint32(7), 2**64 - 1):
        assert V.check_seed(ok) == int(ok)
    for bad in (1.0, 1.5, True, "1", [1]):
        with pytest.raises(TypeError, match="seed"):
            V.check_seed(bad)
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="seed"):
            V.check_seed(bad)
    assert V.check_seed(None, allow_none=True) is None


def test_n_bins_pair_and_bin_range():
    assert V.check_n_bins((4, 6.0), allow_pair=True) == (4, 6)
    with pytest.raises(TypeError, match="n_bins"):
        V.check_n_bins((4, 6))
    with pytest.raises(ValueError, match=r"n_bins\[1\]"):
        V.check_n_bins((4, 1), allow_pair=True)
    assert V.check_bin_range((0, 1)) == (0.0, 1.0)
    # pairwise_mi takes the (a, b) pair of the vocabulary too
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, (200, 2)), rng.integers(0, 5, (200, 2))
    np.testing.assert_array_equal(pairwise_mi(a, b, n_bins=(3, 5)), pairwise_mi(a, b, n_bins=3, n_bins_b=5))
    np.testing.assert_array_equal(pairwise_mi(a, n_bins=3.0), pairwise_mi(a, n_bins=3))


def test_device_errors_are_ours():
    with pytest.raises(ValueError, match="device='gpu0' is not a device"):
        V.resolve_device("gpu0")
    with pytest.raises(TypeError, match="device"):
        V.resolve_device(1.5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            V.resolve_device("cuda")


# --------------------------------------------------------------------------------------
# The silent cases of issue 9, one by one
# --------------------------------------------------------------------------------------
def test_pairwise_mi_refuses_more_cells_than_samples_and_gives_the_minimum():
    """Far more bins than samples used to return values silently; now refused like
    flow_graph and layer_ei, with the minimum number of samples in the message."""
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, (100, 4))
    with pytest.raises(ValueError, match=r"too few samples in a.*100 samples.*at least 256"):
        pairwise_mi(codes, n_bins=16)
    with pytest.raises(ValueError, match=r"at least 48"):
        pairwise_mi(codes[:40, :2] % 8, rng.integers(0, 6, (40, 2)), n_bins=8, n_bins_b=6)
    assert pairwise_mi(codes[:, :2] % 8, n_bins=8).shape == (2, 2)  # 100 >= 64: fine
    acc = PairwiseMI(n_bins=16).update(codes)
    with pytest.raises(ValueError, match="at least 256"):
        acc.mi()


def test_shuffle_test_refuses_nan_estimates():
    x = np.arange(50) % 5
    with pytest.raises(ValueError, match=r"estimator returned nan on the observed"):
        shuffle_test(x, x, lambda a, b: float("nan"), n_shuffles=5)
    calls = []

    def nan_on_shuffles(a, b):
        calls.append(1)
        return 1.0 if len(calls) == 1 else float("nan")

    with pytest.raises(ValueError, match="on shuffle 0"):
        shuffle_test(x, x, nan_on_shuffles, n_shuffles=5)
    with pytest.raises(TypeError, match="one number"):
        shuffle_test(x, x, lambda a, b: np.ones(3), n_shuffles=5)
    with pytest.raises(ValueError, match="x and y must have the same number of samples"):
        shuffle_test(x, x[:-1], mutual_information, n_shuffles=5)
    # numpy seeds and a valid estimator still work and give the same answer as int seeds
    r1 = shuffle_test(x, x, mutual_information, n_shuffles=5, seed=np.int64(3))
    r2 = shuffle_test(x, x, mutual_information, n_shuffles=5, seed=3)
    np.testing.assert_array_equal(r1.null, r2.null)
    assert r1.p_value == pytest.approx(1 / 6)


def test_pairwise_merge_refuses_incompatible_accumulators():
    rng = np.random.default_rng(2)
    c = rng.integers(0, 4, (120, 3))
    base = lambda: PairwiseMI(n_bins=4).update(c)  # noqa: E731
    with pytest.raises(ValueError, match="different bins"):
        base().merge(PairwiseMI(n_bins=5).update(c))
    with pytest.raises(ValueError, match="different bins"):   # fresh accumulator, other bins
        PairwiseMI(n_bins=5).merge(base())
    with pytest.raises(ValueError, match="different neurons"):
        base().merge(PairwiseMI(n_bins=4).update(c[:, :2]))
    # same count-table shape, but pairs within a vs pairs a x b: used to be added silently
    cross = PairwiseMI(n_bins=4).update(c, c[:, ::-1])
    with pytest.raises(ValueError, match="different pairs"):
        base().merge(cross)
    with pytest.raises(TypeError, match="PairwiseMI"):
        base().merge(pairwise_mi(c))
    acc = base()
    with pytest.raises(ValueError, match="itself"):
        acc.merge(acc)
    # a compatible merge still equals the one-shot value; a fresh accumulator copies
    np.testing.assert_allclose(PairwiseMI(n_bins=4).update(c[:60]).merge(PairwiseMI(n_bins=4).update(c[60:])).mi(),
                               pairwise_mi(c, n_bins=4), atol=1e-12)
    np.testing.assert_allclose(PairwiseMI(n_bins=4).merge(base()).mi(), pairwise_mi(c, n_bins=4), atol=1e-12)


def test_pair_indices_never_wrap_around():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    for bad in ([[-1, 0]], [[0, -1]], [[3, 0]], [[0, 2]]):
        with pytest.raises(ValueError, match="pairs row 0"):
            ksg_mi_pairs(a, b, bad)
        with pytest.raises(ValueError, match="pairs row 0"):
            dv_mi_pairs(a, b, bad, steps=1)
    with pytest.raises(ValueError, match=r"\(P, 2\)"):  # used to be reshaped into other pairs
        ksg_mi_pairs(a, b, [[0, 1, 1], [0, 0, 1]])
    # no pairs: nothing estimated (a layer whose edges were all pruned)
    assert ksg_mi_pairs(a, b, np.zeros((0, 2), int)).shape == (0,)
    assert dv_mi_pairs(a, b, [], steps=1).shape == (0,)
    # a single (i, j) pair is still fine
    assert ksg_mi_pairs(a, b, (2, 1), jitter=0) == pytest.approx(ksg_mi(a[:, 2], b[:, 1], jitter=0), abs=1e-12)


def test_dv_mi_is_safe_for_huge_inputs():
    """Values beyond float32's range used to become inf in the cast, then NaN."""
    from nifkit.info.neural import _standardise

    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 2))
    y = x[:, :1] + 0.5 * rng.standard_normal((200, 1))
    for scale in (1e300, 1e-300, 1e39):
        z = _standardise(x * scale)
        assert z.dtype == np.float32 and np.isfinite(z).all()
        np.testing.assert_allclose(z, _standardise(x), atol=1e-6)  # MI is scale invariant
    kw = dict(steps=20, batch_size=64, hidden=8, seed=1)
    huge = dv_mi(x * 1e300, y * 1e300, **kw)
    assert np.isfinite(huge) and huge == pytest.approx(dv_mi(x, y, **kw), abs=1e-4)


def test_dv_accepts_numpy_integer_seeds_and_options():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(64)
    kw = dict(steps=3, batch_size=16, hidden=4)
    assert dv_mi(x, x, seed=np.int64(3), **kw) == dv_mi(x, x, seed=3, **kw)
    assert dv_mi(x, x, seed=3, steps=3.0, batch_size=16, hidden=4) == dv_mi(x, x, seed=3, **kw)
    with pytest.raises(TypeError, match="steps must be an integer, got 3.5"):
        dv_mi(x, x, steps=3.5)


def test_entropy_from_counts_refuses_nan_and_negative_counts():
    with pytest.raises(ValueError, match="counts contains NaN"):
        entropy_from_counts([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="counts contains inf"):
        entropy_from_counts([1.0, np.inf])
    with pytest.raises(ValueError, match="non-negative"):
        entropy_from_counts([[1, 2], [3, -1]], axis=1)
    with pytest.raises(ValueError, match="axis"):
        entropy_from_counts([1, 2], axis=3)
    assert entropy_from_counts([2, 2]) == pytest.approx(1.0)


def test_floats_are_not_truncated_where_integers_are_expected():
    from nifkit import data as D

    with pytest.raises(TypeError, match="dim"):
        gaussian_mi_analytic(0.5, dim=1.5)  # used to give 1.5 x the MI of one pair
    assert gaussian_mi_analytic(0.5, dim=2.0) == pytest.approx(2 * gaussian_mi_analytic(0.5))
    with pytest.raises(TypeError, match="k"):
        ksg_mi(np.arange(30.0), np.arange(30.0), k=3.5)
    with pytest.raises(TypeError, match="n_samples"):
        D.make_xor(n_samples=100.5)  # used to make 100 samples
    with pytest.raises(TypeError, match="n_train"):
        D.load_digits(n_train=20.7)
    with pytest.raises(TypeError, match="seed"):
        D.load_digits(seed=1.5)  # used to seed with int(1.5) == 1 in the loader
    with pytest.raises(TypeError, match="batch_size"):
        D.load_iris().loader(batch_size=2.5)
    assert D.make_xor(n_samples=100.0, seed=0).n_train == D.make_xor(n_samples=100, seed=0).n_train


def test_dataset_refuses_labels_outside_the_classes_and_nan_inputs():
    from nifkit import data as D

    with pytest.raises(ValueError, match=r"y_train holds label 2 but n_classes=2"):
        D.Dataset("t", np.zeros((3, 2)), [0, 1, 2], np.zeros((1, 2)), [0], n_classes=2)
    with pytest.raises(ValueError, match="y_test must be class indices"):
        D.Dataset("t", np.zeros((3, 2)), [0, 1, 1], np.zeros((1, 2)), [-1], n_classes=2)
    with pytest.raises(ValueError, match="X_test contains NaN"):
        D.Dataset("t", np.zeros((3, 2)), [0, 1, 1], np.full((1, 2), np.nan), [0], n_classes=2)


def test_record_refuses_nan_inputs():
    from torch import nn

    from nifkit.record import record

    net = nn.Sequential(nn.Linear(2, 2))
    x = torch.zeros(10, 2)
    x[7, 1] = float("nan")
    with pytest.raises(ValueError, match="data contains NaN or inf"):
        record(net, x, progress=False, batch_size=4)
    assert net.training  # mode restored after the error
    assert not net._forward_hooks and not net[0]._forward_hooks
