"""Small models of the papers, training with history and snapshots, and a vision zoo.

Layer naming convention (stable, so chapters can address layers by name):

* :func:`mlp` - ``fc1, act1, fc2, act2, ..., fc_out`` and ``act_out`` when
  ``out_activation`` is set. ``mlp([64, 32, 10])`` has ``fc1`` (64->32), ``act1``,
  ``fc_out`` (32->10).
* :func:`small_cnn` - ``conv1, act1, pool1, conv2, act2, pool2, ..., flatten``, then
  ``fc1, act_fc1`` for each hidden dense layer, and ``fc_out``.

:func:`train` trains any classifier on in-memory tensors (fast: one permutation per
epoch indexes the tensors, no DataLoader) or on a DataLoader, records a loss/accuracy
history and snapshots of the weights (epoch 0 = before training), and is reproducible
in its ``seed``.
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ._validation import resolve_device, to_tensor
from .runtime import cpu_threads  # noqa: F401  (re-exported: old imports keep working)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "mlp",
    "small_cnn",
    "layer_names",
    "init_weights",
    "set_seed",
    "cpu_threads",
    "train",
    "evaluate",
    "TrainResult",
    "LOSSES",
    "PRETRAINED",
    "load_pretrained",
    "pretrained_path",
]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "linear": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}

INITS = ("default", "uniform_fan_in", "xavier", "xavier_normal", "kaiming", "kaiming_normal", "orthogonal")


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_activation(activation, arg="activation"):
    if activation is None:
        return None
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"{arg} must be one of {sorted(ACTIVATIONS)} (or an nn.Module class), got {activation!r}")
        return ACTIVATIONS[key]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)
    raise TypeError(f"{arg} must be a name like 'relu', an nn.Module class or instance; got {type(activation).__name__}")


def init_weights(module: nn.Module, init="default", activation: str | None = "relu") -> nn.Module:
    """(Re)initialise every Linear and Conv layer of ``module`` in place.

    * ``"default"`` - PyTorch's own (Kaiming-uniform with a=sqrt(5); left untouched);
    * ``"uniform_fan_in"`` - weights and biases ``~ U(-1/sqrt(fan_in), +1/sqrt(fan_in))``,
      the EI paper's initialisation;
    * ``"xavier"`` / ``"xavier_normal"`` - Glorot uniform / normal, biases 0;
    * ``"kaiming"`` / ``"kaiming_normal"`` - He uniform / normal for ReLU, biases 0;
    * ``"orthogonal"`` - orthogonal weights, biases 0;
    * a callable ``f(layer)`` applied to each Linear/Conv layer.

    Uses the global torch RNG (wrap in :func:`torch.random.fork_rng` to isolate it, as
    :func:`mlp` does when given a seed).
    """
    if init == "default":
        return module
    if not (callable(init) or init in INITS):
        raise ValueError(f"init must be one of {INITS} or a callable f(layer); got {init!r}")
    for m in module.modules():
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            continue
        if callable(init):
            init(m)
            continue
        w, b = m.weight, m.bias
        with torch.no_grad():
            if init == "uniform_fan_in":
                bound = 1.0 / math.sqrt(w[0].numel())
                w.uniform_(-bound, bound)
                if b is not None:
                    b.uniform_(-bound, bound)
                continue
            if init == "xavier":
                nn.init.xavier_uniform_(w)
            elif init == "xavier_normal":
                nn.init.xavier_normal_(w)
            elif init == "kaiming":
                nn.init.kaiming_uniform_(w, nonlinearity="relu")
            elif init == "kaiming_normal":
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            elif init == "orthogonal":
                nn.init.orthogonal_(w)
            if b is not None:
                b.zero_()
    return module


def _seeded(seed):
    """Context: a forked torch RNG seeded with ``seed`` (global state untouched), or
    nothing when ``seed`` is None."""
    import contextlib

    if seed is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            yield

    return ctx()


def mlp(sizes: Sequence[int], activation="relu", bias: bool = True, init="default",
        out_activation=None, seed: int | None = None) -> nn.Sequential:
    """A fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Modules are named ``fc1, act1, ..., fc_out`` (and ``act_out`` if
    ``out_activation`` is given), so ``mlp([4, 5, 5, 3], "sigmoid", bias=False,
    init="uniform_fan_in", out_activation="sigmoid")`` is the EI paper's Iris net with
    layers ``fc1, act1, fc2, act2, fc_out, act_out``. ``activation`` is a name in
    :data:`ACTIVATIONS`, an ``nn.Module`` class or instance. ``seed`` makes the
    initial weights reproducible without touching the global RNG.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least an input and an output size, all >= 1; got {sizes}")
    _make_activation(activation)  # validate early
    _make_activation(out_activation, "out_activation")
    layers: list[tuple[str, nn.Module]] = []
    with _seeded(seed):
        n_hidden = len(sizes) - 2
        for i in range(n_hidden):
            layers.append((f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1], bias=bias)))
            layers.append((f"act{i + 1}", _make_activation(activation)))
        layers.append(("fc_out", nn.Linear(sizes[-2], sizes[-1], bias=bias)))
        if out_activation is not None:
            layers.append(("act_out", _make_activation(out_activation, "out_activation")))
        net = nn.Sequential(OrderedDict(layers))
        init_weights(net, init)
    return net


