"""One result shape (issue 18, point 5): every result class of nifkit derives from
:class:`nifkit.results.Result`; each one, made by its own public function on a small
trained network, has the derived ``repr`` naming its fields, ``table()`` rows,
``to_frame()`` and, where its chapter draws it, ``plot(ax=...)``. And one ``Trajectory``:
conductance's trajectory is the dynamics one, computed on ``over_snapshots``."""
from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil

import numpy as np
import pytest
import torch

import nifkit
from nifkit.results import NeuronScores, Result, summarize

PACKAGES = ["info", "data", "models", "record", "intervene", "dynamics", "nif", "ablation", "ei", "conductance",
            "relay", "compare", "widgets", "results"]
#: dataclasses that are not results, and why (the walker's structures, a kernel's
#: plumbing, data sets, layer specs, the lens registry entry, the settings objects and
#: plans of the long computations' pieces)
NOT_RESULTS = {"Step", "WalkedLayer", "ModelWalk", "Right", "KernelChoice", "Dataset", "ImageSet", "EILayer",
               "_Act", "_Lens", "EISettings", "LayerKnockoutSettings", "KnockoutSpec", "FastPlan", "TrainSettings",
               "_TrainData", "FlowSettings", "FlowNode", "EdgeGroup", "FlowPlan"}


def _public(pkg: str) -> dict:
    mod = importlib.import_module(f"nifkit.{pkg}")
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    return {n: getattr(mod, n) for n in names}


def _exported_results() -> dict:
    out = {}
    for pkg in PACKAGES:
        for name, obj in _public(pkg).items():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and issubclass(obj, Result) and obj is not Result:
                out[obj.__name__] = obj  # aliases (conductance.Knockout) by their class
    return out


def _all_dataclasses() -> list:
    found = []
    for info in pkgutil.walk_packages(nifkit.__path__, "nifkit."):
        mod = importlib.import_module(info.name)
        found += [o for o in vars(mod).values()
                  if isinstance(o, type) and o.__module__ == info.name and dataclasses.is_dataclass(o)]
    return found


def test_every_dataclass_with_settings_is_a_result_and_keeps_the_derived_repr():
    classes = _all_dataclasses()
    assert len(classes) > 40  # the walk saw the package
    names = {c.__name__ for c in classes}
    assert NOT_RESULTS - names == set(), f"stale entries in NOT_RESULTS: {NOT_RESULTS - names}"
    wrong = [c.__qualname__ for c in classes if c.__name__ not in NOT_RESULTS and not issubclass(c, Result)]
    assert not wrong, f"dataclasses that are not Result subclasses (derive from nifkit.results.Result): {wrong}"
    settings_not_result = [c.__qualname__ for c in classes if not issubclass(c, Result)
                           and {"settings", "meta", "config"} & {f.name for f in dataclasses.fields(c)}]
    assert not settings_not_result, settings_not_result
    hand_written = [c.__qualname__ for c in classes if issubclass(c, Result) and c.__repr__ is not Result.__repr__]
    assert not hand_written, (f"{hand_written} replace the derived repr: declare them @dataclass(repr=False) and "
                              "override repr_skip / repr_extra instead")
    for c in classes:
        if issubclass(c, Result):
            f = {x.name: x for x in dataclasses.fields(c)}
            assert f["settings"].kw_only and f["notes"].kw_only, c  # never re-declared positionally
            assert "meta" not in f and "config" not in f, c


# ------------------------------------------------------------------ real instances
@pytest.fixture(scope="module")
def world():
    from nifkit.data import load_iris
    from nifkit.models import mlp, train
    from nifkit.record import record

    torch.set_num_threads(1)
    ds = load_iris(seed=0)
    net = mlp([4, 6, 5, 3], activation="tanh", seed=0)
    run = train(net, ds, epochs=4, snapshot_every=2, seed=0, progress=False)
    X, y = ds.X_test, ds.y_test
    rec = record(net, ds, progress=False, split="test")
    return dict(ds=ds, net=net, run=run, X=X, y=y, rec=rec)


