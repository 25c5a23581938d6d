"""The command line end to end, and one clear line + exit code 2 for every bad input."""

import csv
import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from approxmap.cli import main

SMALL = ["--images", "60", "--trials", "2", "--quiet"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_failure(code, err, pattern):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("approxmap: error:")
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]


def test_profile_end_to_end_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "profile", "--model", "mnist-cnn", "--data", "mnist5k",
                              "--layers", "Conv2d", "--sigma", "0:1:3",
                              "--mean=-0.5,0", "--out", str(out), *SMALL)
    assert code == 0
    assert "conv_layers.6" in stdout and "Report:" in stdout
    profile = json.loads((out / "profile.json").read_text())
    assert {"model", "dataset", "clean_accuracy", "layers"} <= profile.keys()
    assert [layer["name"] for layer in profile["layers"]] == [
        "conv_layers.0", "conv_layers.3", "conv_layers.6"]
    for layer in profile["layers"]:
        assert {"name", "type", "macs", "params", "threshold", "points"} <= layer.keys()
        assert layer["macs"] > 0 and layer["type"] == "Conv2d"
        assert [p["sigma"] for p in layer["points"]] == [0.0, 0.5, 1.0]
        for point in layer["points"]:
            assert {"sigma", "mean", "accuracy", "ci_low", "ci_high", "trials"} <= point.keys()
            assert point["ci_low"] <= point["accuracy"] <= point["ci_high"]
            assert point["trials"] == 2
    assert set(profile["grid"]["layers"]) == {"conv_layers.0", "conv_layers.3", "conv_layers.6"}
    rows = (out / "profile.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 3
    params = {layer["name"]: layer["params"] for layer in profile["layers"]}
    for row in csv.DictReader(rows):  # the layer's parameter count, not the error's settings
        assert int(row["params"]) == params[row["layer"]] > 0
    for name in ("curves", "ranking", "heatmap_conv_layers.0"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (out / f"{name}.svg").read_text()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "conv_layers.3" in html


def test_refine_adds_bisection_points(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = run_cli(capsys, "profile", "--layers", "fc_layers.2", "--sigma", "0,4",
                         "--refine", "2", "--out", str(out), *SMALL)
    assert code == 0
    layer = json.loads((out / "profile.json").read_text())["layers"][0]
    assert [p["sigma"] for p in layer["points"]] == [0.0, 1.0, 2.0, 4.0]


def test_stuck_at_sweeps_the_rate(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "profile", "--layers", "fc_layers.0", "--error", "stuck",
                              "--rate", "0,0.5,1", "--out", str(out), *SMALL)
    assert code == 0 and "tolerated rate" in stdout
    profile = json.loads((out / "profile.json").read_text())
    points = profile["layers"][0]["points"]
    assert profile["axis"] == "rate" and [p["rate"] for p in points] == [0.0, 0.5, 1.0]
    assert points[0]["accuracy"] > points[-1]["accuracy"]


def test_layers_and_list_commands(capsys):
    code, out, _ = run_cli(capsys, "layers", "--model", "mnist-cnn")
    assert code == 0
    assert "conv_layers.3  Conv2d" in out and "3,612,672" in out and "64x14x14" in out
    code, out, _ = run_cli(capsys, "layers", "--json")
    assert json.loads(out)[2]["macs"] == 225_792
    for what, name in (("models", "mnist-cnn"), ("datasets", "mnist5k"), ("errors", "gaussian")):
        code, out, _ = run_cli(capsys, "list", what)
        assert code == 0 and name in out


def test_console_script_and_module_entry_points():
    for cmd in ([sys.executable, "-m", "approxmap", "--help"],
                [str(__import__("pathlib").Path(sys.executable).parent / "approxmap"), "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert "profile" in result.stdout and "layers" in result.stdout


@pytest.fixture()
def user_model(tmp_path):
    (tmp_path / "usermodel.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def build():
            torch.manual_seed(0)
            return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    """))
    gen = torch.Generator().manual_seed(0)
    np.savez(tmp_path / "data.npz", x=torch.rand(30, 12, generator=gen).numpy(),
             y=torch.randint(0, 3, (30,), generator=gen).numpy())
    return tmp_path


def test_a_users_own_model_weights_and_npz_data(user_model, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("usermodel_ref", user_model / "usermodel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.save(module.build().state_dict(), user_model / "w.pt")
    code, out, err = run_cli(capsys, "profile", "--model", f"{user_model}/usermodel.py:build",
                             "--weights", str(user_model / "w.pt"), "--data",
                             f"npz:{user_model}/data.npz", "--out", str(user_model / "run"),
                             "--trials", "2", "--sigma", "0,1", "--quiet")
    assert code == 0, err
    names = [layer["name"] for layer in json.loads((user_model / "run/profile.json").read_text())["layers"]]
    assert names == ["1", "3"]


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def bad_weight_files(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    not_sd = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_sd)
    wrong = tmp_path / "wrong.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    evil = tmp_path / "evil.pt"
    torch.save({"conv_layers.0.weight": Payload(str(tmp_path / "PWNED"))}, evil)
    return {"missing": (tmp_path / "nope.pt", "not found"),
            "corrupt": (corrupt, "corrupt"), "not a state_dict": (not_sd, "does not hold a state_dict"),
            "wrong keys": (wrong, "do not fit the model"), "pickled code": (evil, "Refused")}


@pytest.mark.parametrize("case", ["missing", "corrupt", "not a state_dict", "wrong keys",
                                  "pickled code"])
def test_bad_weights_files_are_refused(tmp_path, capsys, case):
    path, message = bad_weight_files(tmp_path)[case]
    code, _, err = run_cli(capsys, "layers", "--weights", str(path))
    assert_clean_failure(code, err, message)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("argv,message", [
    (["profile", "--model", "mnist-cn"], "Did you mean: mnist-cnn"),
    (["profile", "--data", "mnist4k"], "Did you mean: mnist5k"),
    (["profile", "--layers", "conv_layer.9"], "Did you mean: conv_layers."),
    (["profile", "--layers", "Conv3d"], "matches no layer"),
    (["profile", "--sigma=-0.5,1"], "must be >= 0"),
    (["profile", "--rate", "1.5"], "'rate' parameter of Gaussian must be [0, 1]. Got 1.5"),
    (["profile", "--error", "stuck", "--rate", "0,2"], "must be [0, 1]. Got 2"),
    (["profile", "--budget", "-1"], "--budget: expected a number in [0, 100]"),
    (["profile", "--sigma", "a,b"], "expected a list"),
    (["profile", "--trials", "0"], "expected a number of trials in [1, 100000]"),
    (["profile", "--bogus"], "unrecognized arguments: --bogus"),
    (["list", "things"], "unknown list"), (["list", "modles"], "Did you mean: models"),
    (["profile", "--data", "idk:foo"], "Unknown data scheme"),
    (["profile", "--model", "nosuchpkg.mod:build"], "Cannot import model module"),
])
def test_bad_arguments_give_one_clear_line(tmp_path, capsys, argv, message):
    try:
        code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "o"), "--images", "20")
    except SystemExit as exc:  # argparse errors exit inside parse_args
        code, err = exc.code, capsys.readouterr().err
    assert_clean_failure(code, err, message)


def test_data_that_does_not_fit_the_model(tmp_path, capsys):
    np.savez(tmp_path / "rgb.npz", x=np.zeros((4, 3, 32, 32), np.float32), y=np.zeros(4, np.int64))
    code, _, err = run_cli(capsys, "profile", "--data", f"npz:{tmp_path}/rgb.npz",
                           "--out", str(tmp_path / "o"))
    assert_clean_failure(code, err, "(3, 32, 32), but model 'mnist-cnn' takes (1, 28, 28)")
    np.savez(tmp_path / "labels.npz", x=np.zeros((4, 1, 28, 28), np.float32),
             y=np.array([0, 1, 2, 42]))
    code, _, err = run_cli(capsys, "profile", "--data", f"npz:{tmp_path}/labels.npz",
                           "--out", str(tmp_path / "o2"), "--quiet")
    assert_clean_failure(code, err, "the data does not fit the model")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    code, _, err = run_cli(capsys, "profile", "--data", f"npz:{tmp_path}/junk.npz")
    assert_clean_failure(code, err, "Cannot read")


def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "profile", "--out", str(blocker / "run"), *SMALL)
    assert_clean_failure(code, err, "Cannot write to output folder")


def test_another_setup_into_the_same_folder_is_refused_and_nothing_is_damaged(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["profile", "--layers", "fc_layers.2", "--sigma", "0,1", "--out", str(out)]
    assert run_cli(capsys, *args, *SMALL)[0] == 0
    digest = hashlib.sha256((out / "results.sqlite").read_bytes()).hexdigest()
    code, _, err = run_cli(capsys, *args, *SMALL, "--seed", "3")
    assert_clean_failure(code, err, "another setup (seed: stored 0, now 3)")
    assert hashlib.sha256((out / "results.sqlite").read_bytes()).hexdigest() == digest
    for leftover in out.glob("results.sqlite-*"):  # WAL files of a closed store
        leftover.unlink()
    (out / "results.sqlite").write_bytes(b"this is not a database" * 100)
    code, _, err = run_cli(capsys, *args, *SMALL)
    assert_clean_failure(code, err, "results store")
