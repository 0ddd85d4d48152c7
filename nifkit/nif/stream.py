"""The flow graph's activities, streamed: every batch runs once through the model, the
tensor of every node layer is reduced to one value per unit and sample as it comes
(:func:`nifkit.models.units.reduce_channels`, ``channel_reduce=``) and only that reduced
activity is kept (``samples x units`` numbers, e.g. 50,000 images x 300 channels of a
residual CNN: 120 MB in float64), never the inputs or the channel maps. One pass over
the data serves every binning (the bins are fitted on the reduced activity afterwards),
so a ``DataLoader`` gives exactly what the same tensors in memory give.

Across processes (``torchrun`` with a ``DistributedSampler``; in-memory data are
sharded by rank, :func:`nifkit.data.stream.iter_batches`): every process reduces its
shard; the binned estimator's bins are made the same on every process
(:func:`shared_binner`: ``"fixed"`` as given, ``"minmax"`` from the all-reduced minimum
and maximum of every unit) and the pair counts of every edge group are summed over the
processes (:class:`nifkit.info.PairCounts`, :func:`nifkit.info.reduce_across_processes`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.stream import padding_keep
from ..info import Binner
from ..info.counts import PairCounts, dist_ready, reduce_across_processes
from ..models.units import reduce_channels
from ..runtime import ModelState, Progress, model_device, release_freed_memory
from .._validation import resolve_device

__all__ = ["reduced_activities", "shared_binner", "distributed_mi", "check_distributed"]


def _reader(model, plan, channel_reduce):
    """``f(x) -> [reduced activity per node layer]``: a ``torch.fx`` copy of the forward
    pass (sharing the model's modules) that reduces each node layer's tensor where it is
    made (:func:`_reduce`), so a batch's channel maps are freed after their last use
    instead of all being held to the end; an nn.Sequential the walker could not trace
    runs its leaves in order."""
    sizes = {n.read: (n.size, f"units of {n.name!r}") for n in plan.nodes}
    reads = [n.read for n in plan.nodes]
    if plan.walk.traced:
        import torch.fx

        gm = torch.fx.symbolic_trace(model)
        env = {n.name: n for n in gm.graph.nodes}
        reduced = {}
        for r in dict.fromkeys(reads):  # a loop over node layers
            with gm.graph.inserting_after(env[r]):
                reduced[r] = gm.graph.call_function(_reduce, (env[r], *sizes[r], channel_reduce))
        out = next(n for n in gm.graph.nodes if n.op == "output")
        out.args = (tuple(reduced[r] for r in reads),)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        return gm
    steps = plan.walk.steps
    mods = dict(model.named_modules())

    def run(x):
        kept = {steps[0].node: _reduce(x, *sizes[steps[0].node], channel_reduce)} if steps[0].node in sizes else {}
        for st in steps[1:-1]:  # a loop over the layers of the nn.Sequential
            x = mods[st.target](x)
            if st.node in sizes:
                kept[st.node] = _reduce(x, *sizes[st.node], channel_reduce)
        return tuple(kept[r] for r in reads)

    return run


def _reduce(t: torch.Tensor, m: int, what: str, channel_reduce: str) -> torch.Tensor:
    """``(samples, m)`` float64 activity of a node layer's tensor: a channel map (also
    flattened channel-major, as nn.Flatten leaves it) reduced by ``channel_reduce``."""
    t = t.detach().to(torch.float64)
    if t.ndim == 1:
        t = t[:, None]
    if t.shape[1] != m:
        if t.ndim > 2 or t.shape[1] % m:
            raise ValueError(f"{what}: expected {m} units (channels), got a tensor of shape {tuple(t.shape)}")
        t = t.reshape(len(t), m, -1)
    return reduce_channels(t, channel_reduce)


def reduced_activities(model, data, plan, *, channel_reduce="mean", split="train", max_samples=None,
                       batch_size=512, device=None, memory_budget=None, progress=False):
    """Activities ``(samples, units)`` (float64 numpy, one per node layer of ``plan``)
    of ``data`` (inputs, ``(X, y)``, a ``DataLoader``, a Dataset), batch by batch: the
    model in eval mode under ``no_grad`` on ``device`` (default: the model's), moved
    and its modes restored afterwards. ``memory_budget`` (bytes, None: no limit): a
    ``ValueError`` as soon as the kept activity would outgrow it."""
    from ..record.batches import data_batches

    home, dtype = model_device(model)
    dev = home if device is None else resolve_device(device)
    batches, n_batches, n_data = data_batches(data, int(batch_size), split)
    if n_data is not None and dist_ready():  # in-memory data under torchrun: each process its contiguous share
        from ..data.stream import iter_batches

        batches = iter_batches(data, split, batch_size=int(batch_size), labels=False, max_samples=max_samples)
    read = _reader(model, plan, channel_reduce)
    parts = [[] for _ in plan.nodes]
    seen, local, keep = 0, 0, padding_keep(data)
    with ModelState(model, eval=True, no_grad=True, device=dev), \
            Progress(progress, n_batches, "flow activities", unit="batch") as bar:
        for xb, _ in batches:
            if keep is not None:  # the samples a DistributedSampler repeats to even out the shards
                local, xb = local + len(xb), xb[keep(local, len(xb))]
            if max_samples is not None:
                xb = xb[:max_samples - seen]
            if xb.is_floating_point() and not bool(torch.isfinite(xb).all()):
                raise ValueError(f"data contains NaN or inf (in the batch starting at sample {seen}); every "
                                 "activity downstream would be NaN. Remove or impute those samples first")
            xb = xb.to(dev, dtype) if xb.is_floating_point() else xb.to(dev)
            for k, t in enumerate(read(xb)):  # a loop over node layers
                parts[k].append(t.cpu())
            n_b = len(xb)
            del xb
            # the batch's float64 maps are freed now; glibc would keep them resident, with
            # the small kept activities pinning the heap between them (measured: 10.7 GB of
            # peak growth over 50,000 28x28 images of residual_cnn, 16 channels)
            release_freed_memory()
            seen += n_b
            _check_budget(seen, plan, parts, memory_budget)
            bar.update()
            if max_samples is not None and seen >= max_samples:
                break
    if not seen:
        raise ValueError("data holds no samples; nothing was recorded")
    out = []
    for k in range(len(parts)):  # a loop over node layers; each layer's batches freed once joined
        out.append(torch.cat(parts[k]).numpy())
        parts[k] = None
    return out


def _check_budget(seen, plan, parts, memory_budget) -> None:
    """``ValueError`` naming the fixes when the kept activity outgrows ``memory_budget``
    (joining the batches at the end needs one more node layer's worth)."""
    held = sum(sum(t.numel() for t in p) for p in parts) * 8
    if memory_budget is None or 2 * held <= memory_budget:
        return
    units = sum(n.size for n in plan.nodes)
    raise ValueError(f"the flow graph keeps one float64 per unit ({units} units) and sample: {seen} samples already "
                     f"take {held / 2**20:.0f} MiB, and joining them needs as much again, over memory_budget="
                     f"{memory_budget / 2**20:.0f} MiB. Use max_samples=, fewer node layers (nodes= or layers=), or "
                     "a larger memory_budget")



def check_distributed(s) -> None:
    """Under a ``torch.distributed`` process group: only what reduces exactly (binned
    counts with bins every process shares); ``ValueError`` naming the fix otherwise."""
    if not dist_ready():
        return
    if s.estimator != "binned":
        raise ValueError(f"estimator={s.estimator!r} cannot be split over processes (its estimate is not a sum over "
                         "samples); under torchrun use estimator='binned', whose counts add up")
    if s.binning == "quantile":
        raise ValueError("binning='quantile' places each unit's edges at quantiles of all samples, which no process "
                         "holds under torchrun; use binning='minmax' (the minimum and maximum are all-reduced) or "
                         "binning='fixed' with bin_range=(lo, hi)")
    if s.significance is not None:
        raise ValueError("significance= shuffles the samples, which are spread over the processes under torchrun; "
                         "run the shuffle test on one process (significance=None here)")


def shared_binner(s, act: np.ndarray) -> Binner:
    """The :class:`~nifkit.info.Binner` of one node layer's activity: fitted on it, or
    under a process group fitted on the all-reduced minimum and maximum of every unit
    (``"minmax"``: the edges one process would fit on all the data)."""
    b = Binner(n_bins=s.n_bins, binning=s.binning, bin_range=s.bin_range)
    if not dist_ready() or s.binning == "fixed":
        return b.fit(act)
    import torch.distributed as dist

    lo = torch.from_numpy(act.min(0) if len(act) else np.full(act.shape[1], np.inf))
    hi = torch.from_numpy(act.max(0) if len(act) else np.full(act.shape[1], -np.inf))
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return b.fit(torch.stack([lo, hi]).numpy())


def distributed_mi(s, codes, pairs):
    """Per edge group ``(src, dst)``: the MI matrix of the codes summed over every
    process (:class:`~nifkit.info.PairCounts`, one all-reduce per group), and the total
    number of samples."""
    mi, n = [], 0
    for a, b in pairs:  # a loop over edge groups
        acc = PairCounts(s.n_bins, device=s.device).update(codes[a], codes[b])
        reduce_across_processes(acc)
        n = acc.n
        mi.append(acc.mi(s.correction).cpu().numpy())
    return mi, n
