r"""Packed keys: the joint state of a *group* of units as one int64, counted sparsely.

* :func:`mixed_radix` / :func:`row_keys` - the one mixed-radix packer
  (``key = sum_i code_i * prod_{k<i} card_k``), for columns of different cardinalities;
  also used by :func:`nifkit.info.pack` and the group measures of :mod:`nifkit.info.groups`;
* :func:`pack_keys` / :func:`group_keys` - ``sum_i code_i * bins**i`` of every row of
  codes (or of each group of units), refused past :data:`nifkit.info.kernels.MAX_KEY_BITS`;
* :class:`KeyCounts` - sorted keys and their counts: ``update``, ``merge``,
  :meth:`KeyCounts.grouped`, :meth:`KeyCounts.entropy` and
  :meth:`KeyCounts.reduce_across_processes` (an all-gather: the key sets differ), the
  counts behind vector EI and group entropies.

Part of the counting layer (:mod:`nifkit.info.counts` for marginal, pair and label
counts): it imports the kernels and counts modules below it and no measure module.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .counts import codes_tensor, dist_ready
from .kernels import MAX_KEY_BITS, xlog2x
from .._validation import checked

__all__ = ["mixed_radix", "row_keys", "pack_keys", "group_keys", "group_counts", "KeyCounts", "entropy_from_keys"]


def mixed_radix(card) -> np.ndarray | None:
    """Place values ``(m,)`` int64 of a mixed-radix key of ``m`` columns with ``card[i]``
    values each: ``radix[i] = prod_{k<i} card[k]``, so ``key = codes @ radix`` is unique
    per joint state. ``None`` when the joint space needs :data:`MAX_KEY_BITS` (62) bits or more."""
    c = np.maximum(np.asarray(card, dtype=np.int64).reshape(-1), 1)
    if float(np.sum(np.log2(c.astype(np.float64)))) >= MAX_KEY_BITS:
        return None
    return np.concatenate([[1], np.cumprod(c[:-1])]).astype(np.int64) if len(c) else np.zeros(0, np.int64)


def row_keys(codes, card=None) -> np.ndarray | None:
    """Mixed-radix int64 key ``(samples,)`` of each row of integer ``codes (samples, m)``
    (numpy), with ``card`` values per column (default: each column's maximum + 1);
    ``None`` when the joint space does not fit :data:`MAX_KEY_BITS` bits (then count unique rows). Below
    2^53 the product runs in float64 BLAS, which is exact there (numpy has no integer
    BLAS)."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must be (samples, columns), got shape {c.shape}")
    if card is None:
        card = c.max(axis=0) + 1 if c.size else np.ones(c.shape[1], np.int64)
    radix = mixed_radix(card)
    if radix is None:
        return None
    if c.shape[1] == 0:
        return np.zeros(len(c), np.int64)
    if int(radix[-1]) * int(np.max(card)) < 2**53:
        return (c.astype(np.float64) @ radix.astype(np.float64)).astype(np.int64)
    return c.astype(np.int64) @ radix


@checked
def pack_keys(codes, n_bins: int) -> torch.Tensor:
    """Mixed-radix int64 key of each row of ``codes (samples, units)``:
    ``sum_i codes[:, i] * n_bins**i``. The joint state space ``n_bins**units`` must fit
    :data:`MAX_KEY_BITS` bits (``ValueError`` otherwise)."""
    t = codes_tensor(codes, "codes", n_bins)
    radix = mixed_radix(np.full(t.shape[1], max(int(n_bins), 2)))
    if radix is None:
        bits = t.shape[1] * math.log2(max(int(n_bins), 2))
        raise ValueError(f"the joint state space of {t.shape[1]} units with {n_bins} bins is 2^{bits:.0f} states, "
                         f"more than a {MAX_KEY_BITS}-bit key holds; pack smaller groups of units")
    powers = torch.from_numpy(radix).to(t.device)
    if t.shape[1] == 0:
        return torch.zeros(len(t), dtype=torch.int64, device=t.device)
    if int(powers[-1]) < 2**45:  # bins <= 256, so every key < 2**53: one float64 product is exact
        return torch.mv(t.to(torch.float64), powers.to(torch.float64)).to(torch.int64)
    return (t.to(torch.int64) * powers).sum(1)


