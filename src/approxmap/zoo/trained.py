"""The zoo entries of the models trained by approxmap, their shipped weights and the cache.

lenet5, vgg-small and resnet20 ship trained weights inside the package
(`zoo/weights/<arch>-fashion-mnist.safetensors`, with a JSON holding the recipe, the seed,
the thread count and the per-epoch accuracies), made by `approxmap train --arch ARCH` with
seed 0 and 2 threads; `approxmap train` reproduces them (bit-identical for the same seed and
thread count). Architectures without shipped weights (vgg16-cifar) load the checkpoint that
`approxmap train` wrote to the cache: `$APPROXMAP_CACHE_DIR`, else
`$XDG_CACHE_HOME/approxmap`, else `~/.cache/approxmap`; when it is missing the error gives
the command that trains it.

>>> checkpoint_path("vgg16-cifar", "fashion-mnist-3x32")  # doctest: +SKIP
PosixPath('/home/me/.cache/approxmap/vgg16-cifar-fashion-mnist-3x32.safetensors')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from approxmap.core.exceptions import CheckpointError
from approxmap.zoo.archs import ARCHS, build_arch
from approxmap.zoo.checkpoints import load_weights_into
from approxmap.zoo.models import register_model

CACHE_ENV = "APPROXMAP_CACHE_DIR"
TRAIN_DATA = "fashion-mnist"


def cache_dir(override: str | Path | None = None) -> Path:
    """The checkpoint cache: `override`, `$APPROXMAP_CACHE_DIR`, `$XDG_CACHE_HOME/approxmap`
    or `~/.cache/approxmap`, in that order (not created here)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "approxmap"
    return Path.home() / ".cache" / "approxmap"


def checkpoint_path(arch: str, data: str = TRAIN_DATA, directory: str | Path | None = None) -> Path:
    """Path of the safetensors checkpoint of `arch` trained on `data`."""
    return cache_dir(directory) / f"{arch}-{data}.safetensors"


def metadata_path(arch: str, data: str = TRAIN_DATA, directory: str | Path | None = None) -> Path:
    """Path of the JSON written next to the checkpoint (recipe, seed, accuracies, versions)."""
    return checkpoint_path(arch, data, directory).with_suffix(".json")


def read_metadata(arch: str, data: str = TRAIN_DATA, directory: str | Path | None = None) -> dict:
    """The checkpoint's metadata, or {} when absent or unreadable."""
    try:
        return json.loads(metadata_path(arch, data, directory).read_text())
    except (OSError, ValueError):
        return {}


def train_command(arch: str, data: str = TRAIN_DATA) -> str:
    return f"approxmap train --arch {arch} --data {data}"


SHIPPED = Path(__file__).parent / "weights"


def shipped_path(arch: str, data: str = TRAIN_DATA) -> Path:
    """Where the package keeps the trained weights of `arch` (may not exist)."""
    return SHIPPED / f"{arch}-{data}.safetensors"


def load_trained(arch: str, data: str = TRAIN_DATA,
                 directory: str | Path | None = None) -> nn.Module:
    """Build `arch` with its shipped weights, else its cached checkpoint.

    Raises:
        CheckpointError: neither exists (the message gives the command that trains it).
    """
    path = shipped_path(arch, data)
    if not path.is_file():
        path = checkpoint_path(arch, data, directory)
    if not path.is_file():
        raise CheckpointError(f"No trained checkpoint for {arch!r} at {path}. "
                              f"Train it with: {train_command(arch, data)}")
    return load_weights_into(build_arch(arch), path)


def shipped_metadata(arch: str, data: str = TRAIN_DATA) -> dict:
    """The JSON shipped beside the weights (recipe, seed, accuracies), or the cache's."""
    try:
        return json.loads(shipped_path(arch, data).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return read_metadata(arch, data)


def _accuracy_text(arch: str, eval_data: str) -> str:
    meta = shipped_metadata(arch)
    acc = meta.get("test_accuracy")
    if not isinstance(acc, (int, float)):
        return f"not trained yet (run: {train_command(arch)})"
    epochs, seed, images = meta.get("epochs", "?"), meta.get("seed", "?"), meta.get("train_images")
    subset = f", first {images} training images" if isinstance(images, int) and images < 60_000 else ""
    return f"{100 * acc:.2f}% top-1 on {eval_data} ({epochs} epochs, seed {seed}{subset})"


def _register(arch: str, eval_data: str) -> None:
    info = ARCHS.get(arch)
    register_model(
        arch,
        input_shape=info.input_shape,
        num_classes=info.num_classes,
        normalization=info.normalization,
        source=f"trained by approxmap on fashion-mnist-train (`{train_command(arch)}`, seed 0)",
        license="MIT (approxmap code and Fashion-MNIST data)",
        clean_accuracy=_accuracy_text(arch, eval_data),
        description=info.description,
        datasets=(eval_data,),
        architecture=lambda: build_arch(arch),
    )(lambda: load_trained(arch))


for _arch, _data in (("lenet5", "fashion-mnist"), ("vgg-small", "fashion-mnist"),
                     ("resnet20", "fashion-mnist"), ("vgg16-cifar", "fashion-mnist-3x32")):
    _register(_arch, _data)
