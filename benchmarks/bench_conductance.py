"""Claim: conductance of all 16 blocks of the pretrained EfficientNet-Lite0 is at least 8x
faster with nifkit's ``layer_conductance`` (one interpolation batch, one backward pass
for all layers) than with Captum's ``LayerConductance`` called once per block, with
equal values.

Both sides: the same photos (foolbox's ImageNet photos, EfficientNet preprocessing),
the same zero baseline, true-class logit targets, steps and alpha rule (Captum's default
Gauss–Legendre), the same torch threads, after one untimed warm-up call. nifkit runs twice: with one chunk holding the
whole interpolation batch, as Captum's single call does (values must equal Captum's to
1e-5 x max(1, max |value|)), and with its default memory budget (``nifkit.config.PATH_MEMORY_BUDGET``, 64 MiB since 2026-12; chunks sharing
end points, inputs in batches), whose tiny differences come from float32 rounding in
batches of another size; for scale, Captum against itself with ``internal_batch_size``
is printed for one block.

Run:  python benchmarks/bench_conductance.py [--photos 4] [--steps 16] [--size 128]
      [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nifkit.conductance import layer_conductance  # noqa: E402
from nifkit.conductance.zoo import load_imagenet_setup  # noqa: E402

CLAIM = 8.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--size", type=int, default=128, help="crop size in pixels (224 is the model's own)")
    ap.add_argument("--method", default="gausslegendre")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from captum.attr import LayerConductance

    model, photos = load_imagenet_setup(online=False, n_images=args.photos, size=args.size)
    x, y = photos.X, photos.y
    names = [f"_blocks.{i}" for i in range(16)]
    mods = dict(model.named_modules())
    kw = dict(baselines="zeros", target="true", labels=y, steps=args.steps, method=args.method,
              num_threads=args.threads)
    # warm-up, untimed: one Captum call builds the kernels for the interpolation batch's shapes,
    # which both sides then use (nifkit's one chunk has the same shapes as Captum's call)
    LayerConductance(model, mods[names[0]]).attribute(x, baselines=0, target=y, n_steps=args.steps,
                                                      method=args.method)

    t = time.perf_counter()
    one = layer_conductance(model, x, names, chunk_steps=args.steps, batch_size=len(x), **kw)
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    chunked = layer_conductance(model, x, names, **kw)
    t_chunked = time.perf_counter() - t

    t = time.perf_counter()
    ref = {}
    for n in names:
        ref[n] = LayerConductance(model, mods[n]).attribute(x, baselines=0, target=y, n_steps=args.steps,
                                                             method=args.method).detach()
    t_captum = time.perf_counter() - t
    self_diff = (LayerConductance(model, mods[names[8]]).attribute(
        x, baselines=0, target=y, n_steps=args.steps, method=args.method,
        internal_batch_size=2 * len(x)).detach() - ref[names[8]]).abs().max().item()

    scale = max(1.0, max(float(r.abs().max()) for r in ref.values()))
    diff_one = max(float((one[n] - ref[n]).abs().max()) for n in names)
    diff_chunked = max(float((chunked[n] - ref[n]).abs().max()) for n in names)
    equal = diff_one <= 1e-5 * scale
    speedup = t_captum / t_one
    out = {
        "claim": CLAIM, "photos": len(x), "size": args.size, "steps": args.steps, "method": args.method,
        "threads": args.threads, "layers": len(names), "captum_s": round(t_captum, 2),
        "nifkit_one_chunk_s": round(t_one, 2), "nifkit_default_budget_s": round(t_chunked, 2),
        "chunking": f"{chunked.settings['chunk_steps']} steps x {chunked.settings['batch_size']} inputs",
        "speedup": round(speedup, 2), "speedup_default_budget": round(t_captum / t_chunked, 2),
        "max_abs_value": scale, "max_abs_diff_one_chunk": diff_one, "max_abs_diff_default_budget": diff_chunked,
        "captum_vs_captum_internal_batch": self_diff, "equal": equal,
        "torch": torch.__version__, "python": platform.python_version(),
    }
    print(json.dumps(out, indent=1))
    print(f"\nCaptum LayerConductance x16 blocks: {t_captum:.1f} s; nifkit all blocks at once: {t_one:.1f} s "
          f"(one chunk), {t_chunked:.1f} s (default budget, {out['chunking']})")
    print(f"speed-up {speedup:.1f}x (claim >= {CLAIM:.0f}x); max |diff| {diff_one:.2e} (one chunk), "
          f"{diff_chunked:.2e} (default budget; Captum vs itself with internal_batch_size: {self_diff:.2e})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    ok = speedup >= CLAIM and equal
    print("claim holds" if ok else "CLAIM FAILS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
