"""Execute notebooks the way a reader would, and measure them.

``run_notebook(path)`` executes every cell of a notebook with nbclient (in a child
process of its own) in a kernel of this very Python (the project's .venv), with the
notebook's folder as working directory
and ``NIFKIT_FAST=1`` (fast mode, read by ``nifkit.config.fast_mode()``). It measures
wall time and the kernel's peak memory (``VmHWM`` of the kernel process, plus any child
processes such as data-loader workers, sampled while it runs) and returns a
:class:`NotebookRun`. A failing cell is reported with its index, source and traceback.

Used by tests/test_notebooks.py; chapter tests may reuse it::

    from notebook_utils import run_notebook, NOTEBOOKS_DIR
    run = run_notebook(NOTEBOOKS_DIR / "01_nif.ipynb")
    assert run.error is None, run.error
"""
from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from queue import Empty

import nbformat
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
FIXTURES_DIR = REPO / "tests" / "fixtures"
REPORTS_DIR = REPO / "tests" / "reports"

#: seconds one whole notebook may take in fast mode
NOTEBOOK_TIMEOUT = 600
#: peak memory a notebook's kernel may reach (Binder gives 2 GB; keep a margin)
MEMORY_LIMIT_BYTES = 1_500_000_000

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def notebook_paths(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks of a folder, sorted by name (checkpoints excluded)."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def kernel_env(fast: bool = True, extra: dict | None = None) -> dict:
    """Environment for a notebook kernel: ours, plus fast mode, minus MPLBACKEND.

    MPLBACKEND is removed so the kernel picks the notebook's inline backend, as it does
    for a reader (a leftover ``MPLBACKEND=Agg`` would silently drop every figure).
    """
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    if fast:
        env["NIFKIT_FAST"] = "1"
    else:
        env.pop("NIFKIT_FAST", None)
    # the venv's own kernelspec first, so a user-level "python3" kernelspec pointing at
    # another Python cannot shadow it (its argv "python" resolves to sys.executable)
    venv_share = str(Path(sys.prefix) / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (venv_share, os.environ.get("JUPYTER_PATH", "")) if p)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silence debugpy's frozen-modules warning
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------- memory
def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def vm_hwm_bytes(pid: int) -> int | None:
    """Peak resident set size of a live process (Linux ``VmHWM``), or None."""
    kib = _status_kib(pid, "VmHWM")
    return None if kib is None else kib * 1024


class PeakMemory:
    """Samples the RSS of a process and its children; ``peak()`` also reads VmHWM.

    VmHWM is exact for the kernel process itself but forgets children that have
    exited; the sampler (every ``interval`` s) catches the kernel and its children's
    combined RSS at their concurrent peak. ``peak()`` returns the larger of both.
    """

    def __init__(self, pid: int, interval: float = 0.25):
        import psutil

        self.pid = pid
        self.interval = interval
        self._psutil = psutil
        self._max_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"peak-memory-{pid}", daemon=True)

    def _sample(self) -> None:
        ps = self._psutil
        try:
            proc = ps.Process(self.pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except ps.Error:
                    pass
        except ps.Error:
            return
        self._max_total = max(self._max_total, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def peak(self) -> int:
        """Peak bytes so far; call while the kernel is still alive."""
        self._sample()
        ps = self._psutil
        hwm = vm_hwm_bytes(self.pid) or 0
        children_hwm = 0
        try:
            for child in ps.Process(self.pid).children(recursive=True):
                children_hwm += vm_hwm_bytes(child.pid) or 0
        except ps.Error:
            pass
        return max(self._max_total, hwm + children_hwm)


# ---------------------------------------------------------------------------- running
@dataclass
class NotebookRun:
    name: str
    path: str
    seconds: float = 0.0
    peak_bytes: int | None = None
    kernel_pid: int | None = None
    kernel_prefix: str | None = None
    cells_executed: int = 0
    error: str | None = None
    executed_copy: str | None = None
    cell_seconds: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / 1e6

    def summary(self) -> str:
        mem = "n/a" if self.peak_bytes is None else f"{self.peak_mb:,.0f} MB"
        status = "ok" if self.error is None else "FAILED"
        return f"{self.name}: {status}, {self.seconds:.1f} s, peak memory {mem}"


def _format_cell_error(name: str, index: int, cell, exc: BaseException) -> str:
    source = cell.get("source", "")
    if isinstance(exc, CellExecutionError):
        # nbclient's message already holds the cell source and the traceback
        detail = strip_ansi(str(exc))
    else:
        detail = f"{type(exc).__name__}: {strip_ansi(str(exc))}\n--- cell source ---\n{source}"
    hint = ""
    if isinstance(exc, DeadKernelError):
        hint = "\n(the kernel died: out of memory, a crash in native code, or os._exit)"
    elif isinstance(exc, CellTimeoutError):
        hint = "\n(the notebook went over its time budget)"
    return f"{name}: cell {index} ({cell.cell_type}) failed{hint}\n{detail}"


class _SlicedPollClient(NotebookClient):
    """nbclient, waiting on the kernel's sockets in slices of ``POLL_SLICE`` seconds.

    nbclient waits for a cell's reply with one poll lasting the whole cell timeout. In
    full-suite runs (busy machine, browser tests beside) that poll sometimes missed
    the socket's wake-up: the kernel had answered in under a second, yet the reply was
    only read when the poll timed out, ten minutes later (pyzmq's asyncio poller reacts
    to edge-triggered fd events, and only checks the socket itself when it wakes). A
    poll that wakes every second re-checks the socket, so a missed event costs at most
    a second. Otherwise the logic is nbclient 0.11's.
    """

    POLL_SLICE = 1.0

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                task_poll_kernel_alive.cancel()
                await self._async_check_alive()
                msg = await self._async_handle_timeout(timeout, cell)  # raises unless interrupt_on_timeout
                msg["parent_header"] = {"msg_id": msg_id}
            else:
                wait = self.POLL_SLICE if remaining is None else min(self.POLL_SLICE, remaining)
                try:
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=wait))
                except Empty:
                    continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if self.record_timing:
                from nbclient.client import timestamp

                cell["metadata"]["execution"]["shell.execute_reply"] = timestamp(msg)
            try:
                await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
            except (asyncio.TimeoutError, Empty):
                if self.raise_on_iopub_timeout:
                    task_poll_kernel_alive.cancel()
                    raise CellTimeoutError.error_from_timeout_and_cell(
                        "Timeout waiting for IOPub output", self.iopub_timeout, cell
                    ) from None
                self.log.warning("Timeout waiting for IOPub output")
            task_poll_kernel_alive.cancel()
            return msg

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        from nbclient.exceptions import CellExecutionComplete

        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=self.POLL_SLICE))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)  # raises CellExecutionComplete at the end
                except CellExecutionComplete:
                    return


