"""Grouped convolutions in pruning.

Grouped (non-depthwise) convolutions and the convolutions feeding them are left out of
pruning and said so; depthwise convolutions follow their producer; the physically pruned
model equals the masked one; a plan naming a left-out layer is refused in one line.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from casekit import FIXTURES, RUN, case, load_data, npz, spec, weights
from torch import nn

import approxmap as am
from approxmap.pruning.units import pruning_units

GROUPED = "grouped convolution gconv (groups must stay equal in size"
GROUPED_RE = re.escape(GROUPED)


class ResNeXtBlock(nn.Module):
    """A grouped conv inside a residual block (its producer is tied to the block's output)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.gconv = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.conv3 = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 12, 3, padding=1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv3(torch.relu(self.gconv(x))) + x)
        return self.fc(torch.relu(self.head(x)).mean((2, 3)))


class Separable(nn.Module):
    """Depthwise-separable: the depthwise conv is pruned together with its producer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.dw(torch.relu(self.conv1(x))))
        return self.fc(torch.relu(self.pw(x)).mean((2, 3)))


def _case06():
    model = case("case06").build()
    model.load_state_dict(weights("case06.pt"))
    return model.eval()


def _seeded(cls):
    torch.manual_seed(0)
    return cls().eval()


# model -> (units: name -> convs, left out)
MODELS = {
    "case06": (_case06, {"pw": ("pw",)}, {"conv1", "gconv", "dw"}),
    "resnext": (lambda: _seeded(ResNeXtBlock), {"head": ("head",)}, {"conv1", "gconv", "conv3"}),
    "separable": (lambda: _seeded(Separable), {"conv1": ("conv1", "dw"), "pw": ("pw",)}, set()),
}


@pytest.fixture(scope="module")
def data():
    return load_data(images=24)


@pytest.mark.parametrize("name", list(MODELS))
def test_grouped_layers_and_their_producers_are_left_out(name, data):
    build, units, left_out = MODELS[name]
    found = pruning_units(build(), data.sample(1))
    assert {u.name: u.convs for u in found} == units
    assert set(found.left_out) == left_out
    assert all(GROUPED in why for why in found.left_out.values())


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_physical_pruning_equals_masking(name, ratio, data):
    build, units, left_out = MODELS[name]
    model = build()
    result = am.prune_analysis(model, data, am.PruneSpec(ratio=ratio, repeats=2))
    channels = {u.name: u.channels for u in pruning_units(model, data.sample(1))}
    assert result.removed_filters == {n: int(ratio * channels[n]) for n in units}
    assert set(result.left_out) == left_out
    assert result.after["accuracy"] == result.after["masked_accuracy"]
    assert result.after["max_logit_difference_vs_masked"] < 1e-5
    assert result.after["params"] < result.before["params"]
    x = data.x[:4]
    kept = {n: m for n, m in result.pruned.named_modules() if isinstance(m, nn.Conv2d)}
    for conv in left_out:  # untouched
        assert kept[conv].weight.shape == dict(model.named_modules())[conv].weight.shape
    with torch.no_grad():
        assert result.pruned(x).shape == model(x).shape


@pytest.mark.parametrize("layer", ["gconv", "conv1", "dw"])
def test_a_plan_naming_a_left_out_layer_is_refused(layer, data):
    plan = am.PruningPlan({layer: (0,)})
    with pytest.raises(am.InvalidParameterError,
                       match=f"'{layer}' cannot be pruned: {GROUPED_RE}"):
        am.prune_analysis(_case06(), data, am.PruneSpec(plan=plan, repeats=2))


def test_sensitivity_measures_only_prunable_layers(data):
    result = am.sensitivity_analysis(_case06(), data, am.SensitivitySpec(ratios=(0.25, 0.5)))
    assert {row.layer for row in result.rows} == {"pw"}
    assert set(result.left_out) == {"conv1", "gconv", "dw"}
    with pytest.raises(am.InvalidParameterError, match=f"'gconv' cannot be pruned: {GROUPED_RE}"):
        am.sensitivity_analysis(_case06(), data, am.SensitivitySpec(layers=("gconv",),
                                                                    ratios=(0.5,)))


def test_a_model_with_nothing_to_prune_is_refused(data):
    class OnlyGrouped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.gconv = nn.Conv2d(8, 8, 3, padding=1, groups=2)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.gconv(torch.relu(self.conv1(x)))).mean((2, 3)))

    for analysis, spec_ in ((am.prune_analysis, am.PruneSpec(ratio=0.5)),
                            (am.sensitivity_analysis, am.SensitivitySpec(ratios=(0.5,)))):
        with pytest.raises(am.InvalidParameterError, match="no convolution that approxmap can "
                           f"prune \\(conv1, gconv: {GROUPED_RE}"):
            analysis(OnlyGrouped().eval(), data, spec_)


def test_cli_prune_ratios_and_a_refused_plan(cli, tmp_path):
    args = ("--model", spec("case06"), "--weights", FIXTURES / "case06.pt", "--data", npz(),
            "--images", "16", *RUN)
    for ratio, removed in (("0.25", 4), ("0.5", 8)):
        out, _ = cli.ok("prune", *args, "--ratio", ratio, "--out", tmp_path / ratio)
        assert f"left out: gconv: {GROUPED}" in out and "left out: conv1:" in out
        result = json.loads((tmp_path / ratio / "prune.json").read_text())
        assert result["removed_filters"] == {"pw": removed}
        assert result["after"]["accuracy"] == result["after"]["masked_accuracy"]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "approxmap-pruning-plan/1", "removed": {"gconv": [0]}}))
    before = sorted(p.name for p in (tmp_path / "0.5").iterdir())
    line = cli.refused("prune", *args, "--plan", plan, "--out", tmp_path / "0.5")
    assert f"'gconv' cannot be pruned: {GROUPED}" in line
    assert sorted(p.name for p in (tmp_path / "0.5").iterdir()) == before
