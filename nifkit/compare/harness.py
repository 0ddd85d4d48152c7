"""One call, every lens: :func:`compare` scores each hidden neuron of a network through
each lens and returns a :class:`Comparison` (the table keyed by the shared neuron
address, the settings, the notes and the time each lens took)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_int, resolve_device
from ..data import Dataset
from ..intervene import as_float_tensor, check_labels
from ..models import cpu_threads
from ..runtime import check_seed, progress_callback
from .lenses import get_lens, hidden_neurons, validate_scores
from ..results import Result

__all__ = ["Comparison", "compare", "as_xy", "DEFAULT_LENSES"]

DEFAULT_LENSES = ("nif", "conductance", "relay", "ablation", "ei")


def as_xy(data, split: str = "train", max_samples: int | None = None, seed: int = 0):
    """``data`` (an ``(X, y)`` pair or a :class:`nifkit.data.Dataset`, of which ``split``)
    as float inputs and int64 labels; at most ``max_samples`` (a seeded random subset)."""
    if isinstance(data, Dataset):
        X, y = data.split(split)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        raise TypeError("data must be an (X, y) pair or a nifkit.data.Dataset (the lenses need the labels), "
                        f"got {type(data).__name__}")
    X = as_float_tensor(X, "X")
    if len(X) < 10:
        raise ValueError(f"data has {len(X)} samples; the lenses estimate information from samples: pass at least "
                         "10 (hundreds or more for meaningful values)")
    y = torch.from_numpy(check_labels(y, len(X), "X"))
    if max_samples is not None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 10:
            raise ValueError(f"max_samples must be an integer >= 10 or None, got {max_samples!r}")
        if max_samples < len(X):
            idx = np.sort(np.random.default_rng(check_seed(seed)).choice(len(X), int(max_samples), replace=False))
            X, y = X[idx], y[idx]
    return X, y


@dataclass(repr=False)
class Comparison(Result):
    """Scores of every hidden neuron through every lens.

    ``neurons``: the addresses (:class:`~nifkit.models.Neuron`); ``lenses[name]``: the
    :class:`~nifkit.compare.lenses.LensScores` (its ``columns``, ``primary`` column,
    ``per_class`` matrix); ``seconds[name]``: the time the lens took; ``settings``;
    ``notes``.
    """

    neurons: list
    lenses: dict
    seconds: dict
    n_samples: int

    plotter = "nifkit.compare.plots:plot_lens_ranks"

    @property
    def names(self) -> list:
        return list(self.lenses)

    @property
    def addresses(self) -> list:
        return [str(a) for a in self.neurons]

    @property
    def layers(self) -> list:
        return list(dict.fromkeys(a.layer for a in self.neurons))

    def layer_of(self) -> np.ndarray:
        """Index of each neuron's layer (in :attr:`layers`)."""
        lays = self.layers
        return np.array([lays.index(a.layer) for a in self.neurons])

    def score(self, lens: str, column: str | None = None) -> np.ndarray:
        """The primary score of ``lens`` (or its ``column``), one value per neuron."""
        if lens not in self.lenses:
            get_lens(lens)  # "did you mean"
            raise ValueError(f"lens {lens!r} was not run in this comparison; ran: {self.names}")
        ls = self.lenses[lens]
        col = ls.primary if column is None else column
        if col not in ls.columns:
            raise ValueError(f"lens {lens!r} has no column {col!r}; columns: {list(ls.columns)}")
        return ls.columns[col]

    def scores(self) -> np.ndarray:
        """``(lenses, neurons)`` primary scores."""
        return np.stack([self.score(n) for n in self.names])

    def ranks(self, lens: str) -> np.ndarray:
        """Rank of each neuron under ``lens`` (0 = highest score; ties share the mean rank)."""
        from scipy.stats import rankdata

        return rankdata(-self.score(lens)) - 1

    def top(self, lens: str, k: int) -> np.ndarray:
        """Indices of the ``k`` highest-scoring neurons (ties to the lower index)."""
        s = self.score(lens)
        return np.argsort(-s, kind="stable")[: int(k)]

    def table(self) -> list:
        """One row per neuron: its address and every column of every lens."""
        rows = []
        for i, a in enumerate(self.neurons):
            row = {"neuron": str(a)}
            for n, ls in self.lenses.items():
                for c, v in ls.columns.items():
                    row[f"{n}.{c}"] = float(v[i])
            rows.append(row)
        return rows

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.table()).set_index("neuron")


def compare(model: nn.Module, data, lenses=DEFAULT_LENSES, *, split: str = "train", max_samples: int | None = None,
            seed: int = 0, options: dict | None = None, device=None, memory_budget: int | None = None,
            num_threads: int | None = None, progress=None) -> Comparison:
    """Score every hidden neuron of ``model`` on ``data`` through each of ``lenses``.

    ``lenses``: registered names (default: the five chapters' lenses) or functions
    ``(model, data) -> scores``. ``data``: ``(X, y)`` or a Dataset (its ``split``),
    at most ``max_samples`` (seeded subset). ``options[lens]``: keywords for that
    built-in lens (e.g. ``{"ei": {"n_samples": 5000}}``). ``device`` and ``memory_budget``
    (bytes) go to every built-in lens's heavy functions (None: each one's default;
    ``options`` win). ``num_threads``: torch CPU threads for the whole call (None: 1 on
    the CPU, the project's policy, restored after).
    ``progress``: True for a bar, or a callable ``progress(done, total, lens)``. Each lens runs its chapter's own functions; the
    model is left as it was (every chapter restores mode and hooks).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seed = check_seed(seed, allow_none=False)
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict {{lens name: {{keyword: value}}}}, got {type(options).__name__}")
    if isinstance(lenses, str) or callable(lenses):
        lenses = [lenses]
    lenses = list(lenses)
    if not lenses:
        raise ValueError("lenses is empty; pass lens names, e.g. nifkit.compare.DEFAULT_LENSES")
    resolved = [get_lens(x) for x in lenses]  # unknown names fail before any work
    options = dict(options or {})
    for k in options:
        if k not in [r.name for r in resolved]:
            raise ValueError(f"options has an entry for {k!r}, which is not among the lenses run: "
                             f"{[r.name for r in resolved]}")
    heavy = {}
    if device is not None:
        heavy["device"] = str(resolve_device(device))
    if memory_budget is not None:
        heavy["memory_budget"] = check_int(memory_budget, "memory_budget", minimum=1)
    neurons = hidden_neurons(model)
    X, y = as_xy(data, split, max_samples, seed)
    out, secs, notes = {}, {}, []
    report = progress_callback(progress)
    with cpu_threads(num_threads, heavy.get("device")):
        for i, lens in enumerate(resolved):  # loop over lenses
            t = time.perf_counter()
            opts = {**heavy, **options.get(lens.name, {})} if lens.builtin else options.get(lens.name, {})
            raw = lens.fn(model, (X, y), **opts) if (lens.builtin or opts) else lens.fn(model, (X, y))
            ls = validate_scores(raw, neurons, lens.name)
            secs[lens.name] = time.perf_counter() - t
            out[lens.name] = ls
            notes += ls.notes
            if report is not None:
                report(i + 1, len(resolved), lens.name)
    return Comparison(neurons=neurons, lenses=out, seconds=secs, n_samples=len(X),
                      settings={"lenses": [r.name for r in resolved], "split": split, "max_samples": max_samples,
                                "seed": seed, "options": options, **heavy}, notes=notes)
