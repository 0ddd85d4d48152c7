"""Claims (issue 22, chapter 7: your own network), absolute times and memory, so the
machine and its load are printed beside them:

(a) **all five lenses plus the single-channel knockout truth** on the chapter's residual
    CNN (``nifkit.models.residual_cnn``, 6 residual blocks, 16 channels, trained here on
    FashionMNIST, not part of the claim) in **under 5 minutes** on this 2-core machine:
    10,000 training images for the information lenses (NIF, relay, ordered ablation's
    measures, EI) and 2,000 test images for conductance and the knockouts (ablation's
    knockout column and the knockout truth); the time of each lens printed.
(b) a torchvision **ResNet-18** (random weights, 3x32x32 inputs, 2,000 images): every lens
    completes on the last block of each stage (``RESNET_LAYERS``); time and peak resident
    growth per lens (each lens in a fresh process).
(c) **streaming**: the NIF flow graph of the residual CNN over a ``DataLoader`` of 50,000
    images in batches of 500 stays within ``memory_budget`` (the default, 512 MiB: the graph
    keeps each node unit's reduced activity, 50,000 x 315 float64 = 126 MB, and bins it
    after the pass; peak resident growth of the call, measured in a fresh process, against
    the budget).

Run:  python benchmarks/bench_your_network.py [--part a|b|c|all] [--epochs 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from bench_capstone import machine  # noqa: E402

LIMIT_A = 300.0
LENS_TIMEOUT = 900  # seconds per ResNet-18 lens in (b)
#: (b)'s layers: the last block of each of ResNet-18's four stages (64, 128, 256 and 512
#: channels); the default, all eight blocks, makes NIF's graph of the whole network
#: (over a million edges) and EI of every conv around them
RESNET_LAYERS = ("layer1.1", "layer2.1", "layer3.1", "layer4.1")
LENSES = ("nif", "conductance", "relay", "ablation", "ei")
MiB = 2**20


def _trained_residual_cnn(epochs: int):
    from nifkit.data import load_fashion_mnist
    from nifkit.models import residual_cnn, train

    ds = load_fashion_mnist(n_train=10_000, n_test=2_000, flatten=False, seed=0)
    net = residual_cnn(channels=16, n_blocks=6, seed=0)
    t = time.perf_counter()
    res = train(net, ds, epochs=epochs, lr=3e-3, batch_size=128, seed=0, test_data=(ds.X_test, ds.y_test))
    print(f"residual CNN (6 blocks x 16 channels) trained {epochs} epochs on 10,000 FashionMNIST images in "
          f"{time.perf_counter() - t:.1f} s (not part of the claim); test accuracy {res.history['test_acc'][-1]:.3f}")
    return net, ds


def part_a(epochs: int) -> dict:
    from nifkit.compare import compare, knockout_truth

    net, ds = _trained_residual_cnn(epochs)
    seconds = {}
    t0 = time.perf_counter()
    # ablation's knockout column, like the knockout truth, on the 2,000 test images
    info = compare(net, (ds.X_train, ds.y_train), ["nif", "relay", "ablation", "ei"],
                   options={"ablation": {"knockout_data": (ds.X_test, ds.y_test)}})
    cond = compare(net, (ds.X_test, ds.y_test), ["conductance"])
    for comp in (info, cond):
        seconds.update(comp.seconds)
        for note in comp.notes:
            print("  note:", note)
    t = time.perf_counter()
    truth = knockout_truth(net, (ds.X_test, ds.y_test), k=1)
    seconds["knockout truth (k=1)"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    for name, s in seconds.items():
        print(f"  {name:22s} {s:7.1f} s")
    n_units = len(info.neurons)
    print(f"(a) {n_units} units ({len(set(a.layer for a in info.neurons))} layers); five lenses + knockout truth "
          f"({truth.n_sets}): {total:.1f} s (limit {LIMIT_A:.0f} s)")
    return {"seconds": seconds, "total": total, "ok": total < LIMIT_A}


_CHILD_B = r"""
import json, sys, time, torch, torchvision
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
from memory_probe import start_peak, peak
from nifkit.compare import compare, knockout_truth
torch.set_num_threads(1)
torch.manual_seed(0)
net = torchvision.models.resnet18(num_classes=10).eval()
X = torch.rand(2000, 3, 32, 32); y = torch.randint(0, 10, (2000,))
lens = {lens!r}
LAYERS = {layers!r}
base = start_peak(); t = time.perf_counter()
if lens == "knockout truth":
    out = knockout_truth(net, (X, y), k=1, layers=LAYERS)
    note = repr(out.n_sets)