@checked
def group_keys(codes, groups, n_bins: int) -> list:
    """One key tensor per group of unit indices (see :func:`pack_keys`)."""
    t = codes_tensor(codes, "codes", n_bins)
    out = []
    for g in groups:  # loop over groups (each one vectorised over samples)
        idx = np.asarray(g, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= t.shape[1]):
            raise ValueError(f"groups hold unit indices outside 0..{t.shape[1] - 1}: {idx.tolist()}")
        out.append(pack_keys(t[:, torch.from_numpy(idx)], n_bins))
    return out


@checked
def group_counts(codes, groups, n_bins: int) -> list:
    """A :class:`KeyCounts` of the joint states of each group of units."""
    return [KeyCounts().update(k) for k in group_keys(codes, groups, n_bins)]


def entropy_from_keys(counts) -> float:
    """Plug-in entropy (bits) of a :class:`KeyCounts` (or a 1-D tensor of counts)."""
    c = counts.counts if isinstance(counts, KeyCounts) else torch.as_tensor(counts)
    c = c.to(torch.float64)
    n = float(c.sum())
    if n <= 0:
        return 0.0
    return max(0.0, math.log2(n) - float(xlog2x(c).sum()) / n)



class KeyCounts:
    """Sparse counts of int64 keys (joint states of a group of units): sorted
    ``keys`` and their ``counts``. ``update`` adds raw keys, ``merge`` another table,
    :meth:`grouped` maps keys (e.g. ``key // k`` for the first part of a packed pair)
    and re-counts, :meth:`entropy` is the plug-in entropy in bits."""

    def __init__(self):
        self.keys = torch.zeros(0, dtype=torch.int64)
        self.counts = torch.zeros(0, dtype=torch.int64)
        self.n = 0

    def update(self, keys) -> "KeyCounts":
        k = torch.as_tensor(keys).reshape(-1)
        if k.dtype != torch.int64:
            k = k.to(torch.int64)
        u, c = _unique_counts(k)
        return self._add(u, c)

    def _add(self, keys, counts) -> "KeyCounts":
        if len(self.keys) == 0:
            self.keys, self.counts = keys.clone(), counts.clone().to(torch.int64)
        else:
            both = torch.cat([self.keys.to(keys.device), keys])
            u, inv = _unique_inverse(both)
            tot = torch.zeros(len(u), dtype=torch.int64, device=keys.device)
            tot.index_add_(0, inv, torch.cat([self.counts.to(keys.device), counts.to(torch.int64)]))
            self.keys, self.counts = u, tot
        self.n += int(counts.sum())
        return self

    def merge(self, other: "KeyCounts") -> "KeyCounts":
        if not isinstance(other, KeyCounts):
            raise TypeError(f"cannot merge a {type(other).__name__} into a KeyCounts")
        if len(other.keys):
            self._add(other.keys, other.counts)
        return self

    def grouped(self, fn) -> "KeyCounts":
        """A new table counting ``fn(keys)`` (e.g. ``lambda k: k // k_out``)."""
        out = KeyCounts()
        u, inv = _unique_inverse(fn(self.keys))
        tot = torch.zeros(len(u), dtype=torch.int64, device=self.keys.device).index_add_(0, inv, self.counts)
        out.keys, out.counts, out.n = u, tot, self.n
        return out

    def entropy(self) -> float:
        return entropy_from_keys(self)

    def reduce_across_processes(self, group=None) -> "KeyCounts":
        """Merge the tables of every process (an all-gather; the key sets differ)."""
        if not dist_ready():
            return self
        import torch.distributed as dist

        parts = [None] * dist.get_world_size(group)
        dist.all_gather_object(parts, (self.keys.cpu().numpy(), self.counts.cpu().numpy()), group=group)
        dev = self.keys.device
        merged = KeyCounts()
        for k, c in parts:  # loop over processes
            merged._add(torch.from_numpy(k).to(dev), torch.from_numpy(c).to(dev))
        self.keys, self.counts, self.n = merged.keys, merged.counts, merged.n
        return self

    def __len__(self):
        return len(self.keys)


def _unique_counts(keys):
    """Distinct values and their counts (numpy's sort is much faster than torch's on CPUs)."""
    if keys.device.type == "cpu":
        k, c = np.unique(keys.numpy(), return_counts=True)
        return torch.from_numpy(k), torch.from_numpy(c.astype(np.int64))
    return torch.unique(keys, return_counts=True)


def _unique_inverse(keys):
    if keys.device.type == "cpu":
        k, inv = np.unique(keys.numpy(), return_inverse=True)
        return torch.from_numpy(k), torch.from_numpy(inv.reshape(-1).astype(np.int64))
    return torch.unique(keys, return_inverse=True)
