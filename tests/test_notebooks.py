"""Every chapter notebook runs top to bottom in fast mode, within time and memory.

Each ``notebooks/*.ipynb`` (sorted by name) is executed with nbclient in a kernel of
the project's .venv, cwd = notebooks/, ``NIFKIT_FAST=1``, matplotlib on the notebook's
inline backend. A failing cell fails the test with the cell's source and traceback.
The kernel's peak memory must stay under 1.5 GB (Binder's limit is 2 GB). Time and
peak memory of each notebook go to tests/reports/notebooks.{json,md} and are printed.

The harness itself is checked on tests/fixtures/widget_smoke.ipynb and on a notebook
with a deliberate error.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from notebook_utils import (
    FIXTURES_DIR,
    MEMORY_LIMIT_BYTES,
    NOTEBOOK_TIMEOUT,
    NOTEBOOKS_DIR,
    notebook_paths,
    record_run,
    report_line,
    run_notebook,
)

NOTEBOOKS = notebook_paths(NOTEBOOKS_DIR)


def _report(request, run) -> None:
    """Record the run in tests/reports/ and print its summary on the terminal."""
    record_run(run)
    report_line(request, f"[notebook] {run.summary()}")


def test_chapter_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"
    assert (NOTEBOOKS_DIR / "00_primer.ipynb") in NOTEBOOKS, "notebooks/00_primer.ipynb is missing"
    assert (NOTEBOOKS_DIR / "03_relay_information.ipynb") in NOTEBOOKS, "notebooks/03_relay_information.ipynb is missing"
    assert (NOTEBOOKS_DIR / "06_capstone.ipynb") in NOTEBOOKS, "notebooks/06_capstone.ipynb is missing"


@pytest.mark.notebook
@pytest.mark.timeout(NOTEBOOK_TIMEOUT + 120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, request):
    run = run_notebook(path, timeout=NOTEBOOK_TIMEOUT, fast=True)
    _report(request, run)
    if run.error is not None:
        pytest.fail(run.error, pytrace=False)
    assert run.kernel_prefix == sys.prefix, (
        f"the notebook ran in {run.kernel_prefix}, not in this venv ({sys.prefix}): "
        "a 'python3' kernelspec elsewhere shadows the venv's"
    )
    assert run.peak_bytes is not None, "could not measure the kernel's peak memory"
    assert run.peak_bytes < MEMORY_LIMIT_BYTES, (
        f"{run.name} peaked at {run.peak_bytes / 1e6:,.0f} MB, over the "
        f"{MEMORY_LIMIT_BYTES / 1e6:,.0f} MB budget (Binder has 2 GB)"
    )


# ----------------------------------------------------------------- the harness itself
@pytest.mark.notebook
def test_harness_runs_fixture_in_venv_kernel_fast_mode(request):
    run = run_notebook(FIXTURES_DIR / "widget_smoke.ipynb")
    _report(request, run)
    assert run.error is None, run.error
    assert run.kernel_prefix == sys.prefix
    assert run.kernel_pid and run.peak_bytes and run.peak_bytes > 10e6
    nb = nbformat.read(run.executed_copy, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "fast mode: True" in printed, "NIFKIT_FAST=1 did not reach the kernel"
    assert "widgets" in nb.metadata, "widget state was not saved into the executed notebook"


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
    run = run_notebook(path, timeout=8, save_executed=False)
    assert run.error is not None and "time budget" in run.error, run.error
    assert "time.sleep(120)" in run.error
    assert run.seconds < 60
