"""The registry behind tests/test_bad_input.py: public entry points and classes of bad input.

HOW TO ADD AN ENTRY POINT (chapter packages: nif, ablation, ei, relay, ...):
    append an ``Entry`` to ``ENTRIES`` (below, or in a section for your package):

        Entry("ablation.ordered_ablation", ordered_ablation,
              valid=dict(model=_mlp(), data=_X, n_bins=4, seed=0),
              kinds=dict(data="inputs", n_bins="n_bins", seed="seed"),
              too_few=dict(data=_X[:3]))

    ``valid`` is a minimal call that must succeed (keep it fast: tiny data, few steps);
    ``kinds`` maps each argument to test onto a kind of ``BAD``: every bad value of that
    kind replaces the valid one in turn, and the call must raise ValueError/TypeError whose
    message names the argument (``names`` overrides the name expected in the message);
    ``too_few`` optionally replaces some arguments with too few samples (the error must
    name ``too_few_name``, default the first replaced argument).
    Add a kind to ``BAD`` when an argument fits none; a bad value is a constant or a
    function of the valid value (so shapes follow the valid input).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from nifkit import data as D
from nifkit.info import (
    Binner,
    PairwiseMI,
    co_information,
    conditional_entropy,
    conditional_mutual_information,
    discretize,
    dv_mi,
    dv_mi_pairs,
    entropy,
    entropy_from_counts,
    gaussian_mi,
    gaussian_mi_analytic,
    gaussian_mi_pairs,
    ksg_mi,
    ksg_mi_pairs,
    mi_from_counts,
    mutual_information,
    pack,
    pairwise_mi,
    pairwise_shuffle_test,
    plugin_bias,
    shuffle_test,
)
from nifkit.record import record


@dataclass
class Entry:
    name: str
    fn: Callable[..., Any]
    valid: dict
    kinds: dict
    names: dict = field(default_factory=dict)   # argument -> the name its messages use
    too_few: dict | None = None
    too_few_name: str | None = None


# --------------------------------------------------------------------------------------
# Bad values by kind of argument: (class, value or f(valid value))
# --------------------------------------------------------------------------------------
def _with(v, value):
    """A float copy of ``v`` with its first element set to ``value``."""
    out = np.array(v, dtype=np.float64, copy=True)
    out.reshape(-1)[0] = value
    return out


def _col(v):
    return np.asarray(v).reshape(len(v), -1)


_NUMBERS = [
    ("wrong dtype", lambda v: np.full(np.shape(v), "a")),
    ("wrong dtype", lambda v: np.zeros(np.shape(v), dtype=complex)),
    ("NaN", lambda v: _with(v, np.nan)),
    ("inf", lambda v: _with(v, np.inf)),
    ("empty", lambda v: np.asarray(v)[:0]),
    ("ragged", [[1.0, 2.0], [3.0]]),
]
_CODES_BAD = [
    ("wrong shape", lambda v: np.zeros((len(v), 2, 2), dtype=np.int64)),
    ("wrong dtype", lambda v: np.full(np.shape(v), "a")),
    ("NaN", lambda v: _with(v, np.nan)),
    ("float-for-int", lambda v: _with(v, 0.5)),
    ("negative", lambda v: _with(v, -1).astype(np.int64)),
    ("ragged", [[1, 2], [3]]),
]
_INT_BAD = [("float-for-int", 3.7), ("bool", True), ("string", "3"), ("list", [3])]

BAD: dict[str, list] = {
    # float samples x features, 1-D or 2-D
    "array": [("wrong shape", lambda v: np.zeros((len(v), 2, 2)))] + _NUMBERS,
    # model inputs: any shape the model takes, so no wrong-shape class
    "inputs": [c for c in _NUMBERS if c[0] != "ragged"],
    # data set features: at least 2-D
    "features": [("wrong shape", lambda v: np.zeros(len(v)))] + _NUMBERS[:4],
    "codes": _CODES_BAD + [("empty", lambda v: np.asarray(v)[:0])],
    # one value per sample of anything (handed on to a user's function): only the length
    "paired": [("wrong length", lambda v: np.asarray(v)[:-1]), ("scalar", 3.0)],
    "labels": [
        ("wrong shape", lambda v: np.zeros((len(v), 2), dtype=np.int64)),
        ("wrong length", lambda v: np.asarray(v)[:-1]),
        ("wrong dtype", lambda v: np.full(len(v), "cat")),
        ("NaN", lambda v: _with(v, np.nan)),
        ("float-for-int", lambda v: _with(v, 0.5)),
        ("negative", lambda v: _with(v, -1).astype(np.int64)),
        ("label >= n_classes", lambda v: _with(v, 99).astype(np.int64)),
    ],
    "counts": [
        ("wrong dtype", lambda v: np.full(np.shape(v), "a")),
        ("NaN", lambda v: _with(v, np.nan)),
        ("inf", lambda v: _with(v, np.inf)),
        ("negative", lambda v: _with(v, -1.0)),
    ],
    "seed": [("negative", -1), ("float", 1.5), ("float-for-int", 2.0), ("bool", True), ("string", "0"),
             ("None", None), ("too large", 2**64), ("list", [0])],
    "n_bins": [("one bin", 1), ("zero", 0), ("negative", -3)] + _INT_BAD,
    "n_bins_or_none": [("one bin", 1), ("negative", -3)] + _INT_BAD,
    "count": [("zero", 0), ("negative", -1), ("None", None)] + _INT_BAD,
    "count_or_none": [("zero", 0), ("negative", -1)] + _INT_BAD,
    "nonneg_int": [("negative", -1)] + _INT_BAD,
    "axis": [("out of range", 5), ("float-for-int", 1.5), ("string", "0")],
    "device": [("unknown", "gpu0"), ("float", 3.5), ("object", object())],
    "memory_budget": [("zero", 0), ("negative", -1), ("float-for-int", 1.5), ("string", "1GB")],
    "correction": [("unknown", "jackknife"), ("int", 1)],
    "num_threads": [("zero", 0), ("float-for-int", 1.5), ("string", "2")],
    "bin_range": [("reversed", (1.0, 0.0)), ("inf", (0.0, np.inf)), ("NaN", (np.nan, 1.0)),
                  ("string", "ab"), ("one value", (0.0,))],
    "fraction": [("negative", -0.1), ("above 1", 1.5), ("NaN", np.nan), ("string", "0.1")],
    "test_size": [("fraction above 1", 1.5), ("zero", 0), ("all samples", 10**6), ("bool", True),
                  ("string", "0.2")],
    "positive": [("zero", 0.0), ("negative", -1.0), ("NaN", np.nan), ("string", "x")],
    "nonneg": [("negative", -1.0), ("NaN", np.nan), ("string", "x")],
    "rho": [("one", 1.0), ("beyond", 2.0), ("NaN", np.nan), ("string", "x")],
    "choice": [("unknown", "nonsense"), ("int", 3)],
    "split": [("unknown", "validation"), ("int", 0)],
    "pairs": [("negative index", [[-1, 0]]), ("index too large", [[0, 99]]), ("float-for-int", [[0.5, 0]]),
              ("wrong shape", [[0, 1, 2]]), ("wrong dtype", [["a", "b"]])],
    "callable": [("string", "mutual_information"), ("int", 3)],
    "indices": [("negative", [-1]), ("too large", [99]), ("float-for-int", [0.5]), ("string", "ab")],
    "size": [("zero", 0), ("float-for-int", 2.5), ("three values", (2, 2, 2)), ("string", "5")],
    "flag": [("string", "yes"), ("int", 2)],
    "path": [("int", 3), ("list", ["a", "b"])],
}


def bad_values(kind):
    return BAD[kind]


# --------------------------------------------------------------------------------------
# Small valid inputs
# --------------------------------------------------------------------------------------
_rng = np.random.default_rng(0)
X40 = _rng.standard_normal((40, 2))
Y40 = X40[:, :1] + 0.5 * _rng.standard_normal((40, 1))
C40 = _rng.integers(0, 2, (40, 3))           # binary codes: 40 samples >= 2 x 2 cells
C40b = _rng.integers(0, 2, (40, 2))
v40 = _rng.integers(0, 3, 40)
w40 = _rng.integers(0, 3, 40)
z40 = _rng.integers(0, 2, 40)
_fitted = Binner(n_bins=3).fit(X40)
_IMAGES = _rng.random((3, 8, 8))
_DS = D.Dataset("tiny", np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1], n_classes=2)
_NET = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
_IDX = Path(tempfile.mkdtemp(prefix="nifkit_bad_input_")) / "labels-idx1-ubyte"
_IDX.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 3]))
_BANKNOTE = Path(tempfile.mkdtemp(prefix="nifkit_bad_input_")) / "banknote.txt"
_BANKNOTE.write_text("\n".join(f"{a:.3f},{b:.3f},{a - b:.3f},{a * b:.3f},{i % 2}"
                               for i, (a, b) in enumerate(_rng.standard_normal((24, 2)))))


def _acc(n_bins=2, device=None, a=C40):
    return PairwiseMI(n_bins=n_bins, device=device).update(a)


def _acc_mi(correction=None, a=C40):
    return PairwiseMI(n_bins=2).update(a).mi(correction=correction)


def _fit(x=X40, n_bins=4, binning="minmax"):
    return Binner(n_bins=n_bins, binning=binning).fit(x)


def _transform(x=X40[:5], chunk_bytes=1024):
    return _fitted.transform(x, chunk_bytes=chunk_bytes)


def _entropy(x=v40, correction=None):
    return entropy(x, correction=correction)


def _co_information(x=v40, y=w40, z=z40):
    return co_information(x, y, z)


def _pack(x=C40):
    return pack(x)


def _dataset(X_train=_DS.X_train.numpy(), y_train=_DS.y_train.numpy(), n_classes=2):
    return D.Dataset("t", X_train, y_train, np.zeros((2, 2)), [0, 1], n_classes=n_classes)


def _loader(split="train", batch_size=2, shuffle=None, seed=0):
    return _DS.loader(split, batch_size=batch_size, shuffle=shuffle, seed=seed)


def _record(data=X40, batch_size=16, max_samples=None, device=None, num_threads=None, reused="error",
            targets=None, inputs=False):
    return record(_NET, data, ["0"], batch_size=batch_size, max_samples=max_samples, device=device,
                  num_threads=num_threads, reused=reused, targets=targets, inputs=inputs, progress=False)


_DV = dict(steps=2, batch_size=8, hidden=4, n_eval_shuffles=1)
_DV_KINDS = dict(steps="count", batch_size="count", hidden="count", n_eval_shuffles="count", lr="positive",
                 seed="seed", device="device")

ENTRIES: list[Entry] = [
    # ---- nifkit.info: discrete -------------------------------------------------------
    Entry("info.entropy", _entropy, dict(x=v40, correction=None), dict(x="codes", correction="correction"),
          names=dict(x="variable 0")),
    Entry("info.conditional_entropy", conditional_entropy, dict(x=v40, given=w40),
          dict(x="codes", given="codes", correction="correction")),
    Entry("info.mutual_information", mutual_information, dict(x=v40, y=w40),
          dict(x="codes", y="codes", correction="correction")),
    Entry("info.conditional_mutual_information", conditional_mutual_information, dict(x=v40, y=w40, z=z40),
          dict(x="codes", y="codes", z="codes", correction="correction")),
    Entry("info.co_information", _co_information, dict(x=v40, y=w40, z=z40), dict(x="codes", z="codes"),
          names=dict(x="variable 0", z="variable 2")),
    Entry("info.pack", _pack, dict(x=C40), dict(x="codes"), names=dict(x="variable 0")),
    Entry("info.entropy_from_counts", entropy_from_counts, dict(counts=np.array([[3, 1], [2, 2]]), axis=-1),
          dict(counts="counts", axis="axis", correction="correction")),
    # ---- nifkit.info: binning --------------------------------------------------------
    Entry("info.discretize", discretize, dict(x=X40, n_bins=4, binning="minmax"),
          dict(x="array", n_bins="n_bins", binning="choice")),
    Entry("info.discretize(fixed)", discretize, dict(x=X40, n_bins=4, binning="fixed", bin_range=(-3, 3)),
          dict(bin_range="bin_range"), names=dict(bin_range="bin_range")),
    Entry("info.Binner.fit", _fit, dict(x=X40, n_bins=4, binning="minmax"),
          dict(x="array", n_bins="n_bins", binning="choice")),
    Entry("info.Binner.transform", _transform, dict(x=X40[:5], chunk_bytes=1024),
          dict(x="array", chunk_bytes="count")),
    # ---- nifkit.info: all pairs ------------------------------------------------------
    Entry("info.pairwise_mi", pairwise_mi, dict(a=C40, b=C40b, n_bins=2),
          dict(a="codes", b="codes", n_bins="n_bins_or_none", n_bins_b="n_bins_or_none", correction="correction",
               memory_budget="memory_budget", device="device"),
          too_few=dict(a=C40[:3], b=C40b[:3])),
    Entry("info.PairwiseMI.update", _acc, dict(n_bins=2, a=C40), dict(n_bins="n_bins", device="device", a="codes")),
    Entry("info.PairwiseMI.mi", _acc_mi, dict(a=C40), dict(correction="correction"),
          too_few=dict(a=C40[:3]), too_few_name="updates"),
    Entry("info.mi_from_counts", mi_from_counts,
          dict(joint=np.array([[3.0, 1.0], [1.0, 3.0]]), count_a=np.array([4.0, 4.0]), count_b=np.array([4.0, 4.0]),
               n=8),
          dict(joint="counts", count_a="counts", count_b="counts", n="positive", correction="correction")),
    Entry("info.pairwise_shuffle_test", pairwise_shuffle_test, dict(a=C40, b=C40b, n_shuffles=2, seed=0),
          dict(a="codes", b="codes", n_shuffles="count", seed="seed"), too_few=dict(a=C40[:3], b=C40b[:3])),
    Entry("info.plugin_bias", plugin_bias, dict(n_bins_x=4, n_bins_y=4, n_samples=100),
          dict(n_bins_x="count", n_bins_y="count", n_samples="count")),
    # ---- nifkit.info: continuous -----------------------------------------------------
    Entry("info.gaussian_mi", gaussian_mi, dict(x=X40, y=Y40), dict(x="array", y="array"),
          too_few=dict(x=X40[:3], y=Y40[:3])),
    Entry("info.gaussian_mi_analytic", gaussian_mi_analytic, dict(rho=0.5, dim=1), dict(rho="rho", dim="count")),
    Entry("info.gaussian_mi_pairs", gaussian_mi_pairs, dict(a=X40, b=Y40), dict(a="array", b="array"),
          too_few=dict(a=X40[:2], b=Y40[:2])),
    Entry("info.ksg_mi", ksg_mi, dict(x=X40, y=Y40, k=3, jitter=1e-10, seed=0),
          dict(x="array", y="array", k="count", jitter="nonneg", seed="seed"), too_few=dict(x=X40[:4], y=Y40[:4])),
    Entry("info.ksg_mi_pairs", ksg_mi_pairs, dict(a=X40, b=Y40, pairs=[[0, 0], [1, 0]], k=3, seed=0),
          dict(a="array", b="array", pairs="pairs", k="count", jitter="nonneg", seed="seed",
               memory_budget="memory_budget"), too_few=dict(a=X40[:4], b=Y40[:4])),
    # ---- nifkit.info: neural (DV) ----------------------------------------------------
    Entry("info.dv_mi", dv_mi, dict(x=X40, y=Y40, **_DV), dict(x="array", y="array", **_DV_KINDS),
          too_few=dict(x=X40[:10], y=Y40[:10])),
    Entry("info.dv_mi_pairs", dv_mi_pairs, dict(a=X40, b=Y40, pairs=[[0, 0], [1, 0]], **_DV),
          dict(a="array", b="array", pairs="pairs", **_DV_KINDS), too_few=dict(a=X40[:10], b=Y40[:10])),
    # ---- nifkit.info: null -----------------------------------------------------------
    Entry("info.shuffle_test", shuffle_test, dict(x=v40, y=w40, estimator=mutual_information, n_shuffles=3),
          dict(y="paired", estimator="callable", n_shuffles="count", seed="seed")),
    # ---- nifkit.data -----------------------------------------------------------------
    Entry("data.Dataset", _dataset, dict(X_train=_DS.X_train.numpy(), y_train=_DS.y_train.numpy(), n_classes=2),
          dict(X_train="features", y_train="labels", n_classes="count")),
    Entry("data.Dataset.loader", _loader, dict(split="train", batch_size=2, seed=0),
          dict(split="split", batch_size="count", seed="seed", shuffle="flag")),
    Entry("data.load_digits", D.load_digits, dict(seed=0, n_train=20, n_test=10),
          dict(seed="seed", n_train="count_or_none", n_test="count_or_none", test_size="test_size")),
    Entry("data.load_iris", D.load_iris, dict(seed=0), dict(seed="seed", scale="choice", test_size="test_size")),
    Entry("data.make_planted", D.make_planted, dict(n_samples=40, n_features=4, seed=0),
          dict(n_samples="count", n_features="count", n_informative="count", informative="indices",
               n_classes="n_bins", rule="choice", label_noise="fraction", test_size="test_size", seed="seed")),
    Entry("data.make_xor", D.make_xor, dict(n_samples=40, seed=0),
          dict(n_samples="count", n_bits="count", noise="nonneg", n_distractors="nonneg_int",
               label_noise="fraction", test_size="test_size", seed="seed"),
          too_few=dict(n_samples=3, n_bits=3), too_few_name="n_samples"),
    Entry("data.make_parity", D.make_parity, dict(n_samples=40, seed=0),
          dict(n_samples="count", n_bits="count", seed="seed")),
    Entry("data.downsample", D.downsample, dict(images=_IMAGES, size=(4, 4)),
          dict(images="features", size="size", mode="choice", chunk="count")),
    Entry("data.load_mnist", D.load_mnist, dict(n_train=50, n_test=20, seed=0),
          dict(seed="seed", n_train="count_or_none", n_test="count_or_none", size="size", resize_mode="choice",
               classes="indices", test_size="test_size", root="path")),
    Entry("data.load_fashion_mnist", D.load_fashion_mnist, dict(n_train=50, n_test=20, seed=0),
          dict(seed="seed", n_train="count_or_none", n_test="count_or_none", size="size", resize_mode="choice",
               classes="indices", root="path")),
    Entry("data.load_banknote", D.load_banknote, dict(path=_BANKNOTE, seed=0),
          dict(seed="seed", scale="choice", test_size="test_size", path="path")),
    Entry("data.read_idx", D.read_idx, dict(path=_IDX), dict(path="path")),
    # ---- nifkit.record ---------------------------------------------------------------
    Entry("record.record", _record, dict(data=X40, targets=np.zeros(40, dtype=np.int64)),
          dict(data="inputs", batch_size="count", max_samples="count_or_none", device="device",
               num_threads="num_threads", reused="choice", targets="paired", inputs="flag")),
]

# ---- nifkit.compare (the capstone) -----------------------------------------------------
from nifkit.compare import compare as _compare, knockout_truth as _knockout_truth  # noqa: E402
from nifkit.models import mlp as _mlp_c  # noqa: E402

_CMP_NET = _mlp_c([4, 5, 3], activation="tanh", seed=0)
_CMP_X = np.random.default_rng(0).random((40, 4)).astype(np.float32)
_CMP_Y = np.arange(40) % 3


def _cmp(data=(_CMP_X, _CMP_Y), max_samples=None, seed=0, num_threads=None, split="train"):
    return _compare(_CMP_NET, data, ["ablation"], max_samples=max_samples, seed=seed, num_threads=num_threads,
                    split=split)


def _truth(k=1, max_sets=10, seed=0, max_samples=None, value="mean"):
    return _knockout_truth(_CMP_NET, (_CMP_X, _CMP_Y), k=k, max_sets=max_sets, seed=seed, max_samples=max_samples,
                           value=value)


ENTRIES += [
    Entry("compare.compare", _cmp, dict(),
          dict(max_samples="count_or_none", seed="seed", num_threads="num_threads", split="split")),
    Entry("compare.knockout_truth", _truth, dict(),
          dict(k="count", max_sets="count", seed="seed", max_samples="count_or_none", value="choice")),
]

#: (entry, argument, class) combinations that are not bad input for that entry
SKIP = {
    # the fitted-binner transform accepts an empty batch (no samples in, none out)
    ("info.Binner.transform", "x", "empty"),
    # a streaming accumulator accepts an empty batch (it adds nothing)
    ("info.PairwiseMI.update", "a", "empty"),
    # downsample of zero images is an empty stack, not an error
    ("data.downsample", "images", "empty"),
}
