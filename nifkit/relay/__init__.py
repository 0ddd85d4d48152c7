"""Chapter 3: relay information and module detection (Hintze & Adami, Entropy 2023).

Measures and search (:mod:`.measures`), the composed one-vs-rest network and its
control (:mod:`.networks`), batched knockouts (:mod:`.knockouts`), plots, the
:class:`RelayExplorer` widget and the exercise checker.
"""
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

__all__ = [
    "MAX_EXHAUSTIVE", "ModuleSearch", "aggregated_relay", "class_variables", "exhaustive_relay",
    "greedy_vs_exhaustive", "module_search", "reference_module_search", "relay_information", "smearedness",
]
