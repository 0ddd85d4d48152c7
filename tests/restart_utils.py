"""Restart safety: can a student run any section of a chapter right after a restart?

A chapter's *set-up* is its code cells before the first ``##`` heading, plus any cell
tagged ``setup``. Its *sections* start at each markdown cell with a ``##`` heading (a cell
with several belongs to its last one). For each section, the check empties the kernel's
namespace (``%reset -f``: every name is gone, as after a restart), runs the set-up cells,
then that section's code cells, and records the first error. Sections run from the last
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


@dataclass
class SectionResult:
    index: int
    title: str
    code_cells: int
    error: str | None = None        # "NameError: name 'net' is not defined"
    cell: str | None = None         # first line of the failing cell

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

    def summary(self) -> str:
        bad = self.failing
        head = (f"{self.notebook}: {len(self.sections) - len(bad)}/{len(self.sections)} sections run "
                f"after a restart ({self.seconds:.0f} s)")
        lines = [head] + [f"  ✗ section {s.title!r}: {s.error} (cell: {s.cell})" for s in bad]
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


_ids = iter(range(10**9))


def _fresh(cell, index: int | None = None):
    c = copy.deepcopy(cell)
    c["id"] = f"restart-{next(_ids)}"  # set-up cells repeat: ids must stay unique
    c.outputs, c.execution_count = [], None
    c.metadata["tags"] = [*c.metadata.get("tags", []), "raises-exception"]  # nbclient goes on
    if index is not None:
        c.metadata["nifkit_section"] = index
    return c


def derived_notebook(nb) -> tuple[object, list[tuple[int, str, int]]]:
    """One notebook that runs, per section (last first): reset, set-up, the section."""
    setup, sections = split_sections(nb)
    out = copy.deepcopy(nb)
    out.cells = []
    plan = []
    for index in reversed(range(len(sections))):
        title, cells = sections[index]
        plan.append((index, title, len(cells)))
        out.cells.append(_fresh(nbformat.v4.new_code_cell(RESET.format(mark=MARK, index=index)), index))
        out.cells.extend(_fresh(c, index) for c in setup)
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
    ran: set[int] = set()
    for cell in executed.cells:
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
        report.sections.append(res)
    return report


def _main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or notebook_paths(NOTEBOOKS_DIR)
    bad = 0
    for p in paths:
        rep = check_notebook(p)
        print(rep.summary(), flush=True)
        bad += bool(rep.failing)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
