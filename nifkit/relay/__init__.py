"""Chapter 3: relay information and module detection (Hintze & Adami, Entropy 2023).

Measures and search (:mod:`.measures`), the composed one-vs-rest network and its
control (:mod:`.networks`), batched knockouts (:mod:`.knockouts`), plots, the
:class:`RelayExplorer` widget and the exercise checker.
"""
from .exercises import check_relay_information
from .knockouts import KnockoutEvaluator, OLSResult, balanced_accuracy, knockout_regression, masks_from_bits
from .measures import (
    MAX_EXHAUSTIVE,
    ModuleSearch,
    aggregated_relay,
    class_variables,
    exhaustive_relay,
    greedy_vs_exhaustive,
    module_search,
    reference_module_search,
    relay_information,
    smearedness,
)
from .networks import ControlResult, OneVsRest, compose, train_control, train_one_vs_rest, true_modules
from .widget import RelayExplorer, RelayView

__all__ = [
    "MAX_EXHAUSTIVE", "ModuleSearch", "aggregated_relay", "class_variables", "exhaustive_relay",
    "greedy_vs_exhaustive", "module_search", "reference_module_search", "relay_information", "smearedness",
    "KnockoutEvaluator", "OLSResult", "balanced_accuracy", "knockout_regression", "masks_from_bits",
    "ControlResult", "OneVsRest", "compose", "train_control", "train_one_vs_rest", "true_modules",
    "RelayExplorer", "RelayView", "check_relay_information",
]
