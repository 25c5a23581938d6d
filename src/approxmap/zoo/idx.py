"""A small reader for MNIST-format IDX files, and the `idx:DIR` data scheme.

IDX layout: two zero bytes, a dtype code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 per dimension,
then the values, big-endian, row-major. Files may be gzip-compressed (`.gz`).

>>> path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
>>> images = read_idx(path)  # doctest: +SKIP
>>> images.shape  # doctest: +SKIP
(10000, 28, 28)
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np
import torch

from approxmap.core.data import EvalData
from approxmap.core.exceptions import DataError
from approxmap.core.files import regular_file
from approxmap.zoo.datasets import register_data_scheme

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLIT_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def _read_bytes(path: Path) -> bytes:
    regular_file(path, "IDX file", DataError)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except EOFError:
        raise DataError(f"Cannot read {path}: the gzip stream is truncated.") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"Cannot read {path}: corrupt gzip data ({exc}).") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or `.gz`) into a numpy array of its dtype and shape.

    Raises DataError (one line, naming the file) for a missing, truncated or corrupt file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        head = raw[:4].hex() or "empty"
        raise DataError(f"{path} is not an IDX file (bad magic number 0x{head}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} is not a valid IDX file: its header ({ndim} dims) is cut short.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DataError(
            f"{path} is {what}: dimensions {dims} need {expected} data bytes, found {found}."
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def images_to_tensor(images: np.ndarray, source: str | Path) -> torch.Tensor:
    """(N, H, W) or (N, C, H, W) images as float32 (N, C, H, W); uint8 is scaled to [0, 1]."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(f"{source} must hold images (N, H, W) or (N, C, H, W); got {images.shape}.")
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return x / 255.0 if images.dtype == np.uint8 else x


def labels_to_tensor(labels: np.ndarray, count: int, source: str | Path) -> torch.Tensor:
    """Integer IDX labels as an int64 tensor; checked against the number of images."""
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != count:
        raise DataError(
            f"{source} must hold {count} integer labels (one per image); "
            f"got {labels.dtype} {labels.shape}."
        )
    return torch.from_numpy(labels.astype(np.int64))


def load_idx_pair(images: Path, labels: Path | None, name: str) -> EvalData:
    """EvalData from an images IDX file and an optional labels IDX file."""
    x = images_to_tensor(read_idx(images), images)
    y = None if labels is None else labels_to_tensor(read_idx(labels), len(x), labels)
    return EvalData(x, y, name)


def _idx_files(directory: Path, kind: str) -> list[Path]:
    pattern = re.compile(rf"{kind}[-_.]idx\d-ubyte(\.gz)?$|{kind}\.idx(\.gz)?$")
    return sorted(p for p in directory.iterdir() if p.is_file() and pattern.search(p.name))


def _pick(files: list[Path], split: str, directory: Path, kind: str) -> Path | None:
    chosen = [p for p in files if p.name.lower().startswith(SPLIT_PREFIXES[split])]
    if not chosen and len(files) == 1:
        chosen = files  # a directory with a single unnamed split
    if len(chosen) > 1:
        names = ", ".join(p.name for p in chosen)
        raise DataError(f"{directory} has several {split} {kind} IDX files ({names}); keep one.")
    return chosen[0] if chosen else None


@register_data_scheme("idx")
def load_idx_dir(spec: str) -> EvalData:
    """`idx:DIR[#train|#test]`: a directory of MNIST-format IDX files (default: the test split).

    Images are files named `*images-idx3-ubyte` (or `*images.idx`), labels `*labels-idx1-ubyte`,
    each optionally `.gz`. The test split is the pair starting with `t10k` or `test`, the train
    split the pair starting with `train`; a directory holding a single pair serves it for either
    split. Without a labels file the data is label-free.

    >>> data = load_idx_dir("/usr/share/datasets/fashion-mnist#train")  # doctest: +SKIP
    """
    path, _, split = spec.partition("#")
    split = split or "test"
    if split not in SPLIT_PREFIXES:
        raise DataError(f"Unknown split {split!r} in idx:{spec}; use #train or #test.")
    if not path.strip():
        raise DataError(f"--data idx:{spec} names no folder (e.g. idx:DIR#test).")
    directory = Path(path)
    if not directory.is_dir():
        if directory.exists():
            raise DataError(f"{directory} is not a folder (from --data idx:{spec}).")
        raise DataError(f"IDX directory not found: {directory} (from --data idx:{spec}).")
    images = _pick(_idx_files(directory, "images"), split, directory, "images")
    if images is None:
        raise DataError(
            f"No {split} images in {directory}: expected a file like "
            f"{SPLIT_PREFIXES[split][0]}-images-idx3-ubyte(.gz)."
        )
    labels = _pick(_idx_files(directory, "labels"), split, directory, "labels")
    return load_idx_pair(images, labels, f"idx:{directory.name}#{split}")
