"""Every chapter notebook runs top to bottom in full mode, within time and memory, and
README.md's chapter table is what these runs measured.

Each ``notebooks/*.ipynb`` (sorted by name) is executed with nbclient in a kernel of the
project's .venv, cwd = notebooks/, in **full mode** (``NIFKIT_FAST`` unset: what a student
sees; fast mode stays for the browser and restart tests), matplotlib on the notebook's
inline backend. A failing cell fails the test with the cell's source and traceback.
Measured from the kernel process (tests/notebook_utils.py): wall time, the import baseline
(the kernel's RSS right after the first code cell, the chapter's set-up imports, and the
imports chapters trigger on first use, ``LAZY_IMPORTS``) and the
peak memory. A chapter fails when it takes more than ``CHAPTER_SECONDS_LIMIT`` (3 minutes)
or rises more than ``RISE_LIMIT_BYTES`` (400 MB) above its imports: mybinder.org guarantees
1 GB, and the imports alone differ between torch builds. Each run goes to
tests/reports/notebooks.{json,md}, its executed copy to tests/reports/executed/ (the book
uses it), and README.md's chapter table is rewritten from the recorded runs.

Times are wall clock on a shared machine: the load average at the start and end of each
run is recorded beside them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from notebook_reports import TABLE_END, TABLE_START, chapter_table, update_readme_table
from notebook_utils import (
    CHAPTER_SECONDS_LIMIT,
    FIXTURES_DIR,
    MEMORY_LIMIT_BYTES,
    NOTEBOOK_TIMEOUT,
    NOTEBOOKS_DIR,
    REPO,
    RISE_LIMIT_BYTES,
    notebook_paths,
    record_run,
    report_line,
    run_notebook,
)

NOTEBOOKS = notebook_paths(NOTEBOOKS_DIR)


def _report(request, run, readme: bool = False) -> None:
    """Record the run in tests/reports/ (and README.md's table) and print its summary."""
    record_run(run)
    if readme:
        update_readme_table()
    report_line(request, f"[notebook] {run.summary()}")


def test_chapter_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"
    assert (NOTEBOOKS_DIR / "00_primer.ipynb") in NOTEBOOKS, "notebooks/00_primer.ipynb is missing"
    assert (NOTEBOOKS_DIR / "03_relay_information.ipynb") in NOTEBOOKS, "notebooks/03_relay_information.ipynb is missing"
    assert (NOTEBOOKS_DIR / "06_capstone.ipynb") in NOTEBOOKS, "notebooks/06_capstone.ipynb is missing"
    assert (NOTEBOOKS_DIR / "07_your_network.ipynb") in NOTEBOOKS, "notebooks/07_your_network.ipynb is missing"


@pytest.mark.notebook
@pytest.mark.timeout(NOTEBOOK_TIMEOUT + 120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, request):
    run = run_notebook(path, timeout=NOTEBOOK_TIMEOUT, fast=False)
    _report(request, run, readme=True)
    if run.error is not None:
        pytest.fail(run.error, pytrace=False)
    assert run.kernel_prefix == sys.prefix, (
        f"the notebook ran in {run.kernel_prefix}, not in this venv ({sys.prefix}): "
        "a 'python3' kernelspec elsewhere shadows the venv's"
    )
    assert run.peak_bytes is not None and run.baseline_bytes, "could not measure the kernel's memory"
    slowest = sorted(run.cell_seconds, key=lambda c: -c["seconds"])[:3]
    assert run.seconds <= CHAPTER_SECONDS_LIMIT, (
        f"{run.name} took {run.seconds:.0f} s in full mode, over {CHAPTER_SECONDS_LIMIT} s "
        f"(load average {max(run.load):.1f}); slowest cells: {slowest}"
    )
    biggest = sorted(run.cell_seconds, key=lambda c: -c["peak_mb"])[:3]
    assert run.rise_bytes <= RISE_LIMIT_BYTES, (
        f"{run.name} rose {run.rise_bytes / 1e6:,.0f} MB above its imports ({run.baseline_bytes / 1e6:,.0f} MB "
        f"after the first cell, peak {run.peak_mb:,.0f} MB), over {RISE_LIMIT_BYTES / 1e6:,.0f} MB; "
        f"cells with the highest peaks: {biggest}"
    )
    assert run.peak_bytes < MEMORY_LIMIT_BYTES, (
        f"{run.name} peaked at {run.peak_mb:,.0f} MB, over the {MEMORY_LIMIT_BYTES / 1e6:,.0f} MB budget "
        "(Binder restarts a kernel above 2 GB)"
    )


def test_readme_table_is_written_from_the_recorded_runs(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert readme.count(TABLE_START) == 1 and readme.count(TABLE_END) == 1, (
        "README.md lost its chapter-table markers; tests/test_notebooks.py writes the table between them")
    entry = {"fast_mode": False, "ok": True, "seconds": 61.2, "peak_mb": 1034.4, "baseline_mb": 624.0,
             "rise_mb": 310.4, "when": "2026-12-06 17:00", "load": [3.5, 4.25],
             "machine": {"cpu": "AMD EPYC", "cpus": 2, "flags": "avx2", "torch": "2.14.1+cpu, CPU-only build"}}
    table = chapter_table({"a.ipynb": entry, "b.ipynb": dict(entry, fast_mode=True)}, ["a.ipynb", "b.ipynb"])
    assert "| `a.ipynb` | 61 | 1,034 | 624 | 310 | 2026-12-06 17:00, load 4.2 |" in table, table
    assert "| `b.ipynb` | not measured in full mode |" in table, "a fast-mode run must not fill the table"
    slow = chapter_table({"a.ipynb": dict(entry, seconds=186.0, ok=False, rise_mb=410.4)}, ["a.ipynb"])
    assert "| `a.ipynb` | 186 (a cell failed) (over 180 s) | 1,034 | 624 | 410 (over 400) |" in slow, slow
    assert "Measured on: AMD EPYC, 2 CPUs (avx2); torch 2.14.1+cpu, CPU-only build." in table
    # the rewrite replaces only what lies between the markers
    fake = tmp_path / "README.md"
    fake.write_text(f"intro\n{TABLE_START}\nstale 1,051 MB\n{TABLE_END}\noutro\n")
    report = tmp_path / "notebooks.json"
    import json

    report.write_text(json.dumps({NOTEBOOKS[0].name: entry}))
    update_readme_table(fake, report)
    text = fake.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "stale" not in text
    assert f"| `{NOTEBOOKS[0].name}` | 61 |" in text


# ----------------------------------------------------------------- the harness itself
@pytest.mark.notebook
def test_harness_runs_fixture_in_venv_kernel_fast_mode(request):
    run = run_notebook(FIXTURES_DIR / "widget_smoke.ipynb", fast=True)
    _report(request, run)
    assert run.error is None, run.error
    assert run.kernel_prefix == sys.prefix
    assert run.kernel_pid and run.peak_bytes and run.peak_bytes > 10e6
    assert run.baseline_bytes and 10e6 < run.baseline_bytes <= run.peak_bytes
    assert [c["cell"] for c in run.cell_seconds] == [i for i, c in enumerate(nbformat.read(
        FIXTURES_DIR / "widget_smoke.ipynb", as_version=4).cells) if c.cell_type == "code"]
    nb = nbformat.read(run.executed_copy, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "fast mode: True" in printed, "NIFKIT_FAST=1 did not reach the kernel"
    assert "widgets" in nb.metadata, "widget state was not saved into the executed notebook"


@pytest.mark.notebook
def test_harness_measures_each_cell_and_the_rise_above_the_imports(tmp_path):
    nb = new_notebook(cells=[new_code_cell("import numpy as np"),
                             new_code_cell("a = np.ones(300_000_000 // 8)\ndel a"),   # 300 MB, then freed
                             new_code_cell("b = 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "alloc.ipynb"
    nbformat.write(nb, path)
    run = run_notebook(path, save_executed=False)
    assert run.error is None, run.error
    cells = {c["cell"]: c for c in run.cell_seconds}
    assert run.baseline_bytes / 1e6 > cells[0]["rss_mb"] + 50, "the baseline should hold LAZY_IMPORTS (torch._dynamo)"
    assert not run.notes, run.notes
    assert cells[1]["peak_mb"] - cells[0]["rss_mb"] >= 290, cells
    assert cells[1]["rss_mb"] < cells[1]["peak_mb"] - 250, "the freed array should leave the RSS"
    assert cells[2]["peak_mb"] < cells[1]["peak_mb"] - 250, "the peak was not reset before cell 2"
    assert 290e6 <= run.rise_bytes <= 400e6, run.summary()


@pytest.mark.notebook
def test_harness_reports_failing_cell_with_source_and_traceback(tmp_path):
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("y = x / 0  # boom")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    run = run_notebook(path, save_executed=False)
    assert run.error is not None
    assert "cell 1" in run.error and "y = x / 0  # boom" in run.error
    assert "ZeroDivisionError" in run.error
    assert "\x1b[" not in run.error, "ANSI colour codes should be stripped"


@pytest.mark.notebook
def test_harness_enforces_the_notebook_time_budget(tmp_path):
    nb = new_notebook(cells=[new_code_cell("import time"), new_code_cell("time.sleep(120)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    # 30 s: the first cell also runs the warm-up imports, which took 8.7 s on the loaded 2-core machine
    run = run_notebook(path, timeout=30, save_executed=False)
    assert run.error is not None and "time budget" in run.error, run.error
    assert "time.sleep(120)" in run.error
    assert run.seconds < 90