async def _kernel_identity(client: NotebookClient) -> tuple[int, str]:
    """Ask the kernel itself for its pid and sys.prefix (no effect on its namespace)."""
    msg_id = client.kc.execute(
        "",
        silent=True,
        store_history=False,
        user_expressions={"pid": "__import__('os').getpid()", "prefix": "__import__('sys').prefix"},
    )
    reply = await client.async_wait_for_reply(msg_id)
    exprs = reply["content"]["user_expressions"]
    pid = int(exprs["pid"]["data"]["text/plain"])
    prefix = ast.literal_eval(exprs["prefix"]["data"]["text/plain"])
    return pid, prefix


def _provisioner_pid(km) -> int | None:
    prov = getattr(km, "provisioner", None)
    for obj, attr in ((prov, "pid"), (getattr(prov, "process", None), "pid"), (getattr(km, "kernel", None), "pid")):
        pid = getattr(obj, attr, None) if obj is not None else None
        if isinstance(pid, int):
            return pid
    return None


async def _run(path: Path, run: NotebookRun, nb, timeout: float, env: dict, cwd: Path) -> None:
    client = _SlicedPollClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
        record_timing=True,
    )
    start = time.perf_counter()
    deadline = start + timeout
    saved_jupyter_path = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]  # kernelspec lookup happens in this process
    try:
        async with client.async_setup_kernel(env=env):
            pid, prefix = await _kernel_identity(client)
            run.kernel_pid, run.kernel_prefix = pid, prefix
            ppid = _provisioner_pid(client.km)
            if ppid is not None and ppid != pid:
                # a launcher between the manager and the kernel: measure the real kernel
                run.notes.append(f"provisioner pid {ppid} != kernel pid {pid}; measured the kernel")
            with PeakMemory(pid) as memory:
                try:
                    info_id = await ensure_async(client.kc.kernel_info())
                    info = await client.async_wait_for_reply(info_id)
                    if info is not None and "language_info" in info["content"]:
                        nb.metadata["language_info"] = info["content"]["language_info"]
                    for index, cell in enumerate(nb.cells):
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            run.error = (f"{run.name}: the notebook used up its {timeout:.0f} s budget "
                                         f"before cell {index}; slowest cells: "
                                         f"{sorted(run.cell_seconds, key=lambda c: -c['seconds'])[:3]}")
                            break
                        client.timeout = max(1, int(remaining))
                        t0 = time.perf_counter()
                        try:
                            await client.async_execute_cell(
                                cell, index, execution_count=client.code_cells_executed + 1
                            )
                        except BaseException as exc:  # noqa: BLE001 - reported, then stop
                            run.error = _format_cell_error(run.name, index, cell, exc)
                            if not isinstance(exc, (CellExecutionError, CellTimeoutError, DeadKernelError)):
                                raise
                            break
                        if cell.cell_type == "code":
                            run.cells_executed += 1
                            run.cell_seconds.append({"cell": index, "seconds": round(time.perf_counter() - t0, 2)})
                finally:
                    # read the peak just before the kernel is shut down
                    run.peak_bytes = memory.peak()
            client.set_widgets_metadata()
    finally:
        if saved_jupyter_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved_jupyter_path
        run.seconds = time.perf_counter() - start


