"""Layer conductance of every unit of every chosen layer, from one interpolation batch.

For an input ``x``, a baseline ``x'`` and the straight path ``x(a) = x' + a (x - x')``,
the conductance of a hidden unit ``y`` for the output ``F`` (Dhamdhere, Yan & Sundararajan
2018; the efficient layer form of Shrikumar et al. 2018) is

    Cond_y(x) = integral_0^1  dF/dy(x(a)) * dy(x(a))/da  da,

and, summed over all units of a layer that every path from input to output crosses,
it equals ``F(x) - F(x')`` (completeness). Like Captum's ``LayerConductance`` it is
approximated on ``steps + 1`` points ``a_0 < ... < a_steps`` of an alpha rule as

    Cond_y(x) ~= sum_{k=0}^{steps-1}  dF/dy(x(a_k)) * (y(x(a_{k+1})) - y(x(a_k)))

(gradient at the left point of each step). With ``"riemann_trapezoid"`` alphas
(``a_0 = 0``, ``a_steps = 1``) the sum of a layer telescopes toward ``F(x) - F(x')``
as ``steps`` grows; Gauss–Legendre alphas (Captum's default) lie strictly inside
``(0, 1)``, so the first and last pieces of the path are never seen and the gap
cannot close.

What :func:`layer_conductance` adds to the per-layer recipe: every chosen layer at once.
The points of the path are split into chunks that share their end points (chunk
``[a_i .. a_j]``, next chunk ``[a_j .. ]``), each chunk is one forward pass with hooks on
all layers and **one** backward pass (``torch.autograd.grad`` with respect to every
layer's output together), so ``L`` layers cost one interpolation batch, not ``L``.
"""
from __future__ import annotations

import difflib
import math

import numpy as np
import torch
from torch import nn

from .._validation import resolve_device, to_tensor
from ..models.walk import blocks  # the default layers: the one walker's blocks
from .result import Conductance

#: default bytes of temporaries per chunk: half the project's default, because the autograd
#: graph of a chunk comes on top of a model (and torch) already in memory
DEFAULT_BUDGET = 256 * 2**20

__all__ = ["METHODS", "BASELINES", "OUTPUTS", "path_alphas", "blocks", "make_baseline", "layer_conductance",
           "Conductance", "path_gradients"]

METHODS = ("riemann_trapezoid", "gausslegendre", "riemann_left", "riemann_right", "riemann_middle")
BASELINES = ("zeros", "mean", "blur", "uniform")
OUTPUTS = ("logits", "softmax", "log_softmax")


# --------------------------------------------------------------------------------------
# Alphas, layers, baselines
# --------------------------------------------------------------------------------------
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


def _resolve(model: nn.Module, layers) -> list[str]:
    mods = dict(model.named_modules())
    if layers is None:
        return blocks(model)
    if isinstance(layers, str):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise TypeError(f"layers must be None, a module name or a list of names, got {type(layers).__name__}") from None
    if not layers:
        raise ValueError("layers is empty; pass None for the model's blocks")
    names = []
    for n in layers:
        if not isinstance(n, str):
            raise TypeError(f"layers must hold module names (str), got {n!r}")
        if n not in mods or n == "":
            close = difflib.get_close_matches(n, [k for k in mods if k], n=4, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"layers: no module named {n!r} in the model.{hint} blocks(model) lists the "
                             f"default layers: {', '.join(blocks(model)[:20])}")
        if n not in names:
            names.append(n)
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


# --------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------
class _Taps:
    """Forward hooks on the chosen modules. Each call's output is kept (for the graph)
    and a clone is handed on downstream, so an in-place op later in the network cannot
    change the stored value. Calls per forward pass are counted, to catch reused
    modules. Removed by :meth:`remove` (always called in ``finally``)."""

    def __init__(self, model, names, keep_graph=True):
        self.names = names
        self.keep_graph = keep_graph
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls = {n: 0 for n in names}
        mods = dict(model.named_modules())
        self.handles = [mods[n].register_forward_hook(self._hook(n)) for n in names]

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
                    f"so its hook would mix different tensors and its conductance would be silently wrong. "
                    f"Hook the block instead: {where} (blocks(model) lists them).")
            if c == 0:
                raise ValueError(f"layers: module {n!r} is never called in the model's forward pass; "
                                 "choose a module that runs (blocks(model) lists the default ones)")

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def _apply_output(out, output):
    if callable(output):
        return output(out)
    if output == "logits":
        return out
    if output == "softmax":
        return torch.softmax(out, dim=1)
    if output == "log_softmax":
        return torch.log_softmax(out, dim=1)
    raise ValueError(f"output must be one of {OUTPUTS} or a callable, got {output!r}")


