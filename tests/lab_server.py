"""A JupyterLab server for the browser tests: started on a temporary copy of notebooks/
(and of tests/fixtures/ under ``fixtures/``) so running cells never dirties the
repository, from this Python's environment (the .venv), on 127.0.0.1, a free port, a
known token, with ``NIFKIT_FAST=1`` for its kernels and isolated Jupyter settings; and
what the tests ask it about a notebook's kernel (pid, peak memory, shutdown).

``lab_session()`` is the context manager; ``browser_utils.jupyter_server`` the fixture.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from notebook_utils import FIXTURES_DIR, NOTEBOOKS_DIR, kernel_env


# ------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, relpath: str = "") -> str:
        """URL opening ``relpath`` (relative to the server root) in JupyterLab."""
        tree = f"/tree/{quote(relpath)}" if relpath else ""
        return f"{self.base_url}/lab{tree}?token={self.token}&reset"

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        req = urllib.request.Request(
            f"{self.base_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log(self, tail: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])
        except OSError:
            return "<no log>"


def _jupyter_settings(home: Path) -> dict:
    """Isolated Jupyter dirs with settings that keep the page quiet and offline."""
    dirs = {name: home / name for name in ("config", "data", "runtime", "lab-settings", "lab-workspaces")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    notif = dirs["lab-settings"] / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True, exist_ok=True)
    # no "get Jupyter news?" toast over the notebook, no request to a website
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return {
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),  # no user-level kernelspecs
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["lab-settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["lab-workspaces"]),
    }


def start_lab(root: Path, home: Path, startup_timeout: float = 120) -> LabServer:
    """Start JupyterLab from this Python on ``root`` and wait until it answers."""
    port, token = free_port(), secrets.token_hex(16)
    env = kernel_env(fast=True)
    env.update(_jupyter_settings(home))
    log_path = home / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    server = LabServer(proc=proc, port=port, token=token, root=root, log_path=log_path)
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{server.log()}")
        try:
            server.api("/api/status", timeout=2)
            return server
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop_lab(server)
            raise RuntimeError(f"JupyterLab did not answer within {startup_timeout:.0f} s:\n{server.log()}")
        time.sleep(0.5)


def stop_lab(server: LabServer, timeout: float = 20) -> None:
    """Shut JupyterLab and its kernels down: politely, then by signal, by pid only."""
    try:
        import psutil

        family = [p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - psutil missing or process gone
        family = []
    if server.proc.poll() is None:
        with contextlib.suppress(Exception):
            server.api("/api/shutdown", method="POST", timeout=5)  # also shuts kernels down
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.proc.terminate()
            try:
                server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(timeout=10)
    for pid in family:  # kernels left behind, if any
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _session_for(server: LabServer, relpath: str) -> dict | None:
    for sess in server.api("/api/sessions") or []:
        if sess.get("path") == relpath and sess.get("kernel"):
            return sess
    return None


def notebook_kernel_pid(server: LabServer, relpath: str) -> int | None:
    """Pid of the kernel JupyterLab started for ``relpath`` (found by its kernel id)."""
    import psutil

    sess = _session_for(server, relpath)
    if sess is None:
        return None
    kid = sess["kernel"]["id"]
    for proc in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            if any(kid in arg for arg in proc.cmdline()):
                return proc.pid
        except psutil.Error:
            continue
    return None


def notebook_kernel_peak_bytes(server: LabServer, relpath: str) -> int | None:
    """Peak memory (VmHWM, plus its children's) of the notebook's kernel so far."""
    import psutil

    from notebook_utils import vm_hwm_bytes

    pid = notebook_kernel_pid(server, relpath)
    if pid is None:
        return None
    total = vm_hwm_bytes(pid) or 0
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            total += vm_hwm_bytes(child.pid) or 0
    return total or None


def shutdown_notebook_kernel(server: LabServer, relpath: str) -> None:
    """End the notebook's session and kernel (frees memory before the next notebook)."""
    sess = _session_for(server, relpath)
    if sess is not None:
        with contextlib.suppress(Exception):
            server.api(f"/api/sessions/{sess['id']}", method="DELETE")


def copy_notebooks(dest: Path) -> Path:
    """notebooks/ -> dest, tests/fixtures/ -> dest/fixtures (checkpoints left out)."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(NOTEBOOKS_DIR, dest, ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(FIXTURES_DIR, dest / "fixtures", ignore=ignore, dirs_exist_ok=True)
    return dest


@contextlib.contextmanager
def lab_session():
    """A running JupyterLab on a temporary copy of the notebooks; stopped on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="nifkit-lab-"))
    server = None
    previous = None
    if threading.current_thread() is threading.main_thread():
        # a SIGTERM (e.g. a CI time limit) still runs the teardown below
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        root = copy_notebooks(tmp / "notebooks")
        server = start_lab(root, tmp / "home")
        yield server
    finally:
        if server is not None:
            stop_lab(server)
        shutil.rmtree(tmp, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
