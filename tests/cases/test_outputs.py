"""Models whose output is not a logits tensor: (logits, features) tuples and dicts.

One check of the output before any work, in every command and analysis, pointing to
--output-key (API: `approxmap.logits_of`); with the key every command works; a refused run
leaves the --out folder exactly as it was, so the next valid run into it works.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from casekit import FIXTURES, ONE, RUN, case, load_data, npz, spec, top1_accuracy, weights

import approxmap as am

KEYS = {"build": (0, "a tuple of 2 items", "--output-key INDEX"),
        "build_dict": ("logits", "a dict with keys 'logits', 'features'", "--output-key KEY")}


def _model(factory: str):
    model = getattr(case("case09"), factory)()
    model.load_state_dict(weights("case09.pt"))
    return model.eval()


@pytest.fixture(scope="module")
def data():
    return load_data(images=16)


ANALYSES = {
    "profile": lambda m, d: am.profile_layers(m, d, am.ProfileSpec(sweep=(0.0, 1.0)),
                                              am.Run(trials=1)),
    "significance-taylor": lambda m, d: am.compute_significance(m, d, ["l1", "taylor"]),
    "significance-mean": lambda m, d: am.compute_significance(m, d, ["mean", "apoz"]),
    "significance-analysis": lambda m, d: am.significance_analysis(
        m, d, am.SignificanceSpec(criteria=("l1", "taylor"), budget_pp=1.0)),
    "sensitivity": lambda m, d: am.sensitivity_analysis(m, d, am.SensitivitySpec(ratios=(0.5,))),
    "prune": lambda m, d: am.prune_analysis(m, d, am.PruneSpec(ratio=0.5, repeats=2)),
}


@pytest.mark.parametrize("factory", list(KEYS))
@pytest.mark.parametrize("analysis", list(ANALYSES))
def test_every_analysis_checks_the_output_first(factory, analysis, data):
    _, what, hint = KEYS[factory]
    with pytest.raises(am.DataError, match=f"returns {what}; pick the logits with {hint}"):
        ANALYSES[analysis](_model(factory), data)


@pytest.mark.parametrize("factory", list(KEYS))
@pytest.mark.parametrize("analysis", list(ANALYSES))
def test_with_logits_of_every_analysis_works(factory, analysis, data):
    model = am.logits_of(_model(factory), KEYS[factory][0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback from the graph split, no other notice
        result = ANALYSES[analysis](model, data)
    assert result is not None


def test_a_logits_view_shares_the_model_and_splits_like_it(data):
    tuple_model = _model("build")
    view = am.logits_of(tuple_model, 0)
    assert [n for n, _ in view.named_modules()] == [n for n, _ in tuple_model.named_modules()]
    assert view.conv1.weight is tuple_model.conv1.weight
    with torch.no_grad():
        assert torch.equal(view(data.x), tuple_model(data.x)[0])
    result = ANALYSES["profile"](view, data)
    assert result.clean_accuracy == top1_accuracy(view, data)
    assert all(layer.points[0].accuracy == result.clean_accuracy for layer in result.layers)
    plain = case("case09").build_fixed()  # the user's own wrapper: the same numbers
    plain.inner.load_state_dict(weights("case09.pt"))
    assert ANALYSES["profile"](plain.eval(), data).clean_accuracy == result.clean_accuracy


COMMANDS = (["profile", *ONE, "--sigma", "0,1"], ["significance", *ONE, "--criteria", "l1,taylor"],
            ["sensitivity", "--ratios", "0.5"], ["prune", "--ratio", "0.5"])


@pytest.mark.parametrize("factory", list(KEYS))
def test_cli_every_command_refuses_before_any_work(cli, tmp_path, factory):
    _, what, hint = KEYS[factory]
    args = ("--model", spec("case09", factory), "--weights", FIXTURES / "case09.pt", "--data",
            npz(), "--images", "16")
    for command in COMMANDS:
        out = tmp_path / command[0]
        line = cli.refused(*command, *args, *RUN, "--out", out)
        assert f"returns {what}; pick the logits with {hint}" in line
        assert not out.exists()
    line = cli.refused("layers", *args[:-2])
    assert f"returns {what}; pick the logits with {hint}" in line


def test_cli_a_refused_run_leaves_the_folder_as_it_was(cli, tmp_path):
    args = ("--weights", FIXTURES / "case09.pt", "--data", npz(), "--images", "16", *RUN, *ONE,
            "--sigma", "0,1")
    out = tmp_path / "run"
    out.mkdir()
    line = cli.refused("profile", "--model", spec("case09"), *args, "--out", out)
    assert "--output-key" in line
    assert list(out.iterdir()) == []  # no results.sqlite
    cli.ok("profile", "--model", spec("case09"), "--output-key", "0", *args, "--out", out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "results.sqlite" in before
    cli.refused("profile", "--model", spec("case09"), *args, "--out", out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    cli.ok("profile", "--model", spec("case09"), "--output-key", "0", *args, "--out", out)
    profile = json.loads((out / "profile.json").read_text())
    assert [layer["name"] for layer in profile["layers"]] == ["conv1", "conv2", "fc"]


def test_cli_with_the_output_key_every_command_works(cli, tmp_path):
    common = ("--weights", FIXTURES / "case09.pt", "--data", npz(), "--images", "16")
    for command in COMMANDS:
        cli.ok(*command, "--model", spec("case09"), "--output-key", "0", *common, *RUN,
               "--out", tmp_path / command[0])
    cli.ok("significance", *ONE, "--criteria", "taylor", "--model", spec("case09", "build_dict"),
           "--output-key", "logits", *common, *RUN, "--out", tmp_path / "dict")
    out, _ = cli.ok("layers", "--model", spec("case09", "build_dict"), "--output-key", "logits",
                    *common[:-2])
    assert "total: 92,240 MACs" in out
    line = cli.refused("profile", *ONE, "--model", spec("case09", "build_dict"), "--output-key",
                       "scores", *common, *RUN, "--out", tmp_path / "bad")
    assert "KeyError" in line and "scores" in line
