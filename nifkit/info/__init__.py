"""The information-theory core: every chapter's measures are built from these.

Discrete (codes -> bits): :func:`entropy`, :func:`conditional_entropy`,
:func:`mutual_information`, :func:`conditional_mutual_information`,
:func:`co_information`, :func:`entropy_from_counts`.
Binning: :class:`Binner`, :func:`discretize`.
All pairs: :func:`pairwise_mi`, :class:`PairwiseMI` (streaming), :func:`mi_from_counts`.
Continuous: :func:`gaussian_mi`, :func:`ksg_mi`, :func:`dv_mi`; for many pairs at once
:func:`gaussian_mi_pairs`, :func:`ksg_mi_pairs`, :func:`dv_mi_pairs`.
Significance: :func:`shuffle_test`, :func:`pairwise_shuffle_test`.
Bias: :func:`plugin_bias` (the Miller–Madow first-order term).
Counting kernel: :func:`counting_kernel` / :func:`counting_kernel_info` (which exact
product counts pairs on this machine, chosen by measurement, and why),
:func:`set_counting_kernel` or ``NIFKIT_COUNT_KERNEL=int8|float32|float32_packed|auto`` to
force one.
"""
from .binning import METHODS, Binner, discretize
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
from .kernels import counting_kernel, counting_kernel_info, set_counting_kernel
from .neural import dv_mi, dv_mi_pairs
from .null import ShuffleTest, pairwise_shuffle_test, shuffle_test
from .pairwise import PairwiseMI, mi_from_counts, pairwise_mi


def plugin_bias(n_bins_x: int, n_bins_y: int, n_samples: int) -> float:
    """First-order upward bias of the plug-in MI of independent variables, in bits:
    ``(Bx - 1)(By - 1) / (2 n ln 2)`` (Miller–Madow; Panzeri & Treves)."""
    import math

    if n_samples < 1:
        raise ValueError("n_samples must be positive")
    return (n_bins_x - 1) * (n_bins_y - 1) / (2 * n_samples * math.log(2))


__all__ = [
    "Binner", "discretize", "METHODS",
    "entropy", "conditional_entropy", "mutual_information", "conditional_mutual_information",
    "co_information", "entropy_from_counts", "pack",
    "pairwise_mi", "PairwiseMI", "mi_from_counts",
    "gaussian_mi", "gaussian_mi_analytic", "ksg_mi", "gaussian_mi_pairs", "ksg_mi_pairs", "dv_mi", "dv_mi_pairs",
    "shuffle_test", "pairwise_shuffle_test", "ShuffleTest", "plugin_bias",
    "counting_kernel", "counting_kernel_info", "set_counting_kernel",
]
