"""Peak-RSS probe for tests/test_memory_budgets.py: run one budgeted call in this (fresh)
process and print JSON ``{"growth": bytes, "result": bytes, "inputs": bytes}``.

``python tests/memory_probe.py CASE MEMORY_BUDGET N_INPUTS [N_INPUTS ...]``. The growth is the rise of the
process's peak resident set over the call (``VmHWM`` after the call minus ``VmRSS`` before
it, the peak reset to the current set first; ``ru_maxrss`` where that cannot be done), measured after a warm-up call of
the same function on 64 inputs (so imports, torch's kernels and thread pools, and the
model's own first forward are in the baseline, not in the growth); the inputs are built
before the baseline. ``result`` is the bytes of the tensors/arrays the call returns.
"""
from __future__ import annotations

import ctypes
import json
import re
import resource
import sys

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
MiB = 2**20


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1)) * 1024


def start_peak() -> int:
    """Reset the peak resident set to the current one (Linux ``/proc/self/clear_refs``,
    value 5) and return it: a peak reached earlier (imports, building the inputs) would
    otherwise hide the call's own. Without it, the current ``ru_maxrss``."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmRSS")
    except OSError:
        return peak()


def peak() -> int:
    """The peak resident set since :func:`start_peak` (``VmHWM``), else ``ru_maxrss``."""
    try:
        return _status("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def nbytes(obj, seen=None) -> int:
    """Bytes of the tensors and arrays reachable from ``obj`` (each storage once; a storage
    in ``seen``, e.g. the inputs', is not counted)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        ptr = ("storage", obj.untyped_storage().data_ptr())
        if ptr in seen:
            return 0
        seen.add(ptr)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, nn.Module):
        return 0  # the model is there before the call
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(nbytes(v, seen) for v in vars(obj).values())
    return 0


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 7 * 7, 10)).eval()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def case(name, n, budget):
    """``(inputs, run)``: the inputs (built now, ``n`` of them) and ``run(k)``, the call on the first ``k``."""
    g = torch.Generator().manual_seed(1)
    if name == "layer_conductance":
        from nifkit.conductance import layer_conductance
        model, x = cnn(), torch.rand(n, 1, 28, 28, generator=g)
        return x, lambda k: layer_conductance(model, x[:k], steps=8, memory_budget=budget)
    if name == "path_gradients":
        from nifkit.record import path_gradients
        model, x = cnn(), torch.rand(n, 1, 28, 28, generator=g)
        return x, lambda k: path_gradients(model, x[:k], steps=4, memory_budget=budget)
    if name == "pairwise_mi":
        from nifkit.info import pairwise_mi
        codes = torch.randint(0, 8, (n, 256), generator=g, dtype=torch.uint8)
        return codes, lambda k: pairwise_mi(codes[:k], n_bins=8, memory_budget=budget)
    if name == "layer_ei":  # inputs: noise samples
        from nifkit.ei import layer_ei
        torch.manual_seed(0)
        lin = nn.Linear(32, 32)
        return None, lambda k: layer_ei(lin, "sigmoid", n_samples=max(k, 4096), n_sensitivity_samples=max(k // 32, 128),
                                        memory_budget=budget)
    if name == "block_ei":  # inputs: noise samples through one residual block (8 x 16 x 16 elements)
        from nifkit.ei import block_ei
        from nifkit.models import residual_cnn
        model, x = residual_cnn(channels=8, n_blocks=2, seed=0), torch.rand(200, 1, 16, 16, generator=g)
        return x, lambda k: block_ei(model, x, layers=["body.block1"], n_samples=k, memory_budget=budget)
    if name == "record":
        from nifkit.record import record
        model, x = cnn(), torch.rand(n, 1, 28, 28, generator=g)
        bs = max(1, budget // (4 * 28 * 28 * 8))  # record takes a batch size: the budget's worth
        return x, lambda k: record(model, x[:k], batch_size=bs)
    if name == "Knockouts":
        from nifkit.intervene import Knockouts
        model, x = mlp(), torch.randn(n, 64, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)

        def run(k):
            eng = Knockouts(model, (x[:k], y[:k]), memory_budget=budget)
            # the engine's cache (layer outputs, logits, labels) is part of what the call keeps
            return eng, eng.evaluate(["2"], [torch.eye(64, dtype=torch.bool)])
        return (x, y), run
    if name == "knock_out_layers":
        from nifkit.intervene import knock_out_layers
        model, x = mlp(), torch.randn(n, 64, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        bs = max(1, budget // (4 * 64 * 8))
        return (x, y), lambda k: knock_out_layers(model, (x[:k], y[:k]), ["1", "3"], batch_size=bs)
    if name == "evaluate_edge_knockouts":
        from nifkit.intervene import evaluate_edge_knockouts
        model, x = mlp(), torch.randn(n, 64, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        edges = {"2": torch.rand(256, 64, 64, generator=g) < 0.1}  # 256 knockouts of 64x64 weights
        return (x, y, edges), lambda k: evaluate_edge_knockouts(model, (x[:k], y[:k]), edges, memory_budget=budget)
    if name == "ksg_mi_pairs":
        from nifkit.info import ksg_mi_pairs
        a, b = torch.rand(n, 4, generator=g).double().numpy(), torch.rand(n, 4, generator=g).double().numpy()
        pairs = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), -1).reshape(-1, 2)
        return (a, b), lambda k: ksg_mi_pairs(a[:k], b[:k], pairs, memory_budget=budget)
    if name == "gaussian_mi_pairs":
        from nifkit.info import gaussian_mi_pairs
        a, b = torch.rand(n, 128, generator=g).numpy(), torch.rand(n, 128, generator=g).numpy()
        return (a, b), lambda k: gaussian_mi_pairs(a[:k], b[:k], memory_budget=budget)
    if name == "dv_mi_pairs":
        from nifkit.info import dv_mi_pairs
        a, b = torch.randn(n, 8, generator=g).numpy(), torch.randn(n, 8, generator=g).numpy()
        return (a, b), lambda k: dv_mi_pairs(a[:k], b[:k], steps=2, batch_size=64, memory_budget=budget)
    if name in ("cmi_all_subsets", "cmi_subsets", "cmi_extended"):
        from nifkit import info
        x, y = torch.randint(0, 4, (2, n), generator=g).numpy()
        codes = torch.randint(0, 2, (n, 12), generator=g).numpy()
        if name == "cmi_all_subsets":
            return (x, y, codes), lambda k: info.cmi_all_subsets(x[:k], y[:k], codes[:k], memory_budget=budget)
        if name == "cmi_subsets":
            masks = torch.rand(512, 12, generator=g).numpy() < 0.5
            return (x, y, codes, masks), lambda k: info.cmi_subsets(x[:k], y[:k], codes[:k], masks,
                                                                    memory_budget=budget)
        extra = torch.randint(0, 4, (n, 256), generator=g).numpy()
        return (x, y, codes, extra), lambda k: info.cmi_extended(x[:k], y[:k], codes[:k, :6], extra[:k],
                                                                 memory_budget=budget)
    raise ValueError(f"unknown case {name!r}")


def release() -> None:
    """Give memory the C allocator keeps after a call back to the OS (glibc's
    ``malloc_trim``), so the next measurement in this process starts nearly fresh."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def main():
    """``python tests/memory_probe.py CASE BUDGET N [N ...]``: one JSON line per ``N``, in
    that order, in this process. Only the first measurement is of a fresh process; a later
    one may reuse memory an earlier call left with the allocator (``release`` returns most
    of it), so it can only read low: give the largest ``N`` first."""
    name, budget, ns = sys.argv[1], int(sys.argv[2]), [int(a) for a in sys.argv[3:]]
    inputs, run = case(name, max(ns), budget)
    run(64)  # warm-up: imports, kernels, thread pools, the model's first forward
    seen: set = set()
    n_in = nbytes(inputs, seen)
    for n in ns:
        release()
        before = start_peak()
        out = run(n)
        growth = peak() - before
        print(json.dumps({"case": name, "n": n, "budget": budget, "growth": growth,
                          "result": nbytes(out, set(seen)), "inputs": n_in}), flush=True)
        del out


if __name__ == "__main__":
    main()
