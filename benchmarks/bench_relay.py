"""Claims (chapter 3, relay information), on the composed 784-20-10 tanh network and the
5,000 MNIST digits of the offline subset (all of them: training and test split):

1. The greedy module search for all 10 classes is at least 50x faster with nifkit
   (one batched conditional-MI call per greedy step) than a Python loop over the
   candidate sets computing plug-in entropies with ``np.unique`` (the authors' way,
   :func:`nifkit.relay.reference_module_search`), with the same removal orders and
   curves (to 1e-12 bits).
2. Knockouts and ``I_R`` of all 2^20 subsets of the hidden layer for one class: measured
   in full (no extrapolation); aim: under 10 minutes on the 2-core machine. The run also
   prints the knockout regression over all 2^20 sets and the greedy-vs-exhaustive
   fractions for that class.

The network is trained here (sub-networks for at most ``--epochs`` epochs), nothing is
cached on disk. Run:  python benchmarks/bench_relay.py [--cls 0] [--json out.json]
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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nifkit.data import load_mnist  # noqa: E402
from nifkit.info import binarize  # noqa: E402
from nifkit.intervene import Knockouts  # noqa: E402
from nifkit.relay import (  # noqa: E402
    compose,
    exhaustive_relay,
    greedy_vs_exhaustive,
    knockout_regression,
    module_search,
    reference_module_search,
    train_one_vs_rest,
    true_modules,
)
from nifkit.relay.measures import popcount  # noqa: E402

CLAIM = 50.0
AIM_SECONDS = 600.0


def machine() -> dict:
    cpu = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), cpu)
    except OSError:
        pass
    flags = sorted({f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512f", "avx512_vnni")})
    return {"cpu": cpu, "flags": flags, "cores": os.cpu_count(), "torch": torch.__version__,
            "load_before": os.getloadavg()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cls", type=int, default=0, help="class of the 2^20 run (default 0)")
    ap.add_argument("--epochs", type=int, default=60, help="max epochs of the sub-networks")
    ap.add_argument("--skip-all", action="store_true", help="only the greedy claim")
    ap.add_argument("--skip-reference", action="store_true",
                    help="skip the slow np.unique loop (claim 1 is then not checked)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {info['flags']}, torch {info['torch']}, "
          f"load average before {info['load_before']}")

    ds = load_mnist()
    t = time.perf_counter()
    sub = train_one_vs_rest(ds, max_epochs=args.epochs, seed=0)
    net = compose(sub)
    X = torch.cat([ds.split("train")[0], ds.split("test")[0]])
    y = torch.cat([ds.split("train")[1], ds.split("test")[1]]).numpy()
    ev = Knockouts(net, (X, y)).readout("act1")
    codes = binarize(ev.H.numpy())
    pred = ev.base_predicted
    print(f"network: {sub!r}; trained + recorded in {time.perf_counter() - t:.1f} s; {len(y)} samples, "
          f"accuracy {np.mean(pred == y):.4f}, {len(np.unique(codes, axis=0))} distinct hidden patterns")

    # 1. greedy search, all classes, side by side
    t = time.perf_counter()
    fast = module_search(codes, y, pred)
    t_fast = time.perf_counter() - t
    rec = fast.recovered(true_modules(sub))
    result = {"machine": info, "greedy_nifkit_s": t_fast, "recovered": int(sum(rec.values()))}
    ok = True
    if not args.skip_reference:
        t = time.perf_counter()
        ref = reference_module_search(codes, y, pred)
        t_ref = time.perf_counter() - t
        same = bool(np.array_equal(fast.order, ref.order))
        diff = float(np.max(np.abs(fast.curve - ref.curve)))
        ratio = t_ref / t_fast
        print(f"greedy, 10 classes x 20 neurons: nifkit {t_fast:.3f} s, np.unique loop {t_ref:.1f} s, "
              f"speed-up {ratio:.0f}x; same orders: {same}; max |curve diff| {diff:.1e} bits; "
              f"true modules recovered: {sum(rec.values())}/10")
        result.update({"greedy_reference_s": t_ref, "greedy_speedup": ratio, "same_orders": same,
                       "max_curve_diff": diff})
        ok = ratio >= CLAIM and same and diff < 1e-12
    else:
        print(f"greedy, 10 classes x 20 neurons: nifkit {t_fast:.3f} s (reference skipped); "
              f"true modules recovered: {sum(rec.values())}/10")

    if not args.skip_all:
        c = args.cls
        t = time.perf_counter()
        acc = ev.all_subsets(c)
        t_ko = time.perf_counter() - t
        t = time.perf_counter()
        relay = exhaustive_relay(codes, y, pred, c)
        t_ir = time.perf_counter() - t
        total = t_ko + t_ir
        size = popcount(np.arange(1 << 20))
        fit = knockout_regression(acc, relay, size)
        frac = greedy_vs_exhaustive(fast, relay, c)
        print(f"all 2^20 subsets, class {c} (full run): knockouts {t_ko:.1f} s "
              f"({(1 << 20) * len(y) / t_ko / 1e6:.1f} M set-samples/s), I_R {t_ir:.1f} s, total {total:.1f} s "
              f"(aim {AIM_SECONDS:.0f} s: {'met' if total < AIM_SECONDS else 'NOT met'})")
        print(f"  regression over 2^20 sets: I_R coef {fit['I_R']:.3f} (t {fit.t[1]:.0f}), size coef "
              f"{fit['size']:.3f} (t {fit.t[2]:.0f}), R^2 {fit.r2:.3f}")
        print(f"  greedy vs exhaustive, % of same-size subsets beating greedy: "
              + ", ".join(f"{k + 1}:{100 * f:.2f}" for k, f in enumerate(frac)))
        result.update({"cls": c, "knockouts_s": t_ko, "relay_all_s": t_ir, "total_all_s": total,
                       "regression": fit.table(), "r2": fit.r2, "greedy_vs_exhaustive": frac.tolist()})
    result["load_after"] = os.getloadavg()
    print(f"load average after {result['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    print("claim holds" if ok else "CLAIM FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
