"""nodekit.datasets: digits split, one-hot, IDX files (round trip, bad files), toy data."""
import gzip
import os

import numpy as np
import pytest

from nodekit.datasets import (IDXError, load_digits, load_idx, load_mnist, minibatches,
                              one_hot, save_idx, shift_images, two_circles, two_moons)
from nodekit.datasets.idx import load_images_labels


def test_digits_split_is_fixed_scaled_and_stratified():
    d = load_digits(seed=0, test_fraction=0.2)
    assert d.x_train.dtype == np.float64 and d.x_train.shape[1] == 64
    assert len(d.y_train) + len(d.y_test) == 1797
    assert 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    assert abs(len(d.y_test) / 1797 - 0.2) < 0.01
    assert np.bincount(d.y_test, minlength=10).min() >= 30   # every class in the test set
    again = load_digits(seed=0, test_fraction=0.2)
    assert np.array_equal(d.x_test, again.x_test) and np.array_equal(d.y_train, again.y_train)
    other = load_digits(seed=1, test_fraction=0.2)
    assert not np.array_equal(d.y_test, other.y_test)
    # train and test are disjoint: no test image occurs in the training set
    train_rows = {row.tobytes() for row in d.x_train}
    dup = sum(row.tobytes() in train_rows for row in d.x_test)
    assert dup <= 2   # the source itself has a handful of identical images
    assert d.one_hot("test").shape == (len(d.y_test), 10)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_one_hot_and_minibatches():
    h = one_hot([2, 0, 1], 4)
    assert h.tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    with pytest.raises(ValueError, match="labels"):
        one_hot([0, 5], 3)
    with pytest.raises(ValueError, match="integers"):
        one_hot([0.5])
    parts = minibatches(10, 4, np.random.default_rng(0))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))


def test_shift_images_moves_by_whole_pixels():
    x = np.arange(1.0, 17.0).reshape(1, 16)
    for s in range(10):
        out = shift_images(x, np.random.default_rng(s), (4, 4), 1).reshape(4, 4)
        # a shifted copy: every nonzero pixel keeps its value and its neighbours' order
        nz = out[out != 0]
        assert set(nz.tolist()) <= set(x.ravel().tolist()) and nz.size >= 9


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_idx_round_trip(tmp_path, gz, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    save_idx(path, arr)
    with open(path, "rb") as fh:
        assert (fh.read(2) == b"\x1f\x8b") == gz
    back = load_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    assert np.array_equal(back, arr)


def _write_mnist(folder, n, gz):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    ext = ".gz" if gz else ""
    for split, m in (("train", n), ("t10k", n // 2)):
        save_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{ext}"), images[:m])
        save_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{ext}"), labels[:m])
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_small_files(tmp_path, gz):
    images, labels = _write_mnist(str(tmp_path), 6, gz)
    d = load_mnist(str(tmp_path))
    assert d.x_train.shape == (6, 784) and d.x_test.shape == (3, 784)
    assert np.allclose(d.x_train, images.reshape(6, -1) / 255.0)
    assert d.y_test.tolist() == labels[:3].tolist() and d.image_shape == (28, 28)
    # a canonical MNIST header, written byte by byte
    raw = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 1, 9])
    p = tmp_path / "labels"
    p.write_bytes(raw)
    assert load_idx(p).tolist() == [7, 1, 9]


def _raw(path, data):
    with open(path, "wb") as fh:
        fh.write(data)
    return path


@pytest.mark.parametrize("data, match", [
    (b"\x00\x00", "too short"),
    (b"\x01\x02\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "two zero bytes"),
    (b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"\x00", "unknown type code"),
    (b"\x00\x00\x08\x00", "zero dimensions"),
    (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "truncated header"),
    (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x00\x01", "truncated"),
    (b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00\x01", "trailing bytes"),
    (b"\x00\x00\x0d\x01" + (2).to_bytes(4, "big") + b"\x00" * 7, "float32"),
])
def test_bad_idx_files_raise_clear_errors(tmp_path, data, match):
    path = _raw(tmp_path / "bad", data)
    with pytest.raises(IDXError, match=match):
        load_idx(path)
    gz = tmp_path / "bad.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(data)
    with pytest.raises(IDXError, match=match):
        load_idx(gz)


def test_bad_mnist_pairs_and_missing_files(tmp_path):
    save_idx(tmp_path / "img", np.zeros((4, 2, 2), np.uint8))
    save_idx(tmp_path / "lab", np.zeros(3, np.uint8))
    save_idx(tmp_path / "flat", np.zeros((4, 4), np.uint8))
    with pytest.raises(IDXError, match="4 images .* 3\\s+labels|3 labels"):
        load_images_labels(tmp_path / "img", tmp_path / "lab")
    with pytest.raises(IDXError, match="3 dimensions"):
        load_images_labels(tmp_path / "flat", tmp_path / "lab")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope")
    with pytest.raises(TypeError, match="dtype"):
        save_idx(tmp_path / "x", np.zeros(2, np.int64))
    _raw(tmp_path / "broken.gz", b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(IDXError, match="could not read"):
        load_idx(tmp_path / "broken.gz")


def test_toy_data():
    x, y = two_circles(100, seed=0)
    assert x.shape == (100, 2) and x.dtype == np.float64 and set(y.tolist()) == {0, 1}
    r = np.hypot(*x.T)
    assert r[y == 1].mean() < r[y == 0].mean()       # label 1 is the inner circle
    x2, y2 = two_moons(50, seed=3)
    assert x2.shape == (50, 2) and np.array_equal(two_moons(50, seed=3)[0], x2)
