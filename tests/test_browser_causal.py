"""Real-browser test of the effective-information chapter: JupyterLab in headless Chromium
runs notebooks/05_effective_information.ipynb (fast mode), the ``epoch`` slider of the
CausalExplorer is moved back with the keyboard, and the readout (epoch, EI, sensitivity,
...) and the plot (the ringed epoch on the causal plane, the edge-EI heatmap) must change,
with no widget error on the page."""
from __future__ import annotations

import re

import pytest

from browser_utils import explorer_run, move_slider, readout_text, wait_for_readout_change

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

NOTEBOOK = "05_effective_information.ipynb"
READOUT = re.compile(r"epoch (\d+) · (\w+): EI ([0-9.]+) · EI_parts ([0-9.]+) · sensitivity ([0-9.]+) · "
                     r"degeneracy (-?[0-9.]+) · phi (-?[0-9.]+) bits \((\d+) bins, (\d+) samples\)")


def test_causal_explorer_epoch_slider(jupyter_server, browser_page, request):
    page = browser_page
    with explorer_run(page, jupyter_server, request, NOTEBOOK, "causal") as run:
        m0 = READOUT.search(run.before)
        assert m0, f"unexpected readout {run.before!r}"
        # the explorer opens at the last snapshot: scrub two snapshots back (50 epochs each)
        old, new = move_slider(page, "epoch", steps=2, key="ArrowLeft")
        after = wait_for_readout_change(page, run.before)
        # each key press recomputes: wait for the readout of the slider's final epoch
        for _ in range(240):
            m1 = READOUT.search(after)
            if m1 and int(m1.group(1)) == int(new):
                break
            page.wait_for_timeout(250)
            after = readout_text(page)
        page.wait_for_timeout(300)  # with the frame's 500 ms: let the redrawn figure land
        run.after, run.moved = after, f"epoch {old} -> {new}"
        m1 = READOUT.search(after)
        assert m1, f"unexpected readout {after!r}"
        assert int(old) == int(m0.group(1)) and int(new) == int(m1.group(1)) == int(old) - 100, (old, new, after)
        assert m1.group(2) == m0.group(2)  # same layer
        assert (m1.group(3), m1.group(5)) != (m0.group(3), m0.group(5)), "EI and sensitivity did not change"
        assert m1.group(8, 9) == m0.group(8, 9)  # same bins and samples: scrubbing reuses the cache
