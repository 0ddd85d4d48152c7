"""Real-browser test of the conductance chapter: JupyterLab in headless Chromium runs
notebooks/02_conductance_information_plane.ipynb (fast mode), the ``steps`` slider of the
ConductanceExplorer is moved with the keyboard, and the readout (steps and completeness
gap) and the plot must change, with no widget error on the page."""
from __future__ import annotations

import re
import time

import pytest

from browser_utils import explorer_run, move_slider, readout_text, wait_for_readout_change, wait_for_readout_settle

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
    page = browser_page
    with explorer_run(page, jupyter_server, request, NOTEBOOK, "conductance", near="steps") as run:
        m0 = READOUT.search(run.before)
        assert m0, f"unexpected readout {run.before!r}"
        old, new = move_slider(page, "steps", steps=4)
        wait_for_readout_change(page, run.before, near="steps")
        run.after = _wait_for_steps(page, int(new))  # every key press recomputes, one after another
        run.moved = f"steps {old} -> {new}"
        m1 = READOUT.search(run.after)
        assert m1, f"unexpected readout {run.after!r}"
        assert int(m1.group(2)) == int(m0.group(2)) + 4 == int(new), (old, new, run.before, run.after)
        assert m1.group(1) == m0.group(1) and m1.group(3) == m0.group(3)  # same layer and alpha rule
        assert float(m1.group(4)) != float(m0.group(4)), "the completeness gap did not change with the steps"
