"""Real-browser test of chapter 7: JupyterLab in headless Chromium runs
notebooks/07_your_network.ipynb (fast mode), the ``neuron`` slider of its CompareExplorer
(the residual CNN's channels through every lens) is moved with the keyboard, and the
readout (the picked channel's address and ranks) and the plot must change, with no
widget error on the page."""
from __future__ import annotations

import re
import time

import pytest

from browser_utils import explorer_run, move_slider, readout_text, wait_for_readout_change, wait_for_readout_settle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "07_your_network.ipynb"
SLIDER = "neuron"
READOUT = re.compile(r"(\w+) vs (\w+): rho = ([+-][0-9.]+); neuron ([\w.]+):(\d+) ranks: .*knockout \d+; "
                     r"top-(\d+) knockout drop: ")


def _wait_for_channel(page, j: int, timeout: float = 180.0):
    """Wait until the readout reports the slider's channel ``j`` (every key press
    recomputes, and on a busy machine the updates queue up); returns the readout's match."""
    deadline = time.monotonic() + timeout
    while True:
        m = READOUT.search(readout_text(page, near=SLIDER))
        if m and int(m.group(5)) == j:
            return READOUT.search(wait_for_readout_settle(page, near=SLIDER))
        if time.monotonic() > deadline:
            raise AssertionError(f"the readout never reported channel {j}: {readout_text(page, near=SLIDER)!r}")
        page.wait_for_timeout(250)


def test_your_network_explorer_slider(jupyter_server, browser_page, request):
    page = browser_page
    with explorer_run(page, jupyter_server, request, NOTEBOOK, "your-network", near=SLIDER) as run:
        m0 = READOUT.search(run.before)
        assert m0, f"unexpected readout {run.before!r}"
        old, new = move_slider(page, SLIDER, steps=3, key="ArrowRight")
        wait_for_readout_change(page, run.before, near=SLIDER)
        m1 = _wait_for_channel(page, int(new))   # the first layer has 16 channels: slider index = channel
        run.after = readout_text(page, near=SLIDER)
        run.moved = f"neuron {old} -> {new}"
        assert int(m1.group(5)) == int(m0.group(5)) + 3 == int(new), (old, new, run.before, run.after)
        assert m1.group(1, 2, 3) == m0.group(1, 2, 3)  # same two lenses, same rho
