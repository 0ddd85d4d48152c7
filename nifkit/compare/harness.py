"""One call, every lens: :func:`compare` scores each hidden neuron of a network through
each lens and returns a :class:`Comparison` (the table keyed by the shared neuron
address, the settings, the notes and the time each lens took).

Any network the walker traces: on a chain (an MLP, a ``small_cnn``) the units are the
hidden layers' neurons and channels, on a network with skip connections (a ResNet,
:func:`nifkit.models.residual_cnn`) by default the channels of its blocks, or of the
``layers`` named (:func:`nifkit.models.hidden_layout`). A built-in lens that cannot
score the network (e.g. a lens that needs a chain of weight layers) does not stop the
others: with ``errors="report"`` (the default) its reason is kept in
``Comparison.skipped`` and the notes, and a ``RuntimeWarning`` says so."""
from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .._validation import resolve_device
from ..data.arrays import as_xy
from ..models import cpu_threads, hidden_neurons
from ..runtime import Progress
from .lenses import get_lens, validate_scores
from ..results import Result, UnitAddresses
from .._validation import checked

__all__ = ["Comparison", "compare", "DEFAULT_LENSES", "lens_data", "check_inputs_fit"]

DEFAULT_LENSES = ("nif", "conductance", "relay", "ablation", "ei")


@dataclass(repr=False)
class Comparison(UnitAddresses, Result):
    """Scores of every hidden neuron through every lens.

    ``neurons``: the addresses (:class:`~nifkit.models.Neuron`); ``lenses[name]``: the
    :class:`~nifkit.results.NeuronScores` (its ``columns``, ``primary`` column,
    ``per_class`` matrix); ``seconds[name]``: the time the lens took; ``skipped[name]``:
    why a built-in lens could not score this network (it is not in ``lenses``);
    ``settings``; ``notes``.
    """

    neurons: list
    lenses: dict
    seconds: dict
    n_samples: int
    skipped: dict = field(default_factory=dict)

    plotter = "nifkit.compare.plots:plot_lens_ranks"

    @property
    def names(self) -> list:
        return list(self.lenses)

    def layer_of(self) -> np.ndarray:
        """Index of each neuron's layer (in :attr:`layers`)."""
        lays = self.layers
        return np.array([lays.index(a.layer) for a in self.neurons])

    def score(self, lens: str, column: str | None = None) -> np.ndarray:
        """The primary score of ``lens`` (or its ``column``), one value per neuron."""
        if lens in self.skipped:
            raise ValueError(f"lens {lens!r} has no scores in this comparison: {self.skipped[lens]}")
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


@checked
def lens_data(data, split: str = "train", max_samples: int | None = None, seed: int = 0) -> tuple:
    """``data`` as the ``(X, y)`` pair every lens gets (:func:`nifkit.data.as_xy` with at
    least 10 samples: the lenses estimate information from samples)."""
    return as_xy(data, split, max_samples=max_samples, seed=seed, min_samples=10)


#: shared settings given only to a lens that names them (not through its ``**kw``)
_NAMED_ONLY = ("channel_reduce",)


