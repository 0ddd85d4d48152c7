"""Issue 19 point 3: every class of bad input the reliability pass found, each with its
neighbours, now gets a clear nifkit error naming the argument, or the right value."""
import math

import numpy as np
import pytest
import torch

from nifkit import runtime
from nifkit._validation import check_seed
from nifkit.compare import spearman
from nifkit.conductance import layer_conductance, path_gradients
from nifkit.ei import layer_ei, model_ei
from nifkit.info import (
    Binner, PairwiseMI, binarize, binary_thresholds, discretize, kmeans2_thresholds, ksg_mi, pack, p_values, pairwise_mi,
)
from nifkit.intervene import Knockouts, knock_out, knock_out_layers
from nifkit.models import evaluate, mlp, small_cnn, train
from nifkit.nif import flow_graph
from nifkit.record import record

torch.manual_seed(0)
NET = mlp([4, 6, 3], seed=0)
X = torch.randn(60, 4)
Y = torch.randint(0, 3, (60,))


# ---- seeds --------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda s: layer_ei(torch.nn.Linear(3, 2), torch.nn.Sigmoid(), n_samples=200, n_sensitivity_samples=50, seed=s),
    lambda s: layer_conductance(NET, X[:4], layers="act1", steps=4, seed=s),
    lambda s: flow_graph(NET, X, seed=s),
    lambda s: runtime.set_seed(s),
])
@pytest.mark.parametrize("seed,err", [(-1, ValueError), (2.0, TypeError), (True, TypeError), (2**64, ValueError),
                                      (None, TypeError), ("0", TypeError)])
def test_bad_seeds_are_refused_by_name(call, seed, err):
    with pytest.raises(err, match="seed"):
        call(seed)


def test_one_seed_rule():
    assert runtime.check_seed is check_seed  # runtime and _validation no longer disagree about None
    with pytest.raises(TypeError, match="seed=None"):
        check_seed(None)
    assert check_seed(None, allow_none=True) is None
    assert check_seed(np.uint64(2**64 - 1)) == 2**64 - 1
    with runtime.seeded(None):  # seeded documents None (its annotation says | None)
        pass


# ---- sizes and counts ---------------------------------------------------------------
@pytest.mark.parametrize("sizes,err", [([4, 2.7, 3], TypeError), ([4, True, 3], TypeError), ([4, 0, 3], ValueError),
                                       ([4, -2, 3], ValueError), ("43", TypeError), (4, TypeError)])
def test_mlp_widths_are_integers(sizes, err):
    with pytest.raises(err, match="sizes"):
        mlp(sizes)


def test_mlp_accepts_integral_widths():
    net = mlp([np.int64(4), 5.0, torch.tensor(3)])
    assert net.fc1.out_features == 5 and net.fc_out.out_features == 3


@pytest.mark.parametrize("kw,err,name", [
    (dict(image_size=0), ValueError, "image_size"), (dict(image_size=(8, 0)), ValueError, "image_size"),
    (dict(n_classes=2.5), TypeError, "n_classes"), (dict(n_classes=0), ValueError, "n_classes"),
])
def test_small_cnn_sizes(kw, err, name):
    with pytest.raises(err, match=name):
        small_cnn(**kw)


@pytest.mark.parametrize("call,name", [
    (lambda v: layer_conductance(NET, X[:4], layers="act1", steps=4, memory_budget=v), "memory_budget"),
    (lambda v: Binner(4).fit(X.numpy()).transform(X.numpy(), chunk_bytes=v), "chunk_bytes"),
])
@pytest.mark.parametrize("v", [0, -1])
def test_budgets_must_be_positive(call, name, v):
    with pytest.raises(ValueError, match=name):
        call(v)


@pytest.mark.parametrize("call", [lambda: discretize(X.numpy(), n_bins=10**12), lambda: PairwiseMI(10**12),
                                  lambda: Binner(2**17)])
def test_huge_bin_counts_are_refused_before_allocating(call):
    with pytest.raises(ValueError, match="n_bins.*65536"):
        call()


