r"""Knockouts of many sets of hidden neurons at once, and the knockout regression.

A knockout fixes the activations of a set of hidden neurons at 0 (Hintze & Adami).
The hidden activations ``H`` are recorded once; only the layers after the hidden one
run. For a ``Linear`` output layer followed by a strictly increasing activation
(``Tanh``, ``Sigmoid`` or none) the prediction is the argmax of the pre-activations

.. math::  z_c(S) = b_c + \sum_{j \notin S} W_{cj} h_j ,

(ties to the lowest class, like ``argmax``): for a stack of masks this is one batched
matrix product, and for all ``2^m`` subsets of a layer the sum splits into the two
halves of the layer, ``z(S) = P_A(S_A) + P_B(S_B)``, so every subset costs one addition
per class and sample. Per-class *balanced* accuracy of class ``n`` is
``(TPR + TNR) / 2`` of the one-vs-rest decision ``argmax = n``.

Why not :meth:`nifkit.ablation.AblationEngine.evaluate_masks`: it returns accuracy and
per-class recall only (no false positives per class, so no balanced accuracy), and its
general path evaluates each mask with a full forward pass of the following layers
(about 50x more arithmetic than the split sums for the 2^20 subsets of the paper).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._validation import as_codes
from ..models import cpu_threads
from ..record import record

__all__ = ["KnockoutEvaluator", "balanced_accuracy", "masks_from_bits", "OLSResult", "knockout_regression"]

_MONOTONE = (nn.Tanh, nn.Sigmoid, nn.Identity)


def masks_from_bits(bits, m: int) -> np.ndarray:
    """Boolean masks ``(len(bits), m)`` from integers (bit ``j`` = neuron ``j``)."""
    b = np.asarray(bits, dtype=np.int64).reshape(-1)
    return ((b[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)


def balanced_accuracy(tp, pp, n_pos, n_total):
    """``(TP/P + TN/N) / 2`` with ``TN = (n_total - n_pos) - (pp - tp)``; arrays broadcast."""
    tp = np.asarray(tp, dtype=np.float64)
    pp = np.asarray(pp, dtype=np.float64)
    n_neg = n_total - n_pos
    return 0.5 * (tp / n_pos + (n_neg - (pp - tp)) / n_neg)


class KnockoutEvaluator:
    """Knock out sets of neurons of one hidden layer of an ``nn.Sequential`` model.

    ``layer`` names the hidden layer's output module (e.g. ``"act1"``); the modules after
    it must be a ``Linear`` and optionally one strictly increasing activation. The
    activations on ``(X, y)`` are recorded once with :func:`nifkit.record.record`.
    """

    def __init__(self, model: nn.Module, X, y, layer: str = "act1", *, num_threads: int | None = None):
        if not isinstance(model, nn.Sequential):
            raise TypeError(f"model must be an nn.Sequential (e.g. nifkit.models.mlp), got {type(model).__name__}")
        names = [n for n, _ in model.named_children()]
        if layer not in names:
            raise ValueError(f"unknown layer {layer!r}; the model's layers are {names}")
        after = list(model.children())[names.index(layer) + 1:]
        if not after or not isinstance(after[0], nn.Linear) or len(after) > 2 or \
                (len(after) == 2 and not isinstance(after[1], _MONOTONE)):
            raise ValueError(f"the layers after {layer!r} must be one nn.Linear and optionally Tanh/Sigmoid/Identity; "
                             f"got {[type(a).__name__ for a in after]}")
        self.model, self.layer, self.num_threads = model, layer, num_threads
        rec = record(model, X, [layer], progress=False, num_threads=num_threads)
        H = torch.as_tensor(rec[layer]).float() if not isinstance(rec[layer], torch.Tensor) else rec[layer].float()
        self.H = H.reshape(len(H), -1)
        lin = after[0]
        self.W = lin.weight.detach().float().cpu()
        self.b = (lin.bias.detach().float().cpu() if lin.bias is not None else torch.zeros(lin.out_features))
        self.y = as_codes(y, "y").reshape(-1)
        if len(self.y) != len(self.H):
            raise ValueError(f"y has {len(self.y)} labels but X has {len(self.H)} samples")
        self.n_classes = self.W.shape[0]
        self.n_neurons = self.H.shape[1]
        self.class_counts = np.bincount(self.y, minlength=self.n_classes)
        with torch.no_grad():
            self.base_predicted = self.predict(np.zeros((1, self.n_neurons), bool))[0]

    # -- predictions and accuracies for a stack of masks ---------------------------------
    def _logits(self, keep):
        """Pre-activations ``(S, samples, classes)`` for keep-masks ``(S, m)`` (float):
        ``H @ (keep_s * W^T)`` - the masked weights are tiny, so no ``(S, samples, m)``
        temporary is made."""
        return torch.matmul(self.H, keep[:, :, None] * self.W.T[None]) + self.b

    def predict(self, masks, chunk: int = 64) -> np.ndarray:
        """Predicted classes ``(S, samples)`` with the neurons of each mask (bool
        ``(S, m)``, True = knocked out) fixed at 0."""
        mk = self._masks(masks)
        keep = torch.from_numpy(~mk).float()
        out = np.empty((len(mk), len(self.H)), np.int64)
        with cpu_threads(self.num_threads), torch.no_grad():
            for s in range(0, len(mk), chunk):  # blocks of masks
                out[s:s + chunk] = self._logits(keep[s:s + chunk]).argmax(-1).numpy()
        return out

    def accuracies(self, masks, chunk: int = 64) -> dict:
        """``{"accuracy": (S,), "balanced": (S, C)}``: overall accuracy and per-class
        balanced accuracy of each knockout (counts accumulated per block of masks with
        ``bincount``, so memory does not grow with ``S * samples``)."""
        mk = self._masks(masks)
        C, N = self.n_classes, len(self.y)
        y = torch.from_numpy(self.y)
        keep = torch.from_numpy(~mk).float()
        tp = np.empty((len(mk), C))
        pp = np.empty((len(mk), C))
        with cpu_threads(self.num_threads), torch.no_grad():
            for s in range(0, len(mk), chunk):  # blocks of masks
                pred = self._logits(keep[s:s + chunk]).argmax(-1)  # (k, N)
                k = len(pred)
                key = pred + (torch.arange(k) * C)[:, None]
                pp[s:s + k] = torch.bincount(key.reshape(-1), minlength=k * C).view(k, C).numpy()
                hit = pred == y[None]
                tp[s:s + k] = torch.bincount(key[hit], minlength=k * C).view(k, C).numpy()
        return {"accuracy": tp.sum(1) / N,
                "balanced": balanced_accuracy(tp, pp, np.maximum(self.class_counts, 1), N)}

    def _masks(self, masks):
        mk = np.asarray(masks)
        if mk.ndim == 1:
            mk = mk[None]
        if mk.ndim != 2 or mk.shape[1] != self.n_neurons:
            raise ValueError(f"masks must be (n_sets, {self.n_neurons}) booleans, got shape {mk.shape}")
        return mk.astype(bool)

    # -- every subset of the layer for one class ----------------------------------------
    def all_subsets(self, cls: int, *, sample_chunk: int = 4, block_bytes: int = 1 << 20,
                    progress=None) -> np.ndarray:
        """Balanced accuracy of class ``cls`` for all ``2^m`` knockout sets (entry ``b``
        knocks out the neurons whose bits are set in ``b``), by the split sums.

        The layer is split into a high half ``h`` and a low half ``l``; for each sample
        ``z_c(b) = P_c[h] + Q_c[l]``. Class ``cls`` wins where ``z_cls`` beats the running
        maximum of the lower classes strictly and of the higher ones or equals it (argmax
        ties go to the lowest class). The ``(samples, 2^h, block)`` tiles are sized to
        ``block_bytes`` so that they stay in the CPU cache, and every buffer is reused.
        """
        m, C = self.n_neurons, self.n_classes
        if m > 24:
            raise ValueError(f"all_subsets enumerates 2^m knockouts; m = {m} is over the limit of 24 neurons")
        if not 0 <= cls < C or self.class_counts[cls] == 0:
            raise ValueError(f"class {cls} does not occur in y (or is not an output); classes with samples: "
                             f"{np.flatnonzero(self.class_counts).tolist()}")
        ml = m // 2  # low bits: neurons 0..ml-1 (trailing axis)
        mh = m - ml  # high bits: neurons ml..m-1 (leading axis), index b = h * 2^ml + l
        keepL = torch.from_numpy(~masks_from_bits(np.arange(1 << ml), ml)).float()
        keepH = torch.from_numpy(~masks_from_bits(np.arange(1 << mh), mh)).float()
        tp = torch.zeros(1 << mh, 1 << ml, dtype=torch.int64)
        pp = torch.zeros(1 << mh, 1 << ml, dtype=torch.int64)
        is_c = torch.from_numpy(self.y == cls)
        N = len(self.y)
        n_max = int(min(sample_chunk, N))
        bs = int(max(1, min(1 << ml, block_bytes // (4 * n_max * (1 << mh)))))
        others_lo = [c for c in range(C) if c < cls]
        others_hi = [c for c in range(C) if c > cls]
        with cpu_threads(self.num_threads), torch.no_grad():
            for s in range(0, N, n_max):  # blocks of samples
                Hs = self.H[s:s + n_max]
                n = len(Hs)
                # P[c, n, h] (bias included) and Q[c, n, l]: sums over the kept neurons of each half
                # (n, C, half) products of (sample x weight) rows with the keep-masks, then (C, n, half)
                P = (torch.matmul(Hs[:, None, ml:] * self.W[None, :, ml:], keepH.T).transpose(0, 1)
                     + self.b[:, None, None])
                Q = torch.matmul(Hs[:, None, :ml] * self.W[None, :, :ml], keepL.T).transpose(0, 1)
                Pu, Qu = P[:, :, :, None], Q[:, :, None, :]
                pos = is_c[s:s + n]
                for l0 in range(0, 1 << ml, bs):  # tiles of the low half
                    sl = slice(l0, l0 + bs)
                    k = min(bs, (1 << ml) - l0)
                    shape = (n, 1 << mh, k)
                    zc = torch.add(Pu[cls], Qu[cls][..., sl])
                    win = torch.ones(shape, dtype=torch.bool)
                    buf = torch.empty(shape)
                    for group, strict in ((others_lo, True), (others_hi, False)):
                        if not group:
                            continue
                        mx = torch.add(Pu[group[0]], Qu[group[0]][..., sl])
                        for c in group[1:]:  # classes: running maximum
                            torch.add(Pu[c], Qu[c][..., sl], out=buf)
                            torch.maximum(mx, buf, out=mx)
                        win &= (zc > mx) if strict else (zc >= mx)
                    pp[:, sl] += win.sum(0)
                    if pos.any():
                        tp[:, sl] += win[pos].sum(0)
                if progress is not None:
                    progress(min(s + n, N), N, "samples")
        return balanced_accuracy(tp.reshape(-1).numpy(), pp.reshape(-1).numpy(), int(self.class_counts[cls]), N)


# ----------------------------------------------------------------------------- regression
@dataclass
class OLSResult:
    """Ordinary least squares ``y ~ 1 + X``: coefficients, standard errors, t values, R^2."""

    names: list
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    r2: float
    n: int
    settings: dict = field(default_factory=dict)

    def table(self) -> list:
        return [{"term": n, "coef": float(c), "se": float(s), "t": float(t)}
                for n, c, s, t in zip(self.names, self.coef, self.se, self.t)]

    def __getitem__(self, name: str) -> float:
        return float(self.coef[self.names.index(name)])


def _minmax(v):
    v = np.asarray(v, dtype=np.float64)
    lo, hi = v.min(), v.max()
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def knockout_regression(accuracy, relay, size, *, normalize_size: bool = True) -> OLSResult:
    """OLS of min-max-normalised knockout accuracy on min-max-normalised ``I_R`` and the
    set size (normalised too unless ``normalize_size=False``), with an intercept, over
    any number of knocked-out sets (the paper: all 2^20)."""
    a = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    r = np.asarray(relay, dtype=np.float64).reshape(-1)
    k = np.asarray(size, dtype=np.float64).reshape(-1)
    if not (len(a) == len(r) == len(k)):
        raise ValueError(f"accuracy ({len(a)}), relay ({len(r)}) and size ({len(k)}) must have one entry per set")
    if len(a) < 4:
        raise ValueError(f"the regression needs at least 4 sets, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(r).all() and np.isfinite(k).all()):
        raise ValueError("accuracy, relay and size must be finite")
    yv = _minmax(a)
    X = np.column_stack([np.ones_like(r), _minmax(r), _minmax(k) if normalize_size else k])
    coef, *_ = np.linalg.lstsq(X, yv, rcond=None)
    resid = yv - X @ coef
    n, p = X.shape
    sigma2 = resid @ resid / max(n - p, 1)
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    se = np.sqrt(np.maximum(np.diag(cov), 0))
    ss_tot = ((yv - yv.mean()) ** 2).sum()
    r2 = 1 - (resid @ resid) / ss_tot if ss_tot > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, coef / se, np.nan)
    return OLSResult(names=["intercept", "I_R", "size"], coef=coef, se=se, t=t, r2=float(r2), n=n,
                     settings={"normalize_size": normalize_size})
