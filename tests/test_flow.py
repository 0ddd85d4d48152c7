"""NIF chapter: the flow graph, its estimators, network science, errors, widget."""
from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from nifkit.data import make_planted
from nifkit.nif import (
    attribution,
    check_flow_attribution,
    flow_graph,
    flow_layers,
    flow_nodes,
    strongest_paths,
)
from nifkit.info import (
    Binner,
    gaussian_mi,
    gaussian_mi_analytic,
    gaussian_mi_pairs,
    ksg_mi,
    ksg_mi_pairs,
    pairwise_mi,
)
from nifkit.models import Neuron, mlp, small_cnn, train, walk
from nifkit.record import record


@pytest.fixture(scope="module")
def planted():
    """10 standard-normal features, label from features 2, 5 and 7 (not the first three,
    so index order cannot pass the test by accident); a trained 10-16-16-2 ReLU MLP."""
    d = make_planted(2000, 10, informative=[2, 5, 7], seed=1)
    model = mlp([10, 16, 16, 2], seed=0)
    res = train(model, d, epochs=30, lr=3e-3, progress=False, seed=0)
    assert res.history["test_acc"][-1] > 0.95
    return d, model


def _rand_mlp(sizes, seed=0):
    return mlp(sizes, seed=seed)


# ------------------------------------------------------------------------------ structure
def test_graph_structure_of_known_mlp(tmp_path):
    model = _rand_mlp([4, 5, 3, 2])
    X = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, n_bins=4)
    # nodes: the walker's units names (one neuron vocabulary); edges: the weight layers
    assert fg.layers == ["input", "act1", "act2", "fc_out"] == ["input"] + [lay.units for lay in walk(model).layers]
    assert fg.weight_layers == ["fc1", "fc2", "fc_out"] == flow_layers(model)
    assert fg.sizes == [4, 5, 3, 2]
    g = fg.graph
    assert g.number_of_nodes() == fg.n_nodes == 14
    assert g.number_of_edges() == fg.n_edges == 4 * 5 + 5 * 3 + 3 * 2
    assert g.nodes["act1:3"] == {"layer": "act1", "depth": 1, "index": 3, "name": "act1:3", "label": "act1:3"}
    assert "fc1:3" not in g and str(Neuron("act2", 1)) in g
    # edges only between adjacent layers, in the direction of the data
    assert all(g.nodes[v]["depth"] == g.nodes[u]["depth"] + 1 for u, v in g.edges)
    e = g.edges["input:1", "act1:2"]
    assert set(e) == {"weight_layer", "mi", "weight", "flow"} and e["weight_layer"] == "fc1"
    assert {d for _, _, d in g.edges(data="weight_layer")} == {"fc1", "fc2", "fc_out"}
    assert g.edges["act2:2", "fc_out:1"]["weight"] == pytest.approx(abs(model.fc_out.weight[1, 2].item()))
    assert e["weight"] == pytest.approx(abs(model.fc1.weight[2, 1].item()))
    assert e["mi"] == pytest.approx(fg.mi[0][1, 2]) and e["flow"] == pytest.approx(max(fg.mi[0][1, 2], 0))
    np.testing.assert_allclose(fg.weights[1], model.fc2.weight.detach().abs().numpy().T)
    # GraphML round trip keeps every node, edge and attribute
    path = tmp_path / "flow.graphml"
    fg.to_graphml(path)
    back = nx.read_graphml(path)
    assert set(back.nodes) == set(g.nodes) and set(back.edges) == set(g.edges)
    assert back.nodes["act2:1"]["layer"] == "act2" and back.nodes["act2:1"]["index"] == 1
    assert back.edges["act1:4", "act2:0"]["weight_layer"] == "fc2"
    assert back.graph["layers"] == "input,act1,act2,fc_out" and back.graph["weight_layers"] == "fc1,fc2,fc_out"
    for u, v, d in g.edges(data=True):
        assert back.edges[u, v]["weight_layer"] == d["weight_layer"]
        for k in ("mi", "weight", "flow"):
            assert back.edges[u, v][k] == pytest.approx(d[k], abs=1e-12)
    assert back.graph["estimator"] == "binned" and back.graph["n_samples"] == 400


