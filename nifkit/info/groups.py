r"""Conditional mutual information and co-information of *groups* of variables, batched.

The relay-information chapter asks, over and over, how much ``X`` tells about ``Y``
once a group ``Z`` of other variables is known, for many groups ``Z`` at once:

.. math::

    I(X;Y\mid Z) = \frac{1}{n}\sum_{z}\Big[\sum_{x,y} c_{xyz}\log_2 c_{xyz}
        - \sum_x c_{xz}\log_2 c_{xz} - \sum_y c_{yz}\log_2 c_{yz} + c_z\log_2 c_z\Big]

(plug-in, bits; ``c`` are counts over ``n`` samples), and the conditional
co-information of a group ``A`` with ``X`` and ``Y`` given ``Z``

.. math::

    I(X;Y;A\mid Z) = I(X;Y\mid Z) - I(X;Y\mid A, Z),

which is the relay information of ``A`` when ``Z`` is the rest of the layer
(Hintze & Adami 2023). A group is a set of columns of a code matrix ``codes``
``(samples, m)``; its joint symbol is the packed code of those columns (mixed radix),
relabelled to ``0..G-1`` (*compacted*) so that counts fit in small ``bincount`` tables.

Batched entry points (no Python loop over groups or samples):

* :func:`cmi_extended` - ``I(X;Y | B, E_j)`` for every column ``j`` of ``extra`` in one
  call: one greedy step of module search scores all candidate removals at once.
* :func:`cmi_subsets` - ``I(X;Y | codes[:, mask_s])`` for any stack of masks.
* :func:`cmi_all_subsets` - all ``2^m`` conditioning sets of ``m <= 24`` variables,
  indexed by bit mask, by refining group labels one variable at a time.
* :func:`co_information_removals` - ``I(X;Y;A\setminus\{j\} \mid Z\cup\{j\})`` for each
  ``j`` of a group ``A`` (the relay information left after removing ``j``).

Samples are first collapsed to their distinct rows (with multiplicities), so the cost
scales with the number of distinct patterns, not of samples.
"""
from __future__ import annotations

import math

import numpy as np

from ..config import DEFAULT_MEMORY_BUDGET
from .._validation import as_codes, as_masks, check_int
from .discrete import pack
from .keys import mixed_radix, row_keys
from .kernels import MAX_KEY_BITS, xlog2x_table
from ..runtime import Progress
from .._validation import checked

__all__ = [
    "compact",
    "group_labels",
    "cmi_from_labels",
    "cmi_extended",
    "cmi_subsets",
    "cmi_all_subsets",
    "conditional_co_information",
    "co_information_removals",
    "MAX_ALL_SUBSETS",
]

#: largest number of variables :func:`cmi_all_subsets` accepts (2^24 results)
MAX_ALL_SUBSETS = 24


# ----------------------------------------------------------------------------- helpers
@checked
def compact(labels, n_values: int | None = None):
    """Relabel non-negative integer ``labels`` to ``0..G-1`` (order kept); returns
    ``(labels, G)``. Uses an occupancy table when the range is small, else a sort."""
    lab = np.asarray(labels)
    if lab.size == 0:
        return lab.astype(np.int64), 0
    hi = int(lab.max()) + 1 if n_values is None else int(n_values)
    if hi <= max(4 * lab.size, 1 << 16):
        occ = np.zeros(hi, dtype=bool)
        occ[lab] = True
        remap = np.cumsum(occ, dtype=np.int64) - 1
        return remap[lab], int(remap[-1] + 1) if hi else 0
    uniq, inv = np.unique(lab, return_inverse=True)
    return inv.reshape(lab.shape).astype(np.int64), len(uniq)


def _check_xy(x, y):
    x = as_codes(x, "x")
    y = as_codes(y, "y")
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"x and y must be 1-D codes (samples,); got shapes {x.shape} and {y.shape}. "
                         "Pack a group first with nifkit.info.pack(...)")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}; they must come from the same samples")
    if len(x) == 0:
        raise ValueError("x and y have no samples")
    return x, y


