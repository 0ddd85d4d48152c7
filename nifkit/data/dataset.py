"""The :class:`Dataset` container, the train/test split and the helpers every loader
shares (subsampling, class selection, where data files live)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._validation import as_labels, check_choice, check_finite, check_int, check_number, to_tensor
from .._validation import checked

__all__ = ["Dataset", "DEFAULT_DATA_ROOT"]

#: Default folder for downloaded / user-provided data files (``$NIFKIT_DATA`` overrides).
DEFAULT_DATA_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "nifkit", "data")


# --------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------
@checked
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

    @checked
    def loader(self, split: str = "train", batch_size: int = 64, shuffle: bool | None = None,
               seed: int = 0, **kwargs) -> torch.utils.data.DataLoader:
        """A ``DataLoader`` over one split. ``shuffle`` defaults to True for ``"train"``;
        shuffling uses a generator seeded with ``seed``, so the order is reproducible."""
        X, y = self.split(split)
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


def split_train_test(X, y, test_size, seed, stratify=True):
    """Stratified (when possible) random train/test split, deterministic in ``seed``."""
    from sklearn.model_selection import train_test_split

    n_test = _check_test_size(test_size, len(y))
    strat = y if stratify and np.bincount(y).min() >= 2 else None
    try:
        return train_test_split(X, y, test_size=n_test, random_state=seed, stratify=strat)
    except ValueError:  # too few per class for a stratified split of that size
        return train_test_split(X, y, test_size=n_test, random_state=seed, stratify=None)


def subsample(X, y, n, seed, name):
    """Keep ``n`` random rows (all when ``n`` is None)."""
    if n is None:
        return X, y
    n = check_int(n, name, minimum=1)
    if n >= len(y):
        return X, y
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(y), size=n, replace=False))
    return X[idx], y[idx]


def select_classes(X, y, classes, name):
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


def as_path(p, name):
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file or folder path (str or pathlib.Path), got {type(p).__name__}")
    return Path(p)


def data_root(root):
    if root is not None:
        return as_path(root, "root")
    return Path(os.environ.get("NIFKIT_DATA", DEFAULT_DATA_ROOT))
