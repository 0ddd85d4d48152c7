"""Package-wide settings read from the environment.

``NIFKIT_FAST=1`` puts the chapters in *fast mode*: fewer epochs and samples, so the
test suite can execute every notebook quickly. Results are smaller but real.
"""
from __future__ import annotations

import os

__all__ = ["fast_mode", "DEFAULT_MEMORY_BUDGET"]

#: default bytes of temporaries a blocked computation may use
DEFAULT_MEMORY_BUDGET = 512 * 2**20


def fast_mode() -> bool:
    """True when the environment variable ``NIFKIT_FAST`` is set to 1/true/yes."""
    return os.environ.get("NIFKIT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}