def small_cnn(in_channels: int = 1, image_size=(8, 8), channels: Sequence[int] = (8, 16),
              n_classes: int = 10, *, kernel_size: int = 3, activation="relu", pool: bool = True,
              hidden: Sequence[int] = (), bias: bool = True, init="default",
              seed: int | None = None) -> nn.Sequential:
    """A small convolutional classifier for ``(N, in_channels, H, W)`` images.

    Each conv block is ``conv{i}`` (``kernel_size``, "same" padding), ``act{i}`` and,
    with ``pool=True``, ``pool{i}`` (2x2 max-pool, skipped once the map is 1 pixel);
    then ``flatten``, optional dense layers ``fc{j}, act_fc{j}`` of sizes ``hidden``,
    and ``fc_out``. Works for 8x8 digits and 28x28 MNIST alike.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    h, w = (int(s) for s in image_size)
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1 or in_channels < 1 or n_classes < 1:
        raise ValueError(f"channels, in_channels and n_classes must be positive; got {channels}, {in_channels}, {n_classes}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number (for 'same' padding), got {kernel_size}")
    _make_activation(activation)
    layers: list[tuple[str, nn.Module]] = []
    with _seeded(seed):
        c_in = int(in_channels)
        for i, c in enumerate(channels, 1):
            layers.append((f"conv{i}", nn.Conv2d(c_in, c, kernel_size, padding=kernel_size // 2, bias=bias)))
            layers.append((f"act{i}", _make_activation(activation)))
            if pool and min(h, w) >= 2:
                layers.append((f"pool{i}", nn.MaxPool2d(2)))
                h, w = h // 2, w // 2
            c_in = c
        layers.append(("flatten", nn.Flatten()))
        n = c_in * h * w
        for j, k in enumerate(hidden, 1):
            layers.append((f"fc{j}", nn.Linear(n, int(k), bias=bias)))
            layers.append((f"act_fc{j}", _make_activation(activation)))
            n = int(k)
        layers.append(("fc_out", nn.Linear(n, int(n_classes), bias=bias)))
        net = nn.Sequential(OrderedDict(layers))
        init_weights(net, init)
    return net


_ACT_TYPES = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SELU, nn.CELU,
              nn.Softplus, nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.PReLU,
              nn.Softmax, nn.LogSoftmax, nn.Identity)
_KINDS = {
    "linear": (nn.Linear,),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "weighted": (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "activation": _ACT_TYPES,
    "pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
             nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d),
    "norm": (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm),
}


def layer_names(model: nn.Module, kind="linear") -> list[str]:
    """Names (as in ``model.named_modules()``) of the modules of one kind, in order.

    ``kind``: ``"linear"``, ``"conv"``, ``"weighted"`` (linear or conv),
    ``"activation"``, ``"pool"``, ``"norm"``, ``"leaf"`` (modules without children),
    ``"all"``, or an ``nn.Module`` class / tuple of classes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    items = [(n, m) for n, m in model.named_modules() if n != ""]
    if kind == "all":
        return [n for n, _ in items]
    if kind == "leaf":
        return [n for n, m in items if not any(True for _ in m.children())]
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS) + ['leaf', 'all']} or a module class, got {kind!r}")
        types = _KINDS[kind]
    elif isinstance(kind, type) or (isinstance(kind, tuple) and all(isinstance(k, type) for k in kind)):
        types = kind
    else:
        raise TypeError(f"kind must be a string or an nn.Module class, got {type(kind).__name__}")
    return [n for n, m in items if isinstance(m, types)]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
