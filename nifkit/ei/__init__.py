r"""Effective information (EI) of network layers and the causal plane.

Marrow, Michaud & Hoel, "Examining the causal structures of deep neural networks using
information theory", Entropy 22(12):1429, 2020. The reference implementation is
``deep-ei`` 0.7.0; this module computes the same estimators, vectorised.

A *layer* ``L1 -> L2`` is a weight matrix ``W`` (outputs x inputs), an optional bias
``b`` and an elementwise activation ``g``: ``t_B = g(sum_A W[B, A] t_A + b_B)``. The
inputs are set **by intervention** to independent uniform noise over ``in_range``
(the maximum-entropy perturbation), every node is binned into equal-width bins over a
fixed range, and mutual information is the plug-in estimate from the counts, in bits:

.. math::

    EI(L_1 \to L_2) = I(L_1; L_2)\ |\ do(L_1 = H^{max})
    \qquad\text{(vector EI: whole input vector vs whole output vector)}

    EI_{parts} = \sum_{(A, B)} I(t_A; t_B)\ |\ do(L_1 = H^{max})
    \qquad\text{(all inputs noised together)}

    \mathrm{sensitivity} = \sum_{(A, B)} I(t_A; t_B)\ |\ do(A = H^{max}),\ do(L_1 \setminus A = 0)

    \mathrm{degeneracy} = \mathrm{sensitivity} - EI, \qquad \phi = EI - EI_{parts}

The sums run over the edges of the layer (every input-output pair of a Linear layer;
the pairs inside the receptive fields of a Conv2d layer). The *causal plane* places a
layer at (sensitivity, degeneracy); the line degeneracy = sensitivity is EI = 0.

How it is computed (no Python loop over samples, edges or pairs):

* **Noise in blocks.** Samples are drawn in chunks of ``CHUNK`` rows, each chunk from
  its own generator seeded by ``(seed, stream, chunk index)``, and grouped into blocks
  that fit ``memory_budget``. The samples therefore do not depend on the block size:
  streaming 10^7 samples through small blocks gives exactly the counts of one big block,
  and ``n_samples=n`` uses the first ``n`` samples of ``n_samples=2n``.
* **EI_parts**: the joint counts of all input-output pairs of a block are one int8
  one-hot matrix product (the counting of :func:`nifkit.info.pairwise_mi`), accumulated over
  blocks; MI of all pairs from the counts at once (:func:`nifkit.info.mi_from_counts`).
* **Vector EI**: the codes of all inputs and of all outputs are packed into one 64-bit
  key per sample; joint states are counted with ``torch.unique`` per block and merged.
  The estimate needs the joint state space ``in_bins**n_in * out_bins**n_out`` to fit in
  63 bits (and, to mean anything, far more samples than ``in_bins**n_in`` input states):
  it is realistic for small layers only. Wider layers raise a clear error (or, in
  :func:`model_ei` by default, are reported as NaN with a note) - use EI_parts there,
  as the paper does.
* **Sensitivity**: with only input ``A`` noised and the others at 0, output ``B`` is
  ``g(W[B, A] x + b_B)``, a function of ``x = t_A`` alone. For a monotone activation the
  output bin is a step function of ``x``: output code ``>= v`` exactly when ``x`` is past
  the threshold ``(g^{-1}(e_v) - b_B) / W[B, A]`` (``e_v`` the bin edges,
  ``g^{-1}(e) = inf{z : g(z) >= e}`` found by bisection). So each input's noise run is
  sorted once and the counts of *every* edge come from one batched ``searchsorted`` of
  the thresholds: no forward pass at all. Non-monotone activations (GELU, SiLU, custom
  callables) evaluate ``g(W[B, A] x_A + b_B)`` for all edges as one broadcast tensor op
  per block and count with one ``bincount``. Both give the same counts (up to samples
  within float rounding of a bin edge).

The layer is evaluated in float64, so rounding never moves a value across a bin edge
(deep-ei evaluates in float32, where ``sigmoid(z)`` is exactly 0.5 - an edge of 8 bins
on (0, 1) - for ``|z|`` below about 6e-8; at small initial weights that shows up as
spurious sensitivity). Binning follows :class:`nifkit.info.Binner`'s ``binning="fixed"`` rule: ``code =
floor((v - lo) / (hi - lo) * bins)``, values outside the range fall into the edge bins
(``deep-ei`` instead drops a pair's out-of-range samples; with the default sigmoid and
(0, 1) nothing is out of range). ``out_range="fit"`` fits each output neuron's range to
what its activation can reach under the noise.

Plug-in MI is biased upward: an independent pair with ``Bx x By`` cells shows about
``(Bx-1)(By-1) / (2 n ln 2)`` bits, and EI_parts sums that over every edge (see
``LayerEI.bias_parts``). The bias falls as ``1/n``; ``n_samples="auto"`` doubles the sample
until the estimate changes by less than ``threshold`` (relative), as deep-ei does.

Package layout: :mod:`.layers` (a layer and its activation), :mod:`.sampling` (noise and
counts), :mod:`.measure` (:func:`layer_ei`, :class:`LayerEI`, :class:`ModelEI`),
:mod:`.network` (the weight layers of any traced network: BatchNorm folded, skipped layers),
:mod:`.model` (:func:`model_ei`, :func:`ei_over_training`, :func:`edge_ablation`),
:mod:`.blocks` (:func:`block_ei`: a block as a whole, a reconstruction), :mod:`.scores`,
:mod:`.plots`, :mod:`.widget` (:class:`CausalExplorer`), :mod:`.exercise`.
"""
from .._lazy import lazy_widget
from .blocks import BlockEI, block_ei
from .exercise import check_edge_sensitivity, identity_ei
from .measure import MEASURES, LayerEI, ModelEI, layer_ei, plane_kind
from .model import CausalHistory, EdgeAblation, edge_ablation, ei_over_training, history_from_results
from .model import measured_layers, model_ei
from .sampling import CHUNK
from .scores import neuron_scores

_WIDGET = ("CausalExplorer", "CausalView")

__all__ = [
    "LayerEI", "ModelEI", "CausalHistory", "EdgeAblation", "layer_ei", "model_ei", "ei_over_training",
    "edge_ablation", "plane_kind", "history_from_results", "measured_layers", "identity_ei",
    "check_edge_sensitivity", "CHUNK", "MEASURES", "CausalExplorer", "CausalView", "neuron_scores", "BlockEI",
    "block_ei",
]

__getattr__ = lazy_widget(__name__, _WIDGET)  # the widget needs ipywidgets: imported on first use
