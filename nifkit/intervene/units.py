"""Knockouts of units: the batched engine (:class:`Knockouts`), the context manager
(:func:`knock_out`) and the input checks they share.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import as_labels, check_finite, to_numpy
from ..config import DEFAULT_MEMORY_BUDGET
from ..models.walk import unknown_layer_error
from ..runtime import ModelState, cpu_threads, model_device
from ..results import Result

__all__ = ["VALUES", "check_labels", "as_float_tensor", "flat_sequential", "cumulative_masks", "KnockoutResult", "Knockouts", "knock_out"]


VALUES = ("zero", "mean")


_PASS_THROUGH = (nn.Dropout, nn.Identity, nn.AlphaDropout)


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


def as_float_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a floating-point tensor; NaN/inf raise ``ValueError`` naming ``name``."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = to_numpy(x, name)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if not t.is_floating_point():
        t = t.float()
    if not bool(torch.isfinite(t).all()):
        check_finite(t.cpu().numpy(), name)
    return t


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

    ``memory_budget`` bounds the bytes of temporaries (default 512 MiB);
    ``method="auto"`` uses the fast path for ``nn.Sequential`` models and hooks
    otherwise (``"hooks"`` forces the slow, generic path). ``device``: where to compute:
    the model's device (``None``), or the same device named (move the model there
    first); ``num_threads``: torch CPU threads while evaluating (None: the package's
    thread policy, see :class:`nifkit.runtime.cpu_threads`).
    """

    def __init__(self, model: nn.Module, X, y, *, device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 num_threads: int | None = None, method: str = "auto", batch_size: int = 4096):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if method not in ("auto", "fast", "hooks"):
            raise ValueError(f"method must be 'auto', 'fast' or 'hooks', got {method!r}")
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer, float)) \
                or memory_budget <= 0:
            raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.num_threads = num_threads
        cpu_threads(num_threads)  # checks the value now
        self.X = as_float_tensor(X, "X")
        if len(self.X) == 0:
            raise ValueError("X holds no samples; pass a non-empty evaluation set")
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
        self.onehot = F.one_hot(self.y, self.n_classes).to(self.dtype)
        self.base_logits = logits
        correct = (logits.argmax(1) == self.y).double()
        self.base_accuracy = float(correct.mean())
        #: accuracy of the intact model per class (NaN for a class without samples, as in evaluate)
        per = np.bincount(self.y_np, weights=correct.cpu().numpy(), minlength=self.n_classes)
        self.base_class_accuracy = np.where(self.class_counts > 0, per / np.maximum(self.class_counts, 1), np.nan)

    # -- plumbing -----------------------------------------------------------------------
    @property
    def layer_names(self) -> list:
        return list(self._layer_names)

    def forward_all(self, X):
        """The model's logits for ``X``, ``batch_size`` rows at a time, as the model is now
        (the caller sets mode, grad and any knockout hooks)."""
        outs = []
        for s in range(0, len(X), self.batch_size):
            out = self.model(X[s:s + self.batch_size].to(self.device, self.dtype))
            outs.append(out[0] if isinstance(out, (tuple, list)) else out)
        return torch.cat(outs)

    def index(self, layer: str) -> int:
        """Position of ``layer`` among the model's modules (``ValueError`` with "did you
        mean" for unknown names)."""
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a module name (str), got {type(layer).__name__}")
        if layer not in self._layer_names:
            raise unknown_layer_error(layer, self._layer_names, what="layer")
        return self._layer_names.index(layer)

    def activations(self, layer: str) -> torch.Tensor:
        """Output ``(samples, units)`` of ``layer`` on the evaluation set (cached)."""
        if layer not in self._prefix:
            k = self.index(layer)
            if self.method == "fast":
                parts = []
                with ModelState(self.model, eval=True, no_grad=True):
                    for s in range(0, len(self.X), self.batch_size):
                        h = self.X[s:s + self.batch_size].to(self.device, self.dtype)
                        for _, m in self.flat[:k + 1]:
                            h = m(h)
                        parts.append(h.clone())
                a = torch.cat(parts)
            else:
                a = self._hooked_activations(layer)
            if a.ndim != 2:
                raise ValueError(
                    f"layer {layer!r} outputs shape {tuple(a.shape[1:])} per sample; ablation works on "
                    "layers with one unit axis (samples, units), e.g. the Linear/activation layers of an MLP")
            self._prefix[layer] = a
        return self._prefix[layer]

    def _hooked_activations(self, layer):
        module = dict(self.model.named_modules())[layer]
        parts = []

        def hook(mod, args, out):
            parts.append((out[0] if isinstance(out, (tuple, list)) else out).detach().clone())

        handle = module.register_forward_hook(hook)
        try:
            with ModelState(self.model, eval=True, no_grad=True):
                self.forward_all(self.X)
        finally:
            handle.remove()
        n_batches = -(-len(self.X) // self.batch_size)
        if len(parts) != n_batches:
            raise ValueError(
                f"module {layer!r} is called {len(parts) // n_batches} times in one forward pass, so knocking out "
                "its units would change every use at once. Fix: give each use its own module (e.g. one "
                f"nn.{type(module).__name__}() per layer), or knock out the units of a module called once (the "
                "layer before it).")
        return torch.cat(parts)

    def n_units(self, layer: str) -> int:
        return self.activations(layer).shape[1]

    def unit_value(self, layer: str, value) -> torch.Tensor:
        """What knocked-out units of ``layer`` are set to: ``"zero"``, ``"mean"`` (over
        the evaluation set) or given values, one per unit."""
        a = self.activations(layer)
        if isinstance(value, str):
            if value == "zero":
                return torch.zeros(a.shape[1], dtype=a.dtype, device=a.device)
            if value == "mean":
                return a.mean(0)
            raise ValueError(f"value must be 'zero', 'mean' or an array of per-neuron values, got {value!r}")
        v = as_float_tensor(value, "value").to(a.device, a.dtype).reshape(-1)
        if v.numel() != a.shape[1]:
            raise ValueError(f"value has {v.numel()} entries but layer {layer!r} has {a.shape[1]} neurons")
        return v

    def readout(self, layer: str, value="zero"):
        """The second evaluation mode: knockouts of ``layer``'s units scored through the
        one ``nn.Linear`` after it, by batched products and split sums (overall and
        per-class balanced accuracy, all ``2^m`` subsets of a layer of ``m <= 24`` units).
        See :class:`nifkit.intervene.readout.ReadoutKnockouts`."""
        from .readout import ReadoutKnockouts

        return ReadoutKnockouts(self, layer, value)

    # -- the core: masks per touched layer ------------------------------------------------
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
        if self.method == "hooks":
            return self._evaluate_hooks(layers, masks, value, cumulative)
        if isinstance(layers, str):
            layers, masks = [layers], [masks]
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty: name at least one layer to knock units out of")
        idx = [self.index(n) for n in layers]
        if sorted(idx) != idx or len(set(idx)) != len(idx):
            raise ValueError("layers must be distinct and given in the model's order")
        vals = [self.unit_value(n, value if isinstance(value, str) else value[i]) for i, n in enumerate(layers)]
        cum = list(cumulative) if cumulative is not None else [None] * len(layers)
        masks = list(masks)
        for i, n in enumerate(layers):
            if masks[i] is None and cum[i] is None:
                raise ValueError(f"no mask for layer {n!r}")
            if masks[i] is None:
                order, counts = cum[i]
                masks[i] = cumulative_masks(order, counts, self.n_units(n))
            masks[i] = torch.as_tensor(masks[i], dtype=torch.bool, device=self.device)
            if masks[i].ndim != 2 or masks[i].shape[1] != self.n_units(n):
                raise ValueError(f"mask for {n!r} must be (steps, {self.n_units(n)}), got {tuple(masks[i].shape)}")
        S = masks[0].shape[0]
        if any(m.shape[0] != S for m in masks):
            raise ValueError("all masks must have the same number of steps")

        a0 = self.activations(layers[0])
        k0 = idx[0]
        # the Linear right after the first ablated layer (skipping pass-through modules)?
        j = k0 + 1
        while j < len(self.flat) and isinstance(self.flat[j][1], _PASS_THROUGH):
            j += 1
        lin = self.flat[j][1] if (j < len(self.flat) and isinstance(self.flat[j][1], nn.Linear)
                                  and (len(idx) == 1 or idx[1] > j)) else None
        kind = "general"
        if lin is not None and cum[0] is not None:
            kind = "cumulative"
        elif lin is not None and single:
            kind = "single"
        start = j + 1 if lin is not None else k0 + 1
        rest = self.flat[start:]
        touched = {ix: i for i, ix in enumerate(idx)}

        N, m0 = a0.shape
        out_f = lin.out_features if lin is not None else m0
        width = max([m0, out_f, self.n_classes] + [getattr(m, "out_features", 0) for _, m in rest])
        budget = max(self.memory_budget, 1 << 20)
        if kind == "general":
            per_sample = 4 * 3 * m0
        else:  # (units+1, out) outputs, the masked products and a copy per sample
            per_sample = 4 * (m0 + 16) * out_f * 4
        # small sample chunks keep the temporaries in cache; never above the budget
        n_chunk = int(min(N, self.chunk_samples, max(1, (budget // 2) // per_sample)))
        s_chunk = int(min(S, max(1, (budget // 2) // max(n_chunk * width * 4 * 4, 1))))

        correct = torch.zeros(S, self.n_classes, dtype=torch.float64, device=self.device)
        loss_sum = torch.zeros(S, dtype=torch.float64, device=self.device)
        with ModelState(self.model, eval=True, no_grad=True):
            if kind != "general":
                W = lin.weight.detach()
                if kind == "cumulative":
                    order0 = torch.as_tensor(np.asarray(cum[0][0]), dtype=torch.long, device=self.device)
                    steps0 = torch.as_tensor(np.asarray(cum[0][1]), dtype=torch.long, device=self.device)
                    full = len(order0) == m0
                else:
                    order0 = torch.arange(m0, device=self.device)
                    steps0 = torch.arange(S, device=self.device)
                K = len(order0)
                W_ordT = W[:, order0].T.contiguous()  # (K, out): row j = weights leaving unit order[j]
                v_ord = vals[0][order0]
                zf = lin(vals[0][None])  # all ablated, exactly as the model computes it
                steps_np = steps0.cpu().numpy()
                B = self.block
                nb = -(-K // B)
                pad = nb * B - K
                Wb = F.pad(W_ordT, (0, 0, 0, pad)).view(nb, B, out_f)  # blocks of rows
                Wb64 = Wb.double()
                L = torch.tril(torch.ones(B, B, dtype=self.dtype, device=self.device), -1)
                all_steps = kind == "cumulative" and np.array_equal(steps_np, np.arange(K + 1))
            for ns in range(0, N, n_chunk):
                a = a0[ns:ns + n_chunk]
                n = len(a)
                yb = self.y[ns:ns + n]
                oh = self.onehot[ns:ns + n]
                if kind != "general":
                    z0 = lin(a)  # nothing ablated, exactly as the model computes it
                    d = a[:, order0] - v_ord  # (n, K): change of each unit when ablated
                    if kind == "cumulative":
                        # zz[:, c] = output of the Linear with order[:c] ablated
                        #   = z0 - sum_{j<c} d_j w_j, in blocks of B units: the block totals are
                        #   accumulated in float64, inside a block one small matmul with a
                        #   strictly lower-triangular mask gives every partial sum at once.
                        db = F.pad(d, (0, pad)).view(n, nb, B)
                        tot = torch.bmm(db.transpose(0, 1).double(), Wb64)  # (nb, n, out)
                        Zb = z0.double()[None] - torch.cumsum(tot, 0)  # after each block
                        Zb = torch.cat([z0.double()[None], Zb]).to(self.dtype)  # (nb+1, n, out)
                        zz = torch.empty(n, nb * B + 1, out_f, dtype=self.dtype, device=self.device)
                        for bi in range(nb):
                            part = (db[:, bi, None, :] * L).reshape(n * B, B) @ Wb[bi]  # (n*B, out)
                            torch.sub(Zb[bi][:, None, :], part.view(n, B, out_f),
                                      out=zz[:, bi * B:(bi + 1) * B])
                        zz[:, K] = zf if full else Zb[nb]
                        zz = zz[:, :K + 1]
                    else:  # single: zz[:, j] = output with unit j alone ablated
                        zz = torch.addcmul(z0[:, None, :], d[:, :, None], W_ordT[None], value=-1)
                for ss in range(0, S, s_chunk):
                    sl = slice(ss, ss + s_chunk)
                    s = min(ss + s_chunk, S) - ss
                    if kind != "general":
                        if all_steps and s == S:
                            h = zz
                        else:
                            c = steps_np[sl]
                            h = zz[:, int(c[0]):int(c[0]) + s] if np.array_equal(c, c[0] + np.arange(s)) \
                                else zz.index_select(1, steps0[sl])
                    else:
                        h = torch.where(masks[0][sl][None], vals[0], a[:, None, :])  # (n, s, m0)
                        if lin is not None:
                            h = lin(h)
                    h = h.reshape(n * s, -1)
                    for off, (_, mod) in enumerate(rest):
                        h = mod(h)
                        i = touched.get(start + off)
                        if i is not None:
                            h = torch.where(masks[i][sl][None], vals[i], h.reshape(n, s, -1)).reshape(n * s, -1)
                    logits = h.reshape(n, s, -1)
                    ok = (logits.argmax(-1) == yb[:, None]).to(self.dtype)  # (n, s)
                    correct[sl] += (oh.T @ ok).T.double()
                    # cross-entropy = logsumexp - logit of the class (4x faster than F.cross_entropy
                    # on many rows of 10 classes)
                    mx = logits.amax(-1, keepdim=True)
                    lse = (logits - mx).exp_().sum(-1).log_().add_(mx[..., 0])
                    picked = logits.gather(2, yb[:, None, None].expand(n, s, 1))[..., 0]
                    loss_sum[sl] += (lse - picked).double().sum(0)
        return self.results_from(correct, loss_sum)

    def results_from(self, correct, loss_sum):
        """:class:`KnockoutResult` from per-knockout correct counts per class
        ``(S, C)`` and summed losses ``(S,)``: accuracy, mean loss, class accuracy."""
        correct = correct.cpu().numpy()
        N = len(self.y_np)
        acc = correct.sum(1) / N
        with np.errstate(divide="ignore", invalid="ignore"):
            cls = np.where(self.class_counts > 0, correct / np.maximum(self.class_counts, 1), np.nan)
        return KnockoutResult(acc, loss_sum.cpu().numpy() / N, cls)

    def evaluate_masks(self, layers, masks, value="zero", *, cumulative=None, single=False):
        """The same as :meth:`evaluate`, as a tuple ``(accuracy, loss, class_accuracy)``."""
        return tuple(self.evaluate(layers, masks, value, cumulative=cumulative, single=single))

    def _evaluate_hooks(self, layers, masks, value, cumulative):
        """Generic path: one hooked forward pass from the input per step."""
        if isinstance(layers, str):
            layers, masks = [layers], [masks]
        layers = list(layers)
        for n in layers:
            self.index(n)
        modules = dict(self.model.named_modules())
        vals = [self.unit_value(n, value if isinstance(value, str) else value[i]) for i, n in enumerate(layers)]
        masks = list(masks)
        cum = list(cumulative) if cumulative is not None else [None] * len(layers)
        for i, n in enumerate(layers):
            if masks[i] is None:
                masks[i] = cumulative_masks(*cum[i], self.n_units(n))
            masks[i] = torch.as_tensor(masks[i], dtype=torch.bool, device=self.device)
        S = masks[0].shape[0]
        correct = torch.zeros(S, self.n_classes, dtype=torch.float64)
        loss_sum = torch.zeros(S, dtype=torch.float64)
        current = {}
        handles = []

        def make(i):
            def hook(mod, args, out):
                return torch.where(current[i], vals[i], out)
            return hook
        try:
            with ModelState(self.model, eval=True, no_grad=True):
                for i, n in enumerate(layers):
                    handles.append(modules[n].register_forward_hook(make(i)))
                for s in range(S):
                    for i in range(len(layers)):
                        current[i] = masks[i][s]
                    logits = self.forward_all(self.X)
                    ok = (logits.argmax(1) == self.y).to(self.dtype)
                    correct[s] = (ok @ self.onehot).double().cpu()
                    loss_sum[s] = F.cross_entropy(logits, self.y, reduction="sum").double().cpu()
        finally:
            for h in handles:
                h.remove()
        return self.results_from(correct, loss_sum)


@contextlib.contextmanager
def knock_out(model: nn.Module, units: dict, value="zero"):
    """Context manager: while inside, the outputs of each ``units[layer]`` (unit indices
    or a bool mask over the layer's units) are replaced by ``value`` (``"zero"``, a
    number, or one value per unit). You run the model; the model is in eval mode, and
    hooks, modes and flags are restored on exit.

    >>> with knock_out(model, {"act1": [0, 3]}):
    ...     logits = model(x)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(units, dict) or not units:
        raise TypeError("units must be a non-empty dict {layer name: unit indices or bool mask}")
    modules = dict(model.named_modules())
    names = [n for n in modules if n]
    calls: dict = {}
    handles = []

    def make(name, sel):
        def hook(mod, args, out):
            calls[name] = calls.get(name, 0) + 1
            flat = out.reshape(len(out), -1)
            m = flat.shape[1]
            mask = torch.zeros(m, dtype=torch.bool, device=out.device)
            idx = torch.as_tensor(np.asarray(sel))
            if idx.dtype == torch.bool:
                if idx.numel() != m:
                    raise ValueError(f"the mask for {name!r} has {idx.numel()} entries but the layer has {m} units")
                mask = idx.to(out.device)
            else:
                idx = idx.reshape(-1).long()
                if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= m):
                    raise ValueError(f"unit indices for {name!r} must lie in 0..{m - 1}, got {idx.tolist()}")
                mask[idx.to(out.device)] = True
            if value == "zero":
                v = torch.zeros((), dtype=out.dtype, device=out.device)
            elif isinstance(value, str):
                raise ValueError(f"value must be 'zero', a number or one value per unit, got {value!r} (for "
                                 "'mean' use Knockouts, which knows the evaluation set)")
            else:
                v = torch.as_tensor(value, dtype=out.dtype, device=out.device).reshape(-1)
                v = v if v.numel() > 1 else v.reshape(())
            return torch.where(mask, v, flat).reshape(out.shape)
        return hook

    try:
        for name, sel in units.items():
            if name not in modules or name == "":
                raise unknown_layer_error(name, names, what="units")
            handles.append(modules[name].register_forward_hook(make(name, sel)))
        with ModelState(model, eval=True):
            yield model
    finally:
        for h in handles:
            h.remove()
