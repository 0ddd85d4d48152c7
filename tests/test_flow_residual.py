"""The NIF flow graph over traced tensors (issue 22): a chain gives the layered graph of
before exactly; a residual network gives a DAG with identity edges for its skip
connections; ResNet-18 units are scored; a DataLoader streams to the same graph; two
gloo processes give the graph of one; bad input gets clear errors."""
import os
import socket

import networkx as nx
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from nifkit.info import Binner, pairwise_mi
from nifkit.models import Neuron, hidden_neurons, mlp, residual_cnn, small_cnn
from nifkit.nif import flow_graph, flow_nodes, neuron_scores
from nifkit.record import record


def _mean_units(t: torch.Tensor, m: int) -> np.ndarray:
    """A plain channel mean: (N, C, ...) or channel-major flattened (N, C*P) -> (N, m)."""
    t = t.double()
    return t.reshape(len(t), m, -1).mean(2).numpy()


def _ref_mi(a, b, n_bins, binning="quantile"):
    return pairwise_mi(Binner(n_bins, binning).fit_transform(a), Binner(n_bins, binning).fit_transform(b),
                       n_bins=n_bins)


# ------------------------------------------------------------------------------ chains
def test_chain_graph_is_the_layered_graph_exactly():
    g = torch.Generator().manual_seed(0)
    net = mlp([6, 9, 7, 3], seed=1)
    X = torch.randn(500, 6, generator=g)
    cnn = small_cnn(1, (8, 8), channels=(3, 4), hidden=(5,), n_classes=2, seed=0)
    Xc = torch.rand(400, 1, 8, 8, generator=g)
    # the reference: one recording, each layer's units read where the next layer reads them
    rec = record(net, X, layers=["fc1", "fc2", "fc_out"], inputs=True, progress=False)
    acts = [X.double().numpy(), _mean_units(rec.inputs["fc2"], 9), _mean_units(rec.inputs["fc_out"], 7),
            _mean_units(rec.outputs, 3)]
    recc = record(cnn, Xc, layers=["conv1", "conv2", "fc1", "fc_out"], inputs=True, progress=False)
    actc = [_mean_units(Xc, 1), _mean_units(recc.inputs["conv2"], 3), _mean_units(recc.inputs["fc1"], 4),
            _mean_units(recc.inputs["fc_out"], 5), _mean_units(recc.outputs, 2)]
    for model, data, ref, layers, weights in (
            (net, X, acts, ["input", "act1", "act2", "fc_out"], ["fc1", "fc2", "fc_out"]),
            (cnn, Xc, actc, ["input", "act1", "act2", "act_fc1", "fc_out"], ["conv1", "conv2", "fc1", "fc_out"])):
        fg = flow_graph(model, data, n_bins=5, batch_size=64)
        assert fg.layers == layers == flow_nodes(model) and fg.weight_layers == weights and fg.is_chain
        assert fg.sizes == [a.shape[1] for a in ref] and fg.pairs == [(l, l + 1) for l in range(len(weights))]
        for l in range(len(weights)):
            mi = _ref_mi(ref[l], ref[l + 1], 5)
            np.testing.assert_array_equal(fg.mi[l], mi)
            np.testing.assert_array_equal(fg.flows[l], np.where(fg.connected[l], np.clip(mi, 0, None), 0.0))
            assert fg.connected[l].all()  # random weights: every connection is an edge
        assert fg.n_edges == sum(a.shape[1] * b.shape[1] for a, b in zip(ref, ref[1:]))


