"""Figure data functions, report joining and latency measurement."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.analysis.latency import measure_latency
from approxmap.report.html import Section
from approxmap.report.significance_figures import (
    _get_agreement_info,
    _get_layer_info,
    _get_sensitivity_info,
    join_report,
    plot_layer_significance,
    save_png,
)


def test_layer_info_sorts_filters_with_their_classes():
    info = _get_layer_info([0.2, 1.0, 0.0], ["approximable", "critical", "prunable"])
    assert info["filters"] == [1, 0, 2]
    assert info["classes"] == ["critical", "approximable", "prunable"]


def test_sensitivity_and_agreement_info():
    result = {"clean_accuracy": 0.9, "rows": [
        {"layer": "a", "order": "smallest", "ratio": 0.5, "accuracy": 0.8},
        {"layer": "a", "order": "largest", "ratio": 0.5, "accuracy": 0.4}]}
    info = _get_sensitivity_info(result, "largest")
    assert info["curves"] == {"a": [(0.0, 90.0), (50.0, 40.0)]}
    grid = _get_agreement_info([{"layer": "a", "a": "l1", "b": "l2", "rho": 0.5}])
    assert grid["pairs"] == ["l1~l2"] and grid["rho"][0, 0] == 0.5


def test_join_report_keeps_every_section_and_escapes(tmp_path):
    fig = save_png(plot_layer_significance("x", [1.0, 0.0], None, "l1"), tmp_path, "fig")
    join_report(tmp_path, "1-a", Section("First <one>", "<p>a</p>", [fig]),
                {"model": "m<script>", "dataset": "d", "clean_accuracy": 0.5})
    path = join_report(tmp_path, "2-b", Section("Second", "<p>b</p>"), {"model": "m", "dataset": "d"})
    html = path.read_text()
    assert "First &lt;one&gt;" in html and "<p>b</p>" in html and "data:image/png" in html
    assert html.index("First") < html.index("Second")
    assert json.loads((tmp_path / "sections" / "1-a.json").read_text())["title"] == "First <one>"


def test_join_report_keeps_the_profile(tmp_path, mnist_model, mnist_small):
    from approxmap.report.profile_files import write_profile_outputs

    profile = am.profile_layers(mnist_model, mnist_small, am.ProfileSpec(
        layers=("conv_layers.0",), sweep=(0.0, 1.0)), trials=1)
    write_profile_outputs(profile, tmp_path)
    html = join_report(tmp_path, "x", Section("Extra", "<p>x</p>")).read_text()
    assert "Layer ranking" in html and "conv_layers.0" in html and "Extra" in html


def test_latency_restores_threads_and_validates():
    before = torch.get_num_threads()
    result = measure_latency(nn.Linear(4, 2), torch.zeros(1, 4), threads=1, repeats=5, warmup=1)
    assert result.repeats == 5 and result.median_ms > 0 and result.p10_ms <= result.p90_ms
    assert torch.get_num_threads() == before
    with pytest.raises(am.InvalidParameterError, match="repeats"):
        measure_latency(nn.Linear(4, 2), torch.zeros(1, 4), repeats=0)