def test_zero_weights_are_not_edges_and_weight_scale():
    model = _rand_mlp([4, 5, 2])
    with torch.no_grad():
        model.fc1.weight[0, :] = 0.0       # unit act1:0 reads nothing
        model.fc_out.weight[1, 3] = 0.0    # one pruned connection
    X = torch.randn(300, 4, generator=torch.Generator().manual_seed(1))
    fg = flow_graph(model, X, n_bins=4, weight_scale=True)
    assert fg.n_edges == 4 * 5 + 5 * 2 - 4 - 1
    assert not fg.graph.has_edge("input:2", "act1:0") and not fg.graph.has_edge("act1:3", "fc_out:1")
    assert fg.graph.has_edge("input:2", "act1:1") and fg.graph.has_edge("act1:2", "fc_out:1")
    f = fg.flows[0]
    np.testing.assert_allclose(f, np.clip(fg.mi[0], 0, None) * model.fc1.weight.detach().abs().numpy().T)


def test_edge_mi_equals_pairwise_mi():
    model = _rand_mlp([6, 8, 7, 3], seed=2)
    X = torch.randn(700, 6, generator=torch.Generator().manual_seed(2))
    for binning in ("quantile", "minmax"):
        fg = flow_graph(model, X, n_bins=6, binning=binning)
        rec = record(model, X, layers=["fc1", "fc2", "fc_out"], inputs=True, progress=False)
        acts = [X.numpy(), rec.inputs["fc2"].numpy(), rec.inputs["fc_out"].numpy(), rec.outputs.numpy()]
        codes = [Binner(6, binning).fit_transform(a) for a in acts]
        for l in range(3):
            ref = pairwise_mi(codes[l], codes[l + 1], n_bins=6)
            assert np.abs(fg.mi[l] - ref).max() <= 1e-12
        assert fg.graph.edges["act1:4", "act2:6"]["mi"] == pytest.approx(
            pairwise_mi(codes[1], codes[2], n_bins=6)[4, 6], abs=1e-12)


def test_cnn_channels_are_nodes():
    model = small_cnn(1, (8, 8), channels=(3, 4), hidden=(5,), n_classes=2, seed=0)
    with torch.no_grad():
        model.conv2.weight[1, 2] = 0.0     # channel act1:2 no longer feeds act2:1
    X = torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, n_bins=4)
    assert fg.layers == ["input", "act1", "act2", "act_fc1", "fc_out"]
    assert fg.weight_layers == ["conv1", "conv2", "fc1", "fc_out"]
    assert fg.sizes == [1, 3, 4, 5, 2]
    assert fg.n_edges == 1 * 3 + 3 * 4 - 1 + 4 * 5 + 5 * 2
    assert not fg.graph.has_edge("act1:2", "act2:1") and fg.graph.has_edge("act1:1", "act2:1")
    assert fg.graph.edges["act2:3", "act_fc1:0"]["weight_layer"] == "fc1"
    # channel -> dense unit weights: mean |w| over the channel's flattened positions
    w = model.fc1.weight.detach().double().abs().reshape(5, 4, -1).mean(2).numpy().T
    np.testing.assert_allclose(fg.weights[2], w)


