"""The `photos` dataset and the `folder:DIR` data scheme."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.zoo import create_dataset
from approxmap.zoo.folder import load_folder
from approxmap.zoo.photos import PHOTOS

needs_photos = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None or importlib.util.find_spec("sklearn") is None,
    reason="photos absent: pip install --no-deps scikit-image==0.26.0 scikit-learn==1.9.1",
)


@needs_photos
def test_photos_are_deterministic_interleaved_views():
    data = create_dataset("photos")
    n = len(PHOTOS)
    assert data.x.shape == (332, 3, 224, 224) and data.y is None and not data.labeled
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    first = data.x[:n]
    assert all(not torch.equal(first[i], first[j]) for i in range(n) for j in range(i))
    assert torch.equal(data.x[n:2 * n], first.flip(-1))  # then their mirror images
    some = create_dataset("photos", images=2 * n)  # label-free: a seeded random sample
    assert torch.equal(some.x, create_dataset("photos", images=2 * n).x)
    assert "seeded random" in some.selection and len(some) == 2 * n


def write_png(path, size, color):
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def image_folder(tmp_path):
    for name, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / name).mkdir()
        for i, size in enumerate([(300, 260), (256, 400), (224, 224)]):
            write_png(tmp_path / name / f"{i}.png", size, color)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_labels_by_sorted_name(image_folder):
    data = create_dataset(f"folder:{image_folder}")
    assert len(data) == 6 and data.labeled
    batches = list(data.batches(4))
    assert [len(x) for x, _ in batches] == [4, 2]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == (6, 3, 224, 224) and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.all(x[:3, 0] == 1.0) and torch.all(x[:3, 2] == 0.0)  # red cats
    assert torch.all(x[3:, 2] == 1.0)  # blue dogs
    assert data.sample(2).shape == (2, 3, 224, 224)


def test_folder_subset_and_mapping_file(image_folder):
    (image_folder / "classes.txt").write_text("dog 7\ncat 3\n")
    data = create_dataset(f"folder:{image_folder}", images=4)
    assert len(data) == 4
    assert torch.cat([y for _, y in data.batches(64)]).tolist() == [3, 3, 7, 7]  # balanced
    mapping = image_folder / "other.txt"
    mapping.write_text("zebra\ndog\ncat\n")
    labels = torch.cat([y for _, y in load_folder(f"{image_folder}#{mapping}").batches(64)])
    assert labels.tolist() == [2, 2, 2, 1, 1, 1]
    with pytest.raises(InvalidParameterError):
        data.subset(0)


def test_folder_without_subfolders_is_label_free(tmp_path):
    write_png(tmp_path / "a.jpg", (500, 300), (10, 20, 30))
    data = load_folder(str(tmp_path))
    (x, y), = list(data.batches(8))
    assert y is None and not data.labeled and x.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), np.array([10, 20, 30]) / 255, atol=0.02)


def test_folder_errors(image_folder, tmp_path):
    with pytest.raises(DataError, match="Image folder not found"):
        load_folder(str(tmp_path / "missing"))
    (image_folder / "classes.txt").write_text("cat\n")
    with pytest.raises(DataError, match="missing from .*classes.txt: dog"):
        load_folder(str(image_folder))
    (image_folder / "classes.txt").write_text("cat 1 2\n")
    with pytest.raises(DataError, match="line 1"):
        load_folder(str(image_folder))
    (image_folder / "classes.txt").unlink()
    (image_folder / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    data = load_folder(str(image_folder))
    with pytest.raises(DataError, match="Cannot decode image .*broken.png"):
        list(data.batches(64))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="No images"):
        load_folder(str(empty))
