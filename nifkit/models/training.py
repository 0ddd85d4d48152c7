"""Training with history and snapshots, and evaluation.

:func:`train` trains any classifier on in-memory tensors (fast: one permutation per
epoch indexes the tensors, no DataLoader) or on a DataLoader, records a loss/accuracy
history and snapshots of the weights (epoch 0 = before training), and is reproducible
in its ``seed``. :func:`evaluate` is the one accuracy loop of the package.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .._validation import check_finite, resolve_device, to_tensor
from ..runtime import ModelState, Progress, cpu_threads, model_device, set_seed  # cpu_threads re-exported
from ..results import Result
from .._validation import checked

__all__ = ["train", "evaluate", "TrainResult", "LOSSES"]


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


@checked
def evaluate(model: nn.Module, data, loss="cross_entropy", *, split: str = "test", batch_size: int = 4096,
             device=None) -> tuple[float, float]:
    """``(loss per sample, accuracy)`` of ``model`` on ``data`` (an ``(X, y)`` pair, a
    Dataset's ``split`` or a DataLoader of ``(x, y)`` batches) in eval mode under
    ``no_grad``. The loss is the mean per-sample loss (for ``"mse_sum"`` the squared
    error summed over outputs, averaged over samples). Accuracy is the fraction of
    ``argmax(output) == y`` (NaN for float targets). The model's mode is restored."""
    from ..data import Dataset

    dev = resolve_device(device) if device is not None else _device_of(model)
    if isinstance(data, Dataset):
        data = data.split(split)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = to_tensor(data[0], "data[0]"), to_tensor(data[1], "data[1]")
        if X.ndim < 2:
            raise ValueError(f"data[0] must hold one row per sample, got shape {tuple(X.shape)}: one sample of "
                             f"{X.numel()} features or {X.numel()} samples of one feature? Pass X[None] or X[:, None]")
        if len(X) != len(y):
            raise ValueError(f"data holds {len(X)} inputs but {len(y)} targets; pass one target per input")
        batches = ((X[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(X), batch_size))
    elif isinstance(data, torch.utils.data.DataLoader):
        batches = data
    else:
        raise TypeError("data must be an (X, y) pair, a nifkit.data.Dataset or a DataLoader of (x, y) batches; "
                        f"got {type(data).__name__}")
    return _eval_batches(model, batches, loss, dev)


def _forward(model, xb):
    """``model(xb)``; inputs the model cannot take are named as such (torch's shape
    message would not say which argument is wrong)."""
    try:
        return model(xb)
    except RuntimeError as exc:
        if "shape" not in str(exc) and "size" not in str(exc):
            raise
        first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
        takes = f"; its first Linear layer takes {first.in_features} features" if first is not None else ""
        raise ValueError(f"data: the model cannot take inputs of shape {tuple(xb.shape)}{takes}. Check the number "
                         f"of features of data[0] against the model's input size (torch said: {exc})") from exc


def _check_targets(out, yb) -> None:
    """Class labels must index the model's outputs (torch would raise a bare IndexError)."""
    if yb.is_floating_point() or out.ndim != 2 or yb.numel() == 0 or yb.ndim != 1:
        return
    lo, hi = int(yb.min()), int(yb.max())
    if lo < 0 or hi >= out.shape[1]:
        raise ValueError(f"labels must lie in 0..{out.shape[1] - 1} (the model has {out.shape[1]} outputs); found "
                         f"{lo if lo < 0 else hi}. Relabel them (np.unique(y, return_inverse=True)[1]) or give the "
                         "model one output per class")


def _eval_batches(model, batches, loss, dev) -> tuple[float, float]:
    """The one evaluation loop: ``(loss per sample, accuracy)`` over ``(x, y)`` batches
    in eval mode under ``no_grad`` (accuracy NaN for float targets)."""
    tot, correct, n, is_float = 0.0, 0, 0, False
    dtype = model_device(model)[1]
    with ModelState(model, eval=True, no_grad=True):
        for b in batches:
            xb, yb = b[0].to(dev), b[1].to(dev)
            if xb.is_floating_point():
                xb = xb.to(dtype)  # float64 data on a float32 model, and the other way round
            out = _forward(model, xb)
            _check_targets(out, yb)
            tot += (float(loss(out, yb)) * len(xb) if callable(loss)
                    else float(_per_sample_loss(loss, out, yb).sum()))
            is_float = yb.is_floating_point()
            if not is_float:
                correct += int((out.argmax(1) == yb).sum())
            n += len(xb)
    if n == 0:
        raise ValueError("data holds no samples: evaluate needs at least one (x, y) pair")
    return tot / n, (correct / n if not is_float else float("nan"))


@dataclass(repr=False)
class TrainResult(Result):
    """What :func:`train` returns.

    ``history``: dict of equal-length lists ``epoch, train_loss, train_acc, test_loss,
    test_acc, time`` (epoch 0 = before training; test entries are NaN without test
    data). ``snapshots``: list of ``(epoch, state_dict)`` CPU copies. ``interrupted`` is
    True when training was stopped by KeyboardInterrupt (the model then holds the
    weights of the interrupted epoch; history and snapshots stop at the last complete
    one). A callback that returns True stops cleanly (``settings["stopped_early"]``).
    """

    model: nn.Module
    history: dict
    snapshots: list
    interrupted: bool = False

    repr_skip = ("settings", "notes", "snapshots")

    def table(self) -> list[dict]:
        """One row per epoch of ``history``."""
        return [dict(zip(self.history, row)) for row in zip(*self.history.values())]

    def repr_extra(self) -> dict:
        h = self.history
        return {"epochs": h["epoch"][-1], "train_acc": h["train_acc"][-1], "test_acc": h["test_acc"][-1],
                "snapshots": self.epochs_snapshotted} if h.get("epoch") else {}

    @property
    def epochs_snapshotted(self) -> list[int]:
        return [e for e, _ in self.snapshots]

    @property
    def epochs_trained(self) -> int:
        return int(self.settings.get("epochs_completed", 0))

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


def _device_of(model):
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """NaN/inf inputs would train to NaN weights and report an accuracy: refuse them."""
    if t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        check_finite(t.cpu().numpy(), name)
    return t


def _coerce_data(data):
    """-> (X_train, y_train, X_test, y_test) tensors, or ('loader', train, test)."""
    from ..data import Dataset

    if isinstance(data, Dataset):
        return (_finite(data.X_train, "data.X_train"), data.y_train,
                None if data.X_test is None else _finite(data.X_test, "data.X_test"), data.y_test)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4) and all(
            isinstance(d, (torch.Tensor, np.ndarray)) for d in data):
        ts = [_finite(to_tensor(d, f"data[{i}]"), f"data[{i}]") for i, d in enumerate(data)]
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


@checked
def train(model: nn.Module, data, *, epochs: int = 20, lr: float = 1e-3, optimizer="adam",
          loss="cross_entropy", batch_size: int = 64, snapshot_every: int | None = None,
          seed: int | None = 0, device=None, progress=False, eval_every: int = 1,
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
        settings = TrainSettings.checked(epochs=epochs, lr=lr, optimizer=optimizer, loss=loss, batch_size=batch_size,
                                         snapshot_every=snapshot_every, seed=seed, eval_every=eval_every,
                                         weight_decay=weight_decay, momentum=momentum)
        return _train(model, data, settings, device=device, progress=progress, callback=callback,
                      test_data=test_data)


@dataclass(frozen=True)
class TrainSettings:
    """The checked settings of one :func:`train` run (see its parameters)."""

    epochs: int
    lr: float
    optimizer: object
    loss: object
    batch_size: int
    snapshot_every: int | None
    seed: int | None
    eval_every: int
    weight_decay: float
    momentum: float

    @classmethod
    def checked(cls, **settings) -> "TrainSettings":
        """``ValueError`` naming the argument for bad counts or an unknown loss (the
        optimizer is checked when it is made)."""
        s = cls(**settings)
        if not isinstance(s.epochs, (int, np.integer)) or s.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {s.epochs!r}")
        if not isinstance(s.batch_size, (int, np.integer)) or s.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {s.batch_size!r}")
        if s.snapshot_every is not None and (not isinstance(s.snapshot_every, (int, np.integer))
                                             or s.snapshot_every < 1):
            raise ValueError(f"snapshot_every must be a positive integer or None, got {s.snapshot_every!r}")
        if not isinstance(s.eval_every, (int, np.integer)) or s.eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {s.eval_every!r}")
        if not (callable(s.loss) or s.loss in LOSSES):
            raise ValueError(f"loss must be one of {LOSSES} or a callable loss(output, y); got {s.loss!r}")
        return s

    def config(self, dev, completed: int, stopped_early: bool) -> dict:
        """``TrainResult.settings``: the settings (objects by their repr) and how the run went."""
        return dict(epochs=self.epochs, lr=self.lr,
                    optimizer=self.optimizer if isinstance(self.optimizer, str) else repr(self.optimizer),
                    loss=self.loss if isinstance(self.loss, str) else repr(self.loss),
                    batch_size=int(self.batch_size), snapshot_every=self.snapshot_every, seed=self.seed,
                    eval_every=self.eval_every, device=str(dev), epochs_completed=completed,
                    stopped_early=stopped_early, num_threads=torch.get_num_threads())


@dataclass
class _TrainData:
    """In-memory train (and test) tensors on the device, or a DataLoader (train) with
    optional test tensors."""

    X_train: torch.Tensor | None
    y_train: torch.Tensor | None
    X_test: torch.Tensor | None
    y_test: torch.Tensor | None
    loader: object = None


def _on(t: torch.Tensor, dev) -> torch.Tensor:
    """``t`` on ``dev``; float inputs as float32."""
    return t.to(dev, torch.float32 if t.is_floating_point() else None)


def _test_tensors(test_data):
    if test_data is None:
        return None, None
    return _finite(to_tensor(test_data[0], "test_data[0]"), "test_data[0]"), to_tensor(test_data[1], "test_data[1]")


def _training_data(data, test_data, dev) -> _TrainData:
    """``train``'s ``data`` and ``test_data`` checked and, when in memory, moved to ``dev``."""
    coerced = _coerce_data(data)
    if isinstance(coerced[0], str):  # ("loader", DataLoader)
        d = _TrainData(None, None, *_test_tensors(test_data), loader=coerced[1])
    else:
        d = _TrainData(*coerced)
        if test_data is not None:
            d.X_test, d.y_test = _test_tensors(test_data)
        d.X_train, d.y_train = _on(d.X_train, dev), d.y_train.to(dev)
        if len(d.X_train) == 0:
            raise ValueError("data has no training samples")
    if d.X_test is not None:
        d.X_test, d.y_test = _on(d.X_test, dev), d.y_test.to(dev)
    return d


class _RunLog:
    """History (loss and accuracy on the whole train and test sets, after an epoch, in
    eval mode) and CPU weight snapshots of one training run."""

    def __init__(self, model, data: _TrainData, loss, dev):
        self.model, self.data, self.loss, self.dev = model, data, loss, dev
        self.history = {k: [] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "time")}
        self.snapshots: list = []
        self.t0 = time.perf_counter()

    def snapshot(self, epoch):
        self.snapshots.append((epoch, {k: v.detach().to("cpu", copy=True)
                                       for k, v in self.model.state_dict().items()}))

    def log(self, epoch):
        d = self.data
        if d.loader is not None and d.X_train is None:
            tr_loss, tr_acc = _eval_batches(self.model, d.loader, self.loss, self.dev)
        else:
            tr_loss, tr_acc = evaluate(self.model, (d.X_train, d.y_train), self.loss, device=self.dev)
        te_loss, te_acc = (evaluate(self.model, (d.X_test, d.y_test), self.loss, device=self.dev)
                           if d.X_test is not None else (float("nan"), float("nan")))
        for k, v in zip(self.history, (epoch, tr_loss, tr_acc, te_loss, te_acc, time.perf_counter() - self.t0)):
            self.history[k].append(v)

    def complete(self, epoch):
        """Log and snapshot ``epoch`` unless done already (a run stopped early)."""
        if self.history["epoch"][-1] != epoch:
            self.log(epoch)
        if self.snapshots[-1][0] != epoch:
            self.snapshot(epoch)

    def postfix(self) -> dict:
        """The progress bar's last loss and accuracies."""
        h = self.history
        post = {"loss": f"{h['train_loss'][-1]:.4g}", "acc": f"{h['train_acc'][-1]:.3f}"}
        if self.data.X_test is not None:
            post["test_acc"] = f"{h['test_acc'][-1]:.3f}"
        return post


def _batches(d: _TrainData, batch_size, gen, dev, dtype=torch.float32):
    """One epoch's ``(x, y)`` batches: the loader's, or one seeded permutation of the
    tensors; float inputs in the model's ``dtype``."""
    if d.loader is not None:
        for b in d.loader:
            xb, yb = b[0].to(dev), b[1].to(dev)
            yield (xb.to(dtype) if xb.is_floating_point() else xb), yb
        return
    perm = torch.randperm(len(d.X_train), generator=gen).to(dev)
    for i in range(0, len(d.X_train), batch_size):
        idx = perm[i:i + batch_size]
        yield d.X_train[idx], d.y_train[idx]


def _train(model, data, s: TrainSettings, *, device, progress, callback, test_data):
    dev = resolve_device(device) if device is not None else _device_of(model)
    model.to(dev)
    d = _training_data(data, test_data, dev)
    dtype = model_device(model)[1]  # a float64 model trains on float64 inputs
    if d.X_train is not None and d.X_train.is_floating_point():
        d.X_train = d.X_train.to(dtype)
    if d.X_test is not None and d.X_test.is_floating_point():
        d.X_test = d.X_test.to(dtype)
    gen = None
    if s.seed is not None:
        set_seed(s.seed)
        gen = torch.Generator(device="cpu").manual_seed(int(s.seed))
    opt = _make_optimizer(s.optimizer, model.parameters(), s.lr, s.weight_decay, s.momentum)
    run = _RunLog(model, d, s.loss, dev)
    completed = 0
    interrupted = stopped_early = False
    bar = Progress(progress, total=s.epochs, what="train", unit="epoch", leave=True)
    try:
        run.log(0)
        run.snapshot(0)
        for epoch in range(1, s.epochs + 1):
            model.train()
            for xb, yb in _batches(d, s.batch_size, gen, dev, dtype):
                opt.zero_grad(set_to_none=True)
                _batch_loss(s.loss, model(xb), yb).backward()
                opt.step()
            completed = epoch
            last = epoch == s.epochs
            if epoch % s.eval_every == 0 or last:
                run.log(epoch)
                bar.postfix = run.postfix()
            if (s.snapshot_every is not None and epoch % s.snapshot_every == 0) or last:
                run.snapshot(epoch)
            bar.update()
            if bar.bar is not None:
                bar.bar.set_postfix(bar.postfix, refresh=True)
            if callback is not None and callback(epoch, model, run.history):
                stopped_early = True
                run.complete(epoch)
                break
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(f"training interrupted after {completed} complete epoch(s); returning the model as it "
                      "is now (the last snapshot is the last one taken)", RuntimeWarning, stacklevel=3)
    finally:
        bar.close()
        model.eval()
    return TrainResult(model=model, history=run.history, snapshots=run.snapshots, interrupted=interrupted,
                       settings=s.config(dev, completed, stopped_early))
