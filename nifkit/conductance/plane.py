"""The information plane from conductance (and from activations), ITE, and its check.

For each layer ``T`` (its conductance map, or its activations, reduced to a
``(samples, units)`` matrix) two numbers in bits (Shwartz-Ziv & Tishby 2017; here, after
Dabounou & Baazzouz 2024, also for conductance):

    I(X;T) = H(T) - H(T|X)      and      I(T;Y) = H(T) + H(Y) - H(T,Y).

With ``X`` the identity of each of ``N`` distinct inputs and ``T`` a deterministic
function of it, ``H(T|X) = 0``, so the binned ``I(X;T) = H(T) <= log2 N``; and
``I(T;Y) <= min(I(X;T), H(Y))``. Those bounds are drawn with every plane.

Estimators (a **reconstruction**: the paper's is unknown), all from ``nifkit.info``:

* ``"binned"`` - ``n_bins`` bins per unit; the layer's units together form one joint
  symbol per sample. ``binning="layer_minmax"`` (default): equal-width bins over one
  range per layer (``[min, max]`` of the whole layer: conductance is signed and
  unbounded, so a fixed range cannot serve all layers); ``"quantile"``: equal-mass bins
  per unit. ``n_bins`` defaults to 30 here, not the 8 of the other chapters: the
  information-plane literature bins a layer's values finely (Shwartz-Ziv & Tishby used 30
  bins), and the plane's ``I(X;T)`` needs enough symbols to separate inputs;
* ``"gaussian"`` - a Gaussian model of the top principal components (``max_dims``) of
  ``T`` and of ``X``; ``I(T;Y)`` against the one-hot label.

ITE, the *Information Transformation Efficiency*, is also reconstructed
(:data:`ITE_FORMULAS`): ``"ratio"`` ``= I(T;Y) / I(X;T)`` (the label-relevant share of
what the layer keeps about its input) and ``"gain"`` (the change of that ratio from
the previous layer). The *critical layer* of a formula is its largest value;
:func:`knockout` checks the verdict by knocking layers out and measuring the accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import nn

from .._validation import as_2d, check_choice, to_tensor
from ..config import PATH_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..info import discretize, gaussian_mi, mutual_information, shuffle_test
from ..dynamics import Trajectory, over_snapshots
from ..intervene.layers import LAYER_MODES, LayerKnockouts, knock_out_layers
from ..record.path import path_layers
from ..results import Result
from .attribution import Conductance, layer_conductance
from .._validation import checked

__all__ = ["ESTIMATORS", "PLANE_BINNINGS", "ITE_FORMULAS", "KNOCKOUT_MODES", "InformationPlane", "ITE", "Knockout",
           "PlaneSnapshot",
           "layer_codes", "plane_from_values", "information_plane", "ite", "knockout", "verdict_check",
           "plane_trajectory", "plane_series"]

ESTIMATORS = ("binned", "gaussian")
#: how the binned estimator bins a layer: one equal-width range per layer, or quantiles per unit
PLANE_BINNINGS = ("layer_minmax", "quantile")
ITE_FORMULAS = ("ratio", "gain")
KNOCKOUT_MODES = LAYER_MODES


@dataclass(repr=False)
class InformationPlane(Result):
    """``i_xt[l]``, ``i_ty[l]`` (bits) per layer ``names[l]``; ``bound_x = log2 N`` and
    ``h_y = H(Y)`` the bounds; ``null_ty`` / ``p_ty`` the shuffle null mean and p-value of
    ``I(T;Y)`` (NaN without shuffles); ``source`` is ``"conductance"`` or ``"activation"``."""

    names: list
    i_xt: np.ndarray
    i_ty: np.ndarray
    h_y: float
    n_samples: int
    source: str
    null_ty: np.ndarray
    p_ty: np.ndarray

    plotter = "nifkit.conductance.plots:plot_information_plane"

    @property
    def bound_x(self) -> float:
        return math.log2(self.n_samples)

    def __getitem__(self, key):
        i = self.names.index(key) if isinstance(key, str) else int(key)
        return float(self.i_xt[i]), float(self.i_ty[i])

    def within_bounds(self, tol: float = 1e-9) -> bool:
        """``0 <= I(T;Y) <= min(I(X;T), H(Y))`` and ``I(X;T) <= log2 N`` (binned estimators)."""
        x, y = self.i_xt, self.i_ty
        return bool(np.all(x >= -tol) and np.all(y >= -tol) and np.all(x <= self.bound_x + tol)
                    and np.all(y <= self.h_y + tol) and np.all(y <= x + tol))

    def table(self) -> list[dict]:
        return [{"layer": n, "I(X;T)": float(a), "I(T;Y)": float(b), "null I(T;Y)": float(c), "p": float(p)}
                for n, a, b, c, p in zip(self.names, self.i_xt, self.i_ty, self.null_ty, self.p_ty)]


@checked
def layer_codes(values, n_bins: int = 30, binning: str = "layer_minmax") -> np.ndarray:
    """Codes ``(samples, units)`` of one layer: ``binning="layer_minmax"`` = equal-width
    bins over the layer's own ``[min, max]`` (all units share it), ``"quantile"`` = per unit."""
    v = as_2d(values, "values")
    check_choice(binning, "binning", PLANE_BINNINGS)
    if binning == "layer_minmax":
        lo, hi = float(v.min()), float(v.max())
        if not hi > lo:
            return np.zeros(v.shape, dtype=np.uint8)
        return discretize(v, n_bins, "fixed", (lo, hi))  # positional: the core's (binning, bin_range)
    return discretize(v, n_bins, "quantile")


