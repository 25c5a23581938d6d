"""The IDX reader, the `idx:DIR` scheme and the Fashion-MNIST datasets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from approxmap.core.exceptions import DataError
from approxmap.zoo import create_dataset
from approxmap.zoo.fashion import FASHION_DIR_ENV, fashion_dir
from approxmap.zoo.idx import load_idx_dir, read_idx

needs_fashion = pytest.mark.skipif(
    not (fashion_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST absent; install it with: apt-get install -y dataset-fashion-mnist",
)


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> Path:
    data = idx_bytes(array, code)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def one_line_data_error(call, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(("code", "dtype"), [(0x08, np.uint8), (0x0B, np.int16), (0x0D, np.float32)])
def test_round_trip_of_synthetic_files(tmp_path, suffix, code, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype) if dtype != np.uint8 \
        else np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"a-images-idx3-ubyte{suffix}", array, code)
    read = read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.shape == (2, 3, 5)
    np.testing.assert_array_equal(read, array)


def test_bad_magic_number(tmp_path):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    one_line_data_error(lambda: read_idx(path), str(path), "bad magic number")


def test_truncated_raw_file(tmp_path):
    path = write_idx(tmp_path / "t-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    one_line_data_error(lambda: read_idx(path), "truncated", "(4, 28, 28)", str(path))


def test_file_longer_than_its_header(tmp_path):
    path = write_idx(tmp_path / "t-labels-idx1-ubyte", np.zeros(5, np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    one_line_data_error(lambda: read_idx(path), "longer than its header")


def test_header_cut_short(tmp_path):
    path = tmp_path / "h-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    one_line_data_error(lambda: read_idx(path), "header", "cut short")


def test_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "t-images-idx3-ubyte.gz", np.ones((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    one_line_data_error(lambda: read_idx(path), "truncated", str(path))


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "c-images-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip at all" * 10)
    one_line_data_error(lambda: read_idx(path), "corrupt gzip", str(path))


def test_missing_file(tmp_path):
    one_line_data_error(lambda: read_idx(tmp_path / "nope.gz"), "not found")


def make_dir(tmp_path: Path, n_test: int = 6, n_train: int = 4) -> Path:
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 8, 8), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(n_test, dtype=np.uint8))
    write_idx(tmp_path / "train-images-idx3-ubyte", np.full((n_train, 8, 8), 255, np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.ones(n_train, np.uint8))
    return tmp_path


def test_idx_scheme_picks_splits(tmp_path):
    make_dir(tmp_path)
    test = create_dataset(f"idx:{tmp_path}")
    assert test.x.shape == (6, 1, 8, 8) and test.y.tolist() == list(range(6))
    assert 0.0 <= float(test.x.min()) and float(test.x.max()) <= 1.0
    train = create_dataset(f"idx:{tmp_path}#train", images=3)
    assert train.x.shape == (3, 1, 8, 8) and torch.all(train.x == 1.0) and train.y.tolist() == [1] * 3


def test_idx_scheme_errors(tmp_path):
    one_line_data_error(lambda: load_idx_dir(str(tmp_path / "missing")), "not found")
    one_line_data_error(lambda: load_idx_dir(str(tmp_path)), "No test images")
    make_dir(tmp_path)
    one_line_data_error(lambda: load_idx_dir(f"{tmp_path}#val"), "Unknown split 'val'")


def test_idx_scheme_label_count_mismatch(tmp_path):
    make_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    one_line_data_error(lambda: load_idx_dir(str(tmp_path)), "6 integer labels", "(5,)")


def test_single_unlabeled_pair_serves_any_split(tmp_path):
    write_idx(tmp_path / "digits-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8))
    data = load_idx_dir(f"{tmp_path}#train")
    assert data.x.shape == (3, 1, 4, 4) and data.y is None


def test_fashion_missing_names_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_DIR_ENV, str(tmp_path))
    one_line_data_error(lambda: create_dataset("fashion-mnist"), "apt-get install -y dataset-fashion-mnist")


@needs_fashion
def test_real_fashion_files():
    labels = read_idx(fashion_dir() / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    images = read_idx(fashion_dir() / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.max() == 255


@needs_fashion
def test_fashion_datasets_keep_splits_apart():
    test = create_dataset("fashion-mnist")
    train = create_dataset("fashion-mnist-train")
    assert test.x.shape == (10_000, 1, 28, 28) and train.x.shape == (60_000, 1, 28, 28)
    assert float(test.x.min()) == 0.0 and float(test.x.max()) == 1.0
    assert not torch.equal(test.x[:100], train.x[:100])
    same = create_dataset(f"idx:{fashion_dir()}")
    assert torch.equal(same.x, test.x) and torch.equal(same.y, test.y)
    wide = create_dataset("fashion-mnist-3x32").x[:4]
    assert wide.shape == (4, 3, 32, 32) and torch.equal(wide[:, 1, 2:30, 2:30], test.x[:4, 0])
