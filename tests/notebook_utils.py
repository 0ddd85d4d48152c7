"""Execute notebooks the way a reader would, and measure them.

``run_notebook(path, fast=False)`` executes every cell of a notebook with nbclient (in a
child process of its own) in a kernel of this very Python (the project's .venv), with the
notebook's folder as working directory, in full mode (what a student sees; ``fast=True``
sets ``NIFKIT_FAST=1``, read by ``nifkit.config.fast_mode()``). It returns a
:class:`NotebookRun`: wall time, and the kernel's memory measured from the kernel process
with psutil and Linux's ``VmHWM``:

* ``baseline_bytes``, the *import baseline*: the kernel's resident set size (RSS) right
  after the notebook's first code cell (in every chapter, the set-up imports) and the
  imports the chapters trigger later on first use (:data:`LAZY_IMPORTS`, run silently);
* ``peak_bytes``: the largest resident memory of the kernel (plus any child processes,
  such as data-loader workers) while any cell ran, per cell from ``VmHWM`` reset before
  each cell (``/proc/<pid>/clear_refs``) and a 0.25 s sampler;
* ``rise_bytes = peak_bytes - baseline_bytes``: what the chapter itself adds;
* per code cell (``cell_seconds``): seconds, RSS after it, peak during it.

A failing cell is reported with its index, source and traceback. Used by
tests/test_notebooks.py (which also writes README.md's chapter table from these runs),
tests/restart_utils.py and the browser tests::

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
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets import Type, default

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
FIXTURES_DIR = REPO / "tests" / "fixtures"
REPORTS_DIR = REPO / "tests" / "reports"

#: seconds after which the runner stops a notebook (a hang, not a slow chapter)
NOTEBOOK_TIMEOUT = 900
#: seconds a chapter may take in full mode on the project's machine (2 shared cores)
CHAPTER_SECONDS_LIMIT = 180
#: bytes a chapter's kernel may rise above its import baseline (Binder guarantees 1 GB)
RISE_LIMIT_BYTES = 400_000_000
#: peak memory a notebook's kernel may reach (Binder restarts a kernel above 2 GB)
MEMORY_LIMIT_BYTES = 1_500_000_000
#: imports every chapter triggers on first use rather than in its import cell, run silently
#: in the kernel right after the first code cell so that the import baseline holds them:
#: scikit-learn's data sets (nifkit.data) and torch's compile stack (torch._dynamo, sympy,
#: triton in the CUDA build), which the first torch.optim optimizer loads (~150 MB here)
LAZY_IMPORTS = "import sklearn.datasets, torch._dynamo"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def notebook_paths(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks of a folder, sorted by name (checkpoints excluded)."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def kernel_env(fast: bool = False, extra: dict | None = None) -> dict:
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


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process now (psutil), or None."""
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def reset_peak(pid: int) -> bool:
    """Reset a process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` 5); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a kernel and its children, per cell and over the whole run.

    The kernel's own peak is exact: ``VmHWM``, reset before each cell by
    :func:`reset_peak` and read by :meth:`cell_done` after it. Children (data-loader
    workers) are caught by a sampler every ``interval`` s, which adds the RSS of the
    kernel and all its children at the same instant, plus the children's own VmHWM.
    """

    def __init__(self, pid: int, interval: float = 0.25):
        import psutil

        self.pid = pid
        self.interval = interval
        self._psutil = psutil
        self._max_total = 0      # sampled, whole run
        self._cell_sampled = 0   # sampled, since the last cell_done()
        self.last_cell_peak = 0
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
        self._cell_sampled = max(self._cell_sampled, total)

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

    def _hwm_now(self) -> int:
        hwm = vm_hwm_bytes(self.pid) or 0
        try:
            for child in self._psutil.Process(self.pid).children(recursive=True):
                hwm += vm_hwm_bytes(child.pid) or 0
        except self._psutil.Error:
            pass
        return hwm

    def cell_done(self) -> int:
        """Peak bytes during the cell that just ran (call before the next reset_peak)."""
        self._sample()
        self.last_cell_peak = max(self._cell_sampled, self._hwm_now())
        self._max_total = max(self._max_total, self.last_cell_peak)
        self._cell_sampled = 0
        return self.last_cell_peak

    def peak(self) -> int:
        """Peak bytes so far; call while the kernel is still alive."""
        self._sample()
        return max(self._max_total, self._hwm_now())


