"""The information-theory core: every chapter's measures are built from these.

Discrete (codes -> bits): :func:`entropy`, :func:`conditional_entropy`,
:func:`mutual_information`, :func:`conditional_mutual_information`,
:func:`co_information`, :func:`entropy_from_counts`.
Binning: :class:`Binner`, :func:`discretize`; binary splits :func:`binarize`
(exact 1-D 2-means, median, fixed threshold).
Groups (batched): :func:`cmi_extended`, :func:`cmi_subsets`, :func:`cmi_all_subsets`,
:func:`conditional_co_information`, :func:`co_information_removals`.
All pairs: :func:`pairwise_mi`, :class:`PairwiseMI` (streaming: the all-pairs face of
:class:`PairCounts`), :func:`mi_from_counts`.
Continuous: :func:`gaussian_mi`, :func:`ksg_mi`, :func:`dv_mi`; for many pairs at once
:func:`gaussian_mi_pairs`, :func:`ksg_mi_pairs`, :func:`dv_mi_pairs`.
Significance: :func:`shuffle_test`, :func:`pairwise_shuffle_test`, :func:`p_values`.
Counting (:mod:`.counts`, :mod:`.keys`): marginal, pair, label and group counts, packed keys,
mergeable accumulators and :func:`reduce_across_processes` (``torch.distributed``).
Inside this package dependencies run :mod:`.kernels` (exact products, ``c log2 c``, ``LN2``,
the key-bit limit) -> counts (:mod:`.counts`, :mod:`.keys`) -> the measure modules.
Label measures: :func:`kl_profile_from_counts`.
Bias: :func:`plugin_bias` (the Miller–Madow first-order term).
Counting kernel: :func:`counting_kernel` / :func:`counting_kernel_info` (which exact
product counts pairs on this machine, chosen by measurement, and why),
:func:`set_counting_kernel` or ``NIFKIT_COUNT_KERNEL=int8|float32|float32_packed|auto`` to
force one.
"""
from .binning import BINARY_METHODS, METHODS, Binner, binarize, binary_thresholds, discretize, kmeans2_thresholds
from .continuous import gaussian_mi, gaussian_mi_analytic, gaussian_mi_pairs, ksg_mi, ksg_mi_pairs
from .discrete import (
    co_information,
    conditional_entropy,
    conditional_mutual_information,
    entropy,
    entropy_from_counts,
    mutual_information,
    pack,
)
from .groups import (
    cmi_all_subsets,
    cmi_extended,
    cmi_from_labels,
    cmi_subsets,
    co_information_removals,
    compact,
    conditional_co_information,
    group_labels,
)
from .kernels import LN2, MAX_KEY_BITS, counting_kernel, counting_kernel_info, set_counting_kernel
from .neural import dv_mi, dv_mi_pairs
from .null import ShuffleTest, p_values, pairwise_shuffle_test, shuffle_test
from .pairwise import PairwiseMI, pairwise_mi
from .counts import (
    LabelCounts,
    MarginalCounts,
    PairCounts,
    label_counts,
    marginal_counts,
    mi_from_counts,
    pair_counts,
    reduce_across_processes,
)
from .keys import KeyCounts, entropy_from_keys, group_counts, group_keys, pack_keys
from .labels import kl_profile_from_counts
from .._validation import checked


@checked
def plugin_bias(n_bins_x: int, n_bins_y: int, n_samples: int) -> float:
    """First-order upward bias of the plug-in MI of independent variables, in bits:
    ``(Bx - 1)(By - 1) / (2 n ln 2)`` (Miller–Madow; Panzeri & Treves)."""
    from .._validation import check_int

    n_bins_x = check_int(n_bins_x, "n_bins_x", minimum=1)
    n_bins_y = check_int(n_bins_y, "n_bins_y", minimum=1)
    return (n_bins_x - 1) * (n_bins_y - 1) / (2 * n_samples * LN2)


__all__ = [
    "Binner", "discretize", "METHODS", "BINARY_METHODS", "binarize", "binary_thresholds", "kmeans2_thresholds",
    "compact", "group_labels", "cmi_from_labels", "cmi_extended", "cmi_subsets", "cmi_all_subsets",
    "conditional_co_information", "co_information_removals",
    "entropy", "conditional_entropy", "mutual_information", "conditional_mutual_information",
    "co_information", "entropy_from_counts", "pack",
    "pairwise_mi", "PairwiseMI", "mi_from_counts",
    "gaussian_mi", "gaussian_mi_analytic", "ksg_mi", "gaussian_mi_pairs", "ksg_mi_pairs", "dv_mi", "dv_mi_pairs",
    "shuffle_test", "pairwise_shuffle_test", "ShuffleTest", "p_values", "plugin_bias",
    "counting_kernel", "counting_kernel_info", "set_counting_kernel",
    "marginal_counts", "pair_counts", "label_counts", "pack_keys", "group_keys", "group_counts",
    "MarginalCounts", "PairCounts", "LabelCounts", "KeyCounts", "reduce_across_processes", "entropy_from_keys",
    "kl_profile_from_counts", "LN2", "MAX_KEY_BITS",
]
