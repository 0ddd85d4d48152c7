"""Widget building blocks every chapter reuses.

Plain ipywidgets (no custom JavaScript), so they work in JupyterLab, Notebook 7 and
VS Code. An :class:`Explorer` wires controls to a ``compute`` step and a ``render``
step; it keeps its last result in ``.result`` and its last figure in
``.plot.figure`` so tests can drive it without a browser::

    class MyExplorer(Explorer):
        def __init__(self, data):
            self.data = data
            super().__init__({"bins": bins_slider()}, title="My explorer")

        def compute(self):
            return some_measure(self.data, n_bins=self.value("bins"))

        def render(self, result):
            self.readout.set(f"estimate: {result:.3f} bits")
            self.plot.draw(lambda ax: ax.bar([0], [result]))

    ex = MyExplorer(data); ex            # shows it
    ex.controls["bins"].value = 12       # recomputes; ex.result is updated
"""
from __future__ import annotations

import html
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from .._validation import checked

__all__ = [
    "STYLE",
    "Explorer",
    "PlotArea",
    "Readout",
    "ProgressArea",
    "layer_picker",
    "neuron_picker",
    "bins_slider",
    "samples_slider",
]

#: The style of every control: the description is shown in full, not cut to a fixed width.
STYLE = {"description_width": "initial"}


@checked
def layer_picker(names, value=None, description: str = "layer") -> W.Dropdown:
    """Dropdown over layer names (as in ``model.named_modules()``)."""
    names = list(names)
    if not names:
        raise ValueError("layer_picker needs at least one layer name")
    return W.Dropdown(options=names, value=value if value is not None else names[0], description=description,
                      style=STYLE)


@checked
def neuron_picker(n_neurons: int, value: int = 0, description: str = "neuron") -> W.IntSlider:
    """Slider over neuron indices ``0..n_neurons-1``."""
    if n_neurons < 1:
        raise ValueError("neuron_picker needs at least one neuron")
    return W.IntSlider(value=value, min=0, max=n_neurons - 1, description=description, continuous_update=False,
                       style=STYLE)


@checked
def bins_slider(value: int = 8, min: int = 2, max: int = 32, description: str = "bins") -> W.IntSlider:
    """Number of bins per neuron."""
    return W.IntSlider(value=value, min=min, max=max, description=description, continuous_update=False,
                       style=STYLE)


@checked
def samples_slider(value: int = 1000, min: int = 50, max: int = 20000, description: str = "samples",
                   steps: int = 25) -> W.SelectionSlider:
    """Sample size on a log scale (a selection slider over log-spaced integers)."""
    opts = sorted(set(np.unique(np.geomspace(min, max, steps).astype(int)).tolist() + [int(value)]))
    return W.SelectionSlider(options=opts, value=int(value), description=description, continuous_update=False,
                             style=STYLE)


class Readout:
    """A one-line HTML readout with CSS class ``nifkit-readout`` (browser tests find it)."""

    def __init__(self, text: str = ""):
        self.widget = W.HTML()
        self.widget.add_class("nifkit-readout")
        self.set(text)

    def set(self, text: str, html_ok: bool = False) -> None:
        self.text = text
        body = text if html_ok else html.escape(text)
        self.widget.value = f"<span style='font-family:monospace'>{body}</span>"


class PlotArea:
    """An output area that redraws a matplotlib figure; keeps the last figure."""

    def __init__(self, figsize=(6.0, 3.6), ncols: int = 1):
        self.figsize = figsize
        self.ncols = ncols
        self.widget = W.Output()
        self.figure = None
        self.n_draws = 0

    def draw(self, fn: Callable) -> None:
        """Call ``fn(ax)`` (or ``fn(axes)`` when ``ncols > 1``) on a fresh figure and show it."""
        from IPython.display import display

        fig, axes = plt.subplots(1, self.ncols, figsize=self.figsize, squeeze=True)
        try:
            fn(axes)
            fig.tight_layout()
        finally:
            plt.close(fig)  # never leak figures into the notebook's own output
        self.figure = fig
        self.n_draws += 1
        with self.widget:
            self.widget.clear_output(wait=True)
            display(fig)


class ProgressArea:
    """A progress bar and label for recomputations that take more than a moment."""

    def __init__(self):
        self.bar = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="50%", visibility="hidden"))
        self.label = W.Label("")
        self.widget = W.HBox([self.bar, self.label])

    @contextmanager
    def task(self, total: int, text: str = "working"):
        """Show the bar for ``total`` steps; yields a function ``step(n=1)``."""
        self.bar.max = max(1, int(total))
        self.bar.value = 0
        self.bar.layout.visibility = "visible"
        self.label.value = text

        def step(n: int = 1):
            self.bar.value = min(self.bar.max, self.bar.value + n)

        try:
            yield step
        finally:
            self.bar.layout.visibility = "hidden"
            self.label.value = ""


class Explorer(ABC):
    """Controls -> ``compute()`` -> ``render(result)``; subclasses implement both.

    ``controls`` is a dict name -> widget with a ``value`` trait. Every change of a
    control recomputes. Errors raised by ``compute`` are shown in the readout instead of
    breaking the widget, and kept in ``.error``.
    """

    def __init__(self, controls: dict, title: str = "", figsize=(6.0, 3.6), ncols: int = 1, extra=None):
        self.controls = dict(controls)
        self.readout = Readout()
        self.plot = PlotArea(figsize=figsize, ncols=ncols)
        self.progress = ProgressArea()
        self.result = None
        self.error = None
        self.n_updates = 0
        header = [W.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows = [W.HBox(list(self.controls.values())[i : i + 3]) for i in range(0, len(self.controls), 3)]
        self.widget = W.VBox(header + rows + [self.progress.widget, self.readout.widget, self.plot.widget]
                             + list(extra or []))
        for ctrl in self.controls.values():
            ctrl.observe(self._on_change, names="value")
        self.update()

    def value(self, name: str):
        return self.controls[name].value

    def _on_change(self, _change) -> None:
        self.update()

    def update(self) -> None:
        """Recompute and redraw now."""
        try:
            self.result = self.compute()
            self.error = None
        except (ValueError, RuntimeError) as exc:  # show, don't crash the widget
            self.error = exc
            self.readout.set(f"⚠ {exc}")
            return
        self.n_updates += 1
        self.render(self.result)

    @abstractmethod
    def compute(self):
        """Return the result for the current control values."""

    @abstractmethod
    def render(self, result) -> None:
        """Draw ``result`` into ``self.plot`` and ``self.readout``."""

    def _repr_mimebundle_(self, **kwargs):
        """The widget view, plus a PNG of the current figure for places without a kernel.

        JupyterLab, Notebook 7 and VS Code show the live widget (their widget renderer
        outranks images); a static page of the executed notebook (the course book)
        shows the picture of the explorer's view when it ran.
        """
        data = self.widget._repr_mimebundle_(**kwargs)
        if self.plot.figure is not None:
            import base64
            import io

            buf = io.BytesIO()
            self.plot.figure.savefig(buf, format="png", dpi=96, bbox_inches="tight")
            data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        return data
