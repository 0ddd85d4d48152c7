"""nifkit: information-theoretic interpretability of neural networks, for Jupyter.

Shared layers: :mod:`nifkit.info` (estimators and counts), :mod:`nifkit.models`
(builders, training with snapshots, the layer walker), :mod:`nifkit.record` (activations
of named layers), :mod:`nifkit.intervene` (knockouts), :mod:`nifkit.dynamics` (measures
over training), :mod:`nifkit.runtime` (threads, seeds, progress, model state),
:mod:`nifkit.data` (offline data sets), :mod:`nifkit.plots`, :mod:`nifkit.widgets`.
One package per chapter: :mod:`nifkit.nif`, :mod:`nifkit.conductance`, :mod:`nifkit.relay`,
:mod:`nifkit.ablation`, :mod:`nifkit.ei`; the capstone :mod:`nifkit.compare`.
See docs/engineers.md, "The house".
"""
__version__ = "0.1.0"

from . import info, runtime
from .config import fast_mode

__all__ = ["info", "runtime", "fast_mode", "__version__"]