# ---- settings stored unchecked --------------------------------------------------------
@pytest.mark.parametrize("call,err,name", [
    (lambda: Binner(0), ValueError, "n_bins"), (lambda: Binner(8, "nope"), ValueError, "binning"),
    (lambda: Binner(8, "fixed"), ValueError, "bin_range"), (lambda: Binner(8, "minmax", (0, 1)), ValueError, "bin_range"),
    (lambda: PairwiseMI(0), ValueError, "n_bins"), (lambda: PairwiseMI(2.5), TypeError, "n_bins"),
    (lambda: PairwiseMI(4, device="nope"), ValueError, "device"),
    (lambda: Knockouts(NET, (X, Y), batch_size=0), ValueError, "batch_size"),
])
def test_constructors_check_their_settings(call, err, name):
    with pytest.raises(err, match=name):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: device='cuda' is valid here")
def test_cuda_without_cuda_is_refused_on_construction():
    with pytest.raises(ValueError, match="CUDA is not available"):
        PairwiseMI(4, device="cuda")


# ---- lists cut short or de-duplicated --------------------------------------------------
def test_pack_needs_one_name_per_variable():
    ci, cj = np.array([0, 1, 1]), np.array([1, 0, 1])
    with pytest.raises(ValueError, match="2 variables, 1 names"):
        pack(ci, cj, names=["a"])
    assert len(np.unique(pack(ci, cj, names=["a", "b"]))) == 3


@pytest.mark.parametrize("call", [
    lambda: record(NET, X, layers=["act1", "act1"]),
    lambda: path_gradients(NET, X[:4], layers=["act1", "act1"], steps=4),
    lambda: layer_conductance(NET, X[:4], layers=["act1", "act1"], steps=4),
    lambda: model_ei(NET, layers=["fc1", "fc1"]),
    lambda: knock_out_layers(NET, (X, Y), ["act1", "act1"]),
])
def test_a_layer_named_twice_is_refused(call):
    with pytest.raises(ValueError, match="'act1' twice|'fc1' twice"):
        call()


def test_one_mask_per_layer():
    k = Knockouts(NET, (X, Y))
    with pytest.raises(ValueError, match="one mask per layer"):
        k.evaluate(["act1"], [np.ones((1, 6), bool), np.ones((1, 6), bool)])


# ---- values that cannot be right ---------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, [0, 0, 0, 0, 0, math.nan]])
def test_knockout_values_must_be_finite(value):
    with pytest.raises(ValueError, match="value"):
        with knock_out(NET, {"act1": [0]}, value=value):
            pass
    with pytest.raises(ValueError, match="value"):
        Knockouts(NET, (X, Y)).evaluate(["act1"], [np.ones((1, 6), bool)], value=value)


@pytest.mark.parametrize("units", [[0.5, 1], np.array([1.5]), np.full(6, 0.5)])
def test_fractional_unit_indices_are_refused(units):
    with pytest.raises(TypeError, match="fractional"):
        with knock_out(NET, {"act1": units}):
            pass


def test_integral_float_indices_and_bool_masks_still_work():
    with knock_out(NET, {"act1": [0.0, 1.0]}):
        a = NET(X)
    with knock_out(NET, {"act1": np.array([True, True, False, False, False, False])}):
        b = NET(X)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mask", [np.full((1, 6), 0.5), np.full((1, 6), 2)])
def test_masks_are_boolean(mask):
    with pytest.raises(ValueError, match="booleans or 0/1"):
        Knockouts(NET, (X, Y)).evaluate(["act1"], [mask])


@pytest.mark.parametrize("t", [math.nan, math.inf, [0.0, math.nan, 0.0, 0.0]])
def test_nan_thresholds_are_refused(t):
    with pytest.raises(ValueError, match="threshold"):
        binarize(X.numpy(), binning="threshold", threshold=t)
    with pytest.raises(ValueError, match="threshold"):
        binary_thresholds(X.numpy(), binning="threshold", threshold=t)


