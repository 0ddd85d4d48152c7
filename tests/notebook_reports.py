"""Reports of the notebook runs: the machine they ran on, and README.md's chapter table.

tests/test_notebooks.py records every chapter's full-mode run (``notebook_utils.record_run``
into tests/reports/notebooks.json) and then rewrites the table between README.md's
markers with :func:`update_readme_table`, so the README says what the last run measured.

    python tests/notebook_reports.py      # rewrite README.md's table from the last runs
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from notebook_utils import CHAPTER_SECONDS_LIMIT, NOTEBOOKS_DIR, REPO, REPORTS_DIR, RISE_LIMIT_BYTES, notebook_paths


def _torch_build() -> tuple[str, str | None]:
    """(torch.__version__, its CUDA version or None), read from torch/version.py without
    importing torch (which would cost this process half a gigabyte)."""
    from importlib.util import find_spec

    spec = find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "not installed", None
    text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    version = re.search(r"^__version__\s*(?::[^=]*)?=\s*['\"]([^'\"]+)", text, re.M)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)", text, re.M)
    return (version.group(1) if version else "unknown"), (cuda.group(1) if cuda else None)


def machine_description() -> dict:
    """The CPU (``lscpu`` model name, CPU count, the SIMD flags that decide nifkit's
    counting kernel) and the torch build the kernels run with (this venv's)."""
    import subprocess
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model = "unknown CPU"
    try:
        flags = set(re.findall(r"\b(avx2|avx512f|avx512_vnni|avx_vnni|amx_int8)\b", Path("/proc/cpuinfo").read_text()))
    except OSError:
        flags = set()
    torch_version, cuda = _torch_build()
    build = f"CUDA {cuda} build" if cuda else "CPU-only build"
    return {"cpu": model, "cpus": os.cpu_count(), "flags": " ".join(sorted(flags)) or "no AVX2/AVX-512",
            "torch": f"{torch_version}, {build}"}


README = REPO / "README.md"
TABLE_START = "<!-- chapter-table: written by tests/test_notebooks.py from its full-mode runs; do not edit -->"
TABLE_END = "<!-- /chapter-table -->"


def chapter_table(data: dict, chapters: list[str]) -> str:
    """The README's chapter table, from tests/reports/notebooks.json entries: the last
    full-mode run of each chapter, with the machine and load it ran on."""
    rows = ["| chapter | full mode: seconds | peak MB | after imports MB | rise MB | measured (UTC), load |",
            "|---|---:|---:|---:|---:|---|"]
    machines = []
    for name in chapters:
        e = data.get(name)
        if not e or e.get("fast_mode", True):
            rows.append(f"| `{name}` | not measured in full mode | | | | |")
            continue
        if e.get("machine") and e["machine"] not in machines:
            machines.append(e["machine"])
        status = "" if e.get("ok") else " (a cell failed)"
        if e["seconds"] > CHAPTER_SECONDS_LIMIT:
            status += f" (over {CHAPTER_SECONDS_LIMIT} s)"
        over = f" (over {RISE_LIMIT_BYTES / 1e6:,.0f})" if e["rise_mb"] * 1e6 > RISE_LIMIT_BYTES else ""
        load = max(e.get("load") or [0])
        rows.append(f"| `{name}` | {e['seconds']:.0f}{status} | {e['peak_mb']:,.0f} | {e['baseline_mb']:,.0f} "
                    f"| {e['rise_mb']:,.0f}{over} | {e['when']}, load {load:.1f} |")
    lines = [TABLE_START, ""] + rows + [""]
    for m in machines:
        lines.append(f"Measured on: {m['cpu']}, {m['cpus']} CPUs ({m['flags']}); torch {m['torch']}.")
    lines += ["", TABLE_END]
    return "\n".join(lines)


def update_readme_table(readme: Path = README, report: Path | None = None) -> str:
    """Rewrite README.md's chapter table (between its markers) from the recorded runs."""
    report = report or REPORTS_DIR / "notebooks.json"
    try:
        data = json.loads(Path(report).read_text())
    except (OSError, ValueError):
        data = {}
    text = Path(readme).read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{readme} has no chapter table markers ({TABLE_START!r} ... {TABLE_END!r})")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    table = chapter_table(data, [p.name for p in notebook_paths(NOTEBOOKS_DIR)])
    Path(readme).write_text(head + table + tail)
    return table



if __name__ == "__main__":
    print(update_readme_table())
    sys.exit(0)
