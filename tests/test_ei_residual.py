"""EI on networks with skip connections (issue 22): every weight layer of a residual CNN
and a ResNet-18, a conv layer against the same layer unfolded as a Linear, EI of a block
as a whole (a reconstruction) against the identity, the lens on CNNs and ResNets, and
clear errors."""
import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import nifkit.ei as E
from nifkit.ei import block_ei, layer_ei, model_ei
from nifkit.models import hidden_neurons, residual_cnn, small_cnn, walk

FAST = dict(n_samples=2000, n_sensitivity_samples=200)


@pytest.fixture(scope="module")
def rnet():
    return residual_cnn(channels=4, n_blocks=2, seed=0)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():  # BatchNorm statistics that are not the identity, so folding shows
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
    return m.eval()


# ----------------------------------------------------------------------------- model_ei
def test_model_ei_measures_every_weight_layer_of_a_residual_cnn(rnet):
    res = model_ei(rnet, input_shape=(1, 8, 8), conv_inputs="field", measures=("ei_parts", "sensitivity"), **FAST)
    assert res.names == walk(rnet).names and len(res) == 6 and not res.skipped
    assert res.input_shapes["body.block2.conv1"] == (4, 8, 8) and res.input_shapes["fc_out"] == (4,)
    b = rnet.body.block1
    ref1 = layer_ei(b.conv1, b.act1, measures=("ei_parts", "sensitivity"), **FAST)
    ref2 = layer_ei(b.conv2, None, measures=("ei_parts", "sensitivity"), **FAST)  # before the skip addition
    assert res["body.block1.conv1"].ei_parts == ref1.ei_parts and res["body.block1.conv1"].n_inputs == 4 * 9
    assert res["body.block1.conv2"].ei_parts == ref2.ei_parts
    assert res["body.block1.conv2"].sensitivity == ref2.sensitivity
    assert any("merge" in n for n in res["body.block1.conv2"].notes)


def test_model_ei_measures_every_weight_layer_of_resnet18_with_batchnorm_folded(resnet):
    kw = dict(n_bins=2, n_samples=300, measures=("ei_parts",))
    res = model_ei(resnet, input_shape=(3, 32, 32), conv_inputs="field", **kw)
    names = [n for n, m in resnet.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(res.names) == sorted(names) and len(res) == 21 and not res.skipped
    assert res.input_shapes["layer2.0.conv1"] == (64, 8, 8) and res.input_shapes["fc"] == (512,)
    assert res["layer1.0.conv1"].activation == "ReLU" and res["layer1.0.conv2"].activation == "identity"
    # the reference fold, by hand: W * g / sqrt(v + eps), beta - mean * g / sqrt(v + eps)
    conv, bn = resnet.layer1[0].conv1, resnet.layer1[0].bn1
    s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    w = (conv.weight.detach() * s[:, None, None, None]).reshape(64, -1).double()
    ref = layer_ei((w, (bn.bias.detach() - bn.running_mean * s).double()), "relu", **kw)
    assert res["layer1.0.conv1"].ei_parts == pytest.approx(ref.ei_parts, abs=1e-9)
    assert np.allclose(res["layer1.0.conv1"].edge_ei, ref.edge_ei, atol=1e-9)
    assert resnet.layer1[0].conv1.bias is None  # the model is not touched (the fold is on a copy)


def test_model_ei_on_a_chain_is_unchanged():
    """Values of the code before residual networks (commit 19b2348), same seeds and bins."""
    net = small_cnn(1, (8, 8), channels=(3, 4), n_classes=5, activation="sigmoid", seed=0)
    kw = dict(measures=("ei_parts", "sensitivity"), **FAST)
    field = model_ei(net, **kw)
    maps = model_ei(net, input_shape=(1, 8, 8), **kw)
    got = {n: (lay.ei_parts, lay.sensitivity) for n, lay in field.layers.items()}
    assert got == {"conv1": pytest.approx((1.3162982039410824, 4.418856851880819), abs=1e-9),
                   "conv2": pytest.approx((2.271420755282186, 15.885769577749219), abs=1e-9),
                   "fc_out": pytest.approx((0.9626537052012765, 10.340387857751562), abs=1e-9)}
    assert (maps["conv1"].ei_parts, maps["conv2"].sensitivity) == pytest.approx(
        (76.92574674852514, 185.12774942874339), abs=1e-9)
    torch.manual_seed(1)
    seq = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 3), nn.Sigmoid())
    r = model_ei(seq, **FAST)
    assert (r["0"].ei, r["0"].ei_parts, r["3"].sensitivity) == pytest.approx(
        (3.464726897089154, 2.5128449905713133, 5.108903617248619), abs=1e-9)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv_layer_ei_equals_the_same_layer_unfolded_as_a_linear(stride, padding):
    """Exact: the receptive field's dense matrix is the kernel reshaped (C*kh*kw -> out),
    the noise depends only on (seed, stream, sample), so both see the same samples and
    the same float64 pre-activations."""
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, (3, 2), stride=stride, padding=padding)
    lin = nn.Linear(12, 3)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(3, -1))
        lin.bias.copy_(conv.bias)
    kw = dict(n_bins=(8, 6), n_samples=6000, n_sensitivity_samples=600, seed=5, out_range="fit")
    a, b = layer_ei(conv, "tanh", **kw), layer_ei(lin, "tanh", **kw)
    assert a.kind == "conv2d" and (a.n_inputs, a.n_outputs) == (b.n_inputs, b.n_outputs) == (12, 3)
    np.testing.assert_array_equal(a.edge_ei, b.edge_ei)
    np.testing.assert_array_equal(a.edge_sensitivity, b.edge_sensitivity)
    assert (a.ei, a.ei_parts, a.sensitivity) == (b.ei, b.ei_parts, b.sensitivity)
    seq = model_ei(nn.Sequential(conv, nn.Tanh()), **kw)
    assert seq["0"].ei_parts == b.ei_parts


