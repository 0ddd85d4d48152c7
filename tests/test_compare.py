"""The capstone (nifkit.compare): each lens equals its chapter's own function, the
knockout truth on the composed network, scoring, agreement, widget, checker, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nifkit import compare as C
from nifkit import relay as R
from nifkit.data import load_digits
from nifkit.models import Neuron, mlp, train

FAST = {"ei": {"n_samples": 2000, "n_sensitivity_samples": 300}, "conductance": {"steps": 8}}


@pytest.fixture(scope="module")
def composed():
    torch.set_num_threads(1)
    ds = load_digits(seed=0)
    sub = R.train_one_vs_rest(ds, n_hidden=2, max_epochs=20, seed=0)
    net = R.compose(sub)
    X = torch.cat([ds.X_train, ds.X_test])
    y = torch.cat([ds.y_train, ds.y_test])
    comp = C.compare(net, (X, y), options=FAST)
    return dict(ds=ds, sub=sub, net=net, X=X, y=y, comp=comp)


@pytest.fixture(scope="module")
def deep():
    ds = load_digits(seed=1)
    net = mlp([64, 12, 8, 10], activation="tanh", seed=1)
    train(net, ds, epochs=15, seed=1, progress=False)
    return dict(ds=ds, net=net)


def test_addresses_and_table(composed):
    comp = composed["comp"]
    assert comp.addresses == [f"act1:{j}" for j in range(20)]
    assert comp.names == list(C.DEFAULT_LENSES)
    assert set(comp.seconds) == set(C.DEFAULT_LENSES) and all(s >= 0 for s in comp.seconds.values())
    rows = comp.table()
    assert len(rows) == 20 and rows[3]["neuron"] == "act1:3"
    assert rows[3]["ablation.mi"] == comp.score("ablation", "mi")[3]


def test_each_lens_equals_its_chapter_function(composed):
    from nifkit.ablation import neuron_measures, single_neuron_importance
    from nifkit.conductance import layer_conductance
    from nifkit.ei import layer_ei
    from nifkit.info import binarize
    from nifkit.nif import flow_graph

    net, X, y, comp = composed["net"], composed["X"], composed["y"], composed["comp"]
    fg = flow_graph(net, X, n_bins=8, binning="quantile", seed=0)
    np.testing.assert_allclose(comp.score("nif"), fg.flows[0].sum(0) + fg.flows[1].sum(1))
    bt = fg.betweenness()
    # the flow graph's nodes and the capstone's neurons share one address: "act1:j"
    assert [str(n) for n in comp.neurons] == [f"act1:{j}" for j in range(20)]
    assert set(map(str, comp.neurons)) <= set(fg.graph.nodes)
    np.testing.assert_allclose(comp.score("nif", "betweenness"), [bt[f"act1:{j}"] for j in range(20)])
    assert max(bt[f"act1:{j}"] for j in range(20)) > 0

    cond = layer_conductance(net, X, ["act1"], target="true", labels=y, steps=8)
    np.testing.assert_allclose(comp.score("conductance"), cond["act1"].abs().double().mean(0).numpy(), rtol=1e-5)

    with torch.no_grad():
        h = net.act1(net.fc1(X)).numpy()
        pred = net(X).argmax(1).numpy()
    search = R.module_search(binarize(h, "kmeans2"), y.numpy(), pred)
    np.testing.assert_allclose(comp.score("relay"), R.aggregated_relay(search).sum(0))

    nm = neuron_measures({"act1": h}, y, n_bins=8)
    imp = single_neuron_importance(net, (X, y), layers=["act1"])
    np.testing.assert_allclose(comp.score("ablation", "mi"), nm["act1"].mi)
    np.testing.assert_allclose(comp.score("ablation", "selectivity"), nm["act1"].selectivity)
    np.testing.assert_allclose(comp.score("ablation", "knockout"), imp["act1"].accuracy_drop)

    a = layer_ei(net.fc1, net.act1, in_range=(float(X.min()), float(X.max())), out_range="fit", n_samples=2000,
                 n_sensitivity_samples=300, measures=("ei_parts", "sensitivity"), name="fc1")
    b = layer_ei(net.fc_out, net.act_out, in_range=(float(h.min()), float(h.max())), out_range="fit", n_samples=2000,
                 n_sensitivity_samples=300, measures=("ei_parts", "sensitivity"), name="fc_out")
    want = (a.edge_ei.sum(0) - a.bias_parts / a.n_edges * a.n_inputs) + (b.edge_ei.sum(1) - b.bias_parts / b.n_edges
                                                                         * b.n_outputs)
    np.testing.assert_allclose(comp.score("ei"), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(comp.score("ei", "sensitivity"), a.edge_sensitivity.sum(0) + b.edge_sensitivity.sum(1))


def test_knocking_out_module_t_hurts_class_t_most(composed):
    truth = C.knockout_truth(composed["net"], (composed["X"], composed["y"]), k=2)
    drop = C.module_knockouts(truth, R.true_modules(composed["sub"]))
    assert np.array_equal(drop.argmax(1), np.arange(10)), np.round(drop, 3)
    # and the truth's per-class single drops find the modules too
    sc = C.score_lenses(composed["comp"], truth, modules=R.true_modules(composed["sub"]))
    assert sc["knockout (truth)"]["modules"] >= 8
    assert sc["relay"]["modules"] == sum(composed["comp"].lenses["relay"].raw["act1"].recovered(
        R.true_modules(composed["sub"])).values())


def test_truth_sets_and_scores(composed):
    truth = C.knockout_truth(composed["net"], (composed["X"], composed["y"]), k=2, max_sets=50, seed=3)
    assert truth.n_sets["act1"] <= 50 and truth.drop.shape == (20,) and truth.class_drop.shape == (20, 10)
    full = C.knockout_truth(composed["net"], (composed["X"], composed["y"]), k=1)
    np.testing.assert_allclose(full.set_drop, full.drop)  # k = 1: the sets are the neurons
    sc = C.score_lenses(composed["comp"], full, k=3)
    for r in sc.table():
        assert 0 <= r["precision"] <= 1 and len(r["topk"]) == 3
    j = np.array(sc["ablation"]["topk"])
    assert np.isclose(sc["ablation"]["topk_drop"], full.set_accuracy_drop([j])[0])


def test_agreement_bootstrap_and_seeds(composed):
    comp = composed["comp"]
    M = C.agreement_matrix(comp)
    assert M.shape == (5, 5) and np.allclose(M, M.T) and np.allclose(np.diag(M), 1)
    lenses = ["relay", "ablation"]
    ag = C.bootstrap_agreement(composed["net"], (composed["X"], composed["y"]), lenses, n_boot=2, seed=0)
    assert ag.replicates.shape == (2, 2, 2) and np.all(ag.low <= ag.high + 1e-12)
    ds = composed["ds"]
    sg = C.seed_agreement(lambda s: R.compose(R.train_one_vs_rest(ds, n_hidden=2, max_epochs=3, seed=s)), [0, 1],
                          (composed["X"], composed["y"]), lenses)
    assert sg.replicates.shape == (2, 2, 2)


def test_cross_layer_and_custom_lens(deep):
    net, ds = deep["net"], deep["ds"]
    comp = C.compare(net, ds, ["ablation", "conductance", lambda m, d: np.arange(20.0)], options={"conductance": {"steps": 4}})
    assert comp.addresses[:12] == [f"act1:{j}" for j in range(12)] and comp.addresses[12] == "act2:0"
    truth = C.knockout_truth(net, ds, k=1)
    cl = C.cross_layer(comp, truth, k=5)
    assert {r["lens"] for r in cl.rows} >= {"ablation", "conductance", "knockout (truth)"}
    assert all(abs(sum(r["top_share"].values()) - 1) < 1e-9 for r in cl.rows)


def test_registry(composed):
    C.register_lens("outgoing", lambda m, d: m.fc_out.weight.detach().abs().sum(0), "sum |w| out")
    try:
        with pytest.raises(ValueError, match="exists already"):
            C.register_lens("outgoing", lambda m, d: 0)
        comp = C.compare(composed["net"], (composed["X"], composed["y"]), ["outgoing"])
        np.testing.assert_allclose(comp.score("outgoing"), composed["net"].fc_out.weight.detach().abs().sum(0))
        by_name = C.compare(composed["net"], (composed["X"], composed["y"]),
                            [lambda m, d: {f"act1:{j}": float(j) for j in range(20)}])
        assert np.array_equal(by_name.scores()[0], np.arange(20.0))
    finally:
        C.unregister_lens("outgoing")


def test_bad_input(composed):
    data = (composed["X"], composed["y"])
    with pytest.raises(ValueError, match="Did you mean 'conductance'"):
        C.compare(composed["net"], data, ["condutance"])
    with pytest.raises(ValueError, match="no hidden layer"):
        C.compare(mlp([64, 10]), data, ["ablation"])
    with pytest.raises(ValueError, match=r"returned shape \(10,\), expected \(20,\)"):
        C.compare(composed["net"], data, [lambda m, d: m.fc_out.weight.detach().abs().sum(1)])
    with pytest.raises(ValueError, match="NaN"):
        C.compare(composed["net"], data, [lambda m, d: np.full(20, np.nan)])
    with pytest.raises(ValueError, match="unknown neuron"):
        C.compare(composed["net"], data, [lambda m, d: {"act9:0": 1.0}])
    with pytest.raises(ValueError, match="no labels"):
        C.compare(composed["net"], composed["X"], ["ablation"])
    with pytest.raises(ValueError, match="twice"):
        C.compare(composed["net"], data, ["nif", "nif"])
    with pytest.raises(ValueError, match="k=30"):
        C.knockout_truth(composed["net"], data, k=30)
    with pytest.raises(ValueError, match="more than one hidden layer"):
        C.cross_layer(composed["comp"], C.knockout_truth(composed["net"], data, k=1))
    with pytest.raises(ValueError, match="options"):
        C.compare(composed["net"], data, ["relay"], options={"ei": {}})


def test_checker_never_raises(composed, capsys):
    data = (composed["X"][:300], composed["y"][:300])
    assert C.check_lens(lambda m, d: m.fc_out.weight.detach().abs().sum(1), composed["net"], data) is False
    out = capsys.readouterr().out
    assert "(outputs, inputs)" in out and "20 hidden neurons" in out and "sum(0)" not in out and "dim=0" not in out
    assert C.check_lens(lambda m, d: 1 / 0, composed["net"], data) is False
    assert C.check_lens(lambda m, d: np.ones(20), composed["net"], data) is False
    assert C.check_lens(lambda m, d: np.random.rand(20), composed["net"], data) is False
    assert C.check_lens(lambda m, d: m.fc_out.weight.detach().abs().sum(0), composed["net"], data) is True
    from nifkit.exercises import check_lens

    assert check_lens is C.check_lens


def test_widget(composed):
    truth = C.knockout_truth(composed["net"], (composed["X"], composed["y"]), k=2)
    ex = C.CompareExplorer(composed["comp"], truth)
    r0, t0 = ex.result, ex.readout.text
    assert "rho" in t0 and "act1:0" in t0 and ex.plot.figure is not None
    ex.controls["neuron"].value = 5
    assert ex.result.neuron == "act1:5" and ex.readout.text != t0
    ex.controls["lens y"].value = "ei"
    assert ex.result.lens_y == "ei" and set(ex.result.drops) >= set(C.DEFAULT_LENSES)
    assert r0 is not ex.result


def test_device_and_memory_budget_reach_every_lens_and_change_no_score(composed):
    """A small memory_budget forces every heavy lens to work in chunks; the scores must
    not move, and the settings say what was asked for."""
    net, X, y, comp = composed["net"], composed["X"], composed["y"], composed["comp"]
    small = C.compare(net, (X, y), options=FAST, device="cpu", memory_budget=4 * 2**20)
    assert small.settings["device"] == "cpu" and small.settings["memory_budget"] == 4 * 2**20
    assert small.lenses["conductance"].raw.settings["memory_budget"] == 4 * 2**20  # it reached the lens
    for lens in C.DEFAULT_LENSES:
        for col in comp.lenses[lens].columns:
            np.testing.assert_allclose(small.score(lens, col), comp.score(lens, col), rtol=1e-6, atol=1e-9,
                                       err_msg=f"{lens}.{col}")
    t1 = C.knockout_truth(net, (X, y), max_sets=50)
    t2 = C.knockout_truth(net, (X, y), max_sets=50, device="cpu", memory_budget=2**16, num_threads=1)
    np.testing.assert_array_equal(t1.drop, t2.drop)
    np.testing.assert_array_equal(t1.set_drop, t2.set_drop)
    with pytest.raises(ValueError, match="memory_budget"):
        C.compare(net, (X, y), memory_budget=0)
    with pytest.raises(ValueError, match="device"):
        C.compare(net, (X, y), device="tpu:3")


def test_plot_agreement_prints_intervals_to_two_decimals():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.compare import plots as CP
    from nifkit.compare.agreement import Agreement

    M = np.array([[1.0, 0.91], [0.91, 1.0]])
    a = Agreement(names=["a", "b"], matrix=M, replicates=np.stack([M, M]), low=M - 0.012, high=M + 0.004,
                  what="bootstrap over samples")
    ax = CP.plot_agreement(a)
    texts = [t.get_text() for t in ax.texts]
    assert "+0.91\n[+0.90,\n+0.91]" in texts  # one decimal would print the point interval [+0.9,+0.9]
    from dataclasses import replace

    ax2 = CP.plot_agreement(replace(a, low=np.full((2, 2), np.nan)))  # a withheld interval: the value alone
    assert "+0.91" in [t.get_text() for t in ax2.texts] and not any("nan" in t.get_text() for t in ax2.texts)
    plt.close("all")


def test_a_builtin_lens_that_cannot_score_a_model_says_which_it_is():
    """On a CNN (issue 19: the error blamed a built-in lens as if the user wrote it)."""
    from nifkit.data import load_digits
    from nifkit.models import small_cnn

    d = load_digits(seed=0, flatten=False)
    cnn = small_cnn(1, 8, (8, 16), 10, hidden=(12,), seed=0)
    with pytest.raises(ValueError, match="the built-in lens 'nif' cannot score this model"):
        C.compare(cnn, (d.X_train[:300], d.y_train[:300]), ["nif", "ablation"], layers=["act1"], errors="raise",
                  options={"nif": {"n_bins": 10_000}})
    with pytest.warns(RuntimeWarning, match="the built-in lens 'nif' cannot score this model"):
        rep = C.compare(cnn, (d.X_train[:300], d.y_train[:300]), ["nif", "ablation"], layers=["act1"],
                        options={"nif": {"n_bins": 10_000}})
    assert list(rep.lenses) == ["ablation"] and "nif" in rep.skipped and any("skipped" in n for n in rep.notes)
    with pytest.raises(ValueError, match="has no scores in this comparison"):
        rep.score("nif")
    relay = C.compare(cnn, (d.X_train[:300], d.y_train[:300]), ["relay"])  # channels as units
    assert relay.neurons[:2] == [Neuron("act1", 0), Neuron("act1", 1)] and len(relay.neurons) == 8 + 16 + 12
