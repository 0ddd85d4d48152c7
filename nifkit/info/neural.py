r"""Donsker–Varadhan (MINE-style) neural MI estimator, the NIF paper's estimator.

The Donsker–Varadhan representation of the KL divergence gives, for any critic
function :math:`T`,

.. math::

    I(X;Z) \ge \mathbb{E}_{P_{XZ}}[T] - \log \mathbb{E}_{P_X \otimes P_Z}[e^{T}],

with equality at :math:`T^* = \log \frac{dP_{XZ}}{dP_X \otimes P_Z} + c`. A small MLP
critic is trained to maximise the bound on minibatches; samples of the product of
marginals come from pairing each ``x`` with the ``z`` of another, random sample.

Many pairs at once: :func:`dv_mi_pairs` trains one critic per pair, but all critics
live in one batched network (weights of shape ``(pairs, in, out)`` applied with
``torch.baddbmm``), so estimating every edge of a small network is one training run,
not a Python loop of trainings. Adam's updates are element-wise, so the critics do
not interact. Inputs are standardised per column (MI is invariant to that).

The final estimate evaluates the bound on all samples with ``n_eval_shuffles``
independent pairings for the marginal term. Estimates are in bits. Like every DV
estimate it is a noisy lower bound in expectation; see the primer chapter.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..runtime import Progress, with_thread_policy
from ..config import DEFAULT_MEMORY_BUDGET
from .._validation import as_2d, check_int, check_memory_budget, check_number, check_pairs, check_seed, resolve_device
from .kernels import LN2

__all__ = ["dv_mi", "dv_mi_pairs", "BatchedCritic"]


class BatchedCritic(torch.nn.Module):
    """``pairs`` independent MLP critics ``R^d -> R`` evaluated in one batched pass."""

    def __init__(self, pairs: int, in_dim: int, hidden: int = 32, generator=None):
        super().__init__()

        def init(fan_in, shape):
            bound = 1.0 / math.sqrt(fan_in)
            return torch.nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)

        self.w1 = init(in_dim, (pairs, in_dim, hidden))
        self.b1 = init(in_dim, (pairs, 1, hidden))
        self.w2 = init(hidden, (pairs, hidden, hidden))
        self.b2 = init(hidden, (pairs, 1, hidden))
        self.w3 = init(hidden, (pairs, hidden, 1))
        self.b3 = init(hidden, (pairs, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z``: ``(pairs, batch, in_dim)`` -> ``(pairs, batch)``."""
        h = torch.relu(torch.baddbmm(self.b1, z, self.w1))
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        return torch.baddbmm(self.b3, h, self.w3).squeeze(-1)


def _dv_bound(t_joint: torch.Tensor, t_marg: torch.Tensor) -> torch.Tensor:
    """Per-pair DV bound in nats: mean T_joint - log mean exp T_marg."""
    n = t_marg.shape[-1]
    return t_joint.mean(-1) - (torch.logsumexp(t_marg, dim=-1) - math.log(n))


