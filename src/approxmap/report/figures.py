"""Figures of a resilience profile: pure ``_get_*_info`` data functions plus renderers.

Renderers use the object-oriented :class:`matplotlib.figure.Figure` API only, so no
backend is selected and no global pyplot state is touched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from approxmap.core.exceptions import InvalidParameterError, UnknownNameError
from approxmap.core.statistics import wilson

PNG_DPI = 130
COMPACT_LEGEND_ABOVE = 12
_PROFILE_KEYS = ("model", "dataset", "clean_accuracy", "budget_pp", "axis", "layers")
_LAYER_KEYS = ("name", "threshold", "threshold_censored", "rank", "points")
_AXIS_LABELS = {"sigma": "error std σ", "rate": "error rate",
                "bit": "bit position (0 = least significant)"}
_KIND_AXIS_LABELS = {("bitflip", "rate"): "bit error rate (per element-bit)",
                     ("stuckbit", "rate"): "fraction of elements stuck"}
_LINESTYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class _Curve:
    name: str
    x: np.ndarray
    accuracy: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    threshold: float | None
    threshold_accuracy: float | None
    censored: bool


@dataclass(frozen=True)
class _CurvesInfo:
    axis_label: str
    clean_accuracy: float
    budget_pp: float
    budget_line: float
    curves: list[_Curve]


@dataclass(frozen=True)
class _Bar:
    name: str
    rank: int | None
    value: float
    censored: bool
    failed: bool
    label: str


@dataclass(frozen=True)
class _RankingInfo:
    axis_label: str
    bars: list[_Bar]


@dataclass(frozen=True)
class _HeatmapInfo:
    layer: str
    means: list[float]
    sigmas: list[float]
    accuracy: np.ndarray  # fraction, shape (len(means), len(sigmas)), NaN where missing
    rows: str = "mean"  # the parameter along the rows
    columns: str = "sigma"  # the swept parameter along the columns


def check_profile(profile: Mapping[str, Any]) -> None:
    """Raise InvalidParameterError if the profile lacks a key the report needs."""
    missing = [k for k in _PROFILE_KEYS if k not in profile]
    if missing:
        raise InvalidParameterError(f"The profile is missing the keys {missing}.")
    for layer in profile["layers"]:
        missing = [k for k in _LAYER_KEYS if k not in layer]
        if missing:
            name = layer.get("name", "?")
            raise InvalidParameterError(f"Layer {name!r} of the profile is missing {missing}.")


def safe_name(name: str) -> str:
    """Return name with every character unsafe in a file name replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def format_number(value: float | None) -> str:
    """Format a magnitude compactly ('0.35', '1e-05'); '—' for None."""
    return "—" if value is None else f"{value:.4g}"


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def _accuracy_at(x: np.ndarray, y: np.ndarray, where: float | None) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if where is None or not ok.any():
        return None
    return float(np.interp(where, x[ok], y[ok]))


def _axis_label(profile: Mapping[str, Any]) -> str:
    kind = (profile.get("error") or {}).get("kind")
    axis = str(profile["axis"])
    return _KIND_AXIS_LABELS.get((kind, axis)) or _AXIS_LABELS.get(axis, axis)


def _get_curves_info(profile: Mapping[str, Any]) -> _CurvesInfo:
    """Collect the accuracy curves, CI bands and thresholds of every layer."""
    curves = []
    for layer in profile["layers"]:
        points = layer["points"]
        x = _floats([p["magnitude"] for p in points])
        acc = _floats([p["accuracy"] for p in points])
        threshold = layer["threshold"]
        curves.append(
            _Curve(
                name=str(layer["name"]),
                x=x,
                accuracy=acc,
                ci_low=_floats([p.get("ci_low") for p in points]),
                ci_high=_floats([p.get("ci_high") for p in points]),
                threshold=threshold,
                threshold_accuracy=_accuracy_at(x, acc, threshold),
                censored=bool(layer["threshold_censored"]),
            )
        )
    clean, budget = float(profile["clean_accuracy"]), float(profile["budget_pp"])
    return _CurvesInfo(_axis_label(profile), clean, budget, clean - budget / 100, curves)


