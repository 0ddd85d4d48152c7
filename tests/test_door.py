"""The door, generated from the signatures (issue 19 points 1-2).

Every public callable of every ``__all__`` (tests/test_vocabulary.py finds them) that
takes a vocabulary argument (``nifkit._validation.VOCABULARY``) must be behind the door
(``@checked``): each such argument is tried with the bad classes (negative, zero, float,
bool, huge, NaN, wrong type, ``None`` where the signature does not allow it), expecting a
``TypeError``/``ValueError`` naming the argument *before the body runs* (every other
argument is a sentinel object the body could not use), and with the good ones (numpy
integer scalars, one-element tensors), which must pass. A new public function is covered
the day it is added: without the door it fails ``test_every_vocabulary_argument_is_behind_the_door``.
"""
import inspect
import math

import numpy as np
import pytest
import torch
from test_vocabulary import CALLABLES

from nifkit._validation import VOCABULARY, checked
from nifkit.results import Result

#: callables that take a vocabulary name but are no door, each with its reason
NO_DOOR = {
    "nifkit.record:PathSetup": "the shared setup of path_gradients and layer_conductance, which are checked",
    "nifkit.models:ModelWalk": "the record walk() returns (steps are its walked steps), not user input",
    "nifkit.runtime:check_seed": "the seed rule itself (nifkit._validation.check_seed, re-exported)",
}


def _owner(where):
    import importlib

    pkg, name = where.split(":")
    return getattr(importlib.import_module(pkg), name.split(".")[0])


def _doors():
    out = {}
    for where, fn in CALLABLES.items():
        params = inspect.signature(fn).parameters if callable(fn) else {}
        vocab = [p for p in params if p in VOCABULARY]
        if not vocab or where in NO_DOOR:
            continue
        owner = _owner(where)
        if inspect.isclass(owner) and issubclass(owner, Result):
            continue  # results are what nifkit returns, not doors
        out[where] = (fn, vocab)
    return out


DOORS = _doors()

_INT = [-1, 0, 2.5, True, "3", math.nan, [3]]
BAD = {
    "seed": [-1, 2.5, 3.0, True, "0", 2**64, math.nan, [0]],
    "n_bins": [1, 0, -3, 2.5, True, "8", 10**12, math.nan],
    "n_bins_a": [1, 0, 2.5, True, "8", 10**12],
    "n_bins_b": [1, 0, 2.5, True, "8", 10**12],
    "n_shuffles": [-1, 2.5, True, "3", math.nan],
    "memory_budget": [0, -1, 2.5, True, "1GB", math.inf],
    "chunk_bytes": [0, -1, 2.5, True, "1MB"],
    "num_threads": [0, -1, 1.5, True, "2"],
    "device": ["cuda", "nope", 3.5, True, ["cpu"]],
    "layer": [3, ["act1"], 2.5, b"act1"],
    "layers": [[], ["a", "a"], [1], 3, {"a"}, ["a", None]],
    "progress": ["yes", 3, 0.5],
    "binning": ["", 3, 2.5],
    "channel_reduce": ["", "avg", "channel", 3, None, ["mean"]],
    "bin_range": [(1, 0), (0, math.nan), "ab", (0,), 3],
    "value": [math.nan, math.inf, -math.inf, True, [0.0, math.nan]],
    "labels": [[0.5, 1.0], [-1, 0], ["a", "b"], [[0, 1], [1, 0]], [0, math.nan]],
    "threshold": [math.nan, math.inf, "x", True],
    "lr": [-0.1, 0, math.nan, math.inf, "x", True],
    "image_size": [0, -2, 2.5, True, (0, 8), (8, 8, 8)],
}
GOOD = {
    "seed": [np.uint64(5), np.int32(0), torch.tensor(7), 2**64 - 1],
    "n_bins": [np.int64(4), torch.tensor(3), 4.0, (3, 5)],
    "n_bins_a": [np.int16(4), torch.tensor(3)],
    "n_bins_b": [np.int16(4), torch.tensor(3)],
    "n_shuffles": [np.int64(0), torch.tensor(2)],
    "memory_budget": [np.int64(2**20), 1e9, torch.tensor(2**20)],
    "chunk_bytes": [np.int64(2**20), 1e6],
    "num_threads": [np.int64(1), torch.tensor(2)],
    "device": ["cpu", torch.device("cpu")],
    "layer": ["act1"],
    "layers": ["act1", ["act1", "act2"], ("act1",), lambda n: n.startswith("act")],
    "progress": [True, False, np.bool_(True), lambda done, total, what: None],
    "binning": ["minmax"],
    "channel_reduce": ["mean", "max", "positions"],
    "bin_range": [(np.int64(0), 1.0), [torch.tensor(-1.0), 1]],
    "value": ["zero", "mean", 0.5, np.float32(1.0), torch.tensor(0.0), np.array([0.0, 1.0])],
    "labels": [np.array([0, 1, 2]), torch.tensor([1, 0]), [0.0, 1.0]],
    "threshold": [np.float64(0.2), torch.tensor(0.0), 1],
    "lr": [np.float32(0.1), torch.tensor(0.01)],
    "image_size": [np.int64(6), (np.int64(4), 4), torch.tensor(8)],
}
for _name in ("n_samples", "max_samples", "batch_size", "steps", "k", "n_train", "n_test", "n_hidden", "n_classes",
              "n_sensitivity_samples"):
    BAD[_name] = _INT
    GOOD[_name] = [np.int64(3), np.uint8(2), torch.tensor(4), 5.0]


