"""Channels as units and the record-based lenses (relay, ablation, conductance) and the
knockout truth on convolutional and residual networks (issue 22): an MLP, a small CNN, the
residual CNN, a torchvision ResNet-18 and EfficientNet-Lite0. Values are checked against
plain references written here (activations reduced by hand, forward hooks attached by
hand)."""
import time

import numpy as np
import pytest
import torch

import nifkit.ablation as A
import nifkit.compare as C
import nifkit.conductance as CD
import nifkit.relay as R
from nifkit.info import binarize
from nifkit.intervene import Knockouts, knock_out
from nifkit.models import Neuron, cpu_threads, hidden_layout, hidden_neurons, mlp, residual_cnn, small_cnn
from nifkit.models.units import check_units, flow_cut, unit_counts

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The hand-written references run on one CPU thread too (the package's policy; two
    threads on a shared 2-core machine are slower)."""
    with cpu_threads(1):
        yield


def _labelled(model, X, flip_every=4, n_classes=3):
    """Labels = the model's own predictions with every ``flip_every``-th one moved: the
    layers then hold information about the labels, and some predictions are wrong."""
    with torch.no_grad():
        y = model.eval()(X).argmax(1) % n_classes
    y[::flip_every] = (y[::flip_every] + 1) % n_classes
    return y


def _hand_hook_accuracy(model, X, y, layer, channels, value):
    """Accuracy with ``channels`` of ``layer``'s output fixed to ``value`` (a number or one
    per channel): a forward hook written by hand, one plain forward."""
    mod = dict(model.named_modules())[layer]

    def hook(m, args, out):
        out = out.clone()
        v = value[channels].reshape(len(channels), *[1] * (out.ndim - 2)) if torch.is_tensor(value) else value
        out[:, channels] = v
        return out

    handle = mod.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return float((model.eval()(X).argmax(1) == y).double().mean())
    finally:
        handle.remove()


def _channel_means(model, X, layer):
    """Each unit's mean over the samples, a channel's over the samples and its positions."""
    a = _hand_output(model, X, layer)
    return a.mean(0) if a.ndim == 2 else a.transpose(0, 1).reshape(a.shape[1], -1).mean(1)


def _hand_output(model, X, layer):
    """``layer``'s output, captured by a hand-written hook."""
    got = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, a, o: got.append(o.detach()))
    try:
        with torch.no_grad():
            model.eval()(X)
    finally:
        handle.remove()
    return got[0]


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    X_img = torch.rand(24, 3, 16, 16)
    X_vec = torch.randn(40, 12)
    out = {}
    m = mlp([12, 6, 5, 3], seed=0)
    out["mlp"] = (m, X_vec, _labelled(m, X_vec), None)
    m = small_cnn(3, (16, 16), (4, 6), n_classes=3, seed=0)
    out["small_cnn"] = (m, X_img, _labelled(m, X_img), None)
    m = residual_cnn(3, channels=4, n_blocks=2, n_classes=3, seed=0)
    out["residual_cnn"] = (m, X_img, _labelled(m, X_img), None)
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10).eval()
    X32 = torch.rand(12, 3, 32, 32)
    out["resnet18"] = (m, X32, _labelled(m, X32, 3), ["layer4.1"])
    return out


# -- units of any network ---------------------------------------------------------------
def test_units_of_every_network(nets):
    assert [u for u, _, _ in hidden_layout(nets["mlp"][0])] == ["act1", "act2"]  # chains as before
    assert unit_counts(nets["small_cnn"][0]) == {"act1": 4, "act2": 6}
    res = nets["residual_cnn"][0]
    assert unit_counts(res) == {"body.block1": 4, "body.block2": 4}  # skip connections: the blocks
    assert hidden_neurons(res)[4] == Neuron("body.block2", 0) and str(hidden_neurons(res)[4]) == "body.block2:0"
    rn = nets["resnet18"][0]
    counts = unit_counts(rn)
    assert list(counts) == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
                            "layer4.1"] and counts["layer4.1"] == 512 and counts["layer2.0"] == 128
    named = unit_counts(rn, ["avgpool", "layer4.1", "bn1", "maxpool", "layer1.0.bn2"])  # any order in, flow order out
    assert named == {"bn1": 64, "maxpool": 64, "layer1.0.bn2": 64, "layer4.1": 512, "avgpool": 512}
    # the widths agree with one forward pass written by hand
    for layer, c in named.items():
        assert _hand_output(rn, nets["resnet18"][1][:1], layer).shape[1] == c
    assert check_units(rn, ["layer4.1:37", "layer1.0:2", Neuron("layer4.1", 0)]) == {"layer1.0": [2],
                                                                                     "layer4.1": [37, 0]}
    assert flow_cut(rn, "layer4.1") and not flow_cut(rn, "layer4.1.bn2")  # a skip goes around bn2


