r"""What each lens needs and costs on one network (chapter 7): :func:`lens_costs` runs
:func:`~nifkit.compare.compare` once per lens and records the samples the lens used, its
time and the growth of the process's resident memory while it ran, and keeps every
lens's scores in one :class:`~nifkit.compare.Comparison`.

A built-in lens that cannot score the network (its chapter's message says why) becomes a
row with that reason instead of stopping the others.

Memory is the peak of the resident set sampled every ``interval`` seconds by a thread
(Linux ``/proc/self/statm``), minus the resident set when the lens started: a spike
shorter than the interval can be missed, and memory that an earlier lens left to the
allocator is reused without showing. Elsewhere the column is NaN and a note says so.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from .._validation import checked
from ..results import Result
from ..runtime import Progress
from .harness import DEFAULT_LENSES, Comparison, compare
from .lenses import get_lens

__all__ = ["LensCosts", "lens_costs", "LENS_NEEDS", "ResidentPeak"]

#: What each built-in lens reads to score a unit (the cost table's "needs" column).
LENS_NEEDS = {
    "nif": "activations of every scored layer and the one after it, binned; MI of every connected pair",
    "conductance": "gradients along a path of `steps` points from a baseline to each input; labels",
    "relay": "activations binarised, labels; a greedy search over groups of units per class",
    "ablation": "activations binned with the labels; one knockout per unit",
    "ei": "weights and activation functions, driven with noise over each layer's input range on the data",
}


class ResidentPeak:
    """``with ResidentPeak() as p: ...`` then ``p.rise`` (bytes): the peak resident set
    sampled every ``interval`` s during the block, minus the resident set at its start
    (NaN where ``/proc/self/statm`` does not exist)."""

    def __init__(self, interval: float = 0.005):
        self.interval = float(interval)
        self.start = self.peak = 0
        self.rise = float("nan")
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def resident() -> int | None:
        """The process's resident set in bytes now (None off Linux)."""
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self):
        while not self._stop.wait(self.interval):
            now = self.resident()
            self.peak = max(self.peak, now or 0)

    def __enter__(self):
        now = self.resident()
        if now is not None:
            self.start = self.peak = now
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.resident() or 0)
            self.rise = float(self.peak - self.start)
        return False


@dataclass(repr=False)
class LensCosts(Result):
    """One row per lens: ``lens``, ``samples`` (the data samples it read),
    ``seconds``, ``memory_mb`` (peak resident growth while it ran), ``needs``, ``error``
    (why it could not score the network, else ""). ``comparison``: the scores of every
    lens that ran (a :class:`~nifkit.compare.Comparison`, None when none ran)."""

    rows: list
    comparison: Comparison | None

    repr_skip = ("settings", "notes", "rows", "comparison")

    def repr_extra(self) -> dict:
        return {"lenses": [r["lens"] for r in self.rows], "failed": self.failed}

    @property
    def failed(self) -> dict:
        """``{lens: reason}`` of the lenses that could not score the network."""
        return {r["lens"]: r["error"] for r in self.rows if r["error"]}

    def table(self) -> list:
        return [dict(r) for r in self.rows]

    def summary(self) -> str:
        lines = [f"{'lens':12s} {'samples':>8s} {'seconds':>8s} {'memory MB':>10s}  needs"]
        for r in self.rows:
            if r["error"]:
                lines.append(f"{r['lens']:12s} {'-':>8s} {'-':>8s} {'-':>10s}  could not score: {r['error']}")
                continue
            lines.append(f"{r['lens']:12s} {r['samples']:8d} {r['seconds']:8.1f} {r['memory_mb']:10.0f}  {r['needs']}")
        return "\n".join(lines)


def _samples(ls, n_data: int) -> int:
    """The data samples a lens read: its own count where it keeps one (``n_samples`` of a
    lens that reads a subset, e.g. conductance's ``max_samples``), else the comparison's.
    EI's ``n_samples`` counts its noise samples; it reads the data only for each layer's
    input range, all of it."""
    if ls.settings.get("lens") == "ei":
        return int(n_data)
    n = ls.settings.get("n_samples")
    return int(n) if isinstance(n, (int, np.integer)) else int(n_data)


