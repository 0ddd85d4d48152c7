"""Model builders, training (speed, reproducibility, snapshots, losses, interrupts) and
the pretrained-weights cache."""
import math
import os

import pytest
import torch
from torch import nn

from nifkit.data import load_digits, load_iris
from nifkit.models import (evaluate, init_weights, layer_names, load_pretrained, mlp, pretrained_path,
                           set_seed, small_cnn, train)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_mlp_names_shapes_bias():
    net = mlp([64, 32, 16, 10])
    assert [n for n, _ in net.named_children()] == ["fc1", "act1", "fc2", "act2", "fc_out"]
    assert net(torch.zeros(5, 64)).shape == (5, 10)
    assert isinstance(net.act1, nn.ReLU)
    ei = mlp([4, 5, 5, 3], activation="sigmoid", bias=False, init="uniform_fan_in", out_activation="sigmoid")
    assert [n for n, _ in ei.named_children()] == ["fc1", "act1", "fc2", "act2", "fc_out", "act_out"]
    assert all(m.bias is None for m in ei.modules() if isinstance(m, nn.Linear))
    assert isinstance(ei.act_out, nn.Sigmoid)
    assert isinstance(mlp([3, 2], activation="identity").fc_out, nn.Linear)
    assert isinstance(mlp([3, 4, 2], activation="tanh").act1, nn.Tanh)
    with pytest.raises(ValueError, match="activation"):
        mlp([3, 4, 2], activation="swishy")
    with pytest.raises(ValueError, match="sizes"):
        mlp([3])
    with pytest.raises(ValueError, match="init"):
        mlp([3, 2], init="zeros-ish")


def test_uniform_fan_in_bounds():
    net = mlp([400, 300, 2], init="uniform_fan_in", seed=0)
    for layer, fan_in in ((net.fc1, 400), (net.fc_out, 300)):
        bound = 1 / math.sqrt(fan_in)
        for t in (layer.weight.detach(), layer.bias.detach()):
            assert float(t.abs().max()) <= bound
        # really uniform over the whole range, not e.g. PyTorch's narrower default
        assert float(layer.weight.detach().abs().max()) > 0.95 * bound
    conv = init_weights(nn.Conv2d(3, 4, 5), "uniform_fan_in")
    assert float(conv.weight.detach().abs().max()) <= 1 / math.sqrt(3 * 25)
    xav = mlp([50, 50], init="xavier", seed=0)
    assert float(xav.fc_out.bias.detach().abs().max()) == 0.0


