"""Real-browser test of the capstone: JupyterLab in headless Chromium runs
notebooks/06_capstone.ipynb (fast mode), the ``neuron`` slider of the CompareExplorer is
moved with the keyboard, and the readout (the picked neuron's address and ranks) and the
plot (the neuron highlighted in the scatter and in every lens's ranking) must change, with
no widget error on the page."""
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

NOTEBOOK = "06_capstone.ipynb"
SLIDER = "neuron"
READOUT = re.compile(r"(\w+) vs (\w+): rho = ([+-][0-9.]+); neuron act1:(\d+) ranks: .*knockout \d+; "
                     r"top-(\d+) knockout drop: ")


def _wait_for_neuron(page, j: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while f"neuron act1:{j} " not in readout_text(page, near=SLIDER):
        if time.monotonic() > deadline:
            raise AssertionError(f"the readout never reported neuron act1:{j}: "
                                 f"{readout_text(page, near=SLIDER)!r}")
        page.wait_for_timeout(250)


def _settled_images(page, quiet: float = 1.5, timeout: float = 60.0):
    last, since = widget_images(page, near=SLIDER), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        now = widget_images(page, near=SLIDER)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_capstone_explorer_slider(jupyter_server, browser_page, request):
    assert (NOTEBOOKS_DIR / NOTEBOOK).is_file(), f"notebooks/{NOTEBOOK} is missing"
    page = browser_page
    try:
        with screenshot_on_failure(page, "capstone"):
            seconds = open_and_run_notebook(page, jupyter_server, NOTEBOOK)
            assert_no_widget_errors(page)
            before = readout_text(page, near=SLIDER)
            m0 = READOUT.search(before)
            assert m0, f"unexpected readout {before!r}"
            images_before = widget_images(page, near=SLIDER)
            assert images_before, "the explorer shows no plot"

            old, new = move_slider(page, SLIDER, steps=3, key="ArrowRight")
            wait_for_readout_change(page, before, near=SLIDER)
            # every key press recomputes, and on a busy machine the updates queue up: wait
            # until the readout reports the slider's final neuron, then for the figure to settle
            _wait_for_neuron(page, int(new))
            after = wait_for_readout_settle(page, near=SLIDER)
            images_after = _settled_images(page)

            m1 = READOUT.search(after)
            assert m1, f"unexpected readout {after!r}"
            assert int(m1.group(4)) == int(m0.group(4)) + 3 == int(new), (old, new, before, after)
            assert m1.group(1, 2, 3) == m0.group(1, 2, 3)  # same two lenses, same rho
            assert images_after and images_after != images_before, "the plot did not change"
            assert_no_widget_errors(page)
            peak = notebook_kernel_peak_bytes(jupyter_server, NOTEBOOK)
        screenshot(page, "capstone-final")
    finally:
        shutdown_notebook_kernel(jupyter_server, NOTEBOOK)
    run = NotebookRun(name=NOTEBOOK, path=NOTEBOOK, seconds=seconds, peak_bytes=peak)
    record_run(run, report="browser")
    report_line(request, f"[browser] {run.summary()}; neuron {old} -> {new}; readout {before!r} -> {after!r}")
    if peak is not None:
        assert peak < MEMORY_LIMIT_BYTES, f"{NOTEBOOK}'s kernel peaked at {peak / 1e6:,.0f} MB in the browser run"
