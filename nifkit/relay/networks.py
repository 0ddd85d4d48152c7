"""The networks of the relay chapter: a classifier composed of one-vs-rest sub-networks
(so the true module of every class is known) and a control of the same shape trained
from scratch.

Hintze & Adami train ten ``784 -> 2 tanh -> 1 tanh`` networks (MSE to targets +-1,
Adam, learning rate 1e-3, until 98 % training accuracy), one per digit, and compose
them block-diagonally into one ``784 -> 20 tanh -> 10 tanh`` network whose hidden
neurons ``{h t, ..., h t + h - 1}`` form the module of class ``t``.

Here the ``K`` sub-networks are trained as ONE block-diagonal network (the output
weights are masked to the blocks, each output has its own loss, Adam is element-wise),
which is exactly ``K`` independent trainings sharing the mini-batch order; a block
stops (its weights are frozen) once its sub-network reaches the target accuracy.
Differences from the authors' code, by choice: mini-batches over the whole training set
with balanced class weights (positives and negatives weigh half each) instead of full
batches of 5,000 positives and 5,000 negatives; the balanced training accuracy is the
stopping criterion; off-block weights of the composed network are exactly 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..models import cpu_threads, evaluate, mlp, set_seed
from ..results import Result
from .._validation import checked

__all__ = ["OneVsRest", "train_one_vs_rest", "compose", "true_modules", "train_control", "ControlResult"]


def _xy(data, split="train"):
    if isinstance(data, Dataset):
        X, y = data.split(split)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        raise TypeError("data must be a nifkit.data.Dataset or an (X, y) pair")
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).float()
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()
    if X.ndim != 2:
        X = X.reshape(len(X), -1)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or inf; clean the data first")
    return X, y


@dataclass(repr=False)
class OneVsRest(Result):
    """``K`` trained one-vs-rest sub-networks ``n_in -> h tanh -> 1 tanh`` (stacked)."""

    W1: torch.Tensor  # (K*h, n_in)
    b1: torch.Tensor  # (K*h,)
    w2: torch.Tensor  # (K, h)   output weights of each sub-network
    b2: torch.Tensor  # (K,)
    n_hidden: int
    classes: list
    steps: np.ndarray  # optimizer steps each sub-network trained for
    train_accuracy: np.ndarray  # balanced training accuracy of each at the end
    reached: np.ndarray  # bool: reached the target

    def table(self) -> list[dict]:
        """One row per sub-network: its class, steps, balanced training accuracy, reached."""
        return [{"class": c, "steps": int(s), "train_accuracy": float(a), "reached": bool(r)}
                for c, s, a, r in zip(self.classes, self.steps.tolist(), self.train_accuracy.tolist(),
                                      self.reached.tolist())]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _init_uniform(shape, fan_in, gen):
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


@checked
def train_one_vs_rest(data, n_hidden: int = 2, *, target_accuracy: float = 0.98, lr: float = 1e-3,
                      batch_size: int = 64, max_epochs: int = 200, seed: int = 0,
                      num_threads: int | None = None) -> OneVsRest:
    """Train one ``n_in -> n_hidden tanh -> 1 tanh`` network per class (target +1 for the
    class, -1 otherwise; squared error, Adam) as one block-diagonal batch until each
    reaches ``target_accuracy`` balanced training accuracy (or ``max_epochs``)."""
    if not isinstance(n_hidden, (int, np.integer)) or n_hidden < 1:
        raise ValueError(f"n_hidden must be a positive integer, got {n_hidden!r}")
    if not 0.5 < target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must be in (0.5, 1], got {target_accuracy}")
    X, y = _xy(data)
    classes = sorted(torch.unique(y).tolist())
    if len(classes) < 2:
        raise ValueError("train_one_vs_rest needs at least two classes in the training labels")
    K, h, n_in = len(classes), int(n_hidden), X.shape[1]
    cls_t = torch.tensor(classes)
    T = (y[:, None] == cls_t[None, :]).float() * 2 - 1  # (N, K) targets +-1
    pos = (T > 0).float()
    n_pos = pos.sum(0)
    wts = pos * (0.5 / n_pos) + (1 - pos) * (0.5 / (len(y) - n_pos))  # balanced weights, sum 1 per column
    gen = torch.Generator().manual_seed(int(seed))
    W1 = _init_uniform((K * h, n_in), n_in, gen).requires_grad_()
    b1 = _init_uniform((K * h,), n_in, gen).requires_grad_()
    w2 = _init_uniform((K, h), h, gen).requires_grad_()
    b2 = _init_uniform((K,), h, gen).requires_grad_()
    params = [W1, b1, w2, b2]
    opt = torch.optim.Adam(params, lr=lr)
    active = torch.ones(K, dtype=torch.bool)
    steps = np.zeros(K, np.int64)
    N = len(y)

    def forward(xb):
        hid = torch.tanh(xb @ W1.T + b1).view(len(xb), K, h)
        return torch.tanh((hid * w2[None]).sum(-1) + b2)  # (n, K): each output sees its own block only

    def balanced_acc():
        with torch.no_grad():
            out = forward(X)
        ok = ((out > 0) == (T > 0)).float()
        return ((ok * wts).sum(0)).numpy()  # weights sum to 1 per class -> balanced accuracy

    acc = balanced_acc()
    with cpu_threads(num_threads):
        for epoch in range(max_epochs):  # loop over epochs
            active &= torch.from_numpy(acc < target_accuracy)
            if not active.any():
                break
            frozen = [p.detach().clone() for p in params]
            perm = torch.randperm(N, generator=gen)
            for s in range(0, N, batch_size):  # mini-batches
                idx = perm[s:s + batch_size]
                out = forward(X[idx])
                # per sub-network squared error, balanced weighting; summed over sub-networks
                loss = (((out - T[idx]) ** 2) * wts[idx] * (N / len(idx))).sum()
                opt.zero_grad(set_to_none=False)
                loss.backward()
                opt.step()
                with torch.no_grad():  # frozen sub-networks keep their weights exactly
                    fz = ~active
                    if fz.any():
                        rows = fz.repeat_interleave(h)
                        W1[rows] = frozen[0][rows]
                        b1[rows] = frozen[1][rows]
                        w2[fz] = frozen[2][fz]
                        b2[fz] = frozen[3][fz]
            steps += active.numpy() * -(-N // batch_size)
            acc = balanced_acc()
    return OneVsRest(W1=W1.detach(), b1=b1.detach(), w2=w2.detach(), b2=b2.detach(), n_hidden=h, classes=classes,
                     steps=steps, train_accuracy=acc, reached=acc >= target_accuracy,
                     settings={"lr": lr, "batch_size": batch_size, "target_accuracy": target_accuracy,
                               "max_epochs": max_epochs, "seed": seed, "loss": "balanced squared error, +-1"})


def compose(subnets: OneVsRest) -> nn.Sequential:
    """The composed ``n_in -> K*h tanh -> K tanh`` network (``nifkit.models.mlp``, layers
    ``fc1, act1, fc_out, act_out``) with block-diagonal output weights: output ``t``
    reads only the hidden neurons ``h t .. h t + h - 1`` of sub-network ``t``."""
    K, h = subnets.n_classes, subnets.n_hidden
    net = mlp([subnets.W1.shape[1], K * h, K], activation="tanh", out_activation="tanh", seed=0)
    W2 = torch.zeros(K, K * h)
    for t in range(K):  # loop over blocks
        W2[t, t * h:(t + 1) * h] = subnets.w2[t]
    with torch.no_grad():
        net.fc1.weight.copy_(subnets.W1)
        net.fc1.bias.copy_(subnets.b1)
        net.fc_out.weight.copy_(W2)
        net.fc_out.bias.copy_(subnets.b2)
    net.eval()
    return net


@checked
def true_modules(subnets_or_k, n_hidden: int | None = None) -> dict:
    """``{class index t: [h t, ..., h t + h - 1]}`` of a composed network."""
    if isinstance(subnets_or_k, OneVsRest):
        K, h = subnets_or_k.n_classes, subnets_or_k.n_hidden
    else:
        K, h = int(subnets_or_k), int(n_hidden or 2)
    return {t: list(range(t * h, (t + 1) * h)) for t in range(K)}


@dataclass(repr=False)
class ControlResult(Result):
    model: nn.Sequential
    epochs: int
    train_accuracy: float
    reached: bool


@checked
def train_control(data, n_hidden: int = 20, *, target_accuracy: float = 0.98, lr: float = 1e-3,
                  batch_size: int = 64, max_epochs: int = 100, seed: int = 0,
                  num_threads: int | None = None) -> ControlResult:
    """The control: an ``n_in -> n_hidden tanh -> K tanh`` network of the composed shape
    trained from scratch (squared error to targets +-1, Adam ``lr``), until
    ``target_accuracy`` (argmax) training accuracy or ``max_epochs``."""
    X, y = _xy(data)
    K = int(y.max()) + 1
    set_seed(seed)
    net = mlp([X.shape[1], n_hidden, K], activation="tanh", out_activation="tanh", seed=seed)
    T = torch.nn.functional.one_hot(y, K).float() * 2 - 1
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    acc, epoch = 0.0, 0
    with cpu_threads(num_threads):
        for epoch in range(1, max_epochs + 1):
            net.train()
            perm = torch.randperm(len(y), generator=gen)
            for s in range(0, len(y), batch_size):
                idx = perm[s:s + batch_size]
                loss = ((net(X[idx]) - T[idx]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            acc = evaluate(net, (X, y))[1]  # the one evaluation loop (eval mode, no_grad)
            if acc >= target_accuracy:
                break
    net.eval()
    return ControlResult(model=net, epochs=epoch, train_accuracy=acc, reached=acc >= target_accuracy)
