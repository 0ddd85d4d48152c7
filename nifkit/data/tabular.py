"""Tabular and synthetic data sets: scikit-learn's digits and iris (always offline),
the UCI banknote file of the NIF paper (local path), and synthetic tasks whose
informative inputs are known exactly (planted, xor, parity)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .._validation import check_choice, check_int, check_number
from .dataset import Dataset, as_path, data_root, split_train_test, subsample
from .._validation import checked

__all__ = ["load_digits", "load_iris", "make_planted", "make_xor", "make_parity", "load_banknote",
           "IRIS_SCALES", "BANKNOTE_FILE", "BANKNOTE_FEATURES"]


# --------------------------------------------------------------------------------------
# Bundled (always offline)
# --------------------------------------------------------------------------------------
@checked
def load_digits(*, test_size: float = 0.2, seed: int = 0, flatten: bool = True,
                n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """scikit-learn's 1,797 handwritten digits, 8x8 pixels scaled to [0, 1] (divided by
    16), stratified train/test split. Always available offline."""
    from sklearn import datasets

    d = datasets.load_digits()
    X = d.data.astype(np.float32) / 16.0
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = split_train_test(X, y, test_size, seed)
    Xtr, ytr = subsample(Xtr, ytr, n_train, seed, "n_train")
    Xte, yte = subsample(Xte, yte, n_test, seed + 1, "n_test")
    if not flatten:
        Xtr, Xte = Xtr.reshape(-1, 1, 8, 8), Xte.reshape(-1, 1, 8, 8)
    return Dataset(
        "digits", Xtr, ytr, Xte, yte, n_classes=10,
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        image_shape=(8, 8), class_names=[str(i) for i in range(10)],
        description="scikit-learn's 8x8 handwritten digits (UCI optdigits test set), pixels / 16",
    )


IRIS_SCALES = (None, "paper", "standard", "minmax")


@checked
def load_iris(*, scale: str | None = "standard", test_size: float | int = 50, seed: int = 0) -> Dataset:
    """scikit-learn's Iris flowers: 150 samples, 4 features, 3 classes, stratified split
    (default 100 train / 50 test, as in the EI paper).

    ``scale``:
      * ``"standard"`` - subtract the training mean, divide by the training std;
      * ``"paper"`` - divide the raw centimetre values by 8 (the EI paper's
        preprocessing: inputs land in (0, 1), matching its (0, 1) bin range);
      * ``"minmax"`` - map the training range of each feature to [0, 1];
      * ``None`` - raw centimetres.
    """
    from sklearn import datasets

    check_choice(scale, "scale", IRIS_SCALES)
    d = datasets.load_iris()
    X = d.data.astype(np.float32)
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = split_train_test(X, y, test_size, seed)
    Xtr, Xte = _scale(Xtr, Xte, scale)
    return Dataset(
        "iris", Xtr, ytr, Xte, yte, n_classes=3,
        feature_names=list(d.feature_names), class_names=list(d.target_names),
        description=f"Fisher's Iris (scikit-learn), scale={scale!r}",
    )


def _scale(Xtr, Xte, scale):
    if scale is None:
        return Xtr, Xte
    if scale == "paper":
        return Xtr / 8.0, Xte / 8.0
    if scale == "standard":
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        return (Xtr - mu) / sd, (Xte - mu) / sd
    if scale == "minmax":
        lo, hi = Xtr.min(0), Xtr.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        return (Xtr - lo) / span, (Xte - lo) / span
    raise ValueError(f"scale must be one of {IRIS_SCALES}, got {scale!r}")


# --------------------------------------------------------------------------------------
# Synthetic tasks with known structure
# --------------------------------------------------------------------------------------
@checked
def make_planted(n_samples: int = 2000, n_features: int = 10, n_informative: int = 3, *,
                 informative: Sequence[int] | None = None, n_classes: int = 2,
                 rule: str = "linear", label_noise: float = 0.0, test_size: float = 0.25,
                 seed: int = 0) -> Dataset:
    """Planted-feature classification: only ``n_informative`` of ``n_features`` inputs
    determine the label; the others are independent noise.

    Inputs are i.i.d. standard normal, ``X ~ N(0, I_d)``. With ``S`` the informative
    indices (``informative``, default the first ``n_informative``) the label is

    * ``rule="linear"``: ``s = X[:, S] @ w`` with fixed random weights ``w`` (``|w_i|``
      in [0.5, 1.5], random signs); ``y`` = the quantile bin of ``s`` among ``n_classes``
      equally likely bins (balanced classes);
    * ``rule="xor"`` (``n_classes=2``): ``y = prod_i sign(X[:, i]) > 0`` over ``S``, a
      purely synergistic rule no single feature reveals.

    ``label_noise`` replaces that fraction of labels with uniformly random ones.
    Because the non-informative columns are drawn independently of everything else,
    they carry exactly zero information about ``y``. ``Dataset.informative`` lists ``S``.
    """
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    n_features = check_int(n_features, "n_features", minimum=1)
    label_noise = check_number(label_noise, "label_noise")
    if informative is None:
        n_informative = check_int(n_informative, "n_informative")
        if not 1 <= n_informative <= n_features:
            raise ValueError(f"n_informative must be in 1..n_features={n_features}, got {n_informative}")
        informative = list(range(n_informative))
    else:
        if isinstance(informative, (str, bytes)) or not hasattr(informative, "__iter__"):
            raise TypeError(f"informative must be a sequence of feature indices, got {informative!r}")
        informative = sorted(check_int(i, "informative") for i in informative)
        if not informative or len(set(informative)) != len(informative) or \
                min(informative) < 0 or max(informative) >= n_features:
            raise ValueError(f"informative must be distinct indices in 0..{n_features - 1}, got {informative}")
    if rule not in ("linear", "xor"):
        raise ValueError(f"rule must be 'linear' or 'xor', got {rule!r}")
    if rule == "xor" and n_classes != 2:
        raise ValueError("rule='xor' makes a binary task; use n_classes=2")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be a fraction in [0, 1], got {label_noise}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    Xs = X[:, informative].astype(np.float64)
    if rule == "linear":
        w = rng.uniform(0.5, 1.5, len(informative)) * rng.choice([-1.0, 1.0], len(informative))
        s = Xs @ w
        # population quantiles of s ~ N(0, |w|^2): balanced classes, no data dependence
        from scipy.stats import norm

        edges = norm.ppf(np.arange(1, n_classes) / n_classes) * np.linalg.norm(w)
        y = np.searchsorted(edges, s).astype(np.int64)
    else:
        w = None
        y = (np.prod(np.sign(Xs), axis=1) > 0).astype(np.int64)
    if label_noise > 0:
        flip = rng.random(n_samples) < label_noise
        y[flip] = rng.integers(0, n_classes, int(flip.sum()))
    Xtr, Xte, ytr, yte = split_train_test(X, y, test_size, seed)
    return Dataset(
        "planted", Xtr, ytr, Xte, yte, n_classes=n_classes,
        feature_names=[f"x{i}" for i in range(n_features)], informative=informative,
        class_names=[str(c) for c in range(n_classes)],
        description=(f"{n_features} standard-normal features; label = {rule} rule on features "
                     f"{informative}; label noise {label_noise}"),
        extra={"weights": w, "rule": rule},
    )


@checked
def make_xor(n_samples: int = 1000, n_bits: int = 2, *, noise: float = 0.1, n_distractors: int = 0,
             label_noise: float = 0.0, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """XOR / parity task: ``y = x_1 xor ... xor x_k`` (``k = n_bits``), the classic purely
    synergistic function: every proper subset of the bits carries zero information
    about ``y``.

    Each of the ``2**k`` bit patterns appears equally often (counts differ by at most
    one), so the classes are balanced. Features are the bits in {0, 1} plus Gaussian
    noise of standard deviation ``noise``; ``n_distractors`` extra random bits (plus
    the same noise) are appended and carry no label information. ``label_noise`` flips
    that fraction of labels. ``Dataset.informative`` is ``[0, ..., k-1]``.
    """
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    n_bits = check_int(n_bits, "n_bits")
    n_distractors = check_int(n_distractors, "n_distractors", minimum=0)
    noise = check_number(noise, "noise")
    label_noise = check_number(label_noise, "label_noise")
    if n_bits < 1:
        raise ValueError(f"n_bits must be >= 1, got {n_bits}")
    if n_samples < 2 ** n_bits:
        raise ValueError(f"n_samples={n_samples} is fewer than the {2 ** n_bits} bit patterns of "
                         f"n_bits={n_bits}; use more samples")
    if noise < 0:
        raise ValueError(f"noise must be >= 0 (a standard deviation), got {noise}")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be a fraction in [0, 1], got {label_noise}")
    rng = np.random.default_rng(seed)
    pattern = rng.permutation(np.arange(n_samples) % (2 ** n_bits))
    bits = (pattern[:, None] >> np.arange(n_bits)[None, :]) & 1
    y = (bits.sum(1) % 2).astype(np.int64)
    if n_distractors:
        bits = np.concatenate([bits, rng.integers(0, 2, (n_samples, int(n_distractors)))], axis=1)
    X = bits.astype(np.float32)
    if noise:
        X = X + (noise * rng.standard_normal(X.shape)).astype(np.float32)
    if label_noise > 0:
        flip = rng.random(n_samples) < label_noise
        y[flip] = 1 - y[flip]
    Xtr, Xte, ytr, yte = split_train_test(X, y, test_size, seed)
    name = "xor" if n_bits == 2 else f"parity{n_bits}"
    return Dataset(
        name, Xtr, ytr, Xte, yte, n_classes=2, informative=list(range(n_bits)),
        feature_names=[f"bit{i}" for i in range(n_bits)] + [f"distractor{i}" for i in range(int(n_distractors))],
        class_names=["even", "odd"],
        description=f"parity of {n_bits} bits (+N(0, {noise}^2) noise), {n_distractors} distractor bits",
    )


@checked
def make_parity(n_samples: int = 2000, n_bits: int = 3, **kwargs) -> Dataset:
    """Parity of ``n_bits`` bits: :func:`make_xor` with a default of 3 bits."""
    return make_xor(n_samples, n_bits, **kwargs)


# --------------------------------------------------------------------------------------
# The NIF paper's banknote file (local path only)
# --------------------------------------------------------------------------------------
BANKNOTE_FILE = "data_banknote_authentication.txt"
BANKNOTE_FEATURES = ["variance", "skewness", "curtosis", "entropy"]


@checked
def load_banknote(path=None, *, scale: str | None = "standard", test_size: float = 0.25,
                  seed: int = 0) -> Dataset:
    """The UCI Banknote Authentication data of the NIF paper: 1,372 banknote images
    described by 4 wavelet features (variance, skewness, curtosis, entropy), 2 classes.

    No Python or Debian package ships this file, so nifkit never fetches it: pass
    ``path`` to ``data_banknote_authentication.txt`` (comma-separated, 4 features then
    the 0/1 label), or put it in ``~/.cache/nifkit/data`` (``$NIFKIT_DATA``).
    ``scale`` as in :func:`load_iris` (``"standard"``, ``"minmax"`` or ``None``).
    """
    check_choice(scale, "scale", (None, "standard", "minmax"))
    p = as_path(path, "path") if path is not None else data_root(None) / BANKNOTE_FILE
    if p.is_dir():
        p = p / BANKNOTE_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"Banknote data not found at {p}. It ships with no package: download "
            f"{BANKNOTE_FILE} from the UCI Machine Learning Repository (data set 267, "
            "'banknote authentication') and pass load_banknote(path=...), or save it as "
            f"{data_root(None) / BANKNOTE_FILE}. Offline, nifkit.data.make_planted(n_features=4) "
            "is a synthetic stand-in with known informative features."
        )
    arr = np.loadtxt(p, delimiter=",", dtype=np.float64, ndmin=2)
    if arr.shape[1] != 5:
        raise ValueError(f"{p} must have 5 comma-separated columns (4 features, label); got {arr.shape[1]}")
    X, y = arr[:, :4].astype(np.float32), arr[:, 4].astype(np.int64)
    Xtr, Xte, ytr, yte = split_train_test(X, y, test_size, seed)
    Xtr, Xte = _scale(Xtr, Xte, scale)
    return Dataset("banknote", Xtr, ytr, Xte, yte, n_classes=2, feature_names=list(BANKNOTE_FEATURES),
                   class_names=["class 0", "class 1"], description=f"UCI banknote authentication ({p})")
