r"""EI of a block as a whole: a reconstruction (nifkit's choice; the papers define EI for
layers).

A block ``B`` (any module with one tensor input and one tensor output: a residual block
``body.block3``, ResNet's ``layer2.0``) maps its input elements ``x_i`` (every channel and
position) to its output elements ``y_j``. Its input is set **by intervention** to the
maximum-entropy perturbation within the range the data give it: every element
independently uniform over its own recorded range,
:math:`x_i \sim U(lo_i, hi_i)` with :math:`lo_i, hi_i` the minimum and maximum of that
element over ``data``. Each output element is binned into ``n_bins`` equal-width bins over
the range it takes on ``data`` (values outside go to the edge bins), and

.. math::

    EI(B) = \sum_j I(X; \hat y_j)\ |\ do(X = H^{max})
          = \sum_j \big[H(\hat y_j) - H(\hat y_j \mid X)\big]
          = \sum_j H(\hat y_j)

in bits: the block is deterministic given its input (eval mode), so
:math:`H(\hat y_j \mid X) = 0` and each output element's EI is the entropy of its binned
response to the noise (at most :math:`\log_2` ``n_bins``; an identity block reaches it,
a constant or saturated one gives 0). ``per_channel[c]`` sums the output elements of
channel ``c`` (over positions). The sum over elements is an upper bound on the EI of the
whole output vector (whose state space no sample covers), as EI_parts is for a layer.
Plug-in entropies are biased downward by about ``(n_bins - 1) / (2 n ln 2)`` bits per
element.

Noise is drawn in chunks of ``min(CHUNK, 2**18 // n_inputs)`` samples (each chunk seeded
on its own, :class:`.sampling.NoiseBlocks`: about 2 MiB of float64, a property of the
block, not of the budget), and the block runs on batches of a chunk sized to
``memory_budget``, so the result does not depend on the budget; codes are counted with
one ``bincount`` per batch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._validation import checked
from ..config import DEFAULT_MEMORY_BUDGET
from ..data.arrays import as_xy
from ..info.kernels import xlog2x
from ..models.hooks import hooks
from ..models.walk import blocks as default_blocks, unknown_layer_error
from ..results import Result
from ..runtime import ModelState, Progress, cpu_threads
from .sampling import CHUNK, NoiseBlocks, out_codes

__all__ = ["BlockEI", "block_ei"]

_STREAM_BLOCK = 3
#: noise values per seeded chunk of a block's input (2 MiB of float64): a chunk holds
#: min(CHUNK, this // inputs) samples, so wide inputs (a 224x224 image block) stay small
_CHUNK_VALUES = 2**18


@dataclass(repr=False)
class BlockEI(Result):
    """EI of whole blocks under a maximum-entropy perturbation of their input (a
    reconstruction; see :mod:`nifkit.ei.blocks` for the formula), in bits.

    ``ei[k]``: block ``blocks[k]``; ``per_channel[name]``: one value per output channel;
    ``input_shapes`` / ``output_shapes``: per sample; ``input_range[name]``: the recorded
    per-element ``(lo, hi)`` arrays of the noise."""

    blocks: list
    ei: np.ndarray
    per_channel: dict
    input_shapes: dict
    output_shapes: dict
    input_range: dict
    n_samples: int
    n_bins: int

    repr_skip = ("settings", "notes", "per_channel", "input_range")

    def __getitem__(self, name) -> float:
        if name not in self.blocks:
            raise KeyError(f"no measured block {name!r}; measured blocks: {self.blocks}")
        return float(self.ei[self.blocks.index(name)])

    def table(self) -> list[dict]:
        """One row per block: EI, the most it can be (``n_outputs * log2(n_bins)``) and
        EI per output element."""
        rows = []
        for k, name in enumerate(self.blocks):
            n_out = int(np.prod(self.output_shapes[name]))
            rows.append({"block": name, "ei": float(self.ei[k]), "ei_max": n_out * math.log2(self.n_bins),
                         "ei_per_output": float(self.ei[k]) / n_out, "n_inputs": int(np.prod(self.input_shapes[name])),
                         "n_outputs": n_out})
        return rows


def _block_names(model: nn.Module, layers) -> list:
    """The blocks to measure: ``layers`` (names of ``model.named_modules()``) or the
    model's blocks (:func:`nifkit.models.blocks`)."""
    if layers is None:
        return default_blocks(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    mods = dict(model.named_modules())
    for n in names:
        if n == "" or n not in mods:
            raise unknown_layer_error(n, [m for m in mods if m], what="layers (blocks to measure)")
    return names


def _record_ranges(model, X, names, memory_budget, device):
    """Per-element ``(lo, hi)`` of every block's input and output over ``X``, and the
    shapes; one probe sample sizes the batches to ``memory_budget``."""
    lo, hi, calls, bad = {}, {}, {}, {}

    def keep(n):
        def fn(mod, args, out):
            calls[n] = calls.get(n, 0) + 1
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if len(tensors) != 1 or len(args) != 1 or not isinstance(out, torch.Tensor):
                bad[n] = f"takes {len(args)} argument(s) and returns {type(out).__name__}"
                return None
            for key, t in (((n, "in"), args[0]), ((n, "out"), out)):
                t = t.detach()
                lo[key] = t.amin(0) if key not in lo else torch.minimum(lo[key], t.amin(0))
                hi[key] = t.amax(0) if key not in hi else torch.maximum(hi[key], t.amax(0))
            return None
        return fn

    dev = next(iter(model.parameters())).device if device is None else torch.device(device)
    with hooks(model, {n: keep(n) for n in names}):
        model(X[:1].to(dev))
        for n in names:  # loop over blocks: what EI of a block needs
            if n in bad or calls.get(n, 0) != 1:
                why = bad.get(n, f"is called {calls.get(n, 0)} times in one forward pass")
                raise ValueError(f"layers: block {n!r} {why}; block EI needs a module called once with one "
                                 "tensor input and one tensor output (e.g. a residual block)")
        per_sample = sum(int(v.numel()) for v in lo.values()) * 4 * 8
        rows = max(1, int(memory_budget // max(1, per_sample)))
        for a in range(1, len(X), rows):  # loop over batches of samples
            model(X[a:a + rows].to(dev))
    return lo, hi


def _block_counts(block, lo_in, hi_in, lo_out, hi_out, n_bins, n_samples, seed, memory_budget, cb, what):
    """Counts ``(n_out, n_bins)`` of every binned output element under the noise."""
    shape_in, dev = tuple(lo_in.shape), lo_in.device
    lo_i, w_i = lo_in.reshape(-1).double(), (hi_in - lo_in).reshape(-1).double()
    out_lo, out_hi = lo_out.reshape(-1).double(), hi_out.reshape(-1).double()
    n_in, n_out = lo_i.numel(), out_lo.numel()
    counts = torch.zeros(n_out * n_bins, dtype=torch.int64, device=dev)
    chunk = max(1, min(CHUNK, _CHUNK_VALUES // n_in))  # a property of the block, never of the budget
    noise = NoiseBlocks(n_in, 0.0, 1.0, n_bins, seed=seed, stream=_STREAM_BLOCK, device=dev, chunk=chunk)
    rows = max(1, int(memory_budget // (8 * 6 * (n_in + n_out))))
    offset = torch.arange(n_out, device=dev, dtype=torch.int64) * n_bins
    dtype = next(iter(block.parameters()), lo_in).dtype
    for a in range(0, n_samples, chunk):  # loop over chunks of noise samples
        u_chunk, _ = noise.block(a, min(n_samples, a + chunk))
        for b in range(0, len(u_chunk), rows):  # loop over batches within memory_budget
            u = u_chunk[b:b + rows]
            x = torch.addcmul(lo_i, u, w_i).to(dtype).reshape(-1, *shape_in)
            y = block(x).reshape(len(u), -1).double()
            codes = out_codes(y, out_lo, out_hi, n_bins, inplace=True).to(torch.int64)
            counts += torch.bincount((codes + offset).reshape(-1), minlength=n_out * n_bins)
        cb(min(n_samples, a + chunk), n_samples, what)
    return counts.reshape(n_out, n_bins)


@checked
def block_ei(model: nn.Module, data, *, layers=None, n_bins: int = 8, n_samples: int = 5000, split: str = "train",
             max_samples: int | None = None, seed: int = 0, device=None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
             num_threads: int | None = None, progress=False) -> BlockEI:
    """EI of each block in ``layers`` (module names; default :func:`nifkit.models.blocks`)
    as a whole: ``n_samples`` maximum-entropy perturbations of its input within the
    per-element range ``data`` gives it, outputs binned into ``n_bins`` over their range on
    ``data`` (the formula: :mod:`nifkit.ei.blocks`). A reconstruction: the papers define
    EI for layers. The model runs in eval mode on ``device`` and is restored."""
    t0 = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X, _ = as_xy(data, split, labels=False, max_samples=max_samples, seed=seed)
    names = _block_names(model, layers)
    mods = dict(model.named_modules())
    ei, per_channel, shapes_in, shapes_out, ranges = [], {}, {}, {}, {}
    with ModelState(model, eval=True, no_grad=True, device=device), cpu_threads(num_threads, device), \
            Progress(progress, unit="sample") as cb:
        lo, hi = _record_ranges(model, X, names, memory_budget, device)
        for n in names:  # loop over blocks
            c = _block_counts(mods[n], lo[n, "in"], hi[n, "in"], lo[n, "out"], hi[n, "out"], n_bins, n_samples,
                              seed, memory_budget, cb, f"EI of block {n}")
            h = (math.log2(n_samples) - xlog2x(c.double()).sum(1) / n_samples).clamp_(min=0)
            out_shape = tuple(lo[n, "out"].shape)
            per_channel[n] = h.reshape(out_shape[0], -1).sum(1).cpu().numpy() if len(out_shape) > 1 \
                else h.cpu().numpy()
            ei.append(float(h.sum()))
            shapes_in[n], shapes_out[n] = tuple(lo[n, "in"].shape), out_shape
            ranges[n] = (lo[n, "in"].cpu().numpy(), hi[n, "in"].cpu().numpy())
    return BlockEI(names, np.array(ei), per_channel, shapes_in, shapes_out, ranges, int(n_samples), int(n_bins),
                   settings={"lens": "block_ei", "n_bins": n_bins, "n_samples": n_samples, "seed": seed,
                             "seconds": time.perf_counter() - t0},
                   notes=["a reconstruction (nifkit's choice; the papers define EI for layers): EI of each block "
                          "as the sum over its output elements of I(input; binned output) under uniform noise over "
                          "the recorded per-element input range, = the sum of the binned outputs' entropies for a "
                          "deterministic block"])
