"""Lazy attributes of a package: its widget module (which needs ipywidgets) is imported
on first use only, so ``import nifkit.ei`` stays light."""
from __future__ import annotations

import importlib

__all__ = ["lazy_widget"]


def lazy_widget(package: str, names):
    """A module ``__getattr__`` that loads ``names`` from ``<package>.widget`` on demand."""
    names = tuple(names)

    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(f"{package}.widget"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
