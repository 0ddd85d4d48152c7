"""Knockouts over data read batch by batch: the streaming path of
:func:`nifkit.compare.knockout_truth` (a DataLoader, or any data under ``torchrun``).

:class:`StreamedKnockouts` answers what the truth and :func:`score_lenses` ask of a
:class:`nifkit.intervene.Knockouts` engine (``evaluate``, ``base_accuracy``,
``base_class_accuracy``, ``n_classes``) without holding the data: one pass at
construction counts the intact model's correct answers per class and sums every hidden
unit's output (for ``value="mean"``: a unit's mean over all samples, a conv channel's
over samples and positions); each :meth:`StreamedKnockouts.evaluate` streams the data
again and, per batch, runs the one intervention engine (:class:`Knockouts` on the batch,
knocked-out units fixed to the means of all the data) and adds its correct answers per
knockout and class. Under ``torchrun`` the counts and sums are reduced across processes
(:func:`nifkit.info.reduce_across_processes`), so every process gets the accuracies of
one process over all the data.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.stream import STREAM_BATCH, iter_batches
from ..info import reduce_across_processes
from ..intervene import KnockoutResult, Knockouts
from ..record.stream import stream_layers

__all__ = ["StreamedKnockouts"]


class StreamedKnockouts:
    """Knockouts of the units of ``layers`` (module names) of ``model`` over ``data``
    read batch by batch (see the module docstring). ``device``, ``memory_budget`` (None:
    the default) and ``num_threads`` go to the per-batch :class:`Knockouts`."""

    def __init__(self, model, data, layers, *, split: str = "test", max_samples: int | None = None,
                 batch_size: int = STREAM_BATCH, device=None, memory_budget: int | None = None,
                 num_threads: int | None = None):
        self.model, self.data, self.layers = model, data, list(layers)
        self.split, self.max_samples, self.batch_size = split, max_samples, batch_size
        self.engine = {"device": device, "num_threads": num_threads}
        if memory_budget is not None:
            self.engine["memory_budget"] = memory_budget
        self._base_pass(device)

    def _base_pass(self, device) -> None:
        sums, tally = {}, {}

        def visit(batch):
            for n in self.layers:  # a loop over layers
                s = batch.acts[n].double().sum(0).cpu()
                sums[n] = s if n not in sums else sums[n] + s
            k = batch.logits.shape[1]
            ok = (batch.logits.argmax(1).cpu() == batch.y).double()
            for key, w in (("seen", None), ("correct", ok)):  # per-class counts of samples and correct answers
                c = torch.bincount(batch.y, weights=w, minlength=k).double()
                tally[key] = c if key not in tally else tally[key] + c

        stream_layers(self.model, self.data, self.layers, visit, split=self.split, batch_size=self.batch_size,
                      max_samples=self.max_samples, device=device, what="knockout means")
        if not tally:
            raise ValueError("data holds no samples; nothing to knock out")
        seen = reduce_across_processes(tally["seen"]).numpy()
        correct = reduce_across_processes(tally["correct"]).numpy()
        self.n_classes, self.class_counts, self.n = len(seen), seen.astype(np.int64), int(seen.sum())
        self.means = {n: (reduce_across_processes(s) / self.n).float() for n, s in sums.items()}
        self.base_accuracy = float(correct.sum() / self.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.base_class_accuracy = np.where(seen > 0, correct / np.maximum(seen, 1), np.nan)

    def unit_value(self, layer: str, value):
        """What knocked-out units of ``layer`` are set to: ``"mean"`` -> the means over
        all the data; ``"zero"`` and given values as they are."""
        if isinstance(value, str) and value == "mean":
            if layer not in self.means:
                raise ValueError(f"layer {layer!r} is not one of the streamed layers {self.layers}")
            return self.means[layer]
        return value

    def evaluate(self, layers, masks, value="zero", *, cumulative=None, single: bool = False) -> KnockoutResult:
        """:meth:`nifkit.intervene.Knockouts.evaluate` over every batch: accuracy, mean
        loss and per-class accuracy of each knockout on all the data."""
        names = [layers] if isinstance(layers, str) else list(layers)
        masks_l = [masks] if isinstance(layers, str) else list(masks)
        vals = value if isinstance(value, str) and value == "zero" else \
            [self.unit_value(n, value if isinstance(value, str) else value[i]) for i, n in enumerate(names)]
        correct = loss = None
        for x, y in iter_batches(self.data, self.split, batch_size=self.batch_size,
                                 max_samples=self.max_samples):  # a loop over batches
            ko = Knockouts(self.model, (x, y), **self.engine)
            r = ko.evaluate(names, masks_l, vals, cumulative=cumulative, single=single)
            c = np.rint(np.nan_to_num(r.class_accuracy) * ko.class_counts[None])  # correct answers per class
            correct = c if correct is None else correct + c
            loss = r.loss * len(x) if loss is None else loss + r.loss * len(x)
        if correct is None:
            raise ValueError("data holds no samples (on this process); nothing to knock out")
        correct = reduce_across_processes(torch.from_numpy(correct)).numpy()
        loss = reduce_across_processes(torch.from_numpy(np.asarray(loss, dtype=np.float64))).numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            cls = np.where(self.class_counts > 0, correct / np.maximum(self.class_counts, 1), np.nan)
        return KnockoutResult(correct.sum(1) / self.n, loss / self.n, cls)
