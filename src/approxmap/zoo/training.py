"""Deterministic CPU training of the zoo architectures on Fashion-MNIST, cached as safetensors.

Every random choice (weight init, shuffling, flips) comes from one `torch.Generator` seeded
with `seed`, never the global RNG, and deterministic algorithms are enforced while training:
the same seed, data and thread count give bit-identical weights.

Recipes (all: SGD, Nesterov momentum 0.9, cross-entropy, one-cycle lr schedule with 15%
linear warm-up then cosine decay, batch size 128, He-normal conv init):

=============  ======  =======  ======  ===============================
arch           epochs  peak lr  wd      augmentation
=============  ======  =======  ======  ===============================
lenet5         15      0.05     5e-4    none
vgg-small      8       0.1      5e-4    random horizontal flip
resnet20       8       0.1      5e-4    random horizontal flip
vgg16-cifar    20      0.05     5e-4    random horizontal flip (3x32x32)
=============  ======  =======  ======  ===============================

>>> result = train("lenet5", quiet=True)  # doctest: +SKIP
>>> result.test_accuracy  # doctest: +SKIP
0.90
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, InvalidParameterError
from approxmap.zoo.archs import ARCHS
from approxmap.zoo.fashion import load_fashion_mnist, to_3x32
from approxmap.zoo.trained import TRAIN_DATA, cache_dir, checkpoint_path, metadata_path


@dataclass(frozen=True)
class Recipe:
    """How one architecture is trained (see the table in the module docstring)."""

    epochs: int
    lr: float
    weight_decay: float = 5e-4
    batch_size: int = 128
    momentum: float = 0.9
    warmup: float = 0.15
    flip: bool = False
    schedule: str = "onecycle"  # or "cosine": cosine annealing from lr, no warm-up


RECIPES = {
    "lenet5": Recipe(epochs=15, lr=0.05),
    "vgg-small": Recipe(epochs=8, lr=0.1, flip=True),
    "resnet20": Recipe(epochs=8, lr=0.1, flip=True),
    "vgg16-cifar": Recipe(epochs=20, lr=0.05, flip=True),
}


@dataclass
class TrainResult:
    """A trained model and its record (also written as JSON next to the checkpoint)."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    checkpoint: Path | None = None

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_accuracy"] if self.history else float("nan")


