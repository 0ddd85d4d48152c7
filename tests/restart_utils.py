"""Restart safety: can a student run any section of a chapter right after a restart?

A chapter's *set-up* is its code cells before the first ``##`` heading, plus any cell
tagged ``setup``. Its *sections* start at each markdown cell with a ``##`` heading (a cell
with several belongs to its last one). For each section, the check empties the kernel's
namespace (``%reset -f``: every name is gone, as after a restart), runs the set-up cells,
then the section's *middle* code cell alone (a student jumping into the section), then the
section's code cells from its first, and records the first error of each. The middle cell
must run, or raise a *guard*: a ``RuntimeError`` whose one-line message says what to run
first (``GUARD``; e.g. "run this section from its first cell (it computes pcond) first"),
never a bare ``NameError``. Sections run from the last
to the first (a student jumping back), so a section cannot lean on what an earlier
section left behind. Modules stay imported between sections (a fresh kernel per section
cost ~25 s each on the shared 2-core machine); names, which is what NameError is about,
do not survive.

    python tests/restart_utils.py [NOTEBOOK ...]     # report, for every chapter by default

All sections of a chapter run in one kernel, in fast mode (one derived notebook executed
by notebook_utils.run_notebook; its executed copy is kept in tests/reports/executed/).
"""
from __future__ import annotations

import copy
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from notebook_utils import NOTEBOOKS_DIR, notebook_paths, run_notebook, strip_ansi

MARK = "@@nifkit-section@@"
RESET = ("%reset -f\n"
         "import matplotlib.pyplot as _plt\n_plt.close('all')\ndel _plt\n"
         "print({mark!r}, {index})")


#: what a guard raises: a RuntimeError saying what to run first (a cell, a section)
GUARD = re.compile(r"^RuntimeError: .*\brun\b.*\bfirst\b", re.I | re.S)


@dataclass
class SectionResult:
    index: int
    title: str
    code_cells: int
    error: str | None = None        # "NameError: name 'net' is not defined"
    cell: str | None = None         # first line of the failing cell
    middle: str | None = None       # first line of the middle cell run alone after the set-up
    middle_error: str | None = None  # its error, if any (a guard's message is fine)

    @property
    def middle_ok(self) -> bool:
        return self.middle_error is None or bool(GUARD.match(self.middle_error))

    @property
    def name_error(self) -> bool:
        return bool(self.error and self.error.startswith("NameError"))


@dataclass
class RestartReport:
    notebook: str
    seconds: float = 0.0
    sections: list[SectionResult] = field(default_factory=list)
    runner_error: str | None = None

    @property
    def failing(self) -> list[SectionResult]:
        return [s for s in self.sections if s.error]

    @property
    def unguarded(self) -> list[SectionResult]:
        """Sections whose middle cell, run after a restart and the set-up alone, fails
        without saying what to run first."""
        return [s for s in self.sections if not s.middle_ok]

    def summary(self) -> str:
        bad = self.failing
        mids = [x for x in self.sections if x.middle is not None]
        guarded = sum(1 for x in mids if x.middle_error and x.middle_ok)
        head = (f"{self.notebook}: {len(self.sections) - len(bad)}/{len(self.sections)} sections run "
                f"after a restart; of {len(mids)} middle cells run alone, {len(mids) - guarded - len(self.unguarded)} "
                f"ran and {guarded} stopped at their guard ({self.seconds:.0f} s)")
        lines = [head] + [f"  ✗ section {s.title!r}: {s.error} (cell: {s.cell})" for s in bad]
        lines += [f"  ✗ section {s.title!r}, middle cell run alone after the set-up: {s.middle_error} "
                  f"(cell: {s.middle}); give it a guard that says what to run first" for s in self.unguarded]
        if self.runner_error:
            lines.append(f"  runner: {self.runner_error}")
        return "\n".join(lines)


def _heading(cell) -> str | None:
    if cell.cell_type != "markdown":
        return None
    found = [ln[3:].strip() for ln in cell.source.splitlines() if ln.startswith("## ")]
    return found[-1] if found else None


def split_sections(nb) -> tuple[list, list[tuple[str, list]]]:
    """(set-up code cells, [(section title, its code cells)]) of a notebook."""
    setup, sections, current = [], [], None
    for cell in nb.cells:
        title = _heading(cell)
        if title is not None:
            current = (title, [])
            sections.append(current)
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if current is None or "setup" in cell.metadata.get("tags", []):
            setup.append(cell)
        else:
            current[1].append(cell)
    return setup, [s for s in sections if s[1]]


def _tree(src: str):
    import ast

    return ast.parse("\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines()))


def defined_names(src: str) -> set[str]:
    """Names a cell binds: assignments, loop targets, functions, classes, imports."""
    import ast

    out = set()
    for n in ast.walk(_tree(src)):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in n.names)
    return out