def _merge(parts: list, skipped: dict) -> Comparison | None:
    """One Comparison from single-lens ones over the same neurons; ``skipped``: the lenses
    that could not score the network, with their reasons."""
    if not parts:
        return None
    first = parts[0]
    lenses, secs, notes = {}, {}, []
    for c in parts:  # loop over lenses
        lenses.update(c.lenses)
        secs.update(c.seconds)
        notes += c.notes
    settings = {**first.settings, "lenses": list(lenses), "options": {k: v for c in parts
                                                                     for k, v in c.settings["options"].items()}}
    return Comparison(neurons=first.neurons, lenses=lenses, seconds=secs, n_samples=first.n_samples,
                      skipped=dict(skipped), settings=settings, notes=notes + list(skipped.values()))


def _one_lens(model, data, lens, name, options, kw, interval, parts) -> dict:
    """Run one lens through compare, measured; its Comparison goes to ``parts``, its row
    is returned (a built-in lens's ValueError/TypeError becomes the row's ``error``)."""
    opts = {name: options[name]} if name in options else None
    t = time.perf_counter()
    try:
        with ResidentPeak(interval) as mem:
            c = compare(model, data, [lens], options=opts, errors="raise", **kw)
    except (ValueError, TypeError) as exc:
        if not get_lens(lens).builtin:
            raise
        return {"lens": name, "samples": 0, "seconds": time.perf_counter() - t, "memory_mb": float("nan"),
                "needs": LENS_NEEDS.get(name, ""), "error": str(exc)}
    parts.append(c)
    return {"lens": name, "samples": _samples(c.lenses[name], c.n_samples), "seconds": c.seconds[name],
            "memory_mb": mem.rise / 1e6, "needs": LENS_NEEDS.get(name, "your lens"), "error": ""}


@checked
def lens_costs(model, data, lenses=DEFAULT_LENSES, *, layers=None, channel_reduce: str = "mean", split: str = "train",
               max_samples: int | None = None, seed: int = 0, options: dict | None = None, device=None,
               memory_budget: int | None = None, num_threads: int | None = None,
               interval: float = 0.005, progress=False) -> LensCosts:
    """Run each of ``lenses`` on ``model`` and ``data`` through
    :func:`~nifkit.compare.compare` (same arguments; ``options[lens]`` for one lens only),
    one lens at a time, and return a :class:`LensCosts`: samples, seconds and peak
    resident growth per lens (sampled every ``interval`` s), what each needs
    (:data:`LENS_NEEDS`), and the merged :class:`~nifkit.compare.Comparison`. A built-in
    lens that cannot score this network gets its reason in ``error`` (and in the
    comparison's ``skipped``); the others run. ``channel_reduce``: how a channel's map
    becomes one value per sample, for every lens (see :func:`~nifkit.compare.compare`)."""
    options = dict(options or {})
    names = [get_lens(x).name for x in ([lenses] if isinstance(lenses, str) or callable(lenses) else lenses)]
    unknown = [k for k in options if k not in names]
    if unknown:
        raise ValueError(f"options has entries for {unknown}, which are not among the lenses run: {names}")
    kw = dict(layers=layers, channel_reduce=channel_reduce, split=split, max_samples=max_samples, seed=seed,
              device=device, memory_budget=memory_budget, num_threads=num_threads)
    rows, parts = [], []
    with Progress(progress, len(names), "lenses") as bar:
        for lens, name in zip([lenses] if isinstance(lenses, str) or callable(lenses) else list(lenses), names):
            rows.append(_one_lens(model, data, lens, name, options, kw, interval, parts))
            bar(len(rows), len(names), name)
    notes = [] if ResidentPeak.resident() is not None else [
        "memory not measured: /proc/self/statm is missing (not Linux)"]
    failed = {r["lens"]: r["error"] for r in rows if r["error"]}
    return LensCosts(rows=rows, comparison=_merge(parts, failed), settings={**kw, "lenses": names, "options": options, "interval": interval},
                     notes=notes)