# ------------------------------------------------------------------------------ residual DAG
@pytest.fixture(scope="module")
def residual():
    model = residual_cnn(channels=4, n_blocks=2, seed=0)
    X = torch.rand(400, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    return model, X, flow_graph(model, X, n_bins=4)


def test_residual_graph_has_merge_nodes_and_identity_skip_edges(residual):
    model, X, fg = residual
    b1, b2 = "body.block1", "body.block2"
    assert fg.layers == ["input", "stem_act", f"{b1}.act1", f"{b1}.conv2", f"{b1}.act", f"{b2}.act1", f"{b2}.conv2",
                         f"{b2}.act", "fc_out"]
    assert fg.n_nodes == 1 + 7 * 4 + 10 and fg.graph.number_of_nodes() == 39
    assert fg.n_edges == 1 * 4 + 4 * 16 + 4 * 4 + 4 * 10 and fg.graph.number_of_edges() == fg.n_edges
    assert not fg.is_chain
    e = fg.graph.edges
    for c in range(4):
        assert e["stem_act:%d" % c, f"{b1}.act:{c}"]["weight_layer"] == "identity"     # the skip
        assert e[f"{b1}.conv2:{c}", f"{b1}.act:{c}"]["weight_layer"] == "identity"     # the residual branch
        assert e[f"{b1}.act:{c}", f"{b2}.act:{c}"]["weight"] == 1.0
        assert not fg.graph.has_edge("stem_act:%d" % c, f"{b1}.act:{(c + 1) % 4}")
    assert e["stem_act:1", f"{b1}.act1:3"]["weight_layer"] == f"{b1}.conv1"
    assert all(np.isfinite(f).all() and (f >= 0).all() for f in fg.flows)
    # the merge's activity is the block's output: its identity edges against a hand-made reference
    with torch.no_grad():
        stem = model.stem_act(model.stem(X))
        out1 = model.body.block1(stem)
    skip = fg.pairs.index((1, 4))
    ref = _ref_mi(_mean_units(stem, 4), _mean_units(out1, 4), 4)
    np.testing.assert_allclose(np.diag(fg.mi[skip]), np.diag(ref), atol=1e-12)
    assert np.diag(fg.flows[skip]).min() > 0.05  # the skip carries its channel's information


def _all_paths(fg, i, o):
    return nx.all_simple_paths(fg.graph, f"input:{i}", f"{fg.layers[-1]}:{o}")


def test_paths_attribution_and_betweenness_work_on_the_dag(residual):
    import matplotlib

    matplotlib.use("Agg")
    from nifkit.nif.plots import plot_flow_graph

    _, _, fg = residual
    fmax = fg.max_flow
    paths = fg.strongest_paths()
    flow = nx.get_edge_attributes(fg.graph, "flow")
    for o in (0, 7):
        brute = max(np.prod([flow[u, v] / fmax for u, v in zip(p, p[1:])]) for p in _all_paths(fg, 0, o))
        assert paths.value[0, o] == pytest.approx(brute, rel=1e-12)
        best = paths.path(0, o)
        assert np.prod([flow[u, v] / fmax for u, v in zip(best, best[1:])]) == pytest.approx(brute, rel=1e-12)
    # flow attribution: the share of the outputs' information from each input, summed over every path
    into = {v: sum(flow[u, v] for u in fg.graph.predecessors(v)) for v in fg.graph.nodes}
    share = sum(np.prod([flow[u, v] / into[v] for u, v in zip(p, p[1:])]) for o in range(10) for p in _all_paths(fg, 0, o))
    a = fg.attribution()
    assert a.per_target.sum() == pytest.approx(share, rel=1e-9) and a.scores.tolist() == [1.0]
    bt = fg.betweenness()
    assert bt["input:0"] == 0 and max(bt.values()) > 0 and len(bt) == fg.n_nodes
    assert len(fg.communities()) >= 1 and len(fg.table()) == len(fg.pairs)
    ax = plot_flow_graph(fg, highlight="body.block1.act:2", paths=[paths.path(0, 0)])
    assert len(ax.collections) >= 2
    matplotlib.pyplot.close("all")


def test_neuron_scores_of_a_residual_cnn_add_the_identity_edges(residual):
    model, X, fg = residual
    units = ["stem_act", "body.block1.act1", "body.block1.conv2", "body.block2.act1", "body.block2.conv2"]
    ns = neuron_scores(model, X, n_bins=4, layers=units)
    assert ns.neurons == hidden_neurons(model, units) and len(ns.neurons) == 5 * 4
    d = fg.layers.index("stem_act")
    # in: the stem's weights; out: block1.conv1's weights and the skip into the merge
    want = fg.flows[0].sum(0) + fg.flows[1].sum(1) + np.diag(fg.flows[fg.pairs.index((d, 4))])
    np.testing.assert_allclose(ns["flow"][:4], want, rtol=1e-12)
    part = neuron_scores(model, X, n_bins=4, layers=["body.block1.conv2"])
    np.testing.assert_allclose(part.score, ns.score[8:12], rtol=1e-12)
    # the default units of a residual network are its blocks: a block's units are the
    # merge node of its skip connection (the block's output), under the block's name
    blocks = neuron_scores(model, X, n_bins=4)
    assert [str(a) for a in blocks.neurons[:2]] == ["body.block1:0", "body.block1:1"]
    m = fg.layers.index("body.block1.act")
    want = sum(fg.flows[g].sum(0) for g in fg.groups_into(m)) + sum(fg.flows[g].sum(1) for g in fg.groups_from(m))
    np.testing.assert_allclose(blocks.score[:4], want, rtol=1e-12)


# ------------------------------------------------------------------------------ ResNet-18
def test_resnet18_scores_of_named_layers():
    from torchvision.models import resnet18

    model = resnet18(num_classes=10)
    X = torch.rand(160, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    layers = ["layer1.0.conv1", "layer2.0.downsample.1"]
    ns = neuron_scores(model, X, layers=layers, n_bins=4)
    assert ns.neurons == hidden_neurons(model, layers) and len(ns.neurons) == 64 + 128
    assert ns.neurons[0] == Neuron("layer1.0.conv1", 0) and str(ns.neurons[-1]) == "layer2.0.downsample.1:127"
    assert all(np.isfinite(v).all() for v in ns.columns.values()) and (ns.score >= 0).all()
    assert (ns.score > 0).mean() > 0.5  # a channel the ReLU keeps at 0 on every input carries nothing
    # the units of layer1.0.conv1 (after bn1 and the block's shared relu): in from the stem, out to conv2
    fg = flow_graph(model, X, layers=["layer1.0.conv1", "layer1.0.conv2"], n_bins=4)
    assert fg.layers == ["relu", "layer1.0.conv1", "layer1.0.bn2"]
    np.testing.assert_allclose(ns.score[:64], fg.flows[0].sum(0) + fg.flows[1].sum(1), rtol=1e-12)
    assert ns.raw.weight_layers.count("identity") == 1  # downsample.1 -> the merge layer2.0
    assert "layer2.0" in ns.raw.layers and "layer4.1" in flow_nodes(model)


# ------------------------------------------------------------------------------ streaming
@pytest.mark.parametrize("binning", ["quantile", "minmax", "fixed"])
def test_streaming_a_dataloader_equals_in_memory(residual, binning):
    model, X, fg = residual
    kw = dict(n_bins=4, binning=binning, bin_range=(0, 1) if binning == "fixed" else None)
    mem = fg if binning == "quantile" else flow_graph(model, X, **kw)
    loader = DataLoader(TensorDataset(X, torch.zeros(len(X), dtype=torch.long)), batch_size=37)
    st = flow_graph(model, loader, device="cpu", **kw)
    assert st.layers == mem.layers and st.pairs == mem.pairs and st.n_samples == mem.n_samples == 400
    for a, b, c, d in zip(st.mi, mem.mi, st.flows, mem.flows):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)


def test_channel_reduce_max_and_positions(residual):
    model, X, _ = residual
    fmax = flow_graph(model, X, n_bins=4, channel_reduce="max")
    with torch.no_grad():
        stem = model.stem_act(model.stem(X))
    ref = _ref_mi(X.amax((2, 3)).double().numpy(), stem.double().amax((2, 3)).numpy(), 4)
    np.testing.assert_allclose(fmax.mi[0], ref, atol=1e-12)
    x = X[:20]
    pos = flow_graph(model, x, n_bins=4, channel_reduce="positions", layers=["stem", "body.block1.conv1"])
    assert pos.n_samples == 20 * 144 and pos.settings["channel_reduce"] == "positions"
    with torch.no_grad():
        s = model.stem_act(model.stem(x))
    rows = s.double().flatten(2).transpose(1, 2).reshape(-1, 4).numpy()  # sample-major positions
    np.testing.assert_allclose(pos.mi[0], _ref_mi(x.double().reshape(-1, 1).numpy(), rows, 4), atol=1e-12)


# ------------------------------------------------------------------------------ two processes
def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, X = _dist_case()
        ds = TensorDataset(X, torch.zeros(len(X), dtype=torch.long))
        loader = DataLoader(ds, batch_size=50, sampler=DistributedSampler(ds, shuffle=False))
        out = {}
        for binning in ("minmax", "fixed"):
            fg = flow_graph(model, loader, n_bins=4, binning=binning, bin_range=(0, 1) if binning == "fixed" else None)
            out[binning] = np.concatenate([m.ravel() for m in fg.mi])
            out[binning + "_n"] = fg.n_samples
        odd = TensorDataset(X[:299], torch.zeros(299, dtype=torch.long))  # the sampler repeats one sample
        fg = flow_graph(model, DataLoader(odd, batch_size=64, sampler=DistributedSampler(odd, shuffle=True, seed=5)),
                        n_bins=4, binning="minmax")
        out["odd"], out["odd_n"] = np.concatenate([m.ravel() for m in fg.mi]), fg.n_samples
        fg = flow_graph(model, X, n_bins=4, binning="minmax")  # in memory: each process its share of the rows
        out["mem"], out["mem_n"] = np.concatenate([m.ravel() for m in fg.mi]), fg.n_samples
        errors = []
        for kw in (dict(binning="quantile"), dict(binning="minmax", significance=0.2, n_shuffles=9),
                   dict(estimator="gaussian")):
            try:
                flow_graph(model, loader, n_bins=4, **kw)
                errors.append("")
            except ValueError as exc:
                errors.append(str(exc))
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), errors=np.array(errors), **out)
    finally:
        dist.destroy_process_group()


