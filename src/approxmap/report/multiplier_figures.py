"""Figures of approximate multiplier units: error heatmaps and per-layer metric bars.

The ``_get_*_info`` functions are pure data functions (tested without drawing); the
renderers use the object-oriented matplotlib API only (:class:`matplotlib.figure.Figure`,
no pyplot, no global state).

>>> fig = plot_error_heatmap("drum:6")                                   # doctest: +SKIP
>>> rows = [{"layer": "conv1", "unit": "drum:6", "mae": 3.1}, ...]       # doctest: +SKIP
>>> fig = plot_unit_metric_bars(rows, metric="mae")                      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers import Multiplier, characterize, create_unit

#: Axis labels of the metrics of :class:`~approxmap.multipliers.UnitMetrics`.
METRIC_LABELS = {
    "mae": "MAE (product units)",
    "mse": "MSE (product units²)",
    "wce": "worst-case error (product units)",
    "mean_error": "mean error (product units)",
    "std_error": "error std (product units)",
    "mred_pct": "MRED (%)",
    "wcre_pct": "worst-case relative error (%)",
    "ep_pct": "error probability (%)",
}
HEATMAP_CMAP = "RdBu_r"


@dataclass(frozen=True)
class _ErrorHeatmapInfo:
    """Error of every operand pair of a unit, in operand values (not indices).

    ``error[i, j]`` is ``approx - exact`` for activation ``a_values[i]`` and weight
    ``w_values[j]`` (int64, shape (256, 256)); ``vmax`` the symmetric colour limit (>= 1),
    ``extent`` the imshow extent (left, right, bottom, top) in value units.
    """

    unit: str
    signed: bool
    a_values: np.ndarray
    w_values: np.ndarray
    error: np.ndarray
    vmax: float
    extent: tuple[float, float, float, float]
    xlabel: str
    ylabel: str
    title: str


def _get_error_heatmap_info(unit: Multiplier | str) -> _ErrorHeatmapInfo:
    """Data of :func:`plot_error_heatmap` (see :class:`_ErrorHeatmapInfo`)."""
    unit = create_unit(unit)
    values = unit.operand_values()
    error = unit.error_table()
    vmax = float(max(np.abs(error).max(), 1))
    lo, hi = float(values[0]) - 0.5, float(values[-1]) + 0.5
    metrics = characterize(unit)
    kind = "signed" if unit.signed else "unsigned"
    title = (f"{unit.name} ({kind}): error approx − exact, MAE {metrics.mae:.4g}, "
             f"WCE {metrics.wce:.0f}")
    return _ErrorHeatmapInfo(unit.name, unit.signed, values, values.copy(), error, vmax,
                             (lo, hi, lo, hi), "weight operand w", "activation operand a",
                             title)


def plot_error_heatmap(unit: Multiplier | str) -> Figure:
    """Heatmap of ``approx - exact`` over all (activation, weight) operand pairs.

    Activation ``a`` on the vertical axis, weight ``w`` on the horizontal one, both in
    operand values (0..255, or -128..127 for signed units); a diverging colormap centred
    at 0 (symmetric limits ±max|error|), blue below and red above the exact product.
    """
    info = _get_error_heatmap_info(unit)
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(info.error, origin="lower", extent=info.extent, cmap=HEATMAP_CMAP,
                      vmin=-info.vmax, vmax=info.vmax, interpolation="nearest",
                      aspect="equal")
    ax.set(xlabel=info.xlabel, ylabel=info.ylabel)
    ax.set_title(info.title, fontsize="medium")
    fig.colorbar(image, ax=ax, label="error (product units)")
    return fig


@dataclass(frozen=True)
class _MetricBarsInfo:
    """Grouped bars: ``values[i, j]`` is the metric of ``units[j]`` at ``layers[i]``
    (float64, NaN where the rows give none); layers and units in order of appearance."""

    metric: str
    ylabel: str
    layers: list[str]
    units: list[str]
    values: np.ndarray


def _get_metric_bars_info(rows: Sequence[Mapping[str, Any]],
                          metric: str = "mae") -> _MetricBarsInfo:
    """Data of :func:`plot_unit_metric_bars`.

    Raises:
        InvalidParameterError: no rows, a row without ``layer``, ``unit`` or ``metric``,
            a non-numeric value, or the same (layer, unit) twice.
    """
    if not rows:
        raise InvalidParameterError("No rows to plot: give dicts with layer, unit and "
                                    f"{metric!r}.")
    layers: list[str] = []
    units: list[str] = []
    cells: dict[tuple[str, str], float] = {}
    for n, row in enumerate(rows):
        missing = [k for k in ("layer", "unit", metric) if k not in row]
        if missing:
            raise InvalidParameterError(f"Row {n} lacks the keys {missing}.")
        layer, unit, value = str(row["layer"]), str(row["unit"]), row[metric]
        if value is None:
            value = math.nan
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise InvalidParameterError(
                f"Row {n}: {metric} must be a number, got {value!r}.")
        if (layer, unit) in cells:
            raise InvalidParameterError(f"Row {n}: layer {layer!r} and unit {unit!r} appear "
                                        "twice.")
        cells[(layer, unit)] = float(value)
        if layer not in layers:
            layers.append(layer)
        if unit not in units:
            units.append(unit)
    values = np.full((len(layers), len(units)), np.nan)
    for (layer, unit), value in cells.items():
        values[layers.index(layer), units.index(unit)] = value
    ylabel = METRIC_LABELS.get(metric, metric)
    return _MetricBarsInfo(metric, ylabel, layers, units, values)


def plot_unit_metric_bars(rows: Sequence[Mapping[str, Any]], metric: str = "mae",
                          log: bool = False) -> Figure:
    """Grouped bar chart of a metric per layer (groups) and unit (bars, one colour each).

    Args:
        rows: dicts with ``layer``, ``unit`` and the metric under the key ``metric``, e.g.
            ``{"layer": l, "unit": u.name, **characterize(u, hist).to_dict()}``.
        metric: the key to plot, e.g. ``"mae"`` (weighted MAE) or ``"mred_pct"``.
        log: logarithmic value axis.
    """
    info = _get_metric_bars_info(rows, metric)
    n_layers, n_units = info.values.shape
    fig = Figure(figsize=(max(6.0, 0.5 + n_layers * (0.35 * n_units + 0.4)), 3.6),
                 layout="constrained")
    ax = fig.subplots()
    width = 0.8 / n_units
    x = np.arange(n_layers)
    colors = [f"C{j % 10}" for j in range(n_units)]
    for j, unit in enumerate(info.units):
        ax.bar(x - 0.4 + (j + 0.5) * width, np.nan_to_num(info.values[:, j], nan=0.0),
               width=width, label=unit, color=colors[j])
    ax.set_xticks(x, info.layers, rotation=30 if n_layers > 6 else 0, ha="right"
                  if n_layers > 6 else "center")
    ax.set(xlabel="layer", ylabel=info.ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(title="unit", fontsize="small", ncols=min(n_units, 4))
    return fig