@pytest.mark.parametrize("name, layers, match", [
    ("resnet18", ["layr4.1"], "Did you mean 'layer4.1'"),
    ("resnet18", [""], "the model itself"),
    ("resnet18", ["fc"], "holds the output layer"),
    ("resnet18", ["layer4"], None),  # a stage is a block of blocks: fine
    ("resnet18", ["layer4.1.relu"], "called 2 times"),
    ("small_cnn", ["flatten"], "reshapes the unit axis"),
    ("small_cnn", ["act1", "act1"], "twice"),
])
def test_layers_that_are_not_layers_of_units_are_refused(nets, name, layers, match):
    model = nets[name][0]
    if match is None:
        assert hidden_neurons(model, layers)[-1] == Neuron("layer4", 511)
        return
    with pytest.raises(ValueError, match=match):
        hidden_neurons(model, layers)


def test_a_channel_out_of_range_is_refused(nets):
    rn, X = nets["resnet18"][:2]
    with pytest.raises(ValueError, match="'layer4.1:512' is out of range: layer 'layer4.1' has 512"):
        check_units(rn, ["layer4.1:512"])
    with pytest.raises(ValueError, match="out of range"):
        with knock_out(rn, ["layer4.1:600"]):
            rn(X)
    res, Xr, yr, _ = nets["residual_cnn"]
    with pytest.raises(ValueError, match="0..3"):
        with knock_out(res, {"body.block1": [4]}):
            res(Xr)
    ko = Knockouts(res, (Xr, yr))
    with pytest.raises(ValueError, match=r"must be \(steps, 4\)"):
        ko.evaluate("body.block1", torch.eye(5, dtype=torch.bool))


# -- channel knockouts against a hand-written hook ----------------------------------------
@pytest.mark.parametrize("name, layer", [("small_cnn", "act2"), ("residual_cnn", "body.block1"),
                                         ("residual_cnn", "body.block2.act1"), ("resnet18", "layer4.1"),
                                         ("resnet18", "layer3.0.bn2")])
def test_channel_knockouts_equal_a_hand_written_hook(nets, name, layer):
    model, X, y, _ = nets[name]
    ko = Knockouts(model, (X, y))
    C_ = ko.n_units(layer)
    pick = [0, 1, C_ - 1]
    mean_map = _channel_means(model, X, layer)  # a channel's mean over samples and positions
    r_mean = ko.evaluate(layer, torch.eye(C_, dtype=torch.bool)[pick], "mean")
    r_zero = ko.evaluate(layer, torch.eye(C_, dtype=torch.bool)[pick], "zero")
    r_val = ko.evaluate(layer, torch.eye(C_, dtype=torch.bool)[pick], [np.full(C_, 0.5)])  # one value per channel
    for i, c in enumerate(pick):
        assert r_mean.accuracy[i] == pytest.approx(_hand_hook_accuracy(model, X, y, layer, [c], mean_map))
        assert r_zero.accuracy[i] == pytest.approx(_hand_hook_accuracy(model, X, y, layer, [c], 0.0))
        assert r_val.accuracy[i] == pytest.approx(_hand_hook_accuracy(model, X, y, layer, [c], 0.5))
    both = ko.evaluate(layer, torch.tensor([[True, True] + [False] * (C_ - 2)]), "zero").accuracy[0]
    assert both == pytest.approx(_hand_hook_accuracy(model, X, y, layer, [0, 1], 0.0))
    with knock_out(model, [f"{layer}:1", f"{layer}:0"], value=0.0):
        with torch.no_grad():
            acc = float((model(X).argmax(1) == y).double().mean())
    assert acc == pytest.approx(both)


def test_hooked_knockouts_are_batched(nets):
    """Several knockouts per forward pass: far fewer model calls than knockouts."""
    model, X, y, _ = nets["residual_cnn"]
    ko = Knockouts(model, (X, y))
    ko.activations("body.block1.act1"), ko.activations("body.block1")  # recorded once, before counting
    calls = []
    handle = model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        ko.evaluate("body.block1.act1", torch.eye(4, dtype=torch.bool).repeat(8, 1), "zero")  # 32 knockouts
    finally:
        handle.remove()
    assert ko.method == "hooks" and calls == [1, len(X) * 32]  # the size probe and one batch of 24 x 32 rows
    # not a cut (the skip goes around act1): the input is repeated
    calls.clear()
    handle = model.body.block2.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        ko.evaluate("body.block1", torch.eye(4, dtype=torch.bool), "zero")
    finally:
        handle.remove()
    assert calls[-1] == len(X) * 4  # a cut: the batch is expanded at the block, after the layers before it


