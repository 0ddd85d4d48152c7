"""The shape of the house (issue 9, docs/engineers.md): files of at most ~600 lines,
dependencies that run one way, and no module importing another module's private names.
Read from the source with ``ast``, imports inside functions included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "nifkit"
FILES = sorted(PKG.rglob("*.py"))
MAX_LINES = 620  # "~600"

CHAPTERS = {"nif", "ablation", "ei", "conductance", "relay"}
#: each layer may import only from the layers below it (and itself)
LAYERS = [
    {"config", "_validation", "_lazy", "results"},
    {"runtime"},
    {"info", "data", "models"},
    {"record", "intervene", "dynamics", "plots", "widgets"},
    CHAPTERS,
    {"compare"},
    {"exercises", "__init__"},
]


def _top(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    return rel.parts[0]


def _module(path: Path) -> list[str]:
    rel = path.relative_to(PKG).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path):
    """``(target module parts under nifkit, imported names, line)`` for every import of nifkit."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module(path)
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "nifkit" or node.module.startswith("nifkit.")):
                target = node.module.split(".")[1:]
            else:
                continue
            yield target, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("nifkit."):
                    yield a.name.split(".")[1:], [], node.lineno


def _layer(top: str) -> int:
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"nifkit/{top} is in no layer of tests/test_house.py: add it where it belongs")


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PKG)) for p in FILES])
def test_no_file_over_about_600_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"nifkit/{path.relative_to(PKG)} has {n} lines; split it by job (docs/engineers.md)"


def test_dependencies_run_one_way_and_chapters_do_not_import_each_other():
    wrong = []
    for path in FILES:
        src = _top(path)
        for target, _, line in _imports(path):
            if not target:
                continue
            dst = target[0]
            where = f"nifkit/{path.relative_to(PKG)}:{line} imports nifkit.{'.'.join(target)}"
            if src in CHAPTERS and dst in CHAPTERS and dst != src:
                wrong.append(f"{where}: one chapter package imports another")
            elif dst != src and _layer(dst) > _layer(src):
                wrong.append(f"{where}: a lower layer imports a higher one")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for path in FILES:
        for target, names, line in _imports(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    wrong.append(f"nifkit/{path.relative_to(PKG)}:{line}: from nifkit.{'.'.join(target)} import {name}")
    assert not wrong, "make the name public (no leading underscore) or move the code:\n" + "\n".join(wrong)


def test_the_checks_see_the_imports_they_claim_to():
    """The reader must find real imports, or the tests above pass on nothing."""
    found = {tuple(t) for t, _, _ in _imports(PKG / "conductance" / "attribution.py")}
    assert ("record", "path") in found and ("runtime",) in found
    assert _layer("conductance") > _layer("record") > _layer("models") > _layer("runtime")


#: private attributes of *libraries* read on purpose, each with its reason in the code
LIBRARY_PRIVATES = {"_samples": "torchvision Imagenette's file list", "_int_mm": "torch's int8 matmul kernel"}


def _defined_privates(tree) -> set:
    """Private names a file defines: functions, classes, assignments (``self._x = ...``), fields."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
    return {n for n in out if n.startswith("_")}


def _foreign_privates(source: str, where: str = "<src>") -> list:
    tree = ast.parse(source, where)
    mine = _defined_privates(tree)
    return [f"{where}:{node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            and node.attr not in mine and node.attr not in LIBRARY_PRIVATES]


def test_no_module_reads_another_modules_private_attributes():
    """``obj._name`` where this file defines no ``_name``: it reaches into another module."""
    wrong = [w for path in FILES for w in _foreign_privates(path.read_text(), f"nifkit/{path.relative_to(PKG)}")]
    assert not wrong, "make it public in its module (and document it) or move the code:\n" + "\n".join(wrong)
    # the check itself: a foreign private is caught, one's own is not
    assert _foreign_privates("def f(eng):\n    return eng._index\n") == ["<src>:2: ._index"]
    assert _foreign_privates("class A:\n    def __init__(self):\n        self._x = 1\n"
                             "    def f(self):\n        return self._x\n") == []
