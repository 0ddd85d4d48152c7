"""Any measure over training snapshots.

:func:`over_snapshots` applies a measure ``measure(model) -> result`` to the model at
each snapshot epoch of a :class:`nifkit.models.TrainResult` and returns a
:class:`Trajectory`: the epochs, the results, and (for results with numeric fields) one
array per field. The same ``seed`` passed to the measure at every epoch (common random
numbers) makes changes over training reflect the weights, not sampling noise.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .results import Result
from .runtime import Progress
from ._validation import checked

__all__ = ["Trajectory", "over_snapshots", "snapshot_epochs"]


@checked
def snapshot_epochs(train_result, epochs=None, every: int | None = None) -> list:
    """The snapshot epochs of ``train_result`` to visit: all, the listed ``epochs``
    (``KeyError`` naming the missing ones), and/or those that are multiples of ``every``."""
    snaps = list(getattr(train_result, "epochs_snapshotted", []))
    if not snaps:
        raise ValueError("train_result has no snapshots; train with snapshot_every=k (nifkit.models.train)")
    chosen = snaps if epochs is None else [int(e) for e in epochs]
    missing = [e for e in chosen if e not in snaps]
    if missing:
        raise KeyError(f"no snapshots at epochs {missing}; snapshots exist for {snaps}")
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        chosen = [e for e in chosen if e % int(every) == 0]
    if not chosen:
        raise ValueError(f"no snapshot epoch selected (snapshots at {snaps}, every={every})")
    return chosen


@dataclass(repr=False)
class Trajectory(Result):
    """``results[i]`` is ``measure(model at epochs[i])``; ``history`` the training
    history; :meth:`values` one field of every result as an array; :meth:`table` one row
    per epoch (and per row of each result's own table)."""

    epochs: np.ndarray
    results: list
    history: dict = field(default_factory=dict)

    def values(self, getter) -> np.ndarray:
        """``getter`` (an attribute name or a function ``result -> value``) of every
        result: shape ``(epochs,)`` for a number, ``(epochs, ...)`` for an array."""
        fn = getter if callable(getter) else (lambda r: getattr(r, getter))
        return np.asarray([fn(r) for r in self.results], dtype=float)

    def at(self, epoch: int):
        idx = np.flatnonzero(self.epochs == epoch)
        if not len(idx):
            raise KeyError(f"no measurement at epoch {epoch}; measured epochs: {self.epochs.tolist()}")
        return self.results[int(idx[0])]

    def __len__(self):
        return len(self.results)

    def table(self) -> list[dict]:
        """Each result's rows with its ``epoch`` first (a number result is the row
        ``{"epoch", "value"}``): the long format for :meth:`to_frame`."""
        rows = []
        for e, r in zip(self.epochs.tolist(), self.results):  # a loop over epochs
            if isinstance(r, Result):
                rows += [{"epoch": e, **row} for row in r.table()]
            elif isinstance(r, (numbers.Number, np.number)):
                rows.append({"epoch": e, "value": float(r)})
            else:
                rows.append({"epoch": e})
        return rows


@checked
def over_snapshots(train_result, measure: Callable, *, epochs=None, every: int | None = None, progress=False,
                   what: str = "over training", settings: dict | None = None) -> Trajectory:
    """``measure(model)`` at the chosen snapshot epochs of ``train_result`` (see
    :func:`snapshot_epochs`); ``progress``: the one progress contract (True, False or
    ``progress(done, total, what)``), one step per epoch. ``settings``: how the measure
    was called, kept on the trajectory."""
    if not callable(measure):
        raise TypeError(f"measure must be a callable model -> result, got {type(measure).__name__}")
    chosen = snapshot_epochs(train_result, epochs, every)
    results = []
    with Progress(progress, total=len(chosen), what=what, unit="epoch") as bar:
        for e in chosen:  # loop over epochs
            results.append(measure(train_result.model_at(e)))
            bar(len(results), len(chosen), f"{what}: epoch {e}")
    return Trajectory(np.asarray(chosen, dtype=int), results, dict(getattr(train_result, "history", {}) or {}),
                      settings=dict(settings or {}))
