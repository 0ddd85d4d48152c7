"""Real-browser test of the NIF chapter: JupyterLab in headless Chromium.

notebooks/01_nif.ipynb is opened, Run → Run All Cells (fast mode), then the
``threshold`` slider of the first FlowExplorer is moved with the keyboard. Its readout
(CSS class ``nifkit-readout``) must report the new threshold and fewer edges shown, and
the graph image must change, with no widget error on the page. Screenshots go to
tests/reports/ (``nif-failure.png`` when the test fails, ``nif-final.png`` otherwise).
"""
from __future__ import annotations

import re

import pytest

from browser_utils import (
    assert_no_widget_errors,
    open_and_run_notebook,
    screenshot,
    screenshot_on_failure,
    slider,
)
from notebook_utils import NOTEBOOKS_DIR, NotebookRun, record_run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

_SHOWN = re.compile(r"(\d+) of (\d+) edges above ([0-9.]+) bits")


def _parse(text: str) -> tuple[int, int, float]:
    m = _SHOWN.search(text)
    assert m, f"the readout does not report the edges shown: {text!r}"
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def _explorer_box(page):
    """The explorer (its outer VBox) that holds the first ``threshold`` slider, scrolled
    into view so JupyterLab renders it; readout and images are read inside it only."""
    s = slider(page, "threshold")
    s.scroll_into_view_if_needed()
    box = s.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' widget-vbox ')][1]")
    box.locator(".nifkit-readout").first.wait_for(state="visible", timeout=30_000)
    return box


def _move_threshold(page, box, steps: int):
    """Press ArrowRight on this explorer's threshold handle (as move_slider does, but
    inside ``box``: the notebook has two explorers and JupyterLab renders cells lazily,
    so a page-wide search can pick a different one each time)."""
    s = box.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text="threshold")).first
    value = s.locator(".widget-readout").first
    before = (value.text_content() or "").strip()
    handle = s.locator(".noUi-handle").first
    handle.focus()
    for _ in range(steps):
        handle.press("ArrowRight")
        page.wait_for_timeout(150)
    handle.evaluate("el => el.blur()")
    return before, (value.text_content() or "").strip()


def _readout(box) -> str:
    return (box.locator(".nifkit-readout").first.text_content() or "").strip()


def _images(box) -> list:
    return box.locator("img").evaluate_all("els => els.map(e => e.src)")


def test_nif_flow_explorer_threshold(jupyter_server, browser_page, request):
    page = browser_page
    relpath = "01_nif.ipynb"
    assert (NOTEBOOKS_DIR / relpath).is_file(), "notebooks/01_nif.ipynb is missing"
    with screenshot_on_failure(page, "nif"):
        seconds = open_and_run_notebook(page, jupyter_server, relpath)
        assert_no_widget_errors(page)
        box = _explorer_box(page)
        before = _readout(box)
        shown0, total0, thr0 = _parse(before)
        images_before = _images(box)
        assert images_before, "the explorer shows no plot (no image inside its widgets)"

        old, new = _move_threshold(page, box, steps=15)
        deadline = 30_000
        while _readout(box) == before and deadline > 0:
            page.wait_for_timeout(250)
            deadline -= 250
        after = _readout(box)
        page.wait_for_timeout(800)  # let the redrawn figure land
        images_after = _images(box)
        shown1, total1, thr1 = _parse(after)

        assert thr1 > thr0, f"threshold in the readout did not rise: {before!r} -> {after!r}"
        assert total1 == total0 and shown1 < shown0, (
            f"moving threshold {old} -> {new} should hide edges: {before!r} -> {after!r}")
        assert images_after and images_after != images_before, (
            f"the graph did not change when threshold moved {old} -> {new}")
        assert_no_widget_errors(page)
    screenshot(page, "nif-final")
    record_run(NotebookRun(name=relpath, path=relpath, seconds=seconds, fast=True), report="browser")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(f"[browser] {relpath}: run all {seconds:.1f} s; threshold {old} -> {new}; "
                            f"edges shown {shown0} -> {shown1} of {total0}")
