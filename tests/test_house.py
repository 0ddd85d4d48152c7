"""The shape of the house (docs/engineers.md): the layering and "no chapter imports
another" are import-linter contracts and the name rules are ruff's (both configured in
pyproject.toml and run here); what neither tool checks stays here, read from the source
with ``ast``: files of at most ~600 lines, no import of another nifkit module's private
names (ruff's PLC2701 exempts imports inside the same top-level package, checked below),
and no ``obj._attr`` of another module's objects."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PKG = Path(__file__).resolve().parents[1] / "nifkit"
FILES = sorted(PKG.rglob("*.py"))
MAX_LINES = 620  # "~600"

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


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PKG)) for p in FILES])
def test_no_file_over_about_600_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"nifkit/{path.relative_to(PKG)} has {n} lines; split it by job (docs/engineers.md)"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": str(BIN), "PYTHONPATH": str(cwd)})


def test_import_linter_contracts_hold():
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("bad", ["nifkit/info/kernels.py:from .counts import PairCounts",
                                 "nifkit/relay/measures.py:from ..ablation import neuron_measures",
                                 "nifkit/models/walk.py:from ..record import record"])
def test_import_linter_catches_a_wrong_arrow(tmp_path, bad):
    """The contracts fail on a lower layer importing a higher one, inside info too, and
    on one chapter importing another (a copy of the package with one import added)."""
    shutil.copytree(ROOT / "nifkit", tmp_path / "nifkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path, line = bad.split(":", 1)
    target = tmp_path / path
    target.write_text(target.read_text() + f"\n\ndef _wrong_arrow():\n    {line}\n")
    out = _lint_imports(tmp_path)
    assert out.returncode != 0 and "BROKEN" in out.stdout.upper(), out.stdout[-2000:]


def test_ruff_house_rules_hold():
    out = subprocess.run([str(BIN / "ruff"), "check", "nifkit", "--no-cache"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]


def test_ruff_exempts_private_imports_inside_the_package(tmp_path):
    """Why the private-name check below stays here: ruff's PLC2701 flags a library's
    private name but not one imported from another module of the same package."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def _hidden():\n    return 1\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.a import _hidden\nfrom torch._C import _get_tracing_state\n"
                                           "print(_hidden, _get_tracing_state)\n")
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                          "--select", "PLC2701", "pkg/b.py", "--output-format", "concise"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert "external module `torch`" in out.stdout and "_hidden" not in out.stdout, out.stdout


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for path in FILES:
        for target, names, line in _imports(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    wrong.append(f"nifkit/{path.relative_to(PKG)}:{line}: from nifkit.{'.'.join(target)} import {name}")
    assert not wrong, "make the name public (no leading underscore) or move the code:\n" + "\n".join(wrong)


def test_the_checks_see_the_imports_they_claim_to():
    """The reader must find real imports, or the test above passes on nothing."""
    found = {tuple(t) for t, _, _ in _imports(PKG / "conductance" / "attribution.py")}
    assert ("record", "path") in found and ("runtime",) in found


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
