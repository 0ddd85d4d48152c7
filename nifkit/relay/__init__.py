"""Chapter 3: relay information and module detection (Hintze & Adami, Entropy 2023).

Measures and search (:mod:`.measures`), the composed one-vs-rest network and its
control (:mod:`.networks`), the knockout regression (:mod:`.regression`), plots, the
:class:`RelayExplorer` widget and the exercise checker. The knockouts themselves are
:meth:`nifkit.intervene.Knockouts.readout` (the one intervention mechanism).
"""
from .exercise import check_relay_information
from .measures import (
    MAX_EXHAUSTIVE,
    ModuleSearch,
    aggregated_relay,
    class_variables,
    exhaustive_relay,
    greedy_vs_exhaustive,
    model_module_search,
    module_search,
    reference_module_search,
    relay_information,
    smearedness,
)
from .regression import OLSResult, knockout_regression
from .networks import ControlResult, OneVsRest, compose, train_control, train_one_vs_rest, true_modules
from .scores import neuron_scores, search_modules
from .._lazy import lazy_widget

_WIDGET = ("RelayExplorer", "RelayView")

__all__ = [
    "MAX_EXHAUSTIVE", "ModuleSearch", "aggregated_relay", "class_variables", "exhaustive_relay",
    "greedy_vs_exhaustive", "module_search", "reference_module_search", "relay_information", "smearedness",
    "OLSResult", "knockout_regression",
    "ControlResult", "OneVsRest", "compose", "train_control", "train_one_vs_rest", "true_modules",
    "RelayExplorer", "RelayView", "check_relay_information", "neuron_scores", "search_modules",
    "model_module_search",
]

__getattr__ = lazy_widget(__name__, _WIDGET)  # the widget needs ipywidgets: imported on first use
