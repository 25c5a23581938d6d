"""Masking equals physical removal; units follow residual coupling; MACs match flop_counter."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.core.layers import count_macs
from approxmap.pruning import (
    PruningPlan,
    choose,
    mask_injections,
    mask_scenario,
    plan_by_layer_ratios,
    plan_by_ratio,
    prune_model,
    pruning_units,
    read_points,
    unit_scores,
)
from approxmap.zoo.archs import build_arch

pytest.importorskip("torch_pruning", reason="Torch-Pruning not installed: "
                    "pip install --no-deps torch-pruning==1.6.1")


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm a non-trivial affine shift and running stats (eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.normal_(1, 0.2, generator=gen)
                m.bias.normal_(0, 0.3, generator=gen)
    return model.eval()


def l1_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().abs().sum((1, 2, 3)) for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d)}


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    return randomize_bn(build_arch("vgg-small"))


def masked_logits(model, units, plan, x):
    with am.Injector(model, mask_injections(units, plan, read_points(model)), seed=0) as run:
        return run(x)


@pytest.mark.parametrize("arch", ["vgg-small", "resnet20"])
def test_masked_equals_physical_logits(arch):
    model = randomize_bn(build_arch(arch), seed=1)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    units = pruning_units(model, x)
    plan = plan_by_ratio(units, unit_scores(units, l1_scores(model)), 0.5)
    pruned = prune_model(model, plan, x, units)
    with torch.no_grad():
        masked, physical, full = masked_logits(model, units, plan, x), pruned(x), model(x)
    assert torch.allclose(masked, physical, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(full, physical, atol=1e-3)  # the plan did change the network
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_masked_equals_physical_accuracy_on_residual_fixture(residual_model, residual_data):
    x = residual_data.sample(1)
    units = pruning_units(residual_model, x)
    assert {u.name: u.convs for u in units}["stem"] == ("stem", "conv2")  # the residual add
    plan = PruningPlan({"stem": (1, 5), "conv1": (0, 2, 3)})
    pruned = prune_model(residual_model, plan, x, units)
    campaign = am.Campaign(residual_model, residual_data,
                           [mask_scenario(units, plan, read_points(residual_model))],
                           am.Run(trials=1))
    campaign.run()
    masked = campaign.summaries()[0].accuracy
    assert masked == am.Campaign(pruned, residual_data).clean_accuracy()
    with torch.no_grad():
        logits = masked_logits(residual_model, units, plan, residual_data.x)
        assert torch.allclose(logits, pruned(residual_data.x), atol=1e-5)


def test_zeroing_weights_alone_is_not_removal(vgg):
    """BatchNorm's shift survives zeroed weights: masking must act after the BatchNorm."""
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    units = pruning_units(vgg, x)
    plan = PruningPlan({"features.conv2_1": (0, 1, 2, 3)})
    zeroed = copy.deepcopy(vgg)
    with torch.no_grad():
        zeroed.features.conv2_1.weight[:4] = 0
        assert not torch.allclose(zeroed(x), prune_model(vgg, plan, x, units)(x), atol=1e-4)
    assert read_points(vgg)["features.conv2_1"].module == "features.relu2_1"


def conv_macs(conv: nn.Conv2d, out_hw: int) -> int:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    return conv.out_channels * conv.in_channels // conv.groups * k * out_hw * out_hw


def test_pruned_macs_match_flop_counter_and_the_remaining_channels(vgg):
    x = torch.zeros(1, 1, 28, 28)
    units = pruning_units(vgg, x)
    plan = plan_by_layer_ratios(units, unit_scores(units, l1_scores(vgg)),
                                {"features.conv1_1": 0.5, "features.conv3_2": 0.25})
    pruned = prune_model(vgg, plan, x, units)
    f = pruned.features
    assert (f.conv1_1.out_channels, f.conv1_2.in_channels) == (16, 16)
    assert (f.conv3_2.out_channels, pruned.classifier.fc1.in_features) == (96, 96 * 9)
    sizes = {"conv1_1": 28, "conv1_2": 28, "conv2_1": 14, "conv2_2": 14, "conv3_1": 7, "conv3_2": 7}
    expected = sum(conv_macs(getattr(f, n), hw) for n, hw in sizes.items())
    expected += 96 * 9 * 256 + 256 * 10  # the two linear layers
    assert count_macs(pruned, x)[""] == expected


def test_choose_orders():
    scores = torch.tensor([0.5, 0.1, 0.9, 0.3])
    assert choose(scores, 2, "smallest") == (1, 3)
    assert choose(scores, 2, "largest") == (0, 2)
    a = choose(scores, 2, "random", torch.Generator().manual_seed(0))
    assert a == choose(scores, 2, "random", torch.Generator().manual_seed(0)) and len(a) == 2


def test_plan_errors(vgg):
    x = torch.zeros(1, 1, 28, 28)
    units = pruning_units(vgg, x)
    scores = unit_scores(units, l1_scores(vgg))
    with pytest.raises(am.InvalidParameterError, match=r"in \[0, 1\)"):
        plan_by_ratio(units, scores, 1.0)
    with pytest.raises(am.UnknownNameError, match="conv1_1"):
        plan_by_layer_ratios(units, scores, {"features.conv1_9": 0.5})
    with pytest.raises(am.InvalidParameterError, match="every filter of layer 'features.conv1_1'"):
        prune_model(vgg, PruningPlan({"features.conv1_1": tuple(range(32))}), x, units)
