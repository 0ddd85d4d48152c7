"""One vocabulary (shared/design.md): the public signatures of every package are
checked against the table, so a stray spelling fails here, not in a reader's notebook.

| keyword | meaning |
| model, data | the model and the data, in this order |
| n_bins, binning, bin_range | bins per neuron; the method or a fitted Binner; a fixed range |
| n_samples, max_samples | how many samples to draw / to use at most |
| device, memory_budget, num_threads | where and within what; every heavy function takes all three |
| seed | reproducibility |
| progress | True for a tqdm bar, or a callable progress(done, total, what) |
| ax | keyword-only in every plot function plot_x(result, *, ax=None) |
"""
import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import nifkit

#: every package of nifkit (found, so a new package is checked the day it is added), the
#: top-level modules with public names, and every chapter's plots module
PACKAGES = sorted(
    {m.name for m in pkgutil.walk_packages(nifkit.__path__, "nifkit.") if m.ispkg and "._" not in m.name}
    | {f"nifkit.{m.name}" for m in pkgutil.iter_modules(nifkit.__path__) if not m.ispkg and not m.name.startswith("_")}
    | {m.name for m in pkgutil.walk_packages(nifkit.__path__, "nifkit.") if m.name.endswith(".plots")}
)
CHAPTER_PACKAGES = ["nifkit.nif", "nifkit.conductance", "nifkit.relay", "nifkit.ablation", "nifkit.ei", "nifkit.compare"]
#: ``n_bins`` defaults other than the one default (8), each with its reason
N_BINS_DEFAULTS = {
    8: "the one default",
    None: "read from the data (codes already binned) or from another setting, as the docstring says",
    30: "the conductance information plane: the information-plane literature bins a layer finely "
        "(Shwartz-Ziv & Tishby used 30 bins; nifkit.conductance.plane's docstring)",
    4: "ConductanceExplorer: few bins keep a live control fast on the chapter's small CNN",
}

#: spellings that mean a table keyword under another name -> the keyword to use
STRAY = {
    "bins": "n_bins", "num_bins": "n_bins", "nbins": "n_bins", "range": "bin_range", "value_range": "bin_range",
    "binner": "binning", "samples": "n_samples", "num_samples": "n_samples", "sample_size": "n_samples",
    "random_state": "seed", "rng": "seed", "random_seed": "seed", "threads": "num_threads", "n_threads": "num_threads",
    "budget": "memory_budget", "max_memory": "memory_budget", "dev": "device", "verbose": "progress",
    "show_progress": "progress", "axes": "ax", "axis_obj": "ax", "net": "model",
}
#: ``method`` is fine for a choice of algorithm, never for the binning method
BINNING_WORDS = {"minmax", "fixed", "quantile", "kmeans", "2means", "kmeans2", "median", "threshold", "layer_minmax"}
#: heavy entry points: each takes device, memory_budget and num_threads
HEAVY = ["nifkit.intervene:Knockouts",
         "nifkit.intervene:evaluate_edge_knockouts", "nifkit.nif:flow_graph", "nifkit.ablation:neuron_measures",
         "nifkit.ablation:AblationEngine", "nifkit.ablation:ablation_study", "nifkit.ei:layer_ei",
         "nifkit.ei:model_ei", "nifkit.ei:edge_ablation", "nifkit.ei:block_ei", "nifkit.record:path_gradients",
         "nifkit.conductance:layer_conductance", "nifkit.compare:compare", "nifkit.compare:knockout_truth",
         "nifkit.ablation:model_neuron_measures", "nifkit.compare:lens_costs"]


def _public_callables():
    seen = set()
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                if obj.__init__ is not object.__init__:
                    yield f"{pkg}:{name}", obj.__init__
                for k, v in vars(obj).items():
                    if not k.startswith("_") and inspect.isfunction(v):
                        yield f"{pkg}:{name}.{k}", v
            elif callable(obj):
                yield f"{pkg}:{name}", obj


CALLABLES = dict(_public_callables())


def _params_of(where):
    return _params(CALLABLES[where])


