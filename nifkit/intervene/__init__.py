r"""The one way to change a network while measuring it: knockouts.

Every chapter that asks "what if these units (or edges) were not there?" goes through
this module, with the same names as recording (module names from
:func:`nifkit.models.walk`) and the same guarantees: the model runs in eval mode under
``no_grad`` (Dropout off, BatchNorm statistics untouched), every hook is removed and
every weight, mode and flag restored, also on exceptions.

* :class:`Knockouts` evaluates **many** knockouts of one model on one labelled set at
  once: ``evaluate(layers, masks, value)`` with bool masks ``(S, units)`` per layer gives
  accuracy, loss and per-class accuracy for all ``S`` knockouts. Units are fixed to 0
  (``"zero"``), to their mean over the set (``"mean"``) or to given values. For an
  ``nn.Sequential`` the layers before the first knocked-out one run once (cached) and
  the ``S`` variants go through the rest as one batch ``(samples, S, units)`` in
  memory-bounded chunks; a following ``nn.Linear`` is evaluated with rank-one updates
  for cumulative orders and single units, ``z_k = z_0 - sum_{j<k} (a_{o_j} - v_{o_j})
  w_{o_j}``. Other models use forward hooks (several knockouts per forward pass, as ``samples x
  knockouts`` rows; a unit of a conv output is a channel, knocked out as a whole map),
  attached by the one hook context :func:`nifkit.models.hooks`, and :func:`nifkit.record.record`
  for the layers' outputs.
* :meth:`Knockouts.readout` is the second evaluation mode (:mod:`.readout`): knockouts
  of one hidden layer scored through the linear readout after it, by batched products
  and split sums: per-class balanced accuracy for stacks of masks or for all ``2^m``
  subsets of the layer at once (chapter 3's knockouts).
* :func:`knock_out` is a context manager that knocks units out with hooks while you
  run the model yourself.
* :func:`knock_out_layers` replaces whole layers (or a random share of their channels)
  by their mean, zeros or their input (bypass), one layer at a time (chapter 2's check).
* :func:`evaluate_edge_knockouts` zeroes (or sets) **edges** (weights) of Linear layers,
  ``S`` edge sets at once (batched weights); :func:`knock_out_edges` is the context
  manager that edits weights in place and restores them.


Package layout: :mod:`.units` (Knockouts, input checks), :mod:`.edges`
(knock_out_edges, evaluate_edge_knockouts), :mod:`.layers` (knock_out_layers),
:mod:`.readout` (ReadoutKnockouts, balanced_accuracy, masks_from_bits), :mod:`.hooked` (the
batched hooked path of any model: channel knockouts of ResNets; knock_out).
"""
from .edges import evaluate_edge_knockouts, knock_out_edges
from .layers import LAYER_MODES, LayerKnockouts, knock_out_layers
from .hooked import evaluate_hooked, knock_out, rows_per_forward
from .readout import ReadoutKnockouts, balanced_accuracy, masks_from_bits
from .units import (
    VALUES,
    KnockoutResult,
    Knockouts,
    as_float_tensor,
    check_labels,
    cumulative_masks,
    flat_sequential,
)

__all__ = ["Knockouts", "KnockoutResult", "VALUES", "knock_out", "evaluate_hooked", "rows_per_forward", "knock_out_edges", "evaluate_edge_knockouts",
           "cumulative_masks", "flat_sequential", "check_labels", "as_float_tensor", "knock_out_layers",
           "LayerKnockouts", "LAYER_MODES", "ReadoutKnockouts", "balanced_accuracy", "masks_from_bits"]