def _nif(w):
    from nifkit.nif import FlowView, flow_graph

    fg = flow_graph(w["net"], w["ds"], n_bins=4)
    attr = fg.attribution()
    view = FlowView(graph=fg, threshold=0.0, n_shown=fg.n_edges, n_total=fg.n_edges, selected=None, flow_in=0.0,
                    flow_out=0.0, attribution=attr)
    return [fg, fg.strongest_paths(), attr, view]


def _ablation(w):
    from nifkit.ablation import AblationView, ablation_study, importance_correlations, neuron_measures, \
        single_neuron_importance

    nm = neuron_measures(w["rec"], w["y"], ["act1", "act2"], n_bins=4)
    study = ablation_study(w["net"], (w["X"], w["y"]), nm, n_random=1)
    imp = single_neuron_importance(w["net"], (w["X"], w["y"]), ["act1", "act2"])
    c = study.curves[0]
    view = AblationView(layer=c.layer, measure=str(c.measure), order=c.direction, n_ablated=1, n_units=c.n_units,
                        curve=c, random_curves=study.random(c.layer))
    return [nm, nm["act1"], study, c, imp["act1"], importance_correlations(imp, nm), view]


def _ei(w):
    from nifkit.ei import CausalView, block_ei, edge_ablation, ei_over_training, model_ei

    kw = dict(n_samples=2000, n_sensitivity_samples=200)
    m = model_ei(w["net"], **kw)
    hist = ei_over_training(w["run"], **kw)
    view = CausalView(epoch=int(hist.epochs[-1]), layer=m.names[0], layer_ei=m[0], history=hist, which="parts",
                      n_bins=8, n_samples=2000)
    blocks = block_ei(w["net"], w["X"], layers=["act1"], n_samples=500, n_bins=4)
    return [m, m[0], hist, edge_ablation(w["net"], (w["X"], w["y"]), m, n_groups=3), view, blocks]


def _conductance(w):
    import nifkit.conductance as C
    from nifkit.conductance.widget import ConductanceView

    cond = C.layer_conductance(w["net"], w["X"], steps=4)
    plane = C.information_plane(cond, w["y"], n_bins=4)
    traj = C.plane_trajectory(w["run"], (w["X"], w["y"]), steps=4, n_bins=4)
    ko = C.knockout(w["net"], (w["X"], w["y"]))
    view = ConductanceView(layer=cond.names[0], sample=0, conductance=cond, planes=[plane], ites=[C.ite(plane)],
                             mean_total=0.0, mean_delta_f=0.0, mean_abs_gap=0.0, relative_gap=0.0)
    return [cond, plane, C.ite(plane), traj.results[0], ko, view]


def _relay(w):
    from nifkit.relay import RelayView, knockout_regression, module_search, train_control, train_one_vs_rest

    rng = np.random.default_rng(0)
    codes, lab = rng.integers(0, 2, (200, 4)), rng.integers(0, 3, 200)
    search = module_search(codes, lab, lab)
    ols = knockout_regression(rng.random(20), rng.random(20), rng.integers(1, 4, 20))
    sub = train_one_vs_rest(w["ds"], n_hidden=2, max_epochs=2, seed=0)
    ctl = train_control(w["ds"], n_hidden=4, max_epochs=2, seed=0)
    view = RelayView(cls=0, step=1, members=np.array([0, 1]), relay=0.5, knockout_balanced=0.6, base_balanced=0.9,
                     true_module=None)
    return [search, ols, sub, ctl, view]


def _compare(w):
    from nifkit import compare as C

    fast = {"ei": {"n_samples": 2000, "n_sensitivity_samples": 200}, "conductance": {"steps": 4}}
    comp = C.compare(w["net"], w["ds"], options=fast)
    truth = C.knockout_truth(w["net"], w["ds"], max_sets=50)
    score = C.score_lenses(comp, truth)
    agree = C.bootstrap_agreement(w["net"], w["ds"], n_boot=2, reference=comp, options=fast)
    view = C.CompareView(lens_x=comp.names[0], lens_y=comp.names[1], rho=0.1, neuron="act1:0", ranks={}, k=2,
                         drops={})
    costs = C.lens_costs(w["net"], w["ds"], ["relay", "ablation"])
    return [comp, truth, score, agree, C.cross_layer(comp, truth), view, costs]