def test_node_names_are_the_walkers_units_and_old_names_are_refused():
    import matplotlib

    matplotlib.use("Agg")
    from nifkit.nif.plots import plot_flow_graph

    model = mlp([4, 5, 3, 2], out_activation="sigmoid", seed=0)
    X = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, n_bins=4)
    # the output layer's units are what the walker says: its activation module here
    assert fg.layers == flow_nodes(model) == ["input", "act1", "act2", "act_out"]
    assert fg.weight_layers == ["fc1", "fc2", "fc_out"]
    assert fg.node_id("act2", 2) == fg.node_id(2, 2) == "act2:2" and fg.locate(Neuron("act_out", 1)) == (3, 1)
    assert fg.neuron("act1:4") == Neuron("act1", 4)
    # the weight layer's spelling of a node: "did you mean" the units, naming the argument
    with pytest.raises(ValueError, match=r"target: unknown layer 'fc1'\. Did you mean 'act1'\?"):
        attribution(fg, target="fc1:3")
    with pytest.raises(ValueError, match=r"target: unknown layer 'fc1'"):
        attribution(fg, target=("fc1", 3))
    with pytest.raises(ValueError, match=r"highlight: unknown layer 'fc_out'\. Did you mean 'act_out'"):
        plot_flow_graph(fg, highlight="fc_out:0")
    with pytest.raises(ValueError, match=r"paths: unknown layer 'fc1'"):
        plot_flow_graph(fg, paths=[["input:0", "fc1:0", "fc2:0", "act_out:0"]])
    with pytest.raises(ValueError, match=r"node: unknown layer 'act9'\. Did you mean 'act2', 'act1', 'act_out'\?"):
        fg.locate("act9:0")
    with pytest.raises(ValueError, match="layer 'act1' has 5 neurons; index 5 is out of range"):
        fg.node_id("act1", 5)
    with pytest.raises(ValueError, match="node: .*'layer:index'.*look like 'act1:0'"):
        fg.locate("act1")
    # layers= takes the weight layers (the edges); a units name is pointed at its weight layer
    with pytest.raises(ValueError, match=r"layers: 'act2' names the units after weight layer 'fc2'.*Did you mean 'fc2'"):
        flow_graph(model, X, layers=["act2", "fc_out"])
    with pytest.raises(ValueError, match=r"layers: unknown layer 'fc9'\. Did you mean"):
        flow_graph(model, X, layers=["fc9"])


def test_layer_subset_starts_at_that_layers_input():
    model = _rand_mlp([4, 6, 5, 2])
    X = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, layers=["fc2", "fc_out"], n_bins=4)
    full = flow_graph(model, X, n_bins=4)
    assert fg.layers == ["act1", "act2", "fc_out"] and fg.sizes == [6, 5, 2]
    assert fg.weight_layers == ["fc2", "fc_out"] and "act1:5" in fg.graph
    np.testing.assert_allclose(fg.mi[0], full.mi[1], atol=1e-12)


# ------------------------------------------------------------------------------ estimators
def _gaussian_layer():
    """x ~ N(0, I_2) through a linear layer y = W x: every (x_i, y_j) is a bivariate
    Gaussian with rho = W[j, i] / ||W[j]||, so every edge has an analytic MI."""
    model = nn.Sequential(nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 1.0], [1.0, -2.5]]))
    W = model[0].weight.detach().numpy()
    rho = (W / np.linalg.norm(W, axis=1, keepdims=True)).T  # (inputs, outputs)
    truth = np.vectorize(gaussian_mi_analytic)(rho)
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32))
    return model, X, truth


def test_ksg_and_gaussian_edges_approach_analytic_mi():
    model, X, truth = _gaussian_layer()
    assert truth.max() > 1.0 and truth.min() < 0.2
    # sampling noise alone: at n=3000 even this sample's exact Gaussian MI is up to
    # 0.045 bits off the population value, so the tolerances allow ~2x that
    ksg = flow_graph(model, X, estimator="ksg")
    np.testing.assert_allclose(ksg.mi[0], truth, atol=0.09)
    assert np.abs(ksg.mi[0] - truth).mean() < 0.05
    gau = flow_graph(model, X, estimator="gaussian")
    np.testing.assert_allclose(gau.mi[0], truth, atol=0.05)


def test_dv_edges_approach_analytic_mi():
    model, X, truth = _gaussian_layer()
    fg = flow_graph(model, X, estimator="dv", seed=0)
    np.testing.assert_allclose(fg.mi[0], truth, atol=0.12)
    assert np.abs(fg.mi[0] - truth).mean() < 0.06
    assert np.corrcoef(fg.mi[0].ravel(), truth.ravel())[0, 1] > 0.98


def test_vectorised_pair_estimators_match_the_core():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 3))
    b = a @ rng.standard_normal((3, 4)) + rng.standard_normal((300, 4))
    pairs = np.array([[0, 0], [1, 3], [2, 1], [0, 2]])
    got = ksg_mi_pairs(a, b, pairs, k=3, jitter=0)
    ref = [ksg_mi(a[:, i], b[:, j], k=3, jitter=0) for i, j in pairs]
    np.testing.assert_allclose(got, ref, atol=1e-10)
    g = gaussian_mi_pairs(a, b)
    np.testing.assert_allclose(g[1, 3], gaussian_mi(a[:, 1], b[:, 3]), atol=1e-10)


