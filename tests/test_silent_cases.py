"""The chapter modules' silent wrong results of issue 9, now right answers or clear errors."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from nifkit.ablation import AblationEngine
from nifkit.ei import ModelEI, edge_ablation, layer_ei, measured_layers, model_ei
from nifkit.models import mlp, train

KW = dict(n_samples=20_000, n_sensitivity_samples=2000, seed=0)


@pytest.mark.parametrize("make", [lambda ip: nn.LeakyReLU(0.1, inplace=ip), lambda ip: nn.ELU(inplace=ip),
                                  lambda ip: nn.SELU(inplace=ip)])
def test_layer_ei_with_in_place_activations_equals_the_out_of_place_one(make):
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(4, 3, generator=g) * 3, torch.randn(4, generator=g)
    kw = dict(bias=b.numpy(), out_range=(-2, 2), **KW)
    ref = layer_ei(w.numpy(), make(False), **kw)
    got = layer_ei(w.numpy(), make(True), **kw)
    assert got.sensitivity == pytest.approx(ref.sensitivity, abs=1e-12)
    assert got.ei_parts == pytest.approx(ref.ei_parts, abs=1e-12)


class _Shared(nn.Module):
    """One Sigmoid module used by both layers; fc2 registered before fc1."""

    def __init__(self):
        super().__init__()
        self.act = nn.Sigmoid()
        self.fc2 = nn.Linear(4, 3)
        self.fc1 = nn.Linear(3, 4)

    def forward(self, x):
        return self.act(self.fc2(self.act(self.fc1(x))))


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)

    def forward(self, x):
        return torch.sigmoid(self.fc1(x))


class _Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(torch.sigmoid(self.fc1(x)) + x)


def test_model_ei_pairs_layers_and_activations_by_data_flow():
    torch.manual_seed(0)
    net = _Shared()
    found = measured_layers(net)
    assert list(found) == ["fc1", "fc2"] and found["fc1"][1] is net.act and found["fc2"][1] is net.act
    res = model_ei(net, measures=("ei_parts", "sensitivity"), **KW)
    assert res["fc1"].activation == res["fc2"].activation == "Sigmoid"
    ref = layer_ei(net.fc2, "sigmoid", measures=("ei_parts", "sensitivity"), **KW)
    assert res["fc2"].ei_parts == pytest.approx(ref.ei_parts, abs=1e-12)
    f = model_ei(_Functional(), measures=("ei_parts",), **KW)
    assert f["fc1"].activation == "sigmoid"
    skip_net = _Skip()
    skip = model_ei(skip_net, measures=("ei_parts",), **KW)  # a skip connection: every layer still measured
    assert skip.names == ["fc1", "fc2"] and skip["fc1"].activation == "sigmoid" and not skip.skipped
    ref = layer_ei(skip_net.fc1, "sigmoid", measures=("ei_parts",), **KW)
    assert skip["fc1"].ei_parts == ref.ei_parts and skip["fc2"].activation == "identity"


@pytest.fixture(scope="module")
def dropout_bn_net():
    torch.manual_seed(0)
    X = torch.rand(300, 4)
    y = (X[:, 0] > X[:, 1]).long()
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Sigmoid(), nn.Dropout(0.5), nn.Linear(8, 2))
    train(net, (X, y), epochs=3, progress=False, seed=0)
    return net, X, y


def test_edge_ablation_runs_in_eval_mode_and_checks_labels(dropout_bn_net):
    net, X, y = dropout_bn_net
    res = ModelEI(OrderedDict([("4", layer_ei(net[4], name="4", measures=("ei_parts", "sensitivity"), **KW))]))
    net.train()
    stats = net[1].running_mean.clone()
    runs = [edge_ablation(net, (X, y), res, n_groups=4).accuracy["ei"] for _ in range(3)]
    assert all(np.array_equal(runs[0], r) for r in runs)  # Dropout off: one answer
    assert torch.equal(net[1].running_mean, stats) and net.training  # BatchNorm untouched, mode restored
    with pytest.raises(ValueError, match="has 299 labels but the data have 300 samples"):
        edge_ablation(net, (X, y[:-1]), res, n_groups=4)
    with pytest.raises(ValueError, match="only 2 classes"):
        edge_ablation(net, (X, y + 2), res, n_groups=4)


def test_nan_inputs_raise_instead_of_giving_an_accuracy():
    net = mlp([3, 4, 2], seed=0)
    X, y = torch.rand(50, 3), torch.randint(0, 2, (50,))
    X[7, 1] = float("nan")
    with pytest.raises(ValueError, match="contains NaN"):
        AblationEngine(net, (X, y))
    with pytest.raises(ValueError, match=r"data\[0\] contains NaN"):
        train(net, (X, y), epochs=1, progress=False)


def test_neuron_measures_refuse_more_joint_cells_than_samples():
    """As flow_graph and layer_ei do: 200 bins x 2 classes on 50 samples is refused, by name."""
    from nifkit.ablation import neuron_measures

    rng = np.random.default_rng(0)
    acts, y = {"a": rng.random((50, 3))}, rng.integers(0, 2, 50)
    with pytest.raises(ValueError, match=r"too few samples in activations.*200 bins x 2 classes needs at least 400"):
        neuron_measures(acts, y, n_bins=200)
    assert neuron_measures(acts, y, n_bins=5)["a"].mi.shape == (3,)  # 10 cells on 50 samples: fine
