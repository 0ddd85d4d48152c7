"""Chapter 7's library pieces: the exercise checker of the positions reduction
(nifkit.compare.check_channel_positions) and the lens cost table (nifkit.compare.lens_costs,
ResidentPeak)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nifkit import compare as C
from nifkit.data import load_digits
from nifkit.models import mlp, reduce_channels, residual_cnn, train


# ---------------------------------------------------------------- the exercise checker
def _by_hand(t):
    """Every position a sample, sample-major, written out with loops (the reference)."""
    n, c, h, w = t.shape
    rows = [[float(t[i, k, a, b]) for k in range(c)] for i in range(n) for a in range(h) for b in range(w)]
    return torch.tensor(rows)


def test_the_reference_is_the_library_reduction():
    t = torch.randn(3, 4, 2, 5)
    assert torch.equal(_by_hand(t), reduce_channels(t, "positions"))


@pytest.mark.parametrize("fn", [_by_hand, lambda t: reduce_channels(t, "positions"),
                                lambda t: t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).numpy()])
def test_checker_passes_right_answers(fn, capsys):
    assert C.check_channel_positions(fn) is True
    assert "✓" in capsys.readouterr().out


WRONG = {
    "a plain reshape": (lambda t: t.reshape(-1, t.shape[1]), "several channels"),
    "position-major rows": (lambda t: t.permute(2, 3, 0, 1).reshape(-1, t.shape[1]), "position-major"),
    "H and W swapped": (lambda t: t.permute(0, 3, 2, 1).reshape(-1, t.shape[1]), "another order"),
    "a mean over positions": (lambda t: t.mean((2, 3)), "reduction over positions"),
    "channels as rows": (lambda t: t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).T, "channels must be the columns"),
    "raises": (lambda t: 1 / 0, "ZeroDivisionError"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_checker_diagnoses_without_printing_the_fix(case, capsys):
    fn, diagnosis = WRONG[case]
    assert C.check_channel_positions(fn) is False  # never raises
    out = capsys.readouterr().out
    assert diagnosis in out, out
    for code in ("permute(0, 2, 3, 1)", "transpose(1, 2)", "reduce_channels", "movedim"):
        assert code not in out, f"the checker printed the fix's code {code!r}: {out}"


def test_checker_is_reexported():
    from nifkit.exercises import check_channel_positions

    assert check_channel_positions is C.check_channel_positions


# ---------------------------------------------------------------- what each lens costs
@pytest.fixture(scope="module")
def small():
    ds = load_digits(seed=0)
    net = mlp([64, 12, 10], activation="tanh", seed=0)
    train(net, ds, epochs=3, seed=0)
    return net, (ds.X_train[:400], ds.y_train[:400])


def test_lens_costs_rows_and_scores_equal_compare(small):
    net, data = small
    costs = C.lens_costs(net, data, ["relay", "ablation"], options={"ablation": {"n_bins": 4}})
    assert [r["lens"] for r in costs.rows] == ["relay", "ablation"] and not costs.failed
    ref = C.compare(net, data, ["relay", "ablation"], options={"ablation": {"n_bins": 4}})
    for lens in ("relay", "ablation"):
        np.testing.assert_allclose(costs.comparison.score(lens), ref.score(lens))
    rows = {r["lens"]: r for r in costs.table()}
    assert rows["ablation"]["samples"] == 400 and rows["relay"]["samples"] == 400
    assert all(r["seconds"] > 0 and np.isfinite(r["memory_mb"]) and r["memory_mb"] >= 0 for r in rows.values())
    assert costs.comparison.names == ["relay", "ablation"]
    assert "relay" in costs.summary() and "needs" in costs.summary()


def test_ei_counts_the_data_it_reads_not_its_noise(small):
    net, data = small
    costs = C.lens_costs(net, data, ["ei"], options={"ei": {"n_samples": 2000, "n_sensitivity_samples": 200}})
    assert costs.rows[0]["samples"] == 400 and not costs.failed   # the data (for the input ranges), not 2000


def test_a_failing_builtin_lens_is_a_row_and_the_others_run(small):
    net, data = small
    costs = C.lens_costs(net, data, ["ablation", "relay"], options={"ablation": {"n_bins": 1}})
    assert list(costs.failed) == ["ablation"] and "n_bins" in costs.failed["ablation"]
    assert costs.comparison.names == ["relay"] and list(costs.comparison.skipped) == ["ablation"]
    assert "could not score" in costs.summary()


def test_a_users_lens_error_is_not_swallowed(small):
    net, data = small
    with pytest.raises(ZeroDivisionError):
        C.lens_costs(net, data, [lambda m, d: 1 / 0])
    with pytest.raises(ValueError, match="options has entries"):
        C.lens_costs(net, data, ["relay"], options={"nif": {}})


def test_resident_peak_sees_an_allocation():
    with C.ResidentPeak(interval=0.001) as p:
        a = np.ones(200_000_000 // 8)  # 200 MB, touched
        a += 1
        del a
    if C.ResidentPeak.resident() is None:
        assert np.isnan(p.rise)
    else:
        assert 190e6 <= p.rise <= 400e6, p.rise


def test_channel_reduce_reaches_every_lens_of_a_residual_cnn():
    ds = load_digits(seed=0, flatten=False)
    net = residual_cnn(1, 4, n_blocks=2, n_classes=10, blocks_per_stage=1, seed=0)
    data = (ds.X_train[:200], ds.y_train[:200])
    for how in ("mean", "max"):
        costs = C.lens_costs(net, data, ["ablation", "relay"], channel_reduce=how)
        ref = C.compare(net, data, ["ablation", "relay"], channel_reduce=how)
        assert not costs.failed and [str(a) for a in costs.comparison.neurons] == [str(a) for a in ref.neurons]
        for lens in ("ablation", "relay"):
            np.testing.assert_allclose(costs.comparison.score(lens), ref.score(lens))
    assert not np.allclose(C.lens_costs(net, data, ["ablation"], channel_reduce="max").comparison.score("ablation"),
                           C.lens_costs(net, data, ["ablation"]).comparison.score("ablation"))