def test_significance_prunes_edges_of_an_input_the_layer_ignores():
    model = _rand_mlp([3, 6, 2], seed=0)
    with torch.no_grad():
        model.fc1.weight[:, 0] = 1e-6      # input 0 barely reaches the hidden layer
        model.fc1.weight[:, 1:] *= 5
    X = torch.randn(1500, 3, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, n_bins=6, significance=0.05, n_shuffles=40, seed=0)
    p = fg.p_values[0]
    assert (p[0] >= 0.05).sum() >= 5           # at most one false positive among 6 edges
    assert (p[1:] < 0.05).mean() > 0.8
    kept = fg.edge_masks[0]
    assert kept[0].sum() <= 1 and kept[1:].sum() >= 0.8 * kept[1:].size
    assert fg.n_edges == sum(int(m.sum()) for m in fg.edge_masks)
    assert all("p_value" in d for *_, d in fg.graph.edges(data=True))


# ------------------------------------------------------------------------------ network science
def test_attribution_ranks_planted_features_first(planted):
    d, model = planted
    for est in ("binned", "gaussian"):
        fg = flow_graph(model, d, estimator=est)
        for method in ("flow", "path", "strength", "maxflow"):
            a = attribution(fg, method)
            assert set(a.ranking()[:3].tolist()) == {2, 5, 7}, (est, method, a.scores.round(3))
        a = fg.attribution()
        assert a.scores.sum() == pytest.approx(1.0)
        assert a.feature_names[a.ranking()[0]] in {"x2", "x5", "x7"}


def test_flow_attribution_is_the_product_of_target_normalised_matrices(planted, capsys):
    d, model = planted
    fg = flow_graph(model, d)
    N = [f / f.sum(0, keepdims=True) for f in fg.flows]
    r = N[0] @ N[1] @ N[2]
    np.testing.assert_allclose(attribution(fg).scores, r.sum(1) / r.sum(), atol=1e-12)
    # every output's information is fully shared out among the inputs
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-12)
    # a hidden target: its column of the partial product
    a = attribution(fg, target="act2:3")
    assert a.target == "act2:3"
    for same in (Neuron("act2", 3), ("act2", 3), (2, 3)):
        np.testing.assert_allclose(attribution(fg, target=same).scores, a.scores)
    col = (N[0] @ N[1])[:, 3]
    np.testing.assert_allclose(a.scores, col / col.sum(), atol=1e-12)
    # the checker recognises the right answer and the classic mistake
    assert check_flow_attribution(fg, r.sum(1) / r.sum()) is True
    assert capsys.readouterr().out.startswith("✓")
    rows = [f / f.sum(1, keepdims=True) for f in fg.flows]
    wrong = (rows[0] @ rows[1] @ rows[2]).sum(1)
    assert check_flow_attribution(fg, wrong / wrong.sum()) is False
    out = capsys.readouterr().out
    assert "outgoing" in out and "axis=0" not in out and "sum(" not in out  # the diagnosis, not the fix's code
    assert check_flow_attribution(fg, np.ones(3)) is False
    assert "one score per input" in capsys.readouterr().out


def test_strongest_paths_match_brute_force():
    model = _rand_mlp([3, 4, 3, 2], seed=5)
    X = torch.randn(500, 3, generator=torch.Generator().manual_seed(5))
    fg = flow_graph(model, X, n_bins=4)
    F = [f / fg.max_flow for f in fg.flows]
    for mode, combine in (("product", np.prod), ("widest", np.min)):
        p = strongest_paths(fg, mode)
        for i, o in itertools.product(range(3), range(2)):
            best, arg = -1.0, None
            for h1, h2 in itertools.product(range(4), range(3)):
                vals = [F[0][i, h1], F[1][h1, h2], F[2][h2, o]]
                if mode == "widest":
                    vals = [v * fg.max_flow for v in vals]
                v = combine(vals)
                if v > best:
                    best, arg = v, [i, h1, h2, o]
            assert p.value[i, o] == pytest.approx(best, abs=1e-12)
            assert p.nodes[i, o].tolist() == arg
    assert p.path(0, 1)[0] == "input:0" and p.path(0, 1)[-1] == "fc_out:1"


