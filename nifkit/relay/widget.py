"""The relay chapter's explorer: pick a class, slide along the greedy search, and see
the remaining set on the layer, its ``I_R`` on the curve, the balanced accuracy when it
is knocked out, and its neurons' incoming weights as images."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import numpy as np

from ..widgets.base import STYLE, Explorer
from ..intervene import ReadoutKnockouts
from .measures import ModuleSearch
from .plots import plot_incoming_weights, plot_layer_set, plot_relay_curves

__all__ = ["RelayExplorer", "RelayView"]

@dataclass
class RelayView:
    """What the explorer shows for (class, step)."""

    cls: int
    step: int
    members: np.ndarray
    relay: float
    knockout_balanced: float
    base_balanced: float
    true_module: list | None


class RelayExplorer(Explorer):
    """Greedy module search, live.

    Parameters
    ----------
    search : :class:`~nifkit.relay.ModuleSearch` of the hidden layer
    evaluator : :class:`~nifkit.intervene.ReadoutKnockouts` of the same layer
        (``Knockouts(model, (X, y)).readout(layer)``)
    weights : incoming weights ``(neurons, pixels)`` of the hidden layer (optional)
    image_shape : ``(H, W)`` of the inputs, to draw ``weights`` as images
    true_modules : ``{class: [neurons]}`` when known (composed networks)

    Controls: ``class`` (dropdown) and ``step`` (slider: number of neurons removed by the
    greedy search). Knockouts of every greedy set are computed once per class (one
    batched call) and cached. ``.result`` is a :class:`RelayView`.
    """

    def __init__(self, search: ModuleSearch, evaluator: ReadoutKnockouts, *, weights=None, image_shape=None,
                 true_modules: dict | None = None, step: int | None = None):
        if search.n_neurons != evaluator.n_neurons:
            raise ValueError(f"search has {search.n_neurons} neurons but the evaluator's layer has "
                             f"{evaluator.n_neurons}; use the same hidden layer")
        self.search, self.evaluator = search, evaluator
        self.weights = None if weights is None else np.asarray(weights)
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.true_modules = true_modules
        self._cache: dict = {}
        m = search.n_neurons
        controls = {
            "class": W.Dropdown(options=[int(c) for c in search.classes], value=int(search.classes[0]),
                                description="class", style=STYLE),
            "step": W.IntSlider(value=m - 2 if step is None else int(step), min=0, max=m,
                                description="greedy step", continuous_update=False, style=STYLE),
        }
        super().__init__(controls, title="Relay information: greedy module search", figsize=(13, 3.4), ncols=3)

    def knockouts(self, cls: int) -> np.ndarray:
        """Balanced accuracy of ``cls`` with each greedy set (steps 0..m) knocked out."""
        if cls not in self._cache:
            m = self.search.n_neurons
            row = self.search.row(cls)
            masks = np.zeros((m + 1, m), bool)
            for k in range(m + 1):  # m+1 nested sets (greedy steps)
                masks[k, self.search.order[row, k:]] = True
            acc = self.evaluator.accuracies(np.vstack([np.zeros((1, m), bool), masks]))["balanced"][:, cls]
            self._cache[cls] = (acc[1:], float(acc[0]))
        return self._cache[cls]

    def compute(self) -> RelayView:
        cls, step = int(self.value("class")), int(self.value("step"))
        m = self.search.n_neurons
        step = min(max(step, 0), m)
        ko, base = self.knockouts(cls)
        members = self.search.set_at(cls, m - step)
        true = None if self.true_modules is None else self.true_modules.get(cls)
        return RelayView(cls=cls, step=step, members=members, relay=float(self.search.curve[self.search.row(cls), step]),
                         knockout_balanced=float(ko[step]), base_balanced=base, true_module=true)

    def render(self, r: RelayView) -> None:
        self.readout.set(f"class {r.cls}, step {r.step}: set of {len(r.members)} neurons {r.members.tolist()} "
                         f"I_R = {r.relay:.3f} bits; knocked out: balanced accuracy {r.knockout_balanced:.3f} "
                         f"(intact {r.base_balanced:.3f})")

        def draw(axes):
            plot_relay_curves(self.search, r.cls, step=r.step, ax=axes[0])
            plot_layer_set(self.search.n_neurons, r.members, true=r.true_module, ax=axes[1])
            axes[1].set_title(f"greedy set; knockout balanced accuracy {r.knockout_balanced:.3f}", fontsize=9)
            if self.weights is not None and self.image_shape is not None:
                shown = r.members[:8]
                plot_incoming_weights(self.weights[shown], self.image_shape, ax=axes[2], labels=shown.tolist(),
                                      title=f"incoming weights of the set (first {len(shown)})")
            else:
                axes[2].bar(np.arange(self.search.n_neurons + 1), self.knockouts(r.cls)[0], color="0.6")
                axes[2].bar([r.step], [r.knockout_balanced], color="tab:red")
                axes[2].set_xlabel("greedy step")
                axes[2].set_ylabel("balanced accuracy after knockout")

        self.plot.draw(draw)
