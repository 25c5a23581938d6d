"""Layers that never run: a head of a ModuleList that forward() never calls, a ModuleDict
branch left out, an auxiliary head used only in training.

`layers` gives the whole-model MAC total and marks them; default selections and rankings
leave them out; naming one is refused in one line (no KeyError).
"""

from __future__ import annotations

import json

import pytest
import torch
from casekit import FIXTURES, ONE, RUN, case, load_data, npz, spec, weights
from torch import nn

import approxmap as am
from approxmap.core.layers import layer_table


class Branches(nn.Module):
    """A ModuleDict of branches, one never chosen; and a Sequential called piecewise."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1))
        self.branch = nn.ModuleDict({"fast": nn.Conv2d(8, 16, 1), "slow": nn.Conv2d(8, 16, 5)})
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.stem[2](self.stem[1](self.stem[0](x))))  # stem itself never runs
        return self.fc(torch.relu(self.branch["fast"](x)).mean((2, 3)))


class AuxHead(nn.Module):
    """An auxiliary classifier used only in training (GoogLeNet style)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.aux = nn.Linear(8, 5)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        f = torch.relu(self.conv(x)).mean((2, 3))
        return self.fc(f) + self.aux(f) if self.training else self.fc(f)


def _case10():
    model = case("case10").build()
    model.load_state_dict(weights("case10.pt"))
    return model.eval()


def _seeded(cls):
    torch.manual_seed(0)
    return cls()


# model -> (never runs, containers with their modules' MACs, whole-model MACs)
MODELS = {
    "case10": (_case10, {"outputs.1"}, {"stages": 18432 + 73728, "lateral": 2 * 16384,
                                        "outputs": 80}, 125_008),
    "branches": (lambda: _seeded(Branches).eval(), {"branch.slow"},
                 {"stem": 18432 + 147456, "branch": 16 * 8 * 256}, 18432 + 147456 + 32768 + 80),
    "aux-head": (lambda: _seeded(AuxHead).train(), {"aux"}, {}, 18432 + 40),  # left in train
}


@pytest.fixture(scope="module")
def data():
    return load_data(images=16)


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_table_marks_what_never_runs_and_totals_the_model(name, data):
    build, unused, containers, total = MODELS[name]
    model = build()
    rows = {r.name: r for r in layer_table(model, data.sample(1))}
    assert {n for n, r in rows.items() if not r.runs} == unused
    assert all(rows[n].macs == 0 for n in unused)
    assert {n: rows[n].macs for n in containers} == containers
    assert all(rows[n].container and not rows[n].executed for n in containers)
    assert sum(r.macs for n, r in rows.items() if "." not in n and r.runs) == total


@pytest.mark.parametrize("name", list(MODELS))
def test_default_selections_and_rankings_leave_unused_layers_out(name, data):
    build, unused, _, _ = MODELS[name]
    model = build()
    result = am.profile_layers(model, data, am.ProfileSpec(sweep=(0.0, 1.0)), am.Run(trials=1))
    ranked = {layer.name for layer in result.layers}
    assert not ranked & unused
    assert sorted(layer.rank for layer in result.layers) == list(range(1, len(ranked) + 1))
    sig = am.compute_significance(model, data, ["l1"], layers=["Linear"])
    assert not set(sig.layers) & unused
    for layer in unused:
        with pytest.raises(am.InvalidParameterError, match=f"'{layer}' never runs"):
            am.profile_layers(model, data, am.ProfileSpec(layers=(layer,)), am.Run(trials=1))
        with pytest.raises(am.InvalidParameterError, match=f"'{layer}' never runs"):
            am.compute_significance(model, data, ["l1"], layers=[layer])


def test_case10_globs_pick_only_the_head_that_runs(data):
    model = _case10()
    result = am.profile_layers(model, data, am.ProfileSpec(layers=("outputs.*",), sweep=(0.0,)),
                               am.Run(trials=1))
    assert [layer.name for layer in result.layers] == ["outputs.0"]
    with pytest.raises(am.InvalidParameterError, match="never run"):
        am.select_layers(model, ["outputs.1"],
                         {r.name for r in layer_table(model, data.sample(1)) if r.executed})


def test_cli_layers_profile_and_significance(cli, tmp_path):
    model = ("--model", spec("case10"), "--weights", FIXTURES / "case10.pt")
    out, _ = cli.ok("layers", *model, "--data", npz())
    assert "total: 125,008 MACs per sample" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "never runs" in rows["outputs.1"]
    assert [n for n, line in rows.items() if "never runs" in line] == ["outputs.1"]
    assert "92,160" in rows["stages"]
    args = (*model, "--data", npz(), "--images", "16", *RUN)
    cli.ok("profile", *args, *ONE, "--sigma", "0,1", "--out", tmp_path / "p")
    profile = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert sorted(layer["name"] for layer in profile["layers"]) == [
        "lateral.a", "lateral.b", "outputs.0", "stages.0", "stages.1"]
    for command in (["profile", *ONE], ["significance", *ONE, "--criteria", "l1,taylor"]):
        line = cli.refused(*command, *args, "--layers", "outputs.1", "--out", tmp_path / "x")
        assert "Layer 'outputs.1' never runs in the model's forward()" in line
    line = cli.refused("sensitivity", *args, "--layers", "outputs.1", "--out", tmp_path / "x")
    assert "No prunable convolution named 'outputs.1'" in line
    assert not (tmp_path / "x").exists()
