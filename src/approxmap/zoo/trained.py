"""The checkpoint cache and the zoo entries of the models trained with `approxmap train`.

Checkpoints live in `$APPROXMAP_CACHE_DIR`, else `$XDG_CACHE_HOME/approxmap`, else
`~/.cache/approxmap`, as `<arch>-<data>.safetensors` plus `<arch>-<data>.json` (recipe,
seed, accuracies, versions). `create_model("lenet5")` loads the cached checkpoint; when it is
missing the error gives the command that trains it.

>>> checkpoint_path("lenet5")  # doctest: +SKIP
PosixPath('/home/me/.cache/approxmap/lenet5-fashion-mnist.safetensors')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from approxmap.exceptions import CheckpointError
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


def load_trained(arch: str, data: str = TRAIN_DATA,
                 directory: str | Path | None = None) -> nn.Module:
    """Build `arch` and load its cached checkpoint; if absent, CheckpointError with the command."""
    path = checkpoint_path(arch, data, directory)
    if not path.is_file():
        raise CheckpointError(f"No trained checkpoint for {arch!r} at {path}. "
                              f"Train it with: {train_command(arch, data)}")
    return load_weights_into(build_arch(arch), path)


def _accuracy_text(arch: str, eval_data: str) -> str:
    meta = read_metadata(arch)
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
        source=f"trained locally on fashion-mnist-train by `{train_command(arch)}` (cached)",
        license="MIT (approxmap code and Fashion-MNIST data)",
        clean_accuracy=_accuracy_text(arch, eval_data),
        description=info.description,
        datasets=(eval_data,),
    )(lambda: load_trained(arch))


for _arch, _data in (("lenet5", "fashion-mnist"), ("vgg-small", "fashion-mnist"),
                     ("resnet20", "fashion-mnist"), ("vgg16-cifar", "fashion-mnist-3x32")):
    _register(_arch, _data)
