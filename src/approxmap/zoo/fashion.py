"""Fashion-MNIST (Xiao et al. 2017) from Debian's package dataset-fashion-mnist.

The 70,000 real 28x28 grayscale images: `fashion-mnist` is the test split (10,000),
`fashion-mnist-train` the training split (60,000), `fashion-mnist-3x32` the test split padded
to 32x32 and repeated to 3 channels (for CIFAR-shaped models such as vgg16-cifar).

>>> data = create_dataset("fashion-mnist")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from approxmap.core.data import EvalData
from approxmap.core.exceptions import DataError
from approxmap.zoo.datasets import register_dataset
from approxmap.zoo.idx import load_idx_pair

FASHION_DIR_ENV = "APPROXMAP_FASHION_MNIST_DIR"
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "sudo apt-get install -y dataset-fashion-mnist"
FILES = {
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def fashion_dir() -> Path:
    """Where the IDX files are: `$APPROXMAP_FASHION_MNIST_DIR`, else Debian's location."""
    return Path(os.environ.get(FASHION_DIR_ENV) or DEFAULT_DIR)


def load_fashion_mnist(split: str = "test") -> EvalData:
    """One split ("test" or "train") of Fashion-MNIST, images 1x28x28 in [0, 1], labels 0-9."""
    directory = fashion_dir()
    paths = [directory / name for name in FILES[split]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST files missing from {directory} ({', '.join(missing)}). "
            f"Install them with: {INSTALL_HINT}"
        )
    name = "fashion-mnist" + ("-train" if split == "train" else "")
    data = load_idx_pair(paths[0], paths[1], name)
    if data.x.shape[1:] != (1, 28, 28) or int(data.y.max()) > 9:
        raise DataError(f"{paths[0]} is not Fashion-MNIST: images {tuple(data.x.shape)}.")
    return data


def to_3x32(x: torch.Tensor) -> torch.Tensor:
    """1x28x28 images -> 3x32x32: zero-pad 2 pixels on each side, repeat the gray channel."""
    return F.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()


_COMMON = dict(
    num_classes=10,
    source=f"Debian package dataset-fashion-mnist ({DEFAULT_DIR})",
    license="MIT (Fashion-MNIST, Zalando Research)",
)


@register_dataset("fashion-mnist", input_shape=(1, 28, 28), **_COMMON,
                  description="test split, 10,000 images in [0,1]; classes: " + ", ".join(CLASSES))
def fashion_mnist() -> EvalData:
    return load_fashion_mnist("test")


@register_dataset("fashion-mnist-train", input_shape=(1, 28, 28), **_COMMON,
                  description="training split, 60,000 images in [0,1]")
def fashion_mnist_train() -> EvalData:
    return load_fashion_mnist("train")


@register_dataset("fashion-mnist-3x32", input_shape=(3, 32, 32), **_COMMON,
                  description="test split padded to 32x32, gray repeated to 3 channels")
def fashion_mnist_3x32() -> EvalData:
    data = load_fashion_mnist("test")
    return EvalData(to_3x32(data.x), data.y, "fashion-mnist-3x32")
