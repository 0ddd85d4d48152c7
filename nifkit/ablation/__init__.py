r"""Information-ordered cumulative ablation (Amjad, Liu & Geiger, TNNLS 2022).

The chapter asks: do information-theoretic quantities of single neurons tell which
neurons the network needs? Three quantities of a neuron's *binned* output ``T``:

.. math::

    H(T) = -\sum_t p(t)\log_2 p(t)

    I(T;Y) = H(T) + H(Y) - H(T,Y) = \sum_y p(y)\, D_{KL}(P_{T|y} \,\|\, P_T)

    \mathrm{sel}(T) = \max_y D_{KL}(P_{T|y} \,\|\, P_T)

The second line is an identity; the vector ``KL(P_T|y || P_T)`` over the classes is the
neuron's *per-class KL profile* (kept for plotting). The selectivity is a
**reconstruction**: the paper's abstract speaks of "a class selectivity measure based
on KL divergence"; we take the largest entry of the profile (``selectivity="max"``).
Two variants are offered: ``"max_minus_mean"`` (largest entry minus the mean of the
others) and ``"ratio"`` (``(max - rest) / (max + rest)``, the shape of Morcos et al.'s
index, in ``[0, 1]``).

Neurons are then *cumulatively ablated* (outputs set to 0, or to their mean) in
ascending and descending order of a quantity, and in random orders (the baseline),
per layer and across the whole network; test accuracy and loss are plotted against the
number ablated.

Reading the curves (hypotheses, not proofs):

* **Descending** removes the most informative neurons first. If accuracy holds up for
  a long while, the remaining neurons carry the same class information: *redundancy*.
* **Ascending** removes the least informative first. If accuracy drops early although
  each removed neuron alone says little about the class, those neurons mattered
  *jointly*: a sign of *synergy*.
* A measure that ranks importance well puts the ascending curve above the descending
  one; :func:`curve_gap` measures the area between them (positive = good ranking).
* Quantities are comparable **within** a layer, not **across** layers: their scale depends
  on the layer's width, activation function, bins and place in the network. Pooling
  layers mixes scales, and ordering the whole network by one raw measure partly orders
  layers instead of neurons (``network_normalize="rank"`` in :func:`ablation_study`
  ranks within layers first; :func:`importance_correlations` gives pooled and
  within-layer rank correlations side by side).

The engine (:class:`AblationEngine`) never re-runs the model from the input per step:
for a ``nn.Sequential`` model it runs the layers up to the ablated layer once, then
pushes a batch of masked copies ``(samples, steps, units)`` through the remaining
layers in memory-bounded chunks. When the next layer is ``nn.Linear`` (the usual case)
its output at *every* step of a cumulative order is a partial sum of rank-one updates,
``z_k = z_0 - sum_{j < k} (a_{o_j} - v_{o_j}) w_{o_j}``, built in blocks of 16 units
(block totals accumulated in float64; inside a block one masked matrix product gives
all partial sums); single-neuron ablations are one rank-one update each. Any other
model falls back to hooks (correct, slower). :func:`reference_ablation_curve` is the
plain approach (one hooked forward pass from the input per step) used as the anchor in
tests and in ``benchmarks/bench_ablation.py``.

Package layout: :mod:`.measures` (per-neuron measures), :mod:`.curves` (the engine and
curves), :mod:`.study` (all curves, importance, summaries), :mod:`.plots`,
:mod:`.widget` (:class:`AblationExplorer`), :mod:`.exercise` (the checker).
"""
from .._lazy import lazy_widget
from ..info import kl_profile_from_counts
from ..intervene import VALUES
from .curves import (
    DIRECTIONS,
    AblationCurve,
    AblationEngine,
    ablation_curve,
    ablation_order,
    curves_match,
    reference_ablation_curve,
)
from .exercise import check_kl_profile
from .measures import (
    MEASURE_LABELS,
    MEASURES,
    SELECTIVITY_KINDS,
    LayerMeasures,
    NeuronMeasures,
    hidden_layers,
    layer_activations,
    measures_from_counts,
    model_neuron_measures,
    neuron_measures,
)
from .scores import neuron_scores
from .study import (
    AblationStudy,
    ImportanceCorrelation,
    SingleImportance,
    ablation_study,
    measure_layers,
    compare_studies,
    curve_area,
    curve_gap,
    importance_correlations,
    single_neuron_importance,
    summarize_study,
)

_WIDGET = ("AblationExplorer", "AblationView")

__all__ = [
    "DIRECTIONS", "MEASURES", "MEASURE_LABELS", "SELECTIVITY_KINDS", "VALUES", "AblationCurve", "AblationEngine",
    "AblationStudy", "ImportanceCorrelation", "LayerMeasures", "NeuronMeasures", "SingleImportance", "ablation_curve",
    "ablation_order", "ablation_study", "measure_layers", "check_kl_profile", "compare_studies", "curve_area", "curve_gap",
    "curves_match", "hidden_layers", "importance_correlations", "kl_profile_from_counts", "layer_activations",
    "measures_from_counts", "neuron_measures", "reference_ablation_curve", "single_neuron_importance",
    "summarize_study", "AblationExplorer", "AblationView", "neuron_scores", "model_neuron_measures",
]

__getattr__ = lazy_widget(__name__, _WIDGET)  # the widget needs ipywidgets: imported on first use
