r"""Counting: the one family of histograms every measure is computed from.

Binned activity is turned into counts here, and only here:

* :func:`marginal_counts` - ``(units, bins)``: how often each unit takes each code;
* :func:`pair_counts` - ``(units_a, bins_a, units_b, bins_b)``: the joint table of every
  pair of units, one one-hot matrix product ``O_a^T O_b`` (the counting kernel of
  :func:`nifkit.info.pairwise_mi`);
* :func:`label_counts` - ``(units, bins, classes)``: each unit's code against a label,
  one ``bincount`` over ``(unit * bins + code) * classes + label``;
* :func:`pack_keys` / :func:`group_counts` - the joint state of a *group* of units as
  one mixed-radix int64 key ``sum_i code_i * bins**i``, counted sparsely
  (:class:`KeyCounts`): the counts behind vector EI and group entropies;
  :func:`row_keys` / :func:`mixed_radix` are the one packer behind it, for columns of
  different cardinalities (``key = sum_i code_i * prod_{k<i} card_k``), also used by
  :func:`nifkit.info.pack` and the group measures of :mod:`nifkit.info.groups`.

Each has a mergeable accumulator (:class:`PairCounts`, :class:`LabelCounts`,
:class:`KeyCounts`, :class:`MarginalCounts`): ``update`` adds a batch, ``merge`` adds
another accumulator over the same units and bins, and :meth:`reduce_across_processes`
sums the counts of every process of a ``torch.distributed`` job (gloo on CPUs, NCCL on
GPUs), so a measure run under ``torchrun`` on shards of the data gives the numbers of
one process on all of it. Counts are exact integers (stored as int64 or float64, exact
below 2**53).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import as_codes, to_numpy
from .pairwise import inner_counts, marginal_bin_counts, mi_from_counts  # the counting kernel (same package)

__all__ = [
    "marginal_counts", "pair_counts", "label_counts", "pack_keys", "group_keys", "group_counts", "mixed_radix",
    "row_keys",
    "MarginalCounts", "PairCounts", "LabelCounts", "KeyCounts", "reduce_across_processes", "entropy_from_keys",
]

LN2 = math.log(2.0)
_MAX_KEY_BITS = 62


# ======================================================================================
# Inputs
# ======================================================================================
def _codes_tensor(codes, name: str, n_bins: int | None = None) -> torch.Tensor:
    """Codes ``(samples, units)`` as a uint8 (bins <= 256) or int64 tensor, checked."""
    if isinstance(codes, torch.Tensor) and codes.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32,
                                                           torch.int64):
        t = codes.detach()
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2:
            raise ValueError(f"{name} must be 1-D (samples,) or 2-D (samples, units); got shape {tuple(t.shape)}")
        if t.numel() and int(t.min()) < 0:
            raise ValueError(f"{name} must be non-negative integer codes; found {int(t.min())}")
    else:
        arr = as_codes(codes, name)
        t = torch.from_numpy(arr.reshape(len(arr), -1))
    if n_bins is not None:
        _check_bins(n_bins, "n_bins")
        if t.numel() and int(t.max()) >= n_bins:
            raise ValueError(f"{name} has code {int(t.max())} but n_bins={n_bins}; codes must lie in 0..n_bins-1")
        if n_bins <= 256 and t.dtype != torch.uint8:
            t = t.to(torch.uint8)
    return t


def _check_bins(n_bins, name):
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"{name} must be a positive integer, got {n_bins!r}")
    return int(n_bins)


# ======================================================================================
# One-shot counts
# ======================================================================================
def marginal_counts(codes, n_bins: int) -> torch.Tensor:
    """``(units, n_bins)`` float64 counts of each unit's codes, one ``bincount``."""
    t = _codes_tensor(codes, "codes", n_bins)
    return marginal_bin_counts(t, int(n_bins))


