"""The run folder keeps the resolved configuration of every command that wrote into it, and
`approxmap run DIR/config.toml` (or `approxmap run DIR`) reruns it to the same results."""

from __future__ import annotations

import tomllib

from campaignkit import results


def test_several_commands_keep_one_config_each_and_each_reruns(cli, tmp_path):
    out = tmp_path / "run"
    common = ["--images", "60", "--calib-images", "60", "--layers", "conv_layers.0", "--quiet",
              "--out", out]
    assert cli("emulate", "--units", "drum:4", *common)[0] == 0
    assert cli("predict", "--units", "drum:4", "--trials", "2", *common)[0] == 0
    emulate = tomllib.loads((out / "config-emulate.toml").read_text())
    predict = tomllib.loads((out / "config-predict.toml").read_text())
    assert (out / "config.toml").read_text() == (out / "config-predict.toml").read_text()
    assert emulate["analysis"] == "emulate" and emulate["emulate"]["units"] == ["drum:4"]
    assert predict["analysis"] == "predict" and predict["trials"] == 2
    assert emulate["out"] == predict["out"] == str(out) and emulate["data"] == "mnist5k"
    assert emulate["provenance"]["command"].startswith("approxmap ")
    before = results(out)

    code, printed, _ = cli("run", "--dry-run", out)  # a folder: its config.toml
    assert code == 0 and printed.startswith("approxmap predict --model=mnist-cnn")
    code, _, err = cli("run", out / "config-emulate.toml")  # in place: the same folder
    assert code == 0, err
    assert results(out) == before
    assert (out / "config.toml").read_text().startswith(
        (out / "config-emulate.toml").read_text().split("[provenance]")[0])


def test_a_refused_run_writes_no_config(cli, tmp_path):
    out = tmp_path / "run"
    code, _, _ = cli("profile", "--images", "20", "--layers", "nosuch", "--quiet", "--out", out)
    assert code == 2 and not out.exists()
