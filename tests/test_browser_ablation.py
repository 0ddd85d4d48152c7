"""Real-browser test of the ordered-ablation chapter: JupyterLab in headless Chromium runs
notebooks/04_ordered_ablation.ipynb (fast mode), the ``ablated`` slider of the
AblationExplorer is moved with the keyboard, and the readout (number ablated and test
accuracy) and the plot (the marker on the accuracy curve) must change, with no widget
error on the page."""
from __future__ import annotations

import re

import pytest

from browser_utils import explorer_run, move_slider, wait_for_readout_change, wait_for_readout_settle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "04_ordered_ablation.ipynb"
READOUT = re.compile(r"ablated (\d+) of (\d+) neurons of (\w+) \(.*\): accuracy ([0-9.]+)")


def test_ablation_explorer_slider(jupyter_server, browser_page, request):
    page = browser_page
    with explorer_run(page, jupyter_server, request, NOTEBOOK, "ablation", near="ablated") as run:
        m0 = READOUT.search(run.before)
        assert m0, f"unexpected readout {run.before!r}"
        old, new = move_slider(page, "ablated", steps=4)
        wait_for_readout_change(page, run.before, near="ablated")
        run.after = wait_for_readout_settle(page, near="ablated")  # every key press recomputes
        run.moved = f"ablated {old} -> {new}"
        m1 = READOUT.search(run.after)
        assert m1, f"unexpected readout {run.after!r}"
        assert int(m1.group(1)) == int(m0.group(1)) + 4 == int(new), (old, new, run.before, run.after)
        assert m1.group(2) == m0.group(2) and m1.group(3) == m0.group(3)  # same layer
