"""The one intervention mechanism (knockouts of units and edges, batched) and
measures over training snapshots."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from nifkit.dynamics import over_snapshots
from nifkit.intervene import Knockouts, evaluate_edge_knockouts, knock_out, knock_out_edges
from nifkit.models import mlp, train


@pytest.fixture(scope="module")
def net_xy():
    torch.manual_seed(0)
    X = torch.randn(300, 6)
    y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    net = mlp([6, 8, 5, 3], seed=0)
    tr = train(net, (X, y), epochs=5, progress=False, snapshot_every=2, seed=0)
    return net, X, y, tr


def _acc(model, X, y):
    with torch.no_grad():
        return float((model(X).argmax(1) == y).double().mean())


def test_unit_knockouts_batched_equal_one_at_a_time(net_xy):
    net, X, y, _ = net_xy
    masks = torch.zeros(4, 8, dtype=torch.bool)
    masks[1, :3] = True
    masks[2, 5] = True
    masks[3] = True
    res = Knockouts(net, (X, y)).evaluate(["act1"], [masks])
    for s in range(4):
        with knock_out(net, {"act1": masks[s]}):
            want = _acc(net, X, y)
        assert res.accuracy[s] == pytest.approx(want, abs=1e-9)
    hooks = Knockouts(net, (X, y), method="hooks").evaluate("act1", masks)
    np.testing.assert_allclose(hooks.accuracy, res.accuracy)
    acc, loss, cls = res  # unpacks as a triple
    assert cls.shape == (4, 3)


def test_edge_knockouts_batched_equal_a_copy_with_zeroed_weights(net_xy):
    net, X, y, _ = net_xy
    rng = np.random.default_rng(0)
    edges = {"fc1": rng.random((5, 6, 8)) < 0.3, "fc2": rng.random((5, 8, 5)) < 0.3}
    res = evaluate_edge_knockouts(net, (X, y), edges)
    for s in range(5):
        ref = copy.deepcopy(net)
        with torch.no_grad():
            ref.fc1.weight[torch.from_numpy(edges["fc1"][s]).T] = 0
            ref.fc2.weight[torch.from_numpy(edges["fc2"][s]).T] = 0
        assert res.accuracy[s] == pytest.approx(_acc(ref, X, y), abs=1e-9)
    w = net.fc1.weight.detach().clone()
    with knock_out_edges(net, {"fc1": edges["fc1"][0]}):
        assert int((net.fc1.weight == 0).sum()) >= int(edges["fc1"][0].sum())
    assert torch.equal(net.fc1.weight, w)


def test_knockouts_use_eval_mode_and_restore_it():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
    X, y = torch.randn(200, 4), torch.randint(0, 2, (200,))
    net.train()
    edges = {"3": np.zeros((3, 16, 2), dtype=bool)}
    a = evaluate_edge_knockouts(net, (X, y), edges).accuracy
    b = evaluate_edge_knockouts(net, (X, y), edges).accuracy
    np.testing.assert_array_equal(a, b)  # Dropout off: the same answer every call
    assert net.training and net[2].training


def test_bad_input_gives_clear_errors(net_xy):
    net, X, y, _ = net_xy
    Xn = X.clone()
    Xn[3, 2] = float("nan")
    with pytest.raises(ValueError, match="contains NaN"):
        Knockouts(net, (Xn, y))
    with pytest.raises(ValueError, match="has 299 labels but the data have 300"):
        evaluate_edge_knockouts(net, (X, y[:-1]), {"fc1": np.zeros((1, 6, 8), bool)})
    with pytest.raises(ValueError, match="only 3 classes"):
        Knockouts(net, (X, y + 3))
    with pytest.raises(ValueError, match="unknown layer 'fc9'.*Did you mean"):
        evaluate_edge_knockouts(net, (X, y), {"fc9": np.zeros((1, 6, 8), bool)})
    with pytest.raises(TypeError, match="nn.Linear"):
        evaluate_edge_knockouts(net, (X, y), {"act1": np.zeros((1, 6, 8), bool)})


class _Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))


def test_a_reused_module_names_the_fix():
    X, y = torch.randn(50, 4), torch.randint(0, 2, (50,))
    eng = Knockouts(_Shared(), (X, y))
    with pytest.raises(ValueError, match="'act' is called 2 times.*own module.*nn.ReLU"):
        eng.evaluate(["act"], [torch.ones(1, 4, dtype=torch.bool)])


def test_over_snapshots(net_xy):
    net, X, y, tr = net_xy
    seen = []
    traj = over_snapshots(tr, lambda m: _acc(m, X, y), progress=lambda d, t, w: seen.append((d, t)))
    assert traj.epochs.tolist() == tr.epochs_snapshotted and seen[-1] == (len(traj), len(traj))
    assert traj.values(lambda r: r)[-1] == pytest.approx(_acc(net, X, y))
    with pytest.raises(KeyError, match="no snapshots at epochs"):
        over_snapshots(tr, len, epochs=[3])


def test_layer_knockouts_live_in_intervene_restore_the_model_and_serve_chapter_2():
    from nifkit.conductance import Knockout, knockout
    from nifkit.intervene import LayerKnockouts, knock_out_layers

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    net.train()
    X, y = torch.randn(40, 4), torch.arange(40) % 3
    before = [p.detach().clone() for p in net.parameters()]
    ko = knock_out_layers(net, (X, y), ["1", "4"], mode="zero")
    assert isinstance(ko, LayerKnockouts) and Knockout is LayerKnockouts
    assert net.training and all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert not any(m._forward_hooks for m in net.modules())
    # zeroing the last hidden layer leaves only the output bias: accuracy of argmax(bias)
    with torch.no_grad():
        net.eval()
        base = net(X)
        net.train()
    assert ko.base_accuracy == int((base.argmax(1) == y).sum()) / len(y)
    assert ko.accuracy[1] == int((y == int(net[5].bias.argmax())).sum()) / len(y)
    same = knockout(net, (X, y), ["1", "4"], mode="zero")
    np.testing.assert_array_equal(same.accuracy, ko.accuracy)
    np.testing.assert_array_equal(same.logit, ko.logit)
    with pytest.raises(ValueError, match="unknown layer 'fc9'"):
        knock_out_layers(net, (X, y), ["fc9"])
    with pytest.raises(ValueError, match="mode must be one of"):
        knock_out_layers(net, (X, y), ["1"], mode="noise")


@pytest.mark.parametrize("value", ["zero", "mean", "given"])
def test_readout_mode_equals_the_forward_pass_of_the_general_mode(value):
    """Knockouts.readout (split sums through the last Linear) gives the same accuracy as
    Knockouts.evaluate (a forward pass of every following layer) for zero, mean and
    given values, and its balanced accuracy equals (TPR + TNR) / 2 counted by hand."""
    from nifkit.intervene import masks_from_bits

    net = mlp([10, 6, 3], activation="tanh", out_activation="tanh", seed=3)
    X = torch.randn(400, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(X).argmax(1).numpy()
    y[::5] = (y[::5] + 1) % 3  # some errors, so that knockouts can also help
    ko = Knockouts(net, (X, y))
    v = np.linspace(-0.5, 0.5, 6) if value == "given" else value
    ro = ko.readout("act1", v)
    masks = masks_from_bits(np.arange(64), 6)
    ref = ko.evaluate(["act1"], [masks], [v] if value == "given" else v)  # one value array per layer
    acc = ro.accuracies(masks)
    assert np.allclose(acc["accuracy"], ref.accuracy, atol=1e-12)
    assert acc["accuracy"].std() > 0  # the knockouts really change the answer
    pred = ro.predict(masks)
    for c in range(3):
        assert np.allclose(ro.all_subsets(c, sample_chunk=16), acc["balanced"][:, c], atol=1e-12)
        tpr = (pred[:, y == c] == c).mean(1)
        tnr = (pred[:, y != c] != c).mean(1)
        assert np.allclose(acc["balanced"][:, c], (tpr + tnr) / 2, atol=1e-12)
    assert np.array_equal(ro.base_predicted, net(X).argmax(1).numpy())


def test_readout_mode_refuses_layers_it_cannot_read():
    net = mlp([10, 6, 5, 3], seed=0)
    X = torch.randn(50, 10)
    ko = Knockouts(net, (X, np.zeros(50, int)))
    with pytest.raises(ValueError, match="one nn.Linear"):
        ko.readout("act1")  # two Linear layers follow it
    with pytest.raises(ValueError, match="unknown layer 'act7'. Did you mean"):
        ko.readout("act7")
    ro = ko.readout("act2")
    with pytest.raises(ValueError, match="masks must be"):
        ro.accuracies(np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="cls=1"):
        ro.all_subsets(1)  # class 1 has no samples


def test_base_class_accuracy_is_the_intact_model_per_class():
    """Knockouts.base_class_accuracy equals evaluating an empty knockout, and counts by
    hand; a class without samples is NaN, as in evaluate."""
    net = mlp([5, 4, 3], seed=2)
    X = torch.randn(90, 5, generator=torch.Generator().manual_seed(4))
    y = np.arange(90) % 2  # class 2 never occurs
    ko = Knockouts(net, (X, y))
    empty = ko.evaluate(["act1"], [np.zeros((1, 4), bool)]).class_accuracy[0]
    with torch.no_grad():
        pred = net(X).argmax(1).numpy()
    hand = [(pred[y == c] == c).mean() for c in (0, 1)]
    np.testing.assert_allclose(ko.base_class_accuracy[:2], hand)
    np.testing.assert_allclose(ko.base_class_accuracy[:2], empty[:2])
    assert np.isnan(ko.base_class_accuracy[2]) and np.isnan(empty[2])


def test_intervene_functions_do_one_job_in_at_most_80_lines():
    """Issue 18, point 7: Knockouts.evaluate and knock_out_layers were 136 and 89 lines."""
    import ast
    from pathlib import Path

    import nifkit.intervene as pkg

    long = []
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, f"split these into functions of one job each: {long}"


def test_layer_knockout_settings_check_their_values():
    from nifkit.intervene.layers import LayerKnockoutSettings

    assert LayerKnockoutSettings(fraction=0.5, n_repeats=3).draws == 3
    assert LayerKnockoutSettings(fraction=1.0, n_repeats=3).draws == 1
    with pytest.raises(ValueError, match="fraction must be in"):
        LayerKnockoutSettings(fraction=0)
    with pytest.raises(ValueError, match="n_repeats must be a positive integer"):
        LayerKnockoutSettings(n_repeats=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        LayerKnockoutSettings(mode="half")