def test_betweenness_and_communities(planted):
    d, model = planted
    fg = flow_graph(model, d)
    b = fg.betweenness()
    assert set(b) == set(fg.graph.nodes)
    assert all(b[f"input:{i}"] == 0 for i in range(10)) and all(b[f"fc_out:{o}"] == 0 for o in range(2))
    assert max(b[f"act1:{j}"] for j in range(16)) > 0
    # betweenness = networkx on the -log2 normalised-flow distance
    h = nx.DiGraph()
    h.add_weighted_edges_from(((u, v, -np.log2(f / fg.max_flow)) for u, v, f in fg.graph.edges(data="flow")
                               if f > 0), weight="dist")
    h.add_nodes_from(fg.graph.nodes)
    ref = nx.betweenness_centrality(h, weight="dist")
    assert all(b[k] == pytest.approx(ref[k], abs=1e-12) for k in ref)
    comms = fg.communities(seed=0)
    assert sorted(v for c in comms for v in c) == sorted(fg.graph.nodes)
    assert comms == fg.communities(seed=0)  # seeded


# ------------------------------------------------------------------------------ errors
class _Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 3, batch_first=True)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


class _Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        return self.a(x) * self.b(x)


def test_models_without_a_flow_graph_are_rejected():
    X = torch.randn(100, 4)
    # a skip connection that adds is a DAG with identity edges (tests/test_flow_residual.py)
    assert flow_graph(_Skip(), torch.randn(300, 4), n_bins=4).pairs == [(0, 1), (0, 2), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="no flow graph.*GRU"):
        flow_graph(_Recurrent(), X)
    with pytest.raises(ValueError, match=r"no flow graph.*'mul' \(mul\) combines several tensors and is not an add"):
        flow_graph(_Branch(), X)
    shared = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="module '0' is called 2 times.*Fix: give each use its own module"):
        flow_layers(nn.Sequential(shared, nn.ReLU(), shared))  # the walker's own reuse check names the fix
    with pytest.raises(ValueError, match="Embedding"):
        flow_layers(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        flow_graph(lambda x: x, X)


def test_unknown_and_wrong_layers():
    model = _rand_mlp([4, 5, 2])
    X = torch.randn(200, 4)
    with pytest.raises(ValueError, match="unknown layer 'fc9'.*fc1, fc_out"):
        flow_graph(model, X, layers=["fc9"])
    with pytest.raises(ValueError, match="'act1' names the units after weight layer 'fc1'"):
        flow_graph(model, X, layers=["act1"])
    cnn = small_cnn(1, (8, 8), channels=(3, 4), n_classes=2, seed=0)
    with pytest.raises(ValueError, match="'pool1' is a MaxPool2d, not a Linear/Conv"):
        flow_graph(cnn, torch.rand(50, 1, 8, 8), layers=["pool1"])
    with pytest.raises(ValueError, match="consecutive"):
        flow_graph(_rand_mlp([4, 5, 5, 2]), X, layers=["fc1", "fc_out"])


def test_too_few_samples_and_bad_options():
    model = _rand_mlp([4, 5, 2])
    with pytest.raises(ValueError, match="too few samples for the bins: 40 samples.*n_bins=8"):
        flow_graph(model, torch.randn(40, 4), n_bins=8)
    flow_graph(model, torch.randn(40, 4), n_bins=4)  # 16 joint cells: fine
    with pytest.raises(ValueError, match="estimator must be one of"):
        flow_graph(model, torch.randn(100, 4), estimator="mine")
    with pytest.raises(ValueError, match="smallest possible p-value"):
        flow_graph(model, torch.randn(100, 4), n_bins=4, significance=0.01, n_shuffles=20)
    with pytest.raises(ValueError, match="DV estimator"):
        flow_graph(model, torch.randn(10, 4), estimator="dv")


# ------------------------------------------------------------------------------ widget
def test_widget_threshold_and_selection(planted):
    from nifkit.nif import FlowExplorer

    d, model = planted
    ex = FlowExplorer(model, d, estimators=("binned", "gaussian"))
    r0 = ex.result
    assert r0.n_shown == r0.n_total == 448 and "448 of 448 edges above 0.000 bits" in ex.readout.text
    ex.controls["threshold"].value = 0.05
    r1 = ex.result
    assert r1 is not r0 and r1.n_shown < r0.n_shown
    assert r1.n_shown == ex.result.graph.edges_above(0.05)
    # the readout says that it counts the edges above the threshold, not all edges
    assert f"{r1.n_shown} of 448 edges above 0.050 bits" in ex.readout.text
    assert "drawn" not in ex.readout.text          # 448 <= max_edges: every counted edge is drawn
    small = FlowExplorer(model, d, estimators=("binned",), max_edges=100)
    assert "448 of 448 edges above 0.000 bits" in small.readout.text
    assert "the strongest 100 drawn" in small.readout.text
    picker = ex.controls["layer"]
    assert tuple(label for label, _ in picker.options) == ("(none)", "input", "act1 (output of fc1)", "act2 (output of fc2)", "fc_out")
    assert [v for _, v in picker.options] == ["(none)", "input", "act1", "act2", "fc_out"]
    with pytest.raises(Exception):   # the weight layer's name is not a node layer
        picker.value = "fc1"
    picker.value = "act1"
    ex.controls["neuron"].value = 3
    r2 = ex.result
    assert r2.selected == "act1:3" and "selected act1:3 (output of fc1)" in ex.readout.text
    np.testing.assert_allclose(r2.attribution.scores, attribution(r2.graph, target="act1:3").scores)
    col = r2.graph.flows[0][:, 3]
    assert r2.flow_in == pytest.approx(col[col >= 0.05].sum())
    n_binned = ex.n_computed
    ex.controls["estimator"].value = "gaussian"
    assert ex.result.graph.estimator == "gaussian" and ex.n_computed == n_binned + 1
    ex.controls["estimator"].value = "binned"   # cached: no recomputation
    assert ex.n_computed == n_binned + 1
    assert ex.plot.figure is not None and len(ex.plot.figure.axes) >= 2


# ------------------------------------------------------------------------------ plots
def test_plots_draw_graph_image_attribution_and_comparisons():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.nif.plots import plot_attribution, plot_edge_comparison, plot_flow_graph, plot_rank_comparison

    model = _rand_mlp([16, 6, 3], seed=0)
    X = torch.rand(300, 16, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, n_bins=4, image_shape=(4, 4))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    ax = plot_flow_graph(fg, ax=axes[0], threshold=0.05, highlight="act1:2", max_edges=50,
                         paths=[p for _, p in fg.strongest_paths().best(2)])
    assert "of 114 edges" in ax.get_title()
    few = plot_flow_graph(fg, ax=axes[1], max_edges=5, legend=False)  # the title says which edges are drawn
    assert few.get_title() == "binned flow: the strongest 5 of 114 edges"
    axes[1].clear()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["input\n(16)", "act1\n(6)", "fc_out\n(3)"]
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("fc")] == ["fc1", "fc_out"]  # edge layers
    widths = ax.collections[0].get_linewidths()
    assert len(widths) == min(50, fg.edges_above(0.05))
    a = fg.attribution()
    ax = plot_attribution(a, ax=axes[1])
    assert ax.images and ax.images[0].get_array().shape == (4, 4)   # image inputs -> picture
    np.testing.assert_allclose(ax.images[0].get_array(), a.scores.reshape(4, 4))
    ax = plot_attribution(fg.attribution("strength"), ax=axes[2], image=False, informative=[0, 1], top=None)
    assert len(ax.patches) == 16
    plot_edge_comparison(fg, flow_graph(model, X, estimator="gaussian"), ax=axes[3])
    plot_rank_comparison(a.scores, a.scores[::-1])
    plt.close("all")


