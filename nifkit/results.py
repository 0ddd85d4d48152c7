"""The one result shape, and the one lens output.

Every result object of nifkit is a dataclass deriving from :class:`Result`: named fields,
``settings`` (how it was computed) and ``notes`` (what to keep in mind when reading it),
:meth:`~Result.table` (a list of row dicts), :meth:`~Result.to_frame` (the same rows as a
pandas DataFrame), a ``repr`` derived from the fields, and ``plot(*, ax=None)`` where a
figure exists (subclasses that have one set :attr:`Result.plotter`).

:class:`NeuronScores` is what every chapter's model-level entry ``neuron_scores(model,
data, *, layers=None, ...)`` returns (the lens protocol): one row per unit keyed by its
:class:`~nifkit.models.Neuron` address, one column per measure.

Subclasses declare their own fields first; ``settings`` and ``notes`` are keyword-only
fields of the base (``kw_only``) so they never clash with a subclass's positional order.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Result", "NeuronScores", "summarize"]


def summarize(value, width: int = 40) -> str:
    """A short text for one field's value in a ``repr``: arrays and tensors by shape,
    containers by length (and their first keys), numbers rounded, long text cut."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, numbers.Number) and hasattr(value, "dtype"):
        return f"{type(value).__name__}{tuple(shape)}"
    if hasattr(value, "_fields") and type(value).__str__ is not tuple.__str__:
        return str(value)  # a NamedTuple with its own text, e.g. a Neuron address "act1:3"
    if isinstance(value, Result):
        return f"{type(value).__name__}(...)"
    if isinstance(value, dict):
        keys = list(value)
        head = ", ".join(map(str, keys[:3])) + (", ..." if len(keys) > 3 else "")
        return f"{{{head}}}" if keys else "{}"
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # a NamedTuple is one value
        inner = ", ".join(summarize(v, 12) for v in value)
        return f"[{len(value)} items]" if len(value) > 4 else f"[{inner}]"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(repr=False)
class Result:
    """Base of every nifkit result (see the module docstring)."""

    settings: dict = field(default_factory=dict, kw_only=True)
    notes: list = field(default_factory=list, kw_only=True)

    #: fields left out of the repr (large raw objects); subclasses extend it
    repr_skip = ("settings", "notes")
    #: ``plotter(result, *, ax=None, **kw) -> Axes`` of this result, or None (no figure)
    plotter = None

    def table(self) -> list[dict]:
        """Rows as dicts. The default is one row of the scalar fields; results with one
        row per layer, neuron or step override it."""
        row = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (numbers.Number, str, np.number, np.bool_)) and f.name not in ("settings", "notes"):
                row[f.name] = v.item() if isinstance(v, np.generic) else v
        return [row]

    def to_frame(self):
        """:meth:`table` as a pandas DataFrame (pandas is needed for this method only)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas ships with the lab profile
            raise ImportError(f"{type(self).__name__}.to_frame() needs pandas: pip install pandas "
                              "(or use .table(), a list of dicts)") from None
        return pd.DataFrame(self.table())

    def plot(self, *, ax=None, **kw):
        """Draw this result on ``ax`` (a new figure when None); returns the Axes."""
        if self.plotter is None:
            raise TypeError(f"{type(self).__name__} has no figure of its own; see its chapter's plot_* functions")
        return type(self).plotter(self, ax=ax, **kw)

    def __repr__(self) -> str:
        parts = [f"{f.name}={summarize(getattr(self, f.name))}" for f in dataclasses.fields(self)
                 if f.repr and f.name not in self.repr_skip]
        if self.notes:
            parts.append(f"notes=[{len(self.notes)}]")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(repr=False)
class NeuronScores(Result):
    """Scores of units through one lens: ``columns[name]`` one value per unit of
    ``neurons`` (in that order), ``primary`` the column that ranks units, ``per_class`` an
    optional ``(classes, units)`` matrix (NaN where undefined), ``seconds`` the time the
    lens took, ``raw`` the chapter's own result object(s) the scores were read from."""

    neurons: list
    columns: dict
    primary: str
    per_class: np.ndarray | None = None
    seconds: float = float("nan")
    raw: object = None

    repr_skip = ("settings", "notes", "raw")

    def __post_init__(self):
        if self.primary not in self.columns:
            raise ValueError(f"primary column {self.primary!r} is not among the columns {list(self.columns)}")
        n = len(self.neurons)
        for k, v in self.columns.items():
            if np.shape(v) != (n,):
                raise ValueError(f"column {k!r} has shape {np.shape(v)}, expected ({n},): one value per unit")

    @property
    def score(self) -> np.ndarray:
        """The primary column."""
        return self.columns[self.primary]

    @property
    def addresses(self) -> list:
        return [str(a) for a in self.neurons]

    @property
    def layers(self) -> list:
        return list(dict.fromkeys(a.layer for a in self.neurons))

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns: {list(self.columns)}")
        return self.columns[column]

    def table(self) -> list[dict]:
        """One row per unit: its address and every column."""
        cols = {k: np.asarray(v, dtype=np.float64) for k, v in self.columns.items()}
        return [{"neuron": str(a), **{k: float(v[i]) for k, v in cols.items()}} for i, a in enumerate(self.neurons)]

    def to_frame(self):
        return super().to_frame().set_index("neuron")
