"""Peak-RSS probe of a streamed measure (tests/test_stream_memory.py): in this fresh
process, ``model_neuron_measures`` of a small CNN over a DataLoader of ``N`` 28x28 images
in batches of 500; prints JSON ``{"growth", "forward", "images", "reduced", "seconds"}`` (bytes; ``forward``: the
peak growth of the model's own forward pass on one batch, measured the same way first).
The images are built before the baseline (they are the input); growth is measured as in
tests/memory_probe.py (``start_peak`` / ``peak``) after a warm-up call on 1,000 images."""
from __future__ import annotations

import json
import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from memory_probe import cnn, peak, release, start_peak

torch.set_num_threads(1)


def flow(n: int) -> None:
    """``flow_graph`` of a residual CNN (16 channels, 6 blocks) over a DataLoader of ``n``
    28x28 images: it keeps each node unit's reduced activity (float64), nothing else per
    sample; ``kept`` is that activity's bytes."""
    from nifkit.models import residual_cnn
    from nifkit.nif import flow_graph

    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    model = residual_cnn(channels=16, n_blocks=6, seed=0)
    flow_graph(model, DataLoader(TensorDataset(images[:1000], labels[:1000]), batch_size=500), binning="minmax")
    loader = DataLoader(TensorDataset(images, labels), batch_size=500)
    release()
    before = start_peak()
    with torch.no_grad():
        model(images[:500].clone())
    forward = peak() - before
    release()
    before = start_peak()
    fg = flow_graph(model, loader, binning="minmax")
    growth = peak() - before
    print(json.dumps({"n": n, "growth": growth, "forward": forward, "kept": n * sum(fg.sizes) * 8}), flush=True)


def main():
    from nifkit.ablation import model_neuron_measures

    n, binning = int(sys.argv[1]), sys.argv[2]
    if binning == "flow":
        return flow(n)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    model = cnn()
    kw = {"binning": binning, "bin_range": (0.0, 1.0)} if binning == "fixed" else {"binning": binning}
    model_neuron_measures(model, DataLoader(TensorDataset(images[:1000], labels[:1000]), batch_size=500), **kw)
    loader = DataLoader(TensorDataset(images, labels), batch_size=500)
    release()
    before = start_peak()
    with torch.no_grad():  # what the model's own forward on one batch takes (the bound's batch term)
        model(images[:500].clone())
    forward = peak() - before
    release()
    before = start_peak()
    t0 = time.perf_counter()
    out = model_neuron_measures(model, loader, **kw)
    seconds = time.perf_counter() - t0
    growth = peak() - before
    channels = sum(m.n_units for m in out)
    print(json.dumps({"n": n, "binning": binning, "growth": growth, "images": images.nbytes,
                      "reduced": n * channels * 4, "forward": forward, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
