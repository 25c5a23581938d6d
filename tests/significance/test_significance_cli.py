"""The significance, prune and sensitivity commands: outputs, report sections, bad inputs."""

from __future__ import annotations

import json

import pytest

from approxmap.cli import main

pytest.importorskip("torch_pruning", reason="Torch-Pruning not installed: "
                    "pip install --no-deps torch-pruning==1.6.1")
MNIST = ["--model", "mnist-cnn", "--data", "mnist5k", "--images", "60", "--quiet"]


def one_line_error(capsys, argv, match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("approxmap: error:") and match in err, err


def test_commands_write_files_and_join_one_report(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["significance", *MNIST, "--criteria", "l1,l2,apoz", "--calib-images", "30",
                 "--out", out]) == 0
    assert main(["sensitivity", *MNIST, "--ratios", "0.5", "--compare", "smallest,largest",
                 "--layers", "conv_layers.3", "--out", out]) == 0
    assert main(["prune", *MNIST, "--ratio", "0.25", "--repeats", "3", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "l1~l2" in printed and "MACs" in printed
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"significance.csv", "significance.json", "agreement.csv", "sensitivity.json",
            "prune.json", "pruned.json", "pruned.safetensors", "report.html"} <= files
    report = (tmp_path / "run" / "report.html").read_text()
    for title in ("Filter significance", "Pruning sensitivity", "Physical pruning"):
        assert title in report
    result = json.loads((tmp_path / "run" / "prune.json").read_text())
    assert result["after"]["accuracy"] == result["after"]["masked_accuracy"]
    assert result["after"]["macs"] < result["before"]["macs"]
    sens = json.loads((tmp_path / "run" / "sensitivity.json").read_text())
    assert {r["order"] for r in sens["rows"]} == {"smallest", "largest"}


def test_prune_by_class_and_plan_replay(tmp_path):
    out = tmp_path / "a"
    assert main(["prune", *MNIST, "--by-class", "prunable", "--repeats", "2", "--out", str(out)]) == 0
    plan = json.loads((out / "pruned.json").read_text())
    assert plan["removed"] and plan["meta"]["mode"] == "by-class"
    assert main(["prune", *MNIST, "--plan", str(out / "pruned.json"), "--repeats", "2",
                 "--out", str(tmp_path / "b")]) == 0
    again = json.loads((tmp_path / "b" / "pruned.json").read_text())
    assert again["removed"] == plan["removed"]


def test_bad_inputs_one_line_exit_2(tmp_path, capsys):
    one_line_error(capsys, ["prune", *MNIST, "--ratio", "1.0"], "[0, 1)")
    one_line_error(capsys, ["prune", *MNIST, "--ratio", "0.5", "--criterion", "l3"], "Unknown significance criterion 'l3'")
    one_line_error(capsys, ["significance", *MNIST, "--criteria", "l1,bogus"], "Unknown significance criterion 'bogus'")
    ratios = tmp_path / "ratios.json"
    ratios.write_text(json.dumps({"conv_layers.0": 0.5, "conv_layers.9": 0.5}))
    one_line_error(capsys, ["prune", *MNIST, "--layer-ratios", str(ratios)], "No prunable convolution named 'conv_layers.9'")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "approxmap-pruning-plan/1", "base": "mnist-cnn",
                                "removed": {"conv_layers.0": list(range(32))}}))
    one_line_error(capsys, ["prune", *MNIST, "--plan", str(plan)], "every filter of layer 'conv_layers.0'")
    one_line_error(capsys, ["prune", *MNIST, "--by-class", "prunable", "--classes", "critical,prunable",
                            "--thresholds", "1"], "every filter")
    one_line_error(capsys, ["sensitivity", *MNIST, "--compare", "smallest,best"], "Orders must be taken from")
    one_line_error(capsys, ["sensitivity", *MNIST, "--ratios", "0.5,1"], "[0, 1)")
