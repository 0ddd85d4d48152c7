"""Channels as neurons: the one reduction of a conv map to one value per sample and
channel (``channel_reduce=`` in every chapter)."""
import pytest
import torch

from nifkit.models import reduce_channels, positions_of


def test_reductions_against_hand_written():
    t = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(reduce_channels(t, "mean"), t.mean((2, 3)))
    assert torch.equal(reduce_channels(t, "max"), t.amax((2, 3)))
    pos = reduce_channels(t, "positions")
    assert pos.shape == (8, 3) and positions_of(t) == 4
    # row n*P + p is sample n at position p (sample-major), column c its channel c
    assert pos[1 * 4 + 3, 2] == t[1, 2, 1, 1]
    assert pos[0 * 4 + 2, 0] == t[0, 0, 1, 0]


def test_dense_layers_pass_through():
    t = torch.randn(5, 4)
    assert reduce_channels(t, "positions") is t and positions_of(t) == 1


@pytest.mark.parametrize("bad, exc, words", [("avg", ValueError, "'mean'"), (3, TypeError, "channel_reduce"),
                                            ("meen", ValueError, "Did you mean 'mean'")])
def test_bad_reduction_is_named(bad, exc, words):
    with pytest.raises(exc, match=words):
        reduce_channels(torch.zeros(2, 3, 4), bad)


def test_residual_cnn_shape_and_skips():
    from nifkit.models import residual_cnn, walk

    m = residual_cnn(channels=4, n_blocks=3, blocks_per_stage=1, seed=0)
    assert m(torch.rand(2, 1, 12, 12)).shape == (2, 10)
    w = walk(m)
    assert len(w.merges) == 3 and not w.is_chain  # one identity skip per block
    assert [lay.name for lay in w.layers][:3] == ["stem", "body.block1.conv1", "body.block1.conv2"]
    assert [n for n, _ in m.body.named_children()] == ["block1", "pool1", "block2", "pool2", "block3"]
    x = torch.rand(1, 4, 5, 5)
    b = m.body.block1
    assert torch.allclose(b(x), torch.relu(x + b.conv2(torch.relu(b.conv1(x)))))


def test_conductance_per_channel_equals_reduced_full_maps():
    """layer_conductance(per_channel=True) keeps channel sums of conductance and channel
    means of activations, the same numbers as reducing the full maps afterwards."""
    from nifkit.conductance import layer_conductance
    from nifkit.models import small_cnn

    m = small_cnn(seed=0)
    X, y = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    full = layer_conductance(m, X, ["act1", "act2"], target="true", labels=y, steps=8)
    red = layer_conductance(m, X, ["act1", "act2"], target="true", labels=y, steps=8, per_channel=True)
    for n in ("act1", "act2"):
        assert red.maps[n].shape == (40, full.maps[n].shape[1])
        assert torch.allclose(full.maps[n].flatten(2).sum(2), red.maps[n], atol=1e-5)
        assert torch.allclose(full.activations[n].flatten(2).mean(2), red.activations[n], atol=1e-6)
    assert abs(full.gap - red.gap).max() < 1e-5  # completeness unchanged
