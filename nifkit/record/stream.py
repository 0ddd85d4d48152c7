"""Named layers' outputs one batch at a time, reduced to ``(samples, units)`` the moment
they are produced: the recorder of the streaming measures (neuron measures, relay
counts, knockout means), which keep counts, never the recording.

:func:`stream_layers` runs the model over :func:`nifkit.data.stream.iter_batches` of
``data`` (eval mode, no gradients, on ``device``; the model is given back as it was)
and calls ``visit(batch)`` with a :class:`StreamBatch` per batch. A conv layer's map
``(n, C, *positions)`` becomes one unit per channel by
:func:`nifkit.models.units.reduce_channels` (``channel_reduce``) inside the hook, so a
batch's maps are freed as soon as the forward pass moves on; only ``(n, C)`` (or
``(n*P, C)`` for ``"positions"``) reaches ``visit``.
"""
from __future__ import annotations

import torch
from torch import nn

from .._validation import checked, resolve_device
from ..data.stream import STREAM_BATCH, iter_batches, n_batches
from ..models.hooks import hooks
from ..models.units import positions_of, reduce_channels
from ..runtime import ModelState, Progress, model_device

__all__ = ["StreamBatch", "stream_layers"]


class StreamBatch:
    """One batch (a carrier for ``visit``, not a result): ``acts[name]`` ``(rows, units)``
    reduced outputs on the run's device, ``y`` labels ``(n,)`` (CPU int64, or None),
    ``logits`` the model's outputs ``(n, ...)``, ``positions[name]`` rows per sample of
    ``acts[name]`` (``P`` for ``"positions"``, else 1)."""

    __slots__ = ("acts", "y", "logits", "positions")

    def __init__(self, acts: dict, y: torch.Tensor | None, logits: torch.Tensor, positions: dict):
        self.acts, self.y, self.logits, self.positions = acts, y, logits, positions

    def labels(self, name: str) -> torch.Tensor:
        """The labels of the rows of ``acts[name]`` (each sample's label repeated per position)."""
        p = self.positions[name]
        return self.y if p == 1 else self.y.repeat_interleave(p)


def _taps(names, channel_reduce, store):
    def make(name):
        def hook(module, args, out):
            if name in store:
                raise ValueError(f"module {name!r} runs more than once in one forward pass, so it has no single "
                                 "output to measure; name a module that runs once (e.g. the block around it)")
            t = out[0] if isinstance(out, (tuple, list)) else out
            t = t.detach()
            store[name] = (reduce_channels(t, channel_reduce), positions_of(t) if channel_reduce == "positions" else 1)
        return hook
    return {n: make(n) for n in names}


@checked(skip=("labels",))
def stream_layers(model: nn.Module, data, layers, visit, *, channel_reduce: str = "mean", split: str = "train",
                  batch_size: int = STREAM_BATCH, max_samples: int | None = None, labels: bool = True,
                  device=None, progress=False, what: str = "stream") -> int:
    """Run ``model`` over ``data`` batch by batch and call ``visit(StreamBatch)`` for
    each (see the module docstring); returns the number of samples seen by this process.
    ``layers``: module names; ``device``: where the model runs (None: where it is; moved
    there and back)."""
    names = [layers] if isinstance(layers, str) else list(layers)
    home, dtype = model_device(model)
    dev = home if device is None else resolve_device(device)
    total = n_batches(data, split, batch_size=batch_size, max_samples=max_samples)
    seen = 0
    store: dict = {}
    with Progress(progress, total, what, unit="batch") as bar, \
            ModelState(model, eval=True, no_grad=True, device=dev), \
            hooks(model, _taps(names, channel_reduce, store)):
        for x, y in iter_batches(data, split, batch_size=batch_size, labels=labels, max_samples=max_samples):
            store.clear()
            out = model(x.to(dev, dtype))
            out = out[0] if isinstance(out, (tuple, list)) else out
            missing = [n for n in names if n not in store]
            if missing:
                raise ValueError(f"layers {missing} never ran in the model's forward pass; name modules that run")
            visit(StreamBatch({n: store[n][0] for n in names}, y, out.detach(), {n: store[n][1] for n in names}))
            seen += len(x)
            bar.update()
        if total is not None and bar.done < total:  # a stream that ended early (max_samples, repeats left out)
            bar(total)
    store.clear()
    return seen
