r"""The capstone: five lenses on one network — do they agree on which neurons matter?

The only package that imports the chapter packages. :func:`compare` scores every
hidden neuron (addressed by :class:`nifkit.models.Neuron`, ``"layer:index"``) through
each lens, with each chapter's own functions (:mod:`.lenses` documents the reduction
to one number per neuron); :func:`knockout_truth` measures what the network loses
without each neuron and each ``k``-set (batched knockouts through
:mod:`nifkit.intervene`); :func:`score_lenses` scores the lenses against it (Spearman's
rho, precision of the top-``k``, joint knockout of the top-``k``, modules recovered);
:mod:`.agreement` gives the lens x lens matrix with intervals over samples and seeds and
the cross-layer pitfall. Plots in :mod:`.plots`, the :class:`CompareExplorer` widget and
the exercise checkers :func:`check_lens` and (chapter 7)
:func:`check_channel_positions`; :func:`lens_costs` measures what each lens needs and costs
(chapter 7).
"""
from .agreement import Agreement, CrossLayer, agreement_matrix, bootstrap_agreement, cross_layer, seed_agreement
from .costs import LENS_NEEDS, LensCosts, ResidentPeak, lens_costs
from .exercise import check_channel_positions, check_lens
from ..models.units import hidden_neurons
from ..results import NeuronScores
from .harness import DEFAULT_LENSES, Comparison, compare, lens_data
from .lenses import LENSES, get_lens, lens_names, register_lens, unregister_lens, validate_scores
from .truth import KnockoutTruth, LensScore, knockout_truth, module_knockouts, score_lenses, spearman

_WIDGET = ("CompareExplorer", "CompareView")

__all__ = [
    "DEFAULT_LENSES", "Comparison", "compare", "lens_data", "LENSES", "NeuronScores", "get_lens", "hidden_neurons",
    "lens_names", "register_lens", "unregister_lens", "validate_scores", "KnockoutTruth", "LensScore",
    "knockout_truth", "module_knockouts", "score_lenses", "spearman", "Agreement", "CrossLayer", "agreement_matrix",
    "bootstrap_agreement", "cross_layer", "seed_agreement", "check_lens", "check_channel_positions",
    "LENS_NEEDS", "LensCosts", "ResidentPeak", "lens_costs", "CompareExplorer", "CompareView",
]


def __getattr__(name):  # the widget needs ipywidgets: imported on first use only
    if name in _WIDGET:
        from . import widget

        return getattr(widget, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
