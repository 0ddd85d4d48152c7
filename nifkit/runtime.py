"""Runtime policies shared by every chapter.

Thread policy (the first section below): the heavy steps of every chapter (training,
recording, the primer's estimators, all-pairs MI, flow graphs, EI, ablation) run torch
on **one** CPU thread unless told otherwise, and restore the caller's setting after.
``num_threads=n`` on an entry point, ``with cpu_threads(n):`` around a cell, or the
environment variable ``NIFKIT_NUM_THREADS=n`` (every default of the process) choose
another count; chapter notebooks call :func:`apply_thread_policy` in their first cell.
Devices other than the CPU are left alone.

Why, measured: these models and estimators are small (layers of tens to hundreds of
units, DV critics of 16 hidden units, KSG on at most 10^4 samples), so per-op threading
overhead and waiting for a core that another process holds outweigh any parallel gain.
On a 2-core AMD EPYC (AVX2 only) a newcomer's full-mode primer estimators cell took
151 s with torch's default 2 threads and 7 s with 1. ``benchmarks/bench_threads.py``
times the typical chapter workloads with 1 and 2 threads side by side; its figures on the
project's 2-core machine (shared with other work while measured) are in
``benchmarks/README.md`` ("Threads").
"""
from __future__ import annotations

import functools
import inspect
import os
import threading

import torch

# =======================================================================================
# Thread policy  (self-contained section: cpu_threads, default_threads,
# apply_thread_policy, with_thread_policy)
# =======================================================================================

__all__ = ["cpu_threads", "default_threads", "apply_thread_policy", "with_thread_policy", "THREAD_ENV_VAR"]

THREAD_ENV_VAR = "NIFKIT_NUM_THREADS"


def default_threads() -> int:
    """Threads for heavy CPU steps when none are given: ``NIFKIT_NUM_THREADS`` if set,
    else 1 (see the module docstring for the measurement behind it)."""
    raw = os.environ.get(THREAD_ENV_VAR, "").strip()
    if not raw:
        return 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"the environment variable {THREAD_ENV_VAR} must be a positive integer, got {raw!r}")
    return n


_ACTIVE = threading.local()  # depth of explicit cpu_threads(n) blocks in this thread


class cpu_threads:
    """Context manager: run torch CPU ops with ``n`` intra-op threads, restoring the
    previous setting on exit. ``n=None`` means the policy's default on the CPU
    (:func:`default_threads`: 1 unless ``NIFKIT_NUM_THREADS`` says otherwise), except
    inside an enclosing block with an explicit ``n``, whose choice stands (so
    ``flow_graph(num_threads=2)`` is not undone by the ``pairwise_mi`` it calls); no
    change on other devices."""

    def __init__(self, n: int | None = None, device=None):
        dev = torch.device("cpu") if device is None else torch.device(device)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {n!r}")
        self.explicit = n is not None
        if dev.type != "cpu":
            self.n = None
        elif n is None:
            self.n = None if getattr(_ACTIVE, "depth", 0) else default_threads()
        else:
            self.n = int(n)

    def __enter__(self):
        self.prev = torch.get_num_threads()
        if self.n is not None and self.n != self.prev:
            torch.set_num_threads(self.n)
        if self.explicit:
            _ACTIVE.depth = getattr(_ACTIVE, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        if self.explicit:
            _ACTIVE.depth -= 1
        if torch.get_num_threads() != self.prev:
            torch.set_num_threads(self.prev)
        return False


def apply_thread_policy(n: int | None = None) -> int:
    """Set torch's CPU threads for the whole process to ``n`` (default: the policy,
    :func:`default_threads`) and return it. Chapter notebooks call this in their first
    cell, so that cells and widget callbacks that do not pass through an entry point's
    :class:`cpu_threads` follow the same policy."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    n = default_threads() if n is None else n
    torch.set_num_threads(n)
    return n


def with_thread_policy(fn):
    """Decorator: run ``fn`` inside ``cpu_threads(num_threads)``, where ``num_threads`` is
    the call's keyword of that name (default ``None``: the policy), for functions that do
    not take a ``device``; the keyword is not passed on unless ``fn`` declares it."""
    takes = "num_threads" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        n = kwargs.get("num_threads") if takes else kwargs.pop("num_threads", None)
        with cpu_threads(n):
            return fn(*args, **kwargs)

    return wrapper

# ---------------------------------------------------------------------------------------
# end of the thread policy section
# ---------------------------------------------------------------------------------------
