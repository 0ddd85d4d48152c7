"""Binder's pins (binder/requirements.txt) agree with the project's (requirements/pins.txt).

mybinder.org builds its own environment from binder/; if it drifts from what CI tests,
the chapters may break on Binder while CI stays green. These checks keep them in step:
same versions (local labels such as ``+cpu`` ignored), every dependency the lab needs
pinned in both, and every direct dependency of pyproject.toml pinned in pins.txt.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

try:  # Python >= 3.11
    import tomllib
except ImportError:  # Python 3.10: pip vendors a TOML reader
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pragma: no cover - pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "requirements" / "pins.txt"
BINDER = ROOT / "binder"
BINDER_REQS = BINDER / "requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def read_pins(path: Path) -> dict[str, str]:
    """{canonical name: exact version} of a requirements file; options skipped.

    Fails on any requirement that is not an exact ``==`` pin.
    """
    pins: dict[str, str] = {}
    for line in _requirement_lines(path):
        if line.startswith("-"):  # --extra-index-url and friends
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", (
            f"{path.relative_to(ROOT)}: '{line}' is not an exact pin (name==version)"
        )
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.relative_to(ROOT)}: {req.name} is pinned twice"
        pins[name] = specs[0].version
    return pins


def public_version(version: str) -> str:
    """'2.14.1+cpu' -> '2.14.1' (PEP 440 local label dropped)."""
    return version.split("+", 1)[0]


def _names(requirements: list[str]) -> set[str]:
    names = set()
    for spec in requirements:
        name = canonicalize_name(Requirement(spec).name)
        if name != "nifkit":  # self-references such as "nifkit[lab]"
            names.add(name)
    return names


def pyproject_deps() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    core = _names(project.get("dependencies", []))
    extras = {k: _names(v) for k, v in project.get("optional-dependencies", {}).items()}
    return core, extras


def test_pins_are_exact_and_cover_every_direct_dependency():
    pins = read_pins(PINS)
    core, extras = pyproject_deps()
    assert "lab" in extras and "test" in extras, "pyproject.toml lost its lab/test extras"
    wanted = core | set().union(*extras.values())
    missing = sorted(wanted - set(pins))
    assert not missing, f"requirements/pins.txt has no pin for: {missing}"
    for name in ("torch", "torchvision"):
        assert name in pins, f"requirements/pins.txt must pin {name}"


def test_binder_pins_agree_with_project_pins():
    pins = read_pins(PINS)
    binder = read_pins(BINDER_REQS)
    disagree = {
        name: (version, pins.get(name))
        for name, version in binder.items()
        if public_version(version) != public_version(pins.get(name, "<not pinned>"))
    }
    assert not disagree, (
        "binder/requirements.txt and requirements/pins.txt disagree "
        f"(name: (binder, pins)): {disagree}"
    )


def test_every_lab_dependency_is_pinned_for_binder():
    core, extras = pyproject_deps()
    lab = core | extras["lab"]
    binder = read_pins(BINDER_REQS)
    pins = read_pins(PINS)
    assert not sorted(lab - set(binder)), (
        f"binder/requirements.txt lacks pins for lab dependencies: {sorted(lab - set(binder))}"
    )
    assert not sorted(lab - set(pins)), (
        f"requirements/pins.txt lacks pins for lab dependencies: {sorted(lab - set(pins))}"
    )


def test_binder_uses_cpu_only_torch():
    lines = _requirement_lines(BINDER_REQS)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines, (
        "binder/requirements.txt must add PyTorch's CPU wheel index"
    )
    binder = read_pins(BINDER_REQS)
    for name in ("torch", "torchvision"):
        assert binder.get(name, "").endswith("+cpu"), (
            f"binder/requirements.txt should pin the CPU build of {name} (version+cpu), "
            f"found {binder.get(name)!r}"
        )


def test_binder_postbuild_and_runtime():
    post = BINDER / "postBuild"
    assert post.is_file(), "binder/postBuild is missing"
    assert os.access(post, os.X_OK), "binder/postBuild must be executable"
    text = post.read_text()
    assert re.search(r"pip install --no-deps\b.*(-e )?\.", text), (
        "binder/postBuild should install nifkit itself without dependencies"
    )
    # nothing that fetches from the network at build or run time besides pip itself
    assert not re.search(r"\b(curl|wget|git clone)\b", text), "postBuild must not download"
    runtime = (BINDER / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)", runtime)
    assert m, f"binder/runtime.txt should read python-X.Y, not {runtime!r}"
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    assert requires.startswith(">="), requires
    lo = tuple(int(x) for x in requires[2:].split(".")[:2])
    assert (int(m[1]), int(m[2])) >= lo, f"{runtime} does not satisfy requires-python {requires}"


@pytest.mark.parametrize("path", [PINS, BINDER_REQS], ids=["pins", "binder"])
def test_requirement_files_parse(path):
    assert read_pins(path), f"{path.relative_to(ROOT)} pins nothing"


# ------------------------------------------------- what the chapters import is installed
def _closure(names: set[str]) -> set[str]:
    """Distributions ``names`` pull in (installed requirements, no extras), names included."""
    from importlib import metadata

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in reqs:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(req.name))
    return seen


def _top_level_imports(source: str) -> set[str]:
    """Top-level modules imported by ``source`` (imports inside ``try:`` are optional)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics etc.: drop lines that are not Python
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
    optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)}
    mods = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            mods.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
    return mods


