"""Cumulative ablation curves: :class:`AblationEngine` (a thin user of
:class:`nifkit.intervene.Knockouts`), orders, and the plain hook-based reference.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import to_numpy
from ..data.arrays import as_float_tensor
from ..intervene import Knockouts, VALUES, check_labels, cumulative_masks
from ..data.arrays import as_xy
from ..models.hooks import hooks
from ..models.walk import unknown_layer_error
from ..runtime import ModelState, model_device
from .measures import MEASURE_LABELS
from ..results import Result
from .._validation import checked

__all__ = [
    "DIRECTIONS", "AblationCurve", "AblationEngine", "ablation_order", "ablation_curve",
    "reference_ablation_curve", "curves_match",
]


DIRECTIONS = ("ascending", "descending", "random")


@dataclass(repr=False)
class AblationCurve(Result):
    """Accuracy and loss against the number of ablated neurons.

    ``counts[s]`` neurons ablated at step ``s``: the first ``counts[s]`` entries of
    ``order`` (unit indices within ``layers[order_layer[i]]``). ``accuracy``, ``loss``:
    ``(steps,)``; ``class_accuracy``: ``(steps, classes)`` (NaN for a class without test
    samples). ``layer`` is the layer name, or ``"network"`` for an order over several
    layers. ``direction`` is ascending/descending/random (``seed`` for random) and
    ``measure`` the quantity that ordered it (None for random orders).
    """

    layer: str
    layers: tuple
    measure: str | None
    direction: str
    counts: np.ndarray
    accuracy: np.ndarray
    loss: np.ndarray
    class_accuracy: np.ndarray
    order: np.ndarray
    order_layer: np.ndarray
    value: str = "zero"
    seed: int | None = None
    n_units: int = 0
    method: str = "fast"

    plotter = "nifkit.ablation.plots:plot_ablation_curves"

    def table(self) -> list[dict]:
        """One row per step: neurons ablated, accuracy, loss."""
        return [{"n_ablated": int(c), "accuracy": float(a), "loss": float(l)}
                for c, a, l in zip(self.counts.tolist(), self.accuracy.tolist(), self.loss.tolist())]

    def repr_extra(self) -> dict:
        return {"label": self.label, "first_accuracy": float(self.accuracy[0]),
                "last_accuracy": float(self.accuracy[-1])}

    @property
    def baseline(self) -> float:
        """Accuracy with nothing ablated (when ``counts`` starts at 0)."""
        return float(self.accuracy[0]) if len(self.counts) and self.counts[0] == 0 else float("nan")

    @property
    def fraction(self) -> np.ndarray:
        return self.counts / max(self.n_units, 1)

    def step_of(self, n_ablated: int) -> int:
        """Index of the step with the largest count <= ``n_ablated``."""
        s = int(np.searchsorted(self.counts, n_ablated, side="right")) - 1
        return max(s, 0)

    def accuracy_at(self, n_ablated: int) -> float:
        return float(self.accuracy[self.step_of(n_ablated)])

    def ablated(self, n_ablated: int):
        """``(layer names, units)`` of the first ``n_ablated`` neurons in the order."""
        k = int(n_ablated)
        return [self.layers[i] for i in self.order_layer[:k]], self.order[:k].copy()

    @property
    def label(self) -> str:
        if self.direction == "random":
            return f"random (seed {self.seed})"
        if self.measure is None:  # an order given by hand (AblationEngine.curve, reference_ablation_curve)
            return "given order"
        return f"{self.direction} {MEASURE_LABELS.get(self.measure, self.measure)}"


def _counts_arg(counts, n_units: int, what: str) -> np.ndarray:
    if counts is None:
        return np.arange(n_units + 1)
    if isinstance(counts, (int, np.integer)) and not isinstance(counts, bool):
        if counts < 2:
            raise ValueError("counts as an integer is a number of steps and must be >= 2")
        return np.unique(np.round(np.linspace(0, n_units, int(counts))).astype(np.int64))
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "iu":
        raise ValueError("counts must be None, a number of steps, or a 1-D array of integers")
    if c.min() < 0:
        raise ValueError(f"counts must be >= 0, found {int(c.min())}")
    if c.max() > n_units:
        raise ValueError(
            f"{what} has {n_units} neurons but counts asks to ablate up to {int(c.max())}; "
            f"use counts <= {n_units} (or counts=None for 0..{n_units})")
    return c.astype(np.int64)


class AblationEngine(Knockouts):
    """Evaluate many ablations of one model on one evaluation set, fast: the knockouts
    of :class:`nifkit.intervene.Knockouts` (prefix cached, masked copies batched,
    rank-one updates through a following ``nn.Linear``) plus the chapter's questions:
    :meth:`curve` (one layer, one order), :meth:`network_curve` (an order over units of
    several layers), :meth:`single` (each neuron alone), and :meth:`evaluate_masks`
    (any masks). ``value`` is ``"zero"``, ``"mean"`` or an array per layer.
    """

    # -- user-facing ---------------------------------------------------------------------
    @checked
    def curve(self, layer: str, order, counts=None, value="zero", *, measure=None,
              direction: str = "custom", seed=None) -> AblationCurve:
        """Cumulative ablation of ``layer`` in ``order`` (unit indices); ``counts``
        default ``0..units``."""
        m = self.n_units(layer)
        order = _check_order(order, m, layer)
        counts = _counts_arg(counts, len(order), f"layer {layer!r} (order of {len(order)})"
                             if len(order) < m else f"layer {layer!r}")
        acc, loss, cls = self.evaluate_masks([layer], [None], value, cumulative=[(order, counts)])
        return AblationCurve(layer=layer, layers=(layer,), measure=measure, direction=direction, counts=counts,
                             accuracy=acc, loss=loss, class_accuracy=cls, order=order,
                             order_layer=np.zeros(len(order), dtype=np.int64),
                             value=value if isinstance(value, str) else "custom", seed=seed, n_units=m,
                             method=self.method)

    @checked
    def network_curve(self, layers: Sequence[str], order_layer, order, counts=None, value="zero", *,
                      measure=None, direction="custom", seed=None) -> AblationCurve:
        """Cumulative ablation over several layers: step ``s`` ablates the first
        ``counts[s]`` pairs ``(layers[order_layer[i]], order[i])``. The prefix up to the
        first layer is computed once and reused."""
        layers = list(layers)
        pos = [self.index(n) for n in layers]
        srt = np.argsort(pos, kind="stable")
        if not np.array_equal(srt, np.arange(len(layers))):
            raise ValueError("layers must be given in the model's order, e.g. " + str([layers[i] for i in srt]))
        order_layer = np.asarray(order_layer, dtype=np.int64)
        order = np.asarray(order, dtype=np.int64)
        sizes = [self.n_units(n) for n in layers]
        total = sum(sizes)
        if len(order) != len(order_layer):
            raise ValueError("order and order_layer must have the same length")
        if order_layer.size and (order_layer.min() < 0 or order_layer.max() >= len(layers)):
            raise ValueError("order_layer must index into layers")
        flat_id = np.concatenate([[0], np.cumsum(sizes)])[order_layer] + order
        if order.size and (order.min() < 0 or np.any(order >= np.asarray(sizes)[order_layer])):
            raise ValueError("order holds a unit index beyond its layer's size")
        if len(np.unique(flat_id)) != len(flat_id):
            raise ValueError("order lists a neuron twice")
        counts = _counts_arg(counts, len(order), f"the network ({total} neurons in {layers})")
        masks, cum = [], []
        for i, n in enumerate(layers):
            sel = order_layer == i
            sub = order[sel]
            pos_in_global = np.flatnonzero(sel)  # positions where this layer's units appear
            c_i = np.searchsorted(pos_in_global, counts, side="left")  # units of layer i among the first counts[s]
            if i == 0:
                masks.append(None)
                cum.append((sub, c_i))
            else:
                masks.append(cumulative_masks(sub, c_i, sizes[i]))
                cum.append(None)
        acc, loss, cls = self.evaluate_masks(layers, masks, value, cumulative=cum)
        return AblationCurve(layer="network", layers=tuple(layers), measure=measure, direction=direction,
                             counts=counts, accuracy=acc, loss=loss, class_accuracy=cls, order=order,
                             order_layer=order_layer, value=value if isinstance(value, str) else "custom",
                             seed=seed, n_units=total, method=self.method)

    @checked
    def single(self, layer: str, value="zero"):
        """Accuracy, loss and per-class accuracy with each neuron ablated alone: arrays
        ``(units,)``, ``(units,)``, ``(units, classes)``."""
        m = self.n_units(layer)
        eye = torch.eye(m, dtype=torch.bool)
        return self.evaluate_masks([layer], [eye], value, single=True)


def _check_order(order, m: int, layer: str) -> np.ndarray:
    o = np.asarray(to_numpy(order, "order")).astype(np.int64).reshape(-1)
    if o.size > m:
        raise ValueError(f"layer {layer!r} has {m} neurons but the order lists {o.size}; "
                         "an order is a permutation (or a subset) of 0..units-1")
    if o.size and (o.min() < 0 or o.max() >= m):
        raise ValueError(f"order holds unit indices outside 0..{m - 1} of layer {layer!r}")
    if len(np.unique(o)) != len(o):
        raise ValueError("order lists a neuron twice; pass a permutation of the units")
    return o


@checked
def ablation_order(values, direction: str = "descending", seed: int | None = None) -> np.ndarray:
    """Unit indices sorted by ``values`` (stable, ties keep index order), or a random
    permutation (``direction="random"``, ``seed``)."""
    values = np.asarray(to_numpy(values, "values"), dtype=np.float64).reshape(-1)
    if direction == "ascending":
        return np.argsort(values, kind="stable")
    if direction == "descending":
        return np.argsort(-values, kind="stable")
    if direction == "random":
        g = torch.Generator().manual_seed(0 if seed is None else seed)  # checked by the door
        return torch.randperm(len(values), generator=g).numpy()
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


@checked
def ablation_curve(model: nn.Module, data, layer: str, order, counts=None, value="zero",
                   **engine_kw) -> AblationCurve:
    """One cumulative-ablation curve on labelled ``data`` (a convenience around
    :class:`AblationEngine`)."""
    return AblationEngine(model, data, **engine_kw).curve(layer, order, counts, value)


@checked
def reference_ablation_curve(model: nn.Module, data, layer: str, order, counts=None, value="zero",
                             batch_size: int = 100_000, split: str = "test") -> AblationCurve:
    """The plain approach (the anchor): for every step, a forward hook on ``layer`` sets
    the ablated outputs to ``value`` and the whole model runs again from the input.
    ``value="mean"`` uses the mean over the data. Slow by design; hooks always removed."""
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        raise unknown_layer_error(layer, [n for n in modules if n], what="layer")
    X, y = as_xy(data, split)
    dev, dt = model_device(model)
    X = X.to(dev, dt)
    state = {"mask": None}
    captured = []

    def hook(mod, args, out):
        if state["mask"] is not None:
            return torch.where(state["mask"], state["value"], out)
        captured.append(out.detach().clone())
        return None

    with ModelState(model, eval=True, no_grad=True), hooks(model, {layer: hook}):
        base = torch.cat([model(X[s:s + batch_size]) for s in range(0, len(X), batch_size)])
        acts_all = torch.cat(captured)
        if acts_all.ndim != 2:
            raise ValueError(f"layer {layer!r} must output (samples, units)")
        m = acts_all.shape[1]
        y_np = check_labels(y, len(X), "X", base.shape[1])
        yt = torch.from_numpy(y_np).to(dev)
        if isinstance(value, str):
            if value not in VALUES:
                raise ValueError(f"value must be one of {VALUES} or an array, got {value!r}")
            v = acts_all.mean(0) if value == "mean" else torch.zeros(m, dtype=dt, device=dev)
        else:
            v = as_float_tensor(value, "value").to(dev, dt)
        order = _check_order(order, m, layer)
        counts = _counts_arg(counts, len(order), f"layer {layer!r}")
        state["value"] = v
        C = base.shape[1]
        acc = np.empty(len(counts))
        loss = np.empty(len(counts))
        cls = np.empty((len(counts), C))
        ccount = np.bincount(y_np, minlength=C)
        for s, c in enumerate(counts):  # the plain approach: one full forward per step
            mask = torch.zeros(m, dtype=torch.bool, device=dev)
            mask[torch.as_tensor(order[:c], dtype=torch.long)] = True
            state["mask"] = mask
            out = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
            ok = out.argmax(1) == yt
            acc[s] = float(ok.double().mean())
            loss[s] = float(F.cross_entropy(out, yt, reduction="sum").double()) / len(X)
            with np.errstate(divide="ignore", invalid="ignore"):
                cls[s] = np.bincount(y_np, weights=ok.cpu().numpy().astype(np.float64), minlength=C) / ccount
    return AblationCurve(layer=layer, layers=(layer,), measure=None, direction="custom", counts=counts,
                         accuracy=acc, loss=loss, class_accuracy=cls, order=order,
                         order_layer=np.zeros(len(order), dtype=np.int64),
                         value=value if isinstance(value, str) else "custom", n_units=m, method="reference")


@checked
def curves_match(fast: AblationCurve, ref: AblationCurve, loss_rtol: float = 1e-4, max_flips: int | None = None,
                 n_samples: int | None = None) -> tuple[bool, str]:
    """Whether two curves agree to float tolerance: same counts, losses within
    ``loss_rtol`` and accuracies differing by at most ``max_flips`` predictions (near-ties
    in float32 may flip; default 0.05% of the samples, at least 1)."""
    if not np.array_equal(fast.counts, ref.counts):
        return False, "counts differ"
    n = n_samples or 10_000
    flips = max(1, int(0.0005 * n)) if max_flips is None else max_flips
    dacc = np.abs(fast.accuracy - ref.accuracy).max()
    dloss = np.abs(fast.loss - ref.loss).max() / max(np.abs(ref.loss).max(), 1e-12)
    ok = dacc <= flips / n + 1e-12 and dloss <= loss_rtol
    return bool(ok), f"max |d accuracy| = {dacc:.2e} ({dacc * n:.0f} of {n} predictions), max rel |d loss| = {dloss:.2e}"
