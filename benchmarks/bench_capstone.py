"""Claim (capstone): all five lenses (NIF, conductance, relay, ordered ablation, EI) on
the composed 784-20-10 tanh network of chapter 3 with the 5,000 offline MNIST digits
(``nifkit.data.load_mnist()``, training and test split together): the whole table from
one ``nifkit.compare.compare`` call in **under 60 s** on the 2-core machine, with the time
of each lens. The knockout truth (single neurons and all 190 pairs) is timed too.

The network is trained here (``--epochs`` per sub-network), nothing cached on disk.
There is no anchor to take a ratio against: the claim is an absolute time, so the
machine and its load are printed with it. Run:
    python benchmarks/bench_capstone.py [--epochs 30] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nifkit.compare import compare, knockout_truth  # noqa: E402
from nifkit.data import load_mnist  # noqa: E402
from nifkit.relay import compose, train_one_vs_rest  # noqa: E402

LIMIT = 60.0


def machine() -> dict:
    cpu = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), cpu)
    except OSError:
        pass
    flags = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512f", "avx512_vnni")})
    return {"cpu": cpu, "flags": flags, "cores": os.cpu_count(), "torch": torch.__version__,
            "load": os.getloadavg()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {info['flags']}, torch {info['torch']}, "
          f"load average {info['load'][0]:.1f}")
    ds = load_mnist(seed=0)
    t = time.perf_counter()
    net = compose(train_one_vs_rest(ds, n_hidden=2, max_epochs=args.epochs, seed=0))
    print(f"composed network trained in {time.perf_counter() - t:.1f} s (not part of the claim)")
    X = torch.cat([ds.X_train, ds.X_test])
    y = torch.cat([ds.y_train, ds.y_test])
    t = time.perf_counter()
    comp = compare(net, (X, y))
    total = time.perf_counter() - t
    t = time.perf_counter()
    truth = knockout_truth(net, (X, y), k=2)
    t_truth = time.perf_counter() - t
    print(f"{comp!r}")
    for name, s in comp.seconds.items():
        print(f"  {name:12s} {s:6.1f} s")
    print(f"all five lenses: {total:.1f} s (limit {LIMIT:.0f} s); knockout truth (20 singles + "
          f"{truth.n_sets['act1']} pairs): {t_truth:.2f} s; load average after {os.getloadavg()[0]:.1f}")
    ok = total < LIMIT
    print("claim holds" if ok else "claim FAILS")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "seconds": comp.seconds, "total": total,
                                               "truth": t_truth, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
