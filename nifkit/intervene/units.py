"""Knockouts of units: the batched engine (:class:`Knockouts`; its hooked path and the context
manager :func:`knock_out` are in :mod:`.hooked`) and the input checks they share.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import as_labels
from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_float_tensor, as_xy  # as_float_tensor: re-exported
from ..models.units import UnitLayout
from ..models.walk import unknown_layer_error
from ..runtime import ModelState, cpu_threads, model_device
from ..results import Result
from .._validation import checked

__all__ = ["VALUES", "check_labels", "as_float_tensor", "flat_sequential", "cumulative_masks", "KnockoutResult", "Knockouts", "knocked",
           "KnockoutSpec", "FastPlan", "RankOneLinear"]


VALUES = ("zero", "mean")


_PASS_THROUGH = (nn.Dropout, nn.Identity, nn.AlphaDropout)


@checked
def check_labels(y, n: int, what: str, n_classes: int | None = None) -> np.ndarray:
    """Class indices ``(samples,)`` as int64 (:func:`nifkit._validation.as_labels`: dtype,
    NaN, fractions, negatives), checked against ``n`` samples of ``what`` and the
    model's ``n_classes``."""
    arr = as_labels(y, "labels")
    if len(arr) != n:
        raise ValueError(
            f"labels has {len(arr)} entries but {what} has {n} samples; pass the labels of the same "
            "samples (e.g. data.y_test together with data.X_test)")
    if n_classes is not None and n and arr.max() >= n_classes:
        raise ValueError(f"labels go up to {int(arr.max())} but there are only {n_classes} classes "
                         f"(0..{n_classes - 1}); pass n_classes= or labels that match the model's outputs")
    return arr


def flat_sequential(model: nn.Module):
    """``[(name, module)]`` of the leaves of a (nested) ``nn.Sequential``, or None."""
    if not isinstance(model, nn.Sequential):
        return None
    out = []

    def rec(seq, prefix):
        for n, m in seq.named_children():
            full = f"{prefix}{n}"
            if isinstance(m, nn.Sequential):
                rec(m, full + ".")
            else:
                out.append((full, m))
    rec(model, "")
    return out


def cumulative_masks(order, counts, m: int) -> torch.Tensor:
    """Bool ``(steps, m)``: step ``s`` masks ``order[:counts[s]]`` (no loop)."""
    order = torch.as_tensor(np.asarray(order), dtype=torch.long)
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.long)
    rank = torch.full((m,), len(order) + 1, dtype=torch.long)
    rank[order] = torch.arange(len(order))
    return rank[None, :] < counts[:, None]


def knocked(mask, value, h) -> torch.Tensor:
    """``h`` ``(n, s, units, *positions)`` with the units where ``mask`` ``(s, units)`` is
    True set to ``value`` (broadcast over positions: a channel's whole map)."""
    return torch.where(mask.reshape(1, *mask.shape, *[1] * (h.ndim - 3)), value, h)


def _widths(rest, a1) -> list:
    """Numbers per sample of every output of the modules ``rest`` run on one sample ``a1``
    (None: read ``out_features`` instead, the dense case)."""
    if a1 is None:
        return [getattr(m, "out_features", 0) for _, m in rest]
    out, h = [], a1
    with torch.no_grad():
        for _, m in rest:  # a loop over layers, one sample
            h = m(h)
            out.append(h[0].numel())
    return out


@dataclass(repr=False)
class KnockoutResult(Result):
    """``accuracy (S,)``, mean cross-entropy ``loss (S,)`` and ``class_accuracy (S, C)``
    (NaN for a class without samples) of ``S`` knockouts. Unpacks as a triple."""

    accuracy: np.ndarray
    loss: np.ndarray
    class_accuracy: np.ndarray

    def table(self) -> list[dict]:
        """One row per knockout: accuracy and loss."""
        return [{"accuracy": a, "loss": l} for a, l in zip(np.asarray(self.accuracy, dtype=float).tolist(),
                                                            np.asarray(self.loss, dtype=float).tolist())]

    def __iter__(self):
        return iter((self.accuracy, self.loss, self.class_accuracy))


