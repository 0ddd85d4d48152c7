"""nifkit: information-theoretic interpretability of neural networks, for Jupyter.

Subpackages and modules: :mod:`nifkit.info` (estimators), :mod:`nifkit.record`
(activations of named layers), :mod:`nifkit.data` (offline data sets), :mod:`nifkit.runtime`
(the thread policy),
:mod:`nifkit.models` (builders and training with snapshots), :mod:`nifkit.plots`,
:mod:`nifkit.widgets`.
"""
__version__ = "0.1.0"

from . import info, runtime  # noqa: F401
from .config import fast_mode  # noqa: F401
