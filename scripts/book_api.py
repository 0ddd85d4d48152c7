"""The API reference page of the course book: autodoc over every public name of nifkit.

The public names of a package are its ``__all__``; a package without ``__all__`` shows
the names its ``__init__`` imports (no underscore, no submodule). Each object is
documented once, under the first package that exports it (packages in alphabetical
order, ``nifkit`` first); other packages that re-export it list it with a link.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import types


def packages() -> list[str]:
    import nifkit

    subs = sorted(m.name for m in pkgutil.walk_packages(nifkit.__path__, "nifkit.") if m.ispkg)
    return ["nifkit"] + subs


def public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and not isinstance(v, types.ModuleType)]
    return sorted(names)


def public_api() -> dict[str, list[str]]:
    """``{package: [public names]}`` for every nifkit package."""
    return {name: public_names(importlib.import_module(name)) for name in packages()}


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def api_page() -> str:
    lines = ["API reference", "=============", "",
             "Every public name of every nifkit package (its ``__all__``), with the docstring of",
             "its code. Chapters import these; the chapter packages' ``exercise`` modules hold",
             "the checkers the exercises call.", ""]
    documented: dict[int, str] = {}
    for pkg, names in public_api().items():
        module = importlib.import_module(pkg)
        title = f"``{pkg}``"
        lines += [title, "-" * len(title), "", f".. py:module:: {pkg}", ""]
        doc = inspect.getdoc(module)
        if doc:
            first = doc.split("\n\n", 1)[0].replace("`", "").replace("*", "")
            lines += [" ".join(first.split()), ""]
        for name in names:
            obj = getattr(module, name)
            full = f"{pkg}.{name}"
            key = id(obj)
            shared = not isinstance(obj, (str, int, float, tuple, dict, list, frozenset, set))
            if shared and key in documented:
                lines += [f".. py:data:: {name}", "",
                          f"   The same object as :py:obj:`{documented[key]}`.", ""]
                continue
            if shared:
                documented[key] = full
            d = _directive(obj)
            if d == "autodata":  # a constant: its value (autodoc would show its type's docstring)
                value = repr(obj)
                value = value if len(value) <= 160 else value[:157] + "..."
                lines += [f".. py:data:: {name}", f"   :type: {type(obj).__name__}", f"   :value: {value}", ""]
                continue
            lines.append(f".. {d}:: {full}")
            if d == "autoclass":
                lines.append("   :members:")
            lines.append("")
    return "\n".join(lines) + "\n"