def _dist_case():
    return residual_cnn(channels=3, n_blocks=2, seed=3), torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(4))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_give_the_graph_of_one(tmp_path):
    assert dist.is_available() and dist.is_gloo_available(), "this torch build has no gloo backend"
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    model, X = _dist_case()
    for binning in ("minmax", "fixed"):
        one = flow_graph(model, X, n_bins=4, binning=binning, bin_range=(0, 1) if binning == "fixed" else None)
        for rank in range(2):
            r = np.load(tmp_path / f"rank{rank}.npz")
            assert int(r[binning + "_n"]) == 300
            np.testing.assert_allclose(r[binning], np.concatenate([m.ravel() for m in one.mi]), atol=1e-12, rtol=0)
            if binning == "minmax":
                assert int(r["mem_n"]) == 300
                np.testing.assert_allclose(r["mem"], r[binning], atol=1e-12, rtol=0)
    one = flow_graph(model, X[:299], n_bins=4, binning="minmax")
    for rank in range(2):
        r = np.load(tmp_path / f"rank{rank}.npz")
        assert int(r["odd_n"]) == 299
        np.testing.assert_allclose(r["odd"], np.concatenate([m.ravel() for m in one.mi]), atol=1e-12, rtol=0)
    errors = np.load(tmp_path / "rank0.npz")["errors"]
    assert "binning='quantile' places each unit's edges at quantiles of all samples" in errors[0]
    assert "significance= shuffles the samples" in errors[1]
    assert "estimator='gaussian' cannot be split over processes" in errors[2]