def pair_counts(a, b, n_bins_a: int, n_bins_b: int | None = None) -> torch.Tensor:
    """Joint counts ``(units_a, n_bins_a, units_b, n_bins_b)`` (float64, exact) of
    every pair of a unit of ``a (samples, units_a)`` and one of ``b``.

    One one-hot product ``O_a^T O_b`` counts all pairs at once; only the first
    ``n_bins - 1`` bins of each side go into the product (a quarter less work with 8
    bins): each sample has one code per unit, so the last row and column of every
    pair's table follow from the marginal counts."""
    n_bins_b = n_bins_a if n_bins_b is None else n_bins_b
    xa = _codes_tensor(a, "a", n_bins_a)
    xb = _codes_tensor(b, "b", n_bins_b)
    if len(xa) != len(xb):
        raise ValueError(f"a and b must have the same number of samples, got {len(xa)} and {len(xb)}")
    bi, bo = int(n_bins_a), int(n_bins_b)
    if bi < 2 or bo < 2:
        raise ValueError(f"pair counts need at least 2 bins per side, got {bi} and {bo}")
    n_in, n_out = xa.shape[1], xb.shape[1]
    inner = inner_counts(xa, xb, bi, bo).to(torch.float64)  # (n_in, bi-1, n_out, bo-1)
    cin = marginal_bin_counts(xa, bi)
    cout = marginal_bin_counts(xb, bo)
    joint = torch.empty(n_in, bi, n_out, bo, dtype=torch.float64, device=xa.device)
    joint[:, :-1, :, :-1] = inner
    joint[:, :-1, :, -1] = cin[:, :-1, None] - inner.sum(3)
    joint[:, -1, :, :] = cout[None, :, :] - joint[:, :-1, :, :].sum(1)
    return joint


