"""Chapter 2: all-layer conductance (against Captum's LayerConductance), completeness,
the information plane (bounds, core equality, an independent MI reference), ITE, the
knockout check, loaders offline, the widget, the exercise checker and bad input."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from nifkit.conductance import (
    blocks, check_conductance, information_plane, ite, knockout, layer_codes, layer_conductance, make_baseline,
    path_alphas, path_gradients, plane_from_values, plane_series, plane_trajectory, reference_conductance,
    verdict_check,
)
from nifkit.info import discretize, entropy, mutual_information
from nifkit.models import small_cnn

torch.set_num_threads(1)



def _captum(model, layer, x, base, target, steps, method):
    from captum.attr import LayerConductance

    return LayerConductance(model, dict(model.named_modules())[layer]).attribute(
        x, baselines=base, target=target, n_steps=steps, method=method)


def _close(a, b, tol=1e-5):
    a, b = a.detach(), b.detach()
    scale = max(1.0, float(b.abs().max()))
    return float((a - b).abs().max()) <= tol * scale


# ------------------------------------------------------------------ Captum equality
@pytest.mark.reference
@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre", "riemann_left", "riemann_right",
                                    "riemann_middle"])
def test_small_cnn_every_layer_equals_captum(cnn, xs, method):
    layers = ["conv1", "act1", "pool1", "conv2", "act2", "fc1", "act_fc1"]
    base = make_baseline("blur", xs, blur_sigma=1.0)
    target = [0, 3, 5, 9, 2, 2]
    r = layer_conductance(cnn, xs, layers, baselines=base, target=target, steps=9, method=method,
                          chunk_steps=3, batch_size=4)  # chunks share end points, inputs in batches
    for n in layers:
        ref = _captum(cnn, n, xs, base, target, 9, method)
        assert r[n].shape == ref.shape
        assert _close(r[n], ref), (n, float((r[n] - ref).abs().max()))


@pytest.mark.reference
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_random_resnet18_blocks_equal_captum(method):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    names = blocks(net)
    assert names == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    r = layer_conductance(net, x, baselines="zeros", target=[7, 1], steps=6, method=method)
    for n in names:
        ref = _captum(net, n, x, torch.zeros_like(x), [7, 1], 6, method)
        assert _close(r[n], ref), (n, float((r[n] - ref).abs().max()))


@pytest.mark.reference
def test_vgg_style_inplace_relus_are_the_default_layers_and_equal_captum():
    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                           nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)))
    m.add_module("flatten", nn.Flatten())
    m.add_module("classifier", nn.Sequential(nn.Linear(96, 8), nn.ReLU(inplace=True), nn.Linear(8, 5)))
    m.eval()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    assert blocks(m) == ["features.1", "features.4", "classifier.1"]  # VGG: its (in-place) ReLUs
    r = layer_conductance(m, x, steps=6, target=2)
    for n in r.names:
        assert _close(r[n], _captum(m, n, x, torch.zeros_like(x), 2, 6, "riemann_trapezoid")), n


def test_path_gradients_and_reference_conductance_agree(cnn, xs):
    ys, gs, alphas = path_gradients(cnn, xs, ["act1", "act2"], steps=5, target=4)
    r = layer_conductance(cnn, xs, ["act1", "act2"], steps=5, target=4)
    assert len(alphas) == 6 and alphas[0] == 0 and alphas[-1] == 1
    for n in ("act1", "act2"):
        ref = reference_conductance(ys[n].numpy(), gs[n].numpy())
        assert np.allclose(ref, r[n].numpy(), atol=1e-6)


def test_chunking_memory_budget_and_device_give_the_same_result(cnn, xs):
    a = layer_conductance(cnn, xs, steps=12, target=1)
    b = layer_conductance(cnn, xs, steps=12, target=1, memory_budget=100_000, device="cpu")
    assert b.settings["chunk_steps"] < 12 or b.settings["batch_size"] < len(xs)
    for n in a.names:
        assert torch.allclose(a[n], b[n], atol=1e-6)


# ------------------------------------------------------------------ completeness
def test_completeness_trapezoid_exact_for_linear_gauss_legendre_not():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)).eval()
    x = torch.randn(3, 5)
    for steps in (1, 3, 10):
        r = layer_conductance(net, x, ["0"], steps=steps, target=2)
        assert np.abs(r.gap).max() < 1e-5
    steps = 10
    g = layer_conductance(net, x, ["0"], steps=steps, target=2, method="gausslegendre")
    a = path_alphas(steps, "gausslegendre")
    assert 0 < a[0] and a[-1] < 1
    expected = -(1 - (a[-1] - a[0])) * g.delta_f  # the path ends never covered
    assert np.allclose(g.gap[:, 0], expected, atol=1e-5)
    assert np.abs(g.gap).min() > 1e-4


def test_completeness_trapezoid_gap_falls_with_steps(cnn, xs):
    gaps = [np.abs(layer_conductance(cnn, xs, ["act1", "act_fc1"], steps=s, target=3).gap).mean()
            for s in (2, 8, 32, 128)]
    assert gaps[-1] < gaps[0] / 10 and gaps[-1] < 2e-3, gaps
    assert all(b <= a * 1.05 for a, b in zip(gaps, gaps[1:])), gaps


# ------------------------------------------------------------------ plane
@pytest.fixture(scope="module")
def trained():
    from nifkit.data import load_digits
    from nifkit.models import train

    d = load_digits(seed=0, flatten=False, n_train=500, n_test=200)
    m = small_cnn(1, 8, (4, 8), 10, hidden=(16,), seed=0)
    run = train(m, d, epochs=10, lr=1e-2, batch_size=32, seed=0, progress=False, snapshot_every=5)
    return d, m, run


def test_plane_bounds_and_equality_with_core(trained):
    from sklearn.metrics import mutual_info_score

    d, m, _ = trained
    c = layer_conductance(m, d.X_test, target="true", labels=d.y_test, steps=8)
    y = d.y_test.numpy()
    for which in ("conductance", "activation"):
        for est in ("layer_minmax", "quantile"):
            p = information_plane(c, d.y_test, which=which, binning=est, n_bins=5)
            assert p.within_bounds(), p
            assert math.isclose(p.h_y, entropy(y)) and math.isclose(p.bound_x, math.log2(len(y)))
            for i, n in enumerate(c.names):
                v = c.flat(n, "channel", which=which)
                codes = layer_codes(v, 5, est)
                if est == "binned":  # one range per layer, shared by its units
                    assert np.array_equal(codes, discretize(v, 5, "fixed", (v.min(), v.max())))
                assert math.isclose(p.i_xt[i], entropy(codes), abs_tol=1e-9)
                assert math.isclose(p.i_ty[i], mutual_information(codes, y), abs_tol=1e-9)
                # independent reference: scikit-learn's contingency-table MI (nats)
                packed = np.unique(codes, axis=0, return_inverse=True)[1].ravel()
                assert math.isclose(p.i_ty[i], mutual_info_score(packed, y) / math.log(2), abs_tol=1e-9)


def test_plane_options_shuffle_null_and_gaussian(trained):
    d, m, _ = trained
    c = layer_conductance(m, d.X_test, target="predicted", steps=4)
    p = information_plane(c, d.y_test, n_bins=4, n_shuffles=5, correction="miller-madow")
    assert np.all(np.isfinite(p.null_ty)) and np.all((p.p_ty > 0) & (p.p_ty <= 1))
    assert np.all(p.null_ty < p.i_ty)
    g = information_plane(c, d.y_test, estimator="gaussian", inputs=d.X_test, max_dims=3)
    assert np.all(np.isfinite(g.i_xt)) and np.all(g.i_xt >= 0)
    with pytest.raises(ValueError, match="inputs"):
        information_plane(c, d.y_test, estimator="gaussian")
    with pytest.raises(ValueError, match="n_bins"):
        information_plane(c, d.y_test, n_bins=1)
    with pytest.raises(ValueError, match="estimator"):
        information_plane(c, d.y_test, estimator="kde")
    with pytest.raises(ValueError, match="reduce"):
        information_plane(c, d.y_test, reduce="pixel")


def test_ite_formulas_and_critical_layer():
    y = np.repeat(np.arange(4), 8)
    vals = {"a": np.stack([np.arange(32) % 2], 1), "b": y[:, None] * 1.0, "c": np.arange(32)[:, None] * 1.0}
    p = plane_from_values(vals, y, n_bins=32)
    r = ite(p, "ratio")
    assert np.allclose(r.values, [0.0, 1.0, 2.0 / 5.0])  # I(T;Y) / I(X;T)
    assert r.critical == "b" and [row["critical"] for row in r.table()] == [False, True, False]
    g = ite(p, "gain")
    assert np.isnan(g.values[0]) and np.allclose(g.values[1:], [1.0, -0.6]) and g.critical == "b"
    with pytest.raises(ValueError, match="formula"):
        ite(p, "efficiency")


def test_knockout_check_restores_and_ranks(trained):
    d, m, _ = trained
    names = ["act1", "act2", "act_fc1"]
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    ko = knockout(m, (d.X_test, d.y_test), names, mode="mean")
    assert m.training and all(not mod._forward_hooks for mod in m.modules())
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())
    assert np.all(ko.drop > 0.2)  # a whole layer at its mean leaves little
    part = knockout(m, (d.X_test, d.y_test), names, fraction=0.5, n_repeats=3, seed=0)
    assert [row["layer"] for row in part.table()] == names
    assert np.all(part.drop <= ko.drop + 1e-9)
    c = layer_conductance(m, d.X_test, names, target="true", labels=d.y_test, steps=4)
    rows = verdict_check([ite(information_plane(c, d.y_test, n_bins=4), "ratio")], part)
    assert rows[0]["critical"] in names and 1 <= rows[0]["rank"] <= 3
    with pytest.raises(ValueError, match="mode"):
        knockout(m, (d.X_test, d.y_test), names, mode="noise")
    with pytest.raises(ValueError, match="fraction"):
        knockout(m, (d.X_test, d.y_test), names, fraction=0)


def test_knockout_bypass_on_resnet_blocks():
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    x = torch.rand(4, 3, 32, 32)
    ko = knockout(net, (x, torch.tensor([0, 1, 2, 0])), ["layer1.0", "layer2.0"], mode="bypass")
    assert any("layer2.0" in n for n in ko.notes) and not any("layer1.0" in n for n in ko.notes)


def test_trajectory_through_training(trained):
    d, _, run = trained
    tr = plane_trajectory(run, (d.X_test[:100], d.y_test[:100]), steps=4, n_bins=4)
    x, y = plane_series(tr, "conductance")
    names = tr.results[0].conductance.names
    assert tr.epochs.tolist() == [0, 5, 10] and x.shape == (3, len(names)) and np.all(y <= x + 1e-9)
    xa, ya = plane_series(tr, "activation")
    assert np.all(xa <= math.log2(100) + 1e-9) and tr.values("accuracy").shape == (3,)


# ------------------------------------------------------------------ bad input
def test_bad_input_messages(cnn, xs):
    import torchvision

    with pytest.raises(ValueError, match="Did you mean .*'act1'"):
        layer_conductance(cnn, xs, ["act"], steps=2)
    net = torchvision.models.resnet18(weights=None).eval()
    with pytest.raises(ValueError, match="Hook the block instead.*'layer1.0'"):
        layer_conductance(net, torch.rand(1, 3, 32, 32), ["layer1.0.relu"], steps=2)
    with pytest.raises(ValueError, match="target out of range"):
        layer_conductance(cnn, xs, steps=2, target=10)
    with pytest.raises(ValueError, match="baselines has shape"):
        layer_conductance(cnn, xs, steps=2, baselines=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        layer_conductance(cnn, xs, steps=0)
    bad = xs.clone()
    bad[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer_conductance(cnn, bad, steps=2)
    with pytest.raises(ValueError, match="labels"):
        layer_conductance(cnn, xs, steps=2, target="true")
    with pytest.raises(ValueError, match="method"):
        layer_conductance(cnn, xs, steps=2, method="simpson")
    with pytest.raises(ValueError, match="baselines must be one of"):
        layer_conductance(cnn, xs, steps=2, baselines="black")
    with pytest.raises(ValueError, match="batch"):
        layer_conductance(cnn, xs[0], steps=2)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        layer_conductance(lambda x: x, xs)


def test_train_mode_measured_in_eval_and_model_unchanged(xs):
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
                      nn.Linear(192, 4))
    torch.manual_seed(0)
    m.eval()
    m(xs)
    ref = layer_conductance(m, xs, ["2"], steps=4, target=1)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    flags = [p.requires_grad for p in m.parameters()]
    m.train()
    got = layer_conductance(m, xs, ["2"], steps=4, target=1)
    assert torch.equal(got["2"], ref["2"])  # eval mode: no dropout, running BN statistics
    assert all(mod.training for mod in m.modules())
    assert [p.requires_grad for p in m.parameters()] == flags
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())  # BN statistics untouched
    assert all(not mod._forward_hooks for mod in m.modules())
    with pytest.raises(ValueError):
        layer_conductance(m, xs, ["nope"], steps=2)
    assert all(not mod._forward_hooks for mod in m.modules()) and m.training


def test_inplace_relu_after_hooked_layer_does_not_corrupt():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, 2)).eval()
    b = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 4)
    ra = layer_conductance(a, x, ["0"], steps=6, target=0)
    rb = layer_conductance(b, x, ["0"], steps=6, target=0)
    assert torch.allclose(ra["0"], rb["0"]) and torch.allclose(ra.activations["0"], rb.activations["0"])


def test_softmax_saturates_near_the_input(trained):
    d, m, _ = trained
    x = d.X_test[:80]
    with torch.no_grad():
        confident = (torch.softmax(m(x), 1).max(1).values > 0.9).numpy()
    assert confident.sum() >= 5
    shares = {}
    for out in ("logits", "softmax"):
        whole = layer_conductance(m, x, ["act2"], target="predicted", steps=32, output=out)
        near = layer_conductance(m, x, ["act2"], target=whole.target, baselines=0.5 * x, steps=16, output=out)
        shares[out] = np.median((near.total("act2") / whole.total("act2"))[confident])
    assert shares["softmax"] < shares["logits"], shares
    assert np.abs(whole.delta_f).max() <= 1


# ------------------------------------------------------------------ models and data
def test_offline_photos_and_efficientnet():
    from nifkit.conductance.zoo import load_imagenet_setup

    net, ph = load_imagenet_setup(online=False, n_images=6, size=160)
    assert ph.X.shape == (6, 3, 160, 160) and ph.images.shape == (6, 160, 160, 3)
    assert ph.y.tolist() == [243, 559, 438, 990, 949, 853] and ph.label(0) == "bull mastiff"
    assert blocks(net) == [f"_blocks.{i}" for i in range(16)]
    with pytest.raises(ValueError, match="Hook the block"):
        layer_conductance(net, ph.X[:1], ["_swish"], steps=1)
    with torch.no_grad():
        assert (net(ph.X).argmax(1) == ph.y).float().mean() >= 0.5


def test_online_loader_uses_the_cache_offline_and_errors_when_missing(tmp_path, monkeypatch):
    import torchvision

    from nifkit.conductance.zoo import load_imagenet_model, load_imagenette

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"hub/checkpoints.*EfficientNet-Lite0"):
        load_imagenet_model("resnet18")
    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(ref.state_dict(), folder / os.path.basename(url))
    net = load_imagenet_model("resnet18")  # no network: found where torchvision looks
    assert not net.training and torch.equal(net.fc.weight, ref.fc.weight)
    with pytest.raises(FileNotFoundError, match="Imagenette.*EfficientNet-Lite0"):
        load_imagenette(10, root=tmp_path / "data")
    with pytest.raises(ValueError, match="name must be one of"):
        load_imagenet_model("alexnet")


# ------------------------------------------------------------------ widget and exercise
def test_widget_recomputes_and_reports_completeness(trained):
    from nifkit.conductance.widget import ConductanceExplorer

    d, m, _ = trained
    ex = ConductanceExplorer(m, (d.X_test[:60], d.y_test[:60]), steps=2)
    before = ex.readout.text
    assert "completeness gap" in before and ex.result.conductance.settings["steps"] == 2
    ex.controls["steps"].value = 16
    assert ex.readout.text != before and ex.result.relative_gap >= 0 and ex.n_computed == 2
    assert ex.result.mean_abs_gap < float(np.abs(ex._cache[(2, "zeros", "riemann_trapezoid", "predicted")][0]
                                                 .gap[:, ex.result.conductance.names.index(ex.result.layer)]).mean())
    n = ex.n_computed
    ex.controls["layer"].value = "act1"
    ex.controls["sample"].value = 3
    assert ex.n_computed == n and ex.result.layer == "act1" and ex.error is None
    ex.controls["target"].value = 3
    assert ex.error is None and set(ex.result.conductance.target) == {3} and "target 3" in ex.readout.text
    ex.controls["baseline"].value = "blur"
    ex.controls["method"].value = "gausslegendre"
    assert ex.error is None and ex.plot.figure is not None


def test_exercise_checker(capsys):
    assert check_conductance(lambda ys, gs: (gs[:-1] * (ys[1:] - ys[:-1])).sum(0)) is True
    assert check_conductance(lambda ys, gs: (gs[1:] * (ys[1:] - ys[:-1])).sum(0)) is False
    out = capsys.readouterr().out
    assert "left point" in out and "gs[" not in out  # the diagnosis, not the fix's code
    assert check_conductance(lambda ys, gs: (gs * ys).sum(0)) is False
    assert "gradient x activation" in capsys.readouterr().out
    assert check_conductance(lambda ys, gs: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert check_conductance(lambda ys, gs: gs) is False
    from nifkit.exercises import check_conductance as reexported

    assert reexported is check_conductance


def test_imagenette_loader_reads_files_where_torchvision_keeps_them(tmp_path):
    from PIL import Image
    from torchvision.datasets import Imagenette

    from nifkit.conductance.zoo import IMAGENETTE_TO_IMAGENET, imagenet_classes, load_imagenette

    names = imagenet_classes()
    wnids = sorted(Imagenette._WNID_TO_CLASS)
    for wnid, idx in zip(wnids, IMAGENETTE_TO_IMAGENET):  # the 10 classes map to their ImageNet names
        assert names[idx] == Imagenette._WNID_TO_CLASS[wnid][0]
    rng = np.random.default_rng(0)
    for wnid in wnids:  # a fake Imagenette 160px validation split: 2 photos per class
        folder = tmp_path / "imagenette2-160" / "val" / wnid
        folder.mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / f"{wnid}_{k}.JPEG")
    ph = load_imagenette(12, root=tmp_path, size=48)
    assert ph.X.shape == (12, 3, 48, 48) and ph.images.shape == (12, 48, 48, 3)
    assert sorted(set(ph.y.tolist()))[:10] == sorted(IMAGENETTE_TO_IMAGENET)  # balanced: every class first
    with pytest.raises(ValueError, match="size"):
        load_imagenette(4, root=tmp_path, size=8)


def test_online_setup_runs_from_cached_files_without_network(tmp_path, monkeypatch):
    import torchvision
    from PIL import Image
    from torchvision.datasets import Imagenette

    from nifkit.conductance.zoo import load_imagenet_setup

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(),
               folder / os.path.basename(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url))
    rng = np.random.default_rng(1)
    for wnid in sorted(Imagenette._WNID_TO_CLASS):
        d = tmp_path / "datasets" / "imagenette2-160" / "val" / wnid
        d.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8)).save(d / "a.JPEG")
    net, ph = load_imagenet_setup(online=True, model="resnet18", n_images=3, size=40)  # files found: no download
    assert len(ph) == 3 and ph.source.startswith("Imagenette")
    r = layer_conductance(net, ph.X, steps=2, target="predicted")
    assert r.names == blocks(net) and np.isfinite(r.gap).all()


def test_ite_and_completeness_plots_explain_their_marks():
    from types import SimpleNamespace

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.conductance import plots as CPL

    r = SimpleNamespace(names=["b0", "b1", "b2"], values=np.array([0.1, 0.5, 0.2]), formula="ratio",
                        source="conductance", critical="b1")
    ax = CPL.plot_ite([r])
    leg = ax.get_legend()
    assert "* critical layer (largest ITE)" in [t.get_text() for t in leg.get_texts()]
    assert leg.get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1  # right of the axes, over no bar
    ax2 = CPL.plot_completeness([4, 8, 16, 32], {"gausslegendre": [1e-1, 3e-2, 1e-2, 3e-3]})
    ax2.figure.canvas.draw()
    assert [t.get_text() for t in ax2.get_xticklabels()] == ["4", "8", "16", "32"]
    assert all(t.get_text() == "" for t in ax2.yaxis.get_minorticklabels())  # decades only: no collisions
    names = [f"_blocks.{i}" for i in range(16)]
    plane = SimpleNamespace(source="conductance", names=names, i_xt=np.linspace(1, 4, 16), i_ty=np.full(16, 3.3),
                            settings={"estimator": "binned"}, bound_x=4.3, h_y=3.32)
    ax3 = CPL.plot_information_plane(plane)
    labels = [t for t in ax3.texts if t.get_text().startswith("_blocks")]
    assert [t.get_text() for t in labels] == names[::2] + ["_blocks.15"]  # every 2nd of 16 layers, and the last
    assert len({t.xyann[1] for t in labels[:4]}) == 4  # four staggered heights: crowded points stay legible
    plt.close("all")


def test_freed_chunk_memory_goes_back_to_the_system():
    """layer_conductance ends with glibc's malloc_trim: on Linux it must be found (a wrong
    library lookup would silently keep ~170 MB of chapter 2's freed chunks resident)."""
    import platform

    from nifkit.runtime import release_freed_memory

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert release_freed_memory() is True
    else:  # pragma: no cover - other C libraries: a no-op that says so
        assert release_freed_memory() in (True, False)