def _pca(v, k):
    v = v - v.mean(0)
    if v.shape[1] <= k:
        return v
    u, s, _ = np.linalg.svd(v, full_matrices=False)
    return u[:, :k] * s[:k]


@checked
def plane_from_values(values: dict, labels, *, estimator: str = "binned", n_bins: int = 30,
                      binning: str = "layer_minmax", correction=None,
                      n_shuffles: int = 0, seed: int = 0, inputs=None, max_dims: int = 4,
                      source: str = "") -> InformationPlane:
    """The information plane of layers given as ``values[name] = (samples, units)``.

    ``labels``: one class per sample. ``correction="miller-madow"`` for the binned
    estimator (``binning``: see the module docstring); ``n_shuffles > 0`` adds a shuffle null for ``I(T;Y)``. ``inputs``
    (``(samples, ...)``) are needed by ``"gaussian"``, which uses ``max_dims`` principal
    components of each side.
    """
    check_choice(estimator, "estimator", ESTIMATORS)
    check_choice(binning, "binning", PLANE_BINNINGS)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    y = to_tensor(labels, "labels").reshape(-1).long().numpy()
    names = list(values)
    if not names:
        raise ValueError("values holds no layer")
    n = len(y)
    if n < 2:
        raise ValueError(f"an information plane needs at least 2 samples, got {n}")
    for k in names:
        if len(values[k]) != n:
            raise ValueError(f"layer {k!r} has {len(values[k])} samples but labels has {n}")
    h_y = float(mutual_information(y, y))
    ids = np.arange(n)
    i_xt, i_ty, null, pv = [], [], [], []
    notes = []
    if estimator == "gaussian":
        if inputs is None:
            raise ValueError("estimator='gaussian' needs inputs=... (the network inputs, one row per sample)")
        xin = _pca(as_2d(to_tensor(inputs, "inputs").reshape(n, -1).double().numpy(), "inputs"), max_dims)
        onehot = np.eye(int(y.max()) + 1)[y][:, :-1]
        onehot = onehot[:, onehot.std(0) > 0]
    for k in names:
        v = as_2d(np.asarray(values[k], dtype=np.float64), f"values[{k!r}]")
        if estimator == "gaussian":
            t = _pca(v, max_dims)
            t = t[:, t.std(0) > 1e-12 * max(1.0, float(np.abs(t).max(initial=0)))]
            try:
                a = gaussian_mi(xin, t) if t.shape[1] else 0.0
                b = gaussian_mi(t, onehot) if t.shape[1] else 0.0
            except ValueError as exc:
                a = b = float("nan")
                notes.append(f"{k}: {exc}")
            i_xt.append(a)
            i_ty.append(b)
            null.append(float("nan"))
            pv.append(float("nan"))
            continue
        codes = layer_codes(v, n_bins, binning)
        i_xt.append(mutual_information(ids, codes, correction=correction))
        i_ty.append(mutual_information(codes, y, correction=correction))
        if n_shuffles:
            st = shuffle_test(codes, y, lambda c, yy: mutual_information(c, yy, correction=correction),
                              n_shuffles=n_shuffles, seed=seed)
            null.append(float(st.null_mean))
            pv.append(float(st.p_value))
        else:
            null.append(float("nan"))
            pv.append(float("nan"))
    if estimator == "gaussian" and n_shuffles:
        notes.append("no shuffle null for the Gaussian estimator")
    settings = {"estimator": estimator, "n_bins": int(n_bins), "binning": binning, "correction": correction,
                "n_shuffles": int(n_shuffles), "max_dims": int(max_dims)}
    return InformationPlane(names=names, i_xt=np.array(i_xt, dtype=float), i_ty=np.array(i_ty, dtype=float),
                            h_y=h_y, n_samples=n, source=source, null_ty=np.array(null), p_ty=np.array(pv),
                            settings=settings, notes=notes)