# --------------------------------------------------------------------------------------
# The computation
# --------------------------------------------------------------------------------------
def _check_inputs(inputs):
    x = to_tensor(inputs, "inputs")
    if not x.is_floating_point():
        x = x.float()
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"inputs must be a batch (samples, ...) with at least one sample; got shape "
                         f"{tuple(x.shape)}. Add a batch axis: x[None]")
    if not torch.isfinite(x).all():
        raise ValueError("inputs contain NaN or inf; conductance needs finite inputs (drop or impute them)")
    return x


def _targets(target, labels, fx_all, n, output_dim):
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


def layer_conductance(model: nn.Module, inputs, layers=None, *, baselines="zeros", target="predicted",
                      labels=None, steps: int = 32, method: str = "riemann_trapezoid", output="logits",
                      chunk_steps: int | None = None, batch_size: int | None = None,
                      memory_budget: int | None = None, device=None, num_threads: int | None = None,
                      seed: int = 0, blur_sigma: float = 4.0, progress=False) -> Conductance:
    """Conductance of every unit of every layer in ``layers`` (default :func:`blocks`).

    ``target``: ``"predicted"`` (argmax of ``F(x)``), ``"true"`` (``labels``), an index,
    or one index per input; attributed to ``output`` = ``"logits"`` (default; a softmax
    saturates, so the path near the input adds almost nothing and the total is capped at
    1), ``"softmax"``, ``"log_softmax"`` or a callable on the model output. ``baselines``: see :func:`make_baseline`. ``steps``,
    ``method``: the alpha rule (:func:`path_alphas`; ``"gausslegendre"`` is Captum's
    default, ``"riemann_trapezoid"`` ours because its gap closes).

    The ``steps + 1`` points are processed in chunks of ``chunk_steps + 1`` points that
    share end points, ``batch_size`` inputs at a time; by default both are sized from
    ``memory_budget`` bytes (default :data:`DEFAULT_BUDGET`, 256 MiB; a probe forward pass
    measures the activation memory of one input). One forward and one backward pass per chunk serve all layers.

    The model runs in eval mode on ``device`` with frozen parameters; its modes,
    ``requires_grad`` flags and device are restored and all hooks removed afterwards,
    also on errors. ``num_threads``: torch CPU threads for the run (None = 1 on the CPU,
    the project's policy for a shared machine; restored after).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    alphas = path_alphas(steps, method)
    x = _check_inputs(inputs)
    names = _resolve(model, layers)
    if not (callable(output) or output in OUTPUTS):
        raise ValueError(f"output must be one of {OUTPUTS} or a callable, got {output!r}")
    for arg, v in (("chunk_steps", chunk_steps), ("batch_size", batch_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{arg} must be a positive integer or None, got {v!r}")
    budget = DEFAULT_BUDGET if memory_budget is None else int(memory_budget)
    if budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    params = list(model.parameters())
    model_dev = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params else torch.float32
    dev = model_dev if device is None else resolve_device(device)
    x = x.to(dtype)
    base = make_baseline(baselines, x, seed=seed, blur_sigma=blur_sigma).to(dtype)

    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in params]
    moved = dev != model_dev
    taps = None
    threads = _cpu_threads(num_threads, dev)
    try:
        threads.__enter__()
        if moved:
            model.to(dev)
        model.eval()
        for p in params:
            p.requires_grad_(False)
        # probe: reuse check, shapes, activation memory of one input
        leaf_bytes = [0]

        def count(mod, a, o):
            if isinstance(o, torch.Tensor):
                leaf_bytes[0] += o.numel() * o.element_size()

        leaves = [m for m in model.modules() if not any(True for _ in m.children())]
        probe_handles = [m.register_forward_hook(count) for m in leaves]
        taps = _Taps(model, names, keep_graph=False)
        try:
            with torch.no_grad():
                try:
                    probe = _apply_output(model(x[:1].to(dev)), output)
                except RuntimeError as exc:
                    raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit the model ({exc}). inputs must "
                                     "be a batch (samples, ...) of what the model takes; for one input use x[None]"
                                     ) from exc
            if not isinstance(probe, torch.Tensor) or probe.ndim != 2 or len(probe) != 1:
                raise ValueError(f"the model (after output={output!r}) must map a batch of inputs to (samples, "
                                 f"classes); one input of shape {tuple(x.shape[1:])} gave "
                                 f"{tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__}."
                                 " Is the batch axis missing (use x[None])?")
        finally:
            for h in probe_handles:
                h.remove()
        taps.check_reuse()
        per_input = max(leaf_bytes[0], 1)
        # end points: F(x), F(x'), activations at x (no grad)
        n = len(x)
        bs_eval = max(1, budget // (2 * per_input))
        fx, fb, acts = [], [], {nm: [] for nm in names}
        with torch.no_grad():
            for s in range(0, n, bs_eval):
                taps.reset()
                fx.append(_apply_output(model(x[s:s + bs_eval].to(dev)), output).float().cpu())
                taps.check_reuse()
                for nm in names:
                    acts[nm].append(taps.outputs[nm].cpu())
                fb.append(_apply_output(model(base[s:s + bs_eval].to(dev)), output).float().cpu())
        taps.remove()
        fx, fb = torch.cat(fx), torch.cat(fb)
        if fx.ndim != 2:
            raise ValueError(f"the model output (after output={output!r}) must be (samples, classes); "
                             f"got shape {tuple(fx.shape)}")
        t = _targets(target, labels, fx, n, fx.shape[1])
        tt = torch.as_tensor(t)
        f_in = fx[torch.arange(n), tt].double().numpy()
        f_base = fb[torch.arange(n), tt].double().numpy()
        # chunking: points per chunk P (>= 2) and inputs per batch
        n_pts = len(alphas)
        per_point_input = 2 * per_input  # the autograd graph plus clones and gradients, roughly
        cap = max(2, budget // per_point_input)  # input-points one chunk may hold
        want = min(n_pts, 9)  # >= 8 steps per chunk keeps the shared end points cheap
        if batch_size is None:
            batch_size = n if cap >= n * want else max(1, cap // want)
        if chunk_steps is None:
            chunk_steps = int(max(1, cap // batch_size - 1))
        pts = min(int(chunk_steps) + 1, n_pts)
        starts = list(range(0, n_pts - 1, pts - 1)) or [0]
        acc = {nm: None for nm in names}
        taps = _Taps(model, names, keep_graph=True)
        a_all = torch.as_tensor(alphas, dtype=torch.float64)
        total = math.ceil(n / batch_size) * len(starts)
        bar = _progress(progress, total)
        done = 0
        for s0 in range(0, n, batch_size):
            xb = x[s0:s0 + batch_size].to(dev)
            bb = base[s0:s0 + batch_size].to(dev)
            nb = len(xb)
            tb = tt[s0:s0 + batch_size].to(dev)
            parts = {nm: None for nm in names}
            for st in starts:
                a = a_all[st:min(st + pts, n_pts)]
                c = len(a)
                # step-major batch, as Captum builds it: [x(a_0) for all inputs, x(a_1) ...]
                xs = torch.cat([bb + float(ak) * (xb - bb) for ak in a]).requires_grad_(True)
                taps.reset()
                with torch.enable_grad():
                    out = _apply_output(model(xs), output)
                    taps.check_reuse()
                    sel = out[torch.arange(c * nb, device=dev), tb.repeat(c)].sum()
                    outs = [taps.outputs[nm] for nm in names]
                    grads = torch.autograd.grad(sel, outs, allow_unused=True)
                for nm, y, g in zip(names, outs, grads):
                    y = y.detach().reshape(c, nb, *y.shape[1:])
                    g = torch.zeros_like(y) if g is None else g.reshape(c, nb, *y.shape[2:])
                    piece = (g[:-1] * (y[1:] - y[:-1])).sum(0)
                    parts[nm] = piece if parts[nm] is None else parts[nm] + piece
                del xs, out, sel, outs, grads
                done += 1
                bar(done, total)
            for nm in names:
                acc[nm] = [] if acc[nm] is None else acc[nm]
                acc[nm].append(parts[nm].cpu())
        maps = {nm: torch.cat(acc[nm]) for nm in names}
        activations = {nm: torch.cat(acts[nm]) for nm in names}
    finally:
        if taps is not None:
            taps.remove()
        for p, f in flags:
            p.requires_grad_(f)
        for m, mode in modes:
            m.training = mode
        if moved:
            model.to(model_dev)
        threads.__exit__(None, None, None)
    settings = {"steps": int(steps), "method": method, "baselines": baselines if isinstance(baselines, str)
                else "given", "target": (target if isinstance(target, str) else int(target)
                           if isinstance(target, (int, np.integer)) else "given"), "output":
                output if isinstance(output, str) else "callable", "chunk_steps": int(pts - 1),
                "batch_size": int(batch_size), "layers": list(names)}
    notes = []
    if method == "gausslegendre":
        notes.append("Gauss-Legendre alphas lie strictly inside (0, 1): the completeness gap does not close")
    return Conductance(names=list(names), maps=maps, activations=activations, f_input=f_in, f_baseline=f_base,
                       target=t, predicted=fx.argmax(1).numpy(), settings=settings, notes=notes)


def _cpu_threads(n, device):
    """The project's thread policy (``cpu_threads``: None = 1 thread on the CPU)."""
    try:
        from ..runtime import cpu_threads
    except ImportError:  # before the runtime module exists
        from ..models import cpu_threads
    return cpu_threads(n, device)


