"""One counter family (issue 18, point 3): pair counting lives in ``counts`` over
``kernels``; ``PairwiseMI`` is the all-pairs face of ``PairCounts``; one ``c log2 c``
helper and table, one ``LN2``, one key-bit limit; inside ``nifkit.info`` dependencies
run kernels -> counts -> measures. Read from the source with ``ast`` (imports inside
functions included) and checked on values against pyitlib and dit."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nifkit import info
from nifkit.info import counts as info_counts
from nifkit.info import kernels

PKG = Path(info.__file__).resolve().parents[1]       # nifkit/
INFO = PKG / "info"
# the order inside nifkit.info (kernels -> counts -> measures) is an import-linter contract
# in pyproject.toml (tests/test_house.py runs it and shows that it catches a wrong arrow)


def _defined_constants(path: Path) -> dict:
    """Module-level ``NAME = ...`` assignments of a file and their source text."""
    tree = ast.parse(path.read_text(), str(path))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = ast.get_source_segment(path.read_text(), node.value)
    return out


def test_one_ln2_one_key_limit_one_xlog2x_in_the_package():
    ln2_like = ("log(2", "log(2.0")
    defines = []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(PKG)
        for name, value in _defined_constants(path).items():
            if "LN2" in name or "KEY_BITS" in name or any(s in (value or "") for s in ln2_like) or value == "62":
                defines.append(f"{rel}: {name} = {value}")
        for s in ln2_like:  # ln 2 computed inline instead of imported
            if s in text.replace("log2(", "") and rel != Path("info/kernels.py"):
                defines.append(f"{rel}: computes {s}...")
        tree = ast.parse(text, str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and "xlog" in node.name.lower() and rel != Path("info/kernels.py"):
                defines.append(f"{rel}: def {node.name}")
    assert sorted(defines) == ["info/kernels.py: LN2 = math.log(2.0)", "info/kernels.py: MAX_KEY_BITS = 62"], defines
    assert info.LN2 == kernels.LN2 == math.log(2.0) and info.MAX_KEY_BITS == kernels.MAX_KEY_BITS == 62
    import nifkit.ei.measure as eim

    assert eim.MAX_KEY_BITS is kernels.MAX_KEY_BITS   # the chapter's limit is the core's


def test_the_one_xlog2x_helper_and_table():
    c = np.array([0.0, 1.0, 2.0, 7.0, 3000.0, 0.5])
    want = np.array([0.0, 0.0, 2.0, 7 * math.log2(7), 3000 * math.log2(3000), -0.5])
    np.testing.assert_allclose(kernels.xlog2x(c), want, rtol=1e-15, atol=0)
    np.testing.assert_allclose(kernels.xlog2x(torch.from_numpy(c)).numpy(), want, rtol=1e-15, atol=0)
    table = kernels.xlog2x_table(3000)
    assert table.dtype == torch.float64 and len(table) == 3001
    np.testing.assert_array_equal(table.numpy(), kernels.xlog2x(np.arange(3001.0)))
    assert kernels.xlog2x_table(3000) is table   # cached: built once
    idx = torch.tensor([[0, 1], [7, 3000]])
    np.testing.assert_array_equal(kernels.xlog2x_counts(idx, 3000).numpy(), table.numpy()[idx.numpy()])
    # c * log2(c) with numpy's log2 (what the discrete and group measures always used), not
    # xlogy / ln 2: the entropy of a constant of 512 samples comes out exactly 0 through
    # every door (log2 n - n log2(n) / n with n a power of two)
    const = np.zeros((512, 3), dtype=np.int64)
    assert info.entropy(const[:, 0]) == 0.0
    assert info.entropy_from_counts(np.array([512.0, 0.0])) == 0.0
    assert np.all(info.pairwise_mi(const, n_bins=2) == 0.0)
    assert info.KeyCounts().update(torch.zeros(512, dtype=torch.int64)).entropy() == 0.0
    some = np.array([3.0, 10.0, 999.0])
    assert np.array_equal(kernels.xlog2x(some), some * np.log2(some))


@pytest.fixture
def codes():
    rng = np.random.default_rng(11)
    a = rng.integers(0, 4, (1200, 6))
    b = (a[:, :4] + rng.integers(0, 2, (1200, 4))) % 3
    return a, b


def test_pairwise_mi_is_the_pairwise_face_of_pair_counts(codes):
    """Streamed in batches and merged == one PairCounts pass == the blocked one-shot
    pairwise_mi == pyitlib and dit, pair by pair (same counts, same MI step)."""
    from pyitlib import discrete_random_variable as drv

    a, b = codes
    assert issubclass(info.PairwiseMI, info.PairCounts)
    batches = np.array_split(np.arange(len(a)), 5)
    w1, w2 = info.PairwiseMI(n_bins=4, n_bins_b=3), info.PairwiseMI(n_bins=4, n_bins_b=3)
    for i, rows in enumerate(batches):
        (w1 if i % 2 else w2).update(a[rows], b[rows])
    streamed = w1.merge(w2)
    one_pass = info.PairCounts(4, 3).update(a, b)
    assert streamed.n == one_pass.n == len(a)
    assert torch.equal(streamed.inner, one_pass.inner) and torch.equal(streamed.count_b, one_pass.count_b)
    torch.testing.assert_close(streamed.joint, info.pair_counts(a, b, 4, 3), rtol=0, atol=0)
    ref = np.array([[drv.information_mutual(a[:, i], b[:, j], base=2) for j in range(4)] for i in range(6)])
    np.testing.assert_allclose(streamed.mi(), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(one_pass.mi().numpy(), ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(info.pairwise_mi(a, b, n_bins=4, n_bins_b=3, memory_budget=2**16), ref, atol=1e-12)
    # dit on one pair, from the joint table the family keeps
    import dit

    j = one_pass.joint[2, :, 1, :].numpy()
    outcomes = [f"{u}{v}" for u in range(4) for v in range(3) if j[u, v] > 0]
    d = dit.Distribution(outcomes, [j[u, v] / len(a) for u in range(4) for v in range(3) if j[u, v] > 0])
    assert dit.shannon.mutual_information(d, [0], [1]) == pytest.approx(ref[2, 1], abs=1e-12)
    # pairs within a: the face and the family agree, with the entropies on the diagonal
    self_pairs = info.PairwiseMI(n_bins=4).update(a[:600]).merge(info.PairCounts(4).update(a[600:]))
    np.testing.assert_allclose(self_pairs.mi(), info.pairwise_mi(a, n_bins=4), atol=1e-12)
    np.testing.assert_allclose(np.diag(self_pairs.mi()), [drv.entropy(a[:, i], base=2) for i in range(6)],
                               atol=1e-12)
    # the Miller-Madow correction goes through the same MI step
    np.testing.assert_allclose(streamed.mi("miller-madow"),
                               info.pairwise_mi(a, b, n_bins=4, n_bins_b=3, correction="miller-madow"), atol=1e-12)


def test_blocked_pair_counts_are_the_streamed_counts(codes):
    """PairBlocks (the blocked plan of pairwise_mi) yields exactly PairCounts' inner
    counts, block by block, for a budget that forces many blocks."""
    a, _ = codes
    ta = info_counts.codes_tensor(a, "a", 4)
    inner = info.PairCounts(4).update(a).inner
    blocks = info_counts.PairBlocks(ta, ta, 4, 4, symmetric=False, memory_budget=2**15)
    assert len(blocks) > 1
    seen = torch.zeros(6, 6, dtype=torch.bool)
    for (i0, i1, c0, j1), blk in blocks:
        # transposed as the kernel gives them: (b neuron, b value, a neuron, a value)
        assert torch.equal(blk.permute(2, 3, 0, 1).to(torch.int64), inner[i0:i1, :, c0:j1, :])
        seen[i0:i1, c0:j1] = True
    assert bool(seen.all())


def test_pair_counts_refuse_mixing_kinds_and_bins(codes):
    a, b = codes
    with pytest.raises(ValueError, match="different pairs"):
        info.PairCounts(4).update(a[:, :4]).merge(info.PairCounts(4).update(a[:, :4], a[:, :4]))
    with pytest.raises(ValueError, match="different bins"):
        info.PairCounts(4, 3).update(a, b).merge(info.PairwiseMI(n_bins=4, n_bins_b=4).update(a, b))
    with pytest.raises(ValueError, match="n_bins_b == n_bins_a"):
        info.PairCounts(4, 3).update(a)
    with pytest.raises(ValueError, match="n_bins_b=3"):
        info.PairCounts(4, 3).update(a, b + 1)
    with pytest.raises(ValueError, match="call update"):
        info.PairCounts(4).mi()
