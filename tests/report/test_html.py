"""Tests of report.html: self-contained, escaped, with every figure and section."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from approxmap.exceptions import InvalidParameterError
from approxmap.report import Section, render_profile_figures, write_report

EVIL = '<evil>&"name'
EVIL_ESCAPED = "&lt;evil&gt;&amp;&quot;name"
PNG_URI = "data:image/png;base64,"


def _layer(name: str, rank: int, threshold: float | None, censored: bool) -> dict[str, Any]:
    points = [
        {
            "sigma": m,
            "mean": 0.0,
            "rate": 1.0,
            "magnitude": m,
            "accuracy": 0.98 - m / 10,
            "ci_low": 0.975 - m / 10,
            "ci_high": 0.985 - m / 10,
            "trials": 10,
            "agreement": 1.0,
        }
        for m in (0.0, 0.1, 0.25, 0.5)
    ]
    return {
        "name": name,
        "type": "Linear",
        "macs": 1234567,
        "params": 320,
        "threshold": threshold,
        "threshold_censored": censored,
        "rank": rank,
        "points": points,
    }


@pytest.fixture
def profile() -> dict[str, Any]:
    """Three layers out of rank order; fc2 censored, EVIL failing; a grid for EVIL."""
    cells = {"means": [-0.5, 0.5], "sigmas": [0.0, 0.5], "accuracy": [[0.98, 0.5], [None, 0.4]]}
    return {
        "model": "mnist-cnn",
        "dataset": "mnist5k",
        "images": 5000,
        "clean_accuracy": 0.98,
        "budget_pp": 1.0,
        "axis": "sigma",
        "error": {"kind": "gaussian", "scale": "rel", "rate": 1.0, "site": "output"},
        "layers": [
            _layer("fc1", 2, 0.25, False),
            _layer(EVIL, 3, None, False),
            _layer("fc2", 1, 0.5, True),
        ],
        "grid": {"layers": {EVIL: cells}},
        "created": "2026-11-29T03:30:00Z",
        "command": "approxmap profile --model <m>",
    }


def test_report_is_self_contained_and_escaped(profile, tmp_path) -> None:
    path = write_report(profile, tmp_path)
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "report.html" and page.startswith("<!DOCTYPE html>")
    assert EVIL_ESCAPED in page and "<evil>" not in page
    assert "approxmap profile --model &lt;m&gt;" in page
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    assert page.count(PNG_URI) == 3  # curves, ranking, one heatmap
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "ranking.svg").is_file()


def test_report_embeds_every_given_figure(profile, tmp_path) -> None:
    figures = render_profile_figures(profile, tmp_path / "figs")
    page = write_report(profile, tmp_path, figures).read_text(encoding="utf-8")
    assert page.count(PNG_URI) == len(figures) == 3
    assert f"layer {EVIL_ESCAPED}</figcaption>" in page
    assert not (tmp_path / "curves.png").exists()  # given figures are not re-rendered


def test_report_ranking_and_points_tables(profile, tmp_path) -> None:
    page = write_report(profile, tmp_path, figures={}).read_text(encoding="utf-8")
    assert PNG_URI not in page and "<h2>Figures</h2>" not in page
    ranking = page[page.index("<h2>Layer ranking</h2>") : page.index("<h2>Per-layer results")]
    assert ranking.index("fc2") < ranking.index("fc1") < ranking.index(EVIL_ESCAPED)
    assert "<td>≥ 0.5</td>" in ranking and "<td>0.25</td>" in ranking
    assert "<td>—</td>" in ranking and "<td>1,234,567</td>" in ranking
    assert "<td>[97.50, 98.50]</td>" in page and "<td>93.00</td>" in page
    assert page.count("<details>") == 3
    assert ">98.00 %</td>" in page and "accuracy ≥ 97.00 %" in page


def test_sections_are_appended_after_profile(profile, tmp_path) -> None:
    figures = render_profile_figures(profile, tmp_path)
    section = Section(
        "Filter <significance>", "<p id='sig'>pruning table</p>", [figures["ranking"][1]]
    )
    page = write_report(profile, tmp_path, {}, sections=[section]).read_text(encoding="utf-8")
    assert "<h2>Filter &lt;significance&gt;</h2><p id='sig'>pruning table</p>" in page
    assert page.index("<p id='sig'>") > page.index("<h2>Per-layer results</h2>")
    assert page.count("data:image/svg+xml;base64,") == 1 and PNG_URI not in page


def test_svg_only_figure_is_embedded_as_data_uri(profile, tmp_path) -> None:
    svg = render_profile_figures(profile, tmp_path)["curves"][1]
    page = write_report(profile, tmp_path, {"curves": [svg]}).read_text(encoding="utf-8")
    assert page.count("data:image/svg+xml;base64,") == 1
    assert "<svg" not in page and "http://" not in page


def test_bad_inputs_raise_invalid_parameter(profile, tmp_path) -> None:
    (tmp_path / "fig.pdf").write_bytes(b"%PDF")
    with pytest.raises(InvalidParameterError, match="fig.pdf"):
        write_report(profile, tmp_path, {"curves": [tmp_path / "fig.pdf"]})
    with pytest.raises(InvalidParameterError, match="missing.png"):
        write_report(profile, tmp_path, {"curves": [tmp_path / "missing.png"]})
    broken = copy.deepcopy(profile)
    del broken["clean_accuracy"]
    with pytest.raises(InvalidParameterError, match="clean_accuracy"):
        write_report(broken, tmp_path, {})
    assert not (tmp_path / "report.html").exists()
