"""Recording what a model computes, by layer name.

* :mod:`nifkit.record.activations` - activations, inputs and gradients of named layers
  over a data set (:func:`record`, :class:`Recorder`, :class:`Recording`);
* :mod:`nifkit.record.path` - layer outputs and output gradients at every point of a
  straight interpolation path from a baseline to each input (:func:`path_gradients`;
  chunked, memory-bounded; chapter 2's conductance is built on it).
"""
from .activations import REUSED_MODES, Recorder, Recording, record, resolve_layers
from .path import (
    BASELINES,
    METHODS,
    OUTPUTS,
    PathProbe,
    PathSetup,
    PathTaps,
    apply_output,
    check_output,
    check_path_inputs,
    make_baseline,
    path_alphas,
    path_chunks,
    path_gradients,
    path_layers,
    path_targets,
    plan_path_chunks,
    probe_path,
)

__all__ = ["Recorder", "Recording", "record", "resolve_layers", "REUSED_MODES", "path_alphas", "make_baseline",
           "path_layers", "path_gradients", "PathTaps", "PathProbe", "PathSetup", "probe_path", "plan_path_chunks", "path_chunks",
           "apply_output", "check_path_inputs", "check_output", "path_targets", "METHODS", "BASELINES", "OUTPUTS"]
