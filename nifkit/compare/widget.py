"""The capstone's explorer: pick two lenses and a neuron; see the scatter of the two
lenses' scores, the neuron in every lens's ranking, and the knockout drop of each
lens's top-k."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from ..widgets.base import Explorer
from .plots import plot_lens_ranks, plot_lens_scatter, plot_topk_drops
from .truth import score_lenses, spearman
from ..results import Result
from .._validation import checked

__all__ = ["CompareExplorer", "CompareView"]

_STYLE = {"description_width": "initial"}


@dataclass(repr=False)
class CompareView(Result):
    """What the explorer shows: the two lenses, their rho, the picked neuron and its rank
    under every lens, and the knockout drop of every lens's top-k (``drops``)."""

    lens_x: str
    lens_y: str
    rho: float
    neuron: str
    ranks: dict
    k: int
    drops: dict


class CompareExplorer(Explorer):
    """Five lenses side by side.

    Parameters: a :class:`~nifkit.compare.Comparison` and the
    :class:`~nifkit.compare.KnockoutTruth` of the same network. Controls: ``lens x``,
    ``lens y`` (dropdowns), ``neuron`` (slider over the hidden neurons; its address is
    shown) and ``top k`` (slider). ``.result`` is a :class:`CompareView`; knockout drops
    of each ``k`` are computed once (one batched evaluation) and cached.
    """

    @checked
    def __init__(self, comparison, truth, *, lens_x: str | None = None, lens_y: str | None = None, neuron: int = 0,
                 k: int | None = None):
        self.comparison, self.truth = comparison, truth
        names = comparison.names
        if len(names) < 2:
            raise ValueError("the explorer compares two lenses: run compare() with at least two")
        n = len(comparison.neurons)
        self._cache: dict = {}
        controls = {
            "lens x": W.Dropdown(options=names, value=lens_x or names[0], description="lens x", style=_STYLE),
            "lens y": W.Dropdown(options=names, value=lens_y or names[1], description="lens y", style=_STYLE),
            "neuron": W.IntSlider(value=int(neuron), min=0, max=n - 1, description="neuron", continuous_update=False,
                                  style=_STYLE),
            "top k": W.IntSlider(value=int(k or truth.k), min=1, max=max(1, min(n - 1, 10)), description="top k",
                                 continuous_update=False, style=_STYLE),
        }
        super().__init__(controls, title="Five lenses on one network", figsize=(14, 3.8), ncols=3)

    @checked
    def scores(self, k: int):
        if k not in self._cache:
            self._cache[k] = score_lenses(self.comparison, self.truth, k=k)
        return self._cache[k]

    def compute(self) -> CompareView:
        c = self.comparison
        lx, ly = self.value("lens x"), self.value("lens y")
        j, k = int(self.value("neuron")), int(self.value("top k"))
        sc = self.scores(k)
        ranks = {n: int(round(c.ranks(n)[j])) for n in c.names}
        ranks["knockout"] = int(np.sum(self.truth.drop > self.truth.drop[j]))
        return CompareView(lens_x=lx, lens_y=ly, rho=spearman(c.score(lx), c.score(ly)), neuron=str(c.neurons[j]),
                           ranks=ranks, k=k, drops={r["lens"]: r["topk_drop"] for r in sc.table()})

    def render(self, r: CompareView) -> None:
        rk = ", ".join(f"{n} {v}" for n, v in r.ranks.items())
        self.readout.set(f"{r.lens_x} vs {r.lens_y}: rho = {r.rho:+.2f}; neuron {r.neuron} ranks: {rk}; "
                         f"top-{r.k} knockout drop: "
                         + ", ".join(f"{n} {v:.3f}" for n, v in r.drops.items()))
        j = int(self.value("neuron"))

        def draw(axes):
            plot_lens_scatter(self.comparison, r.lens_x, r.lens_y, highlight=j, ax=axes[0])
            plot_lens_ranks(self.comparison, highlight=j, truth=self.truth, ax=axes[1])
            plot_topk_drops(self.scores(r.k), ax=axes[2])

        self.plot.draw(draw)
