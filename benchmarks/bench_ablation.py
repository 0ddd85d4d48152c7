"""Claim: all cumulative-ablation curves (3 measures x 2 orders + 5 random orders) for
every hidden layer of a 784-256-128-10 ReLU MLP on 10,000 test samples, at every count
0..units, are at least 10x faster with nifkit's engine than with the plain approach
(a forward hook sets the ablated outputs, and the whole model runs again from the input
for every step), with equal curves.

Data: FashionMNIST's 10,000 test images when Debian's ``dataset-fashion-mnist`` files are
present (the net is then trained briefly: 2 epochs on 10,000 training images), otherwise
10,000 synthetic 784-dim inputs (uniform pixels, random labels, untrained net). Both
paths use the same orders, counts and threads; "equal" means counts identical, losses
within 1e-4 relative, accuracies within 0.05% of the samples (5 near-tie predictions of
10,000 that float32 rounding may flip); the largest differences are printed.

Run:  python benchmarks/bench_ablation.py [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nifkit import ablation as A
from nifkit.info import counting_kernel_info  # noqa: E402
from nifkit.runtime import THREAD_ENV_VAR  # noqa: E402
from nifkit.models import mlp, train

CLAIM = 10.0


def data_and_model(seed: int = 0):
    from nifkit.data import load_fashion_mnist

    net = mlp([784, 256, 128, 10], activation="relu", seed=seed)
    try:
        d = load_fashion_mnist(n_train=10_000, seed=seed)
    except FileNotFoundError:
        g = torch.Generator().manual_seed(seed)
        X = torch.rand(10_000, 784, generator=g)
        y = torch.randint(0, 10, (10_000,), generator=g)
        return X, y, X, y, net, "synthetic uniform 784-dim inputs, random labels; untrained net"
    train(net, d, epochs=2, lr=1e-3, batch_size=128, seed=seed, progress=False)
    return (d.X_train, d.y_train, d.X_test, d.y_test, net,
            "FashionMNIST test set (10,000 images); net trained 2 epochs on 10,000 training images")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both paths (default 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ[THREAD_ENV_VAR] = str(args.threads)  # nifkit's thread policy: the same count
    print("counting kernel: not used here (the measures come from one joint bincount per layer; "
          f"pair counting would use {counting_kernel_info()})")

    Xtr, ytr, X, y, net, what = data_and_model()
    layers = A.hidden_layers(net)  # ['act1', 'act2']
    t = time.perf_counter()
    meas = A.neuron_measures(A.layer_activations(net, Xtr, layers), ytr, n_bins=16)
    t_meas = time.perf_counter() - t

    # nifkit: one engine, every curve of every layer
    t = time.perf_counter()
    study = A.ablation_study(net, (X, y), meas, layers, n_random=5, seed=0, value="zero")
    t_fast = time.perf_counter() - t
    n_steps = sum(len(c.counts) for c in study.curves)

    # the plain approach: same orders, one hooked forward pass from the input per step
    t = time.perf_counter()
    refs = [A.reference_ablation_curve(net, (X, y), c.layer, c.order, c.counts, c.value) for c in study.curves]
    t_plain = time.perf_counter() - t

    worst_acc = max(float(np.abs(c.accuracy - r.accuracy).max()) for c, r in zip(study.curves, refs))
    worst_loss = max(float(np.abs(c.loss - r.loss).max() / np.abs(r.loss).max()) for c, r in zip(study.curves, refs))
    checks = [A.curves_match(c, r, n_samples=len(X)) for c, r in zip(study.curves, refs)]
    equal = all(ok for ok, _ in checks)
    ratio = t_plain / t_fast
    out = {
        "date": time.strftime("%Y-%m-%d"), "data": what, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "curves": len(study.curves), "steps": n_steps,
        "layers": {n: meas[n].n_units for n in layers}, "samples": len(X),
        "base_accuracy": study.base_accuracy, "measures_s": t_meas, "nifkit_s": t_fast,
        "plain_s": t_plain, "ratio": ratio, "max_abs_acc_diff": worst_acc, "max_rel_loss_diff": worst_loss,
        "equal": equal,
    }
    print(f"data: {what}; base accuracy {study.base_accuracy:.4f}")
    print(f"{len(study.curves)} curves, {n_steps} steps in all, layers {out['layers']}, {len(X)} samples, "
          f"{args.threads} thread(s)")
    print(f"measures (H, I, selectivity of {sum(out['layers'].values())} neurons on {len(Xtr)} samples): "
          f"{t_meas:.2f} s")
    print(f"nifkit engine: {t_fast:.2f} s | plain hooked re-evaluation: {t_plain:.1f} s | "
          f"speed-up {ratio:.1f}x (claim >= {CLAIM:.0f}x)")
    print(f"max |accuracy diff| {worst_acc:.1e} ({worst_acc * len(X):.0f} predictions), "
          f"max relative loss diff {worst_loss:.1e}: {'equal' if equal else 'NOT EQUAL'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    if not equal:
        for (ok, msg), c in zip(checks, study.curves):
            if not ok:
                print("  mismatch:", c, msg)
    return 0 if (equal and ratio >= CLAIM) else 1


if __name__ == "__main__":
    raise SystemExit(main())
