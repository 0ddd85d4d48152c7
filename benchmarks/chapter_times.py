"""Chapter run times in FULL mode (no NIFKIT_FAST), measured, for the README's table.

Executes each chapter notebook top to bottom in a fresh kernel with
``tests/notebook_utils.run_notebook(path, fast=False)`` (the same runner as the test
suite, without fast mode), and prints a markdown table: chapter, seconds, peak MB, the
three slowest cells, CPU model and flags, the counting kernel chosen and torch's
threads. The table is also written to ``--out`` (default
``benchmarks/chapter_times.md``). Exit code 0 when every chapter ran within
``--limit`` seconds (default 180, the project's 3 minutes) and 1.5 GB.

Run it on a quiet machine (nothing else running): the figures are wall-clock times.

Run:  python benchmarks/chapter_times.py [--only 00_primer] [--limit 180] [--out FILE]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
from notebook_utils import MEMORY_LIMIT_BYTES, NOTEBOOKS_DIR, notebook_paths, run_notebook  # noqa: E402


def cpu_description() -> str:
    """``lscpu``'s model name, core count, and the SIMD flags that decide the counting kernel."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", out).group(1).strip()
        cpus = re.search(r"^CPU\(s\):\s*(\d+)", out, re.M).group(1)
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model, cpus = "unknown CPU", "?"
    try:
        flags = set(re.findall(r"\b(avx2|avx512f|avx512_vnni|avx_vnni|amx_int8)\b", Path("/proc/cpuinfo").read_text()))
    except OSError:
        flags = set()
    return f"{model}, {cpus} CPUs, flags: {' '.join(sorted(flags)) or 'none of avx2/avx512/vnni'}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None, help="notebook names (without .ipynb) to run")
    ap.add_argument("--limit", type=float, default=180.0, help="seconds a chapter may take")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is stopped")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "chapter_times.md"))
    args = ap.parse_args(argv)

    import torch

    from nifkit.info import counting_kernel_info

    paths = [p for p in notebook_paths(NOTEBOOKS_DIR) if args.only is None or p.stem in args.only]
    if not paths:
        print(f"no notebook matches {args.only}", file=sys.stderr)
        return 2
    cpu = cpu_description()
    kernel = counting_kernel_info()
    lines = [f"Chapter run times, full mode, measured {time.strftime('%Y-%m-%d %H:%M')} UTC",
             "", f"CPU: {cpu}; torch {torch.__version__}; counting kernel: {kernel}", "",
             "| chapter | seconds | peak MB | slowest cells (index: s) | status |", "|---|---:|---:|---|---|"]
    print("\n".join(lines), flush=True)
    ok = True
    for path in paths:  # loop over chapters
        run = run_notebook(path, timeout=args.timeout, fast=False, save_executed=False)
        slow = ", ".join(f"{c['cell']}: {c['seconds']:.0f}" for c in sorted(run.cell_seconds, key=lambda c: -c["seconds"])[:3])
        peak = "n/a" if run.peak_bytes is None else f"{run.peak_mb:,.0f}"
        good = run.error is None and run.seconds <= args.limit and (run.peak_bytes or 0) <= MEMORY_LIMIT_BYTES
        status = "ok" if good else ("FAILED: " + run.error.splitlines()[0][:120] if run.error else "over the limit")
        ok &= good
        line = f"| {path.stem} | {run.seconds:.1f} | {peak} | {slow} | {status} |"
        lines.append(line)
        print(line, flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
