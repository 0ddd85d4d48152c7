"""Recording: hooks always removed, mode restored, in-place ops, reused modules,
gradients, batching and data forms."""
import numpy as np
import pytest
import torch
from torch import nn

from nifkit.record import Recorder, Recording, record, resolve_layers


def make_net(seed=0, inplace=True):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(inplace=inplace), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 3)
    )


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


class Reuser(nn.Module):
    """One ReLU module called twice per forward pass, like torchvision's BasicBlock."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc2(self.relu(self.fc1(x))))


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)


def test_hooks_removed_after_normal_exit(data):
    net = make_net()
    with Recorder(net, ["0", "2"]) as rec:
        net(data[0])
    assert no_hooks(net)
    assert set(rec.activations) == {"0", "2"}
    assert rec.activations["0"].shape == (50, 8)


def test_hooks_removed_after_exception_mid_forward(data):
    net = nn.Sequential(nn.Linear(6, 4), Boom())
    with pytest.raises(RuntimeError, match="boom"):
        with Recorder(net) as rec:
            net(data[0])
    assert no_hooks(net)
    # the layer before the failure was recorded
    assert rec.activations["0"].shape == (50, 4)


def test_record_restores_after_exception(data):
    net = nn.Sequential(nn.Linear(6, 4), Boom())
    net.train()
    flags = [p.requires_grad for p in net.parameters()]
    for grads in (False, True):
        with pytest.raises(RuntimeError, match="boom"):
            record(net, data[0], grads=grads, loss_fn="sum" if grads else None, progress=False)
        assert no_hooks(net) and net.training
        assert [p.requires_grad for p in net.parameters()] == flags


def test_keyboard_interrupt_restores(data):
    class Interrupt(nn.Module):
        def forward(self, x):
            raise KeyboardInterrupt

    net = nn.Sequential(nn.Linear(6, 4), Interrupt()).train()
    net[0].weight.requires_grad_(False)
    with pytest.raises(KeyboardInterrupt):
        record(net, data[0], grads=True, loss_fn="sum", progress=False)
    assert no_hooks(net) and net.training
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad


@pytest.mark.parametrize("mode", [True, False])
def test_mode_restored(data, mode):
    net = make_net().train(mode)
    seen = []
    net[0].register_forward_pre_hook(lambda m, a: seen.append(m.training))
    record(net, data[0], ["0"], progress=False)
    assert seen == [False]  # recorded in eval mode
    assert net.training is mode and all(m.training is mode for m in net.modules())


def test_mixed_modes_restored(data):
    net = make_net().train()
    net[2].eval()  # e.g. a frozen block inside a training model
    record(net, data[0], progress=False)
    assert net.training and not net[2].training and net[0].training


def test_inplace_relu_after_linear(data):
    net = make_net(inplace=True)
    X = data[0]
    rec = record(net, X, ["0", "1", "2"], batch_size=16, progress=False)
    with torch.no_grad():
        pre = X @ net[0].weight.T + net[0].bias
    assert (pre < 0).any()  # the in-place ReLU would have zeroed these
    torch.testing.assert_close(rec["0"], pre)
    torch.testing.assert_close(rec["1"], pre.clamp(min=0))


def test_reused_module_error_and_all():
    net = Reuser()
    x = torch.randn(10, 4)
    with pytest.raises(RuntimeError, match=r"'relu'.*more than once.*reused='all'"):
        with Recorder(net, ["relu"]):
            net(x)
    assert no_hooks(net)
    rec = record(net, x, ["fc1", "relu"], reused="all", batch_size=4, progress=False)
    assert rec.layer_names == ["fc1", "relu@0", "relu@1"]
    with torch.no_grad():
        h1 = torch.relu(net.fc1(x))
        h2 = torch.relu(net.fc2(h1))
    torch.testing.assert_close(rec["relu@0"], h1)
    torch.testing.assert_close(rec["relu@1"], h2)
    first = record(net, x, ["relu"], reused="first", progress=False)
    torch.testing.assert_close(first["relu"], h1)


def test_resnet_shared_relu_suggests_block():
    import torchvision
    net = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match=r"'layer1\.0\.relu'.*'layer1\.0'"):
        record(net, x, ["layer1.0.relu"], progress=False)
    rec = record(net, x, ["layer1.0", "layer2"], progress=False)
    assert rec["layer1.0"].shape == (2, 64, 8, 8)
    assert rec.flat("layer2", per_channel=True).shape == (2, 128)
    assert no_hooks(net)


def test_unknown_layer_suggests_close_match():
    net = nn.Sequential()
    net.add_module("fc1", nn.Linear(3, 3))
    net.add_module("act1", nn.ReLU())
    with pytest.raises(ValueError, match=r"'fc2'.*Did you mean 'fc1'.*Available names.*act1"):
        Recorder(net, ["fc2"]).__enter__()
    assert no_hooks(net)


def test_layer_selection_forms():
    net = make_net()
    assert resolve_layers(net) == ["0", "1", "2", "3", "4"]
    assert resolve_layers(net, "2") == ["2"]
    assert resolve_layers(net, lambda n: n in {"0", "4"}) == ["0", "4"]
    with pytest.raises(TypeError, match="layers"):
        resolve_layers(net, [0])


def test_gradients_equal_autograd(data):
    X, y = data
    net = make_net(inplace=True)
    rec = record(net, (X, y), ["0", "1", "3"], grads=True, loss_fn=nn.CrossEntropyLoss(),
                 batch_size=16, progress=False)
    # reference: per-sample losses summed, gradient w.r.t. each intermediate output
    x = X.clone()
    a0 = net[0](x)
    a1 = torch.relu(a0)
    a2 = net[2](a1)
    a3 = torch.tanh(a2)
    loss = nn.functional.cross_entropy(net[4](a3), y, reduction="sum")
    g0, g1, g3 = torch.autograd.grad(loss, [a0, a1, a3])
    torch.testing.assert_close(rec.gradients["0"], g0)
    torch.testing.assert_close(rec.gradients["1"], g1)
    torch.testing.assert_close(rec.gradients["3"], g3)
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_gradients_of_output_sum(data):
    net = make_net(inplace=False)
    X = data[0]
    rec = record(net, X, ["2"], grads=True, loss_fn="sum", progress=False)
    a = net[2](torch.relu(net[0](X)))
    (g,) = torch.autograd.grad(net[4](torch.tanh(a)).sum(), [a])
    torch.testing.assert_close(rec.gradients["2"], g)


def test_batched_equals_one_shot(data):
    net = make_net()
    X = data[0]
    rec = record(net, X, batch_size=7, inputs=True, progress=False)
    with torch.no_grad():
        out = net(X.clone())
    torch.testing.assert_close(rec.outputs, out)
    torch.testing.assert_close(rec.activations["4"], out)
    torch.testing.assert_close(rec.inputs["0"], X)
    assert rec.n_samples == 50 and rec.targets is None


def test_dataloader_and_tensor_agree(data):
    X, y = data
    net = make_net()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=9)
    a = record(net, loader, ["2"], progress=False)
    b = record(net, (X.numpy(), y.numpy()), ["2"], batch_size=64, progress=False)
    c = record(net, X.numpy().astype(np.float64), ["2"], targets=y, progress=False)
    torch.testing.assert_close(a["2"], b["2"])
    torch.testing.assert_close(a["2"], c["2"])
    assert torch.equal(a.targets, y) and torch.equal(b.targets, y)


def test_dataset_input_and_max_samples():
    from nifkit.data import load_iris

    ds = load_iris()
    net = nn.Sequential(nn.Linear(4, 3))
    rec = record(net, ds, max_samples=30, batch_size=8, progress=False)
    assert rec.n_samples == 30 and len(rec["0"]) == 30
    torch.testing.assert_close(rec.targets, ds.y_train[:30])
    rec = record(net, ds, split="test", progress=False)
    assert rec.n_samples == ds.n_test


def test_flat_and_errors():
    conv = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU())
    x = torch.randn(4, 1, 5, 5)
    rec = record(conv, x, ["0"], progress=False)
    assert rec.flat("0").shape == (4, 75)
    torch.testing.assert_close(rec.flat("0", per_channel=True), rec["0"].mean(dim=(2, 3)))
    assert isinstance(rec, Recording) and "n_samples=4" in repr(rec) and rec.table()[0]["shape"] == (3, 5, 5)
    with pytest.raises(KeyError, match="Did you mean '0'"):
        rec.flat("00")
    with pytest.raises(KeyError, match="grads"):
        rec.flat("0", which="gradients")
    with pytest.raises(ValueError, match="batch_size"):
        record(conv, x, batch_size=0)
    with pytest.raises(TypeError, match="data must be"):
        record(conv, 3.0)
    with pytest.raises(ValueError, match="reused"):
        record(conv, x, reused="sometimes")


def test_tuple_output_first_tensor():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, "meta"

    net = nn.Sequential(nn.Linear(3, 3), Pair())
    x = torch.randn(5, 3)
    with Recorder(net, ["1"]) as rec:
        net[0](x)  # calling a submodule outside the model's forward works too
        net(x)
    assert rec.activations["1"].shape == (5, 3)
    with torch.no_grad():
        torch.testing.assert_close(rec.activations["1"], net[0](x) * 2)

    class Bad(nn.Module):
        def forward(self, x):
            return None

    bad = nn.Sequential(Bad())
    with pytest.raises(RuntimeError, match="no tensor"):
        with Recorder(bad, ["0"]):
            bad(x)
    assert no_hooks(bad)