def _shared(w):
    from nifkit.dynamics import over_snapshots
    from nifkit.info import mutual_information, shuffle_test
    from nifkit.intervene import Knockouts
    from nifkit.models import Neuron
    from nifkit.widgets.primer import BiasResult, MIMapResult

    a = np.random.default_rng(0).integers(0, 3, (300, 1))
    st = shuffle_test(a, a, mutual_information, n_shuffles=20)
    kr = Knockouts(w["net"], (w["X"], w["y"])).evaluate(["act1"], [np.eye(6, dtype=bool)])
    traj = over_snapshots(w["run"], lambda m: float(sum(p.detach().abs().sum() for p in m.parameters())))
    ns = NeuronScores(neurons=[Neuron("act1", j) for j in range(3)], columns={"x": np.arange(3.0)}, primary="x")
    bias = BiasResult(rho=0.5, n_bins=4, n_samples=100, estimate=0.3, estimate_mm=0.25, truth=0.2, bias_term=0.05,
                      grid_n=np.arange(3), grid_estimate=np.zeros(3))
    mimap = MIMapResult(layer="act1", n_bins=4, neuron=0, mi=np.zeros((6, 6)), mi_label=np.zeros(6), partner=1)
    return [w["run"], w["rec"], st, kr, traj, ns, bias, mimap]


FACTORIES = [_nif, _ablation, _ei, _conductance, _relay, _compare, _shared]


@pytest.fixture(scope="module")
def instances(world):
    out = {}
    for make in FACTORIES:
        for r in make(world):
            out.setdefault(type(r).__name__, r)
    return out


def test_every_exported_result_is_made_here(instances):
    missing = sorted(set(_exported_results()) - set(instances))
    assert not missing, f"add a real instance of {missing} to the factories of this test"


def test_repr_names_the_fields_table_rows_and_frame(instances):
    import pandas as pd

    for name, r in instances.items():
        text = repr(r)
        assert text.startswith(f"{name}(") and "\n" not in text, text
        shown = [f.name for f in dataclasses.fields(r) if f.repr and f.name not in type(r).repr_skip]
        for f in shown:
            assert f"{f}=" in text, f"{name}: field {f!r} missing from {text}"
            assert f"{f}={summarize(getattr(r, f))}" in text, (name, f)
        for f in set(type(r).repr_skip) - {"notes"}:
            assert f"{f}=" not in text or f in r.repr_extra(), (name, f)
        assert ("notes=" in text) == bool(r.notes) and (not r.notes or f"notes=[{len(r.notes)} notes]" in text)
        rows = r.table()
        assert isinstance(rows, list) and rows and rows[0] and all(isinstance(row, dict) for row in rows), name
        frame = r.to_frame()
        assert isinstance(frame, pd.DataFrame) and len(frame) == len(rows), name
        assert isinstance(r.settings, dict) and isinstance(r.notes, list), name


def test_tables_hold_the_numbers_of_the_fields(instances):
    m = instances["ModelEI"]
    assert [row["layer"] for row in m.table()] == m.names
    assert [row["ei_parts"] for row in m.table()] == pytest.approx(m.values("ei_parts").tolist())
    assert "EI_parts" in m.summary() and isinstance(m.summary(), str)
    lm = instances["LayerMeasures"]
    assert [row["mi"] for row in lm.table()] == pytest.approx(lm.mi.tolist())
    fg = instances["FlowGraph"]
    assert sum(row["edges"] for row in fg.table()) == fg.n_edges
    assert [row["weight_layer"] for row in fg.table()] == fg.weight_layers
    curve = instances["AblationCurve"]
    assert [row["accuracy"] for row in curve.table()] == pytest.approx(curve.accuracy.tolist())
    run = instances["TrainResult"]
    assert [row["epoch"] for row in run.table()] == run.history["epoch"]
    attr = instances["Attribution"]
    assert sum(row["score"] for row in attr.table()) == pytest.approx(float(attr.scores.sum()))
    hist = instances["CausalHistory"]
    assert len(hist.table()) == len(hist.epochs) * len(hist.layers)


