"""IDX parsing, MD5 checks, source order and subset relabelling."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from whiteboxdl.data import idx, mnist


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parses_good_file_raw_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "a-idx3-ubyte"
    raw.write_bytes(_idx_bytes(arr))
    gz = tmp_path / "b-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(_idx_bytes(arr)))
    np.testing.assert_array_equal(idx.read_idx(raw), arr)
    np.testing.assert_array_equal(idx.read_idx(gz), arr)


def test_parses_other_dtype():
    arr = np.array([[1.5, -2.0]], dtype=">f4")
    raw = struct.pack(">BBBB", 0, 0, 0x0D, 2) + struct.pack(">II", 1, 2) + arr.tobytes()
    np.testing.assert_array_equal(idx.read_idx_bytes(raw), [[1.5, -2.0]])


def test_truncated_file_is_rejected(tmp_path):
    data = _idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "t-idx3-ubyte"
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        idx.read_idx(path)
    with pytest.raises(ValueError, match="truncated IDX header"):
        idx.read_idx_bytes(data[:9])


def test_trailing_data_is_rejected():
    with pytest.raises(ValueError, match="trailing"):
        idx.read_idx_bytes(_idx_bytes(np.zeros((2, 2), np.uint8)) + b"x")


def test_wrong_magic_is_rejected():
    data = bytearray(_idx_bytes(np.zeros((2, 2), np.uint8)))
    data[2] = 0x42  # unknown type code
    with pytest.raises(ValueError, match="magic number 0x00004202"):
        idx.read_idx_bytes(bytes(data))
    with pytest.raises(ValueError, match="magic"):
        idx.read_idx_bytes(b"\x89PNG\r\n\x1a\n")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "c.gz"
    path.write_bytes(gzip.compress(b"x" * 100)[:20])
    with pytest.raises(ValueError, match="corrupt gzip"):
        idx.read_raw_bytes(path)


def _fake_dataset(directory, n_train=6, n_test=4):
    """Write four tiny IDX files; return a DatasetSpec whose MD5s match them."""
    rng = np.random.default_rng(0)
    md5 = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 3
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", images),
                          (f"{prefix}-labels-idx1-ubyte", labels)):
            data = _idx_bytes(arr)
            (directory / stem).write_bytes(data)
            md5[stem] = idx.md5_of(data)
    return mnist.DatasetSpec(name="fake", md5=md5, classes=("a", "b", "c"))


@pytest.fixture
def fake_spec(tmp_path, monkeypatch):
    spec = _fake_dataset(tmp_path)
    monkeypatch.setitem(mnist.DATASETS, "fake", spec)
    monkeypatch.setenv("WHITEBOXDL_CACHE", str(tmp_path / "cache"))
    return spec


def test_load_from_directory(tmp_path, fake_spec):
    x, y = mnist.load_dataset("fake", "train", root=tmp_path)
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert y.tolist() == [0, 1, 2, 0, 1, 2]
    raw = idx.read_idx(tmp_path / "train-images-idx3-ubyte")
    assert torch.allclose(x[2, 0], torch.from_numpy(raw[2]).float() / 255)


def test_md5_mismatch_names_the_file(tmp_path, fake_spec):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="MD5 mismatch for .*t10k-labels-idx1-ubyte"):
        mnist.load_dataset("fake", "test", root=tmp_path)


def test_missing_files_give_clear_error(tmp_path, fake_spec):
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="four fake IDX files"):
        mnist.locate("fake", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="fake not found"):
        mnist.locate("fake", download=False)


def test_env_var_source_is_used_and_named(tmp_path, fake_spec, monkeypatch):
    monkeypatch.setenv("WHITEBOXDL_DATA", str(tmp_path))
    located = mnist.locate("fake", download=False)
    assert located.directory == tmp_path and "WHITEBOXDL_DATA" in located.source


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        mnist.locate("cifar")
    with pytest.raises(ValueError, match="split must be one of"):
        mnist.load_dataset("mnist", "validation")


def test_select_classes_relabels_in_given_order():
    x = torch.arange(8.0).view(8, 1, 1, 1)
    y = torch.tensor([5, 3, 1, 5, 3, 0, 3, 9])
    xs, ys = mnist.select_classes(x, y, (5, 3))
    assert ys.tolist() == [0, 1, 0, 1, 1]
    assert xs.flatten().tolist() == [0.0, 1.0, 3.0, 4.0, 6.0]
    with pytest.raises(ValueError, match=r"classes \[7\] do not occur"):
        mnist.select_classes(x, y, (5, 7))
    with pytest.raises(ValueError, match="distinct"):
        mnist.select_classes(x, y, (5, 5))


@pytest.mark.parametrize("digits,error,match", [
    ((3, 12), ValueError, "every entry of digits must be a whole number in \\[0, 9\\], got 12"),
    ((3.7, 5), ValueError, "got 3.7"),                 # refused, not truncated to 3
    (("3", 5), ValueError, "got '3'"),
    ((True, 5), ValueError, "got True"),
    (35, TypeError, "sequence of digits"),
    ("35", TypeError, "sequence of digits"),
])
def test_digit_subset_rejects_bad_digits(digits, error, match):
    with pytest.raises(error, match=match):
        mnist.digit_subset(digits)


def test_cnn_digits_are_checked_the_same_way():
    from whiteboxdl.models.cnn import cnn_dir

    with pytest.raises(ValueError, match="got 3.7"):
        cnn_dir("mnist", (3.7, 5))
    assert cnn_dir("mnist", (3.0, 5)).name == "mnist-35-cnn"


def test_real_mnist_counts(needs_mnist):
    x_train, y_train = mnist.load_mnist("train")
    x_test, y_test = mnist.load_mnist("test")
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    assert torch.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x35, y35 = mnist.digit_subset((3, 5), "train")
    assert len(y35) == 11552 and torch.bincount(y35).tolist() == [6131, 5421]
    _, y35t = mnist.digit_subset((3, 5), "test")
    assert len(y35t) == 1902 and torch.bincount(y35t).tolist() == [1010, 892]


def test_real_fashion_mnist():
    try:
        mnist.locate("fashion-mnist", download=False)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)")
    x, y = mnist.load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [1000] * 10
