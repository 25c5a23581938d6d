"""A campaign killed (SIGKILL) or interrupted (SIGINT) resumes to the same results."""

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["profile", "--images", "150", "--trials", "4", "--sigma", "0.5,1", "--batch-size", "50",
        "--quiet"]


def cli(out, *extra):
    return [sys.executable, "-m", "approxmap", *ARGS, "--out", str(out), *extra]


def stored_trials(path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def comparable(out):
    profile = json.loads((out / "profile.json").read_text())
    for key in ("created", "command"):
        profile.pop(key)
    return profile


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(cli(out), check=True, capture_output=True)
    return comparable(out)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_campaign_resumes_to_the_uninterrupted_result(tmp_path, reference, sig):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(cli(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while stored_trials(out / "results.sqlite") < 8 and proc.poll() is None:
        assert time.monotonic() < deadline, "no trial was stored in time"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    done = stored_trials(out / "results.sqlite")
    assert proc.returncode != 0, "the campaign finished before it could be interrupted"
    assert 8 <= done < 40
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"Traceback" not in err

    subprocess.run(cli(out), check=True, capture_output=True)
    assert stored_trials(out / "results.sqlite") == 40  # 5 layers x 2 sigmas x 4 trials
    assert comparable(out) == reference


# -- every command's campaigns resume: significance (resilience) and sensitivity -----------------

RESUMABLE = {
    "significance": (["significance", "--criteria", "l1,resilience", "--layers", "conv_layers.3",
                      "conv_layers.6", "--calib-images", "100", "--images", "100",
                      "--batch-size", "50", "--quiet"],
                     ["significance.json", "significance.csv", "agreement.csv"], 64),
    "sensitivity": (["sensitivity", "--layers", "conv_layers.3", "conv_layers.6", "--compare",
                     "smallest,random", "--ratios", "0.2,0.4,0.6,0.8", "--calib-images", "100",
                     "--images", "100", "--batch-size", "25", "--quiet"],
                    ["sensitivity.json", "sensitivity.csv"], 8),
}


def run_command(argv, out):
    return [sys.executable, "-m", "approxmap", *argv, "--out", str(out)]


def output_files(out, names):
    """The files' contents; in JSON files the command line (which names --out) is left out."""
    files = {}
    for name in names:
        text = (out / name).read_text()
        if name.endswith(".json"):
            data = json.loads(text)
            data.pop("command", None)
            text = json.dumps(data, sort_keys=True)
        files[name] = text
    return files


@pytest.mark.slow
@pytest.mark.parametrize("command", list(RESUMABLE))
def test_a_killed_command_resumes_to_identical_output_files(tmp_path, command):
    argv, files, some = RESUMABLE[command]
    reference = tmp_path / "reference"
    subprocess.run(run_command(argv, reference), check=True, capture_output=True)
    total = stored_trials(reference / "results.sqlite")
    out = tmp_path / "killed"
    proc = subprocess.Popen(run_command(argv, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while stored_trials(out / "results.sqlite") < some and proc.poll() is None:
        assert time.monotonic() < deadline, "no trial was stored in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode != 0, "the command finished before it could be killed"
    assert some <= stored_trials(out / "results.sqlite") < total
    subprocess.run(run_command(argv, out), check=True, capture_output=True)
    assert stored_trials(out / "results.sqlite") == total
    assert output_files(out, files) == output_files(reference, files)


# -- a run folder written by approxmap 0.1 opens, resumes and reports ---------------------------

FIXTURE = Path(__file__).parent / "fixtures"
V1_ARGS = ["profile", "--model", "mnist-cnn", "--data", "npz:mnist60.npz", "--layers",
           "conv_layers.0", "fc_layers.2", "--sigma", "0,0.5,1", "--batch-size", "30", "--quiet",
           "--out", "v1-run"]


def test_a_version_1_run_folder_is_migrated_resumed_and_reported(tmp_path):
    shutil.copytree(FIXTURE / "v1-run", tmp_path / "v1-run")
    shutil.copy(FIXTURE / "mnist60.npz", tmp_path / "mnist60.npz")
    store = tmp_path / "v1-run" / "results.sqlite"
    with sqlite3.connect(store) as db:
        before = db.execute("SELECT * FROM trials ORDER BY scenario, trial").fetchall()
    report = subprocess.run([sys.executable, "-m", "approxmap", "report", "v1-run"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "data:image/png" in (tmp_path / "v1-run" / "report.html").read_text()
    resumed = subprocess.run([sys.executable, "-m", "approxmap", *V1_ARGS, "--trials", "3"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(store) as db:
        after = db.execute("SELECT * FROM trials ORDER BY scenario, trial").fetchall()
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert len(before) == 12 and len(after) == 18  # 2 layers x 3 sigmas x (2 kept + 1 new)
    assert set(before) <= set(after)  # nothing stored was changed
    profile = json.loads((tmp_path / "v1-run" / "profile.json").read_text())
    assert all(p["trials"] == 3 for layer in profile["layers"] for p in layer["points"])
    # the stored trials equal the same trials recomputed by this version
    again = subprocess.run([sys.executable, "-m", "approxmap", *V1_ARGS[:-1], "fresh",
                            "--trials", "3"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(tmp_path / "fresh" / "results.sqlite") as db:
        fresh = db.execute("SELECT * FROM trials ORDER BY scenario, trial").fetchall()
    assert [row[:-1] for row in fresh] == [row[:-1] for row in after]  # all but the seconds
