"""Every Python example of README.md and docs/*.md runs as written.

Each ```python block is run as a script in a fresh process. A block that starts a
``torch.distributed`` process group runs under ``torchrun`` with two processes, and its
output must equal that of one process alone (the counts of two shards add up to the
counts of all the data).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def examples() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for k, m in enumerate(_BLOCK.finditer(path.read_text(encoding="utf-8")), 1):
            out.append((f"{path.relative_to(REPO)}#{k}", m.group(1)))
    return out


EXAMPLES = examples()


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                OMP_NUM_THREADS="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_the_docs_have_examples():
    assert any(name.startswith("docs/distributed.md") for name, _ in EXAMPLES), [n for n, _ in EXAMPLES]


@pytest.mark.parametrize("name,code", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_runs(name, code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = _env()
    if "init_process_group" not in code:
        _run([sys.executable, str(script)], tmp_path, env)
        return
    # alone: a process group of one
    alone = _run([sys.executable, str(script)], tmp_path,
                 dict(env, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(_free_port())))
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                str(script)], tmp_path, env)
    assert alone.strip(), f"{name} printed nothing"
    assert two.strip() == alone.strip(), f"{name}: two processes printed\n{two}\none process printed\n{alone}"