def used_names(src: str) -> set[str]:
    import ast

    return {n.id for n in ast.walk(_tree(src)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def guarded_names(src: str) -> set[str]:
    """Names a cell checks before use: quoted on a line with ``globals()`` in a cell that
    raises a RuntimeError (``if "pcond" not in globals(): raise RuntimeError("run ... first")``)."""
    if "raise RuntimeError(" not in src:
        return set()
    lines = [ln for ln in src.splitlines() if "globals()" in ln]
    return set(re.findall(r"""["']([A-Za-z_][A-Za-z_0-9]*)["']""", "\n".join(lines)))


def unguarded_cells(nb) -> list[tuple[int, list[str]]]:
    """[(cell index, names)]: cells that use names bound only by earlier cells of their own
    section (not by the set-up, not by themselves) and do not check them first. Such a
    cell, run after a restart and the set-up, would stop at a bare NameError."""
    setup, sections = split_sections(nb)
    base = set().union(*(defined_names(c.source) for c in setup))
    out = []
    for _, cells in sections:
        earlier: set[str] = set()
        for cell in cells:
            need = (used_names(cell.source) & earlier) - base - defined_names(cell.source) - guarded_names(cell.source)
            if need:
                out.append((nb.cells.index(cell), sorted(need)))
            earlier |= defined_names(cell.source)
    return out


_ids = iter(range(10**9))


def _fresh(cell, index: int | None = None, middle: bool = False):
    c = copy.deepcopy(cell)
    c["id"] = f"restart-{next(_ids)}"  # set-up cells repeat: ids must stay unique
    c.outputs, c.execution_count = [], None
    c.metadata["tags"] = [*c.metadata.get("tags", []), "raises-exception"]  # nbclient goes on
    if index is not None:
        c.metadata["nifkit_middle" if middle else "nifkit_section"] = index
    return c


def middle_cell(cells: list):
    """The code cell a student who jumps into a section runs: the middle one (None for a
    section of one code cell, whose start the section check covers)."""
    return cells[len(cells) // 2] if len(cells) > 1 else None


def derived_notebook(nb) -> tuple[object, list[tuple[int, str, int]]]:
    """One notebook that runs, per section (last first): reset, set-up, the section's
    middle cell alone (it must run or raise a guard saying what to run first), then the
    section from its first cell."""
    setup, sections = split_sections(nb)
    out = copy.deepcopy(nb)
    out.cells = []
    plan = []
    for index in reversed(range(len(sections))):
        title, cells = sections[index]
        plan.append((index, title, len(cells)))
        out.cells.append(_fresh(nbformat.v4.new_code_cell(RESET.format(mark=MARK, index=index)), index))
        out.cells.extend(_fresh(c, index) for c in setup)
        mid = middle_cell(cells)
        if mid is not None:
            out.cells.append(_fresh(mid, index, middle=True))
        out.cells.extend(_fresh(c, index) for c in cells)
    return out, plan


def check_notebook(path: Path, timeout: float = 900) -> RestartReport:
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    derived, plan = derived_notebook(nb)
    report = RestartReport(notebook=path.name)
    with tempfile.TemporaryDirectory(prefix="nifkit-restart-") as tmp:
        dpath = Path(tmp) / f"restart_{path.name}"
        nbformat.write(derived, dpath)
        run = run_notebook(dpath, timeout=timeout, fast=True, cwd=path.parent)
    report.seconds = run.seconds
    report.runner_error = run.error
    executed = nbformat.read(run.executed_copy, as_version=4) if run.executed_copy else derived
    first_error: dict[int, tuple[str, str]] = {}
    middles: dict[int, tuple[str, str | None]] = {}
    ran: set[int] = set()
    for cell in executed.cells:
        mid = cell.metadata.get("nifkit_middle")
        if mid is not None:
            line = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
            errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            err = None
            if errs:
                err = f"{errs[0].get('ename')}: {strip_ansi(errs[0].get('evalue', ''))}"
            elif cell.get("execution_count") is None:
                err = "not run (the runner stopped before it)"
            middles[mid] = (line[:80], err)
            continue
        index = cell.metadata.get("nifkit_section")
        if index is None:
            continue
        if cell.get("execution_count") is not None:
            ran.add(index)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and index not in first_error:
                line = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                first_error[index] = (f"{out.get('ename')}: {strip_ansi(out.get('evalue', ''))}", line[:80])
    for index, title, n in sorted(plan):
        res = SectionResult(index=index, title=title, code_cells=n)
        if index in first_error:
            res.error, res.cell = first_error[index]
        elif index not in ran:
            res.error = "not run (the runner stopped before it)"
        if index in middles:
            res.middle, res.middle_error = middles[index]
        report.sections.append(res)
    return report


def _main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or notebook_paths(NOTEBOOKS_DIR)
    bad = 0
    for p in paths:
        rep = check_notebook(p)
        print(rep.summary(), flush=True)
        bad += bool(rep.failing or rep.unguarded)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