def test_flow_graph_legend_names_every_encoding():
    """Width, size and colour of the flow graph are keyed with their units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.nif.plots import plot_flow_graph

    model = _rand_mlp([16, 6, 3], seed=0)
    X = torch.rand(300, 16, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(model, X, n_bins=4)
    ax = plot_flow_graph(fg, highlight="act1:2", paths=[p for _, p in fg.strongest_paths().best(2)])
    leg = ax.get_legend()
    assert leg is not None, "plot_flow_graph draws no legend"
    texts = [t.get_text() for t in leg.get_texts()]
    widths = [t for t in texts if t.startswith("width: edge flow") and t.endswith(" bits")]
    assert len(widths) >= 2
    assert f"width: edge flow {fg.max_flow:.2g} bits" in texts    # the widest line is the strongest edge
    bmax = max(fg.betweenness().values())
    assert f"size: betweenness {bmax:.2g}" in texts and "size: betweenness 0" in texts
    n_big = sum(len(c) > 1 for c in fg.communities(seed=0))
    assert sum(t.startswith("colour: community") for t in texts) == min(n_big, 6)
    assert "grey: no community (alone)" in texts
    assert "flow in/out of act1:2" in texts and "strongest paths" in texts
    # line widths of the key follow the drawing's scale: the widest key line = widest edge
    key_lw = max(h.get_linewidth() for t, h in zip(texts, leg.legend_handles) if t.startswith("width"))
    assert key_lw == pytest.approx(max(ax.collections[0].get_linewidths()))
    fg_w = flow_graph(model, X, n_bins=4, weight_scale=True)
    ax = plot_flow_graph(fg_w, centrality=False, communities=False)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts and all(t.startswith("width:") and t.endswith("bits x |w|") for t in texts)
    assert plot_flow_graph(fg, legend=False).get_legend() is None
    plt.close("all")


def test_rank_comparison_labels_only_extremes_without_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.nif.plots import plot_rank_comparison

    rng = np.random.default_rng(0)
    a, b = rng.random(20), rng.random(20)
    names = [f"x{i}" for i in range(20)]
    ax = plot_rank_comparison(a, b, names=names, informative=[0, 1], label_top=3)
    labelled = {t.get_text() for t in ax.texts}
    expected = {names[i] for i in np.union1d(np.argsort(-a)[:3], np.argsort(-b)[:3])}
    assert labelled == expected and 3 <= len(labelled) <= 6
    ax.figure.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts]
    assert not any(p.overlaps(q) for k, p in enumerate(boxes) for q in boxes[k + 1:]), "labels overlap"
    assert ax.get_xlabel().startswith("NIF share") and ax.get_ylabel().startswith("IG share")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["informative (planted)", "noise"]
    assert not plot_rank_comparison(a, b, names=names, label_top=0).texts
    plt.close("all")


# ------------------------------------------------------------------------------ pinned values
#: flow graphs of ``_rand_mlp([4, 5, 3, 2])`` on 400 seeded normal samples, as computed by
#: the code before ``flow_graph`` was split (issue 18, commit 38ad516): per weight layer the
#: sum of the edge MI, of the flows, of the p-values, and the number of kept edges.
PINNED_FLOW = {
    "binned": (dict(n_bins=4, significance=0.2, n_shuffles=9, weight_scale=True, seed=2),
               ["input", "act1", "act2", "fc_out"],
               [3.06320155076706, 1.2561934328825473, 3.376812431891942],
               [0.9907043038261837, 0.4185728308778425, 1.3460488169727491],
               [3.8, 6.0, 2.4], [17, 10, 4]),
    "gaussian": (dict(estimator="gaussian", significance=0.3, n_shuffles=5),
                 ["input", "act1", "act2", "fc_out"],
                 [3.8579942791959008, 1.744664936020049, 5.78707747803272],
                 [3.8575520762112085, 1.744664936020049, 5.78707747803272],
                 [4.666666666666666, 2.5, 1.0], [18, 15, 6]),
    "ksg": (dict(estimator="ksg", significance=0.3, n_shuffles=3, max_samples=200, ksg_k=4, layers=["fc2", "fc_out"]),
            ["act1", "act2", "fc_out"],
            [2.9021065513894904, 9.030446040975892],
            [2.890145515725363, 9.030446040975892],
            [4.25, 1.5], [14, 6]),
}


@pytest.mark.parametrize("case", sorted(PINNED_FLOW))
def test_flow_graph_values_are_those_of_the_code_before_the_split(case):
    kw, layers, mi, flows, p, kept = PINNED_FLOW[case]
    X = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    fg = flow_graph(_rand_mlp([4, 5, 3, 2]), X, **kw)
    assert fg.layers == layers
    np.testing.assert_allclose([np.nansum(m) for m in fg.mi], mi, rtol=1e-6)
    np.testing.assert_allclose([f.sum() for f in fg.flows], flows, rtol=1e-6)
    np.testing.assert_allclose([np.nansum(q) for q in fg.p_values], p, rtol=1e-9)
    assert [int((f > 0).sum()) for f in fg.flows] == kept