# -- the lenses with channel_reduce, against hand-reduced activations -----------------------
def _reduced(model, X, layer, how):
    a = _hand_output(model, X, layer)
    if a.ndim == 2:
        return a
    if how == "max":
        return a.amax((2, 3))
    if how == "mean":
        return a.mean((2, 3))
    return a.permute(0, 2, 3, 1).reshape(-1, a.shape[1])  # positions: sample-major rows


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "residual_cnn"])
@pytest.mark.parametrize("how", ["max", "positions"])
def test_relay_reads_the_reduced_channels(nets, name, how):
    model, X, y, layers = nets[name]
    s = R.neuron_scores(model, (X, y), layers=layers, channel_reduce=how)
    assert s.neurons == hidden_neurons(model, layers) and s.settings["channel_reduce"] == how
    layer = s.layers[-1]
    a = _reduced(model, X, layer, how)
    P = len(a) // len(X)
    with torch.no_grad():
        pred = model(X).argmax(1)
    ref = R.module_search(binarize(a.numpy(), "kmeans2"), y.repeat_interleave(P).numpy(),
                          pred.repeat_interleave(P).numpy())
    np.testing.assert_array_equal(s.raw[layer].order, ref.order)
    np.testing.assert_allclose(s.raw[layer].curve, ref.curve)
    one = R.search_modules(model, (X, y), layer=layer, channel_reduce=how)
    np.testing.assert_array_equal(one.order, ref.order)


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "residual_cnn", "resnet18"])
def test_ablation_reads_the_reduced_channels_and_knocks_out_whole_maps(nets, name):
    model, X, y, layers = nets[name]
    s = A.neuron_scores(model, (X, y), layers=layers, channel_reduce="max", n_bins=4)
    assert s.neurons == hidden_neurons(model, layers)
    layer = s.layers[-1]
    ref = A.neuron_measures({layer: _reduced(model, X, layer, "max")}, y, n_bins=4)
    off = len(s.neurons) - len(ref[layer].mi)
    np.testing.assert_allclose(s["mi"][off:], ref[layer].mi, rtol=1e-9, atol=1e-12)
    base = float((model(X).argmax(1) == y).double().mean())
    for c in (0, len(ref[layer].mi) - 1):
        drop = base - _hand_hook_accuracy(model, X, y, layer, [c], 0.0)
        assert s["knockout"][off + c] == pytest.approx(drop)


