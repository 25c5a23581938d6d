"""SDC / DUE / masked outcomes with known answers, fault sampling, and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.cli import main
from approxmap.faults import plan_fault_sampling, sample_size
from approxmap.faults.sampling import achieved_margin, normal_quantile


class Tiny(nn.Module):
    """logits = x (an identity Linear): for x = (1, 0.5) the clean top-1 is class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.fixture(scope="module")
def tiny():
    x = torch.tensor([[1.0, 0.5]]).repeat(8, 1)
    return Tiny().eval(), am.EvalData(x, torch.zeros(8, dtype=torch.long), "tiny")


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_known_outcomes_masked_sdc_due(tiny, prefix_cache):
    """Only logit 0 can be hit (channels=(0,)): bit 0 is masked, the sign bit turns 1 into -1
    (SDC: class 1 wins), exponent bit 30 turns 1 into Inf (DUE: counted, no crash)."""
    model, data = tiny
    run = am.Run(trials=3, engine=am.LocalEngine(prefix_cache=prefix_cache))
    spec = am.ProfileSpec(layers=("fc",), channels={"fc": (0,)}, error="bitflip",
                          sweep=(0, 30, 31))
    result = am.profile_layers(model, data, spec, run)
    points = {p.magnitude: p for p in result.layers[0].points}
    n = 3 * 8
    assert (points[0].masked, points[0].sdc, points[0].nonfinite) == (n, 0, 0)
    assert (points[30].masked, points[30].sdc, points[30].nonfinite) == (0, 0, n)
    assert (points[31].masked, points[31].sdc, points[31].nonfinite) == (0, n, 0)
    assert points[31].samples == n and points[31].accuracy == 0.0
    low, high = am.wilson(n, n)
    assert (points[31].sdc_low, points[31].sdc_high) == (low, high) and high == 1.0
    assert result.categorical and result.layers[0].threshold is None
    saved = result.to_dict()
    assert saved["layers"][0]["points"][2]["sdc"] == n and json.dumps(saved)  # plain JSON


def test_a_faulty_weight_is_permanent_within_a_trial(tiny):
    """Sign flip of one of the two weights of row 0 (one fault per trial): w00 -> -1 makes
    every image an SDC, w01 -> -0 changes nothing; so each trial is all SDC or all masked."""
    model, data = tiny
    scenario = am.Scenario.single(am.Site("fc", "weight", channels=(0,)), am.BitFlip(bit=31))
    campaign = am.Campaign(model, data, [scenario], am.Run(trials=12))
    campaign.run()
    records = list(campaign.records().values())
    assert all((r.sdc, r.masked) in ((8, 0), (0, 8)) for r in records)
    assert 0 < sum(r.sdc == 8 for r in records) < 12


def test_leveugle_sample_sizes():
    assert sample_size(None, 0.01, 0.99) == 16588
    assert sample_size(1000, 0.05, 0.95) == 278
    assert sample_size(10, 0.01, 0.99) == 10  # never more than the population
    assert abs(normal_quantile(0.95) - 1.959964) < 1e-6
    n = sample_size(50_000, 0.02, 0.99)
    assert achieved_margin(n, 50_000, 0.99) <= 0.02 < achieved_margin(n - 50, 50_000, 0.99)
    with pytest.raises(am.InvalidParameterError):
        sample_size(100, 1.5, 0.99)


def test_fault_sampling_counts_elements_bits_and_images(mnist_model, mnist_small):
    spec = am.ProfileSpec(layers=("conv_layers.0", "fc_layers.0"), error="bitflip", sweep=(3,))
    scenarios = [spec.scenario("conv_layers.0", 3), spec.scenario("fc_layers.0", 3),
                 am.Scenario.single(am.Site("fc_layers.0", "weight"), am.BitFlip(bits="all")),
                 am.Scenario.single(am.Site("fc_layers.0"), am.BitFlip(rate=1e-6))]
    plan = plan_fault_sampling(mnist_model, mnist_small, scenarios, margin=0.01,
                               confidence=0.99)
    conv, fc, weight, rate = plan.points
    assert conv.population == 32 * 28 * 28 * 1 * 120 and conv.per_trial == 120
    assert fc.population == 256 * 120
    assert weight.population == 256 * 1152 * 32 and weight.per_trial == 1
    assert rate.population is None and rate.needed == 16588
    assert plan.trials == max(p.trials_needed for p in plan.points) == weight.needed
    given = plan_fault_sampling(mnist_model, mnist_small, scenarios[:1], trials=4)
    assert given.sampled(given.points[0]) == 480 and "480 faults sampled" in given.summary()


def test_profile_command_with_auto_trials(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["profile", "--error", "bitflip", "--sweep", "bits=29:31", "--layers",
                 "conv_layers.0", "--images", "40", "--trials", "auto", "--margin", "25%",
                 "--confidence", "90%", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    profile = json.loads((out / "profile.json").read_text())
    sampling = profile["fault_sampling"]
    assert profile["trials"] == sampling["trials"] == 1 and sampling["computed"]
    assert sampling["points"][0]["population"] == 32 * 28 * 28 * 40
    assert "Fault sampling: 1 trials per point" in captured.out and "40 faults" in captured.out
    assert profile["axis"] == "bit" and profile["categorical"]
    assert (out / "sdc.png").is_file() and not (out / "ranking.png").exists()
    html = (out / "report.html").read_text()
    assert "SDC rate (%) [95% Wilson]" in html and "Fault sampling" in html


@pytest.mark.parametrize(("argv", "message"), [
    (["--param", "bits=40"], "out of range for fp32"),
    (["--param", "format=fp64"], "Unknown number format 'fp64'"),
    (["--param", "rate=1.5"], "must be a number in [0, 1]"),
    (["--param", "format=fp16", "--sweep", "bits=0:16"], "out of range for fp16"),
    (["--margin", "150%"], "--margin takes a fraction in (0, 1)"),
    (["--param", "bit=30"], "names the swept parameter; to fix it, sweep one value: "
                            "--sweep bit=30"),
    (["--trials", "many"], "--trials"),
])
def test_bad_fault_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    try:
        code = main(["profile", "--error", "bitflip", "--out", str(tmp_path / "x"), "--quiet",
                     "--images", "20", "--layers", "fc_layers.2", *argv])
    except SystemExit as exc:  # argparse's own errors exit inside parse_args
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_auto_trials_need_a_bit_fault_model(tmp_path, capsys):
    code = main(["profile", "--error", "gaussian", "--trials", "auto", "--images", "20",
                 "--layers", "fc_layers.2", "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--trials auto applies to the bit-fault" in err
