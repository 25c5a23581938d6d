"""Subsets (`create_dataset(name, images=N)`) of every labelled registered dataset and of
npz:, idx: and folder: data are class-balanced (per-class counts differ by at most 1 where
the classes are large enough; smaller classes give all they have), deterministic, and state
their selection (`data.selection`)."""

from __future__ import annotations

import gzip
import struct
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

import approxmap as am
from approxmap.core.exceptions import DataError
from approxmap.zoo import get_dataset_info

SIZES = (20, 37, 101)


def labels_of(data) -> list[int]:
    labels = data.all_labels()
    return [int(v) for v in labels]


def check_balanced(data, whole, images: int) -> None:
    """`data` is an `images`-subset of `whole`: balanced, stated, and in data order."""
    assert len(data) == images
    have = Counter(labels_of(whole))
    got = Counter(labels_of(data))
    assert set(got) <= set(have)
    full = {c for c in have if got.get(c, 0) == have[c]}  # classes that gave all they have
    open_counts = [got.get(c, 0) for c in have if c not in full]
    if open_counts:  # the others hold `low` or `low + 1`, and no class holds more
        low = min(open_counts)
        assert all(got.get(c, 0) <= low + 1 for c in have), (got, have)
    assert f"{images} of {len(whole)} images, class-balanced" in data.selection
    low, high = min(got[c] for c in have), max(got[c] for c in have)
    assert (f"{low} per class" if low == high else f"{low}-{high} per class") in data.selection


def same_samples(a, b) -> bool:
    if a.x is not None:
        labels = (a.y is None and b.y is None) or torch.equal(a.y, b.y)
        return torch.equal(a.x, b.x) and labels and a.selection == b.selection
    return a.files == b.files and a.labels == b.labels and a.selection == b.selection


def registered_labelled() -> list[str]:
    return [name for name in am.list_datasets() if get_dataset_info(name).num_classes]


@pytest.mark.parametrize("name", registered_labelled())
def test_every_labelled_registered_dataset(name):
    try:
        whole = am.create_dataset(name)
    except DataError as exc:  # e.g. Fashion-MNIST not installed
        pytest.skip(f"{name} is not installed: {exc}")
    assert whole.selection == f"all {len(whole)} images"
    data = am.create_dataset(name, images=SIZES[1])  # a second load: the same samples
    assert same_samples(data, whole.subset(SIZES[1]))
    for images in SIZES:
        check_balanced(whole.subset(images), whole, images)


def test_label_free_registered_data_is_a_seeded_sample():
    unlabelled = [n for n in am.list_datasets() if not get_dataset_info(n).num_classes]
    assert unlabelled
    for name in unlabelled:
        try:
            whole = am.create_dataset(name)
        except DataError as exc:
            pytest.skip(f"{name} is not installed: {exc}")
        first = whole.subset(13)
        assert "13 of" in first.selection and "seeded random sample" in first.selection
        assert same_samples(first, whole.subset(13))


@pytest.fixture
def skewed(tmp_path, data_npz):
    """mnist60 with classes of 1, 2, 6, ... samples and labels sorted (the worst order)."""
    arrays = np.load(data_npz)
    x, y = arrays["x"], arrays["y"]
    keep = np.concatenate([np.flatnonzero(y == 0)[:1], np.flatnonzero(y == 1)[:2],
                           np.flatnonzero(y >= 2)])
    order = keep[np.argsort(y[keep], kind="stable")]
    np.savez(tmp_path / "skewed.npz", x=x[order], y=y[order])
    return tmp_path / "skewed.npz"


@pytest.mark.parametrize("images", [10, 25, 40])
def test_npz_data(data_npz, skewed, images):
    for path in (data_npz, skewed):
        whole = am.create_dataset(f"npz:{path}")
        data = am.create_dataset(f"npz:{path}", images=images)
        check_balanced(data, whole, images)
        assert same_samples(data, am.create_dataset(f"npz:{path}", images=images))
    counts = Counter(labels_of(am.create_dataset(f"npz:{skewed}", images=images)))
    assert counts[0] == 1 and counts[1] == min(2, counts[2])  # small classes give all they have


def write_idx(path, array: np.ndarray, code: int) -> None:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(array.dtype.newbyteorder(">")).tobytes()))


def test_idx_data(tmp_path, data_npz):
    arrays = np.load(data_npz)
    order = np.argsort(arrays["y"], kind="stable")  # sorted by label, like many datasets
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz",
              (arrays["x"][order, 0] * 255).astype(np.uint8), 0x08)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", arrays["y"][order].astype(np.uint8), 0x08)
    whole = am.create_dataset(f"idx:{tmp_path}")
    for images in (10, 23, 59):
        data = am.create_dataset(f"idx:{tmp_path}", images=images)
        check_balanced(data, whole, images)
        assert same_samples(data, am.create_dataset(f"idx:{tmp_path}", images=images))


def test_folder_data(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"cat": 7, "dog": 5, "eel": 2, "fox": 9}
    for name, count in sizes.items():
        (tmp_path / name).mkdir()
        for i in range(count):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i:02d}.png")
    whole = am.create_dataset(f"folder:{tmp_path}")
    for images in (4, 9, 15, 22):
        data = am.create_dataset(f"folder:{tmp_path}", images=images)
        check_balanced(data, whole, images)
        assert same_samples(data, am.create_dataset(f"folder:{tmp_path}", images=images))
    small = Counter(labels_of(am.create_dataset(f"folder:{tmp_path}", images=15)))
    assert small[2] == 2 and max(small.values()) - min(v for k, v in small.items() if k != 2) <= 1
