"""Real-browser test of the relay chapter: JupyterLab in headless Chromium runs
notebooks/03_relay_information.ipynb (fast mode), the ``greedy step`` slider of the
RelayExplorer is moved with the keyboard, and the readout (step, set size, I_R, knockout
accuracy) and the plot (marker, set on the layer, weights) must change, with no widget
error on the page."""
from __future__ import annotations

import re

import pytest

from browser_utils import explorer_run, move_slider, wait_for_readout_change, wait_for_readout_settle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "03_relay_information.ipynb"
SLIDER = "greedy step"
READOUT = re.compile(r"class (\d+), step (\d+): set of (\d+) neurons \[[0-9, ]*\] I_R = (-?[0-9.]+) bits; "
                     r"knocked out: balanced accuracy ([0-9.]+)")


def test_relay_explorer_slider(jupyter_server, browser_page, request):
    page = browser_page
    with explorer_run(page, jupyter_server, request, NOTEBOOK, "relay", near=SLIDER) as run:
        m0 = READOUT.search(run.before)
        assert m0, f"unexpected readout {run.before!r}"
        old, new = move_slider(page, SLIDER, steps=4, key="ArrowLeft")
        wait_for_readout_change(page, run.before, near=SLIDER)
        run.after = wait_for_readout_settle(page, near=SLIDER)  # every key press recomputes
        run.moved = f"step {old} -> {new}"
        m1 = READOUT.search(run.after)
        assert m1, f"unexpected readout {run.after!r}"
        assert int(m1.group(2)) == int(m0.group(2)) - 4 == int(new), (old, new, run.before, run.after)
        assert int(m1.group(3)) == int(m0.group(3)) + 4  # four neurons back in the set
        assert m1.group(1) == m0.group(1)  # same class
