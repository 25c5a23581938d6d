"""The trained weights shipped in the package: present, safe to load, and as accurate as their
recorded training said (which is what the README states)."""

from __future__ import annotations

import json

import pytest
import torch

import approxmap as am
from approxmap.zoo.fashion import fashion_dir
from approxmap.zoo.trained import SHIPPED, shipped_path

ARCHS = ("lenet5", "vgg-small", "resnet20")


@pytest.mark.parametrize("arch", ARCHS)
def test_weights_ship_with_their_recipe(arch):
    meta = json.loads(shipped_path(arch).with_suffix(".json").read_text())
    assert shipped_path(arch).is_file() and shipped_path(arch).parent == SHIPPED
    assert meta["arch"] == arch and meta["seed"] == 0 and meta["train_images"] == 60_000
    assert meta["recipe"]["epochs"] == len(meta["history"]) and meta["threads"] == 2
    model = am.create_model(arch)
    bare = am.create_model(arch, pretrained=False)
    assert not model.training and type(model) is type(bare)
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                    bare.state_dict().values(), strict=True))


@pytest.mark.slow
@pytest.mark.skipif(not (fashion_dir() / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_accuracy_is_the_recorded_one(arch):
    meta = json.loads(shipped_path(arch).with_suffix(".json").read_text())
    data = am.create_dataset("fashion-mnist")
    accuracy = am.Campaign(am.create_model(arch), data, run=am.Run(batch_size=500)).clean_accuracy()
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-4)
