"""Drive JupyterLab in a real browser (Debian's Chromium through Playwright).

Building blocks for browser tests of the chapters::

    from browser_utils import jupyter_server, browser_page   # pytest fixtures
    from browser_utils import open_and_run_notebook, move_slider, readout_text

    @pytest.mark.browser
    def test_nif_explorer(jupyter_server, browser_page):
        page = browser_page
        open_and_run_notebook(page, jupyter_server, "01_nif.ipynb")
        before = readout_text(page)
        move_slider(page, "bins", steps=3)
        wait_for_readout_change(page, before)
        assert_no_widget_errors(page)

``jupyter_server`` (session scope) serves a *temporary copy* of notebooks/ so running
cells never dirties the repository (the server itself: ``lab_server.py``).

Environment: ``NIFKIT_CHROMIUM`` overrides the browser binary (default /usr/bin/chromium).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab_server import LabServer, lab_session, notebook_kernel_peak_bytes, shutdown_notebook_kernel
from notebook_utils import NOTEBOOKS_DIR, REPORTS_DIR

CHROMIUM = os.environ.get("NIFKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: seconds to wait for "Run All Cells" to finish (fast mode)
RUN_ALL_TIMEOUT = 600
#: text that means a widget failed to render in the page
WIDGET_ERRORS = ("Failed to load model", "Error displaying widget", "Error rendering output item",
                 "Model not found", "Could not create model")
READOUT_SELECTOR = ".nifkit-readout"


# ------------------------------------------------------------------------ browser
def launch_chromium(playwright):
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium "
            "(sudo apt-get install chromium; scripts/setup.sh does it when it can), "
            "or NIFKIT_CHROMIUM=/path/to/chromium"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


# One JupyterLab and one Chromium for the whole test session, even though every browser
# test module imports these fixtures (pytest then holds one fixture definition per
# module, and Playwright's sync API allows only one instance per thread). The first
# module's fixture starts them; the others reuse them; the first one stops them when
# the session ends (session fixtures are torn down in reverse order of setup).
_SHARED: dict = {}


@pytest.fixture(scope="session")
def jupyter_server():
    if "lab" in _SHARED:
        yield _SHARED["lab"]
        return
    with lab_session() as server:
        _SHARED["lab"] = server
        try:
            yield server
        finally:
            _SHARED.pop("lab", None)


@pytest.fixture(scope="session")
def chromium_browser():
    if "browser" in _SHARED:
        yield _SHARED["browser"]
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        _SHARED["browser"] = browser
        try:
            yield browser
        finally:
            _SHARED.pop("browser", None)
            browser.close()


@pytest.fixture
def browser_page(chromium_browser, request):
    """A fresh page (1400x1000) in its own browser context; JupyterLab's kernels are
    shut down afterwards. Wrap a test's steps in ``screenshot_on_failure(page, name)``
    for a screenshot of a failure (or let a conftest hook set ``item.rep_call``)."""
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    page.nifkit_console = console  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        failed = any(getattr(request.node, f"rep_{w}", None) and getattr(request.node, f"rep_{w}").failed
                     for w in ("setup", "call"))
        name = request.node.name.replace("/", "_")
        if failed:
            screenshot(page, f"{name}-failure")
        context.close()
        # end the kernels this test started: each chapter kernel holds about 1 GB
        server = _SHARED.get("lab")
        if server is not None:
            with contextlib.suppress(Exception):
                for sess in server.api("/api/sessions") or []:
                    server.api(f"/api/sessions/{sess['id']}", method="DELETE")


def screenshot(page, name: str) -> Path | None:
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORTS_DIR / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=False)
    except Exception:  # noqa: BLE001 - the page may be gone
        return None
    return path


@contextlib.contextmanager
def screenshot_on_failure(page, name: str):
    """Save tests/reports/<name>-failure.png (and the console errors) if the block raises."""
    try:
        yield
    except BaseException:
        path = screenshot(page, f"{name}-failure")
        errs = getattr(page, "nifkit_console", [])
        if errs:
            (REPORTS_DIR / f"{name}-console.txt").write_text("\n".join(errs))
        if path is not None:
            print(f"screenshot: {path}")
        raise


# ------------------------------------------------------------------------ notebook
def _code_cell_count(path: Path) -> int:
    """Code cells with source: the ones that get an execution count."""
    nb = json.loads(path.read_text())
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip())


def kernel_status(page) -> str | None:
    """The kernel status shown in JupyterLab's status bar: 'idle', 'busy', 'starting'...

    None while there is no kernel ("No Kernel | Initializing"). (The toolbar's execution
    indicator says "idle" before the kernel even exists, so it is not used.)
    """
    return page.evaluate(
        r"""() => {
            for (const el of document.querySelectorAll('.jp-StatusBar-TextItem')) {
                const m = (el.textContent || '').trim().match(/^(.+) \| ([A-Za-z ]+)$/);
                if (m && m[1] !== 'No Kernel') return m[2].trim().toLowerCase();
            }
            return null;
        }"""
    )


def _total_cells(path: Path) -> int:
    return len(json.loads(path.read_text())["cells"])


def open_notebook(page, server: LabServer, relpath: str, timeout: float = 120) -> None:
    """Open ``relpath`` in JupyterLab; wait until all its cells show and its kernel is idle."""
    n_cells = _total_cells(server.root / relpath)
    page.goto(server.lab_url(relpath), wait_until="domcontentloaded")
    _wait(lambda: page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").count() >= n_cells,
          timeout, f"the {n_cells} cells of {relpath} to appear", page=page)
    _wait(lambda: kernel_status(page) == "idle", timeout, f"the kernel of {relpath} to be idle", page=page)


def run_all_cells(page, started_within: float = 30) -> None:
    """Run → Run All Cells, through JupyterLab's menu, as a reader would."""
    def click() -> None:
        page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-content .lm-Menu-item:visible", has_text="Run All Cells").first.click()

    def started() -> bool:
        return any(p != "[ ]:" for p in executed_prompts(page)) or kernel_status(page) == "busy"

    click()
    try:
        _wait(started, started_within, "Run All Cells to start", page=page)
    except AssertionError:
        page.keyboard.press("Escape")
        click()  # a click can be lost while the page settles; try once more
        _wait(started, started_within, "Run All Cells to start (second try)", page=page)


