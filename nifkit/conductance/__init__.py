"""Chapter 2: the conductance-based information plane and ITE (Dabounou & Baazzouz 2024).

* :mod:`.attribution` - conductance of every unit of every chosen layer from one
  interpolation batch (:func:`layer_conductance`), baselines, alpha rules; :func:`blocks`
  (its default layers) is the one walker's, re-exported from :mod:`nifkit.models`;
* :mod:`.plane` - the information plane of conductance and of activations, ITE
  (reconstructed formulas), the knockout check, trajectories through training;
* :mod:`.zoo` - EfficientNet-Lite0 and 20 ImageNet photos offline; torchvision's
  ResNet-50 / VGG-16 and Imagenette online;
* :mod:`.plots`, :mod:`.widget` (:class:`ConductanceExplorer`), :mod:`.exercise`.
"""
from .._lazy import lazy_widget
from . import zoo
from .attribution import (
    BASELINES, METHODS, OUTPUTS, Conductance, blocks, layer_conductance, make_baseline, path_alphas,
    path_gradients,
)
from .exercise import check_conductance, reference_conductance
from .plane import (
    ESTIMATORS, ITE, ITE_FORMULAS, KNOCKOUT_MODES, PLANE_BINNINGS, InformationPlane, Knockout, PlaneSnapshot,
    information_plane, ite, knockout, layer_codes, plane_from_values, plane_series, plane_trajectory, verdict_check,
)
from .scores import neuron_scores

_WIDGET = ("ConductanceExplorer", "ConductanceView")

__all__ = [
    "zoo", "BASELINES", "METHODS", "OUTPUTS", "Conductance", "blocks", "layer_conductance",
    "make_baseline", "path_alphas", "path_gradients", "check_conductance", "reference_conductance", "ESTIMATORS",
    "ITE", "ITE_FORMULAS", "KNOCKOUT_MODES", "PLANE_BINNINGS", "InformationPlane", "Knockout", "PlaneSnapshot", "plane_series",
    "information_plane", "ite", "knockout", "layer_codes", "plane_from_values", "plane_trajectory", "verdict_check",
    "neuron_scores", "ConductanceExplorer", "ConductanceView",
]

__getattr__ = lazy_widget(__name__, _WIDGET)  # the widget needs ipywidgets: imported on first use
