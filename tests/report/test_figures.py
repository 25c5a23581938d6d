"""Tests of the profile figures: the pure data functions first, then the renderers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from approxmap.core.exceptions import InvalidParameterError, UnknownNameError
from approxmap.report.figures import (
    _get_curves_info,
    _get_heatmap_info,
    _get_ranking_info,
    check_profile,
    plot_curves,
    plot_heatmap,
    plot_ranking,
    render_profile_figures,
    save_figure,
)

EVIL = '<evil>&"name'
MAGNITUDES = [0.0, 0.1, 0.25, 0.5]


def _layer(name: str, rank: int, threshold: float | None, censored: bool, accs: list[float]):
    points = [
        {
            "sigma": m,
            "mean": 0.0,
            "rate": 1.0,
            "magnitude": m,
            "accuracy": a,
            "ci_low": a - 0.005,
            "ci_high": a + 0.005,
            "trials": 10,
            "agreement": 1.0,
        }
        for m, a in zip(MAGNITUDES, accs, strict=True)
    ]
    return {
        "name": name,
        "type": "Conv2d",
        "macs": 225792,
        "params": 320,
        "threshold": threshold,
        "threshold_censored": censored,
        "rank": rank,
        "points": points,
    }


def make_profile(grid: bool = False, n_extra: int = 0) -> dict[str, Any]:
    """Three layers listed out of rank order: fc (2), EVIL (3, fails), conv1 (1, censored)."""
    layers = [
        _layer("fc", 2, 0.25, False, [0.98, 0.978, 0.975, 0.90]),
        _layer(EVIL, 3, None, False, [0.98, 0.95, 0.90, 0.50]),
        _layer("conv1", 1, 0.5, True, [0.98, 0.98, 0.979, 0.978]),
    ]
    layers += [_layer(f"extra{i}", 4 + i, 0.1, False, [0.98] * 4) for i in range(n_extra)]
    cells = {
        "means": [-0.5, 0.0, 0.5],
        "sigmas": [0.0, 0.5],
        "accuracy": [[0.97, 0.5], [0.98, None], [0.96, 0.4]],
    }
    return {
        "model": "mnist-cnn",
        "dataset": "mnist5k",
        "images": 5000,
        "clean_accuracy": 0.98,
        "budget_pp": 1.0,
        "axis": "sigma",
        "error": {"kind": "gaussian", "scale": "rel", "rate": 1.0, "site": "output"},
        "layers": layers,
        "grid": {"layers": {"conv1": cells, EVIL: cells}} if grid else None,
        "created": "2026-11-29T03:30:00Z",
        "command": "approxmap profile --model mnist-cnn",
    }


def test_curves_info_budget_line_and_thresholds() -> None:
    info = _get_curves_info(make_profile())
    assert info.budget_line == pytest.approx(0.98 - 1.0 / 100)
    by_name = {c.name: c for c in info.curves}
    assert [c.name for c in info.curves] == ["fc", EVIL, "conv1"]
    assert by_name["fc"].threshold_accuracy == pytest.approx(0.975)
    assert by_name[EVIL].threshold_accuracy is None
    assert {n: c.censored for n, c in by_name.items()} == {"fc": False, EVIL: False, "conv1": True}
    assert by_name["fc"].ci_high[1] == pytest.approx(0.983)


def test_curves_info_missing_ci_becomes_nan() -> None:
    profile = make_profile()
    profile["layers"][0]["points"][1]["ci_low"] = None
    curve = _get_curves_info(profile).curves[0]
    assert math.isnan(curve.ci_low[1]) and not math.isnan(curve.ci_low[0])


def test_ranking_info_orders_by_rank_and_labels() -> None:
    bars = _get_ranking_info(make_profile()).bars
    assert [b.name for b in bars] == ["conv1", "fc", EVIL]
    assert [b.label for b in bars] == ["≥0.5", "0.25", "fails at smallest"]
    assert [b.censored for b in bars] == [True, False, False]
    assert bars[2].failed and bars[2].value == 0.0


def test_heatmap_info_grid_and_missing_cells() -> None:
    info = _get_heatmap_info(make_profile(grid=True), "conv1")
    assert info.accuracy.shape == (3, 2)
    assert math.isnan(info.accuracy[1, 1]) and info.accuracy[2, 0] == pytest.approx(0.96)
    assert info.means == [-0.5, 0.0, 0.5]


def test_heatmap_info_errors() -> None:
    with pytest.raises(InvalidParameterError, match="no grid"):
        _get_heatmap_info(make_profile(grid=False), "conv1")
    with pytest.raises(UnknownNameError, match="nope"):
        _get_heatmap_info(make_profile(grid=True), "nope")
    bad = make_profile(grid=True)
    bad["grid"]["layers"]["conv1"] = {"means": [0.0], "sigmas": [0.0], "accuracy": [[1, 2]]}
    with pytest.raises(InvalidParameterError, match="shape"):
        _get_heatmap_info(bad, "conv1")


def test_check_profile_names_missing_keys() -> None:
    profile = make_profile()
    del profile["layers"][1]["points"]
    with pytest.raises(InvalidParameterError, match="points"):
        check_profile(profile)


def test_plot_curves_draws_budget_line_and_legend() -> None:
    ax = plot_curves(make_profile()).axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in dashed] == [[pytest.approx(97.0)] * 2]
    labels = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert labels[:3] == ["fc", EVIL, "conv1"] and "budget" in labels[3]


def test_plot_curves_compact_legend_for_many_layers() -> None:
    fig = plot_curves(make_profile(n_extra=40))
    fig.draw_without_rendering()
    texts = fig.legends[0].get_texts()
    assert len(texts) == 44
    columns = {round(t.get_window_extent().x0) for t in texts}
    assert len(columns) >= 2
    assert texts[0].get_fontsize() < 10


def test_plot_ranking_order_and_hatching() -> None:
    ax = plot_ranking(make_profile()).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1. conv1", "2. fc", f"3. {EVIL}"]
    assert [p.get_hatch() or "" for p in ax.patches] == ["//", "", ""]
    assert [p.get_width() for p in ax.patches] == pytest.approx([0.5, 0.25, 0.0])
    assert any("fails at smallest" in t.get_text() for t in ax.texts)


def test_plot_heatmap_annotates_cells() -> None:
    fig = plot_heatmap(make_profile(grid=True), "conv1")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["97.0", "50.0", "98.0", "—", "96.0", "40.0"]
    assert len(fig.axes) == 2  # the heatmap and its colorbar


def test_save_figure_writes_png_and_svg(tmp_path) -> None:
    paths = save_figure(plot_ranking(make_profile()), tmp_path / "new", "ranking")
    assert [p.name for p in paths] == ["ranking.png", "ranking.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "<svg" in paths[1].read_text(encoding="utf-8")


def test_render_profile_figures_with_grid(tmp_path) -> None:
    written = render_profile_figures(make_profile(grid=True), tmp_path)
    assert set(written) == {"curves", "ranking", "heatmap:conv1", f"heatmap:{EVIL}"}
    assert written["heatmap:conv1"][0].name == "heatmap_conv1.png"
    assert written[f"heatmap:{EVIL}"][0].name == "heatmap__evil___name.png"
    assert all(p.is_file() and p.parent == tmp_path for ps in written.values() for p in ps)


def test_render_profile_figures_keeps_colliding_stems_apart(tmp_path) -> None:
    profile = make_profile(grid=True)
    cells = profile["grid"]["layers"]["conv1"]
    profile["grid"]["layers"] = {"a b": cells, "a_b": cells, "A_B": cells}
    written = render_profile_figures(profile, tmp_path)
    stems = [written[f"heatmap:{n}"][0].stem for n in ("a b", "a_b", "A_B")]
    assert stems == ["heatmap_a_b", "heatmap_a_b_2", "heatmap_A_B_3"]
    assert "curves" in written and "ranking" in written