# ---------------------------------------------------------------------------- running
@dataclass
class NotebookRun:
    name: str
    path: str
    seconds: float = 0.0
    peak_bytes: int | None = None
    baseline_bytes: int | None = None
    kernel_pid: int | None = None
    kernel_prefix: str | None = None
    cells_executed: int = 0
    error: str | None = None
    executed_copy: str | None = None
    fast: bool = False
    load: list = field(default_factory=list)   # 1-minute load average at the start and the end
    cell_seconds: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / 1e6

    @property
    def rise_bytes(self) -> int | None:
        """Peak memory above the import baseline (the RSS after the first code cell)."""
        if self.peak_bytes is None or self.baseline_bytes is None:
            return None
        return self.peak_bytes - self.baseline_bytes

    def summary(self) -> str:
        mem = "n/a" if self.peak_bytes is None else f"{self.peak_mb:,.0f} MB"
        if self.rise_bytes is not None:
            mem += f" ({self.baseline_bytes / 1e6:,.0f} MB after the imports, +{self.rise_bytes / 1e6:,.0f} MB)"
        status = "ok" if self.error is None else "FAILED"
        mode = "fast" if self.fast else "full"
        load = f", load {max(self.load):.1f}" if self.load else ""
        return f"{self.name}: {status}, {mode} mode, {self.seconds:.1f} s, peak memory {mem}{load}"


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


class SlicedPollChannel(AsyncZMQSocketChannel):
    """A kernel channel whose ``get_msg`` waits in slices of ``POLL_SLICE`` seconds.

    nbclient waits for a cell's reply with one poll lasting the whole cell timeout. In
    full-suite runs (busy machine, browser tests beside) such a poll sometimes missed the
    socket's wake-up: the kernel had answered in under a second, yet the reply was only
    read when the poll timed out, many minutes later (pyzmq's asyncio poller reacts to
    edge-triggered fd events and checks the socket itself only when it wakes). A poll that
    wakes every second checks the socket again, so a missed event costs at most a second.
    ``get_msg`` is the channel's public method; nbclient itself is used unchanged.
    """

    POLL_SLICE = 1.0

    async def get_msg(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Empty
            wait = self.POLL_SLICE if remaining is None else min(self.POLL_SLICE, remaining)
            try:
                return await super().get_msg(timeout=wait)
            except Empty:
                continue


class SlicedPollKernelClient(AsyncKernelClient):
    """jupyter_client's async client with :class:`SlicedPollChannel` for shell and iopub."""

    shell_channel_class = Type(SlicedPollChannel)
    iopub_channel_class = Type(SlicedPollChannel)


class SlicedPollKernelManager(AsyncKernelManager):
    """The kernel manager nbclient is given (its ``kernel_manager_class`` setting)."""

    @default("client_factory")
    def _sliced_poll_client(self):
        return SlicedPollKernelClient


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


async def _silent(client: NotebookClient, code: str, run: NotebookRun) -> None:
    """Run ``code`` in the kernel without output or history (a failure becomes a note)."""
    reply = await client.async_wait_for_reply(client.kc.execute(code, silent=True, store_history=False))
    if reply is None or reply["content"].get("status") != "ok":
        run.notes.append(f"{code!r} failed in the kernel: {reply and reply['content'].get('evalue')}")


def _provisioner_pid(km) -> int | None:
    prov = getattr(km, "provisioner", None)
    for obj, attr in ((prov, "pid"), (getattr(prov, "process", None), "pid"), (getattr(km, "kernel", None), "pid")):
        pid = getattr(obj, attr, None) if obj is not None else None
        if isinstance(pid, int):
            return pid
    return None


async def _run(path: Path, run: NotebookRun, nb, timeout: float, env: dict, cwd: Path, warm_up: str) -> None:
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=SlicedPollKernelManager,
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
        record_timing=True,
    )
    start = time.perf_counter()
    deadline = start + timeout
    run.load.append(os.getloadavg()[0])
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
                        reset_peak(pid)
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
                            memory.cell_done()
                            rss = rss_bytes(pid)
                            if run.baseline_bytes is None:  # after the first code cell: the imports
                                if warm_up:
                                    await _silent(client, warm_up, run)
                                run.baseline_bytes = rss_bytes(pid)
                            run.cell_seconds.append({"cell": index, "seconds": round(time.perf_counter() - t0, 2),
                                                     "rss_mb": round((rss or 0) / 1e6, 1),
                                                     "peak_mb": round(memory.last_cell_peak / 1e6, 1)})
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
        run.load.append(os.getloadavg()[0])


