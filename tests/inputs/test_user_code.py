"""Kind 10: user code that raises (the model module's import, its factory, its forward on any
batch, SystemExit and KeyboardInterrupt included) is one line naming the model and the
exception, exit code 2, and leaves stored results as they were."""

from __future__ import annotations

import pytest

from .conftest import FAST, ok, one_error, run_cli, trial_rows

COMMANDS = {
    "profile": ("profile", "--trials", "1", "--sigma", "0,1"),
    "significance": ("significance", "--trials", "1", "--criteria", "l1,mean",
                     "--calib-images", "20"),
    "sensitivity": ("sensitivity", "--ratios", "0.5", "--calib-images", "20"),
    "prune": ("prune", "--ratio", "0.5", "--calib-images", "20", "--repeats", "1"),
}

FACTORY = {  # factory -> what the one line names
    "raises_value": ("Model factory", "ValueError", "bad configuration"),
    "raises_exit": ("Model factory", "SystemExit", "3"),
    "raises_interrupt": ("KeyboardInterrupt",),
    "returns_int": ("must return a torch.nn.Module", "int"),
}


@pytest.mark.parametrize("factory", list(FACTORY))
@pytest.mark.parametrize("command", ["profile", "significance", "sensitivity", "prune", "layers"])
def test_a_factory_that_raises(capsys, tmp_path, user_models, data_arg, command, factory):
    spec = f"{user_models / 'models.py'}:{factory}"
    if command == "layers":
        argv = ("layers", "--model", spec, "--input-shape", "1,28,28")
    else:
        argv = (*COMMANDS[command], "--model", spec, *data_arg, *FAST, "--out", tmp_path / "o")
    line = one_error(run_cli(capsys, *argv), *FACTORY[factory])
    assert spec in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("module, names", [
    ("import_raises", ("RuntimeError", "import fails")),
    ("import_exits", ("SystemExit", "5")),
    ("import_interrupts", ("KeyboardInterrupt",)),
    ("syntax_error", ("SyntaxError",)),
])
def test_a_model_module_whose_import_raises(capsys, tmp_path, user_models, data_arg, module,
                                            names):
    spec = f"{user_models / (module + '.py')}:build"
    line = one_error(run_cli(capsys, "profile", "--model", spec, *data_arg, *FAST,
                             "--out", tmp_path / "o"), *names)
    assert module in line


@pytest.mark.parametrize("kind, names", [
    ("value", ("ValueError", "boom on call")),
    ("exit", ("SystemExit", "4")),
    ("interrupt", ("KeyboardInterrupt",)),
])
@pytest.mark.parametrize("call", [3, 5])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_forward_that_raises_on_a_later_batch(capsys, tmp_path, user_models, data_arg,
                                                command, kind, names, call):
    """Batches of 5 of 20 images: the forward raises on its 3rd or 5th call (the clean pass's
    1st or 3rd batch for profile; a trace or criterion pass for the others)."""
    spec = f"{user_models / 'models.py'}:forward_{kind}_{call}"
    out = tmp_path / "o"
    line = one_error(run_cli(capsys, *COMMANDS[command], "--model", spec, *data_arg, *FAST,
                             "--batch-size", "5", "--out", out), *names)
    assert spec in line
    assert "Traceback" not in line
    assert not (out / "results.sqlite").exists() and not (out / "report.html").exists()


def test_a_forward_failing_in_a_resumed_run_leaves_stored_trials_intact(
        capsys, tmp_path, user_models, data_arg, monkeypatch):
    """Same model, same folder: the first run stores trials; the second (more sigmas) fails in
    the model's forward, on a batch after the first, and every stored row is unchanged."""
    spec = f"{user_models / 'models.py'}:from_env"
    out = tmp_path / "o"
    common = ("profile", "--model", spec, *data_arg, *FAST, "--trials", "2", "--batch-size",
              "5", "--layers", "fc", "--out", out)
    ok(run_cli(capsys, *common, "--sigma", "0,1"))
    before = trial_rows(out / "results.sqlite")
    report = (out / "report.html").read_bytes()
    assert len(before) == 4
    for fail_at in (5, 9, 14):  # the clean pass's 3rd batch, then batches of trials
        monkeypatch.setenv("AM_FAIL_AT", str(fail_at))
        line = one_error(run_cli(capsys, *common, "--sigma", "0,1,2"), "ValueError",
                         "boom from the environment", warnings_ok=True)
        assert spec in line
        after = trial_rows(out / "results.sqlite")
        assert after[:len(before)] == before or set(before) <= set(after)
        assert (out / "report.html").read_bytes() == report
    monkeypatch.delenv("AM_FAIL_AT")
    ok(run_cli(capsys, *common, "--sigma", "0,1,2"))
    assert set(before) <= set(trial_rows(out / "results.sqlite"))