def executed_prompts(page) -> list[str]:
    """Execution prompts of the code cells, e.g. ['[1]:', '[*]:', '[ ]:']."""
    return page.eval_on_selector_all(
        ".jp-mod-current .jp-CodeCell .jp-InputArea-prompt, "
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt",
        "els => els.map(e => e.textContent.trim())",
    )


def error_outputs(page) -> list[str]:
    """Text of the error tracebacks shown in the notebook."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.textContent || '')"
        ".filter(t => /Traceback \\(most recent call last\\)|\\b\\w*(Error|Exception)\\b: /.test(t))",
    )


def wait_for_all_cells(page, n_code_cells: int, timeout: float = RUN_ALL_TIMEOUT) -> None:
    """Wait until every code cell shows an execution count and the kernel is idle."""
    def done() -> bool:
        prompts = executed_prompts(page)
        numbered = [p for p in prompts if p.startswith("[") and p[1:-2].strip().isdigit()]
        if error_outputs(page) and kernel_status(page) == "idle":
            raise AssertionError("a cell failed in the browser:\n" + "\n---\n".join(error_outputs(page)))
        return len(numbered) >= n_code_cells and kernel_status(page) == "idle"

    _wait(done, timeout, f"{n_code_cells} code cells to execute", page=page, interval=1.0)


def open_and_run_notebook(page, server: LabServer, relpath: str, timeout: float = RUN_ALL_TIMEOUT) -> float:
    """Open a notebook of the server's root, Run All Cells, wait until done; returns seconds."""
    path = server.root / relpath
    assert path.is_file(), f"{relpath} does not exist in {server.root} (copied from notebooks/)"
    n = _code_cell_count(path)
    t0 = time.monotonic()
    open_notebook(page, server, relpath)
    run_all_cells(page)
    wait_for_all_cells(page, n, timeout)
    return time.monotonic() - t0


# ------------------------------------------------------------------------ widgets
# Text is read with textContent, not innerText: JupyterLab skips rendering cells that
# are off screen (content-visibility), and innerText of those is empty.
def _text(locator) -> str:
    return " ".join((locator.text_content() or "").split())


def slider(page, description: str):
    """The ipywidgets slider whose description label reads ``description`` (first match)."""
    loc = page.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=description)
    )
    # has_text is a substring match: keep the exact label
    for i in range(loc.count()):
        if _text(loc.nth(i).locator(".widget-label").first) == description:
            return loc.nth(i)
    raise AssertionError(f"no slider with description {description!r} on the page "
                         f"({loc.count()} partial matches)")


def explorer(page, description: str):
    """The explorer box around slider ``description``: its nearest enclosing VBox that
    also holds a ``nifkit-readout``. Readouts and images can be read inside it only."""
    box = slider(page, description).locator(
        "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' widget-vbox ')]"
        "[.//*[contains(concat(' ', normalize-space(@class), ' '), ' nifkit-readout ')]][1]"
    )
    if box.count() == 0:
        raise AssertionError(f"slider {description!r} is not inside a VBox with a .nifkit-readout")
    return box.first


def slider_value(page, description: str) -> str:
    """The slider's readout as shown next to it (text)."""
    s = slider(page, description)
    readout = s.locator(".widget-readout")
    return _text(readout.first) if readout.count() else ""


def move_slider(page, description: str, steps: int = 3, key: str = "ArrowRight") -> tuple[str, str]:
    """Focus the slider's handle and press ``key`` ``steps`` times; returns (before, after)."""
    s = slider(page, description)
    s.scroll_into_view_if_needed()
    before = slider_value(page, description)
    handle = s.locator(".noUi-handle").first
    handle.focus()
    for _ in range(steps):
        handle.press(key)
        page.wait_for_timeout(150)
    # continuous_update=False sliders commit on change; a blur makes sure it happened
    handle.evaluate("el => el.blur()")
    _wait(lambda: slider_value(page, description) != before, 10,
          f"slider {description!r} to move from {before}", page=page)
    return before, slider_value(page, description)


