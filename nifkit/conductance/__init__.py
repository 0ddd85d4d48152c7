"""Chapter 2: the conductance-based information plane and ITE (Dabounou & Baazzouz 2024).

* :mod:`.attribution` - conductance of every unit of every chosen layer from one
  interpolation batch (:func:`layer_conductance`), baselines, alpha rules, blocks.
"""
from .attribution import (  # noqa: F401
    BASELINES, METHODS, OUTPUTS, Conductance, blocks, layer_conductance, make_baseline, path_alphas, path_gradients,
)
