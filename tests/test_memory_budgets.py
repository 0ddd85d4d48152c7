"""Memory budgets that hold (issue 19, point 4), measured as the rise of the peak resident
set of a fresh process over one call (``tests/memory_probe.py``; torch's allocator is
invisible to tracemalloc).

For every function that takes ``memory_budget`` (and for ``record`` and
``knock_out_layers``, which take a ``batch_size``: the probe gives them the budget's worth
of inputs per batch), at two budgets and two input counts:

* growth <= 1.5 x budget + result + :data:`CONSTANT`. The result is what the call returns
  and keeps (the ``Knockouts`` engine's cached layer outputs, logits and labels count as
  its result), its inputs are in memory before. :data:`CONSTANT` (16 MiB) covers what no
  budget can bound: memory the C allocator keeps after torch frees it (glibc's malloc
  holds freed blocks below its dynamic mmap threshold instead of returning them), the
  model's own forward pass on one batch, and Python objects;
* doubling the inputs adds at most :data:`SLACK` beyond what it adds to the result: no
  per-input temporary survives a chunk (before this test, ``layer_conductance`` added
  ~1.5x its result, ``path_gradients`` and ``record`` ~1x theirs, ``pairwise_mi`` ~8x
  its inputs);
* the probe sees the memory: a call whose result is large grows by at least most of it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

MiB = 2**20
#: what the budget cannot bound (see the module docstring)
CONSTANT = 16 * MiB
#: how much more than the result's growth doubling the inputs may add
SLACK = 8 * MiB
BUDGETS = (4 * MiB, 16 * MiB)
#: inputs of the smaller run of each case (the larger run has twice as many)
CASES = {"layer_conductance": 250, "path_gradients": 150, "record": 300, "pairwise_mi": 20000,
         "layer_ei": 100000, "Knockouts": 20000, "knock_out_layers": 20000,
         "evaluate_edge_knockouts": 4000, "ksg_mi_pairs": 600, "gaussian_mi_pairs": 20000, "cmi_all_subsets": 2000,
         "cmi_subsets": 10000, "cmi_extended": 20000,
         "dv_mi_pairs": 10000, "block_ei": 20000}
ROOT = Path(__file__).resolve().parents[1]


def _probe(name: str, budget: int, ns) -> list:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "memory_probe.py"), name, str(budget),
                           *map(str, ns)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.strip().splitlines()[-len(ns):]]


@pytest.fixture(scope="module")
def runs() -> dict:
    """``(case, n, budget) -> probe result`` for every case at (2n, large budget) in one
    fresh process, and (2n, small budget) then (n, small budget) in another (two
    processes at a time). The second measurement of a process may read low (memory left
    with the allocator by the first), which only makes the linearity check stricter."""
    jobs = [(c, b, ns) for c, n0 in CASES.items() for b, ns in ((BUDGETS[1], (2 * n0,)),
                                                                (BUDGETS[0], (2 * n0, n0)))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda j: _probe(*j), jobs)
        return {(r["case"], r["n"], r["budget"]): r for rs in done for r in rs}


@pytest.mark.parametrize("case", list(CASES))
def test_growth_within_budget_plus_result(runs, case):
    for (c, n, budget), r in runs.items():
        if c != case:
            continue
        bound = 1.5 * budget + r["result"] + CONSTANT
        assert r["growth"] <= bound, (
            f"{case} on {n} inputs with memory_budget={budget / MiB:.0f} MiB grew the peak resident set by "
            f"{r['growth'] / MiB:.1f} MiB > 1.5 x budget + result ({r['result'] / MiB:.1f} MiB) + "
            f"{CONSTANT / MiB:.0f} MiB = {bound / MiB:.1f} MiB")


@pytest.mark.parametrize("case", list(CASES))
def test_growth_not_linear_in_inputs_beyond_result(runs, case):
    n = CASES[case]
    small, large = runs[(case, n, BUDGETS[0])], runs[(case, 2 * n, BUDGETS[0])]
    extra = (large["growth"] - small["growth"]) - (large["result"] - small["result"])
    assert extra <= SLACK, (f"{case}: {n} more inputs grew the peak by {extra / MiB:.1f} MiB more than they grew "
                            f"the result: a per-input temporary outlives its chunk")


@pytest.mark.parametrize("case", ["layer_conductance", "path_gradients", "record"])
def test_probe_sees_the_result(runs, case):
    r = runs[(case, 2 * CASES[case], BUDGETS[0])]
    assert r["result"] > 16 * MiB
    assert r["growth"] >= 0.8 * r["result"], f"{case}: growth {r['growth']} below its result {r['result']}"


def test_recorder_capacity_fills_in_place_and_falls_back():
    """A Recorder with ``capacity`` writes batches into one preallocated tensor; batches
    beyond it or of another shape fall back to per-batch copies; the recording is the
    concatenation either way."""
    import torch
    from torch import nn

    from nifkit.record import Recorder

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3), nn.ReLU())
    xs = [torch.randn(3, 5) for _ in range(3)]
    for cap, want_inplace in ((9, True), (4, False)):
        with Recorder(model, ["0"], capacity=cap) as rec:
            for x in xs:
                model(x)
        got = rec.activations["0"]
        assert torch.equal(got, torch.cat([model[0](x) for x in xs]).detach())
        assert (got.untyped_storage().nbytes() == cap * 3 * 4) is want_inplace
    seq = nn.Sequential(nn.Flatten(0))  # output rows are not samples: shapes differ per batch
    with Recorder(seq, ["0"], capacity=4) as rec:
        seq(torch.ones(2, 2))
        seq(torch.ones(3, 2))
    assert rec.activations["0"].shape == (10,)


def test_the_c_log2_c_table_cache_is_bounded():
    """One table per device, of the largest size asked (up to LUT_MAX); smaller sizes are
    prefix views of it (no memory of their own); sizes over LUT_MAX are not kept."""
    import math

    import numpy as np
    import torch

    from nifkit.info import kernels

    kernels.xlog2x_table(10)
    base = kernels.xlog2x_table(5000)
    sizes = [17, 300, 4999, 1234]
    tables = [kernels.xlog2x_table(n) for n in sizes]
    cached = [t for t, _ in kernels._LUT_CACHE.values()]
    assert len(cached) == 1 and len(cached[0]) >= 5001
    for n, t in zip(sizes, tables):
        assert len(t) == n + 1 and t.untyped_storage().data_ptr() == cached[0].untyped_storage().data_ptr()
        want = np.array([c * math.log2(c) if c else 0.0 for c in range(n + 1)])
        np.testing.assert_array_equal(t.numpy(), want)
    assert torch.equal(base, kernels.xlog2x(torch.arange(5001, dtype=torch.float64)))
    big = kernels.xlog2x_table(kernels.LUT_MAX + 3)
    assert len(big) == kernels.LUT_MAX + 4
    assert all(len(t) <= kernels.LUT_MAX + 1 for t, _ in kernels._LUT_CACHE.values())
    assert kernels.xlog2x_table(300) is kernels.xlog2x_table(300)
