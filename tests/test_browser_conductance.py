"""Real-browser test of the conductance chapter: JupyterLab in headless Chromium runs
notebooks/02_conductance_information_plane.ipynb (fast mode), the ``steps`` slider of the
ConductanceExplorer is moved with the keyboard, and the readout (steps and completeness
gap) and the plot must change, with no widget error on the page."""
from __future__ import annotations

import re
import time

import pytest

from browser_utils import (
    assert_no_widget_errors,
    move_slider,
    notebook_kernel_peak_bytes,
    open_and_run_notebook,
    readout_text,
    screenshot,
    screenshot_on_failure,
    shutdown_notebook_kernel,
    wait_for_readout_change,
    wait_for_readout_settle,
    widget_images,
)
from notebook_utils import MEMORY_LIMIT_BYTES, NOTEBOOKS_DIR, NotebookRun, record_run, report_line

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "02_conductance_information_plane.ipynb"
READOUT = re.compile(r"(\S+), (\d+) steps \((\w+)\), .*completeness gap ([0-9.]+)")


def _wait_for_steps(page, steps: int, timeout: float = 180) -> str:
    """The readout once it reports ``steps`` (each key press queued one recomputation,
    and each takes a moment on a busy machine), then settled."""
    deadline = time.monotonic() + timeout
    while True:
        text = readout_text(page, near="steps")
        m = READOUT.search(text)
        if m and int(m.group(2)) == steps:
            return wait_for_readout_settle(page, near="steps")
        if time.monotonic() > deadline:
            raise AssertionError(f"the readout never reported {steps} steps; last: {text!r}")
        page.wait_for_timeout(250)


def test_conductance_explorer_steps(jupyter_server, browser_page, request):
    assert (NOTEBOOKS_DIR / NOTEBOOK).is_file(), f"notebooks/{NOTEBOOK} is missing"
    page = browser_page
    try:
        with screenshot_on_failure(page, "conductance"):
            seconds = open_and_run_notebook(page, jupyter_server, NOTEBOOK)
            assert_no_widget_errors(page)
            before = readout_text(page, near="steps")
            m0 = READOUT.search(before)
            assert m0, f"unexpected readout {before!r}"
            images_before = widget_images(page, near="steps")
            assert images_before, "the explorer shows no plot"

            old, new = move_slider(page, "steps", steps=4)
            wait_for_readout_change(page, before, near="steps")
            after = _wait_for_steps(page, int(new))  # every key press recomputes, one after another
            page.wait_for_timeout(500)  # let the redrawn figure land
            images_after = widget_images(page, near="steps")

            m1 = READOUT.search(after)
            assert m1, f"unexpected readout {after!r}"
            assert int(m1.group(2)) == int(m0.group(2)) + 4 == int(new), (old, new, before, after)
            assert m1.group(1) == m0.group(1) and m1.group(3) == m0.group(3)  # same layer and alpha rule
            assert float(m1.group(4)) != float(m0.group(4)), "the completeness gap did not change with the steps"
            assert images_after and images_after != images_before, "the plot did not change"
            assert_no_widget_errors(page)
            peak = notebook_kernel_peak_bytes(jupyter_server, NOTEBOOK)
        screenshot(page, "conductance-final")
    finally:
        shutdown_notebook_kernel(jupyter_server, NOTEBOOK)
    run = NotebookRun(name=NOTEBOOK, path=NOTEBOOK, seconds=seconds, peak_bytes=peak)
    record_run(run, report="browser")
    report_line(request, f"[browser] {run.summary()}; steps {old} -> {new}; readout {before!r} -> {after!r}")
    if peak is not None:
        assert peak < MEMORY_LIMIT_BYTES, f"{NOTEBOOK}'s kernel peaked at {peak / 1e6:,.0f} MB in the browser run"