def _scope(page, near: str | None):
    return explorer(page, near) if near else page


def readout_text(page, selector: str = READOUT_SELECTOR, index: int = 0, near: str | None = None) -> str:
    """Text of the (index-th) readout, by default CSS class ``nifkit-readout``; with
    ``near="bins"`` the readout of the explorer that holds the ``bins`` slider."""
    loc = _scope(page, near).locator(selector)
    loc.nth(index).wait_for(state="attached", timeout=30_000)
    return _text(loc.nth(index))


def wait_for_readout_change(page, before: str, selector: str = READOUT_SELECTOR, index: int = 0,
                            timeout: float = 120, near: str | None = None) -> str:
    """Wait until the readout's text differs from ``before``; returns the new text."""
    _wait(lambda: readout_text(page, selector, index, near) not in ("", before), timeout,
          f"readout {selector} to change from {before!r}", page=page)
    return readout_text(page, selector, index, near)


def wait_for_readout_settle(page, selector: str = READOUT_SELECTOR, index: int = 0, near: str | None = None,
                            quiet: float = 1.5, timeout: float = 120) -> str:
    """Wait until the readout has not changed for ``quiet`` seconds (several slider
    steps may each trigger a recomputation); returns its final text."""
    last, since = readout_text(page, selector, index, near), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"readout {selector} kept changing for {timeout:.0f} s")
        page.wait_for_timeout(250)
        now = readout_text(page, selector, index, near)
        if now != last:
            last, since = now, time.monotonic()
    return last


def widget_images(page, scope: str = ".jupyter-widgets", near: str | None = None) -> list[str]:
    """Short hashes of the images shown inside widgets (matplotlib figures, Image widgets);
    with ``near="bins"`` only those of the explorer that holds the ``bins`` slider."""
    if near:
        srcs = explorer(page, near).locator("img").evaluate_all(
            "els => els.map(e => e.getAttribute('src') || '')")
    else:
        srcs = page.eval_on_selector_all(f"{scope} img", "els => els.map(e => e.getAttribute('src') || '')")
    return [hashlib.sha1(s.encode()).hexdigest()[:12] for s in srcs if s]


def assert_no_widget_errors(page) -> None:
    """No widget error text in any output area (rendered or not) nor in a dialog."""
    texts = page.eval_on_selector_all(
        ".jp-OutputArea, .jp-Dialog", "els => els.map(e => e.textContent || '')"
    )
    found = sorted({msg for msg in WIDGET_ERRORS for t in texts if msg in t})
    assert not found, f"the page shows widget errors: {found}"


def _wait(pred, timeout: float, what: str, page=None, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)


@dataclass
class ExplorerRun:
    """What :func:`explorer_run` saw: the readout and plot images before the test moved a
    control; ``after``/``images_after`` are for the test to fill in."""
    before: str
    images_before: list
    after: str = ""
    images_after: list | None = None
    peak: int | None = None
    seconds: float = 0.0
    moved: str = ""  # for the report line, e.g. "step 18 -> 14"


@contextlib.contextmanager
def explorer_run(page, server, request, notebook: str, tag: str, near=None):
    """The frame every chapter's browser test shares: open and run ``notebook``, read the
    explorer's readout and plot (``near`` a control's label), hand them to the test (which
    moves a control, waits and asserts on the readout), then check that the plot changed and
    no widget error shows, measure the kernel's peak memory, shut the kernel down and record
    the run (the test sets ``run.after`` and ``run.moved`` for the report line)."""
    from notebook_utils import MEMORY_LIMIT_BYTES, NotebookRun, record_run, report_line

    assert (NOTEBOOKS_DIR / notebook).is_file(), f"notebooks/{notebook} is missing"
    kw = {} if near is None else {"near": near}
    try:
        with screenshot_on_failure(page, tag):
            seconds = open_and_run_notebook(page, server, notebook)
            assert_no_widget_errors(page)
            run = ExplorerRun(before=readout_text(page, **kw), images_before=widget_images(page, **kw),
                              seconds=seconds)
            assert run.images_before, "the explorer shows no plot"
            yield run
            page.wait_for_timeout(500)  # let the redrawn figure land
            run.images_after = widget_images(page, **kw)
            assert run.images_after and run.images_after != run.images_before, "the plot did not change"
            assert_no_widget_errors(page)
            run.peak = notebook_kernel_peak_bytes(server, notebook)
        screenshot(page, f"{tag}-final")
    finally:
        shutdown_notebook_kernel(server, notebook)
    rec = NotebookRun(name=notebook, path=notebook, seconds=run.seconds, peak_bytes=run.peak, fast=True)
    record_run(rec, report="browser")
    report_line(request, f"[browser] {rec.summary()}; {run.moved}; readout {run.before!r} -> {run.after!r}")
    if run.peak is not None:
        assert run.peak < MEMORY_LIMIT_BYTES, f"{notebook}'s kernel peaked at {run.peak / 1e6:,.0f} MB in the browser run"