def _check_codes(codes, n, name="codes"):
    c = as_codes(codes, name)
    if c.ndim == 1:
        c = c[:, None]
    if len(c) != n:
        raise ValueError(f"{name} has {len(c)} samples but x has {n}; rows must be the same samples")
    return c


def _xy_joint(x, y):
    """Joint label of (x, y) as xi*by + yi with by = #values of y, after compaction."""
    xc, bx = compact(x)
    yc, by = compact(y)
    return xc, yc, bx, by


def _distinct(codes, xc, yc, bx, by):
    """Collapse samples to distinct (codes, x, y) rows; returns (codes_u, xy_u, w). The
    keys are packed in blocks of rows (:data:`KEY_ROWS`), so no copy of all the codes is
    made."""
    xy = xc * by + yc
    card = codes.max(axis=0) + 1 if codes.shape[1] else np.zeros(0, np.int64)
    key = None
    if mixed_radix(np.concatenate([[bx * by], card])) is not None:
        key = np.empty(len(xy), np.int64)
        for s in range(0, len(xy), KEY_ROWS):  # blocks of rows: key = xy + bx*by * (codes' mixed-radix key)
            key[s:s + KEY_ROWS] = row_keys(codes[s:s + KEY_ROWS], card) * (bx * by) + xy[s:s + KEY_ROWS]
    if key is not None:
        _, first, w = np.unique(key, return_index=True, return_counts=True)
    else:
        _, first, w = np.unique(np.column_stack([codes, xy]), axis=0, return_index=True, return_counts=True)
    return codes[first], xy[first], w.astype(np.int64)


def group_labels(codes, columns=None):
    """Compact joint labels ``(samples,)`` and their number ``G`` of the group of
    ``columns`` of ``codes`` (all columns when None; an empty group gives one label)."""
    c = as_codes(codes, "codes")
    if c.ndim == 1:
        c = c[:, None]
    if columns is not None:
        c = c[:, list(columns)]
    if c.shape[1] == 0:
        return np.zeros(len(c), np.int64), 1
    return compact(pack(c))


def _cmi_from_counts(cnt, n, table):
    """``cnt`` (..., G, bx, by) integer counts -> I(X;Y|Z) in bits over the last 3 axes."""
    s_xyz = table[cnt].sum((-3, -2, -1))
    s_xz = table[cnt.sum(-1)].sum((-2, -1))
    s_yz = table[cnt.sum(-2)].sum((-2, -1))
    s_z = table[cnt.sum((-2, -1))].sum(-1)
    return (s_xyz - s_xz - s_yz + s_z) / n


#: rows per block when packing the keys of distinct samples
KEY_ROWS = 8192
#: bytes per (label row, distinct sample) of the refinement stacks and the count keys
#: (int32 rows and their refined half, int64 keys, float64 weights)
ROW_BYTES = 32
#: bytes per count cell of :func:`_cmi_rows` (the float64 bincount, its int64 copy and
#: the table lookup)
CELL_BYTES = 24


def _cmi_rows(rows, gs, xyu, w, bx, by, n, table, memory_budget=None):
    """``I(X;Y|Z_r)`` for every row ``r`` of compact labels ``rows`` (R, U) with ``gs[r]``
    groups each, over distinct rows with joint (x, y) label ``xyu`` and weights ``w``.
    The rows' cells are laid end to end (no padding to the widest row), counted with one
    ``bincount`` and summed per row with ``np.add.reduceat``; with ``memory_budget``, in
    blocks of rows whose keys and count cells fit it."""
    nxy = bx * by
    gs = np.asarray(gs, dtype=np.int64)
    if memory_budget is None or len(rows) <= 1:
        return _cmi_rows_block(rows, gs, xyu, w, bx, by, n, table)
    cum = np.cumsum(ROW_BYTES * rows.shape[1] + CELL_BYTES * nxy * gs)
    out = np.empty(len(rows))
    start = 0
    while start < len(rows):  # blocks of rows
        base = cum[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + memory_budget, side="right")))
        out[start:stop] = _cmi_rows_block(rows[start:stop], gs[start:stop], xyu, w, bx, by, n, table)
        start = stop
    return out


