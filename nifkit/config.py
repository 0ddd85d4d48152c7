"""Package-wide settings read from the environment.

``NIFKIT_FAST=1`` puts the chapters in *fast mode*: fewer epochs and samples, so the
test suite can execute every notebook quickly. Results are smaller but real.
"""
from __future__ import annotations

import os

__all__ = ["fast_mode", "DEFAULT_MEMORY_BUDGET", "PATH_MEMORY_BUDGET"]

#: the one default of ``memory_budget``: bytes of temporaries a blocked computation may use
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: the default of the path computations (conductance, path gradients): an eighth of the one
#: default, because the autograd graph of a chunk comes on top of a model (and torch) already
#: in memory, and a Binder kernel has 1 GB. Measured on chapter 2's CNN (1,000 digits, 16
#: steps): 256 MiB chunks peaked ~146 MB above the kernel's memory, 64 MiB chunks ~27 MB,
#: same CPU time and the same values (chunks share their end points)
PATH_MEMORY_BUDGET = 64 * 2**20


def fast_mode() -> bool:
    """True when the environment variable ``NIFKIT_FAST`` is set to 1/true/yes."""
    return os.environ.get("NIFKIT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}
