"""Bad input to the chapter packages and the shared layers (intervene, dynamics, walk):
each class of bad argument must raise ValueError/TypeError naming the argument, raised
by nifkit itself (not by torch, numpy or int())."""
import numpy as np
import pytest
import torch

from nifkit.ablation import AblationEngine, ablation_study, neuron_measures
from nifkit.ei import layer_ei, model_ei
from nifkit.intervene import Knockouts, evaluate_edge_knockouts, knock_out
from nifkit.models import mlp, train, walk
from nifkit.nif import flow_graph
from nifkit.nif.plots import plot_flow_graph

torch.manual_seed(0)
NET = mlp([4, 6, 3], seed=0)
X = torch.rand(120, 4)
Y = torch.randint(0, 3, (120,))
XNAN = X.clone()
XNAN[5, 1] = float("nan")
ACTS = {"act1": np.random.default_rng(0).random((120, 6))}

CASES = [
    # (entry point, call, exception, words the message must contain)
    ("Knockouts: NaN X", lambda: Knockouts(NET, (XNAN, Y)), ValueError, "contains NaN"),
    ("Knockouts: labels too short", lambda: Knockouts(NET, (X, Y[:-2])), ValueError, "has 118 labels"),
    ("Knockouts: label beyond the classes", lambda: Knockouts(NET, (X, Y + 5)), ValueError, "only 3 classes"),
    ("Knockouts: float labels", lambda: Knockouts(NET, (X, Y.float() + 0.5)), TypeError, "labels"),
    ("Knockouts: memory_budget", lambda: Knockouts(NET, (X, Y), memory_budget=-1), ValueError, "memory_budget"),
    ("Knockouts: batch_size", lambda: Knockouts(NET, (X, Y), batch_size=0.5), TypeError, "batch_size"),
    ("Knockouts: empty X", lambda: Knockouts(NET, (X[:0], Y[:0])), ValueError, "no samples"),
    ("Knockouts: unknown layer", lambda: Knockouts(NET, (X, Y)).evaluate(["act9"], [np.ones((1, 6), bool)]),
     ValueError, "Did you mean"),
    ("AblationEngine: model", lambda: AblationEngine("net", (X, Y)), TypeError, "model"),
    ("knock_out: unit out of range", lambda: _run(knock_out(NET, {"act1": [7]})), ValueError, "0..5"),
    ("knock_out: unknown layer", lambda: _run(knock_out(NET, {"actx": [0]})), ValueError, "unknown layer"),
    ("edges: wrong mask shape", lambda: evaluate_edge_knockouts(NET, (X, Y), {"fc1": np.zeros((2, 3, 3), bool)}),
     ValueError, "edge mask"),
    ("neuron_measures: NaN", lambda: neuron_measures({"a": np.full((10, 2), np.nan)}, np.zeros(10, int)),
     ValueError, "NaN"),
    ("neuron_measures: binning", lambda: neuron_measures(ACTS, Y, binning="kmeans"), ValueError, "binning"),
    ("neuron_measures: binning type", lambda: neuron_measures(ACTS, Y, binning=3), TypeError, "binning"),
    ("neuron_measures: n_bins", lambda: neuron_measures(ACTS, Y, n_bins=1), ValueError, "n_bins"),
    ("neuron_measures: labels", lambda: neuron_measures(ACTS, Y[:50]), ValueError, "labels has 50"),
    ("neuron_measures: memory_budget", lambda: neuron_measures(ACTS, Y, memory_budget=0), ValueError,
     "memory_budget"),
    ("ablation_study: seed", lambda: ablation_study(NET, (X, Y), neuron_measures(ACTS, Y), seed=1.5), TypeError,
     "seed"),
    ("flow_graph: NaN data", lambda: flow_graph(NET, XNAN), ValueError, "NaN"),
    ("flow_graph: n_bins", lambda: flow_graph(NET, X, n_bins=0), ValueError, "n_bins"),
    ("flow_graph: unknown layer", lambda: flow_graph(NET, X, layers=["fc9"]), ValueError, "unknown layer"),
    ("flow_graph: units name as layers=", lambda: flow_graph(NET, X, layers=["act1"]), ValueError,
     "Did you mean 'fc1'"),
    ("flow attribution: a weight layer's name as a node", lambda: flow_graph(NET, X, n_bins=4).attribution(
        target="fc1:2"), ValueError, "target: unknown layer 'fc1'. Did you mean 'act1'"),
    ("flow plot: unknown node", lambda: plot_flow_graph(flow_graph(NET, X, n_bins=4), highlight="act7:0"),
     ValueError, "highlight: unknown layer 'act7'"),
    ("layer_ei: n_bins", lambda: layer_ei(np.eye(2), n_bins=1), ValueError, "n_bins"),
    ("layer_ei: n_samples", lambda: layer_ei(np.eye(2), n_samples=-5), ValueError, "n_samples"),
    ("layer_ei: NaN weights", lambda: layer_ei(np.array([[np.nan]])), ValueError, "NaN"),
    ("layer_ei: device", lambda: layer_ei(np.eye(2), device="cuda:7") if not torch.cuda.is_available()
     else (_ for _ in ()).throw(ValueError("device")), ValueError, "device"),
    ("model_ei: not a model", lambda: model_ei("net"), TypeError, "model"),
    ("model_ei: unknown layer", lambda: model_ei(NET, layers=["fc9"]), KeyError, "fc9"),
    ("walk: not a model", lambda: walk(3), TypeError, "model"),
    ("train: NaN data", lambda: train(mlp([4, 2]), (XNAN, Y % 2), epochs=1, progress=False), ValueError, "NaN"),
]


def _run(ctx):
    with ctx as model:
        model(X)


@pytest.mark.parametrize("what,call,exc,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_by_name(what, call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value), f"{what}: message {str(info.value)!r} does not say {words!r}"
    tb = info.traceback[-1]
    assert "nifkit" in str(tb.path), f"{what}: raised outside nifkit, at {tb.path}"