def run_notebook(
    path: Path | str,
    timeout: float = NOTEBOOK_TIMEOUT,
    fast: bool = True,
    cwd: Path | str | None = None,
    extra_env: dict | None = None,
    save_executed: bool = True,
) -> NotebookRun:
    """Execute a notebook top to bottom; never raises for a failing cell (see ``.error``).

    ``cwd`` defaults to the notebook's folder. The executed copy is written to
    ``tests/reports/executed/`` (the source notebook is never modified).

    The notebook runs in a child process of its own (this file run as a script):
    nbclient's asyncio loop then owns a main thread, whatever the calling process does.
    (Executed from a helper thread beside Playwright's sync API, nbclient stalled
    until the time budget ran out: zmq events were missed.) The child is killed, with
    its kernel, if it outlives the budget by a minute.
    """
    import subprocess
    import tempfile

    path = Path(path).resolve()
    with tempfile.TemporaryDirectory(prefix="nifkit-nb-") as tmp:
        result = Path(tmp) / "run.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), str(path), "--out", str(result),
               "--timeout", str(timeout), "--cwd", str(Path(cwd) if cwd else path.parent),
               "--extra-env", json.dumps(extra_env or {})]
        if not fast:
            cmd.append("--full")
        if not save_executed:
            cmd.append("--no-save")
        proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait(timeout=30)
            return NotebookRun(name=path.name, path=str(path), seconds=timeout + 60,
                               error=f"{path.name}: the notebook runner hung past {timeout + 60:.0f} s and was killed")
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):
            return NotebookRun(name=path.name, path=str(path),
                               error=f"{path.name}: the notebook runner exited with code {proc.returncode} "
                                     "and no result (see the captured stderr)")
    return NotebookRun(**data)


def _kill_tree(pid: int) -> None:
    """Kill a process and all its descendants, by pid (the kernel included)."""
    import signal

    import psutil

    try:
        procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _run_in_this_process(path: Path, timeout: float, fast: bool, cwd: Path, extra_env: dict,
                         save_executed: bool) -> NotebookRun:
    nb = nbformat.read(path, as_version=4)
    run = NotebookRun(name=path.name, path=str(path))
    env = kernel_env(fast=fast, extra=extra_env)
    try:
        asyncio.run(_run(path, run, nb, timeout, env, cwd))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        if run.error is None:
            run.error = f"{run.name}: the runner failed: {type(exc).__name__}: {strip_ansi(str(exc))}"
    finally:
        if save_executed:
            out = REPORTS_DIR / "executed" / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out)
            run.executed_copy = str(out)
    return run


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Execute one notebook; write a JSON NotebookRun.")
    parser.add_argument("notebook")
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=NOTEBOOK_TIMEOUT)
    parser.add_argument("--cwd")
    parser.add_argument("--extra-env", default="{}")
    parser.add_argument("--full", action="store_true", help="not fast mode")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.notebook).resolve()
    run = _run_in_this_process(path, args.timeout, not args.full, Path(args.cwd) if args.cwd else path.parent,
                               json.loads(args.extra_env), not args.no_save)
    Path(args.out).write_text(json.dumps(asdict(run)))
    return 0


# ---------------------------------------------------------------------------- reports
def report_line(request, message: str) -> None:
    """Write a line on pytest's terminal even while output is captured."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capman is not None and reporter is not None:
        with capman.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(message)
    else:  # pragma: no cover
        print(message)


def record_run(run: NotebookRun, report: str = "notebooks") -> Path:
    """Merge one run into tests/reports/<report>.json and rewrite <report>.md."""
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    jpath = REPORTS_DIR / f"{report}.json"
    try:
        data = json.loads(jpath.read_text())
    except (OSError, ValueError):
        data = {}
    entry = asdict(run)
    entry["peak_mb"] = None if run.peak_bytes is None else round(run.peak_mb, 1)
    entry["ok"] = run.error is None
    entry["error"] = None if run.error is None else run.error[:2000]
    entry["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    entry["fast_mode"] = True
    data[run.name] = entry
    jpath.write_text(json.dumps(data, indent=1, sort_keys=True))
    lines = [
        f"# {report}: time and peak memory (fast mode, NIFKIT_FAST=1)",
        "",
        f"Memory limit checked: {MEMORY_LIMIT_BYTES / 1e9:.1f} GB (Binder gives 2 GB).",
        "",
        "| notebook | ok | seconds | peak MB | code cells | when |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name in sorted(data):
        e = data[name]
        peak = "n/a" if e.get("peak_mb") is None else f"{e['peak_mb']:,.0f}"
        lines.append(
            f"| {name} | {'yes' if e.get('ok') else 'NO'} | {e.get('seconds', 0):.1f} | {peak} "
            f"| {e.get('cells_executed', 0)} | {e.get('when', '')} |"
        )
    (REPORTS_DIR / f"{report}.md").write_text("\n".join(lines) + "\n")
    return jpath


if __name__ == "__main__":
    sys.exit(_main())
