"""Recording activations (and their inputs and gradients) of named layers.

Layers are addressed by their names in ``model.named_modules()`` (``"fc1"``,
``"layer1.0"``, ``"features.3"`` ...), as in TransformerLens. Two entry points:

* :class:`Recorder` - a context manager: hooks are attached on enter and always removed
  on exit, also when the forward pass raises (Captum style). You run the model.
* :func:`record` - runs the model over a data set batch by batch (progress bar, eval
  mode, ``no_grad`` unless gradients are asked for) and returns a :class:`Recording`.

Two classic pitfalls are handled:

* **In-place operations.** Each recorded output is *cloned* the moment it is produced,
  so an ``nn.ReLU(inplace=True)`` that later overwrites a Linear's output cannot corrupt
  what was stored.
* **Modules reused at several points** (torchvision's ResNet blocks call one ``relu``
  module three times). The Recorder counts calls per forward pass; by default a second
  call raises a ``RuntimeError`` that suggests recording the enclosing block;
  ``reused="all"`` stores every call as ``name@0``, ``name@1`` ... and ``reused="first"``
  keeps the first call only.
"""
from __future__ import annotations

import contextlib
import difflib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import check_choice, check_int, check_num_threads, resolve_device
from ..models.hooks import hooks
from ..models.walk import resolve_layers
from ..models.units import reduce_channels
from .batches import batches_of
from ..runtime import ModelState, Progress, model_device
from ..results import Result
from .._validation import checked

__all__ = ["Recorder", "Recording", "record", "resolve_layers", "REUSED_MODES"]

REUSED_MODES = ("error", "all", "first")


def _first_tensor(x, what, name):
    """The tensor itself, or the first tensor inside a tuple/list/dict output."""
    if isinstance(x, torch.Tensor):
        return x
    items = x.values() if isinstance(x, dict) else x if isinstance(x, (tuple, list)) else None
    if items is not None:
        for item in items:
            if isinstance(item, torch.Tensor):
                return item
    raise RuntimeError(
        f"cannot record the {what} of module {name!r}: it is a {type(x).__name__} holding no tensor. "
        "Record a submodule that returns a tensor instead."
    )


