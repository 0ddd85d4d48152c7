"""Counts across processes: two gloo processes on 127.0.0.1 each count half of the
data, reduce, and must get exactly the counts (and the MI) of one process on all of it."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _data():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 4, size=(1000, 5))
    b = (a[:, :3] + rng.integers(0, 2, size=(1000, 3))) % 4
    y = (a[:, 0] + rng.integers(0, 2, size=1000)) % 3
    return a, b, y


def _count(a, b, y):
    from nifkit.info import KeyCounts, LabelCounts, PairCounts, PairwiseMI, pack_keys

    return (PairCounts(4).update(a, b), LabelCounts(4, 3).update(a, y),
            KeyCounts().update(pack_keys(a[:, :3], 4)), PairwiseMI(n_bins=4).update(a, b))


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from nifkit.info import reduce_across_processes

        a, b, y = _data()
        shard = slice(rank * len(a) // world, (rank + 1) * len(a) // world)
        pc, lc, kc, pm = (reduce_across_processes(c) for c in _count(a[shard], b[shard], y[shard]))
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), joint=pc.joint.numpy(), n=pc.n, table=lc.table.numpy(),
                 keys=kc.keys.numpy(), kcounts=kc.counts.numpy(), mi=pc.mi().numpy(), pmi=pm.mi())
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_give_the_counts_of_one(tmp_path):
    # the pinned torch has gloo; a build without it cannot reduce counts on CPUs, so fail
    assert dist.is_available() and dist.is_gloo_available(), "this torch build has no gloo backend"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    pc, lc, kc, pm = _count(*_data())
    for rank in range(2):
        r = np.load(tmp_path / f"rank{rank}.npz")
        assert int(r["n"]) == 1000
        np.testing.assert_array_equal(r["joint"], pc.joint.numpy())
        np.testing.assert_array_equal(r["table"], lc.table.numpy())
        np.testing.assert_array_equal(r["keys"], kc.keys.numpy())
        np.testing.assert_array_equal(r["kcounts"], kc.counts.numpy())
        np.testing.assert_allclose(r["mi"], pc.mi().numpy(), atol=1e-12)
        np.testing.assert_allclose(r["pmi"], pm.mi(), atol=1e-12)