def test_layers_ei_cannot_measure_are_listed_and_the_others_run():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.norm, self.fc2, self.fc3 = nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.cumsum(self.fc2(torch.relu(self.norm(self.fc1(x)))), 1)  # cumsum couples units
            return self.fc3(torch.sigmoid(h))

    res = model_ei(Odd(), measures=("ei_parts",), **FAST)
    assert res.names == ["fc3"] and set(res.skipped) == {"fc1", "fc2"}
    assert "LayerNorm" in res.skipped["fc1"] and "cumsum" in res.skipped["fc2"]
    assert any(n.startswith("fc2 not measured") for n in res.notes)
    soft = model_ei(nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2), nn.Softmax(dim=1)),
                    measures=("ei_parts",), **FAST)
    assert soft.names == ["0", "2"] and any("softmax" in n for n in soft["2"].notes)
    assert soft["2"].activation == "identity" and not any("softmax" in n for n in soft["0"].notes)
    with pytest.raises(ValueError, match="EI cannot score the units of 'fc2'"):
        E.neuron_scores(Odd(), torch.rand(20, 3), layers=["fc2"], **FAST)


def test_bad_layer_names_and_settings_are_clear_errors(rnet):
    with pytest.raises(KeyError, match="'stem_act' is a ReLU, not a weight layer"):
        model_ei(rnet, layers=["stem_act"])
    with pytest.raises(KeyError, match="no layer 'conv9'"):
        model_ei(rnet, layers=["conv9"])
    with pytest.raises(ValueError, match="conv_inputs='map' .* input_shape"):
        model_ei(rnet, conv_inputs="map")
    with pytest.raises(ValueError, match="conv_inputs must be"):
        model_ei(rnet, conv_inputs="maps")
    X = torch.rand(10, 1, 8, 8)
    with pytest.raises(ValueError, match="Did you mean 'body.block1'"):
        block_ei(rnet, X, layers=["body.block01"])
    with pytest.raises(ValueError, match="called 2 times"):
        block_ei(_Twice(), torch.rand(4, 3), layers=["fc"])


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


