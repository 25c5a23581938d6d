"""`photos`: real photographs from scikit-image and scikit-learn, as 3x224x224 inputs in [0, 1].

The files are located inside the installed packages without importing them and decoded with
Pillow. Each photo is expanded by deterministic square crops (full height at three positions,
then 3x3 grids at 75% and 50% of the shorter side) and their horizontal mirror images. The
order interleaves the photos, so the first 8 inputs are the centre crop of each photo
(chelsea, coffee, rocket, astronaut, motorcycle, hubble, china, flower) and any prefix
(`--images N`) covers all of them. No labels: use the label-free metrics.

>>> data = create_dataset("photos", images=8)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from approxmap.core.data import EvalData
from approxmap.core.exceptions import DataError
from approxmap.zoo.datasets import register_dataset
from approxmap.zoo.packages import package_file

SIZE = 224
PHOTOS = (  # (package, file inside the package, name)
    ("skimage", "data/chelsea.png", "chelsea"),
    ("skimage", "data/coffee.png", "coffee"),
    ("skimage", "data/rocket.jpg", "rocket"),
    ("skimage", "data/astronaut.png", "astronaut"),
    ("skimage", "data/motorcycle_left.png", "motorcycle"),
    ("skimage", "data/hubble_deep_field.jpg", "hubble"),
    ("sklearn", "datasets/images/china.jpg", "china"),
    ("sklearn", "datasets/images/flower.jpg", "flower"),
)
INSTALL = {"skimage": "pip install --no-deps scikit-image==0.26.0",
           "sklearn": "pip install --no-deps scikit-learn==1.9.1"}
SCALES = (1.0, 0.75, 0.5)
POSITIONS = ((0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0),
             (0.5, 0.0), (0.5, 1.0), (0.0, 0.5), (1.0, 0.5))


def crop_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The distinct square crop boxes of one photo, centre crop of the full height first."""
    boxes: list[tuple[int, int, int, int]] = []
    for scale in SCALES:
        side = round(min(width, height) * scale)
        for fx, fy in POSITIONS:
            left, top = round((width - side) * fx), round((height - side) * fy)
            box = (left, top, left + side, top + side)
            if box not in boxes:
                boxes.append(box)
    return boxes


def _views(image: Image.Image) -> list[np.ndarray]:
    views = []
    for box in crop_boxes(*image.size):
        crop = np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=box))
        views += [crop, crop[:, ::-1]]
    return views


def load_photos() -> EvalData:
    """All views of all photos, interleaved photo by photo, as float32 (N, 3, 224, 224)."""
    per_photo = []
    for package, relative, _ in PHOTOS:
        path = package_file(package, relative, INSTALL[package], DataError)
        try:
            with Image.open(path) as image:
                per_photo.append(_views(image.convert("RGB")))
        except OSError as exc:
            raise DataError(f"Cannot decode photo {path}: {exc}") from None
    longest = max(len(v) for v in per_photo)
    ordered = [views[k] for k in range(longest) for views in per_photo if k < len(views)]
    x = torch.from_numpy(np.stack(ordered)).permute(0, 3, 1, 2).float().div_(255.0)
    return EvalData(x.contiguous(), None, "photos")


@register_dataset(
    "photos",
    input_shape=(3, SIZE, SIZE),
    num_classes=None,
    source="photos shipped in scikit-image 0.26 (skimage/data) and scikit-learn 1.9 "
           "(load_sample_images), located without importing them",
    license="chelsea, coffee: CC0; rocket, astronaut, hubble: public domain; motorcycle: "
            "Middlebury 2014 stereo benchmark (as shipped in scikit-image, BSD-3); "
            "china.jpg, flower.jpg: CC BY 2.0",
    description="8 real photos x deterministic crops and flips = 332 label-free 224x224 inputs",
)
def photos() -> EvalData:
    return load_photos()