def _params(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


@pytest.mark.parametrize("where", sorted(CALLABLES))
def test_no_stray_spelling(where):
    params = _params(CALLABLES[where])
    for p in params:
        if p in STRAY:
            fix = STRAY[p]
            pytest.fail(f"{where}: parameter {p!r} is a stray spelling" + (f"; the table says {fix!r}" if fix else ""))
    m = params.get("method")
    if m is not None and isinstance(m.default, str) and m.default in BINNING_WORDS:
        pytest.fail(f"{where}: 'method' names a binning method; the table says 'binning'")
    b = params.get("binning")
    if b is not None and b.default is not inspect.Parameter.empty and b.default is not None:
        assert isinstance(b.default, str) and b.default in BINNING_WORDS | {"codes"}, \
            f"{where}: 'binning' must name a binning method or take a Binner, got default {b.default!r}"


@pytest.mark.parametrize("where", sorted(w for w in CALLABLES if w.split(":")[1].split(".")[-1].startswith("plot_")))
def test_plot_functions_take_keyword_only_ax(where):
    params = _params(CALLABLES[where])
    assert "ax" in params, f"{where}: a plot function takes ax=None"
    assert params["ax"].kind is inspect.Parameter.KEYWORD_ONLY, f"{where}: ax must be keyword-only (plot_x(result, *, ax=None))"
    assert params["ax"].default is None
    first = next(iter(params))
    assert first != "ax"


@pytest.mark.parametrize("where", sorted(CALLABLES))
def test_model_comes_before_data(where):
    names = list(_params(CALLABLES[where]))
    if "model" in names:
        for d in ("data", "X", "activations"):
            if d in names:
                assert names.index("model") < names.index(d), f"{where}: model must come before {d}"


@pytest.mark.parametrize("where", HEAVY)
def test_heavy_functions_take_device_memory_budget_and_num_threads(where):
    pkg, name = where.split(":")
    fn = getattr(importlib.import_module(pkg), name)
    params = _params(fn.__init__ if inspect.isclass(fn) else fn)
    missing = [k for k in ("device", "memory_budget", "num_threads") if k not in params]
    assert not missing, f"{where}: missing {missing} (every heavy function takes all three)"


@pytest.mark.parametrize("where", sorted(CALLABLES))
def test_seed_and_progress_mean_one_thing(where):
    params = _params(CALLABLES[where])
    if "seed" in params and params["seed"].default is not inspect.Parameter.empty:
        d = params["seed"].default
        assert d is None or (isinstance(d, int) and not isinstance(d, bool)), f"{where}: seed defaults to an int or None"
    if "progress" in params and params["progress"].default is not inspect.Parameter.empty:
        assert params["progress"].default in (True, False, None), f"{where}: progress is True/False or a callable"


def test_the_same_hidden_layer_has_one_name_in_every_chapter():
    import torch

    from nifkit.ablation import hidden_layers
    from nifkit.models import Neuron, mlp, walk
    from nifkit.nif import flow_graph, flow_layers, flow_nodes

    net = mlp([6, 5, 4, 3], seed=0)
    w = walk(net)
    assert hidden_layers(net) == w.hidden() == ["act1", "act2"]
    assert flow_layers(net) == w.names == ["fc1", "fc2", "fc_out"]  # weight layers (edges) keep their names
    # the flow graph's nodes are the same hidden units: the walker's units names
    assert flow_nodes(net) == ["input", "act1", "act2", "fc_out"] == ["input"] + [lay.units for lay in w.layers]
    fg = flow_graph(net, torch.randn(200, 6, generator=torch.Generator().manual_seed(0)), n_bins=4)
    assert fg.layers[1:-1] == w.hidden() and fg.weight_layers == w.names
    assert str(Neuron("act2", 3)) in fg.graph and "fc2:3" not in fg.graph


def _memory_defaults():
    from nifkit.config import DEFAULT_MEMORY_BUDGET, PATH_MEMORY_BUDGET

    return {
        DEFAULT_MEMORY_BUDGET: "the one default (nifkit.config.DEFAULT_MEMORY_BUDGET)",
        PATH_MEMORY_BUDGET: "path computations (nifkit.config.PATH_MEMORY_BUDGET: measured, see its comment)",
    }


#: functions whose ``memory_budget`` default is their own, and why
MEMORY_BUDGET_OWN = {
    "nifkit.compare:compare": "None passes each lens its own default",
    "nifkit.compare:knockout_truth": "None passes the knockouts their own default",
    "nifkit.compare:lens_costs": "None passes each lens its own default (through compare)",
    "nifkit.conductance:ConductanceExplorer": "None passes layer_conductance its default",
    "nifkit.info:cmi_extended": "a block size of one bincount batch, not a cap on the call's memory",
    "nifkit.info:cmi_subsets": "a block size of one bincount batch, not a cap on the call's memory",
    "nifkit.info:ksg_mi_pairs": "distance blocks that stay in cache (4 MiB ran ~1.6x faster than 64 MiB)",
}


def test_every_package_declares_its_public_names():
    missing = [p for p in ["nifkit", *PACKAGES] if not hasattr(importlib.import_module(p), "__all__")]
    assert not missing, f"packages without __all__ (the vocabulary test cannot see their names): {missing}"


@pytest.mark.parametrize("where", sorted(w for w in CALLABLES if "n_bins" in _params_of(w)))
def test_n_bins_has_one_default_or_a_reason(where):
    d = _params_of(where)["n_bins"].default
    if d is inspect.Parameter.empty:
        return
    assert d in N_BINS_DEFAULTS, f"{where}: n_bins defaults to {d!r}; use 8 or add the reason to N_BINS_DEFAULTS"
    if d in (4, 30):
        assert "onductance" in where or "plane" in where or "layer_codes" in where, where


@pytest.mark.parametrize("where", sorted(w for w in CALLABLES if "memory_budget" in _params_of(w)))
def test_memory_budget_has_one_default_or_a_reason(where):
    d = _params_of(where)["memory_budget"].default
    if d is inspect.Parameter.empty or where in MEMORY_BUDGET_OWN:
        return
    assert d in _memory_defaults(), (f"{where}: memory_budget defaults to {d!r}; use nifkit.config."
                                     "DEFAULT_MEMORY_BUDGET or give the reason in MEMORY_BUDGET_OWN")


@pytest.mark.parametrize("pkg", CHAPTER_PACKAGES)
def test_chapter_packages_load_their_widgets_lazily(pkg):
    code = f"import sys, {pkg}; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", f"import {pkg} loads ipywidgets ({out.stderr[-300:]})"


def test_layer_means_one_layer_and_layers_many():
    """``layer=`` takes one name, ``layers=`` a list (or None / one name for convenience)."""
    for where, fn in CALLABLES.items():
        ps = _params(fn)
        if "layer" in ps and "layers" in ps and fn.__name__ != "__init__":  # a result may hold both (AblationCurve)
            pytest.fail(f"{where} takes both layer= and layers=")
        for name in ("layer", "layers"):
            if name in ps and isinstance(ps[name].default, (list, tuple)):
                assert name == "layers", f"{where}: layer= defaults to a list; call it layers="

