"""Real-browser test of the effective-information chapter: JupyterLab in headless Chromium
runs notebooks/05_effective_information.ipynb (fast mode), the ``epoch`` slider of the
CausalExplorer is moved back with the keyboard, and the readout (epoch, EI, sensitivity,
...) and the plot (the ringed epoch on the causal plane, the edge-EI heatmap) must change,
with no widget error on the page."""
from __future__ import annotations

import re

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
    widget_images,
)
from notebook_utils import MEMORY_LIMIT_BYTES, NOTEBOOKS_DIR, NotebookRun, record_run, report_line

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "05_effective_information.ipynb"
READOUT = re.compile(r"epoch (\d+) · (\w+): EI ([0-9.]+) · EI_parts ([0-9.]+) · sensitivity ([0-9.]+) · "
                     r"degeneracy (-?[0-9.]+) · phi (-?[0-9.]+) bits \((\d+) bins, (\d+) samples\)")


def test_causal_explorer_epoch_slider(jupyter_server, browser_page, request):
    assert (NOTEBOOKS_DIR / NOTEBOOK).is_file(), f"notebooks/{NOTEBOOK} is missing"
    page = browser_page
    peak = None
    try:
        with screenshot_on_failure(page, "causal"):
            seconds = open_and_run_notebook(page, jupyter_server, NOTEBOOK)
            assert_no_widget_errors(page)
            before = readout_text(page)
            m0 = READOUT.search(before)
            assert m0, f"unexpected readout {before!r}"
            images_before = widget_images(page)
            assert images_before, "the explorer shows no plot"

            # the explorer opens at the last snapshot: scrub two snapshots back (50 epochs each)
            old, new = move_slider(page, "epoch", steps=2, key="ArrowLeft")
            after = wait_for_readout_change(page, before)
            # each key press recomputes: wait for the readout of the slider's final epoch
            for _ in range(240):
                m1 = READOUT.search(after)
                if m1 and int(m1.group(1)) == int(new):
                    break
                page.wait_for_timeout(250)
                after = readout_text(page)
            page.wait_for_timeout(800)  # let the redrawn figure land
            images_after = widget_images(page)
            m1 = READOUT.search(after)
            assert m1, f"unexpected readout {after!r}"
            assert int(old) == int(m0.group(1)) and int(new) == int(m1.group(1)) == int(old) - 100, (old, new, after)
            assert m1.group(2) == m0.group(2)  # same layer
            assert (m1.group(3), m1.group(5)) != (m0.group(3), m0.group(5)), "EI and sensitivity did not change"
            assert m1.group(8, 9) == m0.group(8, 9)  # same bins and samples: scrubbing reuses the cache
            assert images_after and images_after != images_before, "the causal plane did not change"
            assert_no_widget_errors(page)
            peak = notebook_kernel_peak_bytes(jupyter_server, NOTEBOOK)
        screenshot(page, "causal-final")
    finally:
        shutdown_notebook_kernel(jupyter_server, NOTEBOOK)
    run = NotebookRun(name=NOTEBOOK, path=NOTEBOOK, seconds=seconds, peak_bytes=peak)
    record_run(run, report="browser")
    report_line(request, f"[browser] {run.summary()}; epoch {old} -> {new}; readout {before!r} -> {after!r}")
    if peak is not None:
        assert peak < MEMORY_LIMIT_BYTES, f"{NOTEBOOK}'s kernel peaked at {peak / 1e6:,.0f} MB in the browser run"