LOSSES = ("cross_entropy", "mse", "mse_sum")


def _per_sample_loss(loss, out, y):
    """Loss of each sample, shape (batch,). For mse losses integer labels become
    one-hot targets; float targets of the output's shape are used as they are."""
    if loss == "cross_entropy":
        return F.cross_entropy(out, y, reduction="none")
    if y.is_floating_point():
        t = y.reshape(out.shape)
    else:
        t = F.one_hot(y, out.shape[1]).to(out.dtype)
    sq = ((out - t) ** 2).reshape(len(out), -1)
    return sq.mean(1) if loss == "mse" else sq.sum(1)


def _batch_loss(loss, out, y):
    """The training objective on one batch.

    ``cross_entropy``: mean over the batch of ``-log softmax(out)[y]``;
    ``mse``: mean over batch and outputs of ``(out - onehot(y))^2``;
    ``mse_sum``: ``sum_{i,k} (out_ik - onehot(y)_ik)^2`` over the batch (the EI paper's).
    """
    if callable(loss):
        return loss(out, y)
    per = _per_sample_loss(loss, out, y)
    return per.sum() if loss == "mse_sum" else per.mean()


def evaluate(model: nn.Module, X, y, loss="cross_entropy", batch_size: int = 4096,
             device=None) -> tuple[float, float]:
    """``(loss per sample, accuracy)`` of ``model`` on ``(X, y)`` in eval mode under
    ``no_grad``. The loss is the mean per-sample loss (for ``"mse_sum"`` the squared
    error summed over outputs, averaged over samples). Accuracy is the fraction of
    ``argmax(output) == y`` (NaN for float targets). The model's mode is restored."""
    dev = resolve_device(device) if device is not None else _device_of(model)
    X, y = to_tensor(X, "X"), to_tensor(y, "y")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    tot_loss, correct, n = 0.0, 0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                xb, yb = X[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
                out = model(xb)
                if callable(loss):
                    tot_loss += float(loss(out, yb)) * len(xb)
                else:
                    tot_loss += float(_per_sample_loss(loss, out, yb).sum())
                if not yb.is_floating_point():
                    correct += int((out.argmax(1) == yb).sum())
                n += len(xb)
    finally:
        for m, mode in modes:
            m.training = mode
    acc = correct / n if not y.is_floating_point() else float("nan")
    return tot_loss / max(n, 1), acc


@dataclass(repr=False)
class TrainResult:
    """What :func:`train` returns.

    ``history``: dict of equal-length lists ``epoch, train_loss, train_acc, test_loss,
    test_acc, time`` (epoch 0 = before training; test entries are NaN without test
    data). ``snapshots``: list of ``(epoch, state_dict)`` CPU copies. ``interrupted`` is
    True when training was stopped by KeyboardInterrupt (the model then holds the
    weights of the interrupted epoch; history and snapshots stop at the last complete
    one). A callback that returns True stops cleanly (``config["stopped_early"]``).
    """

    model: nn.Module
    history: dict
    snapshots: list
    interrupted: bool = False
    config: dict = field(default_factory=dict)

    @property
    def epochs_snapshotted(self) -> list[int]:
        return [e for e, _ in self.snapshots]

    @property
    def epochs_trained(self) -> int:
        return int(self.config.get("epochs_completed", 0))

    def state_at(self, epoch: int) -> dict:
        """The snapshot state_dict of ``epoch`` (KeyError listing those available)."""
        for e, sd in self.snapshots:
            if e == epoch:
                return sd
        raise KeyError(f"no snapshot at epoch {epoch}; snapshots exist for epochs {self.epochs_snapshotted} "
                       "(set snapshot_every=k in train() for more)")

    def model_at(self, epoch: int) -> nn.Module:
        """A deep copy of the model with the weights of ``epoch``, in eval mode."""
        sd = self.state_at(epoch)
        m = copy.deepcopy(self.model)
        m.load_state_dict(sd)
        return m.eval()

    def __repr__(self) -> str:
        h = self.history
        last = ""
        if h.get("epoch"):
            last = f", last epoch {h['epoch'][-1]}: train_acc={h['train_acc'][-1]:.3f}"
            if not math.isnan(h["test_acc"][-1]):
                last += f", test_acc={h['test_acc'][-1]:.3f}"
        flag = ", interrupted" if self.interrupted else ""
        return f"TrainResult({self.epochs_trained} epochs{last}, snapshots at {self.epochs_snapshotted}{flag})"


def _device_of(model):
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _coerce_data(data):
    """-> (X_train, y_train, X_test, y_test) tensors, or ('loader', train, test)."""
    from .data import Dataset

    if isinstance(data, Dataset):
        return data.X_train, data.y_train, data.X_test, data.y_test
    if isinstance(data, (tuple, list)) and len(data) in (2, 4) and all(
            isinstance(d, (torch.Tensor, np.ndarray)) for d in data):
        ts = [to_tensor(d, f"data[{i}]") for i, d in enumerate(data)]
        if len(ts[0]) != len(ts[1]) or (len(ts) == 4 and len(ts[2]) != len(ts[3])):
            raise ValueError("data: inputs and labels must have the same number of rows")
        return (ts[0], ts[1], ts[2], ts[3]) if len(ts) == 4 else (ts[0], ts[1], None, None)
    if isinstance(data, torch.utils.data.DataLoader):
        return "loader", data
    raise TypeError(
        "data must be a nifkit.data.Dataset, a tuple (X, y) or (X_train, y_train, X_test, y_test) of "
        f"tensors/arrays, or a torch DataLoader; got {type(data).__name__}"
    )


def _make_optimizer(optimizer, params, lr, weight_decay, momentum):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer(params)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'sgd', a torch Optimizer or a callable params -> Optimizer; got {optimizer!r}")


def train(model: nn.Module, data, *, epochs: int = 20, lr: float = 1e-3, optimizer="adam",
          loss="cross_entropy", batch_size: int = 64, snapshot_every: int | None = None,
          seed: int | None = 0, device=None, progress: bool = True, eval_every: int = 1,
          callback: Callable | None = None, test_data=None, weight_decay: float = 0.0,
          momentum: float = 0.0, num_threads: int | None = None) -> TrainResult:
    """Train a classifier and record its history and weight snapshots.

    ``data``: a :class:`nifkit.data.Dataset` (train and test splits), a tuple ``(X, y)``
    or ``(X_train, y_train, X_test, y_test)`` of tensors/arrays, or a ``DataLoader``
    (then ``test_data=(X, y)`` optionally). In-memory tensors are moved to ``device``
    once and each epoch indexes them with one seeded random permutation (much faster
    than a DataLoader).

    ``loss``: ``"cross_entropy"`` (batch mean), ``"mse"`` (mean over batch and outputs
    of ``(out - onehot(y))^2``), ``"mse_sum"`` (the same squared error *summed* over
    batch and outputs, the EI paper's), or a callable ``loss(output, y) -> scalar``.
    ``optimizer``: ``"adam"``, ``"sgd"`` (with ``momentum``), a callable
    ``params -> Optimizer`` or an optimizer instance.

    History (every ``eval_every`` epochs, plus epoch 0 and the last): loss per sample
    and accuracy on the whole train and test sets, measured after the epoch in eval
    mode. Snapshots: epoch 0, every ``snapshot_every`` epochs, and the last epoch.
    ``callback(epoch, model, history)`` runs after each epoch; returning True stops.

    Reproducible: ``seed`` seeds torch, numpy and Python's ``random`` and the shuffling
    generator, so the same model initialisation + seed give identical histories and
    weights. (Build the model with ``seed=`` too.) ``seed=None`` leaves RNGs alone.

    KeyboardInterrupt stops training cleanly: a warning is issued and the result so far
    is returned with ``interrupted=True``. The model is left in eval mode.

    ``num_threads``: torch CPU threads during training; None = 1 on the CPU (see
    :class:`cpu_threads`; much faster for small models on a shared machine).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    with cpu_threads(num_threads, resolve_device(device) if device is not None else _device_of(model)):
        return _train(model, data, epochs=epochs, lr=lr, optimizer=optimizer, loss=loss,
                      batch_size=batch_size, snapshot_every=snapshot_every, seed=seed, device=device,
                      progress=progress, eval_every=eval_every, callback=callback, test_data=test_data,
                      weight_decay=weight_decay, momentum=momentum)


def _train(model, data, *, epochs, lr, optimizer, loss, batch_size, snapshot_every, seed, device,
           progress, eval_every, callback, test_data, weight_decay, momentum):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if snapshot_every is not None and (not isinstance(snapshot_every, (int, np.integer)) or snapshot_every < 1):
        raise ValueError(f"snapshot_every must be a positive integer or None, got {snapshot_every!r}")
    if not isinstance(eval_every, (int, np.integer)) or eval_every < 1:
        raise ValueError(f"eval_every must be a positive integer, got {eval_every!r}")
    if not (callable(loss) or loss in LOSSES):
        raise ValueError(f"loss must be one of {LOSSES} or a callable loss(output, y); got {loss!r}")
    from tqdm.auto import tqdm

    dev = resolve_device(device) if device is not None else _device_of(model)
    model.to(dev)
    coerced = _coerce_data(data)
    loader = None
    if isinstance(coerced[0], str):  # ("loader", DataLoader)
        loader = coerced[1]
        Xtr = ytr = None
        Xte, yte = (None, None) if test_data is None else (to_tensor(test_data[0], "test_data[0]"),
                                                           to_tensor(test_data[1], "test_data[1]"))
    else:
        Xtr, ytr, Xte, yte = coerced
        if test_data is not None:
            Xte, yte = to_tensor(test_data[0], "test_data[0]"), to_tensor(test_data[1], "test_data[1]")
        Xtr, ytr = Xtr.to(dev, torch.float32 if Xtr.is_floating_point() else None), ytr.to(dev)
        if len(Xtr) == 0:
            raise ValueError("data has no training samples")
    if Xte is not None:
        Xte, yte = Xte.to(dev, torch.float32 if Xte.is_floating_point() else None), yte.to(dev)

    gen = None
    if seed is not None:
        set_seed(seed)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay, momentum)

    hist = {k: [] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "time")}
    snaps: list = []
    t0 = time.perf_counter()

    def snapshot(epoch):
        snaps.append((epoch, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}))

    def log(epoch):
        if loader is not None and Xtr is None:
            tr_loss, tr_acc = _loader_eval(model, loader, loss, dev)
        else:
            tr_loss, tr_acc = evaluate(model, Xtr, ytr, loss, device=dev)
        te_loss, te_acc = (evaluate(model, Xte, yte, loss, device=dev) if Xte is not None
                           else (float("nan"), float("nan")))
        for k, v in zip(hist, (epoch, tr_loss, tr_acc, te_loss, te_acc, time.perf_counter() - t0)):
            hist[k].append(v)

    completed = 0
    interrupted = stopped_early = False
    bar = tqdm(total=epochs, desc="train", unit="epoch", disable=not progress)
    try:
        log(0)
        snapshot(0)
        for epoch in range(1, epochs + 1):
            model.train()
            if loader is not None:
                for b in loader:
                    xb, yb = b[0].to(dev), b[1].to(dev)
                    if xb.is_floating_point():
                        xb = xb.float()
                    opt.zero_grad(set_to_none=True)
                    _batch_loss(loss, model(xb), yb).backward()
                    opt.step()
            else:
                perm = torch.randperm(len(Xtr), generator=gen).to(dev)
                for i in range(0, len(Xtr), batch_size):
                    idx = perm[i:i + batch_size]
                    opt.zero_grad(set_to_none=True)
                    _batch_loss(loss, model(Xtr[idx]), ytr[idx]).backward()
                    opt.step()
            completed = epoch
            last = epoch == epochs
            if epoch % eval_every == 0 or last:
                log(epoch)
                post = {"loss": f"{hist['train_loss'][-1]:.4g}", "acc": f"{hist['train_acc'][-1]:.3f}"}
                if Xte is not None:
                    post["test_acc"] = f"{hist['test_acc'][-1]:.3f}"
                bar.set_postfix(post, refresh=False)
            if (snapshot_every is not None and epoch % snapshot_every == 0) or last:
                snapshot(epoch)
            bar.update(1)
            if callback is not None and callback(epoch, model, hist):
                stopped_early = True
                if hist["epoch"][-1] != epoch:
                    log(epoch)
                if snaps[-1][0] != epoch:
                    snapshot(epoch)
                break
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(f"training interrupted after {completed} complete epoch(s); returning the model as it "
                      "is now (the last snapshot is the last one taken)", RuntimeWarning, stacklevel=3)
    finally:
        bar.close()
        model.eval()
    cfg = dict(epochs=epochs, lr=lr, optimizer=optimizer if isinstance(optimizer, str) else repr(optimizer),
               loss=loss if isinstance(loss, str) else repr(loss), batch_size=int(batch_size),
               snapshot_every=snapshot_every, seed=seed, eval_every=eval_every, device=str(dev),
               epochs_completed=completed, stopped_early=stopped_early, num_threads=torch.get_num_threads())
    return TrainResult(model=model, history=hist, snapshots=snaps, interrupted=interrupted, config=cfg)


def _loader_eval(model, loader, loss, dev):
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    tot, correct, n, is_float = 0.0, 0, 0, False
    try:
        with torch.no_grad():
            for b in loader:
                xb, yb = b[0].to(dev), b[1].to(dev)
                if xb.is_floating_point():
                    xb = xb.float()
                out = model(xb)
                tot += (float(loss(out, yb)) * len(xb) if callable(loss)
                        else float(_per_sample_loss(loss, out, yb).sum()))
                is_float = yb.is_floating_point()
                if not is_float:
                    correct += int((out.argmax(1) == yb).sum())
                n += len(xb)
    finally:
        for m, mode in modes:
            m.training = mode
    return tot / max(n, 1), (correct / max(n, 1) if not is_float else float("nan"))


# --------------------------------------------------------------------------------------
# Vision zoo
# --------------------------------------------------------------------------------------
PRETRAINED = ("resnet18", "resnet50", "vgg16", "mobilenet_v3_small")


def _weights_enum(name, weights):
    import torchvision

    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {PRETRAINED}, got {name!r}")
    enum = torchvision.models.get_model_weights(name)
    if weights is None:
        return None
    if isinstance(weights, str):
        try:
            return enum[weights] if weights != "DEFAULT" else enum.DEFAULT
        except KeyError:
            raise ValueError(f"weights must be 'DEFAULT', None or one of {[w.name for w in enum]}; got {weights!r}") from None
    return weights


def pretrained_path(name: str, weights="DEFAULT") -> str:
    """Where torchvision's cache keeps the weight file of ``name``:
    ``$TORCH_HOME/hub/checkpoints/<file>`` (``~/.cache/torch`` by default)."""
    w = _weights_enum(name, weights)
    if w is None:
        raise ValueError("weights=None means random initialisation; there is no file")
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(w.url))


def load_pretrained(name: str, weights="DEFAULT", allow_download: bool | None = None,
                    progress: bool = True) -> nn.Module:
    """A torchvision ImageNet model (``resnet18``, ``resnet50``, ``vgg16``,
    ``mobilenet_v3_small``) in eval mode.

    Uses the weight file in torchvision's cache (:func:`pretrained_path`) when present.
    Otherwise downloads it if ``allow_download`` is True, or None and the environment
    variable ``NIFKIT_OFFLINE`` is not set; else (or when the download fails) raises
    ``FileNotFoundError`` naming the expected path and the fix. ``weights=None`` builds
    the architecture with random weights (no file needed). Preprocessing for the
    weights: ``torchvision.models.get_model_weights(name).DEFAULT.transforms()``.
    """
    import torchvision

    w = _weights_enum(name, weights)
    if w is None:
        return torchvision.models.get_model(name, weights=None).eval()
    path = pretrained_path(name, weights)
    if allow_download is None:
        allow_download = os.environ.get("NIFKIT_OFFLINE", "").strip().lower() not in {"1", "true", "yes", "on"}
    fix = (f"Put the file {os.path.basename(path)} there (copy it from a machine that has it, or download "
           f"{w.url}), or call load_pretrained({name!r}, allow_download=True) when online. "
           "TORCH_HOME moves the cache.")
    if not os.path.isfile(path) and not allow_download:
        raise FileNotFoundError(f"pretrained weights for {name} not found at {path}. {fix}")
    try:
        model = torchvision.models.get_model(name, weights=w, progress=progress)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        if os.path.isfile(path):
            raise
        raise FileNotFoundError(f"pretrained weights for {name} not found at {path} and the download failed "
                                f"({type(exc).__name__}: {exc}). {fix}") from exc
    return model.eval()