@pytest.mark.parametrize("x", [X[0], X[0].numpy()])
def test_a_1d_input_is_not_read_as_samples(x):
    with pytest.raises(ValueError, match="1-D"):
        record(NET, x, layers=["act1"])
    assert record(NET, x[None], layers=["act1"]).n_samples == 1


def test_a_1d_input_is_not_read_as_samples_in_training_either():
    for call in (lambda: evaluate(NET, (X[0], Y[:4])), lambda: train(mlp([4, 3]), (X[0], Y[:4]), epochs=1)):
        with pytest.raises(ValueError, match=r"data\[0\] must hold one row per sample"):
            call()
    for call in (lambda: layer_conductance(NET, X[0], layers="act1", steps=4),
                 lambda: path_gradients(NET, X[0], layers="act1", steps=4)):
        with pytest.raises(ValueError, match="x\\[None\\]"):
            call()


@pytest.mark.parametrize("targets", [torch.full((60,), 3), torch.full((60,), -1)])
def test_gradient_targets_must_index_the_outputs(targets):
    with pytest.raises(ValueError, match="targets must be class indices 0..2"):
        record(NET, X, layers=["act1"], grads=True, loss_fn="cross_entropy", targets=targets)
    with pytest.raises(ValueError, match="target"):
        path_gradients(NET, X[:4], layers="act1", steps=4, target=targets[:4])


def test_gradients_need_a_named_loss():
    """record(grads=True) no longer sums the outputs silently (ignoring targets): the
    loss is named, 'sum' being the explicit choice for d(sum of outputs)/da."""
    with pytest.raises(ValueError, match="grads=True. needs loss_fn.*'sum'"):
        record(NET, X, layers=["act1"], grads=True, targets=Y)
    with pytest.raises(ValueError, match="loss_fn is used only with grads=True"):
        record(NET, X, layers=["act1"], loss_fn="cross_entropy", targets=Y)
    with pytest.raises(ValueError, match="'summ' is not a known loss"):
        record(NET, X, layers=["act1"], grads=True, loss_fn="summ")
    with pytest.raises(TypeError, match="loss_fn must be a loss name"):
        record(NET, X, layers=["act1"], grads=True, loss_fn=3)
    rec = record(NET, X, layers=["act1"], grads=True, loss_fn="sum")
    a = NET.act1(NET.fc1(X)).detach().requires_grad_(True)
    (want,) = torch.autograd.grad(NET.fc_out(a).sum(), [a])
    torch.testing.assert_close(rec.gradients["act1"], want)
    ce = record(NET, (X, Y), layers=["act1"], grads=True, loss_fn="cross_entropy").gradients["act1"]
    assert not torch.allclose(ce, want)  # the targets now matter: a different loss, different gradients


@pytest.mark.parametrize("call", [lambda y: train(mlp([4, 2]), (X, y), epochs=1), lambda y: evaluate(mlp([4, 2]), (X, y))])
def test_labels_outside_the_outputs(call):
    with pytest.raises(ValueError, match=r"labels must lie in 0..1 .*found 2"):
        call(Y)


# ---- estimators at their edges ------------------------------------------------------------
def test_two_means_threshold_of_a_constant_column_is_finite():
    x = np.c_[np.ones(20), np.r_[np.zeros(10), np.ones(10)]]
    t = kmeans2_thresholds(x)
    assert np.isfinite(t).all() and t[0] == 1.0 and 0 < t[1] < 1
    assert (binarize(x)[:, 0] == 0).all()


@pytest.mark.parametrize("x", [np.repeat([0.0, 1.0], 50), np.zeros(100)])
def test_ksg_refuses_ties_without_jitter(x):
    with pytest.raises(ValueError, match="jitter"):
        ksg_mi(x, x[::-1].copy(), jitter=0)
    assert ksg_mi(x, x[::-1].copy()) > -0.05  # the default jitter breaks the ties


def test_ksg_without_ties_and_jitter_zero_still_runs():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(300)
    assert ksg_mi(a, a + 0.1 * rng.standard_normal(300), jitter=0) > 1.0


