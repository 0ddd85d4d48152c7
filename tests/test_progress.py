"""The one progress contract (issue 18): ``progress=False`` by default; ``True`` shows a
tqdm bar that is closed afterwards; a callable is called as ``progress(done, total,
what)`` up to ``done == total``. Every public callable that takes ``progress`` is found
from the packages' ``__all__`` and must have a small call here, so a new one is covered
the day it is added."""
import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch

import nifkit

PROGRESS_DEFAULT_OK = (False,)


def _with_progress():
    out = {}
    for m in pkgutil.walk_packages(nifkit.__path__, "nifkit."):
        if m.name.endswith(".widget") or ".widgets" in m.name:
            continue
        mod = importlib.import_module(m.name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            fns = [obj] if inspect.isfunction(obj) else [
                v for k, v in vars(obj).items() if inspect.isfunction(v) and not k.startswith("_")
            ] + [obj.__init__] if inspect.isclass(obj) else []
            for f in fns:
                try:
                    params = inspect.signature(f).parameters
                except (TypeError, ValueError):
                    continue
                if "progress" in params:
                    out[f"{f.__module__}.{f.__qualname__}"] = params["progress"].default
    return out


ENTRIES = _with_progress()


@pytest.fixture(scope="module")
def setting():
    from nifkit.data import load_digits
    from nifkit.models import mlp, train

    d = load_digits(seed=0)
    net = mlp([64, 6, 10], seed=0)
    run = train(net, d, epochs=2, snapshot_every=1, seed=0)
    x = d.X_test[:200]
    codes = np.random.default_rng(0).integers(0, 3, (200, 40)).astype(np.uint8)
    return dict(d=d, net=net, run=run, x=x, data=(x, d.y_test[:200]), codes=codes)


def _calls(s):
    from nifkit import ablation, compare, conductance, dynamics, ei, info, models, nif, record, relay
    from nifkit.intervene import Knockouts

    net, data, x = s["net"], s["data"], s["x"]
    bits = (s["codes"][:, :6] > 0).astype(np.uint8)
    return {
        "nifkit.ablation.study.ablation_study": lambda p: ablation.ablation_study(
            net, data, ablation.neuron_measures(record.record(net, x, ["act1"]), data[1], n_bins=4), n_random=1, progress=p),
        "nifkit.ablation.scores.neuron_scores": lambda p: ablation.neuron_scores(net, data, n_bins=4, progress=p),
        "nifkit.ablation.study.measure_layers": lambda p: ablation.measure_layers(net, data, n_bins=4, progress=p),
        "nifkit.compare.harness.compare": lambda p: compare.compare(
            net, data, ["ablation", "relay"], options={"ablation": {"n_bins": 4}}, progress=p),
        "nifkit.compare.costs.lens_costs": lambda p: compare.lens_costs(
            net, data, ["ablation", "relay"], options={"ablation": {"n_bins": 4}}, progress=p),
        "nifkit.conductance.attribution.layer_conductance": lambda p: conductance.layer_conductance(
            net, x, ["act1"], steps=4, progress=p),
        "nifkit.record.path.path_gradients": lambda p: record.path_gradients(net, x, ["act1"], steps=4, progress=p),
        "nifkit.conductance.plane.plane_trajectory": lambda p: conductance.plane_trajectory(
            s["run"], data, steps=2, n_bins=4, progress=p),
        "nifkit.conductance.scores.neuron_scores": lambda p: conductance.neuron_scores(net, data, steps=2,
                                                                                       progress=p),
        "nifkit.dynamics.over_snapshots": lambda p: dynamics.over_snapshots(
            s["run"], lambda m: float(m.fc1.weight.detach().abs().sum()), progress=p),
        "nifkit.ei.measure.layer_ei": lambda p: ei.layer_ei(torch.nn.Linear(3, 2), torch.sigmoid, n_samples=2000,
                                                            n_sensitivity_samples=100, progress=p),
        "nifkit.ei.model.model_ei": lambda p: ei.model_ei(net, n_samples=2000, n_sensitivity_samples=100,
                                                          measures=("ei_parts",), progress=p),
        "nifkit.ei.model.ei_over_training": lambda p: ei.ei_over_training(
            s["run"], n_samples=1000, n_sensitivity_samples=100, n_bins=4, measures=("ei_parts",), progress=p),
        "nifkit.ei.blocks.block_ei": lambda p: ei.block_ei(net, data[0], layers=["act1"], n_samples=500, n_bins=4,
                                                           progress=p),
        "nifkit.ei.scores.neuron_scores": lambda p: ei.neuron_scores(net, data, n_samples=1000, n_bins=4,
                                                                     n_sensitivity_samples=100, progress=p),
        "nifkit.info.groups.cmi_all_subsets": lambda p: info.cmi_all_subsets(
            s["codes"][:, 0] % 2, s["codes"][:, 1] % 2, bits, block_vars=2, progress=p),
        "nifkit.info.pairwise.pairwise_mi": lambda p: info.pairwise_mi(s["codes"], n_bins=3, memory_budget=2**16,
                                                                       progress=p),
        "nifkit.info.neural.dv_mi_pairs": lambda p: info.dv_mi_pairs(
            x[:, :4].numpy(), x[:, :4].numpy(), [[0, 1]], steps=3, progress=p),
        "nifkit.intervene.readout.ReadoutKnockouts.all_subsets": lambda p: Knockouts(net, data).readout(
            "act1").all_subsets(0, progress=p),
        "nifkit.models.training.train": lambda p: models.train(models.mlp([64, 4, 10], seed=1), s["d"], epochs=2,
                                                               seed=0, progress=p),
        "nifkit.nif.build.flow_graph": lambda p: nif.flow_graph(net, x, n_bins=4, progress=p),
        "nifkit.nif.scores.neuron_scores": lambda p: nif.neuron_scores(net, data, n_bins=4, progress=p),
        "nifkit.nif.stream.reduced_activities": lambda p: nif.stream.reduced_activities(
            net, x, nif.dag.flow_plan(net), batch_size=16, progress=p),
        "nifkit.record.activations.record": lambda p: record.record(net, x, ["act1"], batch_size=16, progress=p),
        "nifkit.relay.measures.exhaustive_relay": lambda p: relay.exhaustive_relay(
            bits, data[1][:1].repeat(200).numpy() * 0 + s["codes"][:, 0] % 2, s["codes"][:, 1] % 2, 0, progress=p),
        "nifkit.relay.scores.neuron_scores": lambda p: relay.neuron_scores(net, data, progress=p),
        "nifkit.relay.scores.search_modules": lambda p: relay.search_modules(net, data, progress=p),
        "nifkit.relay.measures.model_module_search": lambda p: relay.model_module_search(net, data, batch_size=64,
                                                                                       progress=p),
        "nifkit.ablation.measures.model_neuron_measures": lambda p: ablation.model_neuron_measures(
            net, data, n_bins=4, batch_size=64, progress=p),
        "nifkit.record.stream.stream_layers": lambda p: record.stream.stream_layers(
            net, data, ["act1"], lambda b: None, batch_size=64, progress=p),
        "nifkit.models.zoo.load_pretrained": lambda p: models.load_pretrained("resnet18", weights=None, progress=p),
        "nifkit.runtime.Progress.__init__": None,  # the contract itself (tests/test_runtime_walk.py)
    }


def test_every_entry_with_progress_has_a_call_and_defaults_to_false(setting):
    calls = _calls(setting)
    missing = sorted(set(ENTRIES) - set(calls))
    assert not missing, f"public callables taking progress without a call in this test: {missing}"
    wrong = {k: v for k, v in ENTRIES.items() if k in calls and calls[k] is not None and v is not False}
    assert not wrong, f"progress must default to False: {wrong}"


@pytest.fixture
def bars(monkeypatch):
    """Every tqdm bar the contract opens, to check that each is closed."""
    import tqdm.auto

    made = []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "disable": True})
            self.closed_by_us = False
            made.append(self)

        def close(self):
            self.closed_by_us = True
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    return made


@pytest.mark.parametrize("where", sorted(k for k in ENTRIES if not k.startswith("nifkit.runtime")))
def test_callable_is_called_and_bar_closed(setting, bars, where):
    call = _calls(setting)[where]
    seen = []
    call(lambda d, t, w: seen.append((d, t, w)))
    assert seen, f"{where}: the progress callable was never called"
    phases, cur = [], [seen[0]]  # a phase: done counts up under one total (a new total starts the next)
    for prev, step in zip(seen, seen[1:]):
        if step[1] != prev[1] or step[0] < prev[0]:
            phases.append(cur)
            cur = []
        cur.append(step)
    phases.append(cur)
    for phase in phases:
        done = [d for d, _, _ in phase]
        assert done == sorted(done) and phase[-1][0] == phase[-1][1], f"{where}: {phase[:3]}...{phase[-2:]}"
    assert all(isinstance(w, str) and w for _, _, w in seen)
    call(True)
    if where != "nifkit.models.zoo.load_pretrained":  # torchvision draws its own download bar
        assert bars, f"{where}: progress=True opened no bar"
    assert all(b.closed_by_us for b in bars), f"{where}: a bar was left open"
