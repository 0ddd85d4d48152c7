r"""The second evaluation mode of :class:`~nifkit.intervene.Knockouts`: knockouts of a
hidden layer scored through its linear readout, for very many sets at once.

``Knockouts(model, (X, y)).readout(layer, value)`` caches the activations ``h`` of
``layer`` (one forward pass, shared with the engine) and reads the one ``nn.Linear``
after it (``W``, ``b``; optionally followed by one strictly increasing activation,
``Tanh``/``Sigmoid``/``Identity``, which cannot change an argmax). With the units of a
set ``S`` fixed at the values ``v`` (0, their mean, or given), the prediction is the
argmax of

.. math::  z_c(S) = b_c + \sum_{j \notin S} W_{cj} h_j + \sum_{j \in S} W_{cj} v_j
           = b'_c + \sum_{j \notin S} W_{cj} (h_j - v_j),\qquad b' = b + W v

(ties to the lowest class, like ``argmax``). For a stack of masks this is one batched
matrix product; for all ``2^m`` subsets of a layer the sum splits into the two halves of
the layer, ``z(S) = P(S_{high}) + Q(S_{low})``, so every subset costs one addition per
class and sample. Besides overall accuracy it gives per-class *balanced* accuracy
``(TPR + TNR) / 2`` of the one-vs-rest decision ``argmax = c`` (Hintze & Adami's score),
which :meth:`Knockouts.evaluate` (accuracy, loss and per-class recall through a forward
pass of every following layer) does not: that general path costs about 50x more
arithmetic for the 2^20 subsets of the relay paper.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import as_masks
from ..runtime import Progress, cpu_threads
from .._validation import checked

__all__ = ["ReadoutKnockouts", "balanced_accuracy", "masks_from_bits", "MAX_ALL_SUBSETS"]

#: largest layer :meth:`ReadoutKnockouts.all_subsets` enumerates (2^24 knockouts)
MAX_ALL_SUBSETS = 24

_MONOTONE = (nn.Tanh, nn.Sigmoid, nn.Identity)


def masks_from_bits(bits, m: int) -> np.ndarray:
    """Boolean masks ``(len(bits), m)`` from integers (bit ``j`` = unit ``j``)."""
    b = np.asarray(bits, dtype=np.int64).reshape(-1)
    return ((b[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)


def balanced_accuracy(tp, pp, n_pos, n_total):
    """``(TP/P + TN/N) / 2`` with ``TN = (n_total - n_pos) - (pp - tp)``; arrays broadcast."""
    tp = np.asarray(tp, dtype=np.float64)
    pp = np.asarray(pp, dtype=np.float64)
    n_neg = n_total - n_pos
    return 0.5 * (tp / n_pos + (n_neg - (pp - tp)) / n_neg)


class ReadoutKnockouts:
    """Knockouts of sets of units of one hidden layer, scored through the linear readout.

    Made by :meth:`nifkit.intervene.Knockouts.readout`; ``H`` holds the layer's real
    activations ``(samples, units)``, ``base_predicted`` the intact model's classes.
    """

    @checked
    def __init__(self, engine, layer: str, value="zero"):
        if engine.flat is None:
            raise ValueError("readout knockouts need an nn.Sequential model (its layers after `layer` are read "
                             "directly); use Knockouts.evaluate for other models")
        k = engine.index(layer)
        after = [m for _, m in engine.flat[k + 1:] if not isinstance(m, (nn.Dropout, nn.AlphaDropout))]
        if not after or not isinstance(after[0], nn.Linear) or len(after) > 2 or \
                (len(after) == 2 and not isinstance(after[1], _MONOTONE)):
            raise ValueError(f"the layers after {layer!r} must be one nn.Linear and optionally Tanh/Sigmoid/Identity; "
                             f"got {[type(a).__name__ for a in after]}. Pass the last hidden layer as layer=")
        self.layer, self.num_threads = layer, engine.num_threads
        self.H = engine.activations(layer).float()
        v = engine.unit_value(layer, value).float()
        self.value = value if isinstance(value, str) else "given"
        lin = after[0]
        W = lin.weight.detach().float().to(self.H.device)
        b = lin.bias.detach().float().to(self.H.device) if lin.bias is not None else torch.zeros(
            lin.out_features, device=self.H.device)
        self.W = W
        self._Hc = self.H - v            # h - v: a knocked-out unit contributes W v
        self._b = b + W @ v              # b' = b + W v
        self.y = engine.y_np
        self.n_classes, self.n_neurons = W.shape[0], self.H.shape[1]
        self.class_counts = np.bincount(self.y, minlength=self.n_classes)
        self.base_predicted = self.predict(np.zeros((1, self.n_neurons), bool))[0]

    def __repr__(self) -> str:
        return (f"ReadoutKnockouts(layer={self.layer!r}, {self.n_neurons} units, {len(self.y)} samples, "
                f"value={self.value!r})")

    # -- predictions and accuracies for a stack of masks ---------------------------------
    def _logits(self, keep):
        """Pre-activations ``(S, samples, classes)`` for keep-masks ``(S, m)`` (float):
        ``(H - v) @ (keep_s * W^T) + b'`` - the masked weights are tiny, so no
        ``(S, samples, m)`` temporary is made."""
        return torch.matmul(self._Hc, keep[:, :, None] * self.W.T[None]) + self._b

    def _masks(self, masks):
        return as_masks(masks, self.n_neurons, "the unit is knocked out")

    def _keep(self, mk):
        return torch.from_numpy(~mk).float().to(self.H.device)

    def predict(self, masks, chunk: int = 64) -> np.ndarray:
        """Predicted classes ``(S, samples)`` with the units of each mask (bool
        ``(S, m)``, True = knocked out) fixed at the value."""
        mk = self._masks(masks)
        keep = self._keep(mk)
        out = np.empty((len(mk), len(self.H)), np.int64)
        with cpu_threads(self.num_threads), torch.no_grad():
            for s in range(0, len(mk), chunk):  # blocks of masks
                out[s:s + chunk] = self._logits(keep[s:s + chunk]).argmax(-1).cpu().numpy()
        return out

    def accuracies(self, masks, chunk: int = 64) -> dict:
        """``{"accuracy": (S,), "balanced": (S, C)}``: overall accuracy and per-class
        balanced accuracy of each knockout (counts accumulated per block of masks with
        ``bincount``, so memory does not grow with ``S * samples``)."""
        mk = self._masks(masks)
        C, N = self.n_classes, len(self.y)
        y = torch.from_numpy(self.y).to(self.H.device)
        keep = self._keep(mk)
        tp = np.empty((len(mk), C))
        pp = np.empty((len(mk), C))
        with cpu_threads(self.num_threads), torch.no_grad():
            for s in range(0, len(mk), chunk):  # blocks of masks
                pred = self._logits(keep[s:s + chunk]).argmax(-1)  # (k, N)
                k = len(pred)
                key = pred + (torch.arange(k, device=pred.device) * C)[:, None]
                pp[s:s + k] = torch.bincount(key.reshape(-1), minlength=k * C).view(k, C).cpu().numpy()
                hit = pred == y[None]
                tp[s:s + k] = torch.bincount(key[hit], minlength=k * C).view(k, C).cpu().numpy()
        return {"accuracy": tp.sum(1) / N,
                "balanced": balanced_accuracy(tp, pp, np.maximum(self.class_counts, 1), N)}

    # -- every subset of the layer for one class ----------------------------------------
    @checked
    def all_subsets(self, cls: int, *, sample_chunk: int = 4, block_bytes: int = 1 << 20,
                    progress=False) -> np.ndarray:
        """Balanced accuracy of class ``cls`` for all ``2^m`` knockout sets (entry ``b``
        knocks out the units whose bits are set in ``b``), by the split sums.

        The layer is split into a high half ``h`` and a low half ``l``; for each sample
        ``z_c(b) = P_c[h] + Q_c[l]``. Class ``cls`` wins where ``z_cls`` beats the running
        maximum of the lower classes strictly and of the higher ones or equals it (argmax
        ties go to the lowest class). The ``(samples, 2^h, block)`` tiles are sized to
        ``block_bytes`` so that they stay in the CPU cache, and every buffer is reused.
        ``progress``: ``True`` (a tqdm bar), ``False``/``None`` or a callable
        ``progress(done, total, what)``, called after each block of samples.
        """
        m, C = self.n_neurons, self.n_classes
        if m > MAX_ALL_SUBSETS:
            raise ValueError(f"all_subsets enumerates 2^m knockouts; m = {m} is over the limit of "
                             f"{MAX_ALL_SUBSETS} units: pass masks of chosen sets to accuracies() instead")
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= cls < C \
                or self.class_counts[cls] == 0:
            raise ValueError(f"cls={cls!r} does not occur in y (or is not an output); classes with samples: "
                             f"{np.flatnonzero(self.class_counts).tolist()}")
        H, W, b = self._Hc.cpu(), self.W.cpu(), self._b.cpu()
        ml = m // 2  # low bits: units 0..ml-1 (trailing axis)
        mh = m - ml  # high bits: units ml..m-1 (leading axis), index b = h * 2^ml + l
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
        with cpu_threads(self.num_threads), torch.no_grad(), Progress(progress, N, "samples") as bar:
            for s in range(0, N, n_max):  # blocks of samples
                Hs = H[s:s + n_max]
                n = len(Hs)
                # P[c, n, h] (bias included) and Q[c, n, l]: sums over the kept units of each half
                P = torch.matmul(Hs[:, None, ml:] * W[None, :, ml:], keepH.T).transpose(0, 1) + b[:, None, None]
                Q = torch.matmul(Hs[:, None, :ml] * W[None, :, :ml], keepL.T).transpose(0, 1)
                Pu, Qu = P[:, :, :, None], Q[:, :, None, :]
                pos = is_c[s:s + n]
                for l0 in range(0, 1 << ml, bs):  # tiles of the low half
                    sl = slice(l0, l0 + bs)
                    shape = (n, 1 << mh, min(bs, (1 << ml) - l0))
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
                bar(min(s + n, N))
        return balanced_accuracy(tp.reshape(-1).numpy(), pp.reshape(-1).numpy(), int(self.class_counts[cls]), N)