def _style(index: int, count: int) -> dict[str, Any]:
    """Colour (cycling through a qualitative colormap) and line style of curve index."""
    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return {"color": cmap(index % cmap.N), "linestyle": _LINESTYLES[(index // cmap.N) % 4]}


def _legend_columns(count: int) -> int:
    """One legend column up to COMPACT_LEGEND_ABOVE entries, else 2+ of about 25 rows."""
    return 1 if count <= COMPACT_LEGEND_ABOVE else max(2, math.ceil(count / 25))


def _draw_curve(ax: Axes, curve: _Curve, style: dict[str, Any]) -> None:
    """Draw one layer's line, CI band and threshold marker ('>' when censored)."""
    ax.plot(curve.x, curve.accuracy * 100, label=curve.name, linewidth=1.2, **style)
    band = {"color": style["color"], "alpha": 0.15, "linewidth": 0}
    ax.fill_between(curve.x, curve.ci_low * 100, curve.ci_high * 100, **band)
    if curve.threshold_accuracy is not None:
        marker = ">" if curve.censored else "o"
        ax.plot(
            curve.threshold,
            curve.threshold_accuracy * 100,
            marker=marker,
            color=style["color"],
            markeredgecolor="black",
        )


def plot_curves(profile: Mapping[str, Any]) -> Figure:
    """Plot accuracy (%) against error magnitude, one line and CI band per layer.

    Example:
        >>> fig = plot_curves(profile)  # doctest: +SKIP
    """
    info = _get_curves_info(profile)
    ncols = _legend_columns(len(info.curves) + 1)
    fig = Figure(figsize=(10 + 1.5 * (ncols - 1), 5.5), layout="constrained")
    ax = fig.add_subplot()
    for i, curve in enumerate(info.curves):
        _draw_curve(ax, curve, _style(i, len(info.curves)))
    ax.axhline(
        info.budget_line * 100,
        color="0.3",
        linestyle="--",
        linewidth=1,
        label=f"budget: clean − {info.budget_pp:g} pp",
    )
    ax.set_xlabel(info.axis_label)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{profile['model']} on {profile['dataset']}: accuracy under injected errors")
    ax.grid(True, alpha=0.3)
    fontsize = "small" if ncols == 1 else "x-small"
    fig.legend(loc="outside right upper", fontsize=fontsize, ncols=ncols)
    return fig


def _bar_label(threshold: float | None, censored: bool) -> str:
    if threshold is None:
        return "fails at smallest"
    return f"≥{format_number(threshold)}" if censored else format_number(threshold)


def layers_by_rank(profile: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the profile's layers from rank 1 (most resilient) on; unranked ones last."""
    return sorted(profile["layers"], key=lambda la: (la["rank"] is None, la["rank"] or 0))


def _get_ranking_info(profile: Mapping[str, Any]) -> _RankingInfo:
    """Order layers from most resilient (rank 1) to least; None thresholds become 0."""
    bars = []
    for layer in layers_by_rank(profile):
        threshold, censored = layer["threshold"], bool(layer["threshold_censored"])
        bars.append(
            _Bar(
                name=str(layer["name"]),
                rank=layer["rank"],
                value=0.0 if threshold is None else float(threshold),
                censored=censored,
                failed=threshold is None,
                label=_bar_label(threshold, censored),
            )
        )
    return _RankingInfo(_axis_label(profile), bars)


def plot_ranking(profile: Mapping[str, Any]) -> Figure:
    """Plot each layer's threshold as a horizontal bar, rank 1 at the top.

    Censored thresholds (lower bounds) are hatched and labelled '≥'.

    Example:
        >>> fig = plot_ranking(profile)  # doctest: +SKIP
    """
    info = _get_ranking_info(profile)
    fig = Figure(figsize=(8, max(2.5, 0.3 * len(info.bars) + 1.2)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(info.bars))
    patches = ax.barh(y, [b.value for b in info.bars], color="tab:blue", edgecolor="black")
    for yi, bar, patch in zip(y, info.bars, patches, strict=True):
        patch.set_hatch("//" if bar.censored else "")
        ax.text(
            bar.value,
            yi,
            f" {bar.label}",
            va="center",
            fontsize="small",
            color="tab:red" if bar.failed else "black",
        )
    largest = max((b.value for b in info.bars), default=0.0)
    ax.set_xlim(0, largest * 1.3 if largest > 0 else 1.0)
    ax.set_yticks(y, [f"{b.rank}. {b.name}" for b in info.bars], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(f"largest {info.axis_label} within budget")
    ax.set_title(
        f"{profile['model']}: layer resilience ranking (budget {profile['budget_pp']:g} pp)"
    )
    ax.grid(True, axis="x", alpha=0.3)
    return fig


@dataclass(frozen=True)
class _SdcCurve:
    name: str
    x: np.ndarray
    rate: np.ndarray  # SDC rate (fraction) per point
    low: np.ndarray  # 95 % Wilson interval
    high: np.ndarray


@dataclass(frozen=True)
class _SdcInfo:
    axis_label: str
    categorical: bool
    log_x: bool
    curves: list[_SdcCurve]


def _get_sdc_info(profile: Mapping[str, Any]) -> _SdcInfo:
    """Each layer's SDC rate (silent top-1 changes / samples) per swept point with its 95 %
    Wilson interval (recomputed from the counts when the profile lacks it)."""
    curves = []
    for layer in profile["layers"]:
        points = layer["points"]
        rate, low, high = [], [], []
        for p in points:
            n, sdc = p.get("samples") or 0, p.get("sdc") or 0
            rate.append(sdc / n if n else math.nan)
            lo, hi = p.get("sdc_low"), p.get("sdc_high")
            if lo is None or hi is None:
                lo, hi = wilson(sdc, n)
            low.append(lo)
            high.append(hi)
        curves.append(_SdcCurve(str(layer["name"]), _floats([p["magnitude"] for p in points]),
                                _floats(rate), _floats(low), _floats(high)))
    xs = np.concatenate([c.x for c in curves]) if curves else np.zeros(0)
    positive = xs[np.isfinite(xs) & (xs > 0)]
    log_x = (profile["axis"] == "rate" and len(positive) >= 2
             and positive.max() / positive.min() >= 100)
    return _SdcInfo(_axis_label(profile), bool(profile.get("categorical")), bool(log_x), curves)


def plot_sdc(profile: Mapping[str, Any]) -> Figure:
    """Plot the SDC rate (%) against the swept value (e.g. the bit position), one line and
    95 % Wilson band per layer.

    Example:
        >>> fig = plot_sdc(profile)  # doctest: +SKIP
    """
    info = _get_sdc_info(profile)
    ncols = _legend_columns(len(info.curves))
    fig = Figure(figsize=(10 + 1.5 * (ncols - 1), 5.5), layout="constrained")
    ax = fig.add_subplot()
    for i, curve in enumerate(info.curves):
        style = _style(i, len(info.curves))
        ax.plot(curve.x, curve.rate * 100, label=curve.name, linewidth=1.2,
                marker="o" if info.categorical else None, markersize=3, **style)
        ax.fill_between(curve.x, curve.low * 100, curve.high * 100, color=style["color"],
                        alpha=0.15, linewidth=0)
    if info.categorical and info.curves:
        xs = sorted({float(v) for c in info.curves for v in c.x if math.isfinite(v)})
        step = max(1, math.ceil(len(xs) / 32))
        ax.set_xticks(xs[::step], [format_number(v) for v in xs[::step]], fontsize="small")
    if info.log_x:
        positive = [v for c in info.curves for v in c.x if v > 0]
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel(info.axis_label)
    ax.set_ylabel("SDC rate (% of inferences, 95 % Wilson)")
    ax.set_title(f"{profile['model']} on {profile['dataset']}: silent data corruptions")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small" if ncols == 1 else "x-small",
               ncols=ncols)
    return fig


def _get_heatmap_info(profile: Mapping[str, Any], layer_name: str) -> _HeatmapInfo:
    """Return the mean × sigma accuracy grid of one layer.

    Raises:
        InvalidParameterError: the profile has no grid.
        UnknownNameError: the grid has no layer of that name.
    """
    grid = profile.get("grid")
    if not grid:
        raise InvalidParameterError("The profile has no grid: only one mean was swept.")
    layers = grid["layers"]
    if layer_name not in layers:
        raise UnknownNameError(f"No grid for layer {layer_name!r}. Grid layers: {list(layers)}.")
    cell = layers[layer_name]
    accuracy = np.array([_floats(row) for row in cell["accuracy"]], dtype=float)
    expected = (len(cell["means"]), len(cell["sigmas"]))
    if accuracy.shape != expected:
        raise InvalidParameterError(
            f"The grid of layer {layer_name!r} must have shape {expected}, got {accuracy.shape}."
        )
    return _HeatmapInfo(layer_name, list(cell["means"]), list(cell["sigmas"]), accuracy,
                        cell.get("rows") or "mean", cell.get("columns") or "sigma")


def plot_heatmap(profile: Mapping[str, Any], layer_name: str) -> Figure:
    """Plot one layer's accuracy (%) over error mean (rows) × sigma (columns).

    Example:
        >>> fig = plot_heatmap(profile, "conv_layers.0")  # doctest: +SKIP
    """
    info = _get_heatmap_info(profile, layer_name)
    rows, cols = info.accuracy.shape
    fig = Figure(figsize=(max(5.0, 0.7 * cols + 3), max(3.5, 0.5 * rows + 2)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(info.accuracy * 100), cmap="viridis", aspect="auto")
    fontsize = 8 if rows * cols <= 100 else 5
    for (i, j), value in np.ndenumerate(info.accuracy):
        dark = math.isfinite(value) and im.norm(value * 100) < 0.5
        text = f"{value * 100:.1f}" if math.isfinite(value) else "—"
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if dark else "black",
        )
    ax.set_xticks(range(cols), [format_number(s) for s in info.sigmas])
    ax.set_yticks(range(rows), [format_number(m) for m in info.means])
    ax.set_xlabel(_AXIS_LABELS.get(info.columns, info.columns))
    ax.set_ylabel(f"error {info.rows}")
    ax.set_title(f"{layer_name}: accuracy (%)")
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    return fig


def save_figure(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write fig as ``stem.png`` and ``stem.svg`` into out_dir; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    fig.savefig(png, dpi=PNG_DPI)
    fig.savefig(svg, metadata={"Date": None})
    return [png, svg]


def _heatmap_stems(layer_names: Sequence[str]) -> dict[str, str]:
    """Map each layer to a unique file stem ``heatmap_<safe name>``."""
    stems: dict[str, str] = {}
    for name in layer_names:
        stem, n = f"heatmap_{safe_name(name)}", 2
        while stem.lower() in {s.lower() for s in stems.values()}:  # case-insensitive FS
            stem, n = f"heatmap_{safe_name(name)}_{n}", n + 1
        stems[name] = stem
    return stems


def render_profile_figures(
    profile: Mapping[str, Any], out_dir: str | Path, sdc: bool = False
) -> dict[str, list[Path]]:
    """Write every figure of a profile into out_dir as PNG and SVG.

    The ranking (of thresholds) is left out when the swept axis is categorical (bit
    positions); `sdc` adds the SDC-rate figure (for bit-fault profiles).

    Returns:
        ``{"curves": [...], "ranking": [...], "sdc": [...], "heatmap:<layer>": [...]}``,
        one heatmap entry per layer of the grid (if any), each mapping to its
        ``[png, svg]`` paths.

    Example:
        >>> paths = render_profile_figures(profile, "runs/demo")  # doctest: +SKIP
    """
    check_profile(profile)
    written = {"curves": save_figure(plot_curves(profile), out_dir, "curves")}
    if not profile.get("categorical"):
        written["ranking"] = save_figure(plot_ranking(profile), out_dir, "ranking")
    if sdc:
        written["sdc"] = save_figure(plot_sdc(profile), out_dir, "sdc")
    grid_layers = list((profile.get("grid") or {}).get("layers", {}))
    for name, stem in _heatmap_stems(grid_layers).items():
        written[f"heatmap:{name}"] = save_figure(plot_heatmap(profile, name), out_dir, stem)
    return written
