"""The thread policy (nifkit.runtime): defaults, nesting, restoring, errors."""
import numpy as np
import pytest
import torch

from nifkit import models, runtime
from nifkit.info import pairwise_mi


@pytest.fixture
def two_threads():
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(prev)


def test_policy_default_env_override_and_restore(two_threads, monkeypatch):
    monkeypatch.delenv(runtime.THREAD_ENV_VAR, raising=False)
    assert models.cpu_threads is runtime.cpu_threads  # old imports keep working
    assert runtime.default_threads() == 1
    with runtime.cpu_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(runtime.THREAD_ENV_VAR, "2")
    with runtime.cpu_threads():
        assert torch.get_num_threads() == 2
    monkeypatch.setenv(runtime.THREAD_ENV_VAR, "many")
    with pytest.raises(ValueError, match="NIFKIT_NUM_THREADS must be a positive integer"):
        runtime.default_threads()
    with pytest.raises(ValueError, match="num_threads"):
        runtime.cpu_threads(0)
    with pytest.raises(ValueError, match="n must be"):
        runtime.apply_thread_policy(1.5)


def test_an_explicit_outer_choice_stands_inside_policy_calls(two_threads, monkeypatch):
    monkeypatch.delenv(runtime.THREAD_ENV_VAR, raising=False)
    seen = []

    @runtime.with_thread_policy
    def step():
        seen.append(torch.get_num_threads())

    step()
    step(num_threads=2)
    with runtime.cpu_threads(2):
        step()  # the caller asked for 2: the policy default does not undo it
        with runtime.cpu_threads():
            seen.append(torch.get_num_threads())
    assert seen == [1, 2, 2, 2] and torch.get_num_threads() == 2
    c = np.random.default_rng(0).integers(0, 3, (200, 4))
    np.testing.assert_allclose(pairwise_mi(c, num_threads=2), pairwise_mi(c), atol=1e-12)
    assert runtime.apply_thread_policy() == 1 and torch.get_num_threads() == 1
