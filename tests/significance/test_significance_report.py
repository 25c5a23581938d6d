"""Figure data functions, report joining and latency measurement."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.core.latency import measure_latency
from approxmap.report.folder import RunFolder
from approxmap.report.significance_figures import (
    _get_agreement_info,
    _get_layer_info,
    _get_sensitivity_info,
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


def test_the_report_holds_every_result_of_the_folder(tmp_path, mnist_model, mnist_small):
    folder = RunFolder(tmp_path, am.identity_of(mnist_model, mnist_small, "mnist-cnn"))
    run = folder.run(trials=1)
    folder.save(am.profile_layers(mnist_model, mnist_small, am.ProfileSpec(
        layers=("conv_layers.0",), sweep=(0.0, 1.0)), run))
    folder.save(am.significance_analysis(mnist_model, mnist_small, am.SignificanceSpec(
        criteria=("l1", "apoz")), run))
    html = (tmp_path / "report.html").read_text()
    assert html.index("Layer-wise error resilience") < html.index("Filter significance")
    assert "Layer ranking" in html and "conv_layers.0" in html
    assert html.count("data:image/png") >= 5  # curves, ranking, agreement, 3 layers' filters


def test_latency_restores_threads_and_validates():
    before = torch.get_num_threads()
    result = measure_latency(nn.Linear(4, 2), torch.zeros(1, 4), threads=1, repeats=5, warmup=1)
    assert result.repeats == 5 and result.median_ms > 0 and result.p10_ms <= result.p90_ms
    assert torch.get_num_threads() == before
    with pytest.raises(am.InvalidParameterError, match="repeats"):
        measure_latency(nn.Linear(4, 2), torch.zeros(1, 4), repeats=0)
