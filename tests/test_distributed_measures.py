"""The model-level measures across processes (issue 22, point 3): two gloo processes on
127.0.0.1 each read their DistributedSampler shard of one DataLoader (301 samples: the
sampler repeats one, which must not be counted twice), reduce, and must get exactly what
one process gets over the whole loader: neuron measures (min-max bins from all-reduced
extrema), relay counts (kmeans2 thresholds over all processes) and the knockout truth."""
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def _setting():
    from nifkit.models import mlp

    g = torch.Generator().manual_seed(3)
    X = torch.randn(301, 8, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return mlp([8, 6, 5, 3], seed=0), TensorDataset(X, y)


def _measure(model, loader) -> dict:
    from nifkit.ablation import model_neuron_measures
    from nifkit.compare import knockout_truth
    from nifkit.relay import model_module_search

    nm = model_neuron_measures(model, loader, n_bins=6)
    rs = model_module_search(model, loader, binning="kmeans2")
    kt = knockout_truth(model, loader, k=2, value="mean")
    return {"counts1": nm["act1"].counts, "counts2": nm["act2"].counts, "mi2": nm["act2"].mi,
            "n": nm.settings["n_samples"], "order": rs.order, "curve": rs.curve, "relay_n": rs.settings["n_samples"],
            "drop": kt.drop, "set_drop": kt.set_drop, "class_drop": kt.class_drop, "base": kt.base_accuracy}


def _in_memory(model, ds):
    from nifkit.ablation import model_neuron_measures

    return model_neuron_measures(model, ds.tensors, ["act2"], binning="fixed", bin_range=(0, 1))["act2"].counts


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, ds = _setting()
        sampler = DistributedSampler(ds, shuffle=True, seed=5)
        out = _measure(model, DataLoader(ds, 40, sampler=sampler))
        out["memory_counts2"] = _in_memory(model, ds)  # (X, y) in memory: each process takes its share
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **out)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_measure_what_one_process_measures(tmp_path):
    assert dist.is_available() and dist.is_gloo_available(), "this torch build has no gloo backend"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    model, ds = _setting()
    one = _measure(model, DataLoader(ds, batch_size=40))
    one["memory_counts2"] = _in_memory(model, ds)
    assert one["n"] == one["relay_n"] == 301
    for rank in range(2):
        r = np.load(tmp_path / f"rank{rank}.npz")
        for key, want in one.items():
            np.testing.assert_array_equal(r[key], want, err_msg=f"rank {rank}: {key}")
