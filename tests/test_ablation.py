"""Ordered cumulative ablation: closed-form measures, the fast engine against the plain
hook-based re-evaluation, model left untouched, analysis helpers, errors, widget."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nifkit import ablation as A
from nifkit.info import discretize, entropy, label_counts, mutual_information
from nifkit.models import cpu_threads, mlp


def h2(p):
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


# ----------------------------------------------------------------------------- measures
def test_copy_of_balanced_binary_label():
    y = np.repeat([0, 1], 50)
    m = A.neuron_measures({"l": y[:, None].astype(float)}, y, n_bins=2)["l"]
    assert m.entropy[0] == pytest.approx(1.0)
    assert m.mi[0] == pytest.approx(1.0)
    np.testing.assert_allclose(m.kl_profile[0], [1.0, 1.0])  # log2(1 / 0.5) for each class
    assert m.selectivity[0] == pytest.approx(1.0)
    assert m.label_entropy == pytest.approx(1.0)


def test_one_class_detector_closed_form():
    # 4 balanced classes, T = [y == 0]
    y = np.repeat(np.arange(4), 25)
    t = (y == 0).astype(float)
    acts = {"l": np.stack([t, 1 - t, np.zeros_like(t)], 1)}  # detector, its complement, dead unit
    for kind, want in [("max", 2.0), ("max_minus_mean", 2.0 - math.log2(4 / 3)),
                       ("ratio", (2.0 - math.log2(4 / 3)) / (2.0 + math.log2(4 / 3)))]:
        m = A.neuron_measures(acts, y, n_bins=2, selectivity=kind)["l"]
        assert m.entropy[0] == pytest.approx(h2(0.25))
        assert m.mi[0] == pytest.approx(h2(0.25))  # deterministic function of y: I = H(T)
        np.testing.assert_allclose(m.kl_profile[0], [2.0] + [math.log2(4 / 3)] * 3)
        assert m.selectivity[0] == pytest.approx(want)
        assert m.selectivity[1] == pytest.approx(want)  # complement: same information
        assert m.entropy[2] == 0 and m.mi[2] == 0 and m.selectivity[2] == 0  # dead unit


def test_independent_neuron_has_zero_information():
    # every (t, y) pair equally often: exactly independent
    t, y = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    t, y = np.tile(t.ravel(), 10), np.tile(y.ravel(), 10)
    m = A.neuron_measures({"l": t[:, None].astype(float)}, y, n_bins=4)["l"]
    assert m.entropy[0] == pytest.approx(2.0)
    assert m.mi[0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(m.kl_profile[0], 0.0, atol=1e-12)
    # random independent data: plug-in MI shrinks with n (bias ~ (B-1)(C-1) / (2 n ln 2))
    rng = np.random.default_rng(0)
    big = A.neuron_measures({"l": rng.integers(0, 4, (20000, 3)).astype(float)}, rng.integers(0, 3, 20000),
                            n_bins=4)["l"]
    assert np.all(big.mi < 4 * 6 / (2 * 20000 * math.log(2)))


def test_matches_core_dit_and_pyitlib():
    import dit
    from pyitlib import discrete_random_variable as drv

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    x = rng.standard_normal((400, 5)) + y[:, None] * np.array([0, 0.5, 1, 2, 4])
    m = A.neuron_measures({"l": x}, y, n_bins=5)["l"]
    codes = discretize(x, n_bins=5)
    for j in range(5):
        assert m.entropy[j] == pytest.approx(entropy(codes[:, j]), abs=1e-12)
        assert m.mi[j] == pytest.approx(mutual_information(codes[:, j], y), abs=1e-12)
        assert m.mi[j] == pytest.approx(float(drv.information_mutual(codes[:, j], y)), abs=1e-9)
        d = dit.Distribution.from_ndarray(m.counts[j] / m.counts[j].sum())
        assert m.mi[j] == pytest.approx(dit.shannon.mutual_information(d, [0], [1]), abs=1e-9)
    mm = A.neuron_measures({"l": x}, y, n_bins=5, correction="miller-madow")["l"]
    assert mm.mi[4] == pytest.approx(mutual_information(codes[:, 4], y, correction="miller-madow"), abs=1e-12)
    assert np.argmax(m.mi) == 4 and np.argmin(m.mi) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), min_size=3, max_size=3), min_size=2, max_size=6))
def test_identities_on_random_histograms(table):
    c = np.array(table)[None]  # (1 unit, bins, 3 classes)
    if c.sum() == 0:
        return
    m = A.measures_from_counts(c)
    assert m.mi[0] <= m.entropy[0] + 1e-12
    assert m.mi[0] <= m.label_entropy + 1e-12
    assert m.mi[0] >= 0
    assert m.kl_profile[0] @ m.class_prior == pytest.approx(m.mi[0], abs=1e-10)
    assert m.selectivity[0] >= m.mi[0] - 1e-10  # max >= weighted mean
    # Miller-Madow: corrected MI = plug-in MI + ((mT - 1) + (mY - 1) - (mTY - 1)) / (2 n ln 2)
    mm = A.measures_from_counts(c, correction="miller-madow")
    n = c.sum()
    occ_t, occ_y, occ_ty = (c[0].sum(1) > 0).sum(), (c[0].sum(0) > 0).sum(), (c[0] > 0).sum()
    assert mm.mi[0] - m.mi[0] == pytest.approx((occ_t + occ_y - occ_ty - 1) / (2 * n * math.log(2)), abs=1e-10)
    np.testing.assert_allclose(mm.kl_profile, m.kl_profile)


def test_measures_accept_a_recording():
    from nifkit.record import record

    net = mlp([5, 6, 4, 3], seed=0)
    X, y = torch.randn(200, 5, generator=torch.Generator().manual_seed(0)), torch.arange(200) % 3
    rec = record(net, X, ["act1", "act2"], progress=False)
    from_rec = A.neuron_measures(rec, y, n_bins=6)
    direct = A.neuron_measures(A.layer_activations(net, X), y, n_bins=6)
    assert from_rec.names == ["act1", "act2"]
    for layer in ["act1", "act2"]:
        np.testing.assert_array_equal(from_rec[layer].counts, direct[layer].counts)


def test_joint_counts_one_bincount_equals_loop():
    rng = np.random.default_rng(2)
    codes, y = rng.integers(0, 4, (300, 7)), rng.integers(0, 3, 300)
    got = label_counts(codes, y, 4, 3, chunk_bytes=800)  # several chunks
    want = np.zeros((7, 4, 3), int)
    for j in range(7):
        np.add.at(want[j], (codes[:, j], y), 1)
    np.testing.assert_array_equal(got, want)


def test_kl_profile_checker(capsys):
    assert A.check_kl_profile(A.kl_profile_from_counts) is True
    assert "correct" in capsys.readouterr().out
    for wrong, hint in [(lambda c: A.kl_profile_from_counts(c) * math.log(2), "nats"),
                        (lambda c: A.kl_profile_from_counts(c.T), "one value per class"),
                        (lambda c: A.kl_profile_from_counts(c) * c.sum(0) / c.sum(), "weighted"),
                        (lambda c: 1 / 0, "ZeroDivisionError"),
                        (lambda c: np.nansum(c.sum(1)[:, None] / c.sum() * np.log2((c.sum(1)[:, None] / c.sum())
                                                                                    / (c / c.sum(0))), 0), "reversed")]:
        assert A.check_kl_profile(wrong) is False  # never raises
        out = capsys.readouterr().out
        assert hint in out and "sum_t" not in out and "log2(" not in out  # a diagnosis, not the formula to type


# ----------------------------------------------------------------------------- engine
@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(600, 12, generator=g)
    y = ((X[:, 0] > 0).long() + 2 * (X[:, 1] + X[:, 2] > 0).long())
    return X, y


def _trained(activation, task, sizes=(12, 24, 16, 4), steps=150):
    X, y = task
    net = mlp(list(sizes), activation=activation, seed=1)
    opt = torch.optim.Adam(net.parameters(), 2e-2)
    with cpu_threads(1):  # tiny net: one thread is fastest on the shared machine
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    return net


@pytest.fixture(scope="module")
def relu_net(task):
    return _trained("relu", task)


@pytest.fixture(scope="module")
def tanh_net(task):
    return _trained("tanh", task)


def _fixed_output_accuracy(net, X, y, layer, value):
    """Accuracy when ``layer``'s output is replaced by ``value`` for every sample, by running
    the modules after it on the constant by hand."""
    names = [n for n, _ in net.named_children()]
    mods = list(net.children())
    k = names.index(layer)
    with torch.no_grad():
        h = X
        for m in mods[:k + 1]:
            h = m(h)
        h = (h.mean(0) if value == "mean" else torch.zeros(h.shape[1]))[None].expand(len(X), -1)
        for m in mods[k + 1:]:
            h = m(h)
    return float((h.argmax(1) == y).double().mean())


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("value", ["zero", "mean"])
def test_fast_curve_equals_hooked_reevaluation(act, value, task, relu_net, tanh_net):
    X, y = task
    net = relu_net if act == "relu" else tanh_net
    eng = A.AblationEngine(net, (X, y))
    eng.chunk_samples, eng.block = 64, 5  # several chunks and a partial last block
    for layer in ["act1", "act2", "fc1", "fc2"]:  # Linear next (rank-one path) and activation next
        m = eng.n_units(layer)
        order = np.random.default_rng(3).permutation(m)
        fast = eng.curve(layer, order, value=value)
        ref = A.reference_ablation_curve(net, (X, y), layer, order, value=value)
        np.testing.assert_array_equal(fast.counts, np.arange(m + 1))
        np.testing.assert_allclose(fast.accuracy, ref.accuracy, atol=1.5 / len(X))
        np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fast.class_accuracy, ref.class_accuracy, atol=1.5 / 100)
        ok, msg = A.curves_match(fast, ref, n_samples=len(X))
        assert ok, msg
        # nothing ablated = the model; everything ablated = the layer's output fixed
        with torch.no_grad():
            base = float((net(X).argmax(1) == y).double().mean())
        assert fast.accuracy[0] == base == eng.base_accuracy
        assert fast.accuracy[-1] == _fixed_output_accuracy(net, X, y, layer, value)
    # a subset of counts in a non-sorted order and a partial order
    order = np.arange(24)[::-1]
    sub = eng.curve("act1", order[:10], counts=np.array([7, 0, 3, 10]), value=value)
    ref = A.reference_ablation_curve(net, (X, y), "act1", order[:10], counts=np.array([7, 0, 3, 10]), value=value)
    np.testing.assert_allclose(sub.accuracy, ref.accuracy, atol=1.5 / len(X))
    np.testing.assert_allclose(sub.loss, ref.loss, rtol=1e-5, atol=1e-6)


def test_network_curve_and_single_match_hooks(task, relu_net):
    X, y = task
    fast = A.AblationEngine(relu_net, (X, y))
    slow = A.AblationEngine(relu_net, (X, y), method="hooks")
    assert fast.method == "fast" and slow.method == "hooks"
    rng = np.random.default_rng(4)
    li = np.r_[np.zeros(24, int), np.ones(16, int)]
    unit = np.r_[np.arange(24), np.arange(16)]
    perm = rng.permutation(40)
    for value in ["zero", "mean"]:
        a = fast.network_curve(["act1", "act2"], li[perm], unit[perm], counts=9, value=value)
        b = slow.network_curve(["act1", "act2"], li[perm], unit[perm], counts=9, value=value)
        np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1.5 / len(X))
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5, atol=1e-6)
        assert a.accuracy[-1] < a.accuracy[0]
    acc_f, loss_f, _ = fast.single("act1")
    acc_s, loss_s, _ = slow.single("act1")
    np.testing.assert_allclose(acc_f, acc_s, atol=1.5 / len(X))
    np.testing.assert_allclose(loss_f, loss_s, rtol=1e-5, atol=1e-6)
    # single ablation of unit j == step 1 of a curve that starts with j
    j = int(np.argmin(acc_f))
    r = A.reference_ablation_curve(relu_net, (X, y), "act1", [j], counts=[1])
    assert acc_f[j] == pytest.approx(r.accuracy[0], abs=1.5 / len(X))


def test_non_sequential_model_falls_back_to_hooks(task, relu_net):
    X, y = task

    class Wrapped(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    w = Wrapped(relu_net)
    eng = A.AblationEngine(w, (X, y))
    assert eng.method == "hooks"
    order = np.arange(16)
    a = eng.curve("inner.act2", order, counts=5)
    b = A.AblationEngine(relu_net, (X, y)).curve("act2", order, counts=5)
    np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1.5 / len(X))


def test_model_unchanged_afterwards(task, relu_net):
    X, y = task
    before = {k: v.clone() for k, v in relu_net.state_dict().items()}
    relu_net.train()
    relu_net.fc2.eval()  # a mixed state must come back as it was
    modes = [m.training for m in relu_net.modules()]
    meas = A.neuron_measures(A.layer_activations(relu_net, X), y)
    A.ablation_study(relu_net, (X, y), meas, n_random=1, network=True, counts=5)
    A.single_neuron_importance(relu_net, (X, y))
    A.reference_ablation_curve(relu_net, (X, y), "act1", np.arange(24), counts=3)
    A.AblationEngine(relu_net, (X, y), method="hooks").curve("act1", np.arange(24), counts=3)
    assert [m.training for m in relu_net.modules()] == modes
    for k, v in relu_net.state_dict().items():
        assert torch.equal(v, before[k])
    for m in relu_net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    relu_net.eval()


def test_study_orders_and_random_band(task, relu_net):
    X, y = task
    meas = A.neuron_measures(A.layer_activations(relu_net, X), y)
    assert meas.names == ["act1", "act2"]
    s = A.ablation_study(relu_net, (X, y), meas, n_random=3, seed=10)
    assert len(s.curves) == 2 * (3 * 2 + 3)
    c = s.get("act1", "mi", "descending")
    np.testing.assert_array_equal(c.order, np.argsort(-meas.get("act1", "mi"), kind="stable"))
    assert [r.seed for r in s.random("act2")] == [10, 11, 12]
    assert not np.array_equal(s.random("act2")[0].order, s.random("act2")[1].order)
    for curve in s.curves:
        assert curve.accuracy[0] == pytest.approx(s.base_accuracy)
        assert curve.class_accuracy.shape == (len(curve.counts), 4)
        # accuracy is the class-size-weighted mean of the per-class accuracies
        w = np.bincount(y.numpy(), minlength=4) / len(y)
        np.testing.assert_allclose(curve.class_accuracy @ w, curve.accuracy, atol=1e-12)
    rows = A.summarize_study(s, "relu")
    assert {r["measure"] for r in rows} == set(A.MEASURES) and all(r["net"] == "relu" for r in rows)
    # rank-normalised network order: each layer's values become ranks in [0, 1]
    sn = A.ablation_study(relu_net, (X, y), meas, n_random=0, network=True, network_normalize="rank",
                          measure_names=["mi"], directions=["descending"], counts=6)
    assert sn.get("network", "mi", "descending").n_units == 40


def test_area_and_gap():
    def curve(acc):
        n = len(acc) - 1
        return A.AblationCurve(layer="l", layers=("l",), measure="mi", direction="ascending",
                               counts=np.arange(n + 1), accuracy=np.asarray(acc, float), loss=np.zeros(n + 1),
                               class_accuracy=np.zeros((n + 1, 2)), order=np.arange(n),
                               order_layer=np.zeros(n, int), n_units=n)
    flat, line = curve([1, 1, 1, 1, 1]), curve([1, .75, .5, .25, 0])
    assert A.curve_area(flat) == pytest.approx(1.0)
    assert A.curve_area(line) == pytest.approx(0.5)
    assert A.curve_gap(flat, line) == pytest.approx(0.5)
    assert A.curve_gap(line, flat) == pytest.approx(-0.5)


def test_importance_correlations(task, relu_net):
    from scipy.stats import spearmanr

    X, y = task
    meas = A.neuron_measures(A.layer_activations(relu_net, X), y)
    imp = A.single_neuron_importance(relu_net, (X, y))
    assert set(imp) == {"act1", "act2"}
    assert np.all(np.isfinite(imp["act1"].accuracy_drop))
    r = A.importance_correlations(imp, meas)
    want = spearmanr(imp["act1"].loss_increase, meas.get("act1", "mi")).statistic
    assert r.within["act1"]["mi"] == pytest.approx(want)
    pooled = spearmanr(np.r_[imp["act1"].loss_increase, imp["act2"].loss_increase],
                       np.r_[meas.get("act1", "entropy"), meas.get("act2", "entropy")]).statistic
    assert r.pooled["entropy"] == pytest.approx(pooled)
    assert len(r.table()) == 3 * 3
    # a dead ReLU unit (never active) has zero entropy and ablating it changes nothing
    dead = meas.get("act1", "entropy") == 0
    if dead.any():
        assert np.all(imp["act1"].accuracy_drop[dead] == 0)


def test_compare_relu_and_tanh(task, relu_net, tanh_net):
    X, y = task
    studies = {}
    for name, net in [("relu", relu_net), ("tanh", tanh_net)]:
        meas = A.neuron_measures(A.layer_activations(net, X), y)
        studies[name] = A.ablation_study(net, (X, y), meas, n_random=1, counts=5)
    rows = A.compare_studies(studies)
    assert {r["net"] for r in rows} == {"relu", "tanh"} and len(rows) == 2 * 2 * 3


# ----------------------------------------------------------------------------- errors
def test_bad_input_errors(task, relu_net):
    X, y = task
    eng = A.AblationEngine(relu_net, (X, y))
    with pytest.raises(ValueError, match="unknown layer 'act9'.*act1"):
        eng.curve("act9", [0])
    with pytest.raises(ValueError, match="has 16 neurons but counts asks to ablate up to 20"):
        eng.curve("act2", np.arange(16), counts=np.arange(21))
    with pytest.raises(ValueError, match="has 16 neurons but the order lists 20"):
        eng.curve("act2", np.arange(20))
    with pytest.raises(ValueError, match="twice"):
        eng.curve("act2", [1, 1])
    with pytest.raises(ValueError, match="has 599 labels but the data have 600"):
        A.AblationEngine(relu_net, (X, y[:-1]))
    with pytest.raises(ValueError, match="only 4 classes"):
        A.AblationEngine(relu_net, (X, y + 3))
    with pytest.raises(ValueError, match="labels has 10 entries"):
        A.neuron_measures({"a": np.ones((12, 2))}, np.zeros(10, int))
    with pytest.raises(ValueError, match="selectivity must be one of"):
        A.neuron_measures({"a": np.ones((12, 2))}, np.zeros(12, int), selectivity="mean")
    with pytest.raises(ValueError, match="value must be"):
        eng.curve("act2", np.arange(16), value="median")
    meas = A.neuron_measures(A.layer_activations(relu_net, X), y)
    with pytest.raises(ValueError, match="unknown layer 'fc7'"):
        A.ablation_study(relu_net, (X, y), meas, layers=["fc7"])
    with pytest.raises(ValueError, match="no measures for layer 'fc1'"):
        A.ablation_study(relu_net, (X, y), meas, layers=["fc1"])
    with pytest.raises(ValueError, match="measure 'kl' unknown"):
        A.ablation_study(relu_net, (X, y), meas, measure_names=["kl"])


# ----------------------------------------------------------------------------- plots, widget
def test_plots_return_axes(task, relu_net):
    import matplotlib.pyplot as plt

    from nifkit.ablation import plots as P

    X, y = task
    meas = A.neuron_measures(A.layer_activations(relu_net, X), y)
    s = A.ablation_study(relu_net, (X, y), meas, n_random=2, counts=6)
    imp = A.single_neuron_importance(relu_net, (X, y))
    axes = [P.plot_measures(meas), P.plot_measures(meas["act1"], x="mi", y="selectivity", color=None),
            P.plot_ablation_curves(s, layer="act2", marker_at=3), P.plot_ablation_curves(s.for_layer("act1"),
                                                                                           metric="loss"),
            P.plot_importance_vs_measure(imp, meas, "selectivity"), P.plot_kl_profile(meas["act1"], top=5),
            P.plot_class_accuracy(s.curves[0], 3), P.plot_weight_images(relu_net.fc1.weight.detach()[:5], (3, 4))]
    for ax in axes:
        assert isinstance(ax, plt.Axes)
    band = axes[2].collections[0]  # the random band spans min..max of the random curves
    ys = np.stack([c.accuracy for c in s.random("act2")])
    assert np.isclose(band.get_paths()[0].vertices[:, 1].max(), ys.max())
    labels = [t.get_text() for t in axes[2].get_legend().get_texts()]
    assert "random, mean" in labels  # the band's mean line is in the legend
    # one colour scale for every layer of a panel, and a given one for side-by-side panels
    both = [c for c in axes[0].collections if c.get_array() is not None]
    allsel = np.concatenate([meas["act1"].selectivity, meas["act2"].selectivity])
    assert all(c.norm.vmin == pytest.approx(allsel.min()) and c.norm.vmax == pytest.approx(allsel.max()) for c in both)
    fixed = P.plot_measures(meas, vmin=0.0, vmax=5.0)
    assert all(c.norm.vmax == 5.0 for c in fixed.collections if c.get_array() is not None)
    mosaic = P.weight_mosaic(np.arange(24).reshape(2, 12), (3, 4), pad=1)
    assert mosaic.shape == (4, 10) and mosaic[0, 3] == pytest.approx(3 / 11) and np.isnan(mosaic[3, 0])
    plt.close("all")


def test_explorer_slider_moves_result_and_readout(task, relu_net):
    from nifkit.ablation import AblationExplorer

    X, y = task
    ex = AblationExplorer(relu_net, (X, y), n_random=2, image_shape=(3, 4))
    r0 = ex.result
    assert (r0.layer, r0.measure, r0.order, r0.n_ablated) == ("act1", "mi", "descending", 6)
    ref = A.reference_ablation_curve(relu_net, (X, y), "act1", r0.curve.order, counts=[0, 6, 20])
    assert r0.accuracy == pytest.approx(ref.accuracy[1], abs=1.5 / len(X))
    assert "ablated 6 of 24 neurons of act1 (descending I(T;Y))" in ex.readout.text
    n_computed, draws = ex.n_computed, ex.plot.n_draws
    ex.controls["ablated"].value = 20
    r1 = ex.result
    assert r1.n_ablated == 20 and r1.accuracy == pytest.approx(ref.accuracy[2], abs=1.5 / len(X))
    assert r1.accuracy != r0.accuracy and f"accuracy {r1.accuracy:.3f}" in ex.readout.text
    assert ex.n_computed == n_computed and ex.plot.n_draws == draws + 1  # cached: only redrawn
    np.testing.assert_array_equal(r1.ablated_units, np.argsort(-ex.measures.get("act1", "mi"), kind="stable")[:20])
    ex.controls["layer"].value = "act2"  # 16 units: the slider is clamped
    assert ex.controls["ablated"].max == 16 and ex.result.n_ablated == 16 and ex.result.layer == "act2"
    ex.controls["order"].value = "random"
    assert "random order, seed 0" in ex.readout.text and ex.error is None
    ex.controls["measure"].value = "entropy"
    ex.controls["order"].value = "ascending"
    assert ex.result.curve.measure == "entropy" and ex.result.curve.direction == "ascending"


def test_hidden_layers_names():
    net = nn.Sequential(nn.Linear(3, 4), nn.PReLU(), nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Tanh(),
                        nn.Linear(4, 3), nn.Dropout(0.1), nn.Linear(3, 2))
    assert A.hidden_layers(net) == ["1", "4", "6"]
    assert A.hidden_layers(mlp([5, 4, 3, 2], activation="sigmoid")) == ["act1", "act2"]
    with pytest.raises(ValueError, match="no hidden layer"):
        A.hidden_layers(nn.Linear(2, 2))
