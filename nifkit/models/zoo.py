"""Model builders and the zoo: small nets of the papers and pretrained vision models.

Layer naming convention (stable, so chapters can address layers by name):

* :func:`mlp` - ``fc1, act1, fc2, act2, ..., fc_out`` and ``act_out`` when
  ``out_activation`` is set. ``mlp([64, 32, 10])`` has ``fc1`` (64->32), ``act1``,
  ``fc_out`` (32->10).
* :func:`small_cnn` - ``conv1, act1, pool1, conv2, act2, pool2, ..., flatten``, then
  ``fc1, act_fc1`` for each hidden dense layer, and ``fc_out``.
"""
from __future__ import annotations

import copy
import math
import os
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from ..runtime import Progress, seeded
from .._validation import check_int, checked

__all__ = ["ACTIVATIONS", "INITS", "mlp", "small_cnn", "residual_cnn", "ResidualCNN", "ResidualBlock", "init_weights", "PRETRAINED", "load_pretrained",
           "pretrained_path"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "linear": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}

INITS = ("default", "uniform_fan_in", "xavier", "xavier_normal", "kaiming", "kaiming_normal", "orthogonal")


def _make_activation(activation, arg="activation"):
    if activation is None:
        return None
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"{arg} must be one of {sorted(ACTIVATIONS)} (or an nn.Module class), got {activation!r}")
        return ACTIVATIONS[key]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)
    raise TypeError(f"{arg} must be a name like 'relu', an nn.Module class or instance; got {type(activation).__name__}")


def init_weights(module: nn.Module, init="default", activation: str | None = "relu") -> nn.Module:
    """(Re)initialise every Linear and Conv layer of ``module`` in place.

    * ``"default"`` - PyTorch's own (Kaiming-uniform with a=sqrt(5); left untouched);
    * ``"uniform_fan_in"`` - weights and biases ``~ U(-1/sqrt(fan_in), +1/sqrt(fan_in))``,
      the EI paper's initialisation;
    * ``"xavier"`` / ``"xavier_normal"`` - Glorot uniform / normal, biases 0;
    * ``"kaiming"`` / ``"kaiming_normal"`` - He uniform / normal for ReLU, biases 0;
    * ``"orthogonal"`` - orthogonal weights, biases 0;
    * a callable ``f(layer)`` applied to each Linear/Conv layer.

    Uses the global torch RNG (wrap in :func:`torch.random.fork_rng` to isolate it, as
    :func:`mlp` does when given a seed).
    """
    if init == "default":
        return module
    if not (callable(init) or init in INITS):
        raise ValueError(f"init must be one of {INITS} or a callable f(layer); got {init!r}")
    for m in module.modules():
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            continue
        if callable(init):
            init(m)
            continue
        w, b = m.weight, m.bias
        with torch.no_grad():
            if init == "uniform_fan_in":
                bound = 1.0 / math.sqrt(w[0].numel())
                w.uniform_(-bound, bound)
                if b is not None:
                    b.uniform_(-bound, bound)
                continue
            if init == "xavier":
                nn.init.xavier_uniform_(w)
            elif init == "xavier_normal":
                nn.init.xavier_normal_(w)
            elif init == "kaiming":
                nn.init.kaiming_uniform_(w, nonlinearity="relu")
            elif init == "kaiming_normal":
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            elif init == "orthogonal":
                nn.init.orthogonal_(w)
            if b is not None:
                b.zero_()
    return module