def label_counts(codes, labels, n_bins: int, n_classes: int, chunk_bytes: int = 64 * 2**20,
                 device=None) -> np.ndarray:
    """Joint histogram ``(units, n_bins, n_classes)`` (int64) of every unit's code with
    the label, one ``bincount`` over ``(unit * bins + code) * classes + label`` per chunk
    of samples (at most ``chunk_bytes`` of indices); on ``device`` (torch) when given,
    else numpy on the CPU. Returns a numpy array."""
    c = to_numpy(codes, "codes")
    if c.ndim != 2:
        raise ValueError(f"codes must be (samples, units), got shape {c.shape}")
    n, m = c.shape
    y = as_codes(labels, "labels")
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be 1-D with one class per sample ({n}), got shape {y.shape}")
    n_bins, n_classes = _check_bins(n_bins, "n_bins"), _check_bins(n_classes, "n_classes")
    if n and y.max() >= n_classes:
        raise ValueError(f"labels go up to {int(y.max())} but n_classes={n_classes}")
    size = m * n_bins * n_classes
    rows = max(1, int(chunk_bytes) // max(1, 8 * m))
    if n and (c.min() < 0 or c.max() >= n_bins):
        raise ValueError(f"codes must lie in 0..{n_bins - 1}")
    if device is not None and torch.device(device).type != "cpu":
        dev = torch.device(device)
        tbase = (torch.arange(m, dtype=torch.int64, device=dev) * n_bins)[None, :]
        ty = torch.from_numpy(y).to(dev)
        tout = torch.zeros(size, dtype=torch.int64, device=dev)
        for s in range(0, n, rows):  # loop over chunks of samples
            cc = torch.from_numpy(np.ascontiguousarray(c[s:s + rows])).to(dev, torch.int64)
            tout += torch.bincount(((tbase + cc) * n_classes + ty[s:s + rows, None]).reshape(-1), minlength=size)
        return tout.cpu().numpy().reshape(m, n_bins, n_classes)
    base = (np.arange(m, dtype=np.int64) * n_bins)[None, :]
    out = np.zeros(size, dtype=np.int64)
    for s in range(0, n, rows):  # loop over chunks of samples
        cc = c[s:s + rows].astype(np.int64)
        if cc.size and (cc.min() < 0 or cc.max() >= n_bins):
            raise ValueError(f"codes must lie in 0..{n_bins - 1}")
        idx = (base + cc) * n_classes + y[s:s + rows, None]
        out += np.bincount(idx.ravel(), minlength=size)
    return out.reshape(m, n_bins, n_classes)


def mixed_radix(card) -> np.ndarray | None:
    """Place values ``(m,)`` int64 of a mixed-radix key of ``m`` columns with ``card[i]``
    values each: ``radix[i] = prod_{k<i} card[k]``, so ``key = codes @ radix`` is unique
    per joint state. ``None`` when the joint space needs 62 bits or more."""
    c = np.maximum(np.asarray(card, dtype=np.int64).reshape(-1), 1)
    if float(np.sum(np.log2(c.astype(np.float64)))) >= _MAX_KEY_BITS:
        return None
    return np.concatenate([[1], np.cumprod(c[:-1])]).astype(np.int64) if len(c) else np.zeros(0, np.int64)


def row_keys(codes, card=None) -> np.ndarray | None:
    """Mixed-radix int64 key ``(samples,)`` of each row of integer ``codes (samples, m)``
    (numpy), with ``card`` values per column (default: each column's maximum + 1);
    ``None`` when the joint space does not fit 62 bits (then count unique rows). Below
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


def pack_keys(codes, n_bins: int) -> torch.Tensor:
    """Mixed-radix int64 key of each row of ``codes (samples, units)``:
    ``sum_i codes[:, i] * n_bins**i``. The joint state space ``n_bins**units`` must fit
    62 bits (``ValueError`` otherwise)."""
    t = _codes_tensor(codes, "codes", n_bins)
    radix = mixed_radix(np.full(t.shape[1], max(int(n_bins), 2)))
    if radix is None:
        bits = t.shape[1] * math.log2(max(int(n_bins), 2))
        raise ValueError(f"the joint state space of {t.shape[1]} units with {n_bins} bins is 2^{bits:.0f} states, "
                         f"more than a 62-bit key holds; pack smaller groups of units")
    powers = torch.from_numpy(radix).to(t.device)
    if t.shape[1] == 0:
        return torch.zeros(len(t), dtype=torch.int64, device=t.device)
    if int(powers[-1]) < 2**45:  # bins <= 256, so every key < 2**53: one float64 product is exact
        return torch.mv(t.to(torch.float64), powers.to(torch.float64)).to(torch.int64)
    return (t.to(torch.int64) * powers).sum(1)


def group_keys(codes, groups, n_bins: int) -> list:
    """One key tensor per group of unit indices (see :func:`pack_keys`)."""
    t = _codes_tensor(codes, "codes", n_bins)
    out = []
    for g in groups:  # loop over groups (each one vectorised over samples)
        idx = np.asarray(g, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= t.shape[1]):
            raise ValueError(f"groups hold unit indices outside 0..{t.shape[1] - 1}: {idx.tolist()}")
        out.append(pack_keys(t[:, torch.from_numpy(idx)], n_bins))
    return out


def group_counts(codes, groups, n_bins: int) -> list:
    """A :class:`KeyCounts` of the joint states of each group of units."""
    return [KeyCounts().update(k) for k in group_keys(codes, groups, n_bins)]


def _xlog2x(c: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(c, c) / LN2


def entropy_from_keys(counts) -> float:
    """Plug-in entropy (bits) of a :class:`KeyCounts` (or a 1-D tensor of counts)."""
    c = counts.counts if isinstance(counts, KeyCounts) else torch.as_tensor(counts)
    c = c.to(torch.float64)
    n = float(c.sum())
    if n <= 0:
        return 0.0
    return max(0.0, math.log2(n) - float(_xlog2x(c).sum()) / n)


# ======================================================================================
# Mergeable accumulators
# ======================================================================================
class _Mergeable:
    """``update``, ``merge`` and ``reduce_across_processes`` over named tensor fields."""

    _fields: tuple = ()

    def _signature(self):
        return ()

    def _empty(self) -> bool:
        return getattr(self, self._fields[0], None) is None

    def merge(self, other) -> "_Mergeable":
        """Add the counts of ``other`` (same kind, same units and bins)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        if other._empty():
            return self
        if self._empty():
            for f in self._fields:
                v = getattr(other, f)
                setattr(self, f, v.clone() if isinstance(v, torch.Tensor) else v)
            self.n = other.n
            return self
        if self._signature() != other._signature():
            raise ValueError(f"cannot merge {type(self).__name__} over different units or bins: "
                             f"{self._signature()} vs {other._signature()}")
        for f in self._fields:
            setattr(self, f, getattr(self, f) + getattr(other, f).to(getattr(self, f).device))
        self.n += other.n
        return self

    def reduce_across_processes(self, group=None) -> "_Mergeable":
        """Sum the counts of every process of the ``torch.distributed`` job, in place
        (nothing happens when no process group is initialised)."""
        if not _dist_ready():
            return self
        for f in self._fields:
            setattr(self, f, _all_reduce(getattr(self, f), group))
        self.n = int(_all_reduce(torch.tensor([self.n], dtype=torch.int64), group)[0])
        return self


class MarginalCounts(_Mergeable):
    """Streaming :func:`marginal_counts`: ``counts (units, n_bins)``, ``n``."""

    _fields = ("counts",)

    def __init__(self, n_bins: int):
        self.n_bins = _check_bins(n_bins, "n_bins")
        self.counts, self.n = None, 0

    def _signature(self):
        return (tuple(self.counts.shape),)

    def update(self, codes) -> "MarginalCounts":
        c = marginal_counts(codes, self.n_bins)
        if self.counts is not None and c.shape != self.counts.shape:
            raise ValueError(f"codes have {c.shape[0]} units but earlier batches had {self.counts.shape[0]}")
        self.counts = c if self.counts is None else self.counts + c
        self.n += int(c[0].sum()) if len(c) else 0
        return self


class PairCounts(_Mergeable):
    """Streaming :func:`pair_counts`: ``joint (units_a, Ba, units_b, Bb)``, ``n``;
    :meth:`mi` gives the plug-in MI of every pair in bits."""

    _fields = ("joint",)

    def __init__(self, n_bins_a: int, n_bins_b: int | None = None):
        self.n_bins_a = _check_bins(n_bins_a, "n_bins_a")
        self.n_bins_b = self.n_bins_a if n_bins_b is None else _check_bins(n_bins_b, "n_bins_b")
        self.joint, self.n = None, 0

    def _signature(self):
        return (tuple(self.joint.shape),)

    def update(self, a, b) -> "PairCounts":
        j = pair_counts(a, b, self.n_bins_a, self.n_bins_b)
        if self.joint is not None and j.shape != self.joint.shape:
            raise ValueError(f"batch counts have shape {tuple(j.shape)}, earlier batches {tuple(self.joint.shape)}: "
                             "every update needs the same units")
        self.joint = j if self.joint is None else self.joint + j
        self.n += len(to_numpy(a, "a")) if not isinstance(a, torch.Tensor) else len(a)
        return self

    @property
    def count_a(self) -> torch.Tensor:
        return self.joint[:, :, 0, :].sum(2)

    @property
    def count_b(self) -> torch.Tensor:
        return self.joint[0].sum(0)

    def mi(self, correction=None) -> torch.Tensor:
        """``(units_a, units_b)`` plug-in MI in bits (clamped at 0 against rounding)."""
        if self.n < 1:
            raise ValueError("no samples counted yet; call update() first")
        joint = self.joint.permute(0, 2, 1, 3)
        return mi_from_counts(joint, self.count_a[:, None, :], self.count_b[None, :, :], self.n,
                              correction).clamp_(min=0)


class LabelCounts(_Mergeable):
    """Streaming :func:`label_counts`: ``table (units, n_bins, n_classes)``, ``n``."""

    _fields = ("table",)

    def __init__(self, n_bins: int, n_classes: int):
        self.n_bins = _check_bins(n_bins, "n_bins")
        self.n_classes = _check_bins(n_classes, "n_classes")
        self.table, self.n = None, 0

    def _signature(self):
        return (tuple(self.table.shape),)

    def update(self, codes, labels) -> "LabelCounts":
        t = torch.from_numpy(label_counts(codes, labels, self.n_bins, self.n_classes))
        if self.table is not None and t.shape != self.table.shape:
            raise ValueError(f"codes have {t.shape[0]} units but earlier batches had {self.table.shape[0]}")
        self.table = t if self.table is None else self.table + t
        self.n += int(t[0].sum()) if len(t) else 0
        return self


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
        if not _dist_ready():
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


# ======================================================================================
# Across processes
# ======================================================================================
def _dist_ready() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _all_reduce(t: torch.Tensor, group=None) -> torch.Tensor:
    """Sum a tensor over the processes; NCCL needs it on this process's GPU, gloo on the CPU."""
    import torch.distributed as dist

    backend = dist.get_backend(group)
    dev = t.device
    work = t.to(torch.device("cuda", torch.cuda.current_device())) if backend == "nccl" else t.cpu()
    work = work.clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM, group=group)
    return work.to(dev)


