"""The one layer walker, layer names and the neuron address.

Every chapter finds a model's layers here:

* :func:`resolve_layers` turns a ``layers`` argument (names, a filter, None) into module
  names; unknown names get "did you mean".
* :func:`layer_names` lists the modules of one kind in registration order.
* :func:`walk` follows the **data flow** of one forward pass (``torch.fx`` symbolic
  trace; for an ``nn.Sequential`` that cannot be traced, its leaves in order). It finds
  each weight layer (Linear/Conv) and the elementwise activation that really follows it
  (a module, also a module shared by several layers, or a function like
  ``torch.sigmoid``), modules called more than once (reuse), and skip connections and
  branches (an operation reading two tensors, or a tensor read by two operations).
* :class:`Neuron` is the address of one unit, ``(layer, index)``, written
  ``"layer:index"``.
"""
from __future__ import annotations

import difflib
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from .._validation import checked

__all__ = ["layer_names", "blocks", "resolve_layers", "unknown_layer_error", "walk", "ModelWalk", "WalkedLayer", "Step",
           "Neuron", "WEIGHT_TYPES", "ELEMENTWISE_TYPES", "MONOTONE_TYPES"]

WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: non-decreasing elementwise activations (for the default parameters)
MONOTONE_TYPES = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardsigmoid, nn.Softplus, nn.SELU,
                  nn.Identity, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink, nn.LeakyReLU, nn.ELU, nn.CELU, nn.PReLU)
ELEMENTWISE_TYPES = MONOTONE_TYPES + (nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softshrink, nn.Hardshrink)
_PASS_TYPES = (nn.Dropout, nn.AlphaDropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity)
_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
_RESHAPE_TYPES = (nn.Flatten, nn.Unflatten, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
                  nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d,
                  nn.AdaptiveMaxPool2d)
_ACT_TYPES = ELEMENTWISE_TYPES + (nn.Softmax, nn.LogSoftmax)
#: traced as one operation even when subclassed outside torch.nn
_LEAF_TYPES = WEIGHT_TYPES + _NORM_TYPES
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_KINDS = {
    "linear": (nn.Linear,),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "weighted": WEIGHT_TYPES,
    "activation": _ACT_TYPES,
    "pool": tuple(t for t in _RESHAPE_TYPES if "Pool" in t.__name__),
    "norm": _NORM_TYPES,
}
#: functional elementwise activations the walker recognises (function -> name)
ACTIVATION_FUNCTIONS = {torch.sigmoid: "sigmoid", torch.tanh: "tanh", torch.relu: "relu", F.relu: "relu",
                        F.sigmoid: "sigmoid", F.tanh: "tanh", F.gelu: "gelu", F.leaky_relu: "leaky_relu",
                        F.elu: "elu", F.selu: "selu", F.silu: "silu", F.softplus: "softplus", F.mish: "mish",
                        F.hardtanh: "hardtanh", F.relu6: "relu6", torch.relu_: "relu", F.relu_: "relu"}
_ACT_METHODS = {"relu": torch.relu, "relu_": torch.relu, "sigmoid": torch.sigmoid, "sigmoid_": torch.sigmoid,
                "tanh": torch.tanh, "tanh_": torch.tanh}
_PASS_FUNCS = {"dropout", "identity", "float", "contiguous", "clone", "detach"}
_RESHAPE_FUNCS = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "max_pool1d", "max_pool2d", "avg_pool1d",
                  "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d"}
_OTHER_ACT_FUNCS = {"softmax", "log_softmax"}
_META_METHODS = {"size", "dim"}


