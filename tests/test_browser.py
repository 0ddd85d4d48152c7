"""Real-browser tests: JupyterLab in headless Chromium, driven like a reader would.

JupyterLab (from the .venv) serves a temporary copy of notebooks/ on 127.0.0.1 with
NIFKIT_FAST=1. A notebook is opened, Run → Run All Cells, the ``bins`` slider of its
explorer is moved with the keyboard, and the explorer's readout (CSS class
``nifkit-readout``) and plot must change, with no widget error on the page.

``test_widget_harness`` checks the harness itself on tests/fixtures/widget_smoke.ipynb;
``test_primer_bias_explorer`` checks the primer chapter. Screenshots go to
tests/reports/ (``*-failure.png`` when a test fails, ``*-final.png`` otherwise); time
and kernel peak memory to tests/reports/browser.{json,md}.
"""
from __future__ import annotations

import re

import pytest

from browser_utils import (
    READOUT_SELECTOR,
    assert_no_widget_errors,
    move_slider,
    open_and_run_notebook,
    readout_text,
    screenshot,
    screenshot_on_failure,
    wait_for_readout_change,
    wait_for_readout_settle,
    widget_images,
)
from lab_server import notebook_kernel_peak_bytes, shutdown_notebook_kernel
from notebook_utils import MEMORY_LIMIT_BYTES, NOTEBOOKS_DIR, NotebookRun, record_run, report_line

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


def explore_bins(page, server, relpath: str, name: str, request) -> dict:
    """Run all cells of ``relpath``, move the ``bins`` slider, check readout and plot change."""
    try:
        with screenshot_on_failure(page, name):
            seconds = open_and_run_notebook(page, server, relpath)
            assert_no_widget_errors(page)

            before = readout_text(page, near="bins")
            assert before, f"the readout ({READOUT_SELECTOR}) is empty after running all cells"
            images_before = widget_images(page, near="bins")
            assert images_before, "the explorer shows no plot (no image inside its widgets)"

            old, new = move_slider(page, "bins", steps=3)
            wait_for_readout_change(page, before, near="bins")
            after = wait_for_readout_settle(page, near="bins")  # every key press recomputes
            images_after = widget_images(page, near="bins")

            assert after != before, f"readout did not change when bins moved {old} -> {new}"
            assert re.search(rf"\bbins\s*=\s*{new}\b", after), (
                f"the readout should report the new bin count (bins={new}): {after!r}"
            )
            assert images_after and images_after != images_before, (
                f"the plot did not change when bins moved {old} -> {new}"
            )
            assert_no_widget_errors(page)
            peak = notebook_kernel_peak_bytes(server, relpath)

        page.locator(READOUT_SELECTOR).first.scroll_into_view_if_needed()
        page.mouse.wheel(0, 250)  # readout and plot in view for the screenshot
        page.wait_for_timeout(300)
        screenshot(page, f"{name}-final")
    finally:
        shutdown_notebook_kernel(server, relpath)

    run = NotebookRun(name=relpath, path=relpath, seconds=seconds, peak_bytes=peak, fast=True)
    record_run(run, report="browser")
    report_line(request, f"[browser] {run.summary()}; bins {old} -> {new}; "
                         f"readout {before!r} -> {after!r}")
    if peak is not None:
        assert peak < MEMORY_LIMIT_BYTES, f"{relpath}'s kernel peaked at {peak / 1e6:,.0f} MB in the browser run"
    return {"before": before, "after": after, "bins": (old, new), "seconds": seconds, "peak": peak}


def test_widget_harness(jupyter_server, browser_page, request):
    """The harness on a tiny notebook with the same widgets as the primer's explorer."""
    out = explore_bins(browser_page, jupyter_server, "fixtures/widget_smoke.ipynb", "widget_smoke", request)
    assert out["bins"] == ("8", "11"), out["bins"]
    assert "bins = 11" in out["after"], out["after"]
    assert "fast mode: True" in browser_page.locator(".jp-OutputArea-output").first.inner_text()


def test_primer_bias_explorer(jupyter_server, browser_page, request):
    """The primer's binning-bias explorer: IntSlider 'bins' -> readout and plot change."""
    assert (NOTEBOOKS_DIR / "00_primer.ipynb").is_file(), "notebooks/00_primer.ipynb is missing"
    explore_bins(browser_page, jupyter_server, "00_primer.ipynb", "primer", request)
