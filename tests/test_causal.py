"""Tests for nifkit.ei: effective information, sensitivity, degeneracy, phi.

Exact checks (identity layers on a stratified grid, zero weights, streaming vs one
block, the two sensitivity counting methods), error messages, and side-by-side
agreement with deep-ei 0.7.0 (``-m reference``) within sampling error.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nifkit import ei as causal
from nifkit.ei import CHUNK, identity_ei, layer_ei, model_ei
from nifkit.info import Binner, pair_counts
from nifkit.intervene import knock_out_edges


def _random_layer(n_in, n_out, scale=3.0, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    w = (torch.rand(n_out, n_in, generator=g) * 2 - 1) * scale
    b = (torch.rand(n_out, generator=g) * 2 - 1) if bias else torch.zeros(n_out)
    return w.double(), b.double()


# ----------------------------------------------------------------------------- exact values
@pytest.mark.parametrize("n,bins", [(1, 8), (3, 4), (2, 8)])
def test_identity_layer_is_exactly_n_log2_bins(n, bins):
    cells = bins ** n
    r = layer_ei(np.eye(n), None, n_bins=bins, n_samples=cells * 16, n_sensitivity_samples=bins * 50,
                 sampling="grid", in_range=(0, 1), out_range=(0, 1))
    want = n * math.log2(bins)
    assert want == identity_ei(n, bins)
    assert r.ei == pytest.approx(want, abs=1e-9)
    assert r.ei_parts == pytest.approx(want, abs=1e-9)
    assert r.sensitivity == pytest.approx(want, abs=1e-9)
    assert r.degeneracy == pytest.approx(0, abs=1e-9)
    assert r.phi == pytest.approx(0, abs=1e-9)
    # each input tells only its own output
    np.testing.assert_allclose(r.edge_ei, np.eye(n) * math.log2(bins), atol=1e-9)
    np.testing.assert_allclose(r.edge_sensitivity, np.eye(n) * math.log2(bins), atol=1e-9)


def test_identity_with_uniform_noise_is_close_and_below_the_bound():
    r = layer_ei(np.eye(2), None, n_bins=8, n_samples=200_000, n_sensitivity_samples=40_000)
    # the plug-in deficit of a uniform 64-cell histogram is about 63 / (2 n ln 2)
    assert 6 - 0.002 < r.ei <= 6 + 1e-12
    assert 6 - 0.01 < r.ei_parts < 6 + 0.01  # diagonal slightly below 3, off-diagonal bias slightly above 0
    assert 6 - 0.002 < r.sensitivity <= 6 + 1e-12


def test_zero_weights_carry_nothing():
    r = layer_ei(np.zeros((3, 2)), "sigmoid", bias=np.array([0.3, -2.0, 5.0]), n_samples=5000,
                 n_sensitivity_samples=2000)
    assert r.sensitivity == 0.0 and np.all(r.edge_sensitivity == 0)
    assert r.ei == pytest.approx(0.0, abs=1e-12)  # constant outputs: H(Y) = 0
    assert r.ei_parts == pytest.approx(0.0, abs=1e-12)


def test_a_steep_edge_reaches_log2_bins_and_sign_does_not_matter():
    # y = sigmoid(w (x - 1/2)) with a huge w is a step: 2 output bins used, 1 bit
    kw = dict(measures="sensitivity", n_sensitivity_samples=8 * 500, sampling="grid")
    up = layer_ei(np.array([[1e9]]), "sigmoid", bias=np.array([-5e8]), **kw)
    down = layer_ei(np.array([[-1e9]]), "sigmoid", bias=np.array([5e8]), **kw)
    assert up.sensitivity == pytest.approx(1.0, abs=1e-9)
    assert down.sensitivity == pytest.approx(1.0, abs=1e-9)


def test_phi_and_degeneracy_are_the_documented_differences():
    w, b = _random_layer(3, 2, seed=3)
    r = layer_ei((w, b), "tanh", out_range=(-1, 1), n_samples=20_000, n_sensitivity_samples=4000)
    assert r.degeneracy == pytest.approx(r.sensitivity - r.ei)
    assert r.degeneracy_parts == pytest.approx(r.sensitivity - r.ei_parts)
    assert r.phi == pytest.approx(r.ei - r.ei_parts)
    assert r.ei_parts == pytest.approx(r.edge_ei.sum())
    assert r.sensitivity == pytest.approx(r.edge_sensitivity.sum())
    assert r.edge_ei.shape == (3, 2) and r.edge_sensitivity.shape == (3, 2)


# ----------------------------------------------------------------------------- counting machinery
def test_output_codes_follow_the_core_binner_rule():
    rng = np.random.default_rng(0)
    y = rng.uniform(-0.3, 1.3, size=(5000, 4))
    y[:10] = np.linspace(0, 1, 9)[:, None].repeat(4, 1)[:9].tolist() + [[1.0] * 4]  # exact edges
    ref = Binner(8, binning="fixed", bin_range=(0, 1)).fit_transform(y)
    lo, hi = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    ours = causal.sampling.out_codes(torch.from_numpy(y), lo, hi, 8).numpy()
    np.testing.assert_array_equal(ours, ref)


def test_streaming_in_blocks_gives_exactly_the_counts_of_one_block():
    w, b = _random_layer(5, 4, seed=1)
    n = 3 * CHUNK + 123
    kw = dict(n_samples=n, n_sensitivity_samples=n, keep_counts=True, seed=7)
    big = layer_ei((w, b), "sigmoid", memory_budget=2**30, **kw)
    small = layer_ei((w, b), "sigmoid", memory_budget=50_000, **kw)  # one chunk per block
    for key in ("joint", "vector_keys", "vector_counts", "sensitivity_joint"):
        np.testing.assert_array_equal(big.counts[key], small.counts[key])
    assert big.counts["joint"].sum() == n * 5 * 4
    assert big.ei == small.ei and big.ei_parts == small.ei_parts and big.sensitivity == small.sensitivity
    # and the first n samples of a longer run are the same samples
    longer = layer_ei((w, b), "sigmoid", n_samples=2 * n, measures="ei_parts", keep_counts=True, seed=7)
    assert not np.array_equal(longer.counts["joint"], big.counts["joint"])
    half = layer_ei((w, b), "sigmoid", n_samples=n, measures="ei_parts", keep_counts=True, seed=7)
    np.testing.assert_array_equal(half.counts["joint"], big.counts["joint"])


def test_pair_counts_int8_and_float_paths_match_a_direct_count(monkeypatch):
    g = torch.Generator().manual_seed(0)
    xc = torch.randint(0, 5, (3000, 4), generator=g).to(torch.uint8)
    yc = torch.randint(0, 3, (3000, 6), generator=g).to(torch.uint8)
    direct = torch.zeros(4, 5, 6, 3, dtype=torch.float64)
    a, b = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    for (i, j) in zip(a.ravel(), b.ravel()):  # the plain way, pair by pair (a test-only reference)
        np.add.at(direct.numpy()[i, :, j], (xc[:, i].long().numpy(), yc[:, j].long().numpy()), 1)
    from nifkit.info import kernels

    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    try:
        for name in kernels.KERNELS:  # every counting kernel gives the same table
            kernels.set_counting_kernel(name)
            assert torch.equal(pair_counts(xc, yc, 5, 3), direct), name
    finally:
        kernels.set_counting_kernel(None)


@pytest.mark.parametrize("act,out_range", [("sigmoid", (0, 1)), ("tanh", (-1, 1)), (nn.ReLU(), (0, 2)),
                                           (nn.LeakyReLU(0.1), (-0.5, 2))])
def test_threshold_and_dense_sensitivity_counts_agree(act, out_range):
    w, b = _random_layer(6, 5, seed=2)
    w[0, 0] = 0.0  # a zero weight, and a constant-bias edge
    kw = dict(measures="sensitivity", n_sensitivity_samples=6000, keep_counts=True, out_range=out_range)
    thr = layer_ei((w, b), act, sensitivity_method="threshold", **kw)
    dense = layer_ei((w, b), act, sensitivity_method="dense", **kw)
    assert thr.sensitivity_method == "threshold" and dense.sensitivity_method == "dense"
    diff = np.abs(thr.counts["sensitivity_joint"] - dense.counts["sensitivity_joint"])
    assert diff.sum() <= 2  # at most a sample sitting on a bin edge within float rounding
    np.testing.assert_allclose(thr.edge_sensitivity, dense.edge_sensitivity, atol=1e-3)
    assert thr.sensitivity > 1.0


def test_non_monotone_activation_uses_the_dense_method():
    w, b = _random_layer(3, 3, seed=4)
    r = layer_ei((w, b), nn.GELU(), out_range="fit", n_samples=5000, n_sensitivity_samples=3000)
    assert r.sensitivity_method == "dense" and r.activation == "GELU"
    assert r.sensitivity > 0 and np.isfinite(r.ei)
    with pytest.raises(ValueError, match="monotone"):
        layer_ei((w, b), nn.GELU(), measures="sensitivity", sensitivity_method="threshold")


def test_fitted_output_ranges_are_the_reachable_ranges():
    w = np.array([[2.0, -1.0], [0.5, 0.5]])
    r = layer_ei(w, "sigmoid", bias=np.array([0.0, -1.0]), out_range="fit", n_samples=4000, n_sensitivity_samples=800)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(r.out_range, [[sig(-1.0), sig(2.0)], [sig(-1.0), sig(0.0)]], rtol=1e-12)
    # a narrow sigmoid range binned over (0, 1) wastes bins: fitting the range reveals more
    narrow = layer_ei(w * 0.2, "sigmoid", n_samples=20_000, measures="ei_parts")
    fitted = layer_ei(w * 0.2, "sigmoid", n_samples=20_000, measures="ei_parts", out_range="fit")
    assert fitted.ei_parts > narrow.ei_parts + 0.5


def test_plugin_bias_of_an_independent_edge_falls_like_one_over_n():
    # output 0 depends only on input 0; every other edge is independent, so its MI is pure bias
    w = np.array([[6.0, 0.0, 0.0]])
    vals = {}
    for n in (2000, 32_000):
        runs = [layer_ei(w, "sigmoid", bias=np.array([-3.0]), n_samples=n, measures="ei_parts", seed=s)
                for s in range(6)]
        vals[n] = np.mean([r.edge_ei[1:, 0].mean() for r in runs])
        expected = 7 * 7 / (2 * n * math.log(2))
        assert 0.5 * expected < vals[n] < 1.6 * expected
        assert runs[0].bias_parts == pytest.approx(3 * expected)
    assert vals[2000] / vals[32_000] == pytest.approx(16, rel=0.35)


def test_auto_samples_double_until_stable():
    w, b = _random_layer(4, 3, seed=5)
    r = layer_ei((w, b), "sigmoid", n_samples="auto", n_sensitivity_samples="auto", threshold=0.02,
                 auto_start=2000, max_samples=256_000)
    ns = [n for n, _ in r.trace]
    assert ns[0] == 2000 and all(b == 2 * a for a, b in zip(ns, ns[1:]))
    assert r.n_samples == ns[-1] and len(ns) >= 2
    last, prev = r.trace[-1][1], r.trace[-2][1]
    for k in last:
        assert abs(last[k] - prev[k]) <= max(0.02 * abs(last[k]), 1e-3)
    fixed = layer_ei((w, b), "sigmoid", n_samples=r.n_samples, n_sensitivity_samples=r.n_sensitivity_samples)
    assert fixed.ei_parts == r.ei_parts and fixed.ei == r.ei and fixed.sensitivity == r.sensitivity
    with pytest.warns(UserWarning, match="not stable"):
        layer_ei((w * 10, b), "sigmoid", n_samples="auto", measures="ei_parts", threshold=1e-9, atol=1e-12,
                 auto_start=1000, max_samples=4000)


def test_conv2d_receptive_field_equals_the_flattened_linear_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, kernel_size=2)
    lin = nn.Linear(8, 3)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(3, -1))
        lin.bias.copy_(conv.bias)
    kw = dict(n_samples=6000, n_sensitivity_samples=2000)
    rc = layer_ei(conv, "sigmoid", **kw)
    rl = layer_ei(lin, "sigmoid", **kw)
    assert rc.kind == "conv2d" and rc.n_inputs == 8 and rc.n_outputs == 3
    assert rc.ei == rl.ei and rc.ei_parts == rl.ei_parts and rc.sensitivity == rl.sensitivity


def test_conv2d_on_a_feature_map_counts_only_receptive_field_edges():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    r = layer_ei(conv, "sigmoid", input_shape=(1, 4, 4), n_samples=5000, n_sensitivity_samples=2000,
                 measures=("ei_parts", "sensitivity"))
    assert r.n_inputs == 16 and r.n_outputs == 32
    # each output pixel sees its 3x3 neighbourhood clipped at the border: 4*4 + 8*6 + 4*9 = 100 per channel
    assert r.n_edges == 2 * 100 and r.edge_mask.shape == (16, 32)
    assert np.all(r.edge_ei[~r.edge_mask] == 0) and np.all(r.edge_sensitivity[~r.edge_mask] == 0)
    assert r.ei_parts == pytest.approx(r.edge_ei[r.edge_mask].sum())


def test_model_ei_measures_every_layer_and_skips_vector_ei_when_too_large():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(25, 6, bias=False), nn.Sigmoid(), nn.Dropout(0.1), nn.Linear(6, 5, bias=False),
                        nn.Sigmoid())
    res = model_ei(net, n_samples=8000, n_sensitivity_samples=1000)
    assert res.names == ["0", "3"]
    assert math.isnan(res["0"].ei) and "vector EI skipped" in res["0"].notes[0]
    assert math.isnan(res["0"].degeneracy) and not math.isnan(res["0"].degeneracy_parts)
    assert np.isfinite(res["3"].ei) and res["3"].activation == "Sigmoid"
    assert res["0"].plane_point() == (res["0"].sensitivity, res["0"].degeneracy_parts)
    assert res["3"].plane_point() == (res["3"].sensitivity, res["3"].degeneracy)
    np.testing.assert_allclose(res.values("ei_parts"), [res["0"].ei_parts, res["3"].ei_parts])
    assert "EI_parts" in res.summary()
    rows = res.table()
    assert [r["layer"] for r in rows] == ["0", "3"] and rows[1]["ei_parts"] == res["3"].ei_parts
    with pytest.raises(ValueError, match="too large"):
        model_ei(net, measures=("ei",), n_samples=8000)


def test_device_argument_is_honoured():
    w, b = _random_layer(3, 3, seed=6)
    a = layer_ei((w, b), "sigmoid", n_samples=5000, n_sensitivity_samples=1000, device="cpu")
    c = layer_ei((w, b), "sigmoid", n_samples=5000, n_sensitivity_samples=1000, device=torch.device("cpu"))
    assert a.ei == c.ei
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            layer_ei((w, b), "sigmoid", device="cuda")


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("layer,match", [
    (nn.LSTM(3, 3), "unsupported layer type LSTM"),
    (nn.BatchNorm1d(3), "unsupported layer type BatchNorm1d"),
    ("weights", "unsupported layer type str"),
    (np.zeros((2, 2, 2)), "2-D"),
])
def test_unsupported_layers_are_rejected(layer, match):
    with pytest.raises((TypeError, ValueError), match=match):
        layer_ei(layer)


def test_coupling_normalisations_are_skipped_and_coupling_activations_are_rejected():
    res = model_ei(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Sigmoid(), nn.Linear(3, 2)),
                   n_samples=2000, n_sensitivity_samples=200)
    assert res.names == ["3"] and "LayerNorm" in res.skipped["0"] and "0 not measured" in res.notes[0]
    with pytest.raises(TypeError, match="elementwise"):
        layer_ei(np.eye(2), nn.Softmax(dim=1))
    with pytest.raises(ValueError, match="activation must be one of"):
        layer_ei(np.eye(2), "sigmoidal")


@pytest.mark.parametrize("kw,match", [
    (dict(in_range=(1, 1)), "in_range must be finite with hi > lo"),
    (dict(out_range=(1, 0)), "out_range must be finite with hi > lo"),
    (dict(in_range=(0, np.inf)), "in_range must be finite"),
    (dict(out_range="auto"), "out_range must be"),
    (dict(n_bins=1), r"n_bins must be an integer >= 2"),
    (dict(n_bins=(8, 1)), r"n_bins\[1\] must be an integer >= 2"),
    (dict(n_samples=10), "too few samples for the bins"),
    (dict(n_sensitivity_samples=63), "too few samples for the bins"),
    (dict(n_samples=0), "samples must be a positive integer"),
    (dict(measures=("entropy",)), "measures must be among"),
    (dict(sampling="grid", n_samples=1000), "multiple of in_bins\\*\\*n_in"),
])
def test_bad_settings_get_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        layer_ei(np.eye(2), "sigmoid", **kw)


def test_fractional_bins_are_a_type_error():
    with pytest.raises(TypeError, match="n_bins must be an integer, got 2.5"):
        layer_ei(np.eye(2), "sigmoid", n_bins=2.5)


def test_nan_weights_are_rejected():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match="weights of layer 'layer' contains? NaN"):
        layer_ei(lin, "sigmoid")
    with pytest.raises(ValueError, match="bias of layer 'layer' contains? inf"):
        layer_ei(np.eye(2), bias=np.array([0.0, np.inf]))


def test_vector_ei_of_a_wide_layer_is_an_error_when_asked_for():
    with pytest.raises(ValueError, match="Vector EI is realistic for small layers only"):
        layer_ei(np.zeros((6, 25)), "sigmoid", measures="ei")


# ----------------------------------------------------------------------------- exercise checker
def test_edge_sensitivity_checker_accepts_a_right_answer_and_explains_a_wrong_one(capsys):
    def right(w, b, bins=8, n=200_000, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 1, n)
        y = 1 / (1 + np.exp(-(w * x + b)))
        cx = np.minimum((x * bins).astype(int), bins - 1)
        cy = np.minimum((y * bins).astype(int), bins - 1)
        joint = np.zeros((bins, bins))
        np.add.at(joint, (cx, cy), 1)
        p = joint / n
        px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log2(p[nz] / (px @ py)[nz])).sum())

    def nats(w, b, **kw):
        return right(w, b, **kw) * math.log(2)

    assert causal.check_edge_sensitivity(right)
    assert "✓" in capsys.readouterr().out
    assert not causal.check_edge_sensitivity(nats)
    out = capsys.readouterr().out
    assert "nats" in out and "log2" not in out

    def own_range(w, b, bins=8, n=200_000, seed=0):  # the chapter's planted mistake: bins over y's own range
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 1, n)
        y = 1 / (1 + np.exp(-(w * x + b)))
        p = np.histogram2d(x, y, bins=bins)[0] / n
        px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log2(p[nz] / (px @ py)[nz])).sum())

    assert not causal.check_edge_sensitivity(own_range)
    out = capsys.readouterr().out
    assert "min..max" in out and "bin edges" in out and "range=" not in out  # diagnoses, never the fix's code


# ----------------------------------------------------------------------------- deep-ei side by side
@pytest.fixture
def deep_ei_topology(monkeypatch):
    """deep-ei's ``topology_of`` adds an edge from a ``None`` node, which current networkx
    rejects; give it a DiGraph that ignores that edge (only while the test runs)."""
    import deep_ei
    import networkx as nx

    class _DiGraph(nx.DiGraph):
        def add_edge(self, u, v, **attr):
            if u is None:
                self.add_node(v)
                return
            super().add_edge(u, v, **attr)

    def topology(net, n_in):
        monkeypatch.setattr(deep_ei.nx, "DiGraph", _DiGraph)
        try:
            return deep_ei.topology_of(net, torch.zeros(1, n_in))
        finally:
            monkeypatch.undo()

    return deep_ei, topology


def _paper_like_layer(n_in, n_out, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(n_in, n_out), nn.Sigmoid())
    with torch.no_grad():
        net[0].weight.uniform_(-4, 4)
        net[0].bias.uniform_(-1, 1)
    return net


_DEEP_KW = dict(in_range=(0, 1), in_bins=8, out_range=(0, 1), out_bins=8)


def _spread(fn, seeds=6):
    vals = np.array([fn(s) for s in range(seeds)])
    return vals.mean(0), vals.std(0, ddof=1)


@pytest.mark.reference
def test_ei_parts_and_edge_matrix_agree_with_deep_ei(deep_ei_topology):
    deep_ei, topology = deep_ei_topology
    net = _paper_like_layer(4, 5, seed=1)
    top = topology(net, 4)
    n = 20_000
    theirs = deep_ei.ei_parts_matrix(net[0], top, samples=n, **_DEEP_KW)
    mean, sd = _spread(lambda s: layer_ei(net, n_samples=n, measures="ei_parts", seed=s).edge_ei)
    # every edge within 5 standard deviations (of one estimate) of deep-ei's single estimate
    assert np.all(np.abs(theirs - mean) <= 5 * sd * math.sqrt(1 + 1 / 6) + 1e-3)
    assert abs(theirs.sum() - mean.sum()) < 0.1
    assert theirs.sum() > 1.0  # a layer with real structure, not only bias


@pytest.mark.reference
def test_vector_ei_agrees_with_deep_ei(deep_ei_topology):
    deep_ei, topology = deep_ei_topology
    net = _paper_like_layer(3, 3, seed=2)
    top = topology(net, 3)
    n = 20_000
    theirs = deep_ei.ei(net[0], top, samples=n, **_DEEP_KW)
    mean, sd = _spread(lambda s: layer_ei(net, n_samples=n, measures="ei", seed=s).ei)
    assert abs(theirs - mean) <= 5 * sd * math.sqrt(1 + 1 / 6) + 0.01
    assert theirs > 2.0


@pytest.mark.reference
def test_sensitivity_agrees_with_deep_ei(deep_ei_topology):
    deep_ei, topology = deep_ei_topology
    net = _paper_like_layer(3, 4, seed=3)
    top = topology(net, 3)
    n = 5000
    theirs = deep_ei.sensitivity_matrix(net[0], top, samples=n, **_DEEP_KW)
    mean, sd = _spread(lambda s: layer_ei(net, n_sensitivity_samples=n, measures="sensitivity", seed=s)
                       .edge_sensitivity)
    assert np.all(np.abs(theirs - mean) <= 5 * sd * math.sqrt(1 + 1 / 6) + 2e-3)
    assert abs(theirs.sum() - mean.sum()) < 0.15
    assert theirs.sum() > 3.0


# ----------------------------------------------------------------------------- training dynamics, plots, widget
@pytest.fixture(scope="module")
def tiny_training():
    from nifkit import data, models

    ds = data.load_iris(scale="paper")
    net = models.mlp([4, 5, 5, 3], "sigmoid", bias=False, init="uniform_fan_in", out_activation="sigmoid", seed=0)
    return models.train(net, ds, epochs=60, lr=0.5, optimizer="sgd", loss="mse_sum", batch_size=10,
                        snapshot_every=20, seed=0, progress=False)


def test_ei_over_training_tracks_every_layer_with_common_noise(tiny_training):
    hist = causal.ei_over_training(tiny_training, n_samples=4000, n_sensitivity_samples=500)
    assert hist.epochs.tolist() == [0, 20, 40, 60] and hist.layers == ["fc1", "fc2", "fc_out"]
    assert hist.ei.shape == (4, 3) and np.isfinite(hist.ei).all()
    np.testing.assert_allclose(hist.degeneracy, hist.sensitivity - hist.ei)
    np.testing.assert_allclose(hist.phi, hist.ei - hist.ei_parts)
    direct = model_ei(tiny_training.model_at(40), n_samples=4000, n_sensitivity_samples=500)
    assert hist.at(40)["fc2"].ei == direct["fc2"].ei  # the same seed: the same noise at every epoch
    assert len(set(np.round(hist.ei_parts[:, 0], 9))) > 1  # training moved the layer
    every = causal.ei_over_training(tiny_training, every=40, measures=("ei_parts",), n_samples=2000)
    assert every.epochs.tolist() == [0, 40] and np.isnan(every.ei).all()
    with pytest.raises(KeyError, match="no snapshots at epochs"):
        causal.ei_over_training(tiny_training, epochs=[5])


def test_plots_draw_the_plane_the_curves_and_the_heatmap(tiny_training):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.ei import plots as cp

    hist = causal.ei_over_training(tiny_training, n_samples=4000, n_sensitivity_samples=500)
    ax = cp.plot_causal_plane(hist, epoch=20)
    assert "degeneracy" in ax.get_ylabel() and len(ax.lines) >= 4  # 3 paths + the EI = 0 line
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), hist.sensitivity[:, 0])
    np.testing.assert_allclose(line.get_ydata(), hist.degeneracy[:, 0])
    ax2 = cp.plot_ei_over_training(hist)
    assert len(ax2.figure.axes) >= 2
    ax3 = cp.plot_edge_ei(hist.results[-1]["fc1"])
    np.testing.assert_allclose(ax3.images[0].get_array(), hist.results[-1]["fc1"].edge_ei)
    parts = causal.ei_over_training(tiny_training, measures=("ei_parts", "sensitivity"), n_samples=2000,
                                    n_sensitivity_samples=500)
    ax4 = cp.plot_causal_plane(parts)
    assert "EI_parts" in ax4.get_ylabel()
    plt.close("all")


def test_edge_ablation_zeroes_each_decile_once(tiny_training):
    from nifkit import data

    ds = data.load_iris(scale="paper")
    model = tiny_training.model_at(60)
    res = model_ei(model, n_samples=4000, n_sensitivity_samples=500)
    groups = causal.model._group_masks(res["fc1"].edge_ei, 10)
    assert groups.shape == (10, 4, 5) and np.all(groups.sum(0) == 1)  # a partition of the edges
    assert set(groups.sum((1, 2)).tolist()) <= {2}
    w0 = model.fc1.weight.detach().numpy().T.copy()
    with knock_out_edges(model, {"fc1": groups[9]}):
        w1 = model.fc1.weight.detach().numpy().T.copy()
    assert np.all(w1[groups[9]] == 0) and np.array_equal(w1[~groups[9]], w0[~groups[9]])
    assert np.array_equal(model.fc1.weight.detach().numpy().T, w0)  # restored
    abl = causal.edge_ablation(model, (ds.X_test, ds.y_test), res, n_groups=10)
    assert set(abl.accuracy) == {"ei", "weight"} and abl.accuracy["ei"].shape == (10,)
    assert 0 <= abl.accuracy["ei"].min() <= abl.baseline <= 1
    import matplotlib
    matplotlib.use("Agg")
    from nifkit.ei import plots as cp

    draws = np.stack([np.linspace(0.2, 0.6, 10), np.linspace(0.3, 0.9, 10)])
    ax = cp.plot_edge_ablation(abl, random_draws=draws)  # the min-max band of several random draws
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.2) and band.max() == pytest.approx(0.9)
    assert "random deciles (2 draws, min-max)" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="random_draws"):
        cp.plot_edge_ablation(abl, random_draws=draws[:, :4])
    matplotlib.pyplot.close("all")


def test_causal_explorer_scrubs_epochs_and_recomputes_on_bins(tiny_training):
    from nifkit.ei import CausalExplorer

    hist = causal.ei_over_training(tiny_training, n_bins=8, n_samples=4000, n_sensitivity_samples=500)
    ex = CausalExplorer(tiny_training, history=hist)
    assert ex.error is None and ex.result.epoch == 60 and ex.result.layer == "fc1"
    assert ex.result.layer_ei is hist.at(60)["fc1"]  # reused, not recomputed
    first = ex.result
    ex.controls["epoch"].value = 20
    assert ex.result is not first and ex.result.epoch == 20
    assert ex.result.layer_ei.ei == hist.at(20)["fc1"].ei != first.layer_ei.ei
    assert "epoch 20 · fc1" in ex.readout.text and f"EI {hist.at(20)['fc1'].ei:.3f}" in ex.readout.text
    ex.controls["layer"].value = "fc2"
    assert ex.result.layer_ei.n_inputs == 5 and ex.plot.figure is not None
    order, texts, bar_max = [], [], []
    measure, set_text, task = ex._measure, ex.readout.set, ex.progress.task
    ex._measure = lambda e, b, n: (order.append(e), measure(e, b, n))[1]
    ex.readout.set = lambda text, **kw: (texts.append(text), set_text(text, **kw))[1]
    ex.progress.task = lambda total, text="": (bar_max.append((total, text)), task(total, text))[1]
    ex.controls["bins"].value = 4  # a new setting: the shown epoch first, then the rest behind the bar
    assert order == [20, 0, 40, 60]
    assert bar_max == [(3, "measuring 3 more epochs at 4 bins")]
    assert texts[0].startswith("⟳ recomputing epoch 20 at 4 bins")  # stale readout marked
    assert texts[1].startswith("epoch 20 · fc2") and "(4 bins" in texts[1]  # the shown epoch, at once
    assert "recomputing 3 other epochs" in texts[2]
    assert texts[-1].startswith("epoch 20 · fc2") and "recomputing" not in texts[-1]
    assert ex.result.n_bins == 4 and ex.result.layer_ei.n_bins == (4, 4)
    assert ex.result.history.epochs.tolist() == [0, 20, 40, 60]
    direct = model_ei(tiny_training.model_at(20), n_bins=4, n_samples=4000, n_sensitivity_samples=500)
    assert ex.result.layer_ei.ei_parts == direct["fc2"].ei_parts
    assert ex.progress.bar.layout.visibility == "hidden"


def test_model_ei_measures_a_small_cnn_on_its_feature_maps():
    from nifkit import models

    net = models.small_cnn(1, (5, 5), channels=(2,), n_classes=3, activation="sigmoid", seed=0)
    found = causal.measured_layers(net, input_shape=(1, 5, 5))
    assert list(found) == ["conv1", "fc_out"] and found["conv1"][2] == (1, 5, 5)
    res = model_ei(net, input_shape=(1, 5, 5), n_samples=3000, n_sensitivity_samples=300,
                   measures=("ei_parts", "sensitivity"))
    conv = res["conv1"]
    assert conv.kind == "conv2d" and conv.n_inputs == 25 and conv.n_outputs == 2 * 25
    assert conv.n_edges == 2 * (4 * 4 + 12 * 6 + 9 * 9)  # 3x3 'same' kernels clipped at the border
    assert res["fc_out"].n_inputs == 2 * 2 * 2 and res["fc_out"].activation == "identity"
    single = model_ei(net, n_samples=3000, n_sensitivity_samples=300, measures=("ei_parts",))
    assert single["conv1"].n_inputs == 9 and single["conv1"].n_outputs == 2  # one receptive field


# ----------------------------------------------------------------------------- pinned values
#: layer_ei of ``_random_layer(3, 2)`` as computed by the code before ``_layer_ei`` was split
#: into one function per job (issue 18, commit 38ad516): ``(ei, ei_parts, sensitivity,
#: n_samples, n_sensitivity_samples)``, and the sample counts of the auto traces. Seeded
#: noise (torch's CPU generator) and float64 activations: equal to ~1e-12 anywhere.
PINNED_EI = {
    "uniform": (dict(activation="sigmoid", n_samples=20000, n_sensitivity_samples=2000),
                (3.9145400739011293, 2.1584614791335426, 7.295903557957763, 20000, 2000), ([20000], [2000])),
    "grid_fit": (dict(activation="tanh", n_bins=(4, 4), n_samples=3200, n_sensitivity_samples=400, out_range="fit",
                      sampling="grid", seed=3),
                 (2.4536403225844996, 1.6047231045191381, 4.568668118142542, 3200, 400), ([3200], [400])),
    "auto": (dict(activation="sigmoid", n_samples="auto", n_sensitivity_samples="auto", auto_start=2000,
                  max_samples=32000, threshold=0.02),
             (3.9480484448959423, 2.173975205854486, 7.3067371462732815, 8000, 4000), ([2000, 4000, 8000], [2000, 4000])),
}


@pytest.mark.parametrize("case", sorted(PINNED_EI))
def test_layer_ei_values_are_those_of_the_code_before_the_split(case):
    kw, (ei, parts, sens, n, n_sens), (trace, strace) = PINNED_EI[case]
    r = layer_ei(_random_layer(3, 2), **kw)
    assert (r.ei, r.ei_parts, r.sensitivity) == pytest.approx((ei, parts, sens), abs=1e-9)
    assert (r.n_samples, r.n_sensitivity_samples) == (n, n_sens)
    assert [t[0] for t in r.trace] == trace and [t[0] for t in r.sensitivity_trace] == strace
    if case == "uniform":
        np.testing.assert_allclose(r.edge_ei, [[0.001272, 0.776433], [0.315474, 0.163848], [0.821176, 0.080259]],
                                   atol=1e-6)


def test_model_ei_values_are_those_of_the_code_before_the_split():
    from nifkit.models import mlp

    res = model_ei(mlp([4, 5, 3], activation="sigmoid", seed=0), n_samples=3000, n_sensitivity_samples=300)
    got = {name: (lay.ei, lay.ei_parts, lay.sensitivity) for name, lay in res.layers.items()}
    assert got == {"fc1": pytest.approx((3.0578872621497855, 2.0820031217110397, 6.14909099486868), abs=1e-9),
                   "fc_out": pytest.approx((2.234557898667253, 0.9170833338493072, 6.258791496707606), abs=1e-9)}
