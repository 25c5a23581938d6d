"""Kind 15: an option shared by several commands is defined once (cli/options.py) and refused
with the same one line by every command that has it, before any model or data is loaded."""

from __future__ import annotations

import re

import pytest
import torch

from .conftest import one_error, run_cli

COMMANDS = {  # what each command needs besides the option under test
    "profile": ("--trials", "1", "--sigma", "0,1"),
    "significance": ("--trials", "1", "--criteria", "l1"),
    "sensitivity": ("--ratios", "0.5"),
    "prune": ("--ratio", "0.5"),
    "layers": (),
    "train": ("--arch", "lenet5"),
}
HAS = {  # option -> the commands that have it
    "--seed": ["profile", "significance", "sensitivity", "prune", "train"],
    "--batch-size": ["profile", "significance", "sensitivity", "prune"],
    "--images": ["profile", "significance", "sensitivity", "prune", "layers"],
    "--calib-images": ["significance", "sensitivity", "prune"],
    "--trials": ["profile", "significance"],
    "--data": ["profile", "significance", "sensitivity", "prune", "layers", "train"],
    "--out": ["profile", "significance", "sensitivity", "prune"],
    "--model": ["profile", "significance", "sensitivity", "prune", "layers"],
    "--weights": ["profile", "significance", "sensitivity", "prune", "layers"],
    "--output-key": ["profile", "significance", "sensitivity", "prune", "layers"],
    "--device": ["profile", "significance", "sensitivity", "prune"],
    "--engine": ["profile", "significance", "sensitivity", "prune"],
}
VALUES = {
    "--seed": ["-1", "abc", "1.5", str(2**63)],
    "--batch-size": ["0", "-3", "x"],
    "--images": ["0", "-1", "1e3"],
    "--calib-images": ["0", "many"],
    "--trials": ["0", "-2"],
    "--data": ["", "  "],
    "--out": ["", " "],
    "--model": ["", " "],
    "--weights": [""],
    "--output-key": [""],
    "--device": ["tpu", "cuda:x", "", "meta"],
    "--engine": ["nope", ""],
}
if not torch.cuda.is_available():
    VALUES["--device"] += ["cuda", "cuda:1"]

CASES = [(option, value) for option, values in VALUES.items() for value in values]


def normalized(line: str, command: str) -> str:
    return re.sub(rf"approxmap {command} --help", "approxmap COMMAND --help", line)


@pytest.mark.parametrize("option, value", CASES, ids=[f"{o}={v!r}" for o, v in CASES])
def test_one_option_one_refusal_in_every_command(capsys, tmp_path, option, value):
    lines = {}
    for command in HAS[option]:
        out = ("--out", tmp_path / command) if "--out" not in (option,) and command in HAS[
            "--out"] else ()
        line = one_error(run_cli(capsys, command, *COMMANDS[command], option, value, *out),
                         option if value.strip() or option != "--device" else "")
        lines[command] = normalized(line, command)
        assert not any(tmp_path.iterdir()), f"{command} wrote into its run folder"
    assert len(set(lines.values())) == 1, lines


def test_no_option_is_taken_for_a_longer_one(capsys):
    """--out is not an abbreviation of --output-key (layers has no --out)."""
    one_error(run_cli(capsys, "layers", "--out", "x"), "unrecognized arguments: --out")
    one_error(run_cli(capsys, "profile", "--sig", "0,1"), "unrecognized arguments: --sig")
