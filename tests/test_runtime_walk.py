"""The shared runtime (seeds, progress, model state) and the one layer walker."""
import numpy as np
import pytest
import torch
from torch import nn

from nifkit.models import Neuron, mlp, small_cnn, walk
from nifkit.runtime import ModelState, Progress, check_seed, seeded, set_seed


# ----------------------------------------------------------------------------- seeds
def test_seeds_accept_numpy_integers_and_name_the_argument():
    assert check_seed(np.int64(3)) == 3
    assert check_seed(None, allow_none=True) is None  # one rule: None only where a function allows it
    with pytest.raises(TypeError, match="seed=None"):
        check_seed(None)
    for bad in (1.5, "0", True):
        with pytest.raises(TypeError, match="seed must be an integer"):
            check_seed(bad)
    with pytest.raises(ValueError, match="seed must lie in"):
        check_seed(-1)
    with pytest.raises(TypeError, match="my_seed"):
        check_seed(2.0, "my_seed")


def test_seeded_forks_the_rng():
    set_seed(0)
    before = torch.rand(1)
    set_seed(0)
    with seeded(5):
        a = torch.rand(3)
    after = torch.rand(1)
    with seeded(5):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(before, after)


# ----------------------------------------------------------------------------- progress
def test_progress_contract_callable_bar_and_off():
    seen = []
    with Progress(lambda d, t, w: seen.append((d, t, w)), total=3, what="job") as p:
        for _ in p.track(range(3)):
            pass
    assert seen == [(1, 3, "job"), (2, 3, "job"), (3, 3, "job")]
    with Progress(True, total=2, what="bar") as p:
        p.update()
        p.update()
        assert p.bar is not None
    assert p.bar is None
    with pytest.raises(TypeError, match="progress must be True"):
        Progress("yes")


def _progress_calls():
    import numpy as np

    from nifkit.conductance import layer_conductance
    from nifkit.info import dv_mi_pairs, pairwise_mi
    from nifkit.models import mlp
    from nifkit.record import path_gradients, record

    codes = np.random.default_rng(0).integers(0, 4, (300, 200)).astype(np.uint8)
    x = torch.rand(64, 4, generator=torch.Generator().manual_seed(0))
    net = mlp([4, 5, 3], seed=0)
    return {
        "all-pairs MI": lambda p: pairwise_mi(codes, n_bins=4, memory_budget=2**19, progress=p),
        "DV critics (2)": lambda p: dv_mi_pairs(x.numpy(), x.numpy(), [[0, 1], [2, 3]], steps=5, progress=p),
        "conductance": lambda p: layer_conductance(net, x, ["act1"], steps=4, progress=p),
        "path gradients": lambda p: path_gradients(net, x, ["act1"], steps=4, progress=p),
        "record": lambda p: record(net, x, ["act1"], batch_size=16, progress=p),
    }


@pytest.mark.parametrize("what", ["all-pairs MI", "DV critics (2)", "conductance", "path gradients", "record"])
def test_every_progress_argument_follows_the_one_contract(what):
    """A callable progress is called as progress(done, total, what), up to done == total."""
    seen = []
    _progress_calls()[what](lambda d, t, w: seen.append((d, t, w)))
    assert seen, f"{what}: the progress callable was never called"
    assert all(w == what for _, _, w in seen)
    assert [d for d, _, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1]


# ----------------------------------------------------------------------------- model state
def test_model_state_restores_modes_flags_grad_and_weights():
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 2))
    net.train()
    net[2].eval()
    net[0].weight.requires_grad_(False)
    w = net[2].weight.detach().clone()
    with pytest.raises(RuntimeError, match="boom"):
        with ModelState(net, eval=True, no_grad=True, freeze=True, weights=True):
            assert not net.training and not net[1].training and not torch.is_grad_enabled()
            assert not net[2].weight.requires_grad
            with torch.no_grad():
                net[2].weight.zero_()
            raise RuntimeError("boom")
    assert net.training and net[1].training and not net[2].training
    assert not net[0].weight.requires_grad and net[2].weight.requires_grad
    assert torch.is_grad_enabled() and torch.equal(net[2].weight, w)


# ----------------------------------------------------------------------------- walker
class _SharedSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.Sigmoid()  # registered once, used twice
        self.fc2 = nn.Linear(4, 4)
        self.fc1 = nn.Linear(3, 4)  # registered after fc2: registration order is not data flow
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.sigmoid(self.fc1(x)))


class _Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)) + x)


class _Untraceable(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


def test_walk_follows_data_flow_of_an_mlp_and_a_cnn():
    w = walk(mlp([4, 5, 5, 3], "sigmoid", out_activation="sigmoid"))
    assert w.names == ["fc1", "fc2", "fc_out"] and w.is_chain and w.traced
    assert [lay.activation_name for lay in w.layers] == ["act1", "act2", "act_out"]
    assert w.hidden() == ["act1", "act2"]
    c = walk(small_cnn(channels=(2, 3), hidden=(5,)))
    assert c.names == ["conv1", "conv2", "fc1", "fc_out"]
    assert c.hidden() == ["act1", "act2", "act_fc1"]


def test_walk_sees_shared_and_functional_activations_and_skips():
    w = walk(_SharedSigmoid())
    assert w.names == ["fc1", "fc2", "out"]  # data flow, not registration order
    assert [lay.activation_name for lay in w.layers[:2]] == ["act", "act"]
    assert w.reused == {"act": 2}
    assert w.hidden() == ["fc1", "fc2"]  # a shared module cannot address one layer's units
    with pytest.raises(ValueError, match="'act' is called 2 times.*own module.*nn.Sigmoid"):
        w.require_not_reused(what="model_ei")
    f = walk(_Functional())
    assert f.layers[0].activation is torch.sigmoid and f.layers[0].activation_name == "sigmoid"
    s = walk(_Skip())
    assert not s.is_chain
    with pytest.raises(ValueError, match="skip connection"):
        s.require_chain()


def test_walk_falls_back_to_sequential_order_and_rejects_others():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), _Untraceable(), nn.Linear(3, 2))
    w = walk(net)
    assert not w.traced and w.names == ["0", "3"] and w.notes
    with pytest.raises(TypeError, match="cannot trace"):
        walk(_Untraceable())
    with pytest.raises(TypeError, match="torch.nn.Module"):
        walk(lambda x: x)


def test_neuron_address():
    n = Neuron("fc1", 3)
    assert str(n) == "fc1:3" and Neuron.parse("fc1:3") == n and Neuron.parse(("fc1", 3)) == n
    assert Neuron.parse("layer1.0.conv:12") == ("layer1.0.conv", 12)
    with pytest.raises(ValueError, match="layer:index"):
        Neuron.parse("fc1")


def test_blocks_lives_in_the_walker_and_chapter_2_reexports_it():
    import nifkit.conductance
    from nifkit.models import blocks

    assert nifkit.conductance.blocks is blocks
    # no blocks: the activation modules, without the output activation and without Identity
    net = nn.Sequential(nn.Linear(4, 5), nn.SELU(), nn.Identity(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2),
                        nn.Softmax(dim=1))
    assert blocks(net) == ["1", "4"]
    out_act = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.Sigmoid())
    assert blocks(out_act) == ["1"]  # the final Sigmoid is the output, not a hidden layer
    # blocks: modules with children directly inside a container
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(4, 4), nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x))

    nested = nn.Sequential(nn.Sequential(Block(), Block()), nn.Linear(4, 2))
    assert blocks(nested) == ["0.0", "0.1"]
    with pytest.raises(ValueError, match="could not find blocks"):
        blocks(nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        blocks("net")
