"""The measurement behind nifkit's thread policy (nifkit/runtime.py): typical chapter
workloads timed with 1 and with 2 torch threads, in one process, alternating.

Workloads: the primer's estimators cell (KSG and DV at 5 sample sizes, full mode), the
primer's all-pairs MI (1,797 x 48 codes, 8 bins, x20), NIF's binned flow graph of a
64-128-64-10 digits MLP, EI_parts of a 100x100 sigmoid layer (10^5 samples), and 5
epochs of training a 64-48-24-10 MLP on digits.

Run:  python benchmarks/bench_threads.py [--repeats 1]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nifkit import data, info, models  # noqa: E402
from nifkit.ei import layer_ei  # noqa: E402
from nifkit.nif import flow_graph  # noqa: E402
from nifkit.runtime import cpu_threads  # noqa: E402


def estimators_cell():
    rng = np.random.default_rng(0)
    for n in [100, 300, 1000, 3000, 10000]:
        x = rng.standard_normal(n)
        y = 0.8 * x + 0.6 * rng.standard_normal(n)
        info.ksg_mi(x, y, k=3, num_threads=torch.get_num_threads())
        info.dv_mi(x, y, steps=600, seed=0, num_threads=torch.get_num_threads())


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    digits = data.load_digits(seed=0)
    net = models.mlp([64, 128, 64, 10], seed=0)
    models.train(net, digits, epochs=3, seed=0, progress=False)
    codes = np.random.default_rng(0).integers(0, 8, (1797, 48))
    layer = torch.nn.Linear(100, 100)

    work = {
        "primer all-pairs MI 48 units x20": lambda: [info.pairwise_mi(codes, n_bins=8, num_threads=torch.get_num_threads())
                                                     for _ in range(20)],
        "NIF binned flow graph (digits 64-128-64-10)": lambda: flow_graph(net, digits, split="all",
                                                                           num_threads=torch.get_num_threads()),
        "EI_parts 100x100, 1e5 samples": lambda: layer_ei(layer, "sigmoid", n_samples=100_000, measures="ei_parts",
                                                         num_threads=torch.get_num_threads()),
        "train 64-48-24-10 on digits, 5 epochs": lambda: models.train(
            models.mlp([64, 48, 24, 10], seed=0), digits, epochs=5, seed=0, progress=False,
            num_threads=torch.get_num_threads()),
        "primer estimators cell (KSG + DV, 5 sizes)": estimators_cell,
    }
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"counting kernel: {info.counting_kernel_info()}")
    print("| workload | 1 thread | 2 threads | 2 / 1 |")
    print("|---|---|---|---|")
    for name, fn in work.items():
        t = {1: [], 2: []}
        for _ in range(args.repeats):
            for n in (1, 2):
                with cpu_threads(n):
                    t0 = time.perf_counter()
                    fn()
                    t[n].append(time.perf_counter() - t0)
        a, b = min(t[1]), min(t[2])
        print(f"| {name} | {a:.2f} s | {b:.2f} s | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
