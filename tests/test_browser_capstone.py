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
    explorer_run,
    move_slider,
    readout_text,
    wait_for_readout_change,
    wait_for_readout_settle,
    widget_images,
)

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
    page = browser_page
    with explorer_run(page, jupyter_server, request, NOTEBOOK, "capstone", near=SLIDER) as run:
        m0 = READOUT.search(run.before)
        assert m0, f"unexpected readout {run.before!r}"
        old, new = move_slider(page, SLIDER, steps=3, key="ArrowRight")
        wait_for_readout_change(page, run.before, near=SLIDER)
        # every key press recomputes, and on a busy machine the updates queue up: wait
        # until the readout reports the slider's final neuron, then for the figure to settle
        _wait_for_neuron(page, int(new))
        run.after = wait_for_readout_settle(page, near=SLIDER)
        _settled_images(page)
        run.moved = f"neuron {old} -> {new}"
        m1 = READOUT.search(run.after)
        assert m1, f"unexpected readout {run.after!r}"
        assert int(m1.group(4)) == int(m0.group(4)) + 3 == int(new), (old, new, run.before, run.after)
        assert m1.group(1, 2, 3) == m0.group(1, 2, 3)  # same two lenses, same rho