def _cmi_rows_block(rows, gs, xyu, w, bx, by, n, table):
    nxy = bx * by
    g_start = np.concatenate([[0], np.cumsum(gs)[:-1]]).astype(np.int64)
    total = int(np.sum(gs))
    key = (rows + g_start[:, None]) * nxy + xyu[None, :]
    cnt = np.bincount(key.ravel(), weights=np.broadcast_to(w, key.shape).ravel(),
                      minlength=total * nxy).astype(np.int64).reshape(total, bx, by)
    per_group = (table[cnt].sum((1, 2)) - table[cnt.sum(2)].sum(1) - table[cnt.sum(1)].sum(1)
                 + table[cnt.sum((1, 2))])
    return np.add.reduceat(per_group, g_start) / n


@checked
def cmi_from_labels(x, y, labels, n_groups: int | None = None) -> float:
    """``I(X;Y|Z)`` in bits with ``Z`` given by integer ``labels`` (samples,)."""
    x, y = _check_xy(x, y)
    lab = as_codes(labels, "labels")
    if lab.ndim != 1 or len(lab) != len(x):
        raise ValueError(f"labels must be 1-D with {len(x)} entries, got shape {lab.shape}")
    lab, G = compact(lab, n_groups)
    xc, yc, bx, by = _xy_joint(x, y)
    cnt = np.bincount((lab * bx + xc) * by + yc, minlength=G * bx * by).reshape(G, bx, by)
    return float(_cmi_from_counts(cnt, len(x), xlog2x_table(len(x)).numpy()))