@checked
def mlp(sizes: Sequence[int], activation="relu", bias: bool = True, init="default",
        out_activation=None, seed: int | None = None) -> nn.Sequential:
    """A fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Modules are named ``fc1, act1, ..., fc_out`` (and ``act_out`` if
    ``out_activation`` is given), so ``mlp([4, 5, 5, 3], "sigmoid", bias=False,
    init="uniform_fan_in", out_activation="sigmoid")`` is the EI paper's Iris net with
    layers ``fc1, act1, fc2, act2, fc_out, act_out``. ``activation`` is a name in
    :data:`ACTIVATIONS`, an ``nn.Module`` class or instance. ``seed`` makes the
    initial weights reproducible without touching the global RNG.
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"sizes must be a list of layer widths, e.g. [4, 16, 2]; got {sizes!r}")
    sizes = [check_int(s, f"sizes[{i}]", minimum=1) for i, s in enumerate(sizes)]  # 2.7 or True is no width
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least an input and an output size, all >= 1; got {sizes}")
    _make_activation(activation)  # validate early
    _make_activation(out_activation, "out_activation")
    layers: list[tuple[str, nn.Module]] = []
    with seeded(seed):
        n_hidden = len(sizes) - 2
        for i in range(n_hidden):
            layers.append((f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1], bias=bias)))
            layers.append((f"act{i + 1}", _make_activation(activation)))
        layers.append(("fc_out", nn.Linear(sizes[-2], sizes[-1], bias=bias)))
        if out_activation is not None:
            layers.append(("act_out", _make_activation(out_activation, "out_activation")))
        net = nn.Sequential(OrderedDict(layers))
        init_weights(net, init)
    return net


@checked
def small_cnn(in_channels: int = 1, image_size=(8, 8), channels: Sequence[int] = (8, 16),
              n_classes: int = 10, *, kernel_size: int = 3, activation="relu", pool: bool = True,
              hidden: Sequence[int] = (), bias: bool = True, init="default",
              seed: int | None = None) -> nn.Sequential:
    """A small convolutional classifier for ``(N, in_channels, H, W)`` images.

    Each conv block is ``conv{i}`` (``kernel_size``, "same" padding), ``act{i}`` and,
    with ``pool=True``, ``pool{i}`` (2x2 max-pool, skipped once the map is 1 pixel);
    then ``flatten``, optional dense layers ``fc{j}, act_fc{j}`` of sizes ``hidden``,
    and ``fc_out``. Works for 8x8 digits and 28x28 MNIST alike.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    h, w = (int(s) for s in image_size)
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1 or in_channels < 1 or n_classes < 1:
        raise ValueError(f"channels, in_channels and n_classes must be positive; got {channels}, {in_channels}, {n_classes}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number (for 'same' padding), got {kernel_size}")
    _make_activation(activation)
    layers: list[tuple[str, nn.Module]] = []
    with seeded(seed):
        c_in = int(in_channels)
        for i, c in enumerate(channels, 1):
            layers.append((f"conv{i}", nn.Conv2d(c_in, c, kernel_size, padding=kernel_size // 2, bias=bias)))
            layers.append((f"act{i}", _make_activation(activation)))
            if pool and min(h, w) >= 2:
                layers.append((f"pool{i}", nn.MaxPool2d(2)))
                h, w = h // 2, w // 2
            c_in = c
        layers.append(("flatten", nn.Flatten()))
        n = c_in * h * w
        for j, k in enumerate(hidden, 1):
            layers.append((f"fc{j}", nn.Linear(n, int(k), bias=bias)))
            layers.append((f"act_fc{j}", _make_activation(activation)))
            n = int(k)
        layers.append(("fc_out", nn.Linear(n, int(n_classes), bias=bias)))
        net = nn.Sequential(OrderedDict(layers))
        init_weights(net, init)
    return net



class ResidualBlock(nn.Module):
    """``act(x + conv2(act1(conv1(x))))``: two "same" convolutions of ``channels`` and an
    identity skip connection (a torchvision ``BasicBlock`` without batch norm). The
    activation after the merge is ``act``, one module per call site (no reuse)."""

    def __init__(self, channels: int, kernel_size: int = 3, activation="relu", bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.act1 = _make_activation(activation)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.act = _make_activation(activation)

    def forward(self, x):
        return self.act(x + self.conv2(self.act1(self.conv1(x))))


@checked
class ResidualCNN(nn.Module):
    """The residual CNN of :func:`residual_cnn`: ``stem`` (conv), ``stem_act``, then
    ``block1 .. blockB`` (:class:`ResidualBlock`) with a 2x2 ``pool{i}`` (max) after every
    ``blocks_per_stage`` blocks except the last stage, ``gap`` (global average pool),
    ``flatten`` and ``fc_out``."""

    def __init__(self, in_channels, channels, n_blocks, blocks_per_stage, n_classes, kernel_size, activation, bias):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.stem_act = _make_activation(activation)
        body: list[tuple[str, nn.Module]] = []
        for b in range(1, n_blocks + 1):
            body.append((f"block{b}", ResidualBlock(channels, kernel_size, activation, bias)))
            if b % blocks_per_stage == 0 and b < n_blocks:
                body.append((f"pool{b // blocks_per_stage}", nn.MaxPool2d(2)))
        self.body = nn.Sequential(OrderedDict(body))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc_out = nn.Linear(channels, n_classes, bias=bias)

    def forward(self, x):
        return self.fc_out(self.flatten(self.gap(self.body(self.stem_act(self.stem(x))))))


@checked
def residual_cnn(in_channels: int = 1, channels: int = 16, n_blocks: int = 6, n_classes: int = 10, *,
                 blocks_per_stage: int = 2, kernel_size: int = 3, activation="relu", bias: bool = True,
                 init="default", seed: int | None = None) -> ResidualCNN:
    """A small residual network for ``(N, in_channels, H, W)`` images (chapter 7):
    a conv ``stem`` to ``channels`` channels, ``n_blocks`` residual blocks
    (``x + conv2(act(conv1(x)))``, identity skips) in stages of ``blocks_per_stage``
    separated by 2x2 max-pools, global average pooling and a linear read-out. Any image
    size works (the pool before the read-out is adaptive). Module names: ``stem``,
    ``stem_act``, ``body.block1`` .. ``body.block{n_blocks}`` (each with ``conv1``, ``act1``,
    ``conv2``, ``act``), ``body.pool{i}``, ``gap``, ``flatten``, ``fc_out``."""
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
    if blocks_per_stage < 1:
        raise ValueError(f"blocks_per_stage must be a positive integer, got {blocks_per_stage}")
    _make_activation(activation)
    with seeded(seed):
        net = ResidualCNN(int(in_channels), int(channels), int(n_blocks), int(blocks_per_stage), int(n_classes),
                          int(kernel_size), activation, bias)
        init_weights(net, init)
    return net


# --------------------------------------------------------------------------------------
# Vision zoo
# --------------------------------------------------------------------------------------
PRETRAINED = ("resnet18", "resnet50", "vgg16", "mobilenet_v3_small")


def _weights_enum(name, weights):
    import torchvision

    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {PRETRAINED}, got {name!r}")
    enum = torchvision.models.get_model_weights(name)
    if weights is None:
        return None
    if isinstance(weights, str):
        try:
            return enum[weights] if weights != "DEFAULT" else enum.DEFAULT
        except KeyError:
            raise ValueError(f"weights must be 'DEFAULT', None or one of {[w.name for w in enum]}; got {weights!r}") from None
    return weights


def pretrained_path(name: str, weights="DEFAULT") -> str:
    """Where torchvision's cache keeps the weight file of ``name``:
    ``$TORCH_HOME/hub/checkpoints/<file>`` (``~/.cache/torch`` by default)."""
    w = _weights_enum(name, weights)
    if w is None:
        raise ValueError("weights=None means random initialisation; there is no file")
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(w.url))


@checked
def load_pretrained(name: str, weights="DEFAULT", allow_download: bool | None = None,
                    progress=False) -> nn.Module:
    """A torchvision ImageNet model (``resnet18``, ``resnet50``, ``vgg16``,
    ``mobilenet_v3_small``) in eval mode.

    Uses the weight file in torchvision's cache (:func:`pretrained_path`) when present.
    Otherwise downloads it if ``allow_download`` is True, or None and the environment
    variable ``NIFKIT_OFFLINE`` is not set; else (or when the download fails) raises
    ``FileNotFoundError`` naming the expected path and the fix. ``weights=None`` builds
    the architecture with random weights (no file needed). Preprocessing for the
    weights: ``torchvision.models.get_model_weights(name).DEFAULT.transforms()``.
    ``progress``: True for torchvision's download bar, or a callable ``(done, total, what)``
    called once the model is loaded.
    """
    import torchvision

    w = _weights_enum(name, weights)
    bar = Progress(progress, 1, f"load {name}")  # checks progress; a download bar is torchvision's
    if w is None:
        with bar:
            model = torchvision.models.get_model(name, weights=None)
            bar.update()
        return model.eval()
    path = pretrained_path(name, weights)
    if allow_download is None:
        allow_download = os.environ.get("NIFKIT_OFFLINE", "").strip().lower() not in {"1", "true", "yes", "on"}
    fix = (f"Put the file {os.path.basename(path)} there (copy it from a machine that has it, or download "
           f"{w.url}), or call load_pretrained({name!r}, allow_download=True) when online. "
           "TORCH_HOME moves the cache.")
    if not os.path.isfile(path) and not allow_download:
        raise FileNotFoundError(f"pretrained weights for {name} not found at {path}. {fix}")
    try:
        model = torchvision.models.get_model(name, weights=w, progress=bar.bar_wanted)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        if os.path.isfile(path):
            raise
        raise FileNotFoundError(f"pretrained weights for {name} not found at {path} and the download failed "
                                f"({type(exc).__name__}: {exc}). {fix}") from exc
    with bar:
        bar.update()
    return model.eval()
