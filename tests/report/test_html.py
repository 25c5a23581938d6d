"""Tests of report.html: self-contained, escaped, with every figure and section."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from approxmap.analysis.profile import ProfileResult
from approxmap.core.exceptions import InvalidParameterError
from approxmap.report.folder import RunFolder
from approxmap.report.html import Figure, Section, page

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
            "wilson_low": 0.97 - m / 10,
            "wilson_high": 0.99 - m / 10,
            "top5": 1.0,
            "nonfinite": 0,
            "loss": 0.1,
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
        "threshold_interval": [threshold, None if censored else 0.5],
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
        "selection": "all 5000 images",
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


def _save(profile, folder_path) -> str:
    """Save the profile as a result of a fresh run folder; the report's text."""
    folder = RunFolder(folder_path)
    return folder.save(ProfileResult.from_dict(profile))["report"].read_text(encoding="utf-8")


def test_report_is_self_contained_and_escaped(profile, tmp_path) -> None:
    text = _save(profile, tmp_path)
    assert text.startswith("<!DOCTYPE html>")
    assert EVIL_ESCAPED in text and "<evil>" not in text
    assert "approxmap profile --model &lt;m&gt;" in text
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and "<script" not in text
    assert text.count(PNG_URI) == 3  # curves, ranking, one heatmap
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "ranking.svg").is_file()


def test_report_ranking_and_points_tables(profile, tmp_path) -> None:
    text = _save(profile, tmp_path)
    ranking = text[text.index("<h3>Layer ranking</h3>"): text.index("<h3>Per-layer results")]
    assert ranking.index("fc2") < ranking.index("fc1") < ranking.index(EVIL_ESCAPED)
    assert "<td>≥ 0.5</td>" in ranking and "<td>0.25 (0.25–0.5)</td>" in ranking
    assert "<td>fails</td>" in ranking and "<td>1,234,567</td>" in ranking
    assert "<td>[97.50, 98.50]</td>" in text and "<td>93.00</td>" in text
    assert text.count("<details>") == 3
    assert ">98.00 %</td>" in text and "accuracy ≥ 97.00 %" in text


def test_a_moved_folder_still_shows_every_figure(profile, tmp_path) -> None:
    _save(profile, tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")
    for path in (tmp_path / "b").glob("*.png"):
        path.unlink()  # even with the figures gone, the report is rebuilt from the results
    rebuilt = RunFolder(tmp_path / "b").write_report(rerender=True).read_text(encoding="utf-8")
    assert rebuilt.count(PNG_URI) == 3 and str(tmp_path / "a") not in rebuilt


def test_sections_embed_svg_and_png_figures_from_the_folder(tmp_path) -> None:
    from matplotlib.figure import Figure as MplFigure

    from approxmap.report.figures import save_figure

    fig = MplFigure()
    fig.add_subplot().plot([0, 1])
    png, svg = save_figure(fig, tmp_path, "fig")
    section = Section("Filter <significance>", "<p id='sig'>x</p>",
                      [Figure(svg.name, "an svg"), Figure(png.name)])
    text = page(tmp_path, "t", [("Model", "m")], [section])
    assert "<h2>Filter &lt;significance&gt;</h2><p id='sig'>x</p>" in text
    assert text.count("data:image/svg+xml;base64,") == 1 and text.count(PNG_URI) == 1
    assert "<svg" not in text


def test_bad_figures_and_damaged_results_raise_one_clear_error(profile, tmp_path) -> None:
    (tmp_path / "fig.pdf").write_bytes(b"%PDF")
    with pytest.raises(InvalidParameterError, match="fig.pdf"):
        page(tmp_path, "t", [], [Section("s", "", [Figure("fig.pdf")])])
    with pytest.raises(InvalidParameterError, match="missing.png"):
        page(tmp_path, "t", [], [Section("s", "", [Figure("missing.png")])])
    broken = copy.deepcopy(profile)
    del broken["layers"]
    with pytest.raises(InvalidParameterError, match="layers"):
        ProfileResult.from_dict(broken)
