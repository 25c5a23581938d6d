"""Kinds 16, 17 and 18: run folders. A refused run leaves --out as it was; a folder of
another model, weights or data is refused with its files byte-identical (one report never
mixes two setups); a foreign results.sqlite is never written to; a damaged store or result
file is one line naming the file, for every command that opens the folder and for
`approxmap report`."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import approxmap as am
from approxmap.campaign.store import Store
from approxmap.core.exceptions import StoreError
from approxmap.core.records import Counts, TrialRecord

from .conftest import FAST, ok, one_error, run_cli, snapshot

COMMANDS = {
    "profile": ("profile", "--trials", "1", "--sigma", "0,1", "--layers", "fc_layers.2"),
    "significance": ("significance", "--trials", "1", "--criteria", "l1,resilience",
                     "--layers", "conv_layers.6", "--calib-images", "20"),
    "sensitivity": ("sensitivity", "--ratios", "0.5", "--layers", "conv_layers.6",
                    "--calib-images", "20"),
    "prune": ("prune", "--ratio", "0.5", "--calib-images", "20", "--repeats", "1"),
}


@pytest.fixture(scope="module")
def full_folder(tmp_path_factory, data_npz):
    """One folder holding the results of all four commands (mnist-cnn on mnist60)."""
    import contextlib
    import io

    from approxmap.cli import main

    folder = tmp_path_factory.mktemp("runs") / "all"
    for argv in COMMANDS.values():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main([*argv, "--data", f"npz:{data_npz}", *FAST, "--out", str(folder)]) == 0
    return folder


def copy_of(full_folder, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(full_folder, target)
    return target


# -- 16: a refused run leaves the folder as it was ------------------------------------------

REFUSALS = {
    "bad layer": ("--layers", "nope"),
    "bad data": ("--data", "npz:{nan}"),
    "model error": ("--model", "{models}:forward_value_3", "--batch-size", "5"),
    "bad device": ("--device", "cuda:x"),
}


@pytest.fixture
def nan_npz(tmp_path, data_npz):
    arrays = dict(np.load(data_npz))
    arrays["x"][0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    return tmp_path / "nan.npz"


@pytest.mark.parametrize("refusal", list(REFUSALS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_refused_run_leaves_out_as_it_was_and_the_next_run_works(
        capsys, tmp_path, data_arg, nan_npz, user_models, command, refusal):
    extra = [a.format(nan=nan_npz, models=user_models / "models.py")
             for a in REFUSALS[refusal]]
    argv = list(COMMANDS[command])
    if command == "prune" and refusal == "bad layer":
        ratios = tmp_path / "ratios.json"
        ratios.write_text('{"nope": 0.5}')
        argv[1:3] = ["--layer-ratios", str(ratios)]
        extra = []
    for state in ("missing", "empty"):
        out = tmp_path / state
        if state == "empty":
            out.mkdir()
        before = snapshot(out)
        one_error(run_cli(capsys, *argv, *data_arg, *FAST, *extra, "--out", out))
        assert snapshot(out) == before, state
    out = tmp_path / "empty"
    ok(run_cli(capsys, *COMMANDS[command], *data_arg, *FAST, "--out", out))
    assert (out / "report.html").is_file()
    if refusal != "model error":  # another model is another setup: refused, see below
        before = snapshot(out)
        one_error(run_cli(capsys, *argv, *data_arg, *FAST, *extra, "--out", out))
        assert snapshot(out) == before


# -- 17: folders of another setup --------------------------------------------------------------

@pytest.fixture(scope="module")
def other_setups(tmp_path_factory, data_npz, user_models):
    folder = tmp_path_factory.mktemp("other")
    state = am.create_model("mnist-cnn").state_dict()
    state["fc_layers.2.bias"] = state["fc_layers.2.bias"] + 0.01
    save_file(state, folder / "other.safetensors")
    arrays = dict(np.load(data_npz))
    arrays["x"] = np.ascontiguousarray(arrays["x"][::-1])
    arrays["y"] = np.ascontiguousarray(arrays["y"][::-1])
    np.savez(folder / "reversed.npz", **arrays)
    return {"another model": ("--model", f"{user_models / 'models.py'}:good"),
            "other weights": ("--weights", str(folder / "other.safetensors")),
            "other data": ("--data", f"npz:{folder / 'reversed.npz'}"),
            "fewer images": ("--images", "10")}


@pytest.mark.parametrize("setup", ["another model", "other weights", "other data",
                                   "fewer images"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_of_another_setup_is_refused_byte_identical(
        capsys, tmp_path, full_folder, data_arg, other_setups, command, setup):
    out = copy_of(full_folder, tmp_path)
    before = snapshot(out)
    line = one_error(run_cli(capsys, *COMMANDS[command], *data_arg, *FAST, *other_setups[setup],
                             "--out", out), "another setup")
    assert str(out) in line
    assert snapshot(out) == before  # no -wal/-shm left behind either
    report = (out / "report.html").read_text()
    assert "mnist-cnn" in report and "models.py" not in report


@pytest.mark.parametrize("command", [*COMMANDS, "report"])
def test_a_foreign_sqlite_file_is_never_written_to(capsys, tmp_path, data_arg, command):
    out = tmp_path / "o"
    out.mkdir()
    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
        db.execute("INSERT INTO invoices VALUES (1, 9.5)")
    db.close()
    before = snapshot(out)
    argv = ("report", out) if command == "report" else (*COMMANDS[command], *data_arg, *FAST,
                                                        "--out", out)
    one_error(run_cli(capsys, *argv), "another application", "results.sqlite")
    assert snapshot(out) == before


# -- 18: damaged stores and result files ---------------------------------------------------------

def sql(statement):
    def damage(folder):
        with sqlite3.connect(folder / "results.sqlite") as db:
            db.execute(statement)
        db.close()
    return damage


def truncate(folder):
    path = folder / "results.sqlite"
    path.write_bytes(path.read_bytes()[:3000])


def garbage(name, text="{not json"):
    def damage(folder):
        (folder / name).write_text(text)
    return damage


DAMAGE = {  # damage -> (how, what the line names)
    "setup not JSON": (sql("UPDATE campaigns SET setup = '{oops'"), "corrupt setup"),
    "setup a list": (sql("UPDATE campaigns SET setup = '[1]'"), "corrupt setup"),
    "n text": (sql("UPDATE trials SET n = 'abc' WHERE rowid = 1"), "n = 'abc'"),
    "n zero": (sql("UPDATE trials SET n = 0"), "n = 0"),
    "n negative": (sql("UPDATE trials SET n = -5 WHERE rowid = 2"), "n = -5"),
    "count above n": (sql("UPDATE trials SET agree = n + 1 WHERE rowid = 1"), "agree"),
    "seconds text": (sql("UPDATE trials SET seconds = 'x'"), "seconds"),
    "identity not JSON": (sql("UPDATE meta SET value = '{bad'"), "identity"),
    "truncated store": (truncate, "results.sqlite"),
    "profile.json": (garbage("profile.json"), "profile.json"),
    "significance.json": (garbage("significance.json", "[]"), "significance.json"),
    "sensitivity.json": (garbage("sensitivity.json", '{"rows": 3}'), "sensitivity.json"),
    "prune.json": (garbage("prune.json", "{}"), "prune.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_folder_is_one_line_naming_the_file(capsys, tmp_path, full_folder, data_arg,
                                                      damage):
    how, fragment = DAMAGE[damage]
    for command in [*COMMANDS, "report"]:
        out = copy_of(full_folder, tmp_path, command)
        how(out)
        before = snapshot(out)
        if command == "report":
            outcome = run_cli(capsys, "report", out)
        else:
            outcome = run_cli(capsys, *COMMANDS[command], *data_arg, *FAST, "--out", out)
        line = one_error(outcome, fragment)
        assert str(out) in line, (command, line)
        assert snapshot(out) == before, command


def test_a_damaged_row_is_refused_by_the_store_api(tmp_path):
    path = tmp_path / "results.sqlite"
    store = Store(path)
    store.open_campaign("c", {"seed": 0})
    store.add_trials("c", [TrialRecord("s", 0, 1, Counts(n=4, agree=4))])
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE trials SET n = 0")
    db.close()
    with pytest.raises(StoreError, match="n = 0") as info:
        Store(path)
    assert str(path) in str(info.value)
    for bad in [("s", 0, 1, 0, *[0] * 5, 0.0, 1, 0.0), ("s", "x", 1, 4, *[0] * 5, 0.0, 1, 0.0),
                ("s", 0, 1, 4, 5, *[0] * 4, 0.0, 1, 0.0)]:
        with pytest.raises(am.InvalidParameterError):
            TrialRecord.from_row(bad)


def test_the_folder_still_reports_after_every_refusal(capsys, tmp_path, full_folder):
    out = copy_of(full_folder, tmp_path)
    ok(run_cli(capsys, "report", out))
    assert torch.__version__  # the folder is usable: nothing above damaged it
