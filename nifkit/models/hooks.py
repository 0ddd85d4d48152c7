"""The one hook context: every PyTorch hook nifkit attaches is attached here.

In the spirit of TransformerLens's ``run_with_hooks``: name the layers, give each a
function, run the model inside the block::

    with hooks(model, {"act1": fn, "fc2": other}):
        logits = model(x)

``forward`` hooks are ``fn(module, args, output)`` (return a tensor to replace the
output, ``None`` to keep it), ``pre`` hooks ``fn(module, args)``. Names are those of
``model.named_modules()``, checked by the one walker's :func:`resolve_layers` (an
unknown name raises ``ValueError`` with "did you mean" before anything is attached);
``""`` is the model itself. A list of ``(name, fn)`` pairs attaches several hooks to
one module, in order. The block yields a :class:`Hooks`, which adds more while it is
open (``forward``, ``pre``, ``grad`` for a tensor's gradient hook).

Every handle is removed in ``finally``: on a normal exit, when a hook or the forward
pass raises, and on ``KeyboardInterrupt``. ``tests/test_hooks.py`` fails on any
``register_*hook`` call in ``nifkit/`` outside this module.

Why here: ``record``, ``intervene``, the chapters (ablation, EI, conductance) all sit
above ``models``; this module imports only the walker beside it and torch, so the
dependencies keep running one way.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from .walk import resolve_layers

__all__ = ["hooks", "Hooks"]


def _pairs(spec, what: str) -> list[tuple[str, Callable]]:
    """``{name: fn}`` or ``[(name, fn), ...]`` (or None) as a list of pairs, checked."""
    if spec is None:
        return []
    items = list(spec.items()) if isinstance(spec, Mapping) else spec
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise TypeError(f"{what} must be a dict {{layer name: fn}} or a list of (layer name, fn) pairs, "
                        f"got {type(spec).__name__}")
    out = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"{what}: each entry must be a (layer name, fn) pair, got {item!r}")
        name, fn = item
        if not isinstance(name, str):
            raise TypeError(f"{what}: layer names are str (as in model.named_modules()), got {name!r}")
        if not callable(fn):
            raise TypeError(f"{what}: the hook for {name!r} must be callable, got {type(fn).__name__}")
        out.append((name, fn))
    return out


class Hooks:
    """The hooks attached inside one :func:`hooks` block. Add more while it is open;
    :meth:`remove` (called by the block on exit) detaches every one."""

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._modules = dict(model.named_modules())
        self._handles: list = []

    def module(self, name: str) -> nn.Module:
        """The module called ``name`` (``""``: the model); unknown names raise
        ``ValueError`` with "did you mean" (the walker's :func:`resolve_layers`)."""
        if name not in self._modules:
            resolve_layers(self.model, [name])  # raises with "did you mean"
        return self._modules[name]

    def forward(self, name: str, fn: Callable, *, always_call: bool = False) -> None:
        """A forward hook ``fn(module, args, output)`` on layer ``name``
        (``always_call``: also when the forward raises)."""
        self._handles.append(self.module(name).register_forward_hook(fn, always_call=always_call))

    def pre(self, name: str, fn: Callable) -> None:
        """A forward pre-hook ``fn(module, args)`` on layer ``name``."""
        self._handles.append(self.module(name).register_forward_pre_hook(fn))

    def grad(self, tensor: torch.Tensor, fn: Callable) -> None:
        """A gradient hook ``fn(grad)`` on ``tensor`` (it must require grad)."""
        self._handles.append(tensor.register_hook(fn))

    def __len__(self) -> int:
        return len(self._handles)

    def remove(self) -> None:
        """Detach every hook (each one even if another's removal raises)."""
        handles, self._handles = self._handles, []
        with contextlib.ExitStack() as stack:
            for h in handles:
                stack.callback(h.remove)

    def __repr__(self) -> str:
        return f"Hooks({len(self)} attached)"


@contextlib.contextmanager
def hooks(model: nn.Module, forward=None, *, pre=None) -> Iterator[Hooks]:
    """Attach ``forward`` hooks (``{name: fn}`` or ``[(name, fn), ...]``) and ``pre``
    hooks for the block; yields the :class:`Hooks`. Every name is checked before any
    hook is attached; every hook is removed on exit, also on exceptions and
    ``KeyboardInterrupt``. See the module docstring."""
    fwd, before = _pairs(forward, "forward"), _pairs(pre, "pre")
    attached = Hooks(model)
    for name, _ in before + fwd:
        attached.module(name)
    try:
        for name, fn in before:
            attached.pre(name, fn)
        for name, fn in fwd:
            attached.forward(name, fn)
        yield attached
    finally:
        attached.remove()
