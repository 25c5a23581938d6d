"""Planning: the energy model, the knapsack, the budget guarantee and bad inputs."""

from __future__ import annotations

import json

import pytest
import torch

import approxmap as am
from approxmap.analysis.emulate import Assignment
from approxmap.analysis.plan import PlanSpec, knapsack, option_energy, plan_analysis, plan_options
from approxmap.cli import main
from approxmap.multipliers.energy import EnergyModel, load_energy_model
from approxmap.multipliers.units import create_unit

SMALL = ["--images", "60", "--calib-images", "30", "--quiet", "--layers", "fc_layers.0",
         "fc_layers.2"]


def one_line_error(capsys, argv, match):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors exit while parsing
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("approxmap: error:") and match in err, err


def test_energy_of_units_follows_published_power_and_estimates():
    model = EnergyModel()
    assert model.multiply_pj("exact") == (pytest.approx(0.2), "published")
    pj, source = model.multiply_pj("evo:mul8u_17KS")
    assert source == "published" and pj == pytest.approx(0.2 * 0.104 / 0.391, rel=0.01)
    pj, source = model.multiply_pj("trunc:4")
    assert source == "estimate" and pj < 0.2
    assert model.multiply_pj("mitchell") == (pytest.approx(0.2), "assumed exact")
    assert model.mac_pj("exact") == pytest.approx(0.3)  # 0.2 pJ multiply + 0.1 pJ add (Horowitz)


def test_the_all_exact_plan_costs_the_analytic_sum():
    macs = {"a": 1000, "b": 50}
    filters = {"a": 10, "b": 5}
    energy = EnergyModel()
    total = sum(option_energy(Assignment(layer, "exact"), macs[layer], filters[layer], energy)
                for layer in macs)
    assert total == pytest.approx(0.2 * 1050)
    half = option_energy(Assignment("a", "evo:mul8u_17KS", channels=(0, 1, 2, 3, 4),
                                    pruned=(9,)), 1000, 10, energy)
    unit = energy.multiply_pj("evo:mul8u_17KS")[0]
    assert half == pytest.approx(100 * (5 * unit + 4 * 0.2))  # 5 with the unit, 4 exact, 1 gone


def test_knapsack_picks_the_largest_saving_within_the_budget():
    choices = {"a": [(0.6, 10.0, "a1"), (0.2, 4.0, "a2")],
               "b": [(0.5, 8.0, "b1"), (0.1, 1.0, "b2")]}
    assert knapsack(choices, 1.0) == (12.0, {"a": "a2", "b": "b1"})  # 0.7 pp; a1+b1 is 1.1
    assert knapsack(choices, 0.25)[1] == {"a": "a2"}
    assert knapsack(choices, 0.0) == (0.0, {})


def test_a_plan_reported_as_meeting_the_budget_was_verified_to(mnist_model, mnist_small):
    spec = PlanSpec(units=("evo:mul8u_17KS", "drum:4"), budget_pp=0.0,
                    layers=("conv_layers.6", "fc_layers.0"), calib_images=60)
    result = plan_analysis(mnist_model, mnist_small, spec, am.Run(trials=1))
    drop = 100 * (result.int8_accuracy - result.verified_accuracy)
    assert result.meets_budget == (drop <= 1e-9)
    assert result.meets_budget or result.repairs  # a violated plan is repaired or said so
    for u in result.uniform:
        assert u["meets_budget"] == (100 * (result.int8_accuracy - u["verified_accuracy"]) <= 1e-9)
        if u["meets_budget"]:  # the plan is the least-energy verified configuration
            assert result.energy_pj <= u["energy_pj"] + 1e-6
    assert all(u["measured_drop_pp"] <= 1e-9 for u in result.upgrades)
    back = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.to_dict() == result.to_dict()


def test_energy_files(tmp_path):
    toml = tmp_path / "e.toml"
    toml.write_text('mul8_pj = 0.25\n[units]\n"drum:6" = 0.1\n')
    model = load_energy_model(toml)
    assert model.multiply_pj("drum:6") == (0.1, "file") and model.mul8_pj == 0.25
    csv = tmp_path / "e.csv"
    csv.write_text("unit,pJ\nadd32,0.05\ntrunc:4,0.12\n")
    model = load_energy_model(csv)
    assert model.add32_pj == 0.05 and model.multiply_pj(create_unit("trunc:4").name)[0] == 0.12


def test_bad_plan_inputs_are_one_line(tmp_path, capsys):
    out = ["--out", str(tmp_path / "o")]
    one_line_error(capsys, ["plan", "--units", "drmu:4", *SMALL, *out], "Did you mean")
    one_line_error(capsys, ["plan", "--units", "drum:4", "--budget=-1", *SMALL, *out], "--budget")
    bad_unit = tmp_path / "u.toml"
    bad_unit.write_text('[units]\n"nosuch:1" = 0.1\n')
    one_line_error(capsys, ["plan", "--units", "drum:4", "--energy", str(bad_unit), *SMALL, *out],
                   "nosuch")
    negative = tmp_path / "n.csv"
    negative.write_text("drum:4,-0.1\n")
    one_line_error(capsys, ["plan", "--units", "drum:4", "--energy", str(negative), *SMALL, *out],
                   ">= 0 pJ")
    for empty in ("e.csv", "e.toml", "header-only.csv"):
        (tmp_path / empty).write_text("unit,pJ\n" if empty.startswith("header") else "")
        one_line_error(capsys, ["plan", "--units", "drum:4", "--energy", str(tmp_path / empty),
                                *SMALL, *out], "no energy figure")
    one_line_error(capsys, ["plan", "--units", "drum:4", "--prune", *SMALL, *out], "class")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "approxmap-plan/1", "layers": [
        {"layer": "features.conv1_1", "unit": "drum:4"}]}))
    one_line_error(capsys, ["emulate", "--plan", str(other), *SMALL, *out], "features.conv1_1")
    assert not (tmp_path / "o" / "results.sqlite").exists()


@pytest.mark.parametrize("name, coupled", [("mnist-cnn", ()), ("resnet20", ("layer1.0.conv2",))])
def test_class_plans_prune_only_filters_that_can_be_removed_alone(name, coupled):
    model = am.create_model(name)
    data = am.create_dataset("mnist5k" if name == "mnist-cnn" else "fashion-mnist", images=40)
    layers = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    spec = PlanSpec(units=("drum:4",), granularity="class", prune=True, thresholds=(0.6, 0.8))
    options = plan_options(model, data, spec, layers, am.Run(trials=1))
    pruned = {o.layer for opts in options.values() for o in opts if o.pruned}
    classifier = layers[-1]
    assert pruned and classifier not in pruned and not pruned & set(coupled)
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert not pruned & linear
    # where filters cannot be removed, the prunable ones take the unit with the approximable
    assert all(o.channels for o in options[classifier])
