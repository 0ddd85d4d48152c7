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
