"""``data`` one batch at a time, shard-aware: the reader of the ``data`` argument for
entry points that stream (counts accumulate batch by batch, nothing is concatenated).

:func:`iter_batches` yields ``(x, y)`` batches of any ``data`` that
:func:`nifkit.data.as_xy` reads:

* a ``DataLoader`` or any iterable of ``x`` / ``(x, y, ...)`` / ``{"x": .., "y": ..}``
  batches (:func:`is_stream`) is iterated as it comes, never gathered. Under
  ``torchrun`` its ``DistributedSampler`` gives each process its shard; the samples that
  sampler *repeats* to make the shards equal (``drop_last=False`` with a data set whose
  size is not a multiple of the number of processes) are left out here, so the shards
  together hold every sample exactly once and counts reduced across processes equal
  the counts of one process over all the data;
* a Dataset (its ``split``), an ``(X, y)`` pair or an array of inputs is cut into
  batches of ``batch_size``; inside an initialised ``torch.distributed`` process group
  each process takes its contiguous share (rank ``r`` of ``w``: samples
  ``r*N//w .. (r+1)*N//w``), so the same script runs alone or under ``torchrun``.

Across processes: :func:`all_reduce_extrema` (per-unit minima and maxima, for min-max
bins that agree on every process) and :func:`gather_across_processes` (arrays of every
process, in rank order). Without a process group both return their input.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .._validation import as_labels, check_int
from .arrays import as_float_tensor, as_xy
from .dataset import Dataset

__all__ = ["padding_keep", "is_stream", "iter_batches", "n_batches", "distributed", "all_reduce_extrema", "gather_across_processes",
           "STREAM_BATCH"]

#: default samples per batch when in-memory data are cut into batches
STREAM_BATCH = 500


def distributed() -> tuple:
    """``(rank, world size)`` of the initialised ``torch.distributed`` process group, or
    ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_stream(data) -> bool:
    """Whether ``data`` is a ``DataLoader`` / iterable of batches (read batch by batch),
    not a Dataset, an ``(X, y)`` pair or an array held in memory."""
    if isinstance(data, (Dataset, torch.Tensor, np.ndarray, str, bytes, dict)):
        return False
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        return False
    return isinstance(data, Iterable)


def _split_batch(b):
    """``(x, y or None)`` of one batch as a DataLoader yields it."""
    if isinstance(b, dict):
        b = list(b.values())
    if isinstance(b, torch.Tensor) or isinstance(b, np.ndarray):
        return b, None
    if isinstance(b, (tuple, list)) and b:
        return b[0], (b[1] if len(b) > 1 else None)
    raise TypeError(f"data: each batch must be a tensor or an (x, y) pair, got {type(b).__name__}")


def padding_keep(loader):
    """For a loader whose ``DistributedSampler`` pads the shards, ``keep(i0, n)`` -> the
    bool mask of the local samples ``i0 .. i0+n-1`` that are not repeats; else None."""
    from torch.utils.data import DistributedSampler

    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
        return None
    n_data, rank, world = len(sampler.dataset), sampler.rank, sampler.num_replicas
    if n_data % world == 0:
        return None
    # local sample i is position rank + i*world of the padded index list; >= n_data repeats
    return lambda i0, n: rank + (torch.arange(i0, i0 + n) * world) < n_data


def _stream(loader, labels: bool, max_samples):
    keep = padding_keep(loader)
    seen = 0
    for b in loader:  # a loop over batches
        xb, yb = _split_batch(b)
        x = as_float_tensor(xb, "data batch (inputs)")
        if x.ndim == 0:
            raise TypeError("data: a batch's inputs are a single number, so data was read as an iterable of "
                            "batches; pass inputs as one tensor or array instead")
        if yb is None and labels:
            raise ValueError("data holds no labels, and this measure needs them: pass (X, y), a Dataset or a "
                             "DataLoader of (x, y) batches")
        y = None if yb is None else torch.from_numpy(np.ascontiguousarray(
            as_labels(yb, "data batch (labels)", n_samples=len(x))))
        if keep is not None:
            k = keep(seen, len(x))
            seen += len(x)
            x, y = x[k], None if y is None else y[k]
        if max_samples is not None and len(x) > max_samples:
            x, y = x[:max_samples], None if y is None else y[:max_samples]
        if len(x):
            yield x, y
        if max_samples is not None:
            max_samples -= len(x)
            if max_samples <= 0:
                return


def iter_batches(data, split: str = "train", *, batch_size: int = STREAM_BATCH, labels: bool = True,
                 max_samples: int | None = None, seed: int = 0):
    """Yield ``(x, y)`` batches of ``data``: float inputs, int64 labels (``y`` None when
    ``labels=False`` and the data carry none). See the module docstring for streams and
    shards. ``max_samples``: in-memory data keep a seeded random subset
    (:func:`nifkit.data.as_xy`), a stream stops after its first ``max_samples`` samples
    (of this process's shard)."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if is_stream(data):
        yield from _stream(data, labels, max_samples)
        return
    X, y = as_xy(data, split, labels=labels, max_samples=max_samples, seed=seed)
    rank, world = distributed()
    lo, hi = rank * len(X) // world, (rank + 1) * len(X) // world
    for s in range(lo, hi, batch_size):  # a loop over batches
        e = min(s + batch_size, hi)
        yield X[s:e], None if y is None else y[s:e]


def n_batches(data, split: str = "train", *, batch_size: int = STREAM_BATCH, max_samples: int | None = None):
    """How many batches :func:`iter_batches` yields on this process (at most, for a
    stream: ``len(loader)``, None when it has no length)."""
    if is_stream(data):
        return len(data) if hasattr(data, "__len__") else None
    if isinstance(data, Dataset):
        n = len(data.split(split)[0])
    else:
        n = len(data[0]) if isinstance(data, (tuple, list)) else len(data)
    n = n if max_samples is None else min(n, max_samples)
    rank, world = distributed()
    return -(-((rank + 1) * n // world - rank * n // world) // batch_size)


def _work_device(t: torch.Tensor) -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_extrema(lo: torch.Tensor, hi: torch.Tensor) -> tuple:
    """Per-unit minima ``lo`` and maxima ``hi`` over every process (copies on the
    tensors' device), so min-max bins agree on every process; unchanged alone."""
    import torch.distributed as dist

    if distributed()[1] == 1:
        return lo, hi
    dev = _work_device(lo)
    lo_w, hi_w = lo.to(dev).clone(), hi.to(dev).clone()
    dist.all_reduce(lo_w, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi_w, op=dist.ReduceOp.MAX)
    return lo_w.to(lo.device), hi_w.to(hi.device)


def gather_across_processes(array) -> np.ndarray:
    """The arrays of every process concatenated along the first axis in rank order
    (an all-gather: every process calls it and gets the same array); ``array`` alone."""
    import torch.distributed as dist

    a = np.asarray(array)
    rank, world = distributed()
    if world == 1:
        return a
    parts = [None] * world
    dist.all_gather_object(parts, a)
    return np.concatenate(parts)
