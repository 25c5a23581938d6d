"""The architecture's seams: the layers contract holds, and each kind of extension is one class
plus its registration: an error model, a target, an engine, an analysis with its renderer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

import approxmap as am
from approxmap.cli import main

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
SMALL = ["--images", "40", "--trials", "2", "--quiet"]


def lint(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (make test installs it)")
def test_the_layers_contract_holds_and_catches_a_new_cycle(tmp_path):
    kept = lint(ROOT / "src")
    assert kept.returncode == 0 and "1 kept, 0 broken" in kept.stdout, kept.stdout[-2000:]
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "approxmap", copy / "approxmap",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors", "*.npz"))
    data = copy / "approxmap" / "core" / "data.py"
    data.write_text(data.read_text() + "\nfrom approxmap.report import folder  # a cycle\n")
    broken = lint(copy)
    assert broken.returncode != 0 and "approxmap.core is not allowed to import approxmap.report" in (
        broken.stdout), broken.stdout[-2000:]


# -- an error model: one class + its registration, usable from `approxmap profile` -------------

@am.register_error_model("toy-scale")
@dataclass(frozen=True)
class ToyScale(am.ErrorModel):
    """Multiplies every element by `factor` (1 = no error)."""

    factor: float = 1.0
    default_axis: ClassVar[str] = "factor"
    default_sweep: ClassVar[tuple[float, ...]] = (1.0, 0.5)

    def apply(self, tensor, generator):
        return tensor * self.factor

    def is_identity(self):
        return self.factor == 1.0


def test_a_registered_error_model_is_profiled_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["profile", "--error", "toy-scale", "--sweep", "factor=1,0.5,0", "--layers",
                 "fc_layers.0", "--out", str(out), *SMALL])
    assert code == 0, capsys.readouterr().err
    profile = json.loads((out / "profile.json").read_text())
    points = profile["layers"][0]["points"]
    assert profile["axis"] == "factor" and [p["magnitude"] for p in points] == [0.0, 0.5, 1.0]
    assert points[0]["accuracy"] < points[2]["accuracy"] == profile["clean_accuracy"]
    assert main(["profile", "--error", "toy-scale", "--sweep", "gain=1,2", "--out",
                 str(tmp_path / "x"), *SMALL]) == 2
    assert "has no parameter 'gain'" in capsys.readouterr().err


# -- a target: one class + its registration ------------------------------------------------------

@am.register_target("toy-negated")
class ToyNegated(am.Target):
    """The module's call replaced: its output negated, then the error applied to it."""

    hook = "call"

    def call(self, site, state, module, args, kwargs, params):
        return state.apply(-module(*args, **kwargs), torch.Generator().manual_seed(0))


def test_a_registered_target_runs_in_the_engine(mnist_model, mnist_small):
    scenario = am.Scenario.single(am.Site("fc_layers.2", "toy-negated"), am.Gaussian(std=0.0))
    for engine in (am.LocalEngine(), am.LocalEngine(prefix_cache=False)):
        campaign = am.Campaign(mnist_model, mnist_small, [scenario], am.Run(engine=engine, trials=1))
        campaign.run()
        with torch.no_grad():
            lowest = mnist_model(mnist_small.x).argmin(1)  # negated logits: the argmin wins
        expected = (lowest == mnist_small.y).float().mean().item()
        assert campaign.summaries()[0].accuracy == pytest.approx(expected) and expected < 0.5


# -- an engine: one class + its registration (wrapping the local one) ----------------------------

@am.register_engine("toy-counting")
class CountingEngine(am.LocalEngine):
    """The local engine, counting the groups of trials it runs."""

    groups = 0

    def run(self, model, data, batch_size, plans, calibration, on_finished, **kw):
        def count(records):
            CountingEngine.groups += 1
            on_finished(records)

        super().run(model, data, batch_size, plans, calibration, count, **kw)


def test_a_registered_engine_gives_identical_results(mnist_model, mnist_small):
    scenarios = [am.Scenario.single(am.Site(layer), am.Gaussian(std=0.5, scale="rel"))
                 for layer in ("conv_layers.3", "fc_layers.0")]
    records = []
    for engine in (am.create_engine("local"), am.create_engine("toy-counting")):
        campaign = am.Campaign(mnist_model, mnist_small, scenarios, am.Run(engine=engine, trials=2))
        campaign.run()
        records.append(campaign.records())
    assert CountingEngine.groups == 2 and records[0].keys() == records[1].keys()
    assert all(records[0][k].same_result(records[1][k]) for k in records[0])


# -- an analysis: its result and renderer, each one class + registration --------------------------

@am.register_result("toy-analysis")
@dataclass
class ToyResult(am.Result):
    model: str = ""
    clean_accuracy: float = 0.0


@am.register_renderer("toy-analysis")
class ToyRenderer(am.Renderer):
    def section(self, result, folder):
        return am.Section("Toy analysis", f"<p id='toy'>{result.clean_accuracy:.3f}</p>")


def test_a_registered_analysis_appears_in_the_report(tmp_path, mnist_model, mnist_small):
    folder = am.RunFolder(tmp_path, am.identity_of(mnist_model, mnist_small, "mnist-cnn"))
    clean = am.Campaign(mnist_model, mnist_small, run=folder.run()).clean_accuracy()
    folder.save(ToyResult("mnist-cnn", clean))
    html = (tmp_path / "report.html").read_text()
    assert f"<p id='toy'>{clean:.3f}</p>" in html and "Toy analysis" in html
    assert json.loads((tmp_path / "toy-analysis.json").read_text())["clean_accuracy"] == clean
