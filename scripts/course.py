"""The chapters as a course: cell tags, student and instructor notebooks, hygiene.

One source per chapter (``notebooks/NN_*.ipynb``, committed without outputs); cell tags
say what each cell is for the course:

``exercise``   the exercise's first attempt (with a classic mistake) and its checker call
``solution``   the fixed version: kept in the instructor notebook, replaced in the
               student notebook by a stub cell (what to write, how to check it)

Commands (run from anywhere; paths default to the repository's)::

    python scripts/course.py tag [--check] [NOTEBOOK ...]   # tag exercise/solution pairs
    python scripts/course.py versions [--out build/course]  # student/ and instructor/ copies
    python scripts/course.py strip [--check] [NOTEBOOK ...] # drop outputs and counts
    python scripts/course.py workspace [--refresh] [--student|--full]  # the working copy (lab.sh)

``tag`` finds each exercise by its shape: a code cell that defines a function and calls a
checker (``check_*``), directly followed by a code cell that defines the same function
again and calls the same checker: the first is the ``exercise``, the second the
``solution``. It is idempotent; re-run it after a chapter's exercise cells change
(``--check`` exits 1 when a tag is missing, which tests/test_notebook_hygiene.py uses).
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"

EXERCISE, SOLUTION, STUB = "exercise", "solution", "student-stub"
COURSE_TAGS = (EXERCISE, SOLUTION)


# ------------------------------------------------------------------ reading cells
def source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def notebook_paths(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write(nb: dict, path: Path) -> None:
    """Write like Jupyter does (indent 1, trailing newline) so diffs stay small."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _parse(src: str):
    """The cell's Python AST, IPython magics (``%...``, ``!...``) blanked; None if not Python."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def defined_functions(src: str) -> set[str]:
    tree = _parse(src)
    if tree is None:
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def checker_calls(src: str) -> set[str]:
    """Names of the ``check_*`` functions the cell calls (``check_x(...)``, ``mod.check_x(...)``)."""
    tree = _parse(src)
    if tree is None:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name.startswith("check_"):
                found.add(name)
    return found


# ------------------------------------------------------------------ tagging
def exercise_pairs(nb: dict) -> list[tuple[int, int]]:
    """(exercise index, solution index) of each first-attempt / fix pair of code cells."""
    pairs = []
    cells = nb["cells"]
    for i in range(len(cells) - 1):
        a, b = cells[i], cells[i + 1]
        if a["cell_type"] != "code" or b["cell_type"] != "code":
            continue
        sa, sb = source(a), source(b)
        shared_defs = defined_functions(sa) & defined_functions(sb)
        shared_checks = checker_calls(sa) & checker_calls(sb)
        if shared_defs and shared_checks:
            pairs.append((i, i + 1))
    return pairs


def tag_notebook(nb: dict) -> list[str]:
    """Add the exercise/solution tags in place; returns what changed (empty: nothing)."""
    changes = []
    for ex, sol in exercise_pairs(nb):
        for index, tag in ((ex, EXERCISE), (sol, SOLUTION)):
            cell = nb["cells"][index]
            meta = cell.setdefault("metadata", {})
            if tag not in meta.get("tags", []):
                meta["tags"] = [*meta.get("tags", []), tag]
                changes.append(f"cell {index}: +{tag}")
    return changes


# ------------------------------------------------------------------ outputs
#: what nbstripout strips besides outputs and execution counts (its command's defaults)
STRIP_KEYS = ["metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
              "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
              "cell.metadata.scrolled"]


def stripped(nb: dict) -> dict:
    """A copy of ``nb`` as nbstripout leaves it: no outputs, execution counts, widget state
    or run-time cell metadata (cell ids kept)."""
    import nbformat
    from nbstripout import strip_output

    node = strip_output(nbformat.from_dict(copy.deepcopy(nb)), keep_output=False, keep_count=False,
                        keep_id=True, extra_keys=STRIP_KEYS)
    return json.loads(json.dumps(node))


def strip_outputs(nb: dict) -> bool:
    """Strip ``nb`` in place with nbstripout; True if anything changed."""
    clean = stripped(nb)
    changed = clean != nb
    nb.clear()
    nb.update(clean)
    return changed


def hygiene_problems(nb: dict) -> list[str]:
    """What a committed notebook must not carry: whatever nbstripout would remove (outputs,
    execution counts, widget state, run-time metadata), described cell by cell."""
    if stripped(nb) == nb:
        return []
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution count {cell['execution_count']}")
    if "widgets" in nb.get("metadata", {}):
        problems.append("notebook metadata holds saved widget state")
    return problems or ["metadata that nbstripout removes (e.g. cell execution timing)"]


# ------------------------------------------------------------------ student version
def _heading_before(nb: dict, index: int) -> str:
    for cell in reversed(nb["cells"][:index]):
        if cell["cell_type"] == "markdown":
            for line in reversed(source(cell).splitlines()):
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "the exercise"


def exercise_title(nb: dict, index: int) -> str:
    """The exercise's name from the heading above it: '12. Exercise — the flow ...' ->
    'the flow ...' (section numbers and the word Exercise dropped)."""
    title = _heading_before(nb, index)
    title = re.sub(r"^\d+(\.\d+)*\.?\s*", "", title)
    title = re.sub(r"^(Exercise|Exercises)\s*\d*\s*[—:–-]?\s*", "", title, flags=re.I)
    return title or "the exercise"


def stub_source(nb: dict, index: int) -> str:
    """The student's cell in place of solution ``index``: what to write, how to check it.

    It names the functions to write and keeps the solution's checker lines (the
    statements that are not function definitions), so running it checks whatever the
    student has defined, the first attempt included, without revealing the fix.
    """
    src = source(nb["cells"][index])
    funcs = sorted(defined_functions(src))
    tree = _parse(src)
    lines = src.splitlines()
    check_lines = []
    if tree is not None:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import, ast.ImportFrom)):
                continue
            check_lines.extend(lines[node.lineno - 1: node.end_lineno])
    names = ", ".join(f"`{f}`" for f in funcs) or "your answer"
    text = [
        f"# Your turn — exercise: {exercise_title(nb, index)}.",
        f"# Write a corrected {names}: start from the first attempt in the cell above and fix",
        "# the mistake the checker points at (here or in the cell above).",
        "# Check it: run this cell; the checker prints what is right or wrong and how to fix it.",
        "# (The solution is in the instructor's version of this notebook.)",
    ]
    return "\n".join(text + check_lines)


def student_version(nb: dict) -> dict:
    """Solutions replaced by stubs, outputs removed. The source notebook is not modified."""
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out["cells"]):
        if SOLUTION in tags(cell):
            out["cells"][i] = {
                "cell_type": "code",
                "execution_count": None,
                "id": (str(cell.get("id") or f"cell{i}") + "-stub")[-64:],
                "metadata": {"tags": [STUB]},
                "outputs": [],
                "source": stub_source(nb, i),
            }
    strip_outputs(out)
    return out


def instructor_version(nb: dict) -> dict:
    """The full notebook, solutions included, outputs removed."""
    out = copy.deepcopy(nb)
    strip_outputs(out)
    return out


def has_solution(nb: dict) -> bool:
    return any(SOLUTION in tags(c) for c in nb["cells"])


# ------------------------------------------------------------------ working copies
MANIFEST = ".nifkit-workspace.json"


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _chapter_bytes(path: Path, student: bool) -> bytes:
    nb = read(path)
    nb = student_version(nb) if student else instructor_version(nb)
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def workspace_edition(workspace: Path) -> str | None:
    """The edition the working copy holds ("full" or "student"), None before first use."""
    try:
        manifest = json.loads((Path(workspace) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    found = {e.get("edition") for e in manifest.values() if isinstance(e, dict)}
    return "student" if "student" in found else ("full" if found else None)


def sync_workspace(workspace: Path, refresh: bool = False, student: bool | None = None,
                   source: Path = NOTEBOOKS_DIR, stamp: str | None = None) -> list[str]:
    """Make or update the working copy of the chapters; returns what it did, line by line.

    ``student``: True asks for the student edition (solutions replaced by stubs), False
    for the full one, None (the default) keeps the edition the workspace has (full on
    first use). A chapter missing from ``workspace`` is copied in the edition asked for.
    An existing copy is replaced when the edition changes, or with ``refresh`` when the
    chapter has a newer version; a copy that differs from what was last copied there (the
    student ran or edited it) is first moved to ``workspace/.backup/<stamp>/``. Without
    either, a newer chapter is only announced. The manifest ``.nifkit-workspace.json``
    records what was copied (hashes, edition), so an untouched copy is replaced without a
    backup.
    """
    import time

    workspace.mkdir(parents=True, exist_ok=True)
    mpath = workspace / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError):
        manifest = {}
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    had = workspace_edition(workspace)
    edition = (had or "full") if student is None else ("student" if student else "full")
    switching = had is not None and had != edition
    notes, replaced, backed_up = [], [], []
    for path in notebook_paths(source):
        fresh = _chapter_bytes(path, edition == "student")
        target = workspace / path.name
        entry = manifest.get(path.name, {})
        if target.exists():
            current = target.read_bytes()
            touched = _digest(current) != entry.get("copied")
            other_edition = entry.get("edition", "full") != edition
            newer = _digest(fresh) != entry.get("copied") and not other_edition
            if not (other_edition or (refresh and newer)):
                if newer:
                    notes.append(f"{path.name}: the chapter has a newer version; your copy is kept "
                                 "(bash scripts/lab.sh --refresh updates it and backs your copy up first)")
                continue
            if touched:
                backup = workspace / ".backup" / stamp / path.name
                backup.parent.mkdir(parents=True, exist_ok=True)
                backup.write_bytes(current)
                backed_up.append(path.name)
                notes.append(f"{path.name}: your copy was backed up to {backup.relative_to(workspace)}")
            replaced.append(path.name)
            verb = f"switched to the {edition} edition" if other_edition else f"refreshed ({edition} edition)"
        else:
            verb = f"copied ({edition} edition)"
        target.write_bytes(fresh)
        manifest[path.name] = {"copied": _digest(fresh), "edition": edition}
        notes.append(f"{path.name}: {verb}")
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if switching:
        what = ("solutions replaced by cells to fill in" if edition == "student"
                else "solutions shown")
        kept = (f"; your {len(backed_up)} edited cop{'y' if len(backed_up) == 1 else 'ies'} "
                f"saved in {(workspace / '.backup' / stamp).relative_to(workspace)}/" if backed_up
                else "; no copy had been edited, nothing needed a backup")
        notes.append(f"switched the workspace from the {had} to the {edition} edition ({what}): "
                     f"{len(replaced)} chapter(s) replaced{kept}")
    return notes


# ------------------------------------------------------------------ commands
def _targets(paths: list[str]) -> list[Path]:
    return [Path(p) for p in paths] if paths else notebook_paths()


def cmd_tag(args) -> int:
    missing = 0
    for path in _targets(args.notebooks):
        nb = read(path)
        changes = tag_notebook(nb)
        pairs = exercise_pairs(nb)
        if changes and args.check:
            print(f"{path.name}: untagged exercise cells: {', '.join(changes)}")
            missing += 1
        elif changes:
            write(nb, path)
            print(f"{path.name}: tagged {', '.join(changes)}")
        else:
            print(f"{path.name}: {len(pairs)} exercise/solution pair(s), tags up to date")
    if missing:
        print("run: python scripts/course.py tag", file=sys.stderr)
    return 1 if missing else 0


def cmd_strip(args) -> int:
    dirty = 0
    for path in _targets(args.notebooks):
        nb = read(path)
        problems = hygiene_problems(nb)
        if problems and args.check:
            print(f"{path.name}: {'; '.join(problems)}")
            dirty += 1
        elif strip_outputs(nb):
            write(nb, path)
            print(f"{path.name}: outputs stripped")
    if dirty:
        print("run: python scripts/course.py strip", file=sys.stderr)
    return 1 if dirty else 0


def cmd_versions(args) -> int:
    out = Path(args.out)
    for path in notebook_paths(Path(args.source)):
        nb = read(path)
        write(student_version(nb), out / "student" / path.name)
        write(instructor_version(nb), out / "instructor" / path.name)
        n = sum(SOLUTION in tags(c) for c in nb["cells"])
        print(f"{path.name}: student (solutions replaced: {n}) and instructor versions")
    print(f"written to {out}/student and {out}/instructor")
    return 0


def cmd_workspace(args) -> int:
    student = True if args.student else (False if args.full else None)
    notes = sync_workspace(Path(args.dir), refresh=args.refresh, student=student)
    for line in notes:
        print(f"workspace: {line}")
    edition = workspace_edition(Path(args.dir))
    if not notes:
        print(f"workspace: {args.dir} is up to date ({edition} edition)")
    other = "--full" if edition == "student" else "--student"
    print(f"workspace: {edition} edition; `bash scripts/lab.sh {other}` switches "
          "(edited copies are backed up first)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tag", help="tag exercise/solution cells")
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--check", action="store_true", help="only report; exit 1 if a tag is missing")
    p.set_defaults(func=cmd_tag)
    p = sub.add_parser("strip", help="remove outputs and execution counts")
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--check", action="store_true", help="only report; exit 1 if a notebook has outputs")
    p.set_defaults(func=cmd_strip)
    p = sub.add_parser("versions", help="write student and instructor notebooks")
    p.add_argument("--source", default=str(NOTEBOOKS_DIR))
    p.add_argument("--out", default=str(REPO / "build" / "course"))
    p.set_defaults(func=cmd_versions)
    p = sub.add_parser("workspace", help="make or refresh the working copy of the chapters")
    p.add_argument("--dir", default=str(REPO / "workspace"))
    p.add_argument("--refresh", action="store_true", help="update copies (edited ones are backed up)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--student", action="store_true",
                       help="switch to the student edition (solutions replaced; edited copies backed up)")
    which.add_argument("--full", action="store_true",
                       help="switch to the full edition (with solutions; edited copies backed up)")
    p.set_defaults(func=cmd_workspace)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