def _module_sources() -> dict[str, str]:
    """{where: Python source} of every chapter (its code cells) and every nifkit module."""
    import json

    sources = {}
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb_path.read_text())["cells"]
        sources[f"notebooks/{nb_path.name}"] = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "code"
        )
    for py in sorted((ROOT / "nifkit").rglob("*.py")):
        sources[str(py.relative_to(ROOT))] = py.read_text()
    assert sources, "no notebooks or nifkit sources found"
    return sources


def undeclared_imports(sources: dict[str, str], declared: set[str]) -> dict[str, list[str]]:
    """{where: ["module (its distributions)", ...]} for third-party modules whose
    distribution is not in ``declared`` (canonical names)."""
    import sys
    from importlib import metadata

    owners = metadata.packages_distributions()
    problems = {}
    for where, source in sources.items():
        for mod in sorted(_top_level_imports(source)):
            if mod in sys.stdlib_module_names or mod in ("nifkit", "__future__"):
                continue
            dists = {canonicalize_name(d) for d in owners.get(mod, [])}
            if not dists & declared:
                problems.setdefault(where, []).append(f"{mod} ({', '.join(sorted(dists)) or 'not installed'})")
    return problems


def test_everything_the_chapters_import_is_a_declared_dependency():
    """Each third-party module a chapter (or nifkit) imports belongs to a distribution
    declared by name in pyproject.toml (core or [lab]), pinned in requirements/pins.txt
    and in binder/requirements.txt: arriving through another package (pandas through
    mlxtend) is not enough, the next release of that package may drop it."""
    core, extras = pyproject_deps()
    declared = core | extras["lab"]
    problems = undeclared_imports(_module_sources(), declared & set(read_pins(PINS)) & set(read_pins(BINDER_REQS)))
    assert not problems, (
        "modules imported by the chapters or the library whose distribution is not declared in "
        "[project] dependencies or [project.optional-dependencies].lab of pyproject.toml and pinned in "
        f"requirements/pins.txt and binder/requirements.txt: {problems}"
    )


def test_the_import_check_catches_a_module_that_comes_in_through_another_package():
    """pandas arrives with mlxtend; a chapter importing it must still declare it."""
    src = {"chapter": "%matplotlib inline\nimport numpy as np\nimport pandas as pd\nfrom scipy.stats import spearmanr"}
    assert undeclared_imports(src, {"numpy", "scipy"}) == {"chapter": ["pandas (pandas)"]}
    assert undeclared_imports(src, {"numpy", "scipy", "pandas"}) == {}
