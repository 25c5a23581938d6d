"""`folder:DIR`: an ImageNet-style image folder, decoded lazily with Pillow.

DIR holds one subfolder per class; labels are the subfolders' positions in sorted order,
unless a mapping file says otherwise: `DIR/classes.txt`, or any file given as
`folder:DIR#MAPFILE`, with one line per class, `NAME` (label = line number, from 0) or
`NAME LABEL` (e.g. `n01440764 0` to keep ImageNet's indices with only some classes
present). A DIR of images without subfolders is label-free. Each image is converted to RGB,
resized so its shorter side is 256, centre-cropped to 224x224 and scaled to [0, 1]; the
model normalizes its own input.

>>> data = create_dataset("folder:/data/imagenet/val", images=1000)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from approxmap.core.data import Batch, EvalData
from approxmap.core.exceptions import DataError
from approxmap.core.files import read_text, regular_file
from approxmap.zoo.datasets import register_data_scheme

RESIZE, CROP = 256, 224
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def decode_image(path: Path) -> torch.Tensor:
    """One image as float32 3x224x224 in [0, 1]: shorter side to 256, centre crop 224."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            scale = RESIZE / min(width, height)
            size = (max(CROP, round(width * scale)), max(CROP, round(height * scale)))
            image = image.resize(size, Image.Resampling.BILINEAR)
            left, top = (size[0] - CROP) // 2, (size[1] - CROP) // 2
            array = np.asarray(image.crop((left, top, left + CROP, top + CROP)))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"Cannot decode image {path}: {exc}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


class FolderData(EvalData):
    """EvalData over image files, decoded batch by batch (nothing is held in memory)."""

    def __init__(self, files: list[Path], labels: list[int] | None, name: str,
                 selection: str = "") -> None:
        if not files:
            raise DataError(f"No images ({', '.join(sorted(EXTENSIONS))}) found for {name}.")
        self.x, self.y, self.name, self._batches = None, None, name, None
        self.files, self.labels = list(files), labels
        self.selection = selection or f"all {len(self.files)} images"

    def __len__(self) -> int:
        return len(self.files)

    @property
    def labeled(self) -> bool:
        return self.labels is not None

    def sample(self, n: int = 2) -> torch.Tensor:
        return torch.stack([decode_image(p) for p in self.files[:n]])

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self.files), batch_size):
            end = start + batch_size
            x = torch.stack([decode_image(p) for p in self.files[start:end]])
            y = None if self.labels is None else torch.tensor(self.labels[start:end])
            yield x, y

    def _iter_given(self) -> Iterator[Batch]:
        yield from self.batches(64)

    def all_labels(self) -> torch.Tensor | None:
        return None if self.labels is None else torch.tensor(self.labels)

    def _select(self, index: torch.Tensor, selection: str) -> EvalData:
        picked = index.tolist()
        labels = None if self.labels is None else [self.labels[i] for i in picked]
        return FolderData([self.files[i] for i in picked], labels, self.name, selection)


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def read_mapping(path: Path) -> dict[str, int]:
    """Class mapping file: `NAME` (label = line number) or `NAME LABEL` per non-empty line."""
    mapping: dict[str, int] = {}
    text = read_text(path, "class mapping file", DataError)
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    for number, parts in enumerate(lines):
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
            raise DataError(f"{path} line {number + 1}: expected 'NAME' or 'NAME LABEL', "
                            f"got {' '.join(parts)!r}.")
        mapping[parts[0]] = int(parts[1]) if len(parts) == 2 else number
    return mapping


def _class_labels(classes: list[Path], mapping_file: Path | None) -> list[int]:
    if mapping_file is None:
        return list(range(len(classes)))
    mapping = read_mapping(mapping_file)
    unknown = [c.name for c in classes if c.name not in mapping]
    if unknown:
        raise DataError(f"Class folders missing from {mapping_file}: {', '.join(unknown[:5])}.")
    return [mapping[c.name] for c in classes]


@register_data_scheme("folder")
def load_folder(spec: str) -> EvalData:
    """`folder:DIR[#MAPFILE]`: class subfolders of images (see the module docstring)."""
    path, _, mapfile = spec.partition("#")
    if not path.strip():
        raise DataError(f"--data folder:{spec} names no folder (e.g. folder:DIR).")
    directory = Path(path)
    if not directory.is_dir():
        if directory.exists():
            raise DataError(f"{directory} is not a folder (from --data folder:{spec}).")
        raise DataError(f"Image folder not found: {directory} (from --data folder:{spec}).")
    mapping_file = Path(mapfile) if mapfile else directory / "classes.txt"
    if mapfile:
        regular_file(mapping_file, "class mapping file", DataError)
    classes = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    name = f"folder:{directory.name}"
    if not classes:
        return FolderData(_images_in(directory), None, name)
    labels = _class_labels(classes, mapping_file if mapping_file.is_file() else None)
    files, ys = [], []
    for label, folder in zip(labels, classes, strict=True):
        images = _images_in(folder)
        files += images
        ys += [label] * len(images)
    return FolderData(files, ys, name)