def _accepted(fn, options: dict) -> dict:
    """The entries of ``options`` that ``fn`` takes as keywords (all, if it takes ``**kw``,
    but those of ``_NAMED_ONLY`` only when named in its signature)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in options.items() if k not in _NAMED_ONLY or k in params}
    return {k: v for k, v in options.items() if k in params}


def check_inputs_fit(model: nn.Module, X) -> None:
    """One forward pass of one sample: inputs that do not fit ``model`` get a ValueError
    naming the shapes at the door, not an error from inside torch (``mat1 and mat2 shapes
    cannot be multiplied``) in the middle of a lens."""
    from ..runtime import ModelState, model_device

    dev, dt = model_device(model)
    with ModelState(model, eval=True, no_grad=True):
        try:
            out = model(X[:1].to(dev, dt))
        except RuntimeError as exc:
            raise ValueError(f"data does not fit the model: one input of shape {tuple(X.shape[1:])} (the batch "
                             f"{tuple(X[:1].shape)}) fails in the model's forward pass ({exc}). Pass inputs of the "
                             "shape the model was built for (e.g. small_cnn(image_size=...) and the images' size, "
                             "flattened or not as its first layer expects)") from None
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.ndim != 2:
        raise ValueError(f"the model's output for one input is of shape {tuple(out.shape)}; the lenses need "
                         "(samples, classes) logits")


def _run_lens(lens, model, data, opts, errors: str):
    """One lens's raw output, or ``(None, reason)`` when a built-in lens cannot score this
    model and ``errors="report"``. With ``errors="raise"`` the error says which built-in
    lens failed (its chapter's own message follows), so it is not read as the user's."""
    if not lens.builtin:
        return lens.fn(model, data, **opts), None
    try:
        return lens.fn(model, data, **opts), None
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as exc:
        reason = f"the built-in lens {lens.name!r} cannot score this model: {exc}"
        if errors == "raise":
            raise type(exc)(f"{reason} (leave it out with lenses=[...] without {lens.name!r})") from exc
        return None, f"{reason} (skipped; the other lenses ran)"


@checked
def compare(model: nn.Module, data, lenses=DEFAULT_LENSES, *, layers=None, channel_reduce: str = "mean",
            split: str = "train", max_samples: int | None = None, seed: int = 0, options: dict | None = None,
            errors: str = "report", device=None, memory_budget: int | None = None, num_threads: int | None = None,
            progress=False) -> Comparison:
    """Score every hidden unit of ``model`` (or of the hidden ``layers``) on ``data``
    through each of ``lenses``.

    ``lenses``: registered names (default: the five chapters' ``neuron_scores``) or
    functions ``(model, data) -> scores``. ``data``: labelled data (``(X, y)``, a Dataset's
    ``split``, a DataLoader of ``(x, y)``), at most ``max_samples`` (seeded subset).
    ``options[lens]``: keywords for that lens (e.g. ``{"ei": {"n_samples": 5000}}``).
    ``layers`` (default: see :func:`nifkit.models.hidden_layout`: a chain's hidden layers,
    a residual network's blocks), ``channel_reduce`` (how a channel's map becomes one
    value per sample, :func:`nifkit.models.reduce_channels`), ``seed``, ``device`` and
    ``memory_budget`` (bytes) go to every lens that takes them (``options`` win).
    ``errors``: ``"report"`` (default): a built-in lens that cannot score the network is
    left out with its reason in ``skipped`` and ``notes`` (and a ``RuntimeWarning``), the
    others run; ``"raise"``: its error stops the call. A user's own lens always raises.
    Inputs that do not fit the model are refused at the door (one forward pass of one
    sample, the message names the shapes). ``num_threads``: torch CPU threads for the whole call
    (None: 1 on the CPU, the project's policy, restored after). ``progress``: True for a
    bar over the lenses, or a callable ``progress(done, total, lens)``. The model is left
    as it was (every chapter restores mode and hooks).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict {{lens name: {{keyword: value}}}}, got {type(options).__name__}")
    if isinstance(lenses, str) or callable(lenses):
        lenses = [lenses]
    lenses = list(lenses)
    if not lenses:
        raise ValueError("lenses is empty; pass lens names, e.g. nifkit.compare.DEFAULT_LENSES")
    resolved = [get_lens(x) for x in lenses]  # unknown names fail before any work
    names = [r.name for r in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"lenses names a lens twice: {names}; name each lens once")
    options = dict(options or {})
    for k in options:
        if k not in names:
            raise ValueError(f"options has an entry for {k!r}, which is not among the lenses run: {names}")
    if errors not in ("report", "raise"):
        raise ValueError(f"errors must be 'report' (a lens that cannot score the model is skipped, with its reason) "
                         f"or 'raise', got {errors!r}")
    shared = {"seed": seed, "channel_reduce": channel_reduce, **({} if layers is None else {"layers": layers})}
    if device is not None:
        shared["device"] = str(resolve_device(device))
    if memory_budget is not None:
        shared["memory_budget"] = memory_budget
    neurons = hidden_neurons(model, layers)
    X, y = lens_data(data, split, max_samples, seed)
    check_inputs_fit(model, X)
    out, secs, notes, skipped = {}, {}, [], {}
    with cpu_threads(num_threads, shared.get("device")), Progress(progress, len(resolved), "lenses") as bar:
        for i, lens in enumerate(resolved):  # loop over lenses
            t = time.perf_counter()
            opts = {**_accepted(lens.fn, shared), **options.get(lens.name, {})}
            raw, reason = _run_lens(lens, model, (X, y), opts, errors)
            if reason is not None:
                skipped[lens.name] = reason
                notes.append(reason)
                warnings.warn(reason, RuntimeWarning, stacklevel=3)
            else:
                ls = validate_scores(raw, neurons, lens.name)
                secs[lens.name] = ls.seconds = time.perf_counter() - t
                out[lens.name] = ls
                notes += ls.notes
            bar(i + 1, len(resolved), lens.name)
    if not out:
        raise ValueError("no lens could score this model: " + "; ".join(skipped.values()))
    settings = {"lenses": names, "split": split, "max_samples": max_samples, "seed": seed, "options": options,
                "errors": errors, **{k: v for k, v in shared.items() if k != "seed"}}
    return Comparison(neurons=neurons, lenses=out, seconds=secs, n_samples=len(X), skipped=skipped,
                      settings=settings, notes=notes)