# ----------------------------------------------------------------------------- blocks
def _identity_reference(lo, hi, n_bins, n, seed=0):
    """EI of the identity on the block's input: per element, uniform noise over (lo, hi),
    binned into n_bins over the same range, plug-in entropy, summed (plain numpy)."""
    lo, hi = lo.reshape(-1).astype(np.float64), hi.reshape(-1).astype(np.float64)
    x = np.random.default_rng(seed).uniform(lo, hi, size=(n, lo.size))
    width = np.where(hi > lo, hi - lo, 1.0)
    codes = np.clip(np.floor((x - lo) / width * n_bins), 0, n_bins - 1).astype(int)
    codes[:, hi <= lo] = 0
    total = 0.0
    for j in range(lo.size):  # a plain reference: one element at a time
        p = np.bincount(codes[:, j], minlength=n_bins) / n
        total -= float((p[p > 0] * np.log2(p[p > 0])).sum())
    return total


def test_block_ei_of_an_identity_block_is_the_identity_ei(rnet):
    net = residual_cnn(channels=4, n_blocks=2, seed=0)
    with torch.no_grad():  # block2 = act(x + 0) = x on its non-negative input
        for p in net.body.block2.parameters():
            p.zero_()
    X = torch.rand(100, 1, 8, 8)
    n, bins = 20000, 4
    res = block_ei(net, X, n_bins=bins, n_samples=n)
    assert res.blocks == ["body.block1", "body.block2"] and res.output_shapes["body.block2"] == (4, 8, 8)
    lo, hi = res.input_range["body.block2"]
    ref = _identity_reference(lo, hi, bins, n)
    # two independent noise samples of the same distribution: each element's plug-in entropy
    # differs by O(1e-4) bits (bias (B-1)/(2 n ln 2) ~ 1e-4, spread smaller); 256 elements
    assert res["body.block2"] == pytest.approx(ref, abs=0.02)
    assert ref <= 256 * math.log2(bins) and res["body.block2"] > 256 * math.log2(bins) - 0.05
    np.testing.assert_allclose(res.per_channel["body.block2"].sum(), res["body.block2"], rtol=1e-12)
    assert res["body.block1"] < res["body.block2"] - 1  # a block that is not the identity loses bits
    assert "reconstruction" in res.notes[0]
    again = block_ei(net, X, layers="body.block2", n_bins=bins, n_samples=n, memory_budget=2**22)  # small batches
    assert again["body.block2"] == res["body.block2"]


def test_block_ei_of_a_resnet_block_made_identity(resnet):
    import copy

    m = copy.deepcopy(resnet)
    blk = m.layer1[1]
    with torch.no_grad():  # bn2(conv2(.)) = 0: relu(x + 0) = x on the non-negative block input
        blk.conv2.weight.zero_()
        blk.bn2.bias.zero_()
        blk.bn2.running_mean.zero_()
    X = torch.rand(8, 3, 32, 32)
    res = block_ei(m, X, layers=["layer1.1", "layer2.0"], n_bins=2, n_samples=1000)
    lo, hi = res.input_range["layer1.1"]
    ref = _identity_reference(lo, hi, 2, 1000)
    # 4096 elements, each ~1 - 7e-4 bits (plug-in bias 1/(2 n ln 2)); two independent samples
    # differ by ~0.07 bits in the sum (sd), and any wrong element would cost ~1 bit
    assert res["layer1.1"] == pytest.approx(ref, abs=0.5) and ref < 4096
    assert res.per_channel["layer2.0"].shape == (128,) and res.table()[1]["n_outputs"] == 128 * 4 * 4


# ----------------------------------------------------------------------------- the lens
def _reference_unit_scores(res, units_in, units_out, width):
    """Channel c: debiased edge EI of conv columns c (incoming) + rows of channel c (outgoing)."""
    def deb(r):
        mask = np.ones_like(r.edge_ei) if r.edge_mask is None else r.edge_mask.astype(float)
        return r.edge_ei - r.bias_parts / r.n_edges * mask
    out = np.zeros(width)
    for c in range(width):  # plain loops
        for x in units_in:
            out[c] += deb(res[x])[:, c].sum()
        for x in units_out:
            per = res[x].n_inputs // width
            out[c] += deb(res[x])[c * per:(c + 1) * per].sum()
    return out


