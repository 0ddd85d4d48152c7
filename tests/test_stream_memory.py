"""Streaming keeps memory bounded by the batch, not the data (issue 22, point 3):
``model_neuron_measures`` of a small CNN over a DataLoader of 50,000 28x28 images in
batches of 500 (two passes: min-max bins), measured in fresh processes
(tests/stream_memory_probe.py, the peak-RSS probe of tests/memory_probe.py).

* growth <= 2 x (the model's own forward on one batch, measured in the same process) +
  the ``(samples x channels)`` reduced activations + :data:`CONSTANT`: the batch bounds
  it (the factor 2 is allocator slack: the hooks' reductions and the loader's collated
  batch live beside the forward's temporaries; measured 1.3-1.6x here);
* a fifth of the data changes the growth by at most :data:`SLACK` beyond the reduced
  activations: nothing per sample survives a batch (the 157 MB of images, or the 627 MB
  of the first layer's maps a recording would hold, never appear).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MiB = 2**20
CONSTANT = 16 * MiB
SLACK = 8 * MiB
ROOT = Path(__file__).resolve().parents[1]


def _probe(n: int, what: str = "minmax") -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "stream_memory_probe.py", str(n), what], cwd=ROOT / "tests",
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_streamed_neuron_measures_memory_is_bounded_by_the_batch():
    with ThreadPoolExecutor(max_workers=2) as pool:
        large, small = pool.map(_probe, (50_000, 10_000))
    bound = 2 * large["forward"] + large["reduced"] + CONSTANT
    assert large["growth"] <= bound, (
        f"50,000 images: peak grew by {large['growth'] / MiB:.1f} MiB > 2 x forward of one batch "
        f"({large['forward'] / MiB:.1f} MiB) + reduced activations ({large['reduced'] / MiB:.1f} MiB) + "
        f"{CONSTANT / MiB:.0f} MiB = {bound / MiB:.1f} MiB")
    assert large["growth"] < large["images"] / 2
    extra = (large["growth"] - small["growth"]) - (large["reduced"] - small["reduced"])
    assert extra <= SLACK, f"40,000 more images grew the peak by {extra / MiB:.1f} MiB: something per sample survives"


def test_streamed_flow_graph_keeps_only_the_reduced_activity():
    """The flow graph over a DataLoader keeps each node unit's reduced activity and joins
    it at the end (twice its bytes), besides one batch's forward. Without releasing each
    batch's freed float64 maps, glibc kept them resident between the small kept pieces:
    8,000 images of this 16-channel residual CNN grew the peak by 1.1-1.7 GB, 50,000 by 10.7 GB."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        large, small = pool.map(lambda n: _probe(n, "flow"), (8_000, 4_000))  # the two bounds
    bound = 2 * large["forward"] + 2 * large["kept"] + CONSTANT
    assert large["growth"] <= bound, (
        f"8,000 images: flow_graph grew the peak by {large['growth'] / MiB:.1f} MiB > 2 x forward "
        f"({large['forward'] / MiB:.1f} MiB) + 2 x kept activity ({large['kept'] / MiB:.1f} MiB) + 16 MiB")
    # no linearity check here: glibc's reuse of the freed maps makes the peak of 4,000 and
    # 8,000 images differs by up to ~120 MiB from run to run (measured); the bound above is
    # what fails without the release (1,651 MiB against 392)
    assert small["growth"] <= 2 * small["forward"] + 2 * small["kept"] + CONSTANT