def test_repr_extra_and_small_arrays():
    import nifkit.conductance as C

    ite = C.ITE(names=["a", "b"], values=np.array([0.1, 0.7]), formula="ratio", source="conductance")
    assert repr(ite) == "ITE(names=['a', 'b'], values=[0.1, 0.7], formula='ratio', source='conductance', critical='b')"
    assert summarize(np.zeros((3, 4))) == "ndarray(3, 4)" and summarize(np.float32(2.5)) == "2.5"
    assert summarize(torch.nn.Sequential(torch.nn.Linear(2, 2))) == "Sequential(...)"


def test_plot_draws_where_the_chapter_has_a_figure(instances):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    for name, r in instances.items():
        fn = type(r).plot_function()
        if fn is None:
            with pytest.raises(TypeError, match="no figure of its own"):
                r.plot()
            continue
        fig, ax = plt.subplots()
        assert r.plot(ax=ax) is ax, name
        assert ax.has_data() or ax.images or ax.patches or ax.collections, name
        plt.close(fig)
        drawn.append(name)
    assert {"FlowGraph", "Attribution", "ModelEI", "InformationPlane", "ITE", "AblationCurve", "ModuleSearch",
            "Comparison", "Conductance"} <= set(drawn), drawn


# ------------------------------------------------------------------ one Trajectory
def test_the_two_trajectories_are_one(world):
    import nifkit.conductance as C
    from nifkit.dynamics import Trajectory, over_snapshots

    assert not hasattr(C, "Trajectory") and "Trajectory" not in getattr(C.plane, "__all__", [])
    seen = []
    traj = C.plane_trajectory(world["run"], (world["X"], world["y"]), steps=4, n_bins=4,
                              progress=lambda d, t, w: seen.append((d, t)))
    assert type(traj) is Trajectory and traj.epochs.tolist() == world["run"].epochs_snapshotted == [0, 2, 4]
    assert seen[-1] == (3, 3)
    assert all(isinstance(r, C.PlaneSnapshot) for r in traj.results)
    # the same numbers as measuring each snapshot through over_snapshots by hand
    by_hand = over_snapshots(world["run"], lambda m: C.information_plane(
        C.layer_conductance(m, world["X"], steps=4, target="true", labels=world["y"]), world["y"], n_bins=4,
        inputs=world["X"]))
    xt, ty = C.plane_series(traj, "conductance")
    np.testing.assert_allclose(xt, by_hand.values("i_xt"))
    np.testing.assert_allclose(ty, by_hand.values("i_ty"))
    assert xt.shape == (3, len(traj.results[0].conductance.names)) and np.all(ty <= xt + 1e-9)
    xa, _ = C.plane_series(traj, "activation")
    assert np.all(xa <= math.log2(len(world["y"])) + 1e-9)
    acc = traj.values("accuracy")
    assert acc.shape == (3,) and np.all((acc >= 0) & (acc <= 1))
    rows = traj.table()
    assert len(rows) == 3 * xt.shape[1] and rows[0]["epoch"] == 0
    assert traj.settings["steps"] == 4 and traj.settings["n_bins"] == 4
    with pytest.raises(ValueError, match="which must be"):
        C.plane_series(traj, "weights")


def test_entry_points_say_how_they_computed(instances):
    """``settings`` records the arguments that shaped each result (the ones this test passed)."""
    assert instances["FlowGraph"].settings["n_bins"] == 4
    assert instances["NeuronMeasures"].settings["n_bins"] == 4
    assert instances["AblationStudy"].settings["n_random"] == 1
    assert instances["ModelEI"].settings["n_samples"] == 2000
    assert instances["CausalHistory"].settings["n_sensitivity_samples"] == 200
    assert instances["EdgeAblation"].settings["scores"] == ["ei", "weight"]
    assert instances["ShuffleTest"].settings["n_shuffles"] == 20
    assert instances["TrainResult"].settings["epochs_completed"] == 4
    assert instances["Recording"].settings["batch_size"] == 256
    assert instances["Conductance"].settings["steps"] == 4
    assert instances["LayerKnockouts"].settings["fraction"] == 1.0
    for name in ("InformationPlane", "ModuleSearch", "OneVsRest", "OLSResult", "Comparison", "KnockoutTruth",
                 "Agreement"):
        assert instances[name].settings, name
