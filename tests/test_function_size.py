"""Readable functions (issue 18, point 7): no function in nifkit/ is longer than ~80
lines, counted from its first decorator to its last line (signature and docstring
included), nested functions and methods too. Read from the source with ``ast``.

The functions of ``nifkit/info/`` and ``nifkit/intervene/`` still being shortened are
listed in ``tests/long_functions.txt`` with the length they may have now; an entry
elsewhere, or one whose function is gone or short, fails too, so the list only shrinks.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "nifkit"
MAX_FUNCTION_LINES = 80  # "~80"
ALLOW_LIST = Path(__file__).with_name("long_functions.txt")
ALLOWED_PACKAGES = ("nifkit/info/", "nifkit/intervene/")


def function_lengths(source: str) -> dict:
    """``{qualified name: lines}`` of every function in ``source`` (methods as
    ``Class.method``, nested functions as ``outer.inner``)."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out[prefix + child.name] = child.end_lineno - first + 1
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def _all_lengths() -> dict:
    return {(str(p.relative_to(ROOT)), name): n for p in sorted(PKG.rglob("*.py"))
            for name, n in function_lengths(p.read_text()).items()}


def _allow_list() -> dict:
    allowed = {}
    for line in ALLOW_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            path, name, n = line.split()
            allowed[(path, name)] = int(n)
    return allowed


def test_no_function_is_longer_than_about_80_lines():
    allowed = _allow_list()
    wrong = [f"{path} {name}: {n} lines" + (f" (the allow-list permits {allowed[path, name]})"
                                            if (path, name) in allowed else "")
             for (path, name), n in _all_lengths().items()
             if n > max(MAX_FUNCTION_LINES, allowed.get((path, name), 0))]
    assert not wrong, (f"functions over {MAX_FUNCTION_LINES} lines: split each into functions with one job "
                       "(settings objects instead of long argument lists):\n" + "\n".join(wrong))


def test_the_allow_list_names_only_long_functions_of_info_and_intervene():
    lengths = _all_lengths()
    wrong = []
    for (path, name), n in _allow_list().items():
        if not path.startswith(ALLOWED_PACKAGES):
            wrong.append(f"{path} {name}: only {' and '.join(ALLOWED_PACKAGES)} may be listed; split it instead")
        elif (path, name) not in lengths:
            wrong.append(f"{path} {name}: no such function any more; remove the entry")
        elif lengths[path, name] <= MAX_FUNCTION_LINES:
            wrong.append(f"{path} {name}: {lengths[path, name]} lines now; remove the entry")
    assert not wrong, f"{ALLOW_LIST.name}:\n" + "\n".join(wrong)


def test_the_count_sees_methods_nested_functions_decorators_and_docstrings():
    """The reader must count real lines, or the tests above pass on nothing."""
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    src = (f"import functools\n\n@functools.cache\ndef f():\n    '''doc\n\n    more'''\n{body}\n"
           f"class A:\n    def m(self):\n        def inner():\n            return 1\n        return inner\n")
    assert function_lengths(src) == {"f": 10, "A.m": 4, "A.m.inner": 2}
    assert _all_lengths()["nifkit/ei/measure.py", "layer_ei"] > 40  # a long docstring counts
