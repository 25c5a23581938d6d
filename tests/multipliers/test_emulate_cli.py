"""Approximate multipliers through the engine and the command line: the `multiplier` target
equals the emulated layer, channels select filters, and the commands write their results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import approxmap as am
from approxmap.cli import main
from approxmap.multipliers.emulate import EmulatedLayer
from approxmap.multipliers.quant import ActivationRange, QuantScheme, quantize_layer
from approxmap.multipliers.units import create_unit

SMALL = ["--images", "60", "--calib-images", "30", "--quiet"]


def one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("approxmap: error:") and match in err, err


def test_the_multiplier_target_equals_the_emulated_layer(mnist_model, mnist_small):
    unit = am.create_error_model("multiplier", unit="drum:4")
    site = am.Site("conv_layers.3", "multiplier")
    campaign = am.Campaign(mnist_model, mnist_small, [am.Scenario.single(site, unit)],
                           am.Run(trials=1), stats_data=mnist_small)
    campaign.run()
    stats = campaign.calibration.site_stats[site.key]
    layer = quantize_layer(mnist_model.conv_layers[3], ActivationRange(stats.min, stats.max),
                           QuantScheme())
    emulated = EmulatedLayer(layer, create_unit("drum:4"))
    original = mnist_model.conv_layers[3]
    try:
        mnist_model.conv_layers[3] = emulated
        with torch.no_grad():
            expected = (mnist_model(mnist_small.x).argmax(1) == mnist_small.y).sum().item()
    finally:
        mnist_model.conv_layers[3] = original
    key = next(iter(campaign.scenarios))
    assert campaign.records()[(key, 0)].counts.correct1 == expected


def test_channels_of_a_multiplier_site_are_the_filters_that_use_the_unit(mnist_model):
    conv = mnist_model.conv_layers[0]
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    stats = am.SiteStats.of(x)
    site = am.Site("conv_layers.0", "multiplier", channels=(2, 7))
    target = site.kind
    unit = am.create_error_model("multiplier", unit="trunc:6")
    state = target.begin(site, unit, conv, stats, None)
    exact_state = target.begin(am.Site("conv_layers.0", "multiplier"),
                               am.create_error_model("multiplier", unit="exact"), conv, stats, None)
    mixed = target.call(site, state, conv, (x,), {}, {})
    exact = target.call(am.Site("conv_layers.0", "multiplier"), exact_state, conv, (x,), {}, {})
    differs = (mixed != exact).flatten(2).any(2).any(0).nonzero().flatten().tolist()
    assert set(differs) <= {2, 7} and differs  # only the chosen filters use the unit


def test_emulate_units_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    # a parametrized name keeps its own comma inside the comma-separated list
    assert main(["emulate", "--units", "exact,bam:2,6,trunc:6,evo:mul8u_2AC", "--layers", "fc_layers.0",
                 "conv_layers.6", "--all-layers", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "int8 (exact unit in every layer)" in printed and "evo:v10/mul8u_2AC" in printed
    result = json.loads((out / "emulate.json").read_text())
    rows = {(r["layer"], r["unit"]) for r in result["rows"]}
    assert {("fc_layers.0", "trunc:6"), ("*", "trunc:6"), ("*", "exact")} <= rows
    assert {unit for _, unit in rows} == {"exact", "bam:2,6", "trunc:6", "evo:v10/mul8u_2AC"}
    assert 0 <= result["int8_accuracy"] <= 1 and result["layers"] == ["conv_layers.6", "fc_layers.0"]
    html = (out / "report.html").read_text()
    assert "Approximate multipliers: emulation" in html and "data:image/png" in html
    assert main(["units", "characterize", "drum:6", "--out", str(tmp_path / "u")]) == 0
    assert "1.301" in capsys.readouterr().out  # DRUM(6) MRED 1.30 % (Hashemi et al. 2015)


def test_units_list(capsys):
    assert main(["units", "list", "evo:v2022/*"]) == 0
    out = capsys.readouterr().out
    assert "evo:v2022/mul8s_1KV8" in out and "units." in out
    assert main(["units", "list", "evo:mul8u_2A*"]) == 0  # a pattern without a release
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:] if line.strip()]
    assert {"evo:v10/mul8u_2AC", "evo:master/mul8u_2AC"} <= set(rows)
    assert rows[-1].isdigit() and all("/mul8u_2A" in r for r in rows[:-1])


def test_bad_units_layers_and_tables_are_one_line(tmp_path, capsys):
    one_line_error(capsys, ["emulate", "--units", "drum:66", *SMALL, "--out", str(tmp_path / "a")],
                   "drum")
    one_line_error(capsys, ["emulate", "--units", "drmu:4", *SMALL, "--out", str(tmp_path / "b")],
                   "Did you mean")
    one_line_error(capsys, ["emulate", "--units", "exact", "--layers", "conv_layers.1", *SMALL,
                            "--out", str(tmp_path / "c")], "float Conv2d or Linear")
    np.save(tmp_path / "bad.npy", np.zeros((16, 16), dtype=np.int32))
    one_line_error(capsys, ["emulate", "--units", f"file:{tmp_path / 'bad.npy'}", *SMALL,
                            "--out", str(tmp_path / "d")], "256")
    one_line_error(capsys, ["emulate", *SMALL, "--out", str(tmp_path / "e")], "--units")
    for name in "abcde":
        assert not (tmp_path / name / "results.sqlite").exists()


@pytest.mark.slow
def test_predict_and_plan_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--layers", "conv_layers.6", "fc_layers.0", "--out", out, *SMALL]
    assert main(["emulate", "--units", "trunc:6,drum:4", *common]) == 0
    assert main(["predict", "--units", "trunc:6,drum:4", "--trials", "2", *common]) == 0
    printed = capsys.readouterr().out
    assert "prediction error over" in printed
    assert main(["plan", "--units", "trunc:6,drum:4", "--budget", "1", *common]) == 0
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["format"] == "approxmap-plan/1" and len(plan["layers"]) == 2
    assert plan["meets_budget"] == (
        100 * (plan["int8_accuracy"] - plan["verified_accuracy"]) <= plan["budget_pp"] + 1e-9)
    assert 0 <= plan["saving_pct"] <= 100
    assert main(["emulate", "--plan", str(tmp_path / "run" / "plan.json"), *common]) == 0
    replay = json.loads((tmp_path / "run" / "emulate.json").read_text())
    plan_row = next(r for r in replay["rows"] if r["layer"] == "plan")
    assert plan_row["accuracy"] == pytest.approx(plan["verified_accuracy"])


def test_predict_beside_an_absolute_profile_shows_which_units_each_layer_takes(tmp_path, capsys):
    out = ["--out", str(tmp_path / "run"), "--layers", "fc_layers.0"]
    assert main(["profile", "--images", "60", "--trials", "1", "--scale", "abs",
                 "--sigma", "0,0.5,5,50", "--quiet", *out]) == 0
    capsys.readouterr()
    assert main(["predict", "--units", "drum:6,evo:mul8u_13QR", "--trials", "1", *SMALL[:4],
                 "--quiet", *out]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("which units each layer can take"):]
    row = next(line for line in table.splitlines() if line.startswith("fc_layers.0"))
    saved = json.loads((tmp_path / "run" / "predict.json").read_text())["tolerance"]
    fits = {t["unit"]: t["fits"] for t in saved}
    assert row.split()[2:] == ["fits" if fits[u] else "no"
                               for u in ("drum:6", "evo:v10/mul8u_13QR")]
    assert all(t["fits"] == (t["unit_rms"] <= t["tolerated_std"]) for t in saved)