def reduce_across_processes(counts, group=None):
    """Sum counts over every process of a ``torch.distributed`` job and return them.

    ``counts``: an accumulator of this module (reduced in place and returned), a
    :class:`nifkit.info.PairwiseMI`, a tensor or a numpy array (a reduced copy is
    returned). Without an initialised process group it returns ``counts`` unchanged, so
    the same script runs alone or under ``torchrun``. Every process must call it (it is
    a collective)."""
    if not _dist_ready():
        return counts
    if isinstance(counts, (_Mergeable, KeyCounts)):
        return counts.reduce_across_processes(group)
    if isinstance(counts, torch.Tensor):
        return _all_reduce(counts, group)
    if isinstance(counts, np.ndarray):
        return _all_reduce(torch.from_numpy(np.ascontiguousarray(counts)), group).numpy()
    if all(hasattr(counts, a) for a in ("inner_", "count_a_", "count_b_", "n_")):  # PairwiseMI
        for a in ("inner_", "count_a_", "count_b_"):
            setattr(counts, a, _all_reduce(getattr(counts, a), group))
        counts.n_ = int(_all_reduce(torch.tensor([counts.n_], dtype=torch.int64), group)[0])
        return counts
    raise TypeError("reduce_across_processes takes a counts accumulator of nifkit.info.counts, a PairwiseMI, a "
                    f"tensor or a numpy array; got {type(counts).__name__}")