# ------------------------------------------------------------------------------ bad input
def test_bad_input_gets_clear_errors(residual):
    model, X, _ = residual
    with pytest.raises(ValueError, match=r"layers: unknown layer 'body.block1.conv9'\. Did you mean"):
        flow_graph(model, X, layers=["body.block1.conv9"])
    with pytest.raises(ValueError, match=r"nodes \(the flow graph's node layers\): unknown layer 'body.block9.act'"):
        flow_graph(model, X, nodes=["body.block9.act"])
    with pytest.raises(ValueError, match="pass layers= .* or nodes= .*not both"):
        flow_graph(model, X, nodes=["stem_act"], layers=["stem"])
    with pytest.raises(ValueError, match=r"channel_reduce='median' is not a channel reduction.*'mean'"):
        flow_graph(model, X, channel_reduce="median")
    with pytest.raises(ValueError, match=r"channel_reduce='median' is not a channel reduction"):
        neuron_scores(model, X, channel_reduce="median")
    with pytest.raises(ValueError, match="'input' gives 57600 samples and 'body.block2.act' 400 .*channel_reduce='mean'"):
        flow_graph(model, X, channel_reduce="positions")
    with pytest.raises(ValueError, match=r"keeps one float64 per unit \(39 units\).*over memory_budget=0 MiB.*max_samples="):
        flow_graph(model, X, memory_budget=2**16)
    np.testing.assert_array_equal(neuron_scores(model, X, layers=["body.block1"], n_bins=4).score,
                                  neuron_scores(model, X, layers=["body.block1.act"], n_bins=4).score)
    with pytest.raises(ValueError, match=r"'cat' \(cat\) combines several tensors and is not an add"):
        flow_graph(_Concat(), torch.randn(50, 4))