# ------------------------------------------------------------------------ batched: extend
@checked
def cmi_extended(x, y, given, extra, *, memory_budget: int = 256 * 2**20) -> np.ndarray:
    """``I(X; Y | B, E_j)`` in bits for every column ``j`` of ``extra``, in one call.

    ``given`` is the base group ``B``: codes ``(samples,)`` or ``(samples, k)`` (``None``
    or a ``(samples, 0)`` array for the empty group); ``extra`` is ``(samples, J)``.
    The joint label of ``(B, E_j)`` for all ``j`` is one ``(samples, J)`` array of packed
    keys, counted with one ``bincount`` (in blocks of columns within ``memory_budget``).
    """
    x, y = _check_xy(x, y)
    n = len(x)
    e = _check_codes(extra, n, "extra")
    if given is None:
        base, G = np.zeros(n, np.int64), 1
    else:
        g = _check_codes(given, n, "given")
        base, G = group_labels(g) if g.shape[1] else (np.zeros(n, np.int64), 1)
    xc, yc, bx, by = _xy_joint(x, y)
    table = xlog2x_table(n).numpy()  # the one c log2 c table
    J = e.shape[1]
    out = np.empty(J, np.float64)
    if J == 0:
        return out
    card = e.max(axis=0) + 1
    cm = int(card.max())
    cells = G * cm * bx * by
    per_col = 8 * (4 * n + 3 * cells)  # the (samples, column) key and its temporaries; the counts
    step = int(max(1, min(J, memory_budget // max(per_col, 1))))
    xy = xc * by + yc
    for s in range(0, J, step):  # blocks of columns, not a loop over candidates
        blk = e[:, s:s + step]
        k = blk.shape[1]
        key = ((base[:, None] * cm + blk) * (bx * by) + xy[:, None]) + np.arange(k)[None, :] * cells
        cnt = np.bincount(key.ravel(), minlength=k * cells).reshape(k, G * cm, bx, by)
        out[s:s + k] = _cmi_from_counts(cnt, n, table)
    return out


# ------------------------------------------------------------------------ batched: masks
def _as_masks(masks, m):
    return as_masks(masks, m, "the variable is in the conditioning group")


@checked
def cmi_subsets(x, y, codes, masks, *, memory_budget: int = 128 * 2**20) -> np.ndarray:
    """``I(X;Y | codes[:, mask_s])`` in bits for every row ``mask_s`` of ``masks``
    (bool ``(S, m)``; an all-False row conditions on nothing).

    Samples are collapsed to distinct rows; the keys of every set are packed with one
    matrix product, made unique per set with one sort, and counted with one bincount
    (in blocks of sets, and their counts in blocks of cells, within ``memory_budget``).
    """
    x, y = _check_xy(x, y)
    n = len(x)
    c = _check_codes(codes, n)
    mk = _as_masks(masks, c.shape[1])
    xc, yc, bx, by = _xy_joint(x, y)
    cu, xyu, w = _distinct(c, xc, yc, bx, by)
    U = len(w)
    card = cu.max(axis=0) + 1
    table = xlog2x_table(n).numpy()  # the one c log2 c table
    S = len(mk)
    out = np.empty(S, np.float64)
    radix = mixed_radix(card)
    if radix is None:
        raise ValueError(f"the joint code of all variables does not fit {MAX_KEY_BITS} bits; binarise or use fewer "
                         "variables")
    exact_float = float(np.sum(np.log2(np.maximum(card, 1)))) < 52
    radixf = radix.astype(np.float64)
    # about a dozen (sets, distinct rows) int64 temporaries per block
    step = int(max(1, min(S, memory_budget // 2 // max(8 * 12 * U, 1))))
    for s in range(0, S, step):  # blocks of sets
        mb = mk[s:s + step]
        k = len(mb)
        if exact_float:  # BLAS float64 product, exact below 2^53 (numpy has no BLAS for ints)
            keys = (cu.astype(np.float64) @ (mb * radixf).T).astype(np.int64)  # (U, k) packed group keys
        else:
            keys = cu @ (mb * radix).T
        # unique (set, key) pairs -> compact labels per set, one sort for the block
        full = keys.T  # (k, U)
        order = np.argsort(full, axis=1)  # any sort: labels follow the sorted values
        srt = np.take_along_axis(full, order, axis=1)
        new = np.ones_like(srt, dtype=bool)
        new[:, 1:] = srt[:, 1:] != srt[:, :-1]
        lab_sorted = np.cumsum(new, axis=1) - 1
        lab = np.empty_like(lab_sorted)
        np.put_along_axis(lab, order, lab_sorted, axis=1)
        out[s:s + k] = _cmi_rows(lab, lab_sorted[:, -1] + 1, xyu, w, bx, by, n, table, memory_budget // 2)
    return out


@checked
def cmi_all_subsets(x, y, codes, *, block_vars: int = 8, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                    progress=False) -> np.ndarray:
    """``I(X;Y | codes[:, Z])`` for every subset ``Z`` of the ``m`` columns (``m <= 24``):
    an array of ``2^m`` values in bits, entry ``b`` for the set of bits of ``b``
    (column ``i`` <-> bit ``i``).

    Enumeration: the top ``m - block_vars`` variables pick a block (its labels are packed
    and compacted once); inside a block the low variables are added breadth first - each
    level doubles a stack of label rows, the new half refined by one variable and
    re-compacted per row with one occupancy table for the whole stack (rows laid end to
    end, each with only as many cells as it has groups) - and every leaf's counts come
    from one ``bincount``, summed per row with ``np.add.reduceat``. ``progress``: True for a bar, or a callable
    ``progress(done, total, what)`` called after each block.

    Memory: a block's stack holds ``2^block_vars`` label rows of the ``U`` distinct
    samples; ``block_vars`` is lowered until half of ``memory_budget`` holds the stack
    (:data:`ROW_BYTES` per row and distinct sample), and the counts are made in blocks of
    rows within the other half. The values do not depend on the blocks (up to the last bit
    of a sum's rounding).
    """
    x, y = _check_xy(x, y)
    n = len(x)
    c = _check_codes(codes, n)
    m = c.shape[1]
    if m > MAX_ALL_SUBSETS:
        raise ValueError(f"cmi_all_subsets enumerates 2^m sets; m = {m} is over the limit of {MAX_ALL_SUBSETS} "
                         "variables. Use a greedy search (nifkit.relay.module_search) or cmi_subsets on a sample.")
    xc, yc, bx, by = _xy_joint(x, y)
    cu, xyu, w = _distinct(c, xc, yc, bx, by)
    U = len(w)
    for i in range(m):  # relabel each variable's values to 0..card-1, in place (cu is a fresh array)
        cu[:, i] = compact(cu[:, i])[0]
    card = cu.max(axis=0) + 1 if m else np.zeros(0, np.int64)
    table = xlog2x_table(n).numpy()  # the one c log2 c table
    kb = int(min(check_int(block_vars, "block_vars", minimum=0), m, max(0, math.floor(math.log2(max(1, memory_budget // 2 // (ROW_BYTES * U)))))))
    top = m - kb
    out = np.empty(1 << m, np.float64)
    with Progress(progress, 1 << top, "subsets", unit="block") as bar:
        for t in range(1 << top):
            cols = [kb + i for i in range(top) if (t >> i) & 1]
            if cols:
                lab, G = compact(pack(cu[:, cols]))
            else:
                lab, G = np.zeros(U, np.int64), 1
            rows = lab[None, :].astype(np.int32)  # (1, U): compact labels of each set of the block
            gs = np.array([G], dtype=np.int64)  # number of groups of each row
            for v in range(kb):
                cv = int(card[v])
                ref = rows * cv + cu[None, :, v]  # (R, U): row r's values lie in 0..gs[r]*cv-1
                # rows laid end to end (no padding): one occupancy table and one cumsum for all
                start_r = np.concatenate([[0], np.cumsum(gs * cv)[:-1]])
                flat = ref + start_r[:, None]
                occ = np.zeros(int((gs * cv).sum()), dtype=bool)
                occ[flat.ravel()] = True
                csum = np.cumsum(occ, dtype=np.int64)
                before = np.where(start_r > 0, csum[np.maximum(start_r - 1, 0)], 0)
                new = (csum[flat] - 1 - before[:, None]).astype(np.int32)
                rows = np.concatenate([rows, new])
                gs = np.concatenate([gs, csum[start_r + gs * cv - 1] - before])
            out[t << kb:(t + 1) << kb] = _cmi_rows(rows, gs, xyu, w, bx, by, n, table, memory_budget // 2)
            bar.update()
    return out


# ----------------------------------------------------------------- co-information
def conditional_co_information(x, y, a, given=None) -> float:
    r"""``I(X;Y;A|Z) = I(X;Y|Z) - I(X;Y|A,Z)`` in bits for groups ``A`` and ``Z``
    (codes ``(samples,)`` or ``(samples, k)``; ``given=None`` is the empty group, which
    gives the co-information ``I(X;Y;A)``, -1 bit for XOR)."""
    x, y = _check_xy(x, y)
    n = len(x)
    a = _check_codes(a, n, "a")
    z = np.zeros((n, 0), np.int64) if given is None else _check_codes(given, n, "given")
    lz, gz = group_labels(z) if z.shape[1] else (np.zeros(n, np.int64), 1)
    laz, gaz = group_labels(np.column_stack([a, z]))
    return cmi_from_labels(x, y, lz, gz) - cmi_from_labels(x, y, laz, gaz)


def co_information_removals(x, y, codes, group) -> np.ndarray:
    r"""For each ``j`` of ``group`` (column indices of ``codes``): the conditional
    co-information ``I(X;Y;A\setminus\{j\} \mid Z\cup\{j\})`` with ``A`` = ``group`` and
    ``Z`` = the other columns - i.e. the relay information left after moving ``j``
    from the group to the rest. One :func:`cmi_extended` call scores all of them."""
    x, y = _check_xy(x, y)
    c = _check_codes(codes, len(x))
    m = c.shape[1]
    grp = np.asarray(list(group), dtype=np.int64)
    if grp.size and (grp.min() < 0 or grp.max() >= m or len(np.unique(grp)) != len(grp)):
        raise ValueError(f"group must list distinct column indices in 0..{m - 1}, got {grp.tolist()}")
    rest = np.setdiff1d(np.arange(m), grp)
    all_lab, G = group_labels(c)
    const = cmi_from_labels(x, y, all_lab, G)
    return cmi_extended(x, y, c[:, rest], c[:, grp]) - const