@pytest.mark.parametrize("which", ["small_cnn", "residual_cnn"])
def test_neuron_scores_on_cnns_are_channels_in_hidden_neurons_order(which, rnet):
    net = small_cnn(1, (8, 8), channels=(3, 4), n_classes=5, seed=0) if which == "small_cnn" else rnet
    X = torch.rand(60, 1, 8, 8)
    s = E.neuron_scores(net, X, **FAST)
    assert s.neurons == hidden_neurons(net) and np.isfinite(s.score).all()
    links = s.settings["links"]
    first = s.neurons[0].layer
    width = sum(1 for a in s.neurons if a.layer == first)
    ref = _reference_unit_scores(s.raw, links[first]["in"], links[first]["out"], width)
    np.testing.assert_allclose(s.score[:width], ref, rtol=1e-12, atol=1e-12)
    same = E.neuron_scores(net, X, channel_reduce="max", **FAST)
    np.testing.assert_array_equal(same.score, s.score)  # documented: changes nothing for EI
    assert s.per_class is not None and s.per_class.shape == (net(X[:1]).shape[1], len(s.neurons))


def test_neuron_scores_on_resnet18_layers(resnet):
    layers = ["layer1.0.conv1"]
    s = E.neuron_scores(resnet, torch.rand(8, 3, 32, 32), layers=layers, n_bins=4, n_samples=500,
                        n_sensitivity_samples=100)
    assert s.neurons == hidden_neurons(resnet, layers) and len(s.neurons) == 64
    assert np.isfinite(s.score).all() and s.settings["links"]["layer1.0.conv1"] == {
        "in": ["layer1.0.conv1"], "out": ["layer1.0.conv2"]}


def test_a_layer_wider_than_the_budget_is_measured_in_output_groups_with_the_same_values():
    """Each output's count tables depend only on its own row and the shared noise, so
    groups of outputs give the per-edge values of one pass (to float rounding of the MI
    formula on tables of another shape, ~1e-14 bits)."""
    torch.manual_seed(3)
    lin = nn.Linear(256, 160)
    kw = dict(n_samples=2000, n_sensitivity_samples=200, measures=("ei_parts", "sensitivity"), out_range="fit",
              in_range=(-1, 1))
    whole = layer_ei(lin, "relu", **kw)
    grouped = layer_ei(lin, "relu", memory_budget=8 * 2**20, **kw)  # 256 x 160 edges x 8 x 8 bins: > 8 MiB
    np.testing.assert_allclose(grouped.edge_ei, whole.edge_ei, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(grouped.edge_sensitivity, whole.edge_sensitivity)
    assert grouped.n_samples == whole.n_samples == 2000 and grouped.ei_parts == pytest.approx(whole.ei_parts, abs=1e-9)
    with pytest.raises(ValueError, match="does not fit memory_budget"):
        layer_ei(lin, "relu", memory_budget=8 * 2**20, n_samples="auto", measures=("ei_parts",))


def test_the_weight_layers_around_a_layer_of_units(rnet, resnet):
    from nifkit.ei.network import unit_links

    w = walk(rnet)
    assert unit_links(w, "stem_act") == (["stem"], ["body.block1.conv1", "body.block2.conv1"])
    assert unit_links(w, "body.block1") == (["body.block1.conv2"], ["body.block2.conv1", "fc_out"])
    assert unit_links(w, "body.block1.act1") == (["body.block1.conv1"], ["body.block1.conv2"])
    r = walk(resnet)  # a block's incoming layers are those added into its output (conv2 and the downsampling)
    assert unit_links(r, "layer2.0") == (["layer2.0.conv2", "layer2.0.downsample.0"],
                                         ["layer2.1.conv1", "layer3.0.conv1", "layer3.0.downsample.0"])
    assert unit_links(r, "layer1.0.conv1") == (["layer1.0.conv1"], ["layer1.0.conv2"])
    assert unit_links(r, "layer4.1") == (["layer4.1.conv2"], ["fc"])
