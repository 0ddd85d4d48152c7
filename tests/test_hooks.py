"""The one hook context (issue 18, point 2): nifkit.models.hooks attaches every hook,
by layer name, and removes each one on exit, also when a hook or the forward raises."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nifkit.intervene import Knockouts, knock_out, knock_out_layers
from nifkit.models import Hooks, hooks
from nifkit.record import record

PKG = Path(__file__).resolve().parents[1] / "nifkit"
HOOK_MODULE = PKG / "models" / "hooks.py"
#: any torch hook registration: register_forward_hook, register_forward_pre_hook, register_hook
#: (tensors), register_full_backward_hook, register_module_forward_hook, ...
REGISTER = re.compile(r"register_\w*hook")


def hook_registrations(text: str) -> list[int]:
    """Line numbers of ``text`` that name a ``register_*hook`` function."""
    return [i for i, line in enumerate(text.splitlines(), 1) if REGISTER.search(line)]


def no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


def make_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4), nn.Tanh(), nn.Linear(4, 3))


class Trip(nn.Module):
    """Identity that raises ``exc`` on the ``at``-th call (counting from 1)."""

    def __init__(self, exc, at):
        super().__init__()
        self.exc, self.at, self.calls = exc, at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise self.exc("tripped")
        return x


def test_no_register_hook_call_outside_the_hook_module():
    found = [f"{p.relative_to(PKG.parent)}:{n}" for p in sorted(PKG.rglob("*.py")) if p != HOOK_MODULE
             for n in hook_registrations(p.read_text())]
    assert not found, ("hooks are attached only by nifkit.models.hooks (with hooks(model, {name: fn}): ...); "
                       f"found register_*hook at {found}")
    # the scan sees what it claims to, and the hook module itself holds the registrations
    sample = "h = m.register_forward_hook(f)\nt.register_hook(g)\nwith hooks(model, {'a': f}):\n"
    assert hook_registrations(sample) == [1, 2]
    assert len(hook_registrations(HOOK_MODULE.read_text())) >= 3


def test_forward_and_pre_hooks_by_name_change_the_output_and_are_removed():
    net, x = make_net(), torch.randn(6, 5)
    with torch.no_grad():
        base = net(x)
        zeroed = net[4](net[3](net[2](torch.zeros(6, 7))))
        doubled_input = net(2 * x)
        with hooks(net, {"1": lambda m, a, o: torch.zeros_like(o)}):
            assert torch.equal(net(x), zeroed)
        with hooks(net, pre={"0": lambda m, a: (2 * a[0],)}):
            assert torch.equal(net(x), doubled_input)
        assert torch.equal(net(x), base) and no_hooks(net)


def test_pairs_attach_in_order_and_the_root_is_named_empty():
    net, x, seen = make_net(), torch.randn(3, 5), []
    with hooks(net, [("2", lambda m, a, o: seen.append("first")), ("2", lambda m, a, o: seen.append("second")),
                     ("", lambda m, a, o: seen.append("root"))]) as h:
        assert isinstance(h, Hooks) and len(h) == 3
        net(x)
    assert seen == ["first", "second", "root"] and no_hooks(net)


def test_unknown_name_says_did_you_mean_and_attaches_nothing():
    net = nn.Sequential()
    net.add_module("fc1", nn.Linear(3, 3))
    net.add_module("act1", nn.ReLU())
    with pytest.raises(ValueError, match=r"'fc2'.*Did you mean 'fc1'"):
        with hooks(net, {"act1": lambda m, a, o: None, "fc2": lambda m, a, o: None}):
            pass
    assert no_hooks(net)
    with pytest.raises(TypeError, match="hook for 'act1' must be callable"):
        with hooks(net, {"act1": 3}):
            pass
    with pytest.raises(TypeError, match="dict .* or a list of"):
        with hooks(net, "act1"):
            pass


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_a_hook_raising_inside_the_context_leaves_no_handle(exc):
    net, x = make_net(), torch.randn(4, 5)
    with torch.no_grad():
        before = net(x)

    def bad(m, a, o):
        raise exc("hook failed")

    with pytest.raises(exc, match="hook failed"):
        with hooks(net, {"0": lambda m, a, o: o * 0, "2": bad}, pre={"4": lambda m, a: None}):
            net(x)
    assert no_hooks(net)
    with torch.no_grad():
        assert torch.equal(net(x), before)  # the zeroing hook on "0" is gone too


def test_gradient_hooks_are_removed_on_exit():
    net, x, grads = make_net(), torch.randn(4, 5), []
    with hooks(net, {"1": lambda m, a, o: h.grad(o, grads.append)}) as h:
        net(x).sum().backward()
    assert len(grads) == 1 and grads[0].shape == (4, 7)
    out = net[1](net[0](x))
    with hooks(net) as h:
        h.grad(out, grads.append)
    net[4](net[3](net[2](out))).sum().backward()  # after the block: the tensor's hook is gone
    assert len(grads) == 1 and no_hooks(net)


def test_knockouts_record_through_record_and_restore_after_faults():
    class Tree(nn.Module):  # not an nn.Sequential: the hooked path
        def __init__(self, trip):
            super().__init__()
            self.fc1, self.act, self.trip, self.out = nn.Linear(5, 6), nn.ReLU(), trip, nn.Linear(6, 3)

        def forward(self, x):
            return self.out(self.trip(self.act(self.fc1(x))))

    torch.manual_seed(0)
    X, y = torch.randn(40, 5), torch.arange(40) % 3
    net = Tree(Trip(KeyboardInterrupt, at=-1)).train()
    eng = Knockouts(net, (X, y))
    assert eng.method == "hooks"
    assert torch.equal(eng.activations("act"), record(net, X, "act", progress=False)["act"])
    masks = torch.eye(6, dtype=torch.bool)
    acc = eng.evaluate("act", masks).accuracy
    with torch.no_grad():  # unit 2 knocked out by hand
        keep = torch.ones(6)
        keep[2] = 0
        net.eval()
        by_hand = (net.out(net.act(net.fc1(X)) * keep).argmax(1) == y).double().mean()
        net.train()
    assert acc[2] == pytest.approx(float(by_hand))
    for exc in (RuntimeError, KeyboardInterrupt):  # a fault in the batched forward pass (after the size probe)
        net.trip.exc, net.trip.calls, net.trip.at = exc, 0, 2
        with pytest.raises(exc, match="tripped"):
            eng.evaluate("act", masks)
        assert no_hooks(net) and net.training
        net.trip.calls, net.trip.at = 0, 2  # in knock_out's block
        with pytest.raises(exc, match="tripped"):
            with knock_out(net, {"act": [0]}):
                net(X)
                net(X)
        assert no_hooks(net) and net.training
        net.trip.calls, net.trip.at = 0, 2  # in knock_out_layers, after the intact pass
        with pytest.raises(exc, match="tripped"):
            knock_out_layers(net, (X, y), ["act"], mode="zero")
        assert no_hooks(net) and net.training
    net.trip.at = -1
    np.testing.assert_array_equal(eng.evaluate("act", masks).accuracy, acc)
