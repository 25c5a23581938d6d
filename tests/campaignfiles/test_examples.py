"""Every example campaign file runs (into a tmp folder), gives the same results as the
equivalent command line, and leaves a config.toml that reproduces the run."""

from __future__ import annotations

import tomllib

import pytest
from campaignkit import EXAMPLES, results

COMMON = ["--model", "mnist-cnn", "--data", "mnist5k", "--images", "100", "--quiet"]
CALIB = ["--calib-images", "100"]
# The command line each example says.
EQUIVALENT = {
    "profile": ["profile", *COMMON, "--layers", "conv_layers.0", "fc_layers.0",
                "--sigma", "0,0.5,1", "--trials", "2", "--budget", "1"],
    "significance": ["significance", *COMMON, *CALIB, "--layers", "conv_layers.3",
                     "conv_layers.6", "--criteria", "l1,apoz", "--thresholds", "0.2,0.5",
                     "--trials", "2"],
    "sensitivity": ["sensitivity", *COMMON, *CALIB, "--layers", "conv_layers.3",
                    "--ratios", "0.25,0.5", "--compare", "smallest,largest"],
    "prune": ["prune", *COMMON, *CALIB, "--ratio", "0.25", "--repeats", "3"],
    "units": ["units", "characterize", "exact", "drum:4", *COMMON, *CALIB,
              "--layers", "conv_layers.0"],
    "emulate": ["emulate", *COMMON, *CALIB, "--units", "drum:4", "--layers", "conv_layers.0"],
    "predict": ["predict", *COMMON, *CALIB, "--units", "drum:4", "--layers", "conv_layers.0",
                "--trials", "2"],
    "plan": ["plan", *COMMON, *CALIB, "--units", "drum:4,drum:6", "--budget", "2",
             "--layers", "conv_layers.3", "fc_layers.0", "--trials", "2"],
}


def test_there_is_an_example_per_analysis():
    assert sorted(p.stem for p in EXAMPLES.glob("*.toml")) == sorted(EQUIVALENT)
    for name in EQUIVALENT:
        data = tomllib.loads((EXAMPLES / f"{name}.toml").read_text())
        assert data["analysis"] == name


@pytest.mark.parametrize("name", list(EQUIVALENT))
def test_example_runs_like_its_command_line(cli, tmp_path, name):
    from_file, from_cli = tmp_path / "file", tmp_path / "cli"
    code, out, err = cli("run", EXAMPLES / f"{name}.toml", "--out", from_file)
    assert code == 0, err
    assert "Report:" in out
    code, _, err = cli(*EQUIVALENT[name], "--out", from_cli)
    assert code == 0, err
    assert results(from_file) == results(from_cli)
    config = (from_file / "config.toml").read_text()
    assert config == (from_file / f"config-{name}.toml").read_text()
    data = tomllib.loads(config)
    assert data["analysis"] == name and data["out"] == str(from_file)
    assert {"approxmap", "torch", "python", "date", "command", "seed"} <= data["provenance"].keys()
    again = tmp_path / "again"  # the folder's config.toml reproduces the run elsewhere
    code, _, err = cli("run", from_file / "config.toml", "--out", again)
    assert code == 0, err
    assert results(again) == results(from_file)
