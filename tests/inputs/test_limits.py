"""Kinds 14, 19 and 20: requests beyond the machine and values that would run for hours are
refused by validated ranges (one line, before any work); out of memory is one line saying
what was asked and what to lower; silently accepted values say so."""

from __future__ import annotations

import time

import pytest

from approxmap.cli.options import MAX_BATCH, MAX_IMAGES, MAX_SWEEP, MAX_TRIALS

from .conftest import FAST, ok, one_error, run_cli

SHAPES = {"-1,28,28": "positive integers", "0,28,28": "positive integers",
          "1,100000,100000": "values per sample", "": "positive integers",
          "a,b": "positive integers", "1,,28": "positive integers",
          "65536,65536": "values per sample", "1,28,28,0": "positive integers"}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_layers_input_shapes(capsys, shape):
    one_error(run_cli(capsys, "layers", "--input-shape", shape), "--input-shape", SHAPES[shape])


BEYOND = [
    ("prune", "--ratio", "0.5", "--threads", "100000"),
    ("prune", "--ratio", "0.5", "--latency-batch", "10000000"),
    ("prune", "--ratio", "0.5", "--repeats", "100000000"),
    ("prune", "--ratio", "0.5", "--finetune-epochs", "100000"),
    ("sensitivity", "--draws", "100000"),
    ("sensitivity", "--ratios", "0:1:100000"),
    ("significance", "--thresholds", "0:1:5000"),
    ("significance", "--calib-images", "999999999"),
    ("profile", "--max-trials", str(MAX_TRIALS + 1), "--ci-target", "1"),
    ("profile", "--refine", "1000"),
    ("profile", "--sigma", "0:1:1000000"),
    ("profile", "--sweep", "std=0:1:1000000"),
    ("profile", "--mean", "0:1:100000"),
    ("profile", "--sigma", "0:100000"),
    ("profile", "--trials", "1000000000"),
    ("significance", "--trials", "1000000000"),
]


@pytest.mark.parametrize("argv", BEYOND, ids=lambda a: " ".join(a[:3]))
def test_requests_beyond_the_machine_are_refused_at_once(capsys, tmp_path, data_arg, argv):
    start = time.monotonic()
    one_error(run_cli(capsys, *argv, *data_arg, *FAST, "--out", tmp_path / "o"))
    assert time.monotonic() - start < 20  # refused before any model, data or trial
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["profile", "significance", "sensitivity", "prune"])
@pytest.mark.parametrize("option, value, limit", [
    ("--batch-size", "10000000", MAX_BATCH), ("--images", "999999999", MAX_IMAGES),
    ("--batch-size", str(MAX_BATCH + 1), MAX_BATCH)])
def test_sizes_have_one_range_everywhere(capsys, tmp_path, command, option, value, limit):
    extra = ("--ratio", "0.5") if command == "prune" else ()
    line = one_error(run_cli(capsys, command, *extra, option, value, "--out", tmp_path / "o"),
                     option, f"{limit}]")
    assert value in line


def test_sweeps_are_bounded_by_one_constant():
    from approxmap.cli.options import number_list
    assert len(number_list(f"0:1:{MAX_SWEEP}")) == MAX_SWEEP
    with pytest.raises(Exception, match="at most|1 to"):
        number_list(f"0:1:{MAX_SWEEP + 1}")


@pytest.mark.parametrize("argv, fragment", [
    (("significance", "--sigma", "1e308"), "--sigma"),
    (("significance", "--sigma", "inf"), "--sigma"),
    (("profile", "--sigma", "0,1e308"), "float32's range"),
    (("profile", "--sigma", "0,1,4e38", "--scale", "abs"), "float32's range"),
    (("profile", "--mean", "1e308", "--sigma", "0,1"), "float32's range"),
    (("profile", "--error", "stuck", "--value", "1e300"), "float32's range"),
    (("profile", "--sigma", "nan"), "finite"),
])
def test_magnitudes_that_cannot_be_applied_are_refused_before_any_work(capsys, tmp_path,
                                                                      data_arg, argv, fragment):
    one_error(run_cli(capsys, *argv, *data_arg, *FAST, "--out", tmp_path / "o"), fragment)
    assert not (tmp_path / "o").exists()


def test_a_relative_magnitude_that_overflows_at_a_site_is_refused_before_any_trial(
        capsys, tmp_path, data_arg):
    """3e38 times the std of a layer's clean outputs (> 1) leaves float32's range: found by
    resolving every scenario after the clean pass, so not one trial is stored."""
    out = tmp_path / "o"
    line = one_error(run_cli(capsys, "profile", "--sigma", "0,1,3e38", *data_arg, *FAST,
                             "--trials", "1", "--out", out), "clean std", "float32's range")
    assert "smaller relative magnitude" in line
    assert not (out / "results.sqlite").exists() and not (out / "profile.json").exists()


@pytest.mark.parametrize("factory, detail", [("hungry", ""), ("cuda_hungry", "CUDA")])
def test_out_of_memory_is_one_line_saying_what_to_lower(capsys, tmp_path, user_models, data_arg,
                                                        factory, detail):
    line = one_error(run_cli(capsys, "profile", "--model",
                             f"{user_models / 'models.py'}:{factory}", *data_arg, *FAST,
                             "--batch-size", "10", "--out", tmp_path / "o"),
                     "out of memory", "--batch-size 10", "--images 20", "lower", detail)
    assert "Traceback" not in line


def test_more_images_than_the_data_holds_says_so_and_runs(capsys, tmp_path, data_arg):
    outcome = ok(run_cli(capsys, "profile", *data_arg, "--images", "100", "--quiet",
                         "--trials", "1", "--sigma", "0", "--layers", "fc_layers.2",
                         "--out", tmp_path / "o"))
    assert outcome.lines == ["approxmap: warning: mnist60.npz has 60 images; using all of them "
                             "(asked for 100)."]


def test_more_images_and_a_refusal_is_still_one_line(capsys, tmp_path, data_arg):
    """The warning of loading is not shown when the command is refused after it."""
    one_error(run_cli(capsys, "profile", *data_arg, "--images", "100", "--quiet", "--layers",
                      "nope", "--out", tmp_path / "o"), "nope")
    one_error(run_cli(capsys, "profile", *data_arg, "--images", "100", "--quiet", "--device",
                      "tpu", "--out", tmp_path / "o"), "tpu")


@pytest.mark.parametrize("argv", [
    ("profile", "--data", "npz:"), ("profile", "--data", "idx:"),
    ("profile", "--data", "folder:"), ("profile", "--data", "idx:#train"),
    ("profile", "--data", "folder:#map.txt"), ("profile", "--weights", ""),
    ("profile", "--out", ""), ("profile", "--model", ""), ("report", ""),
    ("profile", "--data", " "), ("prune", "--plan", ""), ("prune", "--layer-ratios", " "),
    ("profile", "--model", "/tmp/:build"),
])
def test_empty_paths_never_read_as_the_current_folder(capsys, argv):
    line = one_error(run_cli(capsys, *argv))
    assert "not found: ." not in line and ": .\n" not in line and not line.endswith(": .")