def test_ablation_with_every_position_a_sample(nets):
    model, X, y, _ = nets["residual_cnn"]
    s = A.neuron_scores(model, (X, y), layers=["body.block1", "body.block2"], channel_reduce="positions", n_bins=4)
    a = _reduced(model, X, "body.block2", "positions")
    P = len(a) // len(X)
    assert P == 16 * 16
    ref = A.neuron_measures({"b": a}, y.repeat_interleave(P), n_bins=4)
    np.testing.assert_allclose(s["mi"][4:], ref["b"].mi, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(s["entropy"][4:], ref["b"].entropy, rtol=1e-9, atol=1e-12)


def test_ablation_study_measures_channels_itself(nets):
    model, X, y, _ = nets["residual_cnn"]
    st = A.ablation_study(model, (X, y), layers=["body.block2"], channel_reduce="max", n_random=1)
    curve = st.get("body.block2", "mi", "descending")
    assert curve.accuracy[0] == pytest.approx(st.base_accuracy)
    assert curve.accuracy[-1] == pytest.approx(_hand_hook_accuracy(model, X, y, "body.block2", list(range(4)), 0.0))
    assert st.measures.settings["channel_reduce"] == "max"
    with pytest.raises(ValueError, match="channel_reduce='max'"):
        A.ablation_study(model, (X, y), st.measures, channel_reduce="mean")


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "residual_cnn", "resnet18"])
def test_conductance_channels(nets, name):
    model, X, y, layers = nets[name]
    s = CD.neuron_scores(model, (X, y), layers=layers, steps=8)
    assert s.neurons == hidden_neurons(model, layers)
    layer = s.layers[-1]
    mx = CD.neuron_scores(model, (X, y), layers=layers, steps=8, channel_reduce="max")
    m = mx.raw.maps[layer].double()  # the full maps (the "mean" run keeps only the channel sums)
    n = m.shape[1]
    summed = m.reshape(len(m), n, -1).sum(2)  # a channel's conductance: the sum over its positions
    np.testing.assert_allclose(s.score[-n:], summed.abs().mean(0).numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(s.raw.maps[layer].double().reshape(len(m), n), summed, rtol=1e-5, atol=1e-9)
    if m.ndim > 2:
        np.testing.assert_allclose(mx.score[-n:], m.abs().amax((2, 3)).mean(0).numpy(), rtol=1e-5, atol=1e-9)
        pos = CD.neuron_scores(model, (X, y), layers=layers, steps=8, channel_reduce="positions")
        np.testing.assert_allclose(pos.score[-n:], m.abs().mean((0, 2, 3)).numpy(), rtol=1e-5, atol=1e-9)


def test_conductance_of_a_block_is_complete():
    """The channels of a block (a cut of the data flow) add up to F(x) - F(x')."""
    torch.manual_seed(1)
    model = residual_cnn(3, channels=4, n_blocks=2, n_classes=3, seed=1)
    X = torch.rand(4, 3, 8, 8)
    s = CD.neuron_scores(model, (X, torch.tensor([0, 1, 2, 0])), layers=["body.block1"], steps=64)
    total = s.raw.maps["body.block1"].double().sum(1).numpy()  # channel sums (samples, channels)
    delta = s.raw.f_input - s.raw.f_baseline
    np.testing.assert_allclose(total, delta, atol=2e-2 * np.abs(delta).max())


# -- knockout truth and compare ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "small_cnn", "residual_cnn", "resnet18"])
def test_knockout_truth_of_channels(nets, name):
    model, X, y, layers = nets[name]
    tr = C.knockout_truth(model, (X, y), layers=layers, k=2, max_sets=20)
    assert tr.neurons == hidden_neurons(model, layers) and tr.drop.shape == (len(tr.neurons),)
    layer = tr.layers[-1]
    mean_map = _channel_means(model, X, layer)
    n = unit_counts(model, layers)[layer]
    for c in (0, n - 1):
        hand = tr.base_accuracy - _hand_hook_accuracy(model, X, y, layer, [c], mean_map)
        assert tr.drop[len(tr.neurons) - n + c] == pytest.approx(hand)


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "residual_cnn", "resnet18"])
def test_compare_on_every_network(nets, name):
    model, X, y, layers = nets[name]
    cmp = C.compare(model, (X, y), ["conductance", "relay", "ablation"], layers=layers, channel_reduce="max",
                    options={"conductance": {"steps": 4}, "ablation": {"n_bins": 4}})
    assert cmp.neurons == hidden_neurons(model, layers) and list(cmp.lenses) == ["conductance", "relay", "ablation"]
    assert cmp.scores().shape == (3, len(cmp.neurons)) and not cmp.skipped
    assert all(ls.settings["channel_reduce"] == "max" for ls in cmp.lenses.values())
    ref = A.neuron_scores(model, (X, y), layers=layers, channel_reduce="max", n_bins=4)
    np.testing.assert_allclose(cmp.score("ablation"), ref.score)


def test_compare_reports_a_lens_that_cannot_score_and_runs_the_others(nets):
    model, X, y, _ = nets["residual_cnn"]
    with pytest.warns(RuntimeWarning, match="the built-in lens 'relay' cannot score this model"):
        cmp = C.compare(model, (X, y), ["relay", "ablation"], options={"relay": {"binning": "nonsense"},
                                                                      "ablation": {"n_bins": 4}})
    assert list(cmp.lenses) == ["ablation"] and "binning" in cmp.skipped["relay"]
    assert any("relay" in n and "skipped" in n for n in cmp.notes)
    with pytest.raises(ValueError, match="the built-in lens 'relay' cannot score this model"):
        C.compare(model, (X, y), ["relay", "ablation"], options={"relay": {"binning": "nonsense"}}, errors="raise")
    with pytest.raises(ValueError, match="no lens could score this model"), pytest.warns(RuntimeWarning):
        C.compare(model, (X, y), ["relay"], options={"relay": {"binning": "nonsense"}})


def test_inputs_that_do_not_fit_are_refused_at_the_door():
    cnn = small_cnn(image_size=(8, 8), seed=0)
    X, y = torch.rand(20, 1, 28, 28), torch.arange(20) % 10
    with pytest.raises(ValueError, match=r"data does not fit the model: one input of shape \(1, 28, 28\)"):
        C.compare(cnn, (X, y), ["relay"])
    with pytest.raises(ValueError, match="does not fit"):
        C.knockout_truth(cnn, (X, y))