# ======================================================================================
# Names
# ======================================================================================
def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def unknown_layer_error(name, available, what: str = "layers") -> ValueError:
    """The error for an unknown layer name: close matches and the available names."""
    available = [str(a) for a in available]
    close = difflib.get_close_matches(str(name), available, n=5, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = available if len(available) <= 40 else available[:40] + [f"... ({len(available) - 40} more)"]
    return ValueError(f"{what}: unknown layer {name!r}.{hint} Available layers: {', '.join(shown)}")


def layer_names(model: nn.Module, kind="linear") -> list[str]:
    """Names (as in ``model.named_modules()``) of the modules of one kind, in
    registration order.

    ``kind``: ``"linear"``, ``"conv"``, ``"weighted"`` (linear or conv),
    ``"activation"``, ``"pool"``, ``"norm"``, ``"leaf"`` (modules without children),
    ``"all"``, or an ``nn.Module`` class / tuple of classes. For the order of the data
    flow use :func:`walk`.
    """
    _check_model(model)
    items = [(n, m) for n, m in model.named_modules() if n != ""]
    if kind == "all":
        return [n for n, _ in items]
    if kind == "leaf":
        return [n for n, m in items if not any(True for _ in m.children())]
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS) + ['leaf', 'all']} or a module class, got {kind!r}")
        types = _KINDS[kind]
    elif isinstance(kind, type) or (isinstance(kind, tuple) and all(isinstance(k, type) for k in kind)):
        types = kind
    else:
        raise TypeError(f"kind must be a string or an nn.Module class, got {type(kind).__name__}")
    return [n for n, m in items if isinstance(m, types)]


def blocks(model: nn.Module) -> list[str]:
    """Default layers to attribute to: the model's *blocks*.

    A block is a module with children that sits directly in a container
    (``nn.Sequential``/``ModuleList``): torchvision ResNet's ``layer1.0 ... layer4.1``,
    EfficientNet's ``_blocks.0 ... _blocks.15``. A model without such modules (a plain
    ``nn.Sequential`` such as :func:`nifkit.models.small_cnn`, or VGG's ``features``)
    gets its activation modules instead (``act1, act2``; VGG's ReLUs), leaving out one
    at the very end (an output activation). Hooking blocks avoids the modules reused at
    several points (ResNet's one ``relu`` per block, EfficientNet's shared swish).

    (The default ``layers`` of chapter 2's conductance, re-exported as
    ``nifkit.conductance.blocks``.)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mods = dict(model.named_modules())
    out = []
    for name, m in mods.items():
        if not name or isinstance(m, _CONTAINERS) or not any(True for _ in m.children()):
            continue
        parent = mods.get(name.rsplit(".", 1)[0] if "." in name else "")
        if isinstance(parent, _CONTAINERS):
            out.append(name)
    if out:
        return out
    leaves = [n for n, m in mods.items() if n and not any(True for _ in m.children())]
    acts = [n for n in leaves  # the walker's elementwise activations (an Identity is none)
            if isinstance(mods[n], ELEMENTWISE_TYPES) and not isinstance(mods[n], nn.Identity)]
    if acts and leaves and acts[-1] == leaves[-1]:
        acts = acts[:-1]
    if not acts:
        raise ValueError("layers: could not find blocks or activation modules in this model; "
                         "pass layers=[...] with names from model.named_modules()")
    return acts


@checked
def resolve_layers(model: nn.Module, layers=None) -> list[str]:
    """Turn a ``layers`` specification into a list of module names, in the order of
    ``model.named_modules()`` for filters and in the order given for lists.

    ``layers`` may be ``None`` (every leaf module, i.e. without children), one name, a
    list of names, or a callable ``name -> bool`` applied to every named module (the
    root, named ``""``, excluded). Unknown names raise ``ValueError`` listing close
    matches and the available names.
    """
    _check_model(model)
    modules = dict(model.named_modules())
    available = [n for n in modules if n != ""]
    if layers is None:
        names = [n for n, m in modules.items() if n != "" and not any(True for _ in m.children())]
        return names or [""]  # the model itself is a leaf (e.g. a bare nn.Linear)
    if isinstance(layers, str):
        layers = [layers]
    if callable(layers) and not isinstance(layers, (list, tuple)):
        names = [n for n in available if layers(n)]
        if not names:
            raise ValueError("layers: the filter function selected no module; "
                             f"available names: {', '.join(available[:40])}")
        return names
    if not isinstance(layers, Iterable):
        raise TypeError("layers must be None, a module name, a list of names or a callable name -> bool; "
                        f"got {type(layers).__name__}")
    names = []
    for n in layers:
        if not isinstance(n, str):
            raise TypeError(f"layers must contain module names (str), got {n!r} of type {type(n).__name__}")
        if n not in modules:
            close = difflib.get_close_matches(n, available, n=5, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            shown = available if len(available) <= 40 else available[:40] + [f"... ({len(available) - 40} more)"]
            raise ValueError(f"layers: no module named {n!r} in the model.{hint} "
                             f"Available names (from model.named_modules()): {', '.join(shown)}")
        if n not in names:
            names.append(n)
    if not names:
        raise ValueError("layers is an empty list; pass None for every leaf module")
    return names


# ======================================================================================
# The neuron address
# ======================================================================================
class Neuron(NamedTuple):
    """The address of one unit: ``(layer, index)``; ``str()`` gives ``"layer:index"``."""

    layer: str
    index: int

    def __str__(self) -> str:
        return f"{self.layer}:{self.index}"

    @classmethod
    def parse(cls, text) -> "Neuron":
        """``"fc1:3"`` (or a ``Neuron``, or a pair) -> ``Neuron("fc1", 3)``."""
        if isinstance(text, Neuron):
            return text
        if isinstance(text, tuple) and len(text) == 2:
            return cls(str(text[0]), int(text[1]))
        name, sep, idx = str(text).rpartition(":")
        if not sep or not idx.isdigit():
            raise ValueError(f"a neuron address looks like 'layer:index' (e.g. 'act1:3'), got {text!r}")
        return cls(name, int(idx))


# ======================================================================================
# The walker
# ======================================================================================
@dataclass
class Step:
    """One operation of the forward pass, in data-flow order.

    ``kind``: ``"input"``, ``"weight"``, ``"activation"`` (elementwise), ``"softmax"``
    (couples units), ``"pass"`` (dropout, identity), ``"norm"``, ``"reshape"`` (flatten,
    pooling), ``"merge"``
    (reads several tensors: a skip connection), ``"parameter"`` (a parameter used
    directly), ``"output"`` or ``"other"``. ``target``: the module name, or the
    function's name; ``call``: which call of that module this is (0, 1, ...)."""

    node: str
    kind: str
    target: str
    module: nn.Module | None = None
    fn: object = None
    inputs: list = field(default_factory=list)
    users: list = field(default_factory=list)
    call: int = 0