# --------------------------------------------------------------------------------------
# The context manager
# --------------------------------------------------------------------------------------
def _cat_releasing(parts: list) -> torch.Tensor:
    """The concatenation of the tensors in ``parts`` along the first axis, written into
    one preallocated tensor while each part is dropped from the list once copied (the
    list ends up holding only the result): concatenating per-batch copies with
    ``torch.cat`` holds the whole result twice at its peak, this holds it once plus one
    batch."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    out = torch.empty((sum(len(p) for p in parts), *first.shape[1:]), dtype=first.dtype, device=first.device)
    s = 0
    for i in range(len(parts)):  # a loop over batches
        n = len(parts[i])
        out[s:s + n] = parts[i]
        parts[i] = None
        s += n
    del parts[1:]
    parts[0] = out
    return out


class Recorder:
    """Context manager that records the outputs of named layers while you run a model.

    Parameters
    ----------
    model : nn.Module
    layers : None, str, list of str or callable
        Which modules (see :func:`resolve_layers`). ``None`` records every leaf module.
    inputs : bool
        Also record each layer's (first) input tensor.
    grads : bool
        Also record the gradient of whatever you back-propagate with respect to each
        recorded output (a tensor hook on the output, so in-place ops downstream do not
        confuse it). You run ``loss.backward()`` (or ``torch.autograd.grad``) yourself
        inside the ``with`` block; outputs that do not require grad are skipped.
    to_cpu : bool
        Move stored tensors to the CPU (saves accelerator memory).
    reused : {"error", "all", "first"}
        What to do when a module runs more than once in one forward pass.
    capacity : int or None
        The number of samples to be recorded, when known (:func:`record` passes the
        data's size): each recorded output is then preallocated for that many samples at
        its first batch and every batch is written into it, so the recording never holds
        more than its result (a batch that does not fit, by size or shape, falls back to
        per-batch copies from there on).

    Without ``capacity`` every forward pass appends a detached clone of each recorded
    output; the ``activations``, ``inputs`` and ``gradients`` properties concatenate them
    over batches (lazily, cached; each batch's copy is released as it is copied). All
    hooks are removed on exit, also on exceptions.

    Example
    -------
    >>> with Recorder(model, ["fc1", "act1"]) as rec:
    ...     model(x)
    >>> rec.activations["fc1"].shape
    """

    @checked
    def __init__(self, model: nn.Module, layers=None, *, inputs: bool = False, grads: bool = False,
                 to_cpu: bool = True, reused: str = "error", capacity: int | None = None):
        self.model = model
        self.capacity = check_int(capacity, "capacity", minimum=1, allow_none=True)
        self.layers = layers
        self.record_inputs = inputs
        self.record_grads = grads
        self.to_cpu = to_cpu
        self.reused = reused
        self._stack: contextlib.ExitStack | None = None
        self._hooks = None
        self._active = False
        self._reset_storage()

    # -- storage ---------------------------------------------------------------------
    def _reset_storage(self):
        self._acts: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._ins: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._grads: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._filled: dict[tuple[int, tuple[str, int]], int] = {}  # samples written per preallocated output
        self._max_calls: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._depth = 0
        self._cache: dict[str, dict] = {}

    def clear(self) -> None:
        """Forget everything recorded so far (hooks stay attached)."""
        self._reset_storage()

    def _store(self, bucket, key, t):
        dev = torch.device("cpu") if self.to_cpu else t.device
        t = t.detach()
        self._cache.clear()
        if self.capacity is not None and t.ndim >= 1:
            fk = (id(bucket), key)
            if key not in bucket:  # the first batch: preallocate ``capacity`` samples
                bucket[key] = [torch.empty((self.capacity, *t.shape[1:]), dtype=t.dtype, device=dev)]
                self._filled[fk] = 0
            if fk in self._filled:
                buf, s = bucket[key][0], self._filled[fk]
                if s + len(t) <= len(buf) and t.shape[1:] == buf.shape[1:] and t.dtype == buf.dtype:
                    buf[s:s + len(t)] = t
                    self._filled[fk] = s + len(t)
                    return
                bucket[key][0] = buf[:s]  # does not fit: keep what was written, copy per batch from here
                del self._filled[fk]
        bucket.setdefault(key, []).append(t.to(dev, copy=True))

    # -- hooks -----------------------------------------------------------------------
    def _root_pre(self, module, args):
        if self._depth == 0:
            self._calls = {}
        self._depth += 1

    def _root_post(self, module, args, output):
        self._depth = max(self._depth - 1, 0)

    def _make_hook(self, name):
        def hook(module, args, output):
            if not self._active:
                return
            if self._depth == 0:  # module called on its own, outside a model forward
                k = 0
            else:
                k = self._calls.get(name, 0)
                self._calls[name] = k + 1
            if k >= 1:
                if self.reused == "error":
                    shown = name or "<model>"
                    parent = name.rsplit(".", 1)[0] if "." in name else None
                    hint = (f"record the enclosing block instead (e.g. {parent!r})" if parent
                            else "record the enclosing blocks instead (e.g. 'layer1.0' in a ResNet)")
                    raise RuntimeError(
                        f"module {shown!r} is called more than once in one forward pass (call #{k + 1}), "
                        "so its hook sees several different tensors (torchvision's ResNet reuses one "
                        f"'relu' per block). Either {hint}, or pass reused='all' to store every call "
                        f"as '{name}@0', '{name}@1', ..., or reused='first' to keep the first call."
                    )
                if self.reused == "first":
                    return
            self._max_calls[name] = max(self._max_calls.get(name, 0), k + 1)
            out = _first_tensor(output, "output", name)
            self._store(self._acts, (name, k), out)
            if self.record_inputs:
                self._store(self._ins, (name, k), _first_tensor(args, "input", name))
            if self.record_grads and out.requires_grad:
                key = (name, k)

                def grad_hook(g, key=key):
                    if self._active:
                        self._store(self._grads, key, g)

                self._hooks.grad(out, grad_hook)
        return hook

    # -- context ---------------------------------------------------------------------
    def __enter__(self) -> "Recorder":
        if self.reused not in REUSED_MODES:
            raise ValueError(f"reused must be one of {REUSED_MODES}, got {self.reused!r}")
        if self._stack is not None:
            raise RuntimeError("this Recorder is already active; a Recorder cannot be entered twice")
        self.layer_names = resolve_layers(self.model, self.layers)
        self._reset_storage()
        self._stack = contextlib.ExitStack()
        try:  # the one hook context (nifkit.models.hooks); removed by remove_hooks
            self._hooks = self._stack.enter_context(hooks(self.model))
            self._hooks.pre("", self._root_pre)
            self._hooks.forward("", self._root_post, always_call=True)
            for name in self.layer_names:
                self._hooks.forward(name, self._make_hook(name))
        except BaseException:
            self.remove_hooks()
            raise
        self._active = True
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.remove_hooks()
        return False

    def remove_hooks(self) -> None:
        """Detach every hook this Recorder attached (called on exit)."""
        self._active = False
        stack, self._stack, self._hooks = self._stack, None, None
        self._depth = 0
        if stack is not None:
            stack.close()

    # -- results ---------------------------------------------------------------------
    def _keys(self, name):
        n = self._max_calls.get(name, 0)
        if n <= 1 or self.reused == "first":
            return [(name, (name, 0))]
        return [(f"{name}@{k}", (name, k)) for k in range(n)]

    def _gather(self, bucket, which):
        if which not in self._cache:
            out = {}
            for name in getattr(self, "layer_names", []):
                for key, bkey in self._keys(name):
                    parts = bucket.get(bkey)
                    fill = self._filled.get((id(bucket), bkey))
                    if fill is not None:
                        out[key] = parts[0][:fill]
                    elif parts:
                        out[key] = _cat_releasing(parts)
            self._cache[which] = out
        return self._cache[which]

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        """Recorded outputs, ``name -> tensor (samples, ...)`` concatenated over batches."""
        return self._gather(self._acts, "activations")

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """Recorded (first) inputs of each layer (needs ``inputs=True``)."""
        return self._gather(self._ins, "inputs")

    @property
    def gradients(self) -> dict[str, torch.Tensor]:
        """Gradients with respect to each recorded output (needs ``grads=True`` and a
        backward pass inside the ``with`` block)."""
        return self._gather(self._grads, "gradients")

    @property
    def names(self) -> list[str]:
        """The keys of :attr:`activations` (``name@k`` for reused modules)."""
        return [k for n in getattr(self, "layer_names", []) for k, _ in self._keys(n)]

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"Recorder({len(getattr(self, 'layer_names', []))} layers, {state})"


# --------------------------------------------------------------------------------------
# Recording over a data set
# --------------------------------------------------------------------------------------
@dataclass(repr=False)
class Recording(Result):
    """What :func:`record` captured: ``activations[name]`` is a tensor
    ``(samples, ...)`` per layer (``name@k`` for the k-th call of a reused module);
    ``inputs``/``gradients`` likewise when requested (else empty dicts); ``outputs`` the
    model outputs; ``targets`` the labels when the data had them."""

    activations: dict
    inputs: dict
    gradients: dict
    outputs: torch.Tensor
    targets: torch.Tensor | None
    layer_names: list

    def table(self) -> list[dict]:
        """One row per recorded layer: its name and the shape of one sample."""
        return [{"layer": k, "shape": tuple(v.shape[1:]), "inputs": k in self.inputs, "gradients": k in self.gradients}
                for k, v in self.activations.items()]

    def repr_extra(self) -> dict:
        return {"n_samples": self.n_samples}

    @property
    def n_samples(self) -> int:
        return len(self.outputs)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._get(name, "activations")

    def _get(self, name, which):
        store = getattr(self, which)
        if name not in store:
            if not store:
                arg = {"gradients": "grads", "inputs": "inputs"}.get(which)
                raise KeyError(f"no {which} were recorded; pass {arg}=True to record()"
                               if arg else "no activations were recorded")
            close = difflib.get_close_matches(str(name), list(store), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"no {which} recorded for {name!r}.{hint} Recorded: {', '.join(store)}")
        return store[name]

    def flat(self, name: str, per_channel: bool = False, which: str = "activations",
             channel_reduce: str = "mean") -> torch.Tensor:
        """The recorded tensor of layer ``name`` as a ``(samples, units)`` matrix.

        A conv map ``(N, C, H, W)`` is flattened to ``(N, C*H*W)`` (one unit per channel
        and position), or with ``per_channel=True`` reduced to one unit per channel by
        :func:`nifkit.models.units.reduce_channels` (``channel_reduce``: ``"mean"`` over
        positions, ``"max"``, or ``"positions"``: ``(N*H*W, C)``, every position a
        sample). ``which`` picks ``"activations"``, ``"inputs"`` or ``"gradients"``.
        """
        if which not in ("activations", "inputs", "gradients"):
            raise ValueError(f"which must be 'activations', 'inputs' or 'gradients', got {which!r}")
        t = self._get(name, which)
        if t.ndim == 1:
            return t[:, None]
        if per_channel and t.ndim > 2:
            return reduce_channels(t, channel_reduce)
        return t.reshape(len(t), -1)


def _batch_loss(loss_fn, out, y):
    """Scalar to back-propagate: per-sample losses summed over the batch."""
    if loss_fn == "sum":
        return out.sum()
    if isinstance(loss_fn, str):
        if not y.is_floating_point() and out.ndim == 2 and y.numel() and (int(y.min()) < 0 or int(y.max()) >= out.shape[1]):
            bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
            raise ValueError(f"targets must be class indices 0..{out.shape[1] - 1} (the model has {out.shape[1]} "
                             f"outputs); found {bad}")
        if loss_fn == "cross_entropy":
            return nn.functional.cross_entropy(out, y, reduction="sum")
        if loss_fn in ("mse", "mse_sum"):
            t = y if y.is_floating_point() else nn.functional.one_hot(y, out.shape[1]).to(out.dtype)
            return ((out - t) ** 2).sum()
        raise ValueError(f"loss_fn must be a callable or 'cross_entropy'/'mse_sum', got {loss_fn!r}")
    loss = loss_fn(out, y)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return a tensor, got {type(loss).__name__}")
    if loss.ndim > 0:
        return loss.sum()
    if getattr(loss_fn, "reduction", None) == "mean":
        # undo the batch mean so each sample's gradient does not depend on the batch size
        return loss * len(out)
    return loss


@checked
def record(model: nn.Module, data, layers=None, *, batch_size: int = 256, inputs: bool = False,
           grads: bool = False, loss_fn=None, targets=None, device=None, progress=False,
           max_samples: int | None = None, reused: str = "error", split: str = "train",
           to_cpu: bool = True, num_threads: int | None = None) -> Recording:
    """Run ``model`` over ``data`` batch by batch and record named layers.

    ``data`` is a tensor/array of inputs (labels optional via ``targets``), an
    ``(X, y)`` pair, a ``DataLoader`` or any iterable of ``x`` or ``(x, y, ...)``
    batches, or a :class:`nifkit.data.Dataset` (its ``split``: ``"train"``, ``"test"``
    or ``"all"``).

    The model runs in eval mode under ``torch.no_grad()``. With ``grads=True`` it runs
    with autograd and records ``d L / d a`` for each recorded output ``a``, where
    ``L = sum_i loss_fn(output_i, target_i)`` (per-sample losses summed over the batch,
    so each sample's gradient does not depend on the batch size; a scalar loss with
    ``reduction="mean"`` is multiplied back by the batch size; ``"cross_entropy"`` and
    ``"mse_sum"`` are accepted by name) or, with ``loss_fn="sum"``, ``L = sum of all
    outputs`` (no targets). ``grads=True`` needs ``loss_fn``: a gradient is of some
    loss, and ``record`` does not pick one (it used to sum the outputs silently and
    ignore the targets). Parameters are frozen meanwhile (only the input needs a gradient), so no
    ``.grad`` field of the model is touched.

    The train/eval mode of every submodule, ``requires_grad`` flags and device are restored
    afterwards, and all hooks removed, also on exceptions and KeyboardInterrupt (which
    is re-raised). ``max_samples`` stops after that many samples. ``device`` defaults
    to the model's; the model is moved there for the run and moved back after.
    ``num_threads``: torch CPU threads for the run (None = 1 on the CPU, restored
    after; see :class:`nifkit.runtime.cpu_threads`).
    """
    from ..runtime import cpu_threads

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    max_samples = check_int(max_samples, "max_samples", minimum=1, allow_none=True)
    num_threads = check_num_threads(num_threads)
    check_choice(reused, "reused", REUSED_MODES)
    check_choice(split, "split", ("train", "test", "all"))
    for flag, value in (("inputs", inputs), ("grads", grads), ("to_cpu", to_cpu)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    _check_loss_fn(loss_fn, grads)
    dev_for_threads = resolve_device(device) if device is not None else model_device(model)[0]
    with cpu_threads(num_threads, dev_for_threads):
        return _record(model, data, layers, batch_size=batch_size, inputs=inputs, grads=grads,
                       loss_fn=loss_fn, targets=targets, device=device, progress=progress,
                       max_samples=max_samples, reused=reused, split=split, to_cpu=to_cpu)


def _record(model, data, layers, *, batch_size, inputs, grads, loss_fn, targets, device, progress,
            max_samples, reused, split, to_cpu):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    max_samples = check_int(max_samples, "max_samples", minimum=1, allow_none=True)
    home, dtype = model_device(model)
    dev = home if device is None else resolve_device(device)
    batches, n_batches, n_total = batches_of(data, targets, int(batch_size), split)
    if max_samples is not None and n_total is not None:
        n_batches = math.ceil(min(n_total, max_samples) / batch_size)

    flags = [(p, p.requires_grad) for p in model.parameters()]
    outputs, ys = [], []
    capacity = None if n_total is None else max(1, min(n_total, max_samples or n_total))
    rec = Recorder(model, layers, inputs=inputs, grads=grads, to_cpu=to_cpu, reused=reused, capacity=capacity)
    bar = Progress(progress, total=n_batches, what="record", unit="batch")
    # modes of every submodule, requires_grad flags and the device are restored by ModelState
    state = ModelState(model, eval=True, freeze=grads, device=dev)
    try:
        seen = 0
        with state, rec:
            for xb, yb in batches:
                if max_samples is not None and seen + len(xb) > max_samples:
                    keep = max_samples - seen
                    xb = xb[:keep]
                    yb = None if yb is None else yb[:keep]
                if xb.is_floating_point() and not bool(torch.isfinite(xb).all()):
                    raise ValueError(f"data contains NaN or inf (in the batch starting at sample {seen}); "
                                     "every activation downstream would be NaN. Remove or impute those "
                                     "samples first, e.g. X[torch.isfinite(X).flatten(1).all(1)]")
                xb = xb.to(dev, dtype) if xb.is_floating_point() else xb.to(dev)
                if yb is not None:
                    yb = yb.to(dev)
                try:
                    if grads:
                        out = _grad_step(model, xb, yb, loss_fn, flags)
                    else:
                        with torch.no_grad():
                            out = _first_tensor(model(xb), "output", "<model>")
                except RuntimeError as exc:  # same error, with the data's side of the story
                    exc.add_note(f"nifkit.record: the model raised on a batch of data with shape "
                                 f"{tuple(xb.shape)} and dtype {xb.dtype}; check that data has the "
                                 "shape and dtype the model expects")
                    raise
                outputs.append(out.detach().to("cpu" if to_cpu else out.device))
                if yb is not None:
                    ys.append(yb.detach().cpu())
                seen += len(xb)
                bar.update()
                if max_samples is not None and seen >= max_samples:
                    break
        acts, ins, grs, names = rec.activations, rec.inputs, rec.gradients, rec.names
    finally:
        bar.close()
    if not outputs:
        raise ValueError("data holds no samples; nothing was recorded")
    return Recording(
        activations=acts, inputs=ins if inputs else {}, gradients=grs if grads else {},
        outputs=_cat_releasing(outputs), targets=_cat_releasing(ys) if ys else None, layer_names=names,
        settings={"batch_size": int(batch_size), "grads": grads, "loss_fn": loss_fn, "reused": reused},
    )


#: losses ``record(grads=True)`` knows by name (or pass a callable ``loss_fn(outputs, targets)``)
LOSS_NAMES = ("cross_entropy", "mse_sum", "mse", "sum")


def _check_loss_fn(loss_fn, grads):
    """``grads=True`` needs a named loss; a loss without ``grads`` would be ignored."""
    if grads and loss_fn is None:
        raise ValueError("record(grads=True) needs loss_fn: the gradients are d loss / d activation. Pass "
                         "loss_fn='cross_entropy' or 'mse_sum' (with targets), a callable loss_fn(outputs, "
                         "targets), or loss_fn='sum' for the gradient of the sum of all outputs (no targets)")
    if loss_fn is not None and not grads:
        raise ValueError("loss_fn is used only with grads=True (it defines the gradients); drop it or pass "
                         "grads=True")
    if isinstance(loss_fn, str) and loss_fn not in LOSS_NAMES:
        raise ValueError(f"loss_fn={loss_fn!r} is not a known loss; use one of {LOSS_NAMES} or a callable "
                         "loss_fn(outputs, targets)")
    if loss_fn is not None and not isinstance(loss_fn, str) and not callable(loss_fn):
        raise TypeError(f"loss_fn must be a loss name {LOSS_NAMES} or a callable, got {type(loss_fn).__name__}")


def _grad_step(model, xb, yb, loss_fn, flags):
    """Forward with autograd and back-propagate the batch loss; the Recorder's tensor
    hooks collect the gradients of the recorded outputs."""
    if loss_fn != "sum" and yb is None:
        raise ValueError("loss_fn needs targets: pass data=(X, y), targets=..., or a loader of (x, y) batches")
    with torch.enable_grad():
        if xb.is_floating_point():
            xb = xb.detach().requires_grad_(True)
            wrt = [xb]
        else:  # e.g. token ids: differentiate through the parameters instead
            wrt = [p for p, _ in flags if p.is_floating_point()]
            for p in wrt:
                p.requires_grad_(True)
        out = _first_tensor(model(xb), "output", "<model>")
        loss = _batch_loss(loss_fn, out, yb)
        if loss.requires_grad:
            torch.autograd.grad(loss, wrt, allow_unused=True)
    return out
