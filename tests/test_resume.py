"""A campaign killed (SIGKILL) or interrupted (SIGINT) resumes to the same results."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

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
