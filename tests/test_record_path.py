"""Recording along an interpolation path (nifkit.record.path): chunked recording equals
one chunk, the memory plan keeps autograd's saved tensors within the budget, the
warning when it cannot, the model given back as it was, and refusals."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from nifkit.conductance import layer_conductance
from nifkit.models import small_cnn
from nifkit.record import path_alphas, path_gradients, path_layers, plan_path_chunks, probe_path
from nifkit.runtime import ModelState

torch.set_num_threads(1)



def test_chunked_path_gradients_equal_one_chunk(cnn, xs):
    layers = ["act1", "act2"]
    one_y, one_g, a1 = path_gradients(cnn, xs, layers, steps=7, target=3, memory_budget=2**30)
    probe = probe_path(cnn, xs[:1], layers, "logits")
    # a budget of 3 input-points: chunks of one input at 3 points that share their end points
    y, g, a2 = path_gradients(cnn, xs, layers, steps=7, target=3, memory_budget=3 * probe.bytes_per_point)
    assert np.array_equal(a1, a2) and np.array_equal(a1, path_alphas(7))
    for n in layers:
        assert y[n].shape == (8, 6, *one_y[n].shape[2:])
        assert torch.allclose(y[n], one_y[n], atol=1e-6) and torch.allclose(g[n], one_g[n], atol=1e-6)
    # the first point is the baseline (zeros): the recorded outputs equal the model's there
    with torch.no_grad():
        ref = dict(cnn.named_modules())["act1"]
        h = []
        hook = ref.register_forward_hook(lambda m, i, o: h.append(o.clone()))
        cnn(xs)
        hook.remove()
    assert torch.allclose(y["act1"][-1], h[0], atol=1e-6)  # the last point is the input itself


def test_plan_fits_the_budget_or_takes_the_smallest_chunk():
    for n, pts, bpp, budget in [(10, 17, 100, 10_000), (10, 17, 100, 1_000), (3, 5, 7, 10**6), (50, 33, 10, 900)]:
        bs, p = plan_path_chunks(n, pts, bpp, budget)
        assert 1 <= bs <= n and 2 <= p <= pts
        assert bs * p * bpp <= budget
    assert plan_path_chunks(10, 17, 100, 10**9) == (10, 17)  # everything in one chunk when it fits
    with pytest.warns(RuntimeWarning, match="memory_budget=1,048,576 bytes is below"):
        assert plan_path_chunks(4, 9, 2**20, 2**20) == (1, 2)


def test_layer_conductance_keeps_autograd_memory_within_the_budget(cnn, xs):
    """Count the bytes autograd saves in each forward pass of the run (a pre-hook on the
    model starts each pass): none may exceed memory_budget."""
    per_pass, peak = [0], [0]

    def pack(t):
        per_pass[0] += t.numel() * t.element_size()
        peak[0] = max(peak[0], per_pass[0])
        return t

    pre = cnn.register_forward_pre_hook(lambda m, a: per_pass.__setitem__(0, 0))
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    try:
        whole = layer_conductance(cnn, x, ["act1", "fc1"], steps=16, memory_budget=2**30)
        budget = 4 * whole.settings["bytes_per_point"]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            small = layer_conductance(cnn, x, ["act1", "fc1"], steps=16, memory_budget=budget)
    finally:
        pre.remove()
    assert small.settings["batch_size"] * (small.settings["chunk_steps"] + 1) <= 4
    assert 0 < peak[0] <= budget
    for n in ("act1", "fc1"):
        assert torch.allclose(small[n], whole[n], atol=1e-5)


def test_warns_when_one_input_at_two_points_exceeds_the_budget(cnn, xs):
    with pytest.warns(RuntimeWarning, match="Raise memory_budget to at least"):
        r = layer_conductance(cnn, xs, ["act1"], steps=4, memory_budget=64)
    assert r.settings["batch_size"] == 1 and r.settings["chunk_steps"] == 1


def test_model_given_back_as_it_was(cnn, xs):
    net = small_cnn(1, 8, (4, 8), 10, hidden=(12,), seed=0).train()
    net.fc1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path_gradients(net, xs, ["act1"], steps=3, target=0)
    assert all(m.training for m in net.modules())
    assert not net.fc1.weight.requires_grad and net.conv1.weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not any(m._forward_hooks for m in net.modules())


def test_model_state_moves_to_a_device_and_back():
    calls = []

    class Net(nn.Linear):
        def to(self, *args, **kwargs):
            calls.append(torch.device(args[0]))
            return super().to(*args, **kwargs)

    net = Net(3, 2)
    with ModelState(net, device="cpu") as st:  # already there: no move
        assert not st.moved
    with ModelState(net, device="cpu:0") as st:  # another device (the only other one here: cpu:0)
        assert st.moved
    assert calls == [torch.device("cpu:0"), torch.device("cpu")] and net.weight.device.type == "cpu"


def test_refusals(cnn, xs):
    with pytest.raises(ValueError, match="'' is the model itself"):
        path_layers(cnn, [""])
    with pytest.raises(ValueError, match="layers is empty"):
        path_layers(cnn, [])
    with pytest.raises(ValueError, match="Did you mean"):
        path_gradients(cnn, xs, ["act9"])
    with pytest.raises(ValueError, match="memory_budget"):
        path_gradients(cnn, xs, ["act1"], memory_budget=0)
    with pytest.raises(ValueError, match="NaN"):
        path_gradients(cnn, torch.full_like(xs, float("nan")), ["act1"])
    with pytest.raises(ValueError, match="output must be one of"):
        path_gradients(cnn, xs, ["act1"], output="probs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path_gradients(cnn, xs, ["act1"], steps=2)  # the default budget: no warning for a small model
