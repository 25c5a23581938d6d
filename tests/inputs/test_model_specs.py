"""Kind 12: malformed --model specs are one line (the command line) and one
InvalidParameterError (the API), whatever the command."""

from __future__ import annotations

import os

import pytest

from approxmap.core.exceptions import ApproxmapError, InvalidParameterError
from approxmap.zoo.models import load_model

from .conftest import FAST, one_error, run_cli

MALFORMED = [":", ":f", "..:f", ".foo:bar", "a.py:", "pkg:1x", "mnist-cnn:", "a:b:c",
             "os.:f", "x y:f", "pkg:f-g", "::"]


@pytest.mark.parametrize("spec", MALFORMED)
def test_a_malformed_spec_is_one_invalid_parameter_error(spec):
    with pytest.raises(InvalidParameterError) as info:
        load_model(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", MALFORMED)
@pytest.mark.parametrize("command", ["profile", "layers", "significance", "sensitivity", "prune"])
def test_a_malformed_spec_on_the_command_line(capsys, tmp_path, data_arg, command, spec):
    extra = {"prune": ("--ratio", "0.5")}.get(command, ())
    out = () if command == "layers" else ("--out", tmp_path / "o")
    one_error(run_cli(capsys, command, "--model", spec, *data_arg, *FAST[:2], *extra, *out),
              spec)


def test_files_that_are_not_python_models(capsys, tmp_path, data_arg):
    text = tmp_path / "model.txt"
    text.write_text("def build(): pass\n")
    os.mkfifo(tmp_path / "fifo.py")
    cases = {f"{text}:build": "not a Python file", f"{tmp_path}:build": "is a folder",
             f"{tmp_path / 'fifo.py'}:build": "is a FIFO", "/dev/null:build": "is a device",
             f"{tmp_path / 'missing.py'}:build": "not found",
             "no_such_module_xyz.sub:build": "Cannot import"}
    for spec, fragment in cases.items():
        one_error(run_cli(capsys, "profile", "--model", spec, *data_arg, *FAST,
                          "--out", tmp_path / "o"), fragment)
        with pytest.raises(ApproxmapError):
            load_model(spec)