def _progress(progress, total):
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="conductance", unit="chunk", leave=False)

        def step(done, tot):
            bar.n = done
            bar.refresh()
            if done >= tot:
                bar.close()
        return step
    if callable(progress):
        return lambda done, tot: progress(done, tot, "conductance")
    return lambda done, tot: None


def path_gradients(model: nn.Module, inputs, layers=None, *, baselines="zeros", target="predicted", labels=None,
                   steps: int = 8, method: str = "riemann_trapezoid", output="logits"):
    """Outputs and gradients of the layers at every path point, kept: ``(ys, gs, alphas)``
    with ``ys[name]`` and ``gs[name]`` of shape ``(steps + 1, samples, *layer_shape)``.

    The raw material of :func:`layer_conductance` (which sums on the fly instead of
    keeping it): for small models and the chapter's exercise. (A candidate for
    ``nifkit.record``: recording gradients along a path.)
    """
    x = _check_inputs(inputs)
    names = _resolve(model, layers)
    alphas = path_alphas(steps, method)
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.float32
    x = x.to(dtype)
    base = make_baseline(baselines, x).to(dtype)
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in params]
    taps = _Taps(model, names, keep_graph=True)
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            fx = _apply_output(model(x), output)
        t = torch.as_tensor(_targets(target, labels, fx, len(x), fx.shape[1]))
        xs = torch.cat([base + float(a) * (x - base) for a in alphas]).requires_grad_(True)
        taps.reset()
        with torch.enable_grad():
            out = _apply_output(model(xs), output)
            taps.check_reuse()
            sel = out[torch.arange(len(xs)), t.repeat(len(alphas))].sum()
            outs = [taps.outputs[n] for n in names]
            grads = torch.autograd.grad(sel, outs, allow_unused=True)
        p = len(alphas)
        ys = {n: o.detach().reshape(p, len(x), *o.shape[1:]) for n, o in zip(names, outs)}
        gs = {n: (torch.zeros_like(ys[n]) if g is None else g.reshape(p, len(x), *g.shape[1:]))
              for n, g in zip(names, grads)}
    finally:
        taps.remove()
        for q, f in flags:
            q.requires_grad_(f)
        for m, mode in modes:
            m.training = mode
    return ys, gs, alphas