class Knockouts:
    """Evaluate many knockouts of one model on one labelled evaluation set, fast.

    Construction stores the model and ``(X, y)`` and runs the model once (the baseline);
    the output of each layer up to a knocked-out one is computed once and cached, so
    build it after training. :meth:`evaluate` takes bool masks ``(S, units)`` per layer.
    ``value`` is ``"zero"``, ``"mean"`` (each unit's mean over ``X``) or an array per
    layer. The model is put in eval mode under ``no_grad`` during each call and
    restored afterwards; no hooks are left behind and no weight is touched.

    A unit of a convolutional output ``(samples, channels, *positions)`` is a channel: its
    mask entry fixes the whole map (masks are ``(S, channels)``).

    ``memory_budget`` bounds the bytes of temporaries (default 512 MiB);
    ``method="auto"`` uses the fast path for ``nn.Sequential`` models and hooks
    otherwise (``"hooks"`` forces the generic path: several knockouts per forward pass,
    :func:`nifkit.intervene.hooked.evaluate_hooked`). ``device``: where to compute:
    the model's device (``None``), or the same device named (move the model there
    first); ``num_threads``: torch CPU threads while evaluating (None: the package's
    thread policy, see :class:`nifkit.runtime.cpu_threads`).
    """

    @checked
    def __init__(self, model: nn.Module, data, *, split: str = "test", device=None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, num_threads: int | None = None, method: str = "auto",
                 batch_size: int = 4096):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        X, y = as_xy(data, split)
        if method not in ("auto", "fast", "hooks"):
            raise ValueError(f"method must be 'auto', 'fast' or 'hooks', got {method!r}")
        self.model = model
        self.num_threads = num_threads
        cpu_threads(num_threads)  # checks the value now
        self.X = X  # as_xy: float, finite, at least one sample
        self.flat = flat_sequential(model)
        if method == "fast" and self.flat is None:
            raise ValueError("method='fast' needs an nn.Sequential model; use method='auto' or 'hooks'")
        self.method = "hooks" if (method == "hooks" or self.flat is None) else "fast"
        self.memory_budget = int(memory_budget)
        self.batch_size = int(batch_size)
        self.chunk_samples = 32  # samples per chunk: small, so temporaries stay in cache
        self.block = 16  # units per block of the cumulative sums
        self.device, self.dtype = model_device(model)
        if device is not None:
            from .._validation import resolve_device

            dev = resolve_device(device)
            if dev != self.device:
                raise ValueError(f"device={device!r} but the model's parameters are on {self.device}; move the "
                                 f"model first (model.to({str(dev)!r})) or leave device=None")
        self._prefix: dict = {}
        self._layout = None  # the walked model, for the hooked path (flow)
        #: layer -> whether the hooked path may expand the batch there (:func:`.hooked.expansion_works`)
        self.expansion: dict = {}
        self._layer_names = [n for n, _ in self.flat] if self.flat is not None else \
            [n for n, _ in model.named_modules() if n]
        with ModelState(model, eval=True, no_grad=True), cpu_threads(num_threads, self.device):
            logits = self.forward_all(self.X)
        if logits.ndim != 2:
            raise ValueError(f"the model's output must be (samples, classes) logits, got shape {tuple(logits.shape)}")
        self.n_classes = logits.shape[1]
        self.y_np = check_labels(y, len(self.X), "X", self.n_classes)
        self.y = torch.from_numpy(self.y_np).to(self.device)
        self.class_counts = np.bincount(self.y_np, minlength=self.n_classes)
        # built in the model's dtype at once (F.one_hot's int64 table would be 8 bytes per cell)
        self.onehot = torch.zeros(len(self.y), self.n_classes, dtype=self.dtype, device=self.device)
        self.onehot.scatter_(1, self.y[:, None], 1)
        self.base_logits = logits
        correct = (logits.argmax(1) == self.y).double()
        self.base_accuracy = float(correct.mean())
        #: accuracy of the intact model per class (NaN for a class without samples, as in evaluate)
        per = np.bincount(self.y_np, weights=correct.cpu().numpy(), minlength=self.n_classes)
        self.base_class_accuracy = np.where(self.class_counts > 0, per / np.maximum(self.class_counts, 1), np.nan)

    # -- plumbing -----------------------------------------------------------------------
    @checked
    def flow(self, layers) -> tuple:
        """``(first, cut)``: the first of ``layers`` in data-flow order and whether its output
        is a cut of the data flow (:class:`nifkit.models.units.UnitLayout`, traced once per
        engine); a model the walker cannot trace gives ``(layers[0], False)``."""
        if self._layout is None:
            try:
                self._layout = UnitLayout(self.model)
            except (TypeError, ValueError):  # not traceable, or no hidden layer: the plain hooked path
                self._layout = False
        if self._layout is False:
            return layers[0], False
        first = self._layout.order(layers)[0]
        return first, self._layout.is_cut(first)

    @property
    def layer_names(self) -> list:
        return list(self._layer_names)

    def forward_all(self, X):
        """The model's logits for ``X``, ``batch_size`` rows at a time, as the model is now
        (the caller sets mode, grad and any knockout hooks)."""
        res = None  # written batch by batch into one preallocated tensor (no per-batch copies to concatenate)
        for s in range(0, len(X), self.batch_size):
            out = self.model(X[s:s + self.batch_size].to(self.device, self.dtype))
            out = out[0] if isinstance(out, (tuple, list)) else out
            if res is None:
                res = out.new_empty((len(X), *out.shape[1:]))
            res[s:s + len(out)] = out
        return res

    @checked
    def index(self, layer: str) -> int:
        """Position of ``layer`` among the model's modules (``ValueError`` with "did you
        mean" for unknown names)."""
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a module name (str), got {type(layer).__name__}")
        if layer not in self._layer_names:
            raise unknown_layer_error(layer, self._layer_names, what="layer")
        return self._layer_names.index(layer)

    @checked
    def activations(self, layer: str) -> torch.Tensor:
        """Output ``(samples, units)`` of ``layer`` on the evaluation set, or
        ``(samples, channels, *positions)`` of a convolutional one (cached)."""
        if layer not in self._prefix:
            k = self.index(layer)
            if self.method == "fast":
                a = None  # written batch by batch into one preallocated tensor
                with ModelState(self.model, eval=True, no_grad=True):
                    for s in range(0, len(self.X), self.batch_size):
                        h = self.X[s:s + self.batch_size].to(self.device, self.dtype)
                        for _, m in self.flat[:k + 1]:
                            h = m(h)
                        if a is None:
                            a = h.new_empty((len(self.X), *h.shape[1:]))
                        a[s:s + len(h)] = h
            else:
                a = self._recorded_activations(layer)
            if a.ndim < 2:
                raise ValueError(f"layer {layer!r} outputs one number per sample (shape {tuple(a.shape)}); "
                                 "knock out the units of a layer (samples, units) or (samples, channels, ...)")
            self._prefix[layer] = a
        return self._prefix[layer]

    def _recorded_activations(self, layer):
        """``layer``'s output on the evaluation set through :func:`nifkit.record.record`
        (the one recorder); a module called more than once is refused."""
        from ..record import record

        rec = record(self.model, self.X, [layer], batch_size=self.batch_size, progress=False, reused="all",
                     to_cpu=False, num_threads=self.num_threads)
        n_calls = len(rec.activations)
        if n_calls == 0:
            raise ValueError(f"module {layer!r} is never called in the model's forward pass; knock out the units of "
                             "a module that runs")
        if n_calls > 1:
            module = dict(self.model.named_modules())[layer]
            raise ValueError(
                f"module {layer!r} is called {n_calls} times in one forward pass, so knocking out "
                "its units would change every use at once. Fix: give each use its own module (e.g. one "
                f"nn.{type(module).__name__}() per layer), or knock out the units of a module called once (the "
                "layer before it).")
        return rec[layer]

    @checked
    def n_units(self, layer: str) -> int:
        return self.activations(layer).shape[1]

    @checked
    def unit_value(self, layer: str, value) -> torch.Tensor:
        """What knocked-out units of ``layer`` are set to, one number per unit, shaped to
        broadcast over one sample's output (``(units,)``, or ``(channels, 1, ...)`` for a conv
        map: the channel's whole map takes the value): ``"zero"``; ``"mean"``: the unit's
        mean over the evaluation set, a conv channel's mean over the samples **and its
        positions** (the average of the channel's ``channel_reduce="mean"`` value, and what
        the streamed knockouts of :func:`nifkit.compare.knockout_truth` sum batch by batch);
        or given values, one per unit (per channel)."""
        a = self.activations(layer)
        shape = (a.shape[1], *[1] * (a.ndim - 2))
        if isinstance(value, str):
            if value == "zero":
                return torch.zeros(shape, dtype=a.dtype, device=a.device)
            if value == "mean":
                return a.mean([0, *range(2, a.ndim)]).reshape(shape)
            raise ValueError(f"value must be 'zero', 'mean' or an array of per-neuron values, got {value!r}")
        v = as_float_tensor(value, "value").to(a.device, a.dtype).reshape(-1)
        if v.numel() != a.shape[1]:
            what = "channels" if a.ndim > 2 else "neurons"
            raise ValueError(f"value has {v.numel()} entries but layer {layer!r} has {a.shape[1]} {what}")
        return v.reshape(shape)

    @checked
    def readout(self, layer: str, value="zero"):
        """The second evaluation mode: knockouts of ``layer``'s units scored through the
        one ``nn.Linear`` after it, by batched products and split sums (overall and
        per-class balanced accuracy, all ``2^m`` subsets of a layer of ``m <= 24`` units).
        See :class:`nifkit.intervene.readout.ReadoutKnockouts`."""
        from .readout import ReadoutKnockouts

        return ReadoutKnockouts(self, layer, value)

    # -- the core: masks per touched layer ------------------------------------------------
    @checked
    def evaluate(self, layers: Sequence[str], masks: Sequence, value="zero", *,
                 cumulative: Sequence | None = None, single: bool = False) -> KnockoutResult:
        """Accuracy ``(S,)``, mean loss ``(S,)`` and per-class accuracy ``(S, C)`` with
        the outputs of ``layers[i]`` replaced by ``value`` where ``masks[i]`` (bool
        ``(S, units_i)``) is True.

        ``cumulative[i] = (order, counts)`` may replace ``masks[i]`` (None) for the first
        layer: step ``s`` ablates ``order[:counts[s]]``. ``single=True`` says that the
        first layer's mask is the identity (step ``j`` ablates unit ``j`` alone). Both
        let a following ``nn.Linear`` be evaluated with rank-one updates instead of one
        matrix product per step.
        """
        with cpu_threads(self.num_threads, self.device):
            return self._evaluate(layers, masks, value, cumulative, single)

    def _evaluate(self, layers, masks, value, cumulative, single) -> KnockoutResult:
        spec = self._spec(layers, masks, value, cumulative, ordered=self.method == "fast")
        if self.method == "hooks":
            from .hooked import evaluate_hooked

            return evaluate_hooked(self, spec)
        a0 = self.activations(spec.layers[0])
        plan = self._plan(spec, single, a0.shape[1])
        correct = torch.zeros(spec.n_steps, self.n_classes, dtype=torch.float64, device=self.device)
        loss_sum = torch.zeros(spec.n_steps, dtype=torch.float64, device=self.device)
        with ModelState(self.model, eval=True, no_grad=True):
            rank_one = None if plan.kind == "general" else \
                RankOneLinear(plan.lin, spec, plan.kind, self.block, self.dtype, self.device)
            for ns in range(0, len(a0), plan.n_chunk):  # a loop over blocks of samples
                self._run_chunk(spec, plan, rank_one, a0[ns:ns + plan.n_chunk], ns, correct, loss_sum)
        return self.results_from(correct, loss_sum)

    def _spec(self, layers, masks, value, cumulative, ordered: bool) -> "KnockoutSpec":
        """The checked arguments of :meth:`evaluate`: names, positions, values and bool
        masks ``(S, units)`` per layer (``ordered``: distinct, in the model's order)."""
        if isinstance(layers, str):
            layers, masks = [layers], [masks]
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty: name at least one layer to knock units out of")
        idx = [self.index(n) for n in layers]
        if ordered and (sorted(idx) != idx or len(set(idx)) != len(idx)):
            raise ValueError("layers must be distinct and given in the model's order")
        vals = [self.unit_value(n, value if isinstance(value, str) else value[i]) for i, n in enumerate(layers)]
        cum = list(cumulative) if cumulative is not None else [None] * len(layers)
        masks = list(masks)
        if len(masks) != len(layers) or len(cum) != len(layers):
            raise ValueError(f"give one mask per layer: {len(layers)} layers {layers}, {len(masks)} masks"
                             + ("" if cumulative is None else f", {len(cum)} cumulative orders"))
        for i, n in enumerate(layers):
            if masks[i] is None and cum[i] is None:
                raise ValueError(f"no mask for layer {n!r}")
            if masks[i] is None:
                order, counts = cum[i]
                masks[i] = cumulative_masks(order, counts, self.n_units(n))
            mk = torch.as_tensor(masks[i])
            if mk.dtype != torch.bool and (mk.is_complex() or not bool(((mk == 0) | (mk == 1)).all())):
                raise ValueError(f"the mask for {n!r} must hold booleans or 0/1 (True = knocked out); "
                                 "0.5 is not a unit knocked out half-way")
            masks[i] = mk.to(dtype=torch.bool, device=self.device)
            if masks[i].ndim != 2 or masks[i].shape[1] != self.n_units(n):
                raise ValueError(f"mask for {n!r} must be (steps, {self.n_units(n)}), got {tuple(masks[i].shape)}")
        if any(m.shape[0] != masks[0].shape[0] for m in masks):
            raise ValueError("all masks must have the same number of steps")
        return KnockoutSpec(layers, idx, vals, masks, cum)

    def _plan(self, spec, single: bool, m0: int) -> "FastPlan":
        """Where the fast path starts after the first knocked-out layer (through the
        ``nn.Linear`` right after it, skipping pass-through modules, by rank-one updates
        when it can) and how many samples and steps one chunk holds."""
        k0 = spec.index[0]
        j = k0 + 1
        while j < len(self.flat) and isinstance(self.flat[j][1], _PASS_THROUGH):
            j += 1
        a0 = self.activations(spec.layers[0])
        lin = self.flat[j][1] if (a0.ndim == 2 and j < len(self.flat) and isinstance(self.flat[j][1], nn.Linear)
                                  and (len(spec.index) == 1 or spec.index[1] > j)) else None
        kind = "general"
        if lin is not None and spec.cumulative[0] is not None:
            kind = "cumulative"
        elif lin is not None and single:
            kind = "single"
        start = j + 1 if lin is not None else k0 + 1
        rest = self.flat[start:]
        out_f = lin.out_features if lin is not None else m0
        m0 = a0[0].numel()  # units x positions of one sample
        width = max([m0, out_f, self.n_classes] + _widths(rest, a0[:1] if lin is None else None))
        budget = max(self.memory_budget, 1 << 20)
        if kind == "general":
            per_sample = 4 * 3 * m0
        else:  # (units+1, out) outputs, the masked products and a copy per sample
            per_sample = 4 * (m0 + 16) * out_f * 4
        # small sample chunks keep the temporaries in cache; never above the budget
        n_chunk = int(min(len(self.X), self.chunk_samples, max(1, (budget // 2) // per_sample)))
        s_chunk = int(min(spec.n_steps, max(1, (budget // 2) // max(n_chunk * width * 4 * 4, 1))))
        return FastPlan(kind, lin, start, rest, {ix: i for i, ix in enumerate(spec.index)}, n_chunk, s_chunk)

    def _run_chunk(self, spec, plan, rank_one, a, ns, correct, loss_sum) -> None:
        """Every knockout on the samples ``a`` (starting at row ``ns``), ``s_chunk``
        steps at a time through the rest of the model; adds to the tallies."""
        n, S = len(a), spec.n_steps
        yb = self.y[ns:ns + n]
        oh = self.onehot[ns:ns + n]
        zz = None if rank_one is None else rank_one.outputs(a)
        for ss in range(0, S, plan.s_chunk):  # a loop over blocks of steps
            sl = slice(ss, ss + plan.s_chunk)
            s = min(ss + plan.s_chunk, S) - ss
            if rank_one is not None:
                h = rank_one.select(zz, sl, s, S)
            else:
                h = knocked(spec.masks[0][sl], spec.values[0], a[:, None])  # (n, s, units, *positions)
                if plan.lin is not None:
                    h = plan.lin(h)
            h = h.reshape(n * s, *h.shape[2:])
            for off, (_, mod) in enumerate(plan.rest):
                h = mod(h)
                i = plan.touched.get(plan.start + off)
                if i is not None:
                    h = knocked(spec.masks[i][sl], spec.values[i], h.reshape(n, s, *h.shape[1:])).flatten(0, 1)
            self.tally(h.reshape(n, s, -1), yb, oh, sl, correct, loss_sum)

    def tally(self, logits, yb, oh, sl, correct, loss_sum) -> None:
        """Add correct counts per class and summed cross-entropy of logits ``(n, s, C)``."""
        n, s = logits.shape[:2]
        ok = (logits.argmax(-1) == yb[:, None]).to(self.dtype)  # (n, s)
        correct[sl] += (oh.T @ ok).T.double()
        # cross-entropy = logsumexp - logit of the class (4x faster than F.cross_entropy
        # on many rows of 10 classes)
        mx = logits.amax(-1, keepdim=True)
        lse = (logits - mx).exp_().sum(-1).log_().add_(mx[..., 0])
        picked = logits.gather(2, yb[:, None, None].expand(n, s, 1))[..., 0]
        loss_sum[sl] += (lse - picked).double().sum(0)

    def results_from(self, correct, loss_sum):
        """:class:`KnockoutResult` from per-knockout correct counts per class
        ``(S, C)`` and summed losses ``(S,)``: accuracy, mean loss, class accuracy."""
        correct = correct.cpu().numpy()
        N = len(self.y_np)
        acc = correct.sum(1) / N
        with np.errstate(divide="ignore", invalid="ignore"):
            cls = np.where(self.class_counts > 0, correct / np.maximum(self.class_counts, 1), np.nan)
        return KnockoutResult(acc, loss_sum.cpu().numpy() / N, cls)

    @checked
    def evaluate_masks(self, layers, masks, value="zero", *, cumulative=None, single=False):
        """The same as :meth:`evaluate`, as a tuple ``(accuracy, loss, class_accuracy)``."""
        return tuple(self.evaluate(layers, masks, value, cumulative=cumulative, single=single))


@dataclass
class KnockoutSpec:
    """The checked arguments of one :meth:`Knockouts.evaluate`: layer names, their
    positions, the value each knocked-out unit takes, bool masks ``(S, units)`` and the
    ``(order, counts)`` of cumulative knockouts (or None) per layer."""

    layers: list
    index: list
    values: list
    masks: list
    cumulative: list

    @property
    def n_steps(self) -> int:
        return self.masks[0].shape[0]


@dataclass
class FastPlan:
    """How the fast path runs: ``kind`` (``"general"``, ``"cumulative"``, ``"single"``),
    the ``nn.Linear`` after the first knocked-out layer (or None), where the rest of the
    model starts, the modules after it, which of them are knocked out, and the samples
    and steps of one chunk."""

    kind: str
    lin: nn.Module | None
    start: int
    rest: list
    touched: dict
    n_chunk: int
    s_chunk: int


class RankOneLinear:
    """The ``nn.Linear`` after the first knocked-out layer by rank-one updates: with
    units ``order[:c]`` knocked out its output is ``z0 - sum_{j<c} d_j w_j``
    (``d_j`` = change of unit ``order[j]``, ``w_j`` its outgoing weights), for every
    ``c`` at once (``"cumulative"``) or each unit alone (``"single"``)."""

    def __init__(self, lin, spec, kind, block, dtype, device):
        m0 = spec.masks[0].shape[1]
        self.lin, self.kind, self.dtype, self.device = lin, kind, dtype, device
        if kind == "cumulative":
            order, steps = spec.cumulative[0]
            self.order = torch.as_tensor(np.asarray(order), dtype=torch.long, device=device)
            self.steps = torch.as_tensor(np.asarray(steps), dtype=torch.long, device=device)
        else:
            self.order = torch.arange(m0, device=device)
            self.steps = torch.arange(spec.n_steps, device=device)
        self.full = kind == "cumulative" and len(self.order) == m0
        K = self.K = len(self.order)
        self.W_ordT = lin.weight.detach()[:, self.order].T.contiguous()  # (K, out): row j leaves unit order[j]
        self.v_ord = spec.values[0][self.order]
        self.zf = lin(spec.values[0][None])  # all knocked out, exactly as the model computes it
        self.steps_np = self.steps.cpu().numpy()
        self.B = B = block
        self.nb = -(-K // B)
        self.pad = self.nb * B - K
        self.Wb = F.pad(self.W_ordT, (0, 0, 0, self.pad)).view(self.nb, B, lin.out_features)  # blocks of rows
        self.Wb64 = self.Wb.double()
        self.L = torch.tril(torch.ones(B, B, dtype=dtype, device=device), -1)
        self.all_steps = kind == "cumulative" and np.array_equal(self.steps_np, np.arange(K + 1))

    def outputs(self, a) -> torch.Tensor:
        """``(n, K+1, out)`` (cumulative: ``order[:c]`` knocked out at ``c``) or
        ``(n, K, out)`` (single: unit ``j`` alone at ``j``) for the samples ``a``."""
        z0 = self.lin(a)  # nothing knocked out, exactly as the model computes it
        d = a[:, self.order] - self.v_ord  # (n, K): change of each unit when knocked out
        if self.kind == "single":
            return torch.addcmul(z0[:, None, :], d[:, :, None], self.W_ordT[None], value=-1)
        # in blocks of B units: the block totals are accumulated in float64, inside a block
        # one small matmul with a strictly lower-triangular mask gives every partial sum at once
        n, B, nb, out_f = len(a), self.B, self.nb, self.lin.out_features
        db = F.pad(d, (0, self.pad)).view(n, nb, B)
        tot = torch.bmm(db.transpose(0, 1).double(), self.Wb64)  # (nb, n, out)
        Zb = z0.double()[None] - torch.cumsum(tot, 0)  # after each block
        Zb = torch.cat([z0.double()[None], Zb]).to(self.dtype)  # (nb+1, n, out)
        zz = torch.empty(n, nb * B + 1, out_f, dtype=self.dtype, device=self.device)
        for bi in range(nb):  # a loop over blocks of units
            part = (db[:, bi, None, :] * self.L).reshape(n * B, B) @ self.Wb[bi]  # (n*B, out)
            torch.sub(Zb[bi][:, None, :], part.view(n, B, out_f), out=zz[:, bi * B:(bi + 1) * B])
        zz[:, self.K] = self.zf if self.full else Zb[nb]
        return zz[:, :self.K + 1]

    def select(self, zz, sl, s, S) -> torch.Tensor:
        """The steps ``sl`` (``s`` of them, of ``S``) of :meth:`outputs`."""
        if self.all_steps and s == S:
            return zz
        c = self.steps_np[sl]
        return zz[:, int(c[0]):int(c[0]) + s] if np.array_equal(c, c[0] + np.arange(s)) \
            else zz.index_select(1, self.steps[sl])