else:
    out = compare(net, (X, y), [lens], layers=LAYERS)
    note = "; ".join(out.notes[-2:])
print(json.dumps({{"seconds": time.perf_counter() - t, "growth": peak() - base, "note": note}}))
"""


def part_b() -> dict:
    rows = {}
    for lens in LENSES + ("knockout truth",):
        code = _CHILD_B.format(tests=str(ROOT / "tests"), root=str(ROOT), lens=lens, layers=list(RESNET_LAYERS))
        try:
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=LENS_TIMEOUT)
        except subprocess.TimeoutExpired:
            rows[lens] = {"error": f"did not complete within {LENS_TIMEOUT} s"}
            print(f"  {lens:15s} did not complete within {LENS_TIMEOUT} s")
            continue
        if run.returncode != 0:
            rows[lens] = {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "failed"}
            print(f"  {lens:15s} FAILED: {rows[lens]['error']}")
            continue
        rows[lens] = json.loads(run.stdout.strip().splitlines()[-1])
        r = rows[lens]
        print(f"  {lens:15s} {r['seconds']:7.1f} s   peak growth {r['growth'] / MiB:7.0f} MiB   {r['note'][:90]}")
    ok = all("error" not in r for r in rows.values())
    print(f"(b) ResNet-18, 2,000 random 3x32x32 images: every lens completes: {ok}")
    return {"rows": rows, "ok": ok}


_CHILD_C = r"""
import json, sys, torch
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
from memory_probe import start_peak, peak
from torch.utils.data import DataLoader, TensorDataset
from nifkit.models import residual_cnn
from nifkit.nif import flow_graph
torch.set_num_threads(1)
net = residual_cnn(channels=16, n_blocks=6, seed=0).eval()
g = torch.Generator().manual_seed(0)
X = torch.rand(50_000, 1, 28, 28, generator=g, dtype=torch.float16)  # the data set's own storage
y = torch.randint(0, 10, (50_000,), generator=g)
class Images(torch.utils.data.Dataset):
    def __len__(self): return len(X)
    def __getitem__(self, i): return X[i].float(), y[i]
loader = DataLoader(Images(), batch_size=500)
flow_graph(net, DataLoader(TensorDataset(X[:1000].float(), y[:1000]), batch_size=500), memory_budget={budget})
base = start_peak()
fg = flow_graph(net, loader, memory_budget={budget})
print(json.dumps({{"growth": peak() - base, "n_samples": fg.n_samples, "dataset": X.numel() * 2}}))
"""


def part_c(budget_mib: int = 512) -> dict:
    code = _CHILD_C.format(tests=str(ROOT / "tests"), root=str(ROOT), budget=budget_mib * MiB)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        print("(c) FAILED:", run.stderr.strip()[-800:])
        return {"ok": False}
    r = json.loads(run.stdout.strip().splitlines()[-1])
    ok = r["growth"] <= 1.5 * budget_mib * MiB
    print(f"(c) flow graph over a DataLoader of {r['n_samples']:,} images (batches of 500): peak resident growth "
          f"{r['growth'] / MiB:.0f} MiB with memory_budget={budget_mib} MiB (limit 1.5x budget; the images "
          f"themselves hold {r['dataset'] / MiB:.0f} MiB as float16, float32 would be "
          f"{2 * r['dataset'] / MiB:.0f} MiB): {'holds' if ok else 'FAILS'}")
    return {**r, "budget": budget_mib * MiB, "ok": ok}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=("a", "b", "c", "all"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {info['flags']}, torch {info['torch']}, "
          f"load average {info['load'][0]:.1f}")
    out = {"machine": info}
    if args.part in ("a", "all"):
        out["a"] = part_a(args.epochs)
    if args.part in ("b", "all"):
        out["b"] = part_b()
    if args.part in ("c", "all"):
        out["c"] = part_c()
    print(f"load average after {os.getloadavg()[0]:.1f}")
    ok = all(v["ok"] for k, v in out.items() if k != "machine")
    print("claims hold" if ok else "a claim FAILS")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