def run_notebook(
    path: Path | str,
    timeout: float = NOTEBOOK_TIMEOUT,
    fast: bool = False,
    cwd: Path | str | None = None,
    extra_env: dict | None = None,
    save_executed: bool = True,
    warm_up: str = LAZY_IMPORTS,
) -> NotebookRun:
    """Execute a notebook top to bottom; never raises for a failing cell (see ``.error``).

    ``cwd`` defaults to the notebook's folder. ``warm_up`` runs silently after the first
    code cell, before the import baseline is read (:data:`LAZY_IMPORTS`; "" for none).
    The executed copy is written to
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
               "--extra-env", json.dumps(extra_env or {}), "--warm-up", warm_up]
        if fast:
            cmd.append("--fast")
        if not save_executed:
            cmd.append("--no-save")
        proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait(timeout=30)
            return NotebookRun(name=path.name, path=str(path), seconds=timeout + 60, fast=fast,
                               error=f"{path.name}: the notebook runner hung past {timeout + 60:.0f} s and was killed")
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):
            return NotebookRun(name=path.name, path=str(path), fast=fast,
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
                         save_executed: bool, warm_up: str = LAZY_IMPORTS) -> NotebookRun:
    nb = nbformat.read(path, as_version=4)
    run = NotebookRun(name=path.name, path=str(path), fast=fast)
    env = kernel_env(fast=fast, extra=extra_env)
    try:
        asyncio.run(_run(path, run, nb, timeout, env, cwd, warm_up))
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
    parser.add_argument("--fast", action="store_true", help="fast mode (NIFKIT_FAST=1)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--warm-up", default=LAZY_IMPORTS)
    args = parser.parse_args(argv)
    path = Path(args.notebook).resolve()
    run = _run_in_this_process(path, args.timeout, args.fast, Path(args.cwd) if args.cwd else path.parent,
                               json.loads(args.extra_env), not args.no_save, args.warm_up)
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
    entry["baseline_mb"] = None if run.baseline_bytes is None else round(run.baseline_bytes / 1e6, 1)
    entry["rise_mb"] = None if run.rise_bytes is None else round(run.rise_bytes / 1e6, 1)
    entry["ok"] = run.error is None
    entry["error"] = None if run.error is None else run.error[:2000]
    entry["when"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    entry["fast_mode"] = run.fast
    from notebook_reports import machine_description  # noqa: PLC0415 - a module beside this one

    entry["machine"] = machine_description()
    data[run.name] = entry
    jpath.write_text(json.dumps(data, indent=1, sort_keys=True))
    lines = [
        f"# {report}: time and memory of each notebook's last run",
        "",
        f"Limits checked for chapters: {CHAPTER_SECONDS_LIMIT} s in full mode, "
        f"{RISE_LIMIT_BYTES / 1e6:,.0f} MB above the imports, {MEMORY_LIMIT_BYTES / 1e9:.1f} GB peak.",
        "",
        "| notebook | ok | mode | seconds | peak MB | after imports MB | rise MB | load | code cells | when (UTC) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def mb(v):
        return "n/a" if v is None else f"{v:,.0f}"

    for name in sorted(data):
        e = data[name]
        load = max(e.get("load") or [0])
        lines.append(
            f"| {name} | {'yes' if e.get('ok') else 'NO'} | {'fast' if e.get('fast_mode') else 'full'} "
            f"| {e.get('seconds', 0):.1f} | {mb(e.get('peak_mb'))} | {mb(e.get('baseline_mb'))} "
            f"| {mb(e.get('rise_mb'))} | {load:.1f} | {e.get('cells_executed', 0)} | {e.get('when', '')} |"
        )
    (REPORTS_DIR / f"{report}.md").write_text("\n".join(lines) + "\n")
    return jpath


if __name__ == "__main__":
    sys.exit(_main())
