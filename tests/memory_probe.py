"""Peak-RSS probe for tests/test_memory_budgets.py: run one budgeted call in this (fresh)
process and print JSON ``{"growth": bytes, "result": bytes, "inputs": bytes}``.

``python tests/memory_probe.py CASE N_INPUTS MEMORY_BUDGET``. The growth is the rise of the
process's peak resident set (``ru_maxrss``) over the call, measured after a warm-up call of
the same function on 64 inputs (so imports, torch's kernels and thread pools, and the
model's own first forward are in the baseline, not in the growth); the inputs are built
before the baseline. ``result`` is the bytes of the tensors/arrays the call returns.
"""
from __future__ import annotations

import json
import resource
import sys

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
MiB = 2**20


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def nbytes(obj, seen=None) -> int:
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
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
    """``(inputs, call)``: the inputs (built now) and a function of (inputs, n) that runs it."""
    g = torch.Generator().manual_seed(1)
    if name == "layer_conductance":
        from nifkit.conductance import layer_conductance
        model, x = cnn(), torch.rand(n, 1, 28, 28, generator=g)
        return x, lambda k: layer_conductance(model, x[:k], steps=16, memory_budget=budget)
    if name == "path_gradients":
        from nifkit.record import path_gradients
        model, x = cnn(), torch.rand(n, 1, 28, 28, generator=g)
        return x, lambda k: path_gradients(model, x[:k], steps=4, memory_budget=budget)
    if name == "pairwise_mi":
        from nifkit.info import pairwise_mi
        codes = torch.randint(0, 8, (n, 256), generator=g, dtype=torch.uint8)
        return codes, lambda k: pairwise_mi(codes[:k], n_bins=8, memory_budget=budget)
    if name == "layer_ei":
        from nifkit.ei import layer_ei
        torch.manual_seed(0)
        lin = nn.Linear(64, 64)
        return None, lambda k: layer_ei(lin, "sigmoid", n_samples=max(k, 8) * 100, measures=["ei_parts"],
                                        memory_budget=budget)
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
            return eng.evaluate(["2"], [torch.eye(64, dtype=torch.bool)])
        return (x, y), run
    if name == "knock_out_layers":
        from nifkit.intervene import knock_out_layers
        model, x = mlp(), torch.randn(n, 64, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        bs = max(1, budget // (4 * 64 * 8))
        return (x, y), lambda k: knock_out_layers(model, (x[:k], y[:k]), ["1", "3"], batch_size=bs)
    raise ValueError(f"unknown case {name!r}")


def main():
    name, n, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    inputs, run = case(name, n, budget)
    run(64)  # warm-up: imports, kernels, thread pools, the model's first forward
    before = peak()
    out = run(n)
    growth = peak() - before
    print(json.dumps({"growth": growth, "result": nbytes(out), "inputs": nbytes(inputs)}))


if __name__ == "__main__":
    main()
