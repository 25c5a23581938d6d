"""Reduced-precision models: held in bfloat16/float16, or casting to them inside forward().

Inputs are cast to the model's dtype (said once), every command runs, σ = 0 reproduces the
clean accuracy, weights digests work; an op with no low-precision kernel is one line.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from casekit import ONE, RUN, case, load_data, npz, spec, top1_accuracy

import approxmap as am
from approxmap.campaign.campaign import weights_digest
from approxmap.engine.calibrate import check_model

FACTORIES = ("trained_bf16", "trained_fp16", "trained_cast", "trained_cast16")
DTYPES = {"trained_bf16": "bfloat16", "trained_fp16": "float16", "trained_cast": "bfloat16",
          "trained_cast16": "float16"}


@pytest.fixture(scope="module")
def data():
    return load_data(images=32)


@pytest.fixture(scope="module", params=FACTORIES)
def model(request):
    return request.param, getattr(case("case04"), request.param)()


def test_inputs_are_cast_and_said_once(model, data):
    factory, net = model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_model(net, data)
    messages = [str(w.message) for w in caught]
    assert messages == [f"the model holds {DTYPES[factory]} parameters; inputs are cast to "
                        f"{DTYPES[factory]}."]


@pytest.mark.parametrize("target", ["output", "weight"])
def test_profile_sigma_zero_reproduces_the_clean_accuracy(model, data, target):
    factory, net = model
    result = am.profile_layers(net, data, am.ProfileSpec(site=target, sweep=(0.0, 1.0)),
                               am.Run(trials=1))
    assert result.clean_accuracy == top1_accuracy(net, data) > 0.5
    if factory.startswith("trained_cast"):  # casts itself: float32 inputs give the same
        with torch.no_grad():
            assert result.clean_accuracy == int((net(data.x).argmax(1) == data.y).sum()) / 32
    assert len(result.layers) == 3
    for layer in result.layers:
        assert layer.points[0].accuracy == result.clean_accuracy
        assert math.isfinite(layer.points[1].accuracy)


def test_significance_sensitivity_and_prune_run(model, data):
    factory, net = model
    sig = am.compute_significance(net, data, ["l1", "l2", "mean", "apoz", "taylor", "resilience"])
    for criterion, per_layer in sig.scores.items():
        assert all(v.dtype.kind == "f" and (v == v).all() for v in per_layer.values()), criterion
    sens = am.sensitivity_analysis(net, data, am.SensitivitySpec(ratios=(0.5,), calib_images=16))
    assert sens.clean_accuracy == top1_accuracy(net, data)
    assert {row.layer for row in sens.rows} == {n for n in sig.layers}
    result = am.prune_analysis(net, data, am.PruneSpec(ratio=0.5, repeats=2, calib_images=16))
    assert result.after["accuracy"] == result.after["masked_accuracy"]
    assert result.after["macs"] < result.before["macs"]
    assert next(result.pruned.parameters()).dtype == next(net.parameters()).dtype


def test_weights_digests_tell_dtypes_apart():
    bf16, fp16 = case("case04").trained_bf16(), case("case04").trained_fp16()
    assert weights_digest(bf16) == weights_digest(case("case04").trained_bf16())
    float32 = case("case04").trained()
    assert len({weights_digest(bf16), weights_digest(fp16), weights_digest(float32)}) == 3


def test_cli_every_command_runs_on_a_bf16_model(cli, tmp_path):
    args = ("--model", spec("case04", "trained_bf16"), "--data", npz(), "--images", "16")
    for command in (["profile", *ONE, "--sigma", "0,1"],
                    ["significance", *ONE, "--criteria", "l1,apoz,taylor"],
                    ["sensitivity", "--ratios", "0.5"], ["prune", "--ratio", "0.5"],
                    ["profile", *ONE, "--sigma", "0,1"]):  # again: the same folder, resumed
        out_dir = tmp_path / command[0]
        _, err = cli.ok(*command, *args, *RUN, "--out", out_dir)
        assert err.count("inputs are cast to bfloat16") == 1, err
    profile = json.loads((tmp_path / "profile" / "profile.json").read_text())
    assert all(layer["points"][0]["accuracy"] == profile["clean_accuracy"]
               for layer in profile["layers"])
    prune = json.loads((tmp_path / "prune" / "prune.json").read_text())
    assert prune["after"]["accuracy"] == prune["after"]["masked_accuracy"]


def test_cli_cast_inside_models_run(cli, tmp_path):
    for factory in ("trained_cast16", "trained_fp16"):
        cli.ok("prune", "--model", spec("case04", factory), "--data", npz(), "--images", "16",
               *RUN, "--ratio", "0.25", "--out", tmp_path / factory)


@pytest.mark.parametrize("factory,dtype", [("build_fp16", "Half"), ("build_bf16", "BFloat16")])
def test_an_op_without_a_low_precision_kernel_is_one_line(cli, tmp_path, factory, dtype):
    args = ("--model", spec("lowp", factory), "--data", npz(), "--images", "8")
    for command in (["profile", *RUN, *ONE], ["significance", *RUN, *ONE],
                    ["prune", "--ratio", "0.5", *RUN], ["layers"]):
        line = cli.refused(*command, *args, *(["--out", tmp_path / command[0]]
                                              if command[0] != "layers" else []))
        assert f"\"cdist\" not implemented for '{dtype}'" in line
        assert "run the model in float32" in line
        assert not (tmp_path / command[0]).exists()
