"""Real-browser test of the ordered-ablation chapter: JupyterLab in headless Chromium runs
notebooks/05_ordered_ablation.ipynb (fast mode), the ``ablated`` slider of the
AblationExplorer is moved with the keyboard, and the readout (number ablated and test
accuracy) and the plot (the marker on the accuracy curve) must change, with no widget
error on the page."""
from __future__ import annotations

import re

import pytest

from browser_utils import (  # noqa: F401 - fixtures are used by name
    assert_no_widget_errors,
    browser_page,
    chromium_browser,
    jupyter_server,
    move_slider,
    open_and_run_notebook,
    readout_text,
    screenshot,
    screenshot_on_failure,
    wait_for_readout_change,
    widget_images,
)
from notebook_utils import NOTEBOOKS_DIR, NotebookRun, record_run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "05_ordered_ablation.ipynb"
READOUT = re.compile(r"ablated (\d+) of (\d+) neurons of (\w+) \(.*\): accuracy ([0-9.]+)")


def test_ablation_explorer_slider(jupyter_server, browser_page, request):
    assert (NOTEBOOKS_DIR / NOTEBOOK).is_file(), f"notebooks/{NOTEBOOK} is missing"
    page = browser_page
    with screenshot_on_failure(page, "ablation"):
        seconds = open_and_run_notebook(page, jupyter_server, NOTEBOOK)
        assert_no_widget_errors(page)
        before = readout_text(page)
        m0 = READOUT.search(before)
        assert m0, f"unexpected readout {before!r}"
        images_before = widget_images(page)
        assert images_before, "the explorer shows no plot"

        old, new = move_slider(page, "ablated", steps=4)
        after = wait_for_readout_change(page, before)
        for _ in range(120):  # each key press commits a value: wait for the last one
            if after.startswith(f"ablated {new} of"):
                break
            page.wait_for_timeout(250)
            after = readout_text(page)
        page.wait_for_timeout(800)  # let the redrawn figure land
        images_after = widget_images(page)
        m1 = READOUT.search(after)
        assert m1, f"unexpected readout {after!r}"
        assert int(m1.group(1)) == int(m0.group(1)) + 4 == int(new), (old, new, before, after)
        assert m1.group(3) == m0.group(3)  # same layer
        assert m1.group(4) != m0.group(4) or int(m1.group(1)) != int(m0.group(1))
        assert images_after != images_before, "the plot (curve marker) did not change"
        assert_no_widget_errors(page)
    screenshot(page, "ablation-final")
    record_run(NotebookRun(name=NOTEBOOK, path=NOTEBOOK, seconds=seconds), report="browser")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(f"[browser] {NOTEBOOK}: run all {seconds:.1f} s; ablated {old} -> {new}; "
                            f"readout {before!r} -> {after!r}")