def _standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column, computed safely for any finite input and
    returned as float32: columns are first divided by their largest magnitude (in
    float64), so squares cannot overflow even for values near the float64 limit, and the
    float32 cast happens only after standardising (values beyond ~3e38 used to become
    inf there). MI is invariant to both scalings. Constant columns become 0."""
    x = np.array(x, dtype=np.float64)  # one float64 copy, then in place (same arithmetic)
    scale = np.abs(x).max(axis=0) if len(x) else np.ones(x.shape[1])
    x /= np.where(scale > 0, scale, 1.0)
    sd = x.std(axis=0)
    x -= x.mean(axis=0)
    x /= np.where(sd > 0, sd, 1.0)
    return x.astype(np.float32)


def _fit_dv(xs: torch.Tensor, ys: torch.Tensor, *, critic, hidden, steps, batch_size, lr, n_eval_shuffles, gen,
            bar, budget) -> torch.Tensor:
    """Train the ``P`` critics of ``critic`` on ``xs (P, n, dx)`` / ``ys (P, n, dy)``;
    DV bounds in nats (the final pass over all samples in chunks of rows within ``budget``)."""
    P, n, _ = xs.shape
    dev = xs.device
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    bs = min(batch_size, n)
    for _ in range(steps):
        idx = torch.randint(0, n, (bs,), generator=gen).to(dev)
        idx2 = torch.randint(0, n, (bs,), generator=gen).to(dev)
        joint = torch.cat([xs[:, idx], ys[:, idx]], dim=-1)
        marg = torch.cat([xs[:, idx], ys[:, idx2]], dim=-1)
        loss = -_dv_bound(critic(joint), critic(marg)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
    # a chunk's forward: its inputs, two hidden layers before and after the ReLU, in float32
    rows = int(max(1, budget // 2 // (P * 4 * (xs.shape[2] + ys.shape[2] + 4 * hidden))))

    def t_of(y):  # the critic on every sample, in chunks of rows
        t = torch.empty(P, n, device=dev)
        for r in range(0, n, rows):
            t[:, r:r + rows] = critic(torch.cat([xs[:, r:r + rows], y[:, r:r + rows]], dim=-1))
        return t

    with torch.no_grad():
        t_joint = t_of(ys)
        est = torch.zeros(P, dtype=torch.float64, device=dev)
        for _ in range(n_eval_shuffles):
            perm = torch.randperm(n, generator=gen).to(dev)
            est += _dv_bound(t_joint, t_of(ys[:, perm])).double()
    return est / n_eval_shuffles


def _defaults(kwargs):
    opts = dict(hidden=32, steps=800, batch_size=512, lr=3e-3, n_eval_shuffles=4, seed=0, device=None,
                progress=False, memory_budget=DEFAULT_MEMORY_BUDGET)
    unknown = set(kwargs) - set(opts)
    if unknown:
        raise TypeError(f"unknown DV options {sorted(unknown)}; valid: {sorted(opts)}")
    opts.update(kwargs)
    # every option checked here, before any work: names in the messages are the options'
    opts["hidden"] = check_int(opts["hidden"], "hidden", minimum=1)
    opts["steps"] = check_int(opts["steps"], "steps", minimum=1)
    opts["batch_size"] = check_int(opts["batch_size"], "batch_size", minimum=2)
    opts["n_eval_shuffles"] = check_int(opts["n_eval_shuffles"], "n_eval_shuffles", minimum=1)
    opts["lr"] = check_number(opts["lr"], "lr", minimum=0, strict_min=True)
    opts["seed"] = check_seed(opts["seed"])  # numpy integers too: torch's manual_seed refused them
    opts["device"] = resolve_device(opts["device"])
    opts["memory_budget"] = check_memory_budget(opts["memory_budget"])
    return opts


def _inputs(x, y, nx, ny):
    """Standardised float32 ``(n, d)`` arrays, checked for matching and sufficient samples."""
    x = as_2d(x, nx)
    y = as_2d(y, ny)
    if len(x) != len(y):
        raise ValueError(f"{nx} and {ny} must have the same number of samples, got {len(x)} and {len(y)}")
    if len(x) < 16:
        raise ValueError(f"too few samples in {nx} and {ny}: the DV estimator needs at least 16 samples, "
                         f"got {len(x)}")
    return _standardise(x), _standardise(y)


@with_thread_policy
def dv_mi_pairs(a, b, pairs=None, **options) -> np.ndarray:
    """DV estimates (bits) of ``I(a[:, i]; b[:, j])`` for each ``(i, j)`` in ``pairs``.

    ``a``: ``(n, ma)``, ``b``: ``(n, mb)``; ``pairs``: ``(P, 2)`` integer indices, or
    ``None`` for all ``ma * mb`` pairs (row-major). All critics train together.

    Options: ``hidden=32`` (critic width), ``steps=800``, ``batch_size=512``,
    ``lr=3e-3`` (Adam), ``n_eval_shuffles=4``, ``seed=0``, ``device=None``,
    ``progress=False`` (True for a bar, or a callable ``progress(done, total, what)``
    after each training step), ``memory_budget=DEFAULT_MEMORY_BUDGET`` (bytes: the pairs
    train in blocks whose critics, Adam state, columns and batches fit it, each block
    replaying the same initial weights and random draws; the final pass over all samples
    runs in chunks of rows. One block gives the values of one batched run bit for bit;
    smaller blocks agree to float32 rounding grown by training, ~1e-4 bits in a test).
    """
    o = _defaults(options)
    a, b = _inputs(a, b, "a", "b")
    if pairs is None:
        ii, jj = np.meshgrid(np.arange(a.shape[1]), np.arange(b.shape[1]), indexing="ij")
        pairs = np.stack([ii.ravel(), jj.ravel()], axis=1)
    pairs = check_pairs(pairs, "pairs", a.shape[1], b.shape[1])
    if len(pairs) == 0:
        return np.zeros(0)
    dev = o.pop("device")
    gen = torch.Generator().manual_seed(o.pop("seed"))
    budget = o.pop("memory_budget")
    P, n = len(pairs), len(a)
    full = BatchedCritic(P, 2, o["hidden"], generator=gen)  # every critic drawn first: values do not depend
    after_init = gen.get_state()                            # on the blocks, which replay the same draws
    pb = int(max(1, min(P, budget // _pair_bytes(n, 2, o["hidden"], min(o["batch_size"], n)))))
    out = np.empty(P)
    progress = o.pop("progress")
    with Progress(progress, o["steps"] * math.ceil(P / pb), f"DV critics ({P})", unit="step") as bar:
        for s in range(0, P, pb):  # blocks of pairs: their columns, critics and Adam state
            gen.set_state(after_init)
            xs = torch.from_numpy(a[:, pairs[s:s + pb, 0]].T.copy()).to(dev)[..., None]  # (pb, n, 1)
            ys = torch.from_numpy(b[:, pairs[s:s + pb, 1]].T.copy()).to(dev)[..., None]
            critic = BatchedCritic(len(xs), 2, o["hidden"])
            critic.load_state_dict({k: v[s:s + pb] for k, v in full.state_dict().items()})
            out[s:s + pb] = (_fit_dv(xs, ys, gen=gen, critic=critic.to(dev), bar=bar, budget=budget, **o)
                             / LN2).cpu().numpy()
    return out


def _pair_bytes(n, d, hidden, bs):
    """Bytes one pair's critic needs: a training step (joint and marginal batches through
    two hidden layers, kept for the backward pass, and their gradients), the critic with
    its gradient and Adam's two moments, its two columns and the final bound's values
    (``t`` of every sample, joint and marginal)."""
    step = 2 * 3 * bs * (d + 2 * hidden) * 4
    params = 4 * 4 * (d * hidden + hidden * hidden + 3 * hidden + 1)
    return step + params + 4 * 4 * n


@with_thread_policy
def dv_mi(x, y, **options) -> float:
    """DV estimate (bits) of ``I(X;Y)`` for one pair of (possibly multi-dimensional)
    variables ``x (n,) | (n, dx)``, ``y (n,) | (n, dy)``. Options as :func:`dv_mi_pairs`."""
    o = _defaults(options)
    x, y = _inputs(x, y, "x", "y")
    dev = o.pop("device")
    gen = torch.Generator().manual_seed(o.pop("seed"))
    xs = torch.from_numpy(x).to(dev)[None]
    ys = torch.from_numpy(y).to(dev)[None]
    critic = BatchedCritic(1, xs.shape[2] + ys.shape[2], o["hidden"], generator=gen).to(dev)
    budget, progress = o.pop("memory_budget"), o.pop("progress")
    with Progress(progress, o["steps"], "DV critic", unit="step") as bar:
        return float(_fit_dv(xs, ys, gen=gen, critic=critic, bar=bar, budget=budget, **o)[0] / LN2)