@checked
def information_plane(cond: Conductance, labels, *, which: str = "conductance", reduce: str = "channel",
                      k: int = 16, estimator: str = "binned", n_bins: int = 30, binning: str = "layer_minmax",
                      correction=None, n_shuffles: int = 0, seed: int = 0, inputs=None, max_dims: int = 4) -> InformationPlane:
    """The plane of every layer of ``cond`` from its conductance maps
    (``which="conductance"``) or from the activations recorded with them
    (``which="activation"``), each reduced with :meth:`Conductance.flat` (``reduce``:
    ``"channel"``, ``"unit"`` or ``"topk"``). See :func:`plane_from_values`."""
    if which not in ("conductance", "activation"):
        raise ValueError(f"which must be 'conductance' or 'activation', got {which!r}")
    values = {n: cond.flat(n, reduce=reduce, k=k, which=which) for n in cond.names}
    p = plane_from_values(values, labels, estimator=estimator, n_bins=n_bins, binning=binning,
                          correction=correction, n_shuffles=n_shuffles, seed=seed, inputs=inputs, max_dims=max_dims, source=which)
    p.settings["reduce"] = reduce
    return p


# --------------------------------------------------------------------------------------
# ITE
# --------------------------------------------------------------------------------------
@dataclass(repr=False)
class ITE(Result):
    """ITE per layer under one reconstructed ``formula``; ``critical`` = the layer with
    the largest value (NaN values, e.g. the first layer of ``"gain"``, never are)."""

    names: list
    values: np.ndarray
    formula: str
    source: str

    plotter = "nifkit.conductance.plots:plot_ite"

    def repr_extra(self) -> dict:
        return {"critical": self.critical}

    @property
    def critical(self) -> str:
        v = np.where(np.isfinite(self.values), self.values, -np.inf)
        return self.names[int(np.argmax(v))]

    def table(self) -> list[dict]:
        return [{"layer": n, "ITE": float(v), "critical": n == self.critical} for n, v in zip(self.names, self.values)]


