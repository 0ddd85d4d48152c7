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

The other sections: seeds (:func:`check_seed`, :func:`set_seed`, :func:`seeded`), the one
progress contract (:class:`Progress`: ``progress=True`` for a tqdm bar, ``False``/``None``
for nothing, or a callable ``progress(done, total, what)``), and model state
(:class:`ModelState`: every submodule's train/eval flag, every parameter's
``requires_grad``, grad mode and optionally the weights, restored on exit).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import random
import threading
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ._validation import check_seed  # the one seed rule (None only where a function allows it)
from ._validation import checked

# =======================================================================================
# Thread policy  (self-contained section: cpu_threads, default_threads,
# apply_thread_policy, with_thread_policy)
# =======================================================================================

__all__ = ["cpu_threads", "default_threads", "apply_thread_policy", "with_thread_policy", "THREAD_ENV_VAR",
           "set_seed", "check_seed", "seeded", "Progress", "release_freed_memory", "ModelState", "model_device",
           "all_finite"]

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

    @checked
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


# ======================================================================================
# Seeds
# ======================================================================================
@checked
def set_seed(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@checked
def seeded(seed: int | None):
    """Context: a forked torch RNG seeded with ``seed`` (the global state is untouched
    afterwards), or nothing when ``seed`` is None."""
    if seed is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    return ctx()


# ======================================================================================
# The progress contract
# ======================================================================================
class Progress:
    """The one progress contract: ``progress=True`` shows a tqdm bar, ``False``/``None``
    nothing, a callable is called as ``progress(done, total, what)``.

    Use as ``with Progress(progress, total, what) as p: ... p.update(k)``, or call it
    yourself (``p(done, total, what)``); a change of ``what`` starts a new bar. The bar
    is closed on exit, also on exceptions.
    """

    @checked
    def __init__(self, progress=False, total: int | None = None, what: str = "", unit: str = "it",
                 leave: bool = False):
        if progress is None or isinstance(progress, (bool, np.bool_)):
            self.callback, self.bar_wanted = None, bool(progress)
        elif callable(progress):
            self.callback, self.bar_wanted = progress, False
        else:
            raise TypeError("progress must be True (a tqdm bar), False/None, or a callable progress(done, total, "
                            f"what); got {type(progress).__name__}")
        self.total, self.what, self.unit, self.leave = total, what, unit, leave
        self.done = 0
        self.bar = None
        self.postfix: dict = {}

    @property
    def active(self) -> bool:
        return self.bar_wanted or self.callback is not None

    def __call__(self, done: int, total: int | None = None, what: str | None = None) -> None:
        total = self.total if total is None else total
        what = self.what if what is None else what
        self.done = done
        if self.callback is not None:
            self.callback(done, total, what)
            return
        if not self.bar_wanted:
            return
        from tqdm.auto import tqdm

        if self.bar is None or what != self.what:
            self._close_bar()
            self.bar = tqdm(total=total, desc=what, unit=self.unit, leave=self.leave)
        self.what, self.total = what, total
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    @checked
    def update(self, k: int = 1) -> None:
        """Advance by ``k`` (of :attr:`total`)."""
        self(self.done + k)

    def track(self, items: Iterable, total: int | None = None, what: str | None = None):
        """Yield ``items``, reporting after each."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)
        if total is not None:
            self.total = total
        if what is not None:
            self.what = what
        for i, item in enumerate(items, 1):
            yield item
            self(i)

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self._close_bar()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


# ======================================================================================
# Memory
# ======================================================================================
@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim`` from the symbols already in this process (no library search:
    ``ctypes.util.find_library`` forks ``ldconfig``, and a fork of a large kernel is counted
    as a second copy by memory samplers), or None."""
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except (OSError, TypeError):
        return None


def release_freed_memory() -> bool:
    """Give heap memory freed by large computations back to the operating system (glibc's
    ``malloc_trim``; False where it is not available). glibc keeps freed blocks under its
    mmap threshold (which rises to 32 MiB after the first large free) resident: after chapter
    2's ImageNet conductance run (20 photos, 16 steps, 256 MiB chunks) ~170 MB of freed chunk
    temporaries stayed in the kernel's memory, ~44 MB above the result after trimming."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# ======================================================================================
# Model state
# ======================================================================================
def model_device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """``(device, dtype)`` of the model's first floating-point parameter (or buffer);
    CPU/float32 for a model without any."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


class ModelState:
    """Context manager: run code on a model and give it back exactly as it was.

    On enter it saves every submodule's ``training`` flag, every parameter's
    ``requires_grad`` and the grad mode; then applies ``eval=True`` (every module in
    eval mode: Dropout off, BatchNorm statistics frozen), ``no_grad=True`` (autograd off)
    and ``freeze=True`` (no parameter requires grad). On exit (also on exceptions and
    KeyboardInterrupt) it restores all of them. ``weights=True`` also saves a copy of
    the state dict and loads it back on exit (for code that edits weights in place).
    ``device``: move the model there for the run (None = leave it) and back on exit.
    """

    @checked
    def __init__(self, model: nn.Module, *, eval: bool = True, no_grad: bool = False, freeze: bool = False,
                 weights: bool = False, device=None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.eval, self.no_grad, self.freeze, self.weights = eval, no_grad, freeze, weights
        self.device = None if device is None else torch.device(device)

    def __enter__(self) -> "ModelState":
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.grad_enabled = torch.is_grad_enabled()
        self.saved = ({k: v.detach().clone() for k, v in self.model.state_dict().items()}
                      if self.weights else None)
        self.home = model_device(self.model)[0]
        self.moved = self.device is not None and self.device != self.home
        if self.moved:
            self.model.to(self.device)
        if self.eval:
            self.model.eval()
        if self.freeze:
            for p, _ in self.flags:
                p.requires_grad_(False)
        if self.no_grad:
            torch.set_grad_enabled(False)
        return self

    def __exit__(self, *exc) -> bool:
        torch.set_grad_enabled(self.grad_enabled)
        if self.saved is not None:
            with torch.no_grad():
                self.model.load_state_dict(self.saved)
        for p, flag in self.flags:
            p.requires_grad_(flag)
        for m, mode in self.modes:
            m.training = mode
        if self.moved:
            self.model.to(self.home)
        return False


def all_finite(t: torch.Tensor) -> bool:
    """True when every value of the float tensor ``t`` is finite, without a temporary of
    its size (``torch.isfinite(t).all()`` builds bool masks and a float copy, ~1.7x ``t``
    at its peak, which a memory budget would have to cover): a finite sum means no NaN
    and no inf; only when the sum is not finite (also when finite values overflow it) are
    the values checked one by one, a run of rows at a time."""
    if not t.is_floating_point() and not t.is_complex():
        return True
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return True
    rows = t.reshape(len(t), -1) if t.ndim else t.reshape(1, 1)
    run = max(1, 2**20 // max(rows.shape[1], 1))
    return all(bool(torch.isfinite(rows[s:s + run]).all()) for s in range(0, len(rows), run))  # runs of rows
