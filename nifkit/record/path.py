"""Recording along a straight interpolation path: layer outputs and output gradients.

For inputs ``x``, baselines ``x'`` and points ``a_0 < ... < a_steps`` of an alpha rule,
the path is ``x(a) = x' + a (x - x')``. At every point this module records, for each
chosen layer, its output ``y(x(a))`` and the gradient ``dF/dy(x(a))`` of one output
``F`` (a logit, a probability, ...), both in one forward and one backward pass for all
layers together. Chapter 2's layer conductance is built on it
(:func:`nifkit.conductance.layer_conductance` sums the pieces as they come);
:func:`path_gradients` keeps them all.

The points are processed in chunks of inputs x points that share their end points
(chunk ``[a_i .. a_j]``, next chunk ``[a_j .. ]``), sized from a memory budget by a probe
pass that measures what one input at one point costs: the outputs of every leaf module
plus the tensors autograd saves for the backward pass (counted with
``torch.autograd.graph.saved_tensors_hooks``).
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch
from torch import nn

from .._validation import check_int, resolve_device, to_tensor
from ..config import PATH_MEMORY_BUDGET
from ..models.hooks import hooks
from ..models.walk import blocks, resolve_layers
from ..runtime import ModelState, Progress, all_finite, cpu_threads, model_device
from .._validation import checked

__all__ = ["METHODS", "BASELINES", "OUTPUTS", "path_alphas", "make_baseline", "path_layers", "path_gradients",
           "PathTaps", "PathProbe", "PathSetup", "probe_path", "plan_path_chunks", "path_chunks", "apply_output",
           "check_path_inputs", "check_output", "path_targets"]

METHODS = ("riemann_trapezoid", "gausslegendre", "riemann_left", "riemann_right", "riemann_middle")
BASELINES = ("zeros", "mean", "blur", "uniform")
OUTPUTS = ("logits", "softmax", "log_softmax")


# --------------------------------------------------------------------------------------
# Points, layers, baselines, inputs, targets
# --------------------------------------------------------------------------------------
@checked
def path_alphas(steps: int, method: str = "riemann_trapezoid") -> np.ndarray:
    """The ``steps + 1`` path points ``a_0 < ... < a_steps`` of an alpha rule (as Captum
    places them for ``n_steps=steps``): ``"riemann_trapezoid"`` ``linspace(0, 1)``;
    ``"riemann_left"`` / ``"_right"`` / ``"_middle"`` the shifted grids;
    ``"gausslegendre"`` the Gauss–Legendre nodes mapped to ``(0, 1)``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer (the number of path steps), got {steps!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n = int(steps) + 1
    if method == "gausslegendre":
        return 0.5 * (1.0 + np.polynomial.legendre.leggauss(n)[0])
    lo, hi = {"riemann_trapezoid": (0.0, 1.0), "riemann_left": (0.0, 1.0 - 1.0 / n),
              "riemann_right": (1.0 / n, 1.0), "riemann_middle": (0.5 / n, 1.0 - 0.5 / n)}[method]
    # float32 linspace, as torch.linspace builds Captum's grid
    return torch.linspace(lo, hi, n).double().numpy()


@checked
def path_layers(model: nn.Module, layers=None) -> list[str]:
    """The layers to record along a path: ``None`` = the model's blocks
    (:func:`nifkit.models.blocks`), else the walker's :func:`resolve_layers` (the root,
    named ``""``, is refused: its output is ``F`` itself)."""
    if layers is None:
        return blocks(model)
    if isinstance(layers, (list, tuple)) and not layers:
        raise ValueError("layers is empty; pass None for the model's blocks")
    names = resolve_layers(model, layers)
    if "" in names:
        raise ValueError("layers: '' is the model itself; choose its blocks (blocks(model) lists them)")
    return names


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over the last two axes (images ``(N, C, H, W)``)."""
    if x.ndim < 3:
        raise ValueError("baselines='blur' needs image inputs (N, C, H, W) or (N, H, W); "
                         f"got shape {tuple(x.shape)}. Use 'zeros', 'mean' or 'uniform'.")
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    shape = x.shape
    z = x.reshape(-1, 1, shape[-2], shape[-1])
    pad = nn.functional.pad(z, (r, r, r, r), mode="replicate")
    z = nn.functional.conv2d(pad, k.view(1, 1, 1, -1))
    z = nn.functional.conv2d(z, k.view(1, 1, -1, 1))
    return z.reshape(shape)


@checked
def make_baseline(baselines, x: torch.Tensor, *, seed: int = 0, blur_sigma: float = 4.0) -> torch.Tensor:
    """The baseline ``x'`` for each input, shape of ``x``.

    ``"zeros"`` (Captum's default), ``"mean"`` (the mean input of ``x``, per feature),
    ``"blur"`` (each image blurred with a Gaussian of ``blur_sigma`` pixels),
    ``"uniform"`` (uniform noise over ``x``'s value range, seeded), a number, or a
    tensor/array of ``x``'s shape or of one sample's shape with a leading 1.
    """
    if isinstance(baselines, str):
        if baselines == "zeros":
            return torch.zeros_like(x)
        if baselines == "mean":
            return x.mean(0, keepdim=True).expand_as(x).clone()
        if baselines == "blur":
            return _blur(x, float(blur_sigma))
        if baselines == "uniform":
            g = torch.Generator().manual_seed(int(seed))
            lo, hi = float(x.min()), float(x.max())
            return (lo + (hi - lo) * torch.rand(x.shape, generator=g, dtype=torch.float64)).to(x.dtype)
        raise ValueError(f"baselines must be one of {BASELINES}, a number or a tensor; got {baselines!r}")
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        return torch.full_like(x, float(baselines))
    b = to_tensor(baselines, "baselines").to(x.dtype)
    if b.shape == x.shape:
        out = b.clone()
    elif b.shape == (1, *x.shape[1:]) or b.shape == x.shape[1:]:
        out = b.reshape(1, *x.shape[1:]).expand_as(x).clone()
    else:
        raise ValueError(f"baselines has shape {tuple(b.shape)} but inputs have shape {tuple(x.shape)}: give one "
                         f"baseline per input {tuple(x.shape)}, one for all {(1, *x.shape[1:])}, or a name "
                         f"from {BASELINES}")
    if not torch.isfinite(out).all():
        raise ValueError("baselines contain NaN or inf; give finite baselines")
    return out


def check_path_inputs(inputs) -> torch.Tensor:
    """``inputs`` as a float batch ``(samples, ...)`` of finite values, or a clear error."""
    x = to_tensor(inputs, "inputs")
    if not x.is_floating_point():
        x = x.float()
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"inputs must be a batch (samples, ...) with at least one sample; got shape "
                         f"{tuple(x.shape)}. Add a batch axis: x[None]")
    if not all_finite(x):
        raise ValueError("inputs contain NaN or inf; path attributions need finite inputs (drop or impute them)")
    return x


def check_output(output):
    if not (callable(output) or output in OUTPUTS):
        raise ValueError(f"output must be one of {OUTPUTS} or a callable, got {output!r}")
    return output


def apply_output(out, output):
    """``F`` from the model's output: ``"logits"`` as is, ``"softmax"``, ``"log_softmax"``
    over the class axis, or a callable."""
    if callable(output):
        return output(out)
    if output == "logits":
        return out
    if output == "softmax":
        return torch.softmax(out, dim=1)
    if output == "log_softmax":
        return torch.log_softmax(out, dim=1)
    raise ValueError(f"output must be one of {OUTPUTS} or a callable, got {output!r}")


@checked
def path_targets(target, labels: np.ndarray | None, fx_all, n, output_dim) -> np.ndarray:
    """One class index per input: ``"predicted"`` (argmax of ``F(x)``), ``"true"``
    (``labels``), one int for all, or one int per input."""
    if isinstance(target, str):
        if target == "predicted":
            return fx_all.argmax(1).cpu().numpy()
        if target == "true":
            if labels is None:
                raise ValueError("target='true' needs labels=... (one class per input)")
            t = to_tensor(labels, "labels").reshape(-1).long().numpy()
        else:
            raise ValueError(f"target must be 'predicted', 'true', an int or one int per input; got {target!r}")
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        t = np.full(n, int(target))
    else:
        t = to_tensor(target, "target").reshape(-1).long().numpy()
    if len(t) != n:
        raise ValueError(f"target/labels must give one class per input: {len(t)} for {n} inputs")
    if t.size and (t.min() < 0 or t.max() >= output_dim):
        raise ValueError(f"target out of range: the model has {output_dim} outputs (0..{output_dim - 1}), "
                         f"got {int(t.min())}..{int(t.max())}")
    return t


# --------------------------------------------------------------------------------------
# Hooks that keep the graph
# --------------------------------------------------------------------------------------
class PathTaps:
    """Forward hooks on the chosen modules that keep each output *with* its autograd
    graph (so the output's gradient can be taken) and hand a clone downstream, so an
    in-place op later in the network cannot change the kept value. Calls per forward
    pass are counted, to catch reused modules. ``keep_graph=False`` stores detached
    clones instead (end points). Removed by :meth:`remove` (use ``with``)."""

    def __init__(self, model, names, keep_graph=True):
        self.names = names
        self.keep_graph = keep_graph
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls = {n: 0 for n in names}
        self._stack = contextlib.ExitStack()  # the one hook context, closed by remove()
        self._stack.enter_context(hooks(model, [(n, self._hook(n)) for n in names]))

    def _hook(self, name):
        def hook(module, args, output):
            self.calls[name] += 1
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layers: module {name!r} returns a {type(output).__name__}, not a tensor; "
                                "choose a module (e.g. its enclosing block) whose output is one tensor")
            self.outputs[name] = output if self.keep_graph else output.detach().clone()
            return output.clone() if self.keep_graph else None
        return hook

    def reset(self):
        self.outputs = {}
        self.calls = {n: 0 for n in self.names}

    def check_reuse(self):
        for n, c in self.calls.items():
            if c > 1:
                parent = n.rsplit(".", 1)[0] if "." in n else None
                where = f"the block that calls it, e.g. {parent!r}" if parent else "the blocks that call it"
                raise ValueError(
                    f"layers: module {n!r} runs {c} times in one forward pass (one module reused at several "
                    "points, like torchvision ResNet's single 'relu' per block or EfficientNet's shared swish), "
                    f"so its hook would mix different tensors and its attribution would be silently wrong. "
                    f"Hook the block instead: {where} (blocks(model) lists them).")
            if c == 0:
                raise ValueError(f"layers: module {n!r} is never called in the model's forward pass; "
                                 "choose a module that runs (blocks(model) lists the default ones)")

    def remove(self):
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


# --------------------------------------------------------------------------------------
# Probe and plan: what one input at one point costs, how many fit the budget
# --------------------------------------------------------------------------------------
class PathProbe:
    """What the probe pass measured for one input: ``input_bytes`` (the input: a
    difference, each point, then their concatenation: three copies), ``leaf_bytes``
    (outputs of every leaf module; the backward pass makes a gradient of each: twice),
    ``saved_bytes`` (tensors autograd keeps for the backward pass, parameters excluded:
    they are in memory anyway), ``layer_bytes`` (outputs of the chosen layers: kept,
    cloned and their gradients), and ``bytes_per_point`` = 3 x input + 2 x leaf + saved
    + 3 x layer: an estimate of one input at one path point (``tests/test_record_path.py``
    holds the saved tensors of a run within the budget)."""

    def __init__(self, input_bytes: int, leaf_bytes: int, saved_bytes: int, layer_bytes: int):
        self.input_bytes, self.leaf_bytes = int(input_bytes), int(leaf_bytes)
        self.saved_bytes, self.layer_bytes = int(saved_bytes), int(layer_bytes)
        self.bytes_per_point = max(1, 3 * self.input_bytes + 2 * self.leaf_bytes + self.saved_bytes
                                   + 3 * self.layer_bytes)

    def __repr__(self):
        return (f"PathProbe(bytes_per_point={self.bytes_per_point}, input={self.input_bytes}, "
                f"leaf={self.leaf_bytes}, saved={self.saved_bytes}, layers={self.layer_bytes})")


def probe_path(model: nn.Module, x1: torch.Tensor, names, output) -> PathProbe:
    """One forward pass of one input with autograd on (the model as it is: put it in
    eval mode and on its device first): checks the shapes and that no chosen module runs
    twice, and measures the bytes of :class:`PathProbe`. Hooks are removed after."""
    leaf, saved = [0], [0]
    params = {p.untyped_storage().data_ptr() for p in list(model.parameters()) + list(model.buffers())}

    def count(mod, a, o):
        if isinstance(o, torch.Tensor):
            leaf[0] += o.numel() * o.element_size()

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:  # a weight (or a view of one) costs nothing extra
            saved[0] += t.numel() * t.element_size()
        return t

    leaves = resolve_layers(model, None)  # every leaf module (the model itself if it is one)
    with hooks(model, [(n, count) for n in leaves]), PathTaps(model, names, keep_graph=False) as taps, \
            torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        xi = x1.detach().clone().requires_grad_(True)
        try:
            out = apply_output(model(xi), output)
        except RuntimeError as exc:
            raise ValueError(f"inputs of shape {tuple(x1.shape)} (one of the batch) do not fit the model "
                             f"({exc}). inputs must be a batch (samples, ...) of what the model takes; for one "
                             "input use x[None]") from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or len(out) != 1:
            raise ValueError(f"the model (after output={output!r}) must map a batch of inputs to (samples, "
                             f"classes); one input of shape {tuple(x1.shape[1:])} gave "
                             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}."
                             " Is the batch axis missing (use x[None])?")
        taps.check_reuse()
        layer = sum(t.numel() * t.element_size() for t in taps.outputs.values())
    return PathProbe(x1[:1].numel() * x1.element_size(), leaf[0], saved[0], layer)


@checked
def plan_path_chunks(n_inputs: int, n_points: int, bytes_per_point: int, memory_budget: int, *,
                     batch_size: int | None = None, chunk_steps: int | None = None) -> tuple[int, int]:
    """``(batch_size, points per chunk)`` so that ``batch_size x points x bytes_per_point
    <= memory_budget`` where it can be: all inputs at once when >= 9 points of each fit
    (>= 8 steps per chunk keeps the shared end points cheap), else fewer inputs, then
    fewer points, down to one input at two points (the smallest chunk there is; a
    ``RuntimeWarning`` says when even that exceeds the budget). Given ``batch_size`` /
    ``chunk_steps`` are kept."""
    cap = max(2, int(memory_budget) // int(bytes_per_point))  # input-points one chunk may hold
    want = min(n_points, 9)
    if batch_size is None:
        batch_size = n_inputs if cap >= n_inputs * want else max(1, cap // want)
    batch_size = min(int(batch_size), n_inputs)
    if chunk_steps is None:
        chunk_steps = int(max(1, cap // batch_size - 1))
    points = min(int(chunk_steps) + 1, n_points)
    need = batch_size * max(points, 2) * bytes_per_point
    if need > memory_budget and batch_size == 1 and points <= 2:
        warnings.warn(f"memory_budget={memory_budget:,} bytes is below what the smallest chunk (one input at two "
                      f"path points) needs, ~{need:,} bytes ({need / 2**20:.1f} MiB) measured by the probe: the "
                      f"run goes ahead with that chunk. Raise memory_budget to at least {need:,} to silence this, "
                      "or use smaller inputs.", RuntimeWarning, stacklevel=3)
    return batch_size, points


@checked
def path_chunks(model: nn.Module, x: torch.Tensor, base: torch.Tensor, targets: torch.Tensor, names, alphas, *,
                batch_size: int, points: int, output="logits", device=None):
    """Yield ``(start, ys, gs)`` for every batch of inputs (from ``start``) and every
    chunk of path points: ``ys[name]``, ``gs[name]`` of shape ``(c, batch, *layer)``,
    the layer's outputs and the gradients of ``F[target]`` with respect to them at the
    chunk's ``c`` points (consecutive chunks share an end point). The model runs as it
    is (eval mode, frozen parameters, on ``device``: the caller's job); one forward and
    one backward pass per chunk serve every layer."""
    dev = x.device if device is None else device
    n_pts = len(alphas)
    starts = list(range(0, n_pts - 1, points - 1)) or [0]
    a_all = torch.as_tensor(np.asarray(alphas), dtype=torch.float64)
    with PathTaps(model, names, keep_graph=True) as taps:
        for s0 in range(0, len(x), batch_size):
            xb = x[s0:s0 + batch_size].to(dev)
            bb = base[s0:s0 + batch_size].to(dev)
            nb = len(xb)
            tb = targets[s0:s0 + batch_size].to(dev)
            for st in starts:
                a = a_all[st:min(st + points, n_pts)]
                c = len(a)
                # step-major batch, as Captum builds it: [x(a_0) for all inputs, x(a_1) ...]
                xs = torch.cat([bb + float(ak) * (xb - bb) for ak in a]).requires_grad_(True)
                taps.reset()
                with torch.enable_grad():
                    out = apply_output(model(xs), output)
                    taps.check_reuse()
                    sel = out[torch.arange(c * nb, device=dev), tb.repeat(c)].sum()
                    outs = [taps.outputs[nm] for nm in names]
                    grads = torch.autograd.grad(sel, outs, allow_unused=True)
                ys, gs = {}, {}
                for nm, y, g in zip(names, outs, grads):
                    ys[nm] = y.detach().reshape(c, nb, *y.shape[1:])
                    gs[nm] = torch.zeros_like(ys[nm]) if g is None else g.reshape(c, nb, *y.shape[1:])
                del xs, out, sel, outs, grads
                yield s0, ys, gs


def _into(store: dict, key, part: torch.Tensor, s0: int, n: int) -> None:
    """Write ``part`` (a batch from sample ``s0``) into ``store[key]``, a CPU tensor of
    ``n`` samples allocated at the first batch: results are filled in place, never
    concatenated from per-batch copies (which would hold the result twice at the end)."""
    if key not in store:
        store[key] = torch.empty((n, *part.shape[1:]), dtype=part.dtype)
    store[key][s0:s0 + len(part)] = part


def end_points(model: nn.Module, x: torch.Tensor, base, names, output, batch_size: int, device, reduce=None):
    """``(F(x), F(x'), activations at x)`` without autograd, ``batch_size`` inputs at a
    time, each written into a preallocated CPU output: ``F`` ``(samples, outputs)`` in
    its own dtype (``F(x')`` is None when ``base`` is None), ``activations[name]`` of shape
    ``(samples, *layer)`` in the model's dtype, or ``reduce(batch)``'s shape when a
    ``reduce`` function is given (e.g. the channel means, so full maps are never kept)."""
    n, out = len(x), {}
    with torch.no_grad(), PathTaps(model, names, keep_graph=False) as taps:
        for s in range(0, n, batch_size):
            taps.reset()
            _into(out, "fx", apply_output(model(x[s:s + batch_size].to(device)), output).cpu(), s, n)
            if names:
                taps.check_reuse()
            for nm in names:
                a = taps.outputs[nm]
                _into(out, nm, (a if reduce is None else reduce(a)).cpu(), s, n)
            taps.reset()
            if base is not None:
                _into(out, "fb", apply_output(model(base[s:s + batch_size].to(device)), output).cpu(), s, n)
    return out["fx"], out.get("fb"), {nm: out[nm] for nm in names}


# --------------------------------------------------------------------------------------
# All of it, kept
# --------------------------------------------------------------------------------------
class PathSetup:
    """The checked arguments of a path computation, in one place for every caller:
    ``alphas``, inputs ``x`` and baselines ``base`` in the model's dtype, layer ``names``,
    ``budget`` (bytes; None = ``default_budget``) and ``device`` (None = the model's)."""

    def __init__(self, model, inputs, layers, *, baselines, steps, method, output, seed, blur_sigma, device,
                 memory_budget, default_budget: int = PATH_MEMORY_BUDGET):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.alphas = path_alphas(steps, method)
        x = check_path_inputs(inputs)
        self.names = path_layers(model, layers)
        check_output(output)
        self.budget = check_int(default_budget if memory_budget is None else memory_budget, "memory_budget",
                                minimum=1)
        home, dtype = model_device(model)
        self.device = home if device is None else resolve_device(device)
        self.x = x.to(dtype)
        self.base = make_baseline(baselines, self.x, seed=seed, blur_sigma=blur_sigma).to(dtype)


@checked
def path_gradients(model: nn.Module, inputs, layers=None, *, baselines="zeros", target="predicted", labels=None,
                   steps: int = 8, method: str = "riemann_trapezoid", output="logits", seed: int = 0,
                   blur_sigma: float = 4.0, device=None, memory_budget: int = PATH_MEMORY_BUDGET,
                   num_threads: int | None = None, progress=False):
    """Outputs and gradients of the layers at every path point, kept: ``(ys, gs, alphas)``
    with ``ys[name]`` (``y(x(a_k))``) and ``gs[name]`` (``dF/dy(x(a_k))``) of shape
    ``(steps + 1, samples, *layer_shape)`` on the CPU.

    The raw material of layer conductance, ``Cond_y ~= sum_k gs[k] * (ys[k+1] - ys[k])``
    (:func:`nifkit.conductance.layer_conductance` sums it chunk by chunk instead of
    keeping it). ``layers``: None = the model's blocks; ``target``, ``output``,
    ``baselines``, ``steps``, ``method`` as in ``layer_conductance``. The result itself
    is ``2 x (steps + 1)`` copies of the layers' outputs; ``memory_budget`` (default
    256 MiB) bounds the temporaries of each chunk. The model runs in eval mode with frozen
    parameters on ``device`` (default: its own) and is given back as it was.
    """
    p = PathSetup(model, inputs, layers, baselines=baselines, steps=steps, method=method, output=output, seed=seed,
                  blur_sigma=blur_sigma, device=device, memory_budget=memory_budget)
    alphas, x, base, names, budget, dev = p.alphas, p.x, p.base, p.names, p.budget, p.device
    with cpu_threads(num_threads, dev), ModelState(model, eval=True, freeze=True, device=dev):
        probe = probe_path(model, x[:1].to(dev), names, output)
        bs_eval = max(1, budget // (2 * max(probe.leaf_bytes, 1)))  # F(x) in budget-sized batches too
        fx = end_points(model, x, None, [], output, bs_eval, dev)[0]
        t = torch.as_tensor(path_targets(target, labels, fx, len(x), fx.shape[1]))
        bs, pts = plan_path_chunks(len(x), len(alphas), probe.bytes_per_point, budget)
        n_chunks = math.ceil(len(x) / bs) * len(range(0, len(alphas) - 1, pts - 1))
        ys, gs = {}, {}  # the result, (points, samples, *layer), filled chunk by chunk
        k, last = 0, None  # the first point of the chunk, the batch it belongs to
        with Progress(progress, n_chunks, "path gradients", unit="chunk") as bar:
            for s0, y, g in path_chunks(model, x, base, t, names, alphas, batch_size=bs, points=pts,
                                        output=output, device=dev):
                k, skip = (0, 0) if s0 != last else (k, 1)  # consecutive chunks share an end point: keep it once
                last, c = s0, next(iter(y.values())).shape[0]
                for nm in names:
                    if nm not in ys:
                        ys[nm] = torch.empty((len(alphas), len(x), *y[nm].shape[2:]), dtype=y[nm].dtype)
                        gs[nm] = torch.empty_like(ys[nm])
                    nb = y[nm].shape[1]
                    ys[nm][k + skip:k + c, s0:s0 + nb] = y[nm][skip:].cpu()
                    gs[nm][k + skip:k + c, s0:s0 + nb] = g[nm][skip:].cpu()
                del y, g
                k += c - 1
                bar.update()
    return ys, gs, alphas