@pytest.mark.parametrize("fn", [R.neuron_scores, A.neuron_scores, CD.neuron_scores, C.compare])
def test_a_reduction_that_does_not_exist(nets, fn):
    model, X, y, _ = nets["small_cnn"]
    with pytest.raises(ValueError, match="Did you mean 'mean'"):
        fn(model, (X, y), channel_reduce="meen")


@pytest.mark.parametrize("fn", [R.neuron_scores, A.neuron_scores, CD.neuron_scores, C.knockout_truth])
def test_a_layer_the_lens_cannot_use(nets, fn):
    model, X, y, _ = nets["small_cnn"]
    with pytest.raises(ValueError, match="reshapes the unit axis"):
        fn(model, (X, y), layers=["flatten"])
    with pytest.raises(ValueError, match="holds the output layer"):
        fn(model, (X, y), layers=["fc_out"])


# -- a pretrained network on its offline photos -----------------------------------------------
def test_efficientnet_lite0_conductance_and_channel_knockouts():
    zoo = pytest.importorskip("nifkit.conductance.zoo")
    t0 = time.perf_counter()
    try:
        model = zoo.load_efficientnet_lite0()
        photos = zoo.load_imagenet_photos(3)
    except (FileNotFoundError, ImportError) as exc:  # the offline files are part of the environment
        pytest.fail(f"EfficientNet-Lite0 or its photos are missing: {exc}")
    X, y = photos.X, photos.y
    assert list(unit_counts(model))[-1] == "_blocks.15" and unit_counts(model)["_blocks.15"] == 320
    s = CD.neuron_scores(model, (X, y), layers=["_blocks.15"], steps=4)
    assert s.neurons[0] == Neuron("_blocks.15", 0) and len(s.neurons) == 320 and np.isfinite(s.score).all()
    ko = Knockouts(model, (X, y))
    masks = torch.zeros(2, 320, dtype=torch.bool)
    masks[0, :160] = True  # half the channels of the last block
    masks[1, 7] = True
    r = ko.evaluate("_blocks.15", masks, "zero")
    assert r.accuracy[0] == pytest.approx(_hand_hook_accuracy(model, X, y, "_blocks.15", list(range(160)), 0.0))
    assert r.accuracy[1] == pytest.approx(_hand_hook_accuracy(model, X, y, "_blocks.15", [7], 0.0))
    assert time.perf_counter() - t0 < 60


def test_a_channels_mean_is_the_same_in_memory_and_streamed(nets):
    """The in-memory engine and the streamed one (a DataLoader) fix a knocked-out channel to
    the same value: its mean over the samples and the positions."""
    from nifkit.compare.streamed import StreamedKnockouts

    model, X, y, _ = nets["residual_cnn"]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=7)
    streamed = StreamedKnockouts(model, loader, ["body.block1", "body.block2.act1"])
    ko = Knockouts(model, (X, y))
    for layer in ("body.block1", "body.block2.act1"):
        want = _channel_means(model, X, layer)
        torch.testing.assert_close(ko.unit_value(layer, "mean").flatten(), want)
        torch.testing.assert_close(streamed.unit_value(layer, "mean").flatten().float(), want)
    masks = torch.eye(4, dtype=torch.bool)
    np.testing.assert_allclose(streamed.evaluate("body.block1", masks, "mean").accuracy,
                               ko.evaluate("body.block1", masks, "mean").accuracy)


def test_ablation_knockouts_on_their_own_data():
    """knockout_data: the knockout column comes from those samples (a by-hand
    single_neuron_importance on them), the information columns from ``data``."""
    from nifkit.ablation import neuron_scores, single_neuron_importance
    from nifkit.models import residual_cnn

    torch.manual_seed(0)
    m = residual_cnn(channels=4, n_blocks=2, seed=0)
    X, y = torch.rand(300, 1, 8, 8), torch.randint(0, 3, (300,))
    Xt, yt = torch.rand(90, 1, 8, 8), torch.randint(0, 3, (90,))
    s = neuron_scores(m, (X, y), knockout_data=(Xt, yt))
    imp = single_neuron_importance(m, (Xt, yt), layers=["body.block1", "body.block2"])
    np.testing.assert_array_equal(s["knockout"], np.concatenate([imp[n].accuracy_drop for n in imp]))
    same = neuron_scores(m, (X, y))
    np.testing.assert_array_equal(s["mi"], same["mi"])
    assert s.settings["knockout_samples"] == 90 and same.settings["knockout_samples"] == 300
