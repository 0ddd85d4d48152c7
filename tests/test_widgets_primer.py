"""Widget observers without a browser: set a control, the result and the plot change."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nifkit import exercises, plots  # noqa: E402
from nifkit.info import gaussian_mi_analytic, mutual_information, pairwise_mi  # noqa: E402
from nifkit.widgets.base import Explorer, bins_slider  # noqa: E402
from nifkit.widgets.primer import BiasExplorer, MIMapExplorer  # noqa: E402


def test_bias_explorer_reacts_to_every_slider():
    ex = BiasExplorer(rho=0.8, n_bins=8, n_samples=500, max_samples=5000)
    r0 = ex.result
    assert r0.truth == pytest.approx(gaussian_mi_analytic(0.8))
    assert ex.plot.n_draws == 1 and "plug-in" in ex.readout.text
    ex.controls["bins"].value = 20
    r1 = ex.result
    assert r1.n_bins == 20 and r1.estimate > r0.estimate  # more bins, same n: more upward bias
    assert ex.plot.n_draws == 2 and "bins=20" in ex.readout.text
    ex.controls["samples"].value = ex.controls["samples"].options[-1]
    assert ex.result.n_samples == 5000
    # the readout's estimate is the plug-in MI of the binned first n samples
    assert abs(ex.result.estimate - ex.result.truth) < abs(r1.estimate - r1.truth)
    ex.controls["rho"].value = 0.0
    assert ex.result.truth == 0.0 and ex.result.estimate < 0.1


def test_bias_explorer_warns_when_the_bias_formula_and_miller_madow_break_down():
    # 32 bins, 35 samples: fewer samples than cells; the first-order bias (~19.8 bits) is
    # above log2(min(n, B)) and Miller-Madow raises an estimate that is already too high
    ex = BiasExplorer(rho=0.8, n_bins=32, n_samples=35)
    r = ex.result
    assert r.bias_term > r.ceiling == pytest.approx(np.log2(32))
    assert r.estimate <= r.ceiling + 1e-9
    assert r.estimate_mm > r.estimate > r.truth
    assert "fewer samples than cells" in r.warning and "Miller–Madow raises" in r.warning
    assert "above log2(min(n, B))" in r.warning
    assert "Too few samples" in ex.readout.text
    # the drawn prediction never passes what n samples can show
    ax = ex.plot.figure.axes[0]
    dashed = next(ln for ln in ax.lines if ln.get_linestyle() == "--")
    assert np.all(dashed.get_ydata() <= np.log2(np.minimum(dashed.get_xdata(), 32)) + 1e-9)
    # a well-sampled setting has no warning
    ex.controls["bins"].value = 8
    ex.controls["samples"].value = ex.controls["samples"].options[-1]
    assert ex.result.warning == "" and "Too few" not in ex.readout.text


def test_mi_map_explorer_values_and_neuron_selection():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    act1 = rng.standard_normal((900, 6))
    act1[:, 2] += 3 * y  # neuron 2 knows the class
    act2 = np.stack([act1[:, 2] + 0.1 * rng.standard_normal(900), rng.standard_normal(900)], 1)
    ex = MIMapExplorer({"act1": act1, "act2": act2}, y, n_bins=4)
    r = ex.result
    assert r.layer == "act1" and r.mi.shape == (6, 6)
    assert int(np.argmax(r.mi_label)) == 2
    from nifkit.info import discretize
    codes = discretize(act1, n_bins=4, binning="quantile")
    np.testing.assert_allclose(r.mi, pairwise_mi(codes, n_bins=4), atol=1e-12)
    assert r.mi_label[2] == pytest.approx(mutual_information(codes[:, 2], y), abs=1e-12)
    ex.controls["neuron"].value = 2
    assert ex.result.neuron == 2 and "neuron 2" in ex.readout.text
    ex.controls["layer"].value = "act2"
    assert ex.controls["neuron"].max == 1 and ex.result.neuron <= 1 and ex.result.mi.shape == (2, 2)


def test_mi_map_explorer_bad_input():
    with pytest.raises(ValueError, match="samples"):
        MIMapExplorer({"a": np.ones((5, 2))}, np.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        MIMapExplorer({}, np.zeros(4))


def test_explorer_shows_errors_in_readout_instead_of_crashing():
    class Fails(Explorer):
        def __init__(self):
            super().__init__({"bins": bins_slider(8)})

        def compute(self):
            if self.value("bins") > 10:
                raise ValueError("too few samples for the bins")
            return self.value("bins")

        def render(self, result):
            self.readout.set(f"ok {result}")

    ex = Fails()
    assert ex.readout.text == "ok 8"
    ex.controls["bins"].value = 12
    assert isinstance(ex.error, ValueError) and "too few samples" in ex.readout.text
    assert ex.result == 8  # the last good result is kept
    assert "nifkit-readout" in ex.readout.widget._dom_classes


def test_exercise_checkers_say_what_is_wrong(capsys):
    assert exercises.check_entropy(lambda p: -(p[p > 0] * np.log2(p[p > 0])).sum())
    assert not exercises.check_entropy(lambda p: -(p[p > 0] * np.log(p[p > 0])).sum())
    out = capsys.readouterr().out
    assert "nats" in out and "np.log2" not in out  # says what is wrong, not the fix's code
    assert not exercises.check_entropy(lambda p: -(p * np.log2(p)).sum())
    assert "0 * log 0" in capsys.readouterr().out

    def mi(j):
        px, py = j.sum(1, keepdims=True), j.sum(0, keepdims=True)
        nz = j > 0
        return (j[nz] * np.log2(j[nz] / (px @ py)[nz])).sum()

    assert exercises.check_mutual_information(mi)
    assert not exercises.check_mutual_information(lambda j: -mi(j))


def test_plots_return_axes():
    import matplotlib.pyplot as plt

    ax = plots.plot_mi_matrix(np.eye(3), selected=1)
    assert ax.get_title()
    ax = plots.plot_bias_curve([10, 100], [1.0, 0.5], truth=0.4, current=(100, 0.5), bias_term=[0.3, 0.03])
    assert ax.get_xscale() == "log"
    ax = plots.plot_estimators([10, 100], {"plug-in": [1.0, 0.7]}, truth=0.5, limits={"binned limit": 0.4})
    assert [ln.get_label() for ln in ax.lines] == ["plug-in", "analytic", "binned limit"]
    assert ax.lines[-1].get_ydata()[0] == 0.4 and ax.lines[-1].get_linestyle() == "--"
    ax = plots.plot_history({"epoch": [0, 1], "train_acc": [0.1, 0.5], "test_acc": [0.1, 0.4]})
    assert len(ax.lines) == 2
    plt.close("all")
