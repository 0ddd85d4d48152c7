"""Streaming equals in memory (issue 22, point 3): neuron measures, relay counts and the
knockout truth read a DataLoader batch by batch and must give exactly what the in-memory
functions give on the recorded activations of the same samples."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from nifkit.ablation import neuron_measures
from nifkit.ablation.measures import model_neuron_measures
from nifkit.compare import knockout_truth
from nifkit.data.stream import iter_batches
from nifkit.info import Binner, binarize
from nifkit.models import mlp, small_cnn
from nifkit.record import record
from nifkit.relay import module_search
from nifkit.relay.measures import model_module_search


def _mlp_data(n=403, width=6):
    torch.manual_seed(0)
    model = mlp([8, width, 5, 3])
    X = torch.randn(n, 8)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return model, X, y, DataLoader(TensorDataset(X, y), batch_size=50)


def _cnn_data():
    torch.manual_seed(1)
    model = small_cnn(channels=(4, 6))
    X = torch.randn(150, 1, 8, 8)
    y = torch.randint(0, 10, (150,))
    return model, X, y, DataLoader(TensorDataset(X, y), batch_size=32)


@pytest.mark.parametrize("kw", [{"binning": "minmax"}, {"binning": "fixed", "bin_range": (0.0, 2.0)}])
def test_neuron_measures_stream_equals_in_memory_mlp(kw):
    model, X, y, loader = _mlp_data()
    got = model_neuron_measures(model, loader, device="cpu", **kw)
    rec = record(model, loader, ["act1", "act2"])
    ref = neuron_measures({n: rec.flat(n) for n in ["act1", "act2"]}, rec.targets, **kw)
    for n in ("act1", "act2"):
        np.testing.assert_array_equal(got[n].counts, ref[n].counts)
        for m in ("entropy", "mi", "selectivity"):
            np.testing.assert_array_equal(got[n].get(m), ref[n].get(m))
    # a plain reference for one unit: min-max bins of its recorded values, counted per class
    a = rec.flat("act1")[:, 2].double().numpy()
    lo, hi = a.min(), a.max()
    if kw["binning"] == "fixed":
        lo, hi = kw["bin_range"]
    codes = np.clip(np.floor((a - lo) / ((hi - lo) / 8)), 0, 7).astype(int)
    plain = np.zeros((8, 3), int)
    np.add.at(plain, (codes, y.numpy()), 1)
    np.testing.assert_array_equal(got["act1"].counts[2], plain)
    assert got.settings["n_samples"] == len(X)


@pytest.mark.parametrize("channel_reduce", ["mean", "max", "positions"])
def test_neuron_measures_stream_equals_in_memory_cnn(channel_reduce):
    model, X, y, loader = _cnn_data()
    got = model_neuron_measures(model, loader, n_bins=4, channel_reduce=channel_reduce, device="cpu")
    rec = record(model, loader, ["act1", "act2"])
    for n, channels in (("act1", 4), ("act2", 6)):
        a = rec.flat(n, per_channel=True, channel_reduce=channel_reduce)
        labels = rec.targets.repeat_interleave(len(a) // len(y))
        ref = neuron_measures({n: a}, labels, n_bins=4)
        assert got[n].counts.shape == (channels, 4, 10)
        np.testing.assert_array_equal(got[n].counts, ref[n].counts)
        np.testing.assert_array_equal(got[n].mi, ref[n].mi)


def test_neuron_measures_binners_and_quantile():
    model, X, y, loader = _mlp_data()
    rec = record(model, loader, ["act1"])
    fitted = Binner(6).fit(rec.flat("act1"))
    got = model_neuron_measures(model, loader, ["act1"], binning=fitted)
    np.testing.assert_array_equal(got["act1"].counts, neuron_measures(rec.flat("act1"), y, "act1",
                                                                      binning=fitted)["act1"].counts)
    with pytest.raises(ValueError, match="quantile.*cannot be counted batch by batch"):
        model_neuron_measures(model, loader, binning="quantile")
    mem = model_neuron_measures(model, (X, y), ["act1"], binning="quantile")  # in memory: recorded, then quantiles
    np.testing.assert_array_equal(mem["act1"].counts, neuron_measures(rec.flat("act1"), y, "act1",
                                                                      binning="quantile")["act1"].counts)
    with pytest.raises(ValueError, match="no labels"):
        model_neuron_measures(model, DataLoader(TensorDataset(X), batch_size=50))


@pytest.mark.parametrize("binning", ["kmeans2", "median", "threshold"])
def test_relay_stream_equals_in_memory(binning):
    for model, X, y, loader in (_mlp_data(), _cnn_data()):
        got = model_module_search(model, loader, binning=binning, device="cpu")
        name = got.settings["layer"]
        rec = record(model, loader, [name])
        codes = binarize(rec.flat(name, per_channel=True).float().numpy(), binning)
        ref = module_search(codes, rec.targets.numpy(), rec.outputs.argmax(1).numpy())
        np.testing.assert_array_equal(got.classes, ref.classes)
        np.testing.assert_array_equal(got.order, ref.order)
        np.testing.assert_array_equal(got.curve, ref.curve)
        assert got.settings["n_samples"] == len(X)


def test_relay_wide_layer_keeps_rows():
    """64 binary units + two labels need more than 62 key bits: rows are kept instead."""
    model, X, y, loader = _mlp_data(n=300, width=64)
    got = model_module_search(model, loader, layer="act1", classes=[0, 1])
    rec = record(model, loader, ["act1"])
    ref = module_search(binarize(rec.flat("act1").numpy()), y.numpy(), rec.outputs.argmax(1).numpy(), [0, 1])
    np.testing.assert_array_equal(got.order, ref.order)
    np.testing.assert_array_equal(got.curve, ref.curve)


@pytest.mark.parametrize("value", ["zero", "mean"])
def test_knockout_truth_stream_equals_in_memory(value):
    model, X, y, loader = _mlp_data()
    mem = knockout_truth(model, (X, y), k=2, value=value, device="cpu")
    got = knockout_truth(model, loader, k=2, value=value, device="cpu")
    assert got.settings["streamed"] and not mem.settings["streamed"]
    assert got.base_accuracy == mem.base_accuracy == float((model(X).argmax(1) == y).double().mean())
    np.testing.assert_array_equal(got.drop, mem.drop)
    np.testing.assert_array_equal(got.class_drop, mem.class_drop)
    np.testing.assert_array_equal(got.set_drop, mem.set_drop)
    assert got.best_sets == mem.best_sets
    np.testing.assert_array_equal(got.set_accuracy_drop([[0, 1], [2, 7]]), mem.set_accuracy_drop([[0, 1], [2, 7]]))
    # the means of all the data (float64 sums), not of a batch
    np.testing.assert_allclose(got.knockouts.means["act1"].numpy(), model[:2](X).mean(0).detach().numpy(), atol=1e-6)
    # a plain reference: unit 3 of act1 at zero, by a hand-written forward
    if value == "zero":
        h = model[:2](X).detach()
        h[:, 3] = 0
        acc = float((model[2:](h).argmax(1) == y).double().mean())
        assert got.drop[3] == pytest.approx(mem.base_accuracy - acc, abs=1e-12)


def test_iter_batches_drops_the_repeats_of_a_padded_distributed_sampler():
    ds = TensorDataset(torch.arange(11.0)[:, None], torch.zeros(11, dtype=torch.long))
    seen = []
    for rank in range(3):  # 11 samples on 3 processes: the sampler repeats one sample
        sampler = DistributedSampler(ds, num_replicas=3, rank=rank, shuffle=True, seed=4)
        loader = DataLoader(ds, batch_size=2, sampler=sampler)
        seen += [int(v) for x, _ in iter_batches(loader) for v in x[:, 0]]
    assert sorted(seen) == list(range(11))


def test_bad_input_is_named():
    model, X, y, loader = _mlp_data()
    with pytest.raises(ValueError, match="act3"):
        model_neuron_measures(model, loader, ["act3"])
    with pytest.raises(ValueError, match="channel_reduce"):
        model_neuron_measures(model, loader, channel_reduce="median")
    with pytest.raises(ValueError, match="binning must be 'kmeans2', 'median' or 'threshold'"):
        model_module_search(model, loader, binning="minmax")
    with pytest.raises(ValueError, match="fixed.*needs bin_range"):
        model_neuron_measures(model, loader, binning="fixed")