@pytest.mark.parametrize("big", [1e308, 1.7e308])
def test_discretize_at_the_edge_of_float64(big):
    x = np.array([[-big], [0.0], [big]])
    codes = discretize(x, n_bins=4)
    assert codes.ravel().tolist() == [0, 2, 3]
    codes = discretize(x, n_bins=2, binning="fixed", bin_range=(-big, big))
    assert codes.ravel().tolist() == [0, 1, 1]


def test_nan_null_values_are_refused_and_nan_observed_stays_nan():
    with pytest.raises(ValueError, match="null holds NaN"):
        p_values(np.array([0.5]), [np.array([np.nan])])
    assert np.isnan(p_values(np.array([np.nan]), [np.array([0.1])])[0])


def test_rank_correlation_of_unequal_lengths_is_refused():
    with pytest.raises(ValueError, match="same units"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1, 2, math.nan], [1, 2, 3])
    assert spearman([1, 2, 3, 4], [2, 4, 6, 9]) == pytest.approx(1.0)


# ---- unclear errors -------------------------------------------------------------------------
@pytest.mark.parametrize("lr", [-0.1, 0, math.nan])
def test_training_with_a_bad_learning_rate(lr):
    with pytest.raises(ValueError, match="lr"):
        train(mlp([4, 3]), (X, Y), epochs=1, lr=lr)


def test_wrong_number_of_features_is_named():
    for call in (lambda: train(mlp([5, 3]), (X, Y), epochs=1), lambda: evaluate(mlp([5, 3]), (X, Y))):
        with pytest.raises(ValueError, match="cannot take inputs of shape .60, 4.*takes 5 features"):
            call()


def test_a_float64_model_trains_on_float32_data():
    net = mlp([4, 3], seed=0).double()
    res = train(net, (X, Y), epochs=2, seed=0)
    assert next(net.parameters()).dtype == torch.float64
    assert np.isfinite(res.history["train_loss"]).all()
    loss, acc = evaluate(net, (X, Y))
    assert math.isfinite(loss) and 0 <= acc <= 1


def test_evaluate_on_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        evaluate(NET, (X[:0], Y[:0]))


# ---- classes of the fresh sweep after issue 19 ---------------------------------------------
@pytest.mark.parametrize("call", [
    lambda m: record(NET, m, ["act1"]),
    lambda m: discretize(m),
    lambda m: Knockouts(NET, (m, Y)),
    lambda m: layer_conductance(NET, m[:4], layers="act1", steps=4),
    lambda m: pairwise_mi(torch.empty(60, 4, dtype=torch.uint8, device="meta")),
])
def test_tensors_on_the_meta_device_are_refused_by_name(call):
    with pytest.raises(TypeError, match="meta device"):
        call(torch.empty(60, 4, device="meta"))


def test_edge_knockouts_take_one_number_and_boolean_masks():
    from nifkit.intervene import evaluate_edge_knockouts

    with pytest.raises(TypeError, match="value must be one number for edge knockouts"):
        evaluate_edge_knockouts(NET, (X, Y), {"fc1": np.zeros((2, 4, 6), bool)}, value="mean")
    with pytest.raises(ValueError, match=r"edges\['fc1'\] must be a boolean mask"):
        evaluate_edge_knockouts(NET, (X, Y), {"fc1": np.full((2, 4, 6), 0.5)})
    ones = evaluate_edge_knockouts(NET, (X, Y), {"fc1": np.ones((1, 4, 6))}).accuracy  # 0/1 numbers are a mask
    every = evaluate_edge_knockouts(NET, (X, Y), {"fc1": np.ones((1, 4, 6), bool)}).accuracy
    np.testing.assert_array_equal(ones, every)


@pytest.mark.parametrize("bv,err", [(-1, ValueError), (2.5, TypeError), (True, TypeError)])
def test_block_vars_is_a_count(bv, err):
    from nifkit.info import cmi_all_subsets

    with pytest.raises(err, match="block_vars"):
        cmi_all_subsets(np.zeros(10, int), np.zeros(10, int), np.zeros((10, 2), int), block_vars=bv)
