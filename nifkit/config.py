"""Package-wide settings read from the environment.

``NIFKIT_FAST=1`` puts the chapters in *fast mode*: fewer epochs and samples, so the
test suite can execute every notebook quickly. Results are smaller but real.
"""
from __future__ import annotations

import os

__all__ = ["fast_mode", "DEFAULT_MEMORY_BUDGET", "PATH_MEMORY_BUDGET"]

#: the one default of ``memory_budget``: bytes of temporaries a blocked computation may use
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: the default of the path computations (conductance, path gradients), whose chunks hold
#: autograd's saved tensors: on the capstone's MNIST inputs chunks planned from 256 MiB
#: ran 2.2x faster than one big chunk and peaked ~80 MiB above the baseline, not ~315
PATH_MEMORY_BUDGET = 256 * 2**20


def fast_mode() -> bool:
    """True when the environment variable ``NIFKIT_FAST`` is set to 1/true/yes."""
    return os.environ.get("NIFKIT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}
