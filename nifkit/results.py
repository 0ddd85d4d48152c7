"""The one result shape, and the one lens output.

Every result object of nifkit is a dataclass deriving from :class:`Result`: named fields,
``settings`` (how it was computed) and ``notes`` (what to keep in mind when reading it),
:meth:`~Result.table` (a list of row dicts), :meth:`~Result.to_frame` (the same rows as a
pandas DataFrame), a ``repr`` derived from the fields, and ``plot(*, ax=None)`` where a
figure exists (subclasses that have one set :attr:`Result.plotter`).

Subclasses are declared ``@dataclass(repr=False)`` (a plain ``@dataclass`` would write
its own ``__repr__`` over the derived one). Three hooks, no free-form ``__repr__``:
``repr_skip`` (big fields left out), :meth:`Result.repr_extra` (derived values worth a
glance, e.g. the critical layer, appended after the fields) and :meth:`Result.table`
(whose rows :meth:`Result.summary` prints as aligned text).

:class:`NeuronScores` is what every chapter's model-level entry ``neuron_scores(model,
data, *, layers=None, ...)`` returns (the lens protocol): one row per unit keyed by its
:class:`~nifkit.models.Neuron` address, one column per measure.

Subclasses declare their own fields first; ``settings`` and ``notes`` are keyword-only
fields of the base (``kw_only``) so they never clash with a subclass's positional order.
"""
from __future__ import annotations

import dataclasses
import importlib
import numbers
from dataclasses import dataclass, field

import numpy as np
from ._validation import checked

__all__ = ["Result", "NeuronScores", "UnitAddresses", "summarize"]


@checked(skip=('value',))
def summarize(value, width: int = 40) -> str:
    """A short text for one field's value in a ``repr``: arrays and tensors by shape (up
    to six numbers by value), containers by length (and their first keys), numbers
    rounded, long text cut, multi-line reprs (modules) by type name."""
    shape = getattr(value, "shape", None)
    if isinstance(value, np.generic) or (shape == () and hasattr(value, "item")):
        value = value.item()  # a numpy scalar or a 0-d array/tensor is one number
    elif shape is not None and not isinstance(value, numbers.Number) and hasattr(value, "dtype"):
        if len(shape) == 1 and 0 < shape[0] <= 6 and str(value.dtype).split(".")[-1][:3] in ("flo", "int", "uin"):
            return "[" + ", ".join(summarize(v) for v in value.tolist()) + "]"  # a few numbers: their values
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
        inner = ", ".join(summarize(v, 24) for v in value)
        return f"[{len(value)} items]" if len(value) > 4 else f"[{inner}]"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    text = repr(value)
    if "\n" in text:  # a module, a frame: its name only
        return f"{type(value).__name__}(...)"
    return text if len(text) <= width else text[: width - 3] + "..."


def _cell(value) -> str:
    """One cell of :meth:`Result.summary`."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return str(value)


@dataclass(repr=False)
class Result:
    """Base of every nifkit result (see the module docstring)."""

    settings: dict = field(default_factory=dict, kw_only=True)
    notes: list = field(default_factory=list, kw_only=True)

    #: fields left out of the repr (large raw objects); subclasses extend it
    repr_skip = ("settings", "notes")
    #: ``plotter(result, *, ax=None, **kw) -> Axes`` of this result, or None (no figure);
    #: also a ``"package.module:function"`` string, imported on first use (a chapter's
    #: plots module imports its results, so a result names its plot function lazily)
    plotter = None

    @classmethod
    def plot_function(cls):
        """The callable behind :meth:`plot` (``None`` when the result has no figure)."""
        p = cls.plotter
        if isinstance(p, str):
            module, _, name = p.partition(":")
            p = getattr(importlib.import_module(module), name)
        return p

    def repr_extra(self) -> dict:
        """Derived values shown after the fields in the ``repr`` (``name -> value``);
        none by default. Override this (not ``__repr__``) when a summary number helps."""
        return {}

    def table(self) -> list[dict]:
        """Rows as dicts. The default is one row of the scalar fields; results with one
        row per layer, neuron or step override it."""
        row = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (numbers.Number, str, np.number, np.bool_)) and f.name not in ("settings", "notes"):
                row[f.name] = v.item() if isinstance(v, np.generic) else v
        return [row]

    def summary(self, max_rows: int | None = None) -> str:
        """:meth:`table` as aligned text for ``print`` (numbers to 3 decimals; the first
        ``max_rows`` rows when given). No pandas needed."""
        rows = self.table()
        shown = rows if max_rows is None else rows[:max_rows]
        keys = list(dict.fromkeys(k for row in shown for k in row))
        cells = [[_cell(row.get(k, "")) for k in keys] for row in shown]
        widths = [max([len(str(k))] + [len(r[j]) for r in cells]) for j, k in enumerate(keys)]
        lines = ["  ".join(str(k).rjust(w) for k, w in zip(keys, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
        if len(shown) < len(rows):
            lines.append(f"... ({len(rows) - len(shown)} more rows)")
        return "\n".join(lines)

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
        fn = self.plot_function()
        if fn is None:
            raise TypeError(f"{type(self).__name__} has no figure of its own; see its chapter's plot_* functions")
        return fn(self, ax=ax, **kw)

    def __repr__(self) -> str:
        parts = [f"{f.name}={summarize(getattr(self, f.name))}" for f in dataclasses.fields(self)
                 if f.repr and f.name not in self.repr_skip]
        parts += [f"{k}={summarize(v)}" for k, v in self.repr_extra().items()]
        if self.notes:
            parts.append(f"notes=[{len(self.notes)} notes]")  # read them in .notes
        return f"{type(self).__name__}({', '.join(parts)})"


class UnitAddresses:
    """Read-only views of a result's ``neurons`` (:class:`~nifkit.models.Neuron` addresses):
    their text and their layers in order. Shared by every result keyed by unit."""

    @property
    def addresses(self) -> list:
        return [str(a) for a in self.neurons]

    @property
    def layers(self) -> list:
        return list(dict.fromkeys(a.layer for a in self.neurons))


@dataclass(repr=False)
class NeuronScores(UnitAddresses, Result):
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