def ite(plane: InformationPlane, formula: str = "ratio") -> ITE:
    """ITE per layer (a **reconstruction**, see the module docstring):

    * ``"ratio"``: ``ITE_l = I(T_l;Y) / I(X;T_l)`` (0 where ``I(X;T_l) = 0``);
    * ``"gain"``: ``ITE_l = ratio_l - ratio_{l-1}`` (NaN for the first layer).
    """
    if formula not in ITE_FORMULAS:
        raise ValueError(f"formula must be one of {ITE_FORMULAS}, got {formula!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(plane.i_xt > 1e-12, plane.i_ty / np.where(plane.i_xt > 1e-12, plane.i_xt, 1), 0.0)
    vals = ratio if formula == "ratio" else np.concatenate([[np.nan], np.diff(ratio)])
    return ITE(names=list(plane.names), values=vals, formula=formula, source=plane.source)


# --------------------------------------------------------------------------------------
# Knockout check
# --------------------------------------------------------------------------------------
#: chapter 2's names for the shared layer knockouts of :mod:`nifkit.intervene.layers`
Knockout = LayerKnockouts


@checked
def knockout(model: nn.Module, data, layers=None, *, mode: str = "mean", fraction: float = 1.0,
             n_repeats: int = 1, seed: int = 0, batch_size: int = 256, split: str = "test",
             num_threads=None) -> Knockout:
    """Knock each layer out in turn and measure accuracy and the mean true-class logit.

    ``data``: labelled data (``(X, y)``, a Dataset's ``split``, a DataLoader of ``(x, y)``).
    ``mode``: ``"mean"`` replaces the layer's output by its mean over the data (per unit),
    ``"zero"`` by zeros, ``"bypass"`` by the layer's input (a residual block is skipped;
    where input and output shapes differ the mean is used, with a note). Modes, flags and
    hooks are restored; ``num_threads`` as in :func:`layer_conductance`. ``fraction < 1`` knocks out only that share of the layer's channels
    (axis 1), drawn at random, and averages over ``n_repeats`` draws (seeded): in a plain
    feed-forward stack, removing a whole layer destroys everything whichever layer it is.
    (Runs on :func:`nifkit.intervene.knock_out_layers`; ``layers`` default: :func:`blocks`.)
    """
    return knock_out_layers(model, data, path_layers(model, layers), split=split, mode=mode, fraction=fraction,
                            n_repeats=n_repeats, seed=seed, batch_size=batch_size, num_threads=num_threads)


def verdict_check(ites: list, ko: Knockout) -> list[dict]:
    """For each ITE result: its critical layer, that layer's knockout drop and its rank
    among the layers (1 = the most damaging knockout), and the layer whose knockout hurts
    most."""
    worst = ko.names[int(np.lexsort((-ko.logit_drop, -ko.drop))[0])]
    rows = []
    for r in ites:
        c = r.critical
        i = ko.names.index(c)
        rows.append({"formula": r.formula, "source": r.source, "critical": c, "accuracy_drop": float(ko.drop[i]),
                     "logit_drop": float(ko.logit_drop[i]), "rank": ko.rank(c), "of": len(ko.names),
                     "most_damaging": worst, "confirmed": ko.rank(c) == 1})
    return rows


# --------------------------------------------------------------------------------------
# Through training
# --------------------------------------------------------------------------------------
@dataclass(repr=False)
class PlaneSnapshot(Result):
    """One training snapshot of :func:`plane_trajectory`: the conductance and the
    activation planes of the model at that epoch, and its accuracy on the inputs."""

    conductance: InformationPlane
    activation: InformationPlane
    accuracy: float

    def table(self) -> list[dict]:
        """One row per layer: both planes' coordinates and the accuracy."""
        c, a = self.conductance, self.activation
        return [{"layer": n, "conductance I(X;T)": float(c.i_xt[j]), "conductance I(T;Y)": float(c.i_ty[j]),
                 "activation I(X;T)": float(a.i_xt[j]), "activation I(T;Y)": float(a.i_ty[j]),
                 "accuracy": float(self.accuracy)} for j, n in enumerate(c.names)]


def plane_series(traj: Trajectory, which: str = "conductance") -> tuple:
    """``(I(X;T), I(T;Y))`` arrays of shape ``(epochs, layers)`` of a
    :func:`plane_trajectory` (``which``: ``"conductance"`` or ``"activation"``)."""
    if which not in ("conductance", "activation"):
        raise ValueError(f"which must be 'conductance' or 'activation', got {which!r}")
    return traj.values(lambda r: getattr(r, which).i_xt), traj.values(lambda r: getattr(r, which).i_ty)


@checked
def plane_trajectory(run, data, layers=None, *, epochs=None, steps: int = 16, baselines="zeros",
                     method: str = "riemann_trapezoid", target="true", estimator: str = "binned",
                     n_bins: int = 30, reduce: str = "channel", split: str = "test", device=None,
                     memory_budget: int = PATH_MEMORY_BUDGET, num_threads=None, progress=False,
                     **plane_kw) -> Trajectory:
    """Conductance and activation planes of every snapshot of a
    :class:`nifkit.models.TrainResult` ``run`` (or the ``epochs`` given), on labelled
    ``data`` (``(X, y)``, a Dataset's ``split``, a DataLoader of ``(x, y)``): a
    :class:`nifkit.dynamics.Trajectory` of :class:`PlaneSnapshot` (computed by
    :func:`nifkit.dynamics.over_snapshots`; :func:`plane_series` reads its arrays).
    ``device``, ``memory_budget``, ``num_threads`` go to :func:`layer_conductance`;
    ``progress``: the one progress contract, one step per snapshot."""
    X, y = as_xy(data, split)
    y_np = y.numpy()

    def snapshot(m) -> PlaneSnapshot:
        c = layer_conductance(m, X, layers, baselines=baselines, target=target, labels=y, steps=steps,
                              method=method, device=device, memory_budget=memory_budget, num_threads=num_threads)
        planes = [information_plane(c, y, which=w, reduce=reduce, estimator=estimator, n_bins=n_bins, inputs=X,
                                    **plane_kw) for w in ("conductance", "activation")]
        return PlaneSnapshot(*planes, accuracy=float((c.predicted == y_np).mean()))

    settings = dict(layers=layers, steps=steps, baselines=baselines if isinstance(baselines, str) else "custom",
                    method=method, target=target, estimator=estimator, n_bins=n_bins, reduce=reduce, **plane_kw)
    return over_snapshots(run, snapshot, epochs=epochs, progress=progress, what="information planes",
                          settings=settings)