@dataclass
class WalkedLayer:
    """A weight layer and what follows it in the data flow.

    ``activation``: the elementwise activation applied to its output (an ``nn.Module``,
    a function such as ``torch.sigmoid``, or None); ``activation_name``: that module's
    name, or the function's name; ``between``: the pass-through / norm / reshape steps
    between the layer and the activation; ``units``: the name that addresses the
    layer's hidden units (the activation module when it is a module used once, else the
    layer itself); ``after``: the kind of the step that ended the walk (``"activation"``,
    or what came instead: ``"merge"``, ``"other"``, ``"weight"``, ``"reshape"``,
    ``"output"``, ``"softmax"``, ``"branch"`` when the output feeds several operations)
    and ``after_target`` its module or function name."""

    name: str
    module: nn.Module
    activation: object = None
    activation_name: str | None = None
    between: list = field(default_factory=list)
    units: str = ""
    after: str = ""
    after_target: str = ""

    @property
    def activation_is_module(self) -> bool:
        return isinstance(self.activation, nn.Module)


@dataclass
class ModelWalk:
    """The data flow of a model (see :func:`walk`)."""

    steps: list
    layers: list
    calls: dict
    merges: list
    branches: list
    traced: bool = True
    notes: list = field(default_factory=list)

    @property
    def names(self) -> list:
        """The weight layers' names in data-flow order."""
        return [lay.name for lay in self.layers]

    @property
    def reused(self) -> dict:
        """Modules called more than once in one forward pass: ``name -> calls``."""
        return {n: c for n, c in self.calls.items() if c > 1}

    @property
    def is_chain(self) -> bool:
        return not self.merges and not self.branches

    def __getitem__(self, name) -> WalkedLayer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise unknown_layer_error(name, self.names)

    def hidden(self) -> list:
        """Names addressing the hidden units: for every weight layer but the last, its
        ``units`` name (the activation module after it, or the layer itself)."""
        return [lay.units for lay in self.layers[:-1]]

    def require_chain(self, what: str = "this method") -> "ModelWalk":
        """Raise ``ValueError`` unless the model is one chain of operations."""
        if self.merges:
            raise ValueError(f"model is not a feedforward chain: operation {self.merges[0]} combines several "
                             f"tensors: a skip connection or merge, which {what} cannot handle. Measure a "
                             "feedforward part of the model (e.g. an nn.Sequential of its layers).")
        if self.branches:
            raise ValueError(f"model is not a feedforward chain: the output of {self.branches[0]} feeds several "
                             f"operations: a branch or skip connection, which {what} cannot handle.")
        return self

    def require_not_reused(self, names=None, what: str = "this method") -> "ModelWalk":
        """Raise ``ValueError`` when one of ``names`` (default: every weight layer and its
        activation) is a module called several times, naming the fix."""
        reused = self.reused
        if names is None:
            names = [n for lay in self.layers for n in (lay.name, lay.activation_name) if n]
        for n in names:
            if n in reused:
                raise ValueError(
                    f"module {n!r} is called {reused[n]} times in one forward pass, so {what} cannot tell its uses "
                    f"apart. Fix: give each use its own module (e.g. a new nn.{type(self._module(n)).__name__}() "
                    "per layer), or address the layer before it instead.")
        return self

    def _module(self, name):
        for s in self.steps:
            if s.target == name and s.module is not None:
                return s.module
        return nn.Module()


