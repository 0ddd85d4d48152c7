"""A layer as EI sees it: weights, bias and an elementwise activation (resolved from a
name, a module - in-place ones evaluated on a copy - or a callable), convolutions as
their dense matrices, and the activation thresholds used by the sensitivity counts.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_finite, resolve_device, to_numpy
from ..models.walk import ELEMENTWISE_TYPES, MONOTONE_TYPES



@dataclass(frozen=True)
class _Act:
    name: str
    fn: Callable
    monotone: bool  # non-decreasing, so output bins are step functions of the input


def _identity(z):
    return z


_MONOTONE_MODULES = MONOTONE_TYPES


_OTHER_ELEMENTWISE = tuple(t for t in ELEMENTWISE_TYPES if t not in MONOTONE_TYPES)


_NAMED = {
    "sigmoid": (torch.sigmoid, True),
    "tanh": (torch.tanh, True),
    "relu": (torch.relu, True),
    "identity": (_identity, True),
    "linear": (_identity, True),
    "leaky_relu": (F.leaky_relu, True),
    "elu": (F.elu, True),
    "softplus": (F.softplus, True),
    "gelu": (F.gelu, False),
    "silu": (F.silu, False),
}


_MONOTONE_FUNCS = {torch.sigmoid: "sigmoid", torch.tanh: "tanh", torch.relu: "relu", F.relu: "relu",
                   F.sigmoid: "sigmoid", F.tanh: "tanh"}


def _resolve_activation(act) -> _Act:
    """None / name / elementwise nn.Module / callable -> _Act."""
    if act is None:
        return _Act("identity", _identity, True)
    if isinstance(act, str):
        key = act.lower()
        if key not in _NAMED:
            raise ValueError(f"activation must be one of {sorted(_NAMED)}, an elementwise nn.Module or a "
                             f"callable; got {act!r}")
        fn, mono = _NAMED[key]
        return _Act(key, fn, mono)
    if isinstance(act, type) and issubclass(act, nn.Module):
        act = act()
    if isinstance(act, nn.Module):
        name = type(act).__name__
        if getattr(act, "inplace", False):
            # an in-place activation would overwrite the tensors it is evaluated on (the bisection
            # bounds of z_thresholds, the noise block): evaluate a copy that returns a new tensor
            act = copy.deepcopy(act)
            act.inplace = False
        if isinstance(act, nn.LeakyReLU):
            return _Act(name, act, act.negative_slope >= 0)
        if isinstance(act, (nn.ELU, nn.CELU)):
            return _Act(name, act, act.alpha >= 0)
        if isinstance(act, nn.PReLU):
            return _Act(name, act, bool((act.weight.detach() >= 0).all()))
        if isinstance(act, _MONOTONE_MODULES):
            return _Act(name, act, True)
        if isinstance(act, _OTHER_ELEMENTWISE):
            return _Act(name, act, False)
        raise TypeError(f"activation {name} is not a supported elementwise activation; EI treats each output "
                        "unit as a node, so the activation must act on each unit alone (Sigmoid, Tanh, ReLU, "
                        "GELU, ...). Softmax-like layers couple units: measure the layer before them.")
    if callable(act):
        if act in _MONOTONE_FUNCS:
            name = _MONOTONE_FUNCS[act]
            return _Act(name, act, True)
        return _Act(getattr(act, "__name__", "callable"), act, False)
    raise TypeError(f"activation must be None, a name, an nn.Module or a callable; got {type(act).__name__}")


def z_thresholds(act: _Act, edges: torch.Tensor) -> torch.Tensor:
    """``inf{z : g(z) >= e}`` for every edge value ``e`` (float64), by bisection;
    ``-inf`` when every z qualifies, ``+inf`` when none does. ``g`` non-decreasing."""
    e = edges.to(torch.float64)
    big = 1e6
    lo = torch.full_like(e, -big)
    hi = torch.full_like(e, big)
    with torch.no_grad():
        all_ok = act.fn(lo) >= e
        none_ok = act.fn(hi) < e
        for _ in range(90):  # 2e6 / 2**90: far below float64 resolution
            mid = 0.5 * (lo + hi)
            ok = act.fn(mid) >= e
            hi = torch.where(ok, mid, hi)
            lo = torch.where(ok, lo, mid)
    t = hi.clone()
    t[all_ok] = -math.inf
    t[none_ok] = math.inf
    return t


@dataclass
class EILayer:
    name: str
    weight: torch.Tensor  # (n_out, n_in) float64 on device
    bias: torch.Tensor  # (n_out,) float64 (zeros when the layer has none)
    act: _Act
    kind: str
    edge_mask: torch.Tensor | None  # (n_in, n_out) bool; None = every pair is an edge
    in_shape: tuple
    out_shape: tuple

    def __post_init__(self):
        # the layer is evaluated in float64: rounding never moves a value across a bin edge
        self.weight = self.weight.to(torch.float64)
        self.bias = self.bias.to(torch.float64)

    @property
    def n_in(self):
        return self.weight.shape[1]

    @property
    def n_out(self):
        return self.weight.shape[0]

    def outputs(self, a: int, b: int) -> "EILayer":
        """The layer restricted to outputs ``a:b`` (same inputs): the count tables of an
        output depend only on its own row, so a wide layer is measured in output groups."""
        mask = None if self.edge_mask is None else self.edge_mask[:, a:b]
        return EILayer(self.name, self.weight[a:b], self.bias[a:b], self.act, self.kind, mask, self.in_shape,
                       (b - a,))


def _check_weight(w: torch.Tensor, name: str):
    arr = w.detach().cpu().numpy()
    check_finite(arr, f"the weights of layer {name!r}")


def _conv_dense(conv: nn.Conv2d, input_shape):
    """Dense ``(n_out, n_in)`` matrix, bias and edge mask of a Conv2d on one input shape."""
    if conv.padding_mode != "zeros":
        raise TypeError(f"Conv2d with padding_mode={conv.padding_mode!r} is not supported (only 'zeros')")
    w = conv.weight.detach().double().cpu()
    if input_shape is None and conv.groups == 1 and tuple(conv.dilation) == (1, 1):
        # one receptive field of a plain convolution: the dense matrix is the kernel itself
        # (input (c, i, j) -> row index c*kh*kw + i*kw + j, as the basis construction below gives)
        dense = w.reshape(w.shape[0], -1).contiguous()
        mask = torch.ones(dense.shape[1], dense.shape[0], dtype=torch.bool)
        bias = conv.bias.detach().double().cpu() if conv.bias is not None else torch.zeros(w.shape[0],
                                                                                             dtype=torch.float64)
        return dense, bias, mask, (conv.in_channels, *conv.kernel_size), (w.shape[0], 1, 1)
    if input_shape is None:  # one receptive field, as deep-ei measures a convolution
        kh = conv.dilation[0] * (conv.kernel_size[0] - 1) + 1
        kw = conv.dilation[1] * (conv.kernel_size[1] - 1) + 1
        input_shape, padding = (conv.in_channels, kh, kw), 0
    else:
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) == 4:
            input_shape = input_shape[1:]
        if len(input_shape) != 3 or input_shape[0] != conv.in_channels:
            raise ValueError(f"input_shape for a Conv2d must be (channels={conv.in_channels}, H, W), "
                             f"got {input_shape}")
        padding = conv.padding
    n_in = int(np.prod(input_shape))
    if n_in > 20000:
        raise ValueError(f"Conv2d input of {n_in} units is too large to measure edge by edge; pass a smaller "
                         "input_shape (e.g. one receptive field: input_shape=None)")
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *input_shape)
    kw = dict(stride=conv.stride, padding=padding, dilation=conv.dilation, groups=conv.groups)
    out = F.conv2d(basis, w, None, **kw)
    out_shape = tuple(out.shape[1:])
    dense = out.reshape(n_in, -1).T.contiguous()
    mask = F.conv2d(basis, torch.ones_like(w), None, **kw).reshape(n_in, -1) != 0
    if conv.bias is not None:
        bias = conv.bias.detach().double().cpu().repeat_interleave(out_shape[1] * out_shape[2])
    else:
        bias = torch.zeros(dense.shape[0], dtype=torch.float64)
    return dense, bias, mask, tuple(input_shape), out_shape


def as_layer(layer, activation=None, bias=None, input_shape=None, name="layer", device=None) -> EILayer:
    """Accept nn.Linear, nn.Conv2d, nn.Sequential(layer, activation), a weight matrix
    ``(n_out, n_in)`` or a tuple ``(weight, bias)``."""
    dev = resolve_device(device)
    if isinstance(layer, nn.Sequential):
        mods = [m for m in layer.children()]
        if len(mods) == 2 and isinstance(mods[0], (nn.Linear, nn.Conv2d)):
            if activation is not None:
                raise ValueError("layer is a Sequential(layer, activation); do not pass activation= as well")
            return as_layer(mods[0], mods[1], bias, input_shape, name, device)
        if len(mods) == 1:
            return as_layer(mods[0], activation, bias, input_shape, name, device)
        raise TypeError("an nn.Sequential layer must be (Linear or Conv2d, activation); for whole models use "
                        "model_ei(model)")
    act = _resolve_activation(activation)
    mask = None
    if isinstance(layer, nn.Linear):
        if bias is not None:
            raise ValueError("bias= is only for weight matrices; an nn.Linear has its own bias")
        w = layer.weight.detach().double().cpu()
        b = layer.bias.detach().double().cpu() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        kind, in_shape, out_shape = "linear", (w.shape[1],), (w.shape[0],)
    elif isinstance(layer, nn.Conv2d):
        _check_weight(layer.weight, name)
        w, b, mask, in_shape, out_shape = _conv_dense(layer, input_shape)
        kind = "conv2d"
    elif isinstance(layer, (torch.Tensor, np.ndarray)) or (isinstance(layer, tuple) and len(layer) == 2):
        if isinstance(layer, tuple):
            if bias is not None:
                raise ValueError("pass the bias either in the tuple (weight, bias) or as bias=, not both")
            layer, bias = layer
        w = torch.as_tensor(to_numpy(layer, "weight"), dtype=torch.float64)
        if w.ndim != 2:
            raise ValueError(f"a weight matrix must be 2-D (n_out, n_in), got shape {tuple(w.shape)}")
        b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else torch.as_tensor(to_numpy(bias, "bias"),
                                                                         dtype=torch.float64).reshape(-1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"bias has {b.shape[0]} entries but the weight matrix has {w.shape[0]} outputs")
        kind, in_shape, out_shape = "matrix", (w.shape[1],), (w.shape[0],)
    else:
        raise TypeError(f"unsupported layer type {type(layer).__name__}: layer_ei measures nn.Linear, nn.Conv2d "
                        "(each output unit a node), nn.Sequential(layer, activation), a weight matrix "
                        "(n_out, n_in) or a tuple (weight, bias)")
    if w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"layer {name!r} has no inputs or no outputs (weight shape {tuple(w.shape)})")
    check_finite(w.numpy(), f"the weights of layer {name!r}")
    check_finite(b.numpy(), f"the bias of layer {name!r}")
    return EILayer(name, w.to(dev), b.to(dev), act, kind, None if mask is None else mask.to(dev),
                  tuple(in_shape), tuple(out_shape))