def build_seeded(arch: str, generator: torch.Generator) -> nn.Module:
    """A fresh `arch` model initialized from `generator` only (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        model = ARCHS.get(arch).builder()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.ones_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    return model


def _batches(data: EvalData, recipe: Recipe, generator: torch.Generator) -> Iterator[tuple]:
    n = len(data.x)
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, recipe.batch_size):
        index = order[start:start + recipe.batch_size]
        if len(index) < 2:  # BatchNorm cannot train on a single sample
            continue
        x = data.x[index]
        if recipe.flip:
            flip = torch.rand(len(index), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        yield x.contiguous(memory_format=torch.channels_last), data.y[index]


@torch.no_grad()
def evaluate(model: nn.Module, data: EvalData, batch_size: int = 500) -> float:
    """Top-1 accuracy of `model` (put in eval mode) on labeled `data`."""
    model.eval()
    correct = 0
    for x, y in data.batches(batch_size):
        logits = model(x.contiguous(memory_format=torch.channels_last))
        correct += int((logits.argmax(1) == y).sum())
    return correct / len(data)


def _train_epoch(model, optimizer, scheduler, batches, bar) -> tuple[float, float]:
    model.train()
    seen = correct = 0
    loss_sum = 0.0
    for x, y in batches:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        seen += len(y)
        correct += int((logits.argmax(1) == y).sum())
        loss_sum += float(loss.detach()) * len(y)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _optimizer(model: nn.Module, recipe: Recipe, steps: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=True, weight_decay=recipe.weight_decay)
    if recipe.schedule == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=max(steps, 1), pct_start=recipe.warmup,
        anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e3,
    )
    return optimizer, scheduler


def fit(model: nn.Module, train_data: EvalData, recipe: Recipe, generator: torch.Generator,
        test_data: EvalData | None = None, quiet: bool = True, desc: str = "train") -> list[dict]:
    """Train `model` in place with `recipe` (SGD, seeded shuffling and flips from `generator`,
    deterministic algorithms); returns one history entry per epoch.

    Raises:
        InvalidParameterError: the data is not in-memory and labeled.
    """
    if train_data.x is None or train_data.y is None:
        raise InvalidParameterError("Training needs in-memory labeled data.")
    model.to(memory_format=torch.channels_last)
    steps_per_epoch = sum(1 for s in range(0, len(train_data), recipe.batch_size)
                          if len(train_data) - s >= 2)
    optimizer, scheduler = _optimizer(model, recipe, recipe.epochs * steps_per_epoch)
    history = []
    with _deterministic(), tqdm(total=recipe.epochs * steps_per_epoch, disable=quiet,
                                desc=desc, unit="batch", leave=False) as bar:
        for epoch in range(1, recipe.epochs + 1):
            started = time.perf_counter()
            batches = _batches(train_data, recipe, generator)
            loss, train_acc = _train_epoch(model, optimizer, scheduler, batches, bar)
            entry = dict(epoch=epoch, train_loss=round(loss, 5), train_accuracy=train_acc)
            if test_data is not None:
                entry["test_accuracy"] = evaluate(model, test_data)
            entry["seconds"] = round(time.perf_counter() - started, 2)
            history.append(entry)
            if not quiet:
                test = (f", test acc {100 * entry['test_accuracy']:.2f}%"
                        if test_data is not None else "")
                bar.write(f"epoch {epoch}/{recipe.epochs}: loss {loss:.4f}, "
                          f"train acc {100 * train_acc:.2f}%{test}")
    model.to(memory_format=torch.contiguous_format).eval()
    return history


def train_model(arch: str, train_data: EvalData, test_data: EvalData, recipe: Recipe,
                seed: int = 0, quiet: bool = False) -> TrainResult:
    """Train a fresh `arch` with `recipe` on in-memory data; test accuracy after every epoch."""
    generator = torch.Generator().manual_seed(seed)
    model = build_seeded(arch, generator)
    history = fit(model, train_data, recipe, generator, test_data, quiet, f"train {arch}")
    return TrainResult(model=model, history=history)


def _training_splits(arch: str, data: str, train_images: int | None):
    if data != TRAIN_DATA:
        raise InvalidParameterError(f"Training data must be {TRAIN_DATA!r}; got data={data!r}.")
    train_data = load_fashion_mnist("train").subset(train_images)
    test_data = load_fashion_mnist("test")
    if ARCHS.get(arch).input_shape == (3, 32, 32):
        train_data = EvalData(to_3x32(train_data.x), train_data.y, train_data.name)
        test_data = EvalData(to_3x32(test_data.x), test_data.y, test_data.name)
    return train_data, test_data


def train(arch: str, data: str = TRAIN_DATA, *, epochs: int | None = None, seed: int = 0,
          cache: str | Path | None = None, quiet: bool = False,
          train_images: int | None = None) -> TrainResult:
    """Train `arch` on Fashion-MNIST with its recipe and write the checkpoint to the cache.

    `epochs` overrides the recipe; `train_images` trains on the first N training images only
    (quick runs). The checkpoint and its JSON are written atomically.

    >>> train("lenet5", epochs=1, train_images=2000, cache="/tmp/cache")  # doctest: +SKIP
    """
    ARCHS.get(arch)  # unknown arch: close-match error before anything else
    if epochs is not None and epochs < 1:
        raise InvalidParameterError(f"epochs must be an integer >= 1. Got epochs={epochs}.")
    recipe = RECIPES[arch] if epochs is None else replace(RECIPES[arch], epochs=epochs)
    directory = ensure_writable(cache_dir(cache))
    train_data, test_data = _training_splits(arch, data, train_images)
    started = time.perf_counter()
    result = train_model(arch, train_data, test_data, recipe, seed=seed, quiet=quiet)
    seconds = time.perf_counter() - started
    result.metadata = _metadata(arch, data, recipe, seed, result.history, seconds, len(train_data))
    result.checkpoint = save_checkpoint(result.model, result.metadata, arch, data, directory)
    return result


def _metadata(arch, data, recipe, seed, history, seconds, train_images) -> dict:
    from approxmap.core.version import __version__

    return dict(
        arch=arch, data=data, recipe=asdict(recipe), seed=seed, epochs=recipe.epochs,
        train_images=train_images, history=history,
        test_accuracy=history[-1]["test_accuracy"] if history else None,
        train_seconds=round(seconds, 1), threads=torch.get_num_threads(),
        torch_version=torch.__version__, approxmap_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def ensure_writable(directory: Path) -> Path:
    """Create `directory` if needed and check that files can be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        raise ApproxmapError(
            f"Cannot write to the cache directory {directory} ({exc.strerror or exc}). "
            "Pass --cache-dir DIR or set APPROXMAP_CACHE_DIR."
        ) from None
    return directory


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(model: nn.Module, metadata: dict, arch: str, data: str,
                    directory: str | Path) -> Path:
    """Write `<arch>-<data>.safetensors` and its JSON atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = checkpoint_path(arch, data, directory)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    try:
        _atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"arch": arch}))
        text = json.dumps(metadata, indent=2)
        _atomic_write(metadata_path(arch, data, directory), lambda tmp: Path(tmp).write_text(text))
    except OSError as exc:
        raise ApproxmapError(f"Cannot write checkpoint {path}: {exc.strerror or exc}.") from None
    return path
