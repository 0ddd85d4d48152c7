"""The one lens protocol (issue 18): every chapter package has a model-level entry
``neuron_scores(model, data, *, layers=None, ...) -> NeuronScores`` of the same shape,
and the capstone only registers them."""
import inspect

import numpy as np
import pytest
import torch

import nifkit.ablation as A
import nifkit.compare as C
import nifkit.conductance as CD
import nifkit.ei as E
import nifkit.nif as N
import nifkit.relay as R
from nifkit.data import as_xy, load_digits
from nifkit.models import Neuron, hidden_neurons, mlp, train
from nifkit.results import NeuronScores

CHAPTERS = {"nif": N, "conductance": CD, "relay": R, "ablation": A, "ei": E}
FAST = {"ei": {"n_samples": 2000, "n_sensitivity_samples": 200}, "conductance": {"steps": 4}}


@pytest.fixture(scope="module")
def net_data():
    d = load_digits(seed=0)
    net = mlp([64, 12, 8, 10], activation="relu", seed=0)
    train(net, d, epochs=15, seed=0, progress=False)
    return net, (d.X_test[:300], d.y_test[:300])


def test_every_chapter_has_the_same_entry_shape():
    for name, pkg in CHAPTERS.items():
        fn = pkg.neuron_scores
        assert "neuron_scores" in pkg.__all__, name
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:2]] == ["model", "data"], name
        assert params[2].name == "layers" and params[2].kind is params[2].KEYWORD_ONLY and params[2].default is None
        assert C.LENSES[name].fn is fn, f"compare registers {name}'s own entry, not a copy"


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_scores_are_one_row_per_unit_and_layers_select(net_data, name):
    net, data = net_data
    full = CHAPTERS[name].neuron_scores(net, data, **FAST.get(name, {}))
    assert isinstance(full, NeuronScores) and full.seconds > 0
    assert full.neurons == hidden_neurons(net) and len(full.neurons) == 20
    assert all(np.isfinite(v).all() for v in full.columns.values())
    assert full.settings["lens"] == name and full.notes
    rows = full.table()
    assert rows[0]["neuron"] == "act1:0" and set(rows[0]) == {"neuron", *full.columns}
    assert list(full.to_frame().index[:2]) == ["act1:0", "act1:1"]
    part = CHAPTERS[name].neuron_scores(net, data, layers=["act2"], **FAST.get(name, {}))
    assert part.neurons == [Neuron("act2", j) for j in range(8)]
    if name != "relay":  # relay's greedy search of a layer does not depend on the other layer: same values
        np.testing.assert_allclose(part.score, full.score[12:], rtol=1e-6, atol=1e-9)
    else:
        np.testing.assert_array_equal(part.score, full.score[12:])


def test_scores_are_read_from_the_chapters_own_results(net_data):
    net, data = net_data
    nif = N.neuron_scores(net, data)
    fg = nif.raw
    np.testing.assert_allclose(nif.score[:12], fg.flows[0].sum(0) + fg.flows[1].sum(1))
    abl = A.neuron_scores(net, data)
    nm, imp = abl.raw
    np.testing.assert_allclose(abl["mi"][12:], nm["act2"].mi)
    np.testing.assert_allclose(abl["knockout"][:12], imp["act1"].accuracy_drop)


def test_relay_has_a_model_level_search(net_data):
    net, data = net_data
    s = R.search_modules(net, data)  # default: the last hidden layer
    assert s.n_neurons == 8 and s.settings["layer"] == "act2" and s.settings["binning"] == "kmeans2"
    X, y = as_xy(data)
    codes = __import__("nifkit.info", fromlist=["binarize"]).binarize(
        net.act2(net.fc2(net.act1(net.fc1(X)))).detach().numpy(), "kmeans2")
    ref = R.module_search(codes, y.numpy(), net(X).argmax(1).numpy())
    np.testing.assert_array_equal(s.order, ref.order)
    np.testing.assert_allclose(s.curve, ref.curve)
    with pytest.raises(ValueError, match="Did you mean 'act1'"):
        R.search_modules(net, data, layer="act11")
    with pytest.raises(ValueError, match="no labels"):
        R.search_modules(net, data[0])


def test_layers_are_checked_by_name(net_data):
    net, data = net_data
    with pytest.raises(ValueError, match="twice"):
        N.neuron_scores(net, data, layers=["act1", "act1"])
    with pytest.raises(ValueError, match="not a hidden layer"):
        A.neuron_scores(net, data, layers=["fc_out"])  # the output layer (fc1, pre-activations, is a layer of units)
    with pytest.raises(TypeError, match="layer names"):
        A.neuron_scores(net, data, layers=[1])


def test_every_model_level_entry_takes_model_then_data():
    entries = [N.flow_graph, CD.knockout, A.ablation_study, E.edge_ablation, C.compare, C.knockout_truth,
               R.search_modules] + [p.neuron_scores for p in CHAPTERS.values()]
    for fn in entries:
        names = list(inspect.signature(fn).parameters)
        assert names[1] == "data", f"{fn.__module__}.{fn.__name__}{inspect.signature(fn)}"
    assert list(inspect.signature(CD.plane_trajectory).parameters)[:2] == ["run", "data"]


def test_data_in_every_form_gives_the_same_scores(net_data):
    net, (X, y) = net_data
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=64)
    a = A.neuron_scores(net, (X, y))
    b = A.neuron_scores(net, loader)
    c = A.neuron_scores(net, (X.numpy(), y.numpy()))
    for other in (b, c):
        for k in a.columns:
            np.testing.assert_array_equal(a[k], other[k])