# classes the fresh sweep after issue 19 found (huge floats as sizes, tensors on the meta
# device, 0-d arrays of NaN, booleans as numbers, values beyond float32, the meta device
# itself)
_META, _META_INT = torch.empty((), device="meta"), torch.empty((), dtype=torch.int64, device="meta")
for _name in [*(n for n, v in BAD.items() if v is _INT), "seed", "n_bins", "n_bins_a", "n_bins_b", "n_shuffles",
              "memory_budget", "chunk_bytes", "num_threads", "image_size"]:
    BAD[_name] = [*BAD[_name], 1e300, 1e18, _META_INT, _META, np.array(math.nan)]
    if _name not in ("seed", "image_size"):
        GOOD[_name] = [*GOOD[_name], torch.tensor(3.0, dtype=torch.float16)]
BAD["value"] += [1e300, -1e300, torch.tensor(True), np.array([True, False]), _META, np.array(math.nan)]
BAD["threshold"] += [torch.tensor(True), np.array([True]), _META, np.array(math.nan)]
BAD["lr"] += [1e300, _META, np.array(math.nan)]
BAD["bin_range"] += [np.array(math.nan), torch.empty(2, device="meta")]
BAD["labels"] += [torch.empty(3, dtype=torch.int64, device="meta")]
BAD["device"] += ["meta", torch.device("meta")]
GOOD["value"] += [-0.0, torch.tensor(0.5, dtype=torch.float16)]
GOOD["threshold"] += [-0.0, torch.tensor([0.5], dtype=torch.float16)]


class Sentinel:
    """Stands for every non-vocabulary argument: a body that ran would fail on it."""

    def __repr__(self):
        return "SENTINEL"


S = Sentinel()


def _call_args(fn, name, value):
    args, kwargs = [], {}
    for p in inspect.signature(fn).parameters.values():
        if p.name == name:
            kwargs[name] = value
            continue
        other = GOOD[p.name][0] if p.name in VOCABULARY and p.name in getattr(fn, "__door__", ()) else S
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if name in kwargs:  # a required argument after the tested one: every later one by keyword
                kwargs[p.name] = other
            else:
                args.append(other)
        elif p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = other
    return args, kwargs


def _none_allowed(fn, name):
    p = inspect.signature(fn).parameters[name]
    return p.default is None or "None" in str(p.annotation) or name in ("device", "num_threads")


def test_the_vocabulary_test_sees_every_package_and_the_count():
    # the count reported in issue 19's closing note; it grows with the package
    assert len(DOORS) >= 150, len(DOORS)  # 154 when issue 19 closed
    assert set(BAD) == set(VOCABULARY) == set(GOOD), set(VOCABULARY) ^ set(BAD)


@pytest.mark.parametrize("where", sorted(DOORS))
def test_every_vocabulary_argument_is_behind_the_door(where):
    fn, vocab = DOORS[where]
    door = getattr(fn, "__door__", None)
    assert door is not None, f"{where} takes {vocab} but is not decorated with @checked (nifkit._validation)"
    skip = fn.__door_skip__
    assert set(door) | set(skip) == set(vocab), f"{where}: checks {door}, skips {skip}, takes {vocab}"


CASES = sorted((w, n) for w, (fn, _) in DOORS.items() for n in getattr(fn, "__door__", ()))


@pytest.mark.parametrize("where,name", CASES)
def test_bad_values_are_refused_by_name_before_the_body_runs(where, name):
    fn = DOORS[where][0]
    bad = list(BAD[name])
    if not _none_allowed(fn, name):
        bad.append(None)
    for value in bad:
        args, kwargs = _call_args(fn, name, value)
        with pytest.raises((TypeError, ValueError)) as err:
            fn(*args, **kwargs)
        tb = err.tb
        while tb.tb_next is not None:
            assert tb.tb_frame.f_code is not inspect.unwrap(fn).__code__, \
                f"{where}({name}={value!r}): the body ran before the door refused"
            tb = tb.tb_next
        assert name in str(err.value), f"{where}({name}={value!r}): the message does not name {name}: {err.value}"


@pytest.mark.parametrize("where,name", CASES)
def test_good_values_pass_the_door(where, name):
    fn = DOORS[where][0]
    ran = []

    def body(*args, **kwargs):
        ran.append(kwargs.get(name))

    body.__signature__ = inspect.signature(fn)
    same = checked(body, skip=fn.__door_skip__)  # the very plan the real door built from this signature
    assert same.__door__ == fn.__door__
    good = list(GOOD[name]) + ([None] if _none_allowed(fn, name) else [])
    for value in good:
        args, kwargs = _call_args(fn, name, value)
        same(*args, **kwargs)
    assert len(ran) == len(good)
