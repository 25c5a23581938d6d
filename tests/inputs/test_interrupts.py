"""Kinds 10 and 19: a real Ctrl-C (SIGINT sent to the process) exits 130 with one line at any
moment, also in the first second while modules load; only a command that stored trials
says they are kept; progress is shown from the start on a terminal."""

from __future__ import annotations

import signal
import sqlite3
import sys
import time

import pytest

from .conftest import FAST, USER_MODELS, cli_process, ok, run_cli, trial_rows

SELF_INTERRUPTING = USER_MODELS + '''

class Interrupting(Net):
    """Sends SIGINT to its own process on the forward call $AM_SIGINT_AT (a real Ctrl-C)."""

    def forward(self, x):
        if self.untraceable and float(x.sum()) < -1e30:  # every trial calls this forward
            x = -x
        self.calls += 1
        if self.calls == int(os.environ.get("AM_SIGINT_AT", "0")):
            import signal
            os.kill(os.getpid(), signal.SIGINT)
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def interrupting():
    return Interrupting(untraceable=True)


def interrupting_traceable():
    return Interrupting()
'''


def interrupted_once(process, delay: float) -> tuple[int, list[str]]:
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    return process.returncode, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_ctrl_c_while_modules_load(delay):
    """The parser imports every command (torch, scipy, matplotlib): seconds of loading."""
    code, lines = interrupted_once(cli_process("layers"), delay)
    assert (code, lines) == (130, ["approxmap: interrupted."])


def test_ctrl_c_during_a_run_keeps_finished_trials(tmp_path, data_npz):
    out = tmp_path / "o"
    process = cli_process("profile", "--data", f"npz:{data_npz}", "--images", "20", "--quiet",
                          "--trials", "50", "--sigma", "0:2:8", "--out", out)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "results.sqlite").is_file():
            try:
                with sqlite3.connect(out / "results.sqlite") as db:
                    if db.execute("SELECT count(*) FROM trials").fetchone()[0]:
                        break
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be interrupted"
    code, lines = interrupted_once(process, 0)
    assert code == 130 and len(lines) == 1, lines
    assert "finished trial" in lines[0] and "resumes" in lines[0] and str(out) in lines[0]
    assert trial_rows(out / "results.sqlite")  # readable, rows intact


@pytest.fixture
def interrupting(tmp_path, monkeypatch):
    (tmp_path / "models.py").write_text(SELF_INTERRUPTING)
    return f"{tmp_path / 'models.py'}:interrupting"


def test_a_real_interrupt_in_process_says_kept_trials_only_when_stored(
        capsys, tmp_path, data_arg, interrupting, monkeypatch):
    previous = signal.getsignal(signal.SIGINT)
    # batches of 5 of 20 images; per layer 2 sigmas x 10 trials x 4 batches = 80 forwards
    # after the 6 of the checks and the clean pass: the 110th is in the second layer's
    # trials, after the first layer's were stored
    monkeypatch.setenv("AM_SIGINT_AT", "110")
    outcome = run_cli(capsys, "profile", "--model", interrupting, *data_arg, *FAST,
                      "--batch-size", "5", "--trials", "10", "--sigma", "0,1,2", "--layers",
                      "fc", "conv2", "--out", tmp_path / "p")
    assert outcome.code == 130
    assert outcome.lines[-1].startswith("approxmap: interrupted")
    assert all(line.startswith("approxmap: warning:") for line in outcome.lines[:-1])
    stored = len(trial_rows(tmp_path / "p" / "results.sqlite"))
    assert stored > 0
    assert f"{stored} finished trials are kept in {tmp_path / 'p'}" in outcome.lines[-1]
    # significance by l1 and mean |a| stores no trial: no promise of kept trials
    monkeypatch.setenv("AM_SIGINT_AT", "5")  # in the mean |a| pass, after a trace
    outcome = run_cli(capsys, "significance", "--model", interrupting + "_traceable",
                      *data_arg, *FAST,
                      "--batch-size", "5", "--criteria", "l1,mean", "--calib-images", "20",
                      "--out", tmp_path / "s")
    assert (outcome.code, outcome.lines) == (130, ["approxmap: interrupted."])
    assert not (tmp_path / "s" / "results.sqlite").exists()
    assert signal.getsignal(signal.SIGINT) is previous  # main gives the handler back


def test_a_keyboard_interrupt_raised_by_user_code_is_not_a_ctrl_c(capsys, tmp_path, data_arg,
                                                                  user_models):
    outcome = run_cli(capsys, "profile", "--model",
                      f"{user_models / 'models.py'}:forward_interrupt_3", *data_arg, *FAST,
                      "--out", tmp_path / "o")
    assert outcome.code == 2
    assert outcome.lines == [f"approxmap: error: the model's code (--model "
                             f"{user_models / 'models.py'}:forward_interrupt_3) raised "
                             "KeyboardInterrupt"]


def test_progress_is_shown_from_the_start_on_a_terminal(capsys, tmp_path, data_arg,
                                                        monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    outcome = ok(run_cli(capsys, "profile", *data_arg, "--images", "20", "--trials", "1",
                         "--sigma", "0,1", "--layers", "fc_layers.2", "--out", tmp_path / "o"))
    assert outcome.lines[0].startswith("loading mnist-cnn")  # before the model and data load
    assert outcome.lines[1].startswith("profile: gaussian errors")  # before the first trial
    quiet = ok(run_cli(capsys, "profile", *data_arg, "--images", "20", "--trials", "1",
                       "--sigma", "0,1", "--layers", "fc_layers.2", "--quiet", "--out",
                       tmp_path / "o"))
    assert quiet.lines == []
