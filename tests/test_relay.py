"""Chapter 3 (relay information): greedy search against the np.unique reference,
exhaustive scoring, aggregates, knockouts against the model's own forward pass, the
regression, the composed network, bad input and the widget."""
import numpy as np
import pytest
import torch

from nifkit.data import load_digits
from nifkit.intervene import Knockouts, masks_from_bits
from nifkit.models import mlp
from nifkit.relay import (
    RelayExplorer,
    aggregated_relay,
    class_variables,
    compose,
    exhaustive_relay,
    greedy_vs_exhaustive,
    knockout_regression,
    module_search,
    reference_module_search,
    relay_information,
    smearedness,
    train_one_vs_rest,
    true_modules,
)
from nifkit.relay.measures import popcount


def planted(n=1500, k=4, seed=0):
    """Codes of 2k neurons where neurons 2t, 2t+1 relay class t (noisily)."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, k, n)
    codes = rng.integers(0, 2, (n, 2 * k))
    for t in range(k):
        codes[:, 2 * t] = (lab == t) | (rng.random(n) < 0.1)
        codes[:, 2 * t + 1] = (lab == t) & (rng.random(n) < 0.9)
    pred = np.where(rng.random(n) < 0.85, lab, rng.integers(0, k, n))
    return codes, lab, pred


def test_greedy_equals_reference_and_finds_planted_modules():
    codes, lab, pred = planted()
    s = module_search(codes, lab, pred)
    r = reference_module_search(codes, lab, pred)
    assert np.array_equal(s.order, r.order)
    assert np.max(np.abs(s.curve - r.curve)) < 1e-12
    assert all(s.recovered(true_modules(4, 2)).values())
    assert np.all(s.curve[:, -1] == 0)
    # the curve is I_R of the sets it names
    xi, xo = class_variables(lab, pred, 1)
    for size in (1, 3, 6):
        assert abs(s.relay_at(1, size) - relay_information(xi, xo, codes, s.set_at(1, size))) < 1e-12


def test_exhaustive_agrees_with_single_sets_and_greedy():
    codes, lab, pred = planted(seed=1)
    s = module_search(codes, lab, pred, classes=[2])
    allr = exhaustive_relay(codes, lab, pred, 2)
    m = codes.shape[1]
    assert allr.shape == (1 << m,) and allr[0] == 0
    xi, xo = class_variables(lab, pred, 2)
    for b in (1, 5, 12, 77, 200, 255):
        g = np.flatnonzero(masks_from_bits([b], m)[0])
        assert abs(allr[b] - relay_information(xi, xo, codes, g)) < 1e-12
    frac = greedy_vs_exhaustive(s, allr, 2)
    assert frac.shape == (m,) and frac[-1] == 0 and np.all((frac >= 0) & (frac <= 1))
    # the true module is the best pair here
    assert frac[1] == 0
    assert np.array_equal(popcount(np.array([0, 1, 3, 255])), [0, 1, 2, 8])


def test_aggregates_and_smearedness():
    codes, lab, pred = planted(seed=2)
    s = module_search(codes, lab, pred)
    A = aggregated_relay(s)
    assert np.allclose(A.sum(1), s.curve[:, 0])
    L = aggregated_relay(s, "last")
    assert L.shape == A.shape
    sm = smearedness(np.array([[1.0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]))
    assert sm[0] == 0 and abs(sm[1] - 1) < 1e-12 and np.isnan(sm[2])
    assert smearedness(A, axis=0).shape == (codes.shape[1],)
    with pytest.raises(ValueError, match="how must be"):
        aggregated_relay(s, "sum")


def test_bad_input_is_reported_clearly():
    codes, lab, pred = planted()
    xi, xo = class_variables(lab, pred, 0)
    with pytest.raises(ValueError, match="unknown neurons"):
        relay_information(xi, xo, codes, [0, 99])
    with pytest.raises(ValueError, match="twice"):
        relay_information(xi, xo, codes, [1, 1])
    with pytest.raises(ValueError, match="one entry per sample"):
        module_search(codes, lab[:-1], pred)
    with pytest.raises(ValueError, match="does not occur"):
        module_search(codes, lab, pred, classes=[7])
    with pytest.raises(ValueError, match="limited to 22 neurons"):
        exhaustive_relay(np.zeros((10, 23), int), np.zeros(10, int), np.zeros(10, int), 0)
    with pytest.raises(ValueError, match="codes must be"):
        module_search(codes[:, 0], lab, pred)
    with pytest.raises(TypeError, match="integer codes"):
        module_search(codes + 0.5, lab, pred)


def _small_net(seed=0, hidden=8):
    torch.manual_seed(seed)
    return mlp([16, hidden, 4], activation="tanh", out_activation="tanh", seed=seed)


def test_knockouts_match_the_model_and_all_subsets():
    net = _small_net()
    rng = np.random.default_rng(0)
    X = torch.randn(300, 16)
    with torch.no_grad():
        y = net(X).argmax(1).numpy()
    y = np.where(rng.random(300) < 0.7, y, rng.integers(0, 4, 300))
    ev = Knockouts(net, (X, y)).readout("act1")
    masks = masks_from_bits(np.arange(256), 8)
    pred = ev.predict(masks)
    with torch.no_grad():
        H = net.act1(net.fc1(X))
        for s in (0, 3, 77, 255):
            ref = net.act_out(net.fc_out(H * torch.from_numpy(~masks[s]).float())).argmax(1).numpy()
            assert np.mean(ref == pred[s]) == 1.0
    acc = ev.accuracies(masks)
    for c in range(4):
        allc = ev.all_subsets(c, sample_chunk=64)
        assert np.allclose(allc, acc["balanced"][:, c], atol=1e-12)
        # balanced accuracy by hand for one set
        p = pred[9]
        tpr = np.mean(p[y == c] == c)
        tnr = np.mean(p[y != c] != c)
        assert abs(acc["balanced"][9, c] - (tpr + tnr) / 2) < 1e-12
    with pytest.raises(ValueError, match="unknown layer"):
        Knockouts(net, (X, y)).readout("act7")
    with pytest.raises(ValueError, match="masks must be"):
        ev.predict(np.zeros((2, 5), bool))
    with pytest.raises(ValueError, match="does not occur"):
        ev.all_subsets(9)


def test_knockout_regression_recovers_coefficients():
    rng = np.random.default_rng(0)
    r = rng.random(2000)
    k = rng.integers(0, 21, 2000)
    a = 0.9 - 0.5 * r - 0.2 * (k / 20) + rng.normal(0, 0.02, 2000)
    fit = knockout_regression(a, r, k)
    # compare with an independent least-squares solution of the same design
    yv = (a - a.min()) / (a.max() - a.min())
    X = np.column_stack([np.ones(2000), (r - r.min()) / np.ptp(r), (k - k.min()) / np.ptp(k)])
    ref = np.linalg.solve(X.T @ X, X.T @ yv)
    assert np.allclose(fit.coef, ref)
    assert fit["I_R"] < 0 and fit.t[1] < -50 and 0.8 < fit.r2 <= 1
    with pytest.raises(ValueError, match="one entry per set"):
        knockout_regression(a, r[:-1], k)


@pytest.fixture(scope="module")
def digits_composed():
    ds = load_digits()
    sub = train_one_vs_rest(ds, max_epochs=15, seed=0)
    return ds, sub, compose(sub)


def test_composed_network_is_block_diagonal(digits_composed):
    ds, sub, net = digits_composed
    X, y = ds.split("train")
    W2 = net.fc_out.weight.detach()
    mask = torch.zeros_like(W2, dtype=torch.bool)
    for t, mod in true_modules(sub).items():
        mask[t, mod] = True
    assert torch.all(W2[~mask] == 0)
    with torch.no_grad():  # output t equals sub-network t alone
        hid = torch.tanh(X @ sub.W1.T + sub.b1).view(len(X), 10, 2)
        alone = torch.tanh((hid * sub.w2[None]).sum(-1) + sub.b2)
        assert torch.allclose(net(X), alone, atol=1e-6)
    assert sub.steps.min() > 0 and sub.train_accuracy.min() > 0.8


def test_explorer_moves(digits_composed):
    ds, sub, net = digits_composed
    X, y = ds.split("test")
    ev = Knockouts(net, (X, y.numpy())).readout("act1")
    from nifkit.info import binarize

    s = module_search(binarize(ev.H.numpy()), y.numpy(), ev.base_predicted)
    ex = RelayExplorer(s, ev, weights=net.fc1.weight.detach().numpy(), image_shape=(8, 8),
                       true_modules=true_modules(sub))
    r0 = ex.result
    assert len(r0.members) == 2 and "I_R" in ex.readout.text
    ex.controls["step"].value = 10
    assert ex.result.step == 10 and len(ex.result.members) == 10 and ex.readout.text != ""
    ex.controls["class"].value = 3
    assert ex.result.cls == 3 and ex.plot.figure is not None and ex.error is None


def test_exercise_checker_contract(capsys):
    from nifkit.exercises import check_relay_information
    from nifkit.info import conditional_mutual_information as cmi
    from nifkit.info import mutual_information as mi

    def good(xi, xo, yr, y0):
        return (cmi(xi, xo, y0) if y0.shape[1] else mi(xi, xo)) - cmi(xi, xo, np.column_stack([yr, y0]))

    assert check_relay_information(good) is True
    assert check_relay_information(lambda *a: -good(*a)) is False
    assert "wrong sign" in capsys.readouterr().out
    assert check_relay_information(lambda *a: 1 / 0) is False  # never raises
    assert check_relay_information(lambda xi, xo, yr, y0: mi(xi, xo) - cmi(xi, xo, np.column_stack([yr, y0]))) is False
    assert "condition the first term on Y_0" in capsys.readouterr().out


def test_relay_plots_tick_whole_neurons():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nifkit.relay.plots import plot_greedy_vs_exhaustive

    ax = plot_greedy_vs_exhaustive([0.0, 0.1, 0.25, 0.5])
    ax.figure.canvas.draw()
    ticks = ax.get_xticks()
    assert len(ticks) and np.allclose(ticks, np.round(ticks))  # set sizes are whole numbers: no 2.5
    plt.close("all")