class _Concat(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 3)
        self.c = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.b(torch.cat([torch.relu(self.a(x)), self.c(x)], 1))


def test_explorer_reads_a_merge_node(residual):
    from nifkit.nif import FlowExplorer

    model, X, fg = residual
    ex = FlowExplorer(model, X, n_bins=4)
    ex.controls["layer"].value = "body.block1.act"
    ex.controls["neuron"].value = 2
    r = ex.result
    d = fg.layers.index("body.block1.act")
    # in: the skip and the residual branch (identity edges); out: block2.conv1 and the next skip
    assert r.flow_in == pytest.approx(fg.flows[fg.pairs.index((1, d))][2, 2] + fg.flows[fg.pairs.index((3, d))][2, 2])
    assert r.flow_out == pytest.approx(sum(fg.flows[g][2].sum() for g in fg.groups_from(d)))
    assert "selected body.block1.act:2:" in ex.readout.text
    import matplotlib.pyplot as plt

    plt.close("all")


def test_neuron_scores_of_a_small_cnn_and_layers_without_a_node(monkeypatch):
    import nifkit.nif.scores as scores

    cnn = small_cnn(1, (8, 8), channels=(3, 4), hidden=(5,), n_classes=2, seed=0)
    X = torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    full = neuron_scores(cnn, X, n_bins=4, channel_reduce="max")
    assert full.neurons == hidden_neurons(cnn) and len(full.neurons) == 3 + 4 + 5
    assert full.raw.settings["channel_reduce"] == "max" and full.settings["channel_reduce"] == "max"
    fg = full.raw
    np.testing.assert_allclose(full.score[3:7], fg.flows[1].sum(0) + fg.flows[2].sum(1), rtol=1e-12)
    part = neuron_scores(cnn, X, n_bins=4, channel_reduce="max", layers=["act2"])
    np.testing.assert_allclose(part.score, full.score[3:7], rtol=1e-12)
    # a unit layer the flow graph has no node for (e.g. a block named by the units helper): a clear error
    monkeypatch.setattr(scores, "hidden_layout", lambda model, layers: [("block9", "conv9", "fc9")])
    with pytest.raises(ValueError, match="layers: the flow graph has no node layer for 'block9'.*input, act1, act2"):
        neuron_scores(cnn, X, n_bins=4)