def _fname(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _is_meta(node) -> bool:
    """Shape look-ups (``x.size(0)``, ``x.shape``) are not data flow."""
    if node.op == "call_method" and node.target in _META_METHODS:
        return True
    if node.op == "call_function" and node.target in (getattr, operator.getitem):
        return any(_is_meta(a) or (a.op == "placeholder" and node.target is getattr) for a in node.all_input_nodes)
    return False


def _module_kind(m: nn.Module) -> str:
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return "softmax"
    if isinstance(m, WEIGHT_TYPES):
        return "weight"
    if isinstance(m, _PASS_TYPES):
        return "pass"
    if isinstance(m, ELEMENTWISE_TYPES):
        return "activation"
    if isinstance(m, _NORM_TYPES):
        return "norm"
    if isinstance(m, _RESHAPE_TYPES):
        return "reshape"
    return "other"


def _function_step(node) -> tuple[str, object]:
    if node.op == "call_function":
        if node.target in ACTIVATION_FUNCTIONS:
            return "activation", node.target
        name = _fname(node.target)
    else:
        if node.target in _ACT_METHODS:
            return "activation", _ACT_METHODS[node.target]
        name = node.target
    if name in _PASS_FUNCS:
        return "pass", None
    if name in _RESHAPE_FUNCS:
        return "reshape", None
    if name in _OTHER_ACT_FUNCS:
        return "softmax", None
    return "other", None


def _trace_steps(model):
    import torch.fx

    class _Tracer(torch.fx.Tracer):  # a subclass of nn.Conv2d & co. (EfficientNet's same-padding conv) is a leaf
        def is_leaf_module(self, m, qualname):
            return isinstance(m, _LEAF_TYPES) or super().is_leaf_module(m, qualname)

    tracer = _Tracer()
    gm = torch.fx.GraphModule(model, tracer.trace(model), type(model).__name__)
    nodes = [n for n in gm.graph.nodes if not _is_meta(n)]
    steps, calls = [], {}
    for n in nodes:
        ins = [a.name for a in n.all_input_nodes if not _is_meta(a)]
        users = [u.name for u in n.users if not _is_meta(u)]
        if n.op == "placeholder":
            steps.append(Step(n.name, "input", n.name, users=users))
            continue
        if n.op == "output":
            steps.append(Step(n.name, "output", "output", inputs=ins))
            continue
        if n.op == "get_attr":
            steps.append(Step(n.name, "parameter", str(n.target), users=users))
            continue
        if n.op == "call_module":
            target = str(n.target)
            m = gm.get_submodule(target)
            k = calls.get(target, 0)
            calls[target] = k + 1
            kind = _module_kind(m)
            step = Step(n.name, kind, target, module=m, inputs=ins, users=users, call=k)
        else:
            kind, fn = _function_step(n)
            step = Step(n.name, kind, _fname(n.target), fn=fn, inputs=ins, users=users)
        if len(ins) > 1:
            step.kind = "merge"
        steps.append(step)
    return steps, calls


def _sequential_steps(model):
    """Leaves of a (nested) nn.Sequential in order: its data flow, without tracing."""
    leaves = []

    def rec(seq, prefix):
        for n, m in seq.named_children():
            if isinstance(m, nn.Sequential):
                rec(m, f"{prefix}{n}.")
            else:
                leaves.append((f"{prefix}{n}", m))
    rec(model, "")
    steps, calls, prev = [Step("x", "input", "x")], {}, "x"
    for i, (name, m) in enumerate(leaves):
        k = calls.get(name, 0)
        calls[name] = k + 1
        steps.append(Step(f"s{i}", _module_kind(m), name, module=m, inputs=[prev], call=k))
        prev = f"s{i}"
    steps.append(Step("output", "output", "output", inputs=[prev]))
    for a, b in zip(steps, steps[1:]):
        a.users = [b.node]
    return steps, calls


def walk(model: nn.Module) -> ModelWalk:
    """Follow the data flow of ``model``'s forward pass (see the module docstring).

    ``torch.fx`` traces the forward pass symbolically (no data needed); a model whose
    ``forward`` has data-dependent control flow cannot be traced, and is then walked as
    its leaves in order if it is an ``nn.Sequential`` (with a note), else ``TypeError``.
    """
    _check_model(model)
    notes = []
    try:
        steps, calls = _trace_steps(model)
        traced = True
    except Exception as exc:  # fx raises many kinds
        if not isinstance(model, nn.Sequential):
            raise TypeError(
                f"cannot trace the model with torch.fx to follow its data flow ({type(exc).__name__}: {exc}). "
                "Data-dependent control flow in forward() cannot be walked; wrap the layers in an nn.Sequential "
                "or name the layers explicitly.") from exc
        steps, calls = _sequential_steps(model)
        traced = False
        notes.append(f"torch.fx could not trace the model ({type(exc).__name__}); walked the nn.Sequential's "
                     "leaves in order")
    by_node = {s.node: s for s in steps}
    merges = [f"{s.node!r} ({s.target})" for s in steps if s.kind == "merge"]
    branches = [f"{s.node!r} ({s.target})" for s in steps if s.kind not in ("output", "parameter")
                and len(s.users) > 1]
    layers = []
    for s in steps:
        if s.kind != "weight":
            continue
        lay = WalkedLayer(name=s.target, module=s.module)
        cur = s
        lay.after = "branch" if len(cur.users) > 1 else "output"
        while len(cur.users) == 1:  # follow the chain until an activation or the next layer
            nxt = by_node[cur.users[0]]
            lay.after, lay.after_target = nxt.kind, nxt.target
            if nxt.kind == "activation":
                lay.activation = nxt.module if nxt.module is not None else nxt.fn
                lay.activation_name = nxt.target
                break
            if nxt.kind not in ("pass", "norm"):
                break
            lay.between.append(nxt.target)
            cur = nxt
            if len(cur.users) > 1:
                lay.after, lay.after_target = "branch", cur.target
        act_reused = lay.activation_name is not None and calls.get(lay.activation_name, 1) > 1
        if lay.activation_is_module and not act_reused:
            lay.units = lay.activation_name
        elif lay.activation is None and lay.between:
            lay.units = lay.between[-1]  # no activation: what the next layer reads
        else:
            lay.units = lay.name
        layers.append(lay)
    return ModelWalk(steps=steps, layers=layers, calls=calls, merges=merges, branches=branches, traced=traced,
                     notes=notes)