def test_mlp_seed_reproducible_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = mlp([8, 6, 3], seed=5), mlp([8, 6, 3], seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = mlp([8, 6, 3], seed=6)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_small_cnn_shapes_and_names():
    cnn = small_cnn(image_size=(8, 8), channels=(8, 16), n_classes=10)
    assert cnn(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert layer_names(cnn, "conv") == ["conv1", "conv2"]
    assert layer_names(cnn, "activation") == ["act1", "act2"]
    assert layer_names(cnn, "pool") == ["pool1", "pool2"]
    big = small_cnn(1, 28, channels=(4, 8, 8), hidden=(32,), n_classes=5, bias=False)
    assert big(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    assert layer_names(big, "linear") == ["fc1", "fc_out"] and "act_fc1" in layer_names(big, "activation")
    assert all(m.bias is None for m in big.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert layer_names(mlp([4, 3, 2]), "weighted") == ["fc1", "fc_out"]
    assert layer_names(mlp([4, 3, 2]), "leaf") == ["fc1", "act1", "fc_out"]
    with pytest.raises(ValueError, match="kind"):
        layer_names(cnn, "attention")


def test_training_digits_fast_and_accurate(digits):
    net = mlp([64, 32, 10], seed=0)
    res = train(net, digits, epochs=20, lr=3e-3, progress=False)
    h = res.history
    assert h["epoch"] == list(range(21))
    assert h["train_loss"][-1] < 0.3 * h["train_loss"][0]
    assert h["test_acc"][-1] > 0.9
    assert h["time"][-1] < 20  # seconds; about one on an idle core
    assert not res.model.training and not res.interrupted
    loss, acc = evaluate(res.model, (digits.X_test, digits.y_test))
    assert acc == pytest.approx(h["test_acc"][-1]) and loss == pytest.approx(h["test_loss"][-1], rel=1e-5)


def test_reproducible_with_seed(digits):
    runs = [train(mlp([64, 16, 10], seed=1), digits, epochs=3, seed=7, progress=False) for _ in range(2)]
    assert runs[0].history["train_loss"] == runs[1].history["train_loss"]
    assert runs[0].history["test_acc"] == runs[1].history["test_acc"]
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(p, q)
    other = train(mlp([64, 16, 10], seed=1), digits, epochs=3, seed=8, progress=False)
    assert other.history["train_loss"][-1] != runs[0].history["train_loss"][-1]


def test_snapshots_and_model_at(digits):
    net = mlp([64, 16, 10], seed=0)
    init = {k: v.clone() for k, v in net.state_dict().items()}
    res = train(net, digits, epochs=7, snapshot_every=3, eval_every=2, progress=False)
    assert res.epochs_snapshotted == [0, 3, 6, 7]
    assert res.history["epoch"] == [0, 2, 4, 6, 7]
    m0 = res.model_at(0)
    assert all(torch.equal(m0.state_dict()[k], init[k]) for k in init)
    m7 = res.model_at(7)
    assert all(torch.equal(m7.state_dict()[k], v) for k, v in res.model.state_dict().items())
    assert m7 is not res.model and not m7.training
    # the snapshot at epoch 6 reproduces the history measured at epoch 6
    loss6, acc6 = evaluate(res.model_at(6), (digits.X_test, digits.y_test))
    i = res.history["epoch"].index(6)
    assert acc6 == res.history["test_acc"][i] and loss6 == pytest.approx(res.history["test_loss"][i])
    with pytest.raises(KeyError, match=r"epochs \[0, 3, 6, 7\]"):
        res.model_at(5)


def test_mse_sum_equals_manual():
    iris = load_iris(scale="paper")
    net = mlp([4, 5, 5, 3], "sigmoid", bias=False, init="uniform_fan_in", out_activation="sigmoid", seed=0)
    with torch.no_grad():
        out = net(iris.X_train)
    onehot = torch.nn.functional.one_hot(iris.y_train, 3).float()
    manual_sum = float(((out - onehot) ** 2).sum())
    from nifkit.models.training import _batch_loss

    assert float(_batch_loss("mse_sum", out, iris.y_train)) == pytest.approx(manual_sum, rel=1e-6)
    assert float(_batch_loss("mse", out, iris.y_train)) == pytest.approx(manual_sum / out.numel(), rel=1e-6)
    res = train(net, iris, epochs=1, loss="mse_sum", optimizer="sgd", lr=0.01, batch_size=10, progress=False)
    # history reports the per-sample loss: the summed loss divided by the number of samples
    assert res.history["train_loss"][0] == pytest.approx(manual_sum / len(out), rel=1e-5)
    # one full-batch SGD step on the summed loss equals the manual update
    net2 = mlp([4, 5, 5, 3], "sigmoid", bias=False, init="uniform_fan_in", out_activation="sigmoid", seed=0)
    ref = mlp([4, 5, 5, 3], "sigmoid", bias=False, init="uniform_fan_in", out_activation="sigmoid", seed=0)
    train(net2, (iris.X_train, iris.y_train), epochs=1, loss="mse_sum", optimizer="sgd", lr=0.01,
          batch_size=len(iris.X_train), progress=False)
    loss = ((ref(iris.X_train) - onehot) ** 2).sum()
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for p, q, g in zip(net2.parameters(), ref.parameters(), grads):
        torch.testing.assert_close(p, q - 0.01 * g)


def test_keyboard_interrupt_returns_partial(digits):
    def cb(epoch, model, history):
        if epoch == 2:
            raise KeyboardInterrupt

    net = mlp([64, 16, 10], seed=0)
    with pytest.warns(RuntimeWarning, match="interrupted after 2"):
        res = train(net, digits, epochs=10, snapshot_every=1, callback=cb, progress=False)
    assert res.interrupted and res.epochs_trained == 2
    assert res.epochs_snapshotted == [0, 1, 2] and res.history["epoch"] == [0, 1, 2]
    assert not net.training
    stop = train(mlp([64, 16, 10], seed=0), digits, epochs=10, eval_every=5,
                 callback=lambda e, m, h: e == 3, progress=False)
    assert stop.config["stopped_early"] and stop.history["epoch"] == [0, 3] and stop.epochs_snapshotted == [0, 3]


def test_dataloader_and_tuple_inputs(digits):
    loader = digits.loader(batch_size=64, seed=0)
    res = train(mlp([64, 16, 10], seed=0), loader, epochs=2, test_data=(digits.X_test, digits.y_test),
                progress=False)
    assert len(res.history["test_acc"]) == 3 and res.history["train_loss"][-1] < res.history["train_loss"][0]
    res = train(mlp([64, 16, 10], seed=0), (digits.X_train.numpy(), digits.y_train.numpy()), epochs=1,
                progress=False)
    assert math.isnan(res.history["test_acc"][-1])
    cnn = train(small_cnn(seed=0), digits.as_images(), epochs=1, progress=False)
    assert cnn.history["train_acc"][-1] > 0.2
    with pytest.raises(TypeError, match="data must be"):
        train(mlp([64, 10]), "digits")
    with pytest.raises(ValueError, match="loss"):
        train(mlp([64, 10]), digits, loss="hinge")
    with pytest.raises(ValueError, match="optimizer"):
        train(mlp([64, 10]), digits, optimizer="lbfgs-ish", epochs=1, progress=False)


def test_set_seed_reproducible():
    set_seed(3)
    a = torch.rand(3)
    set_seed(3)
    assert torch.equal(a, torch.rand(3))


def test_missing_pretrained_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = pretrained_path("mobilenet_v3_small")
    assert path.startswith(str(tmp_path)) and path.endswith(".pth")
    with pytest.raises(FileNotFoundError, match=r"(?s)not found at .*checkpoints.*allow_download=True"):
        load_pretrained("mobilenet_v3_small", allow_download=False)
    with pytest.raises(ValueError, match="name must be one of"):
        load_pretrained("alexnet9000")
    # a weight file in the cache is used without any network access
    import torchvision

    src = torchvision.models.mobilenet_v3_small(weights=None)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(src.state_dict(), path)
    m = load_pretrained("mobilenet_v3_small", allow_download=False)
    assert not m.training
    assert torch.equal(m.features[0][0].weight, src.features[0][0].weight)
