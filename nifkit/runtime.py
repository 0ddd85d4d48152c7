"""How nifkit runs: threads, seeds, the one progress contract, model state.

Every heavy function of every chapter goes through these helpers, so that

* ``num_threads`` means the same everywhere (the thread policy, below);
* ``seed`` means the same everywhere (:func:`check_seed`, :func:`set_seed`,
  :func:`seeded`);
* ``progress`` means the same everywhere: ``True`` for a tqdm bar, ``False``/``None``
  for nothing, or a callable ``progress(done, total, what)`` (:class:`Progress`);
* a model is always given back as it was: the train/eval flag of every submodule,
  ``requires_grad`` of every parameter, grad mode and device (:class:`ModelState`).
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

__all__ = [
    "set_seed",
    "check_seed",
    "seeded",
    "Progress",
    "progress_callback",
    "ModelState",
    "model_device",
]

# ======================================================================================
# Thread policy
# ======================================================================================
# >>> The thread policy (``cpu_threads``, issue 8, branch ``speed``) lives at the top of
# >>> this file. Until that branch is merged it is defined in nifkit/models/training.py.


# ======================================================================================
# Seeds
# ======================================================================================
def check_seed(seed, name: str = "seed", allow_none: bool = True):
    """``seed`` as a Python int (numpy integers accepted), or None when allowed.

    Raises ``TypeError`` for floats, bools, strings and other types and ``ValueError``
    for negative seeds, naming the argument and the fix."""
    if seed is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be a non-negative integer, got None; pass e.g. {name}=0")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer (e.g. {name}=0), got {seed!r} of type "
                        f"{type(seed).__name__}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed}; pass e.g. {name}=0")
    return seed


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    seed = check_seed(seed, allow_none=False)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seeded(seed):
    """Context: a forked torch RNG seeded with ``seed`` (the global state is untouched
    afterwards), or nothing when ``seed`` is None."""
    seed = check_seed(seed)
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


def progress_callback(progress) -> Callable | None:
    """``progress`` (``True``, ``False``/``None`` or a callable) as a callable
    ``(done, total, what)`` or None; a :class:`Progress` with a bar for ``True``
    (close it when done)."""
    p = Progress(progress)
    return p if p.active else None


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
    """

    def __init__(self, model: nn.Module, *, eval: bool = True, no_grad: bool = False, freeze: bool = False,
                 weights: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.eval, self.no_grad, self.freeze, self.weights = eval, no_grad, freeze, weights

    def __enter__(self) -> "ModelState":
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.grad_enabled = torch.is_grad_enabled()
        self.saved = ({k: v.detach().clone() for k, v in self.model.state_dict().items()}
                      if self.weights else None)
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
        return False
