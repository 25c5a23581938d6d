"""Figures and report sections of significance, classification, sensitivity and pruning.

Data functions (`_get_*_info`) are pure and tested without drawing; renderers use the
object-oriented matplotlib API only. `join_report` adds a section to a run folder's
report.html, next to the resilience profile when the folder has one.

>>> join_report("runs/x", "significance", Section("Significance", "<p>...</p>"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

CLASS_COLORS = {"critical": "#c0392b", "approximable": "#f39c12", "prunable": "#27ae60"}
ORDER_STYLES = {"smallest": "-", "largest": "--", "random": ":"}


def _get_layer_info(values: Sequence[float], classes: Sequence[str] | None) -> dict[str, Any]:
    """Filters sorted by normalized significance (descending), with their classes."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(-values, kind="stable")
    labels = [classes[i] for i in order] if classes is not None else ["critical"] * len(values)
    return {"filters": order.tolist(), "values": values[order].tolist(), "classes": labels}


def plot_layer_significance(layer: str, values: Sequence[float], classes: Sequence[str] | None,
                            criterion: str) -> Figure:
    """Bars of the layer's filters sorted by significance, coloured by class."""
    info = _get_layer_info(values, classes)
    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(info["values"]))
    ax.bar(x, info["values"], color=[CLASS_COLORS[c] for c in info["classes"]], width=1.0)
    handles = [Patch(color=color, label=f"{cls} ({info['classes'].count(cls)})")
               for cls, color in CLASS_COLORS.items() if cls in info["classes"]]
    ax.set(xlabel="filters, most significant first", ylabel=f"{criterion} (normalized)",
           title=f"{layer}", xlim=(-0.5, len(x) - 0.5))
    ax.legend(handles=handles, fontsize="small", loc="upper right")
    return fig


def _get_agreement_info(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    pairs = list(dict.fromkeys(f"{r['a']}~{r['b']}" for r in rows))
    grid = np.full((len(layers), len(pairs)), np.nan)
    for r in rows:
        value = r["rho"]
        grid[layers.index(r["layer"]), pairs.index(f"{r['a']}~{r['b']}")] = (
            np.nan if value is None else value)
    return {"layers": layers, "pairs": pairs, "rho": grid}


def plot_agreement(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Heatmap of Spearman rho per layer (rows) and criterion pair (columns)."""
    info = _get_agreement_info(rows)
    height = 1.5 + 0.28 * len(info["layers"])
    fig = Figure(figsize=(1.6 + 0.9 * len(info["pairs"]) + 2, height), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(info["rho"], vmin=-1, vmax=1, cmap="RdBu", aspect="auto")
    ax.set_xticks(range(len(info["pairs"])), info["pairs"], rotation=45, ha="right")
    ax.set_yticks(range(len(info["layers"])), info["layers"], fontsize="small")
    for (i, j), v in np.ndenumerate(info["rho"]):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize="x-small")
    fig.colorbar(image, ax=ax, label="Spearman ρ")
    ax.set_title("Agreement between criteria")
    return fig


def _get_sensitivity_info(result: Mapping[str, Any], order: str) -> dict[str, Any]:
    curves: dict[str, list[tuple[float, float]]] = {}
    for r in result["rows"]:
        if r["order"] == order:
            coupled = len(r.get("convs", ())) - 1
            name = r["layer"] + (f" (+{coupled} coupled)" if coupled > 0 else "")
            curves.setdefault(name, []).append((100 * r["ratio"], 100 * r["accuracy"]))
    clean = 100 * result["clean_accuracy"]
    return {"clean": clean, "curves": {k: [(0.0, clean), *sorted(v)] for k, v in curves.items()}}


def plot_sensitivity(result: Mapping[str, Any], order: str = "smallest") -> Figure:
    """Accuracy against % of filters pruned, one line per layer (Li et al. 2017, Fig. 2(b))."""
    info = _get_sensitivity_info(result, order)
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, points in info["curves"].items():
        x, y = zip(*points, strict=True)
        ax.plot(x, y, marker="o", markersize=3, label=name)
    ax.set(xlabel="filters pruned away (%)", ylabel="accuracy (%)",
           title=f"Pruning sensitivity per layer ({order} first, no fine-tuning)")
    ax.legend(fontsize="x-small", ncol=2 if len(info["curves"]) > 8 else 1)
    return fig


def plot_order_comparison(result: Mapping[str, Any]) -> Figure:
    """Per layer, accuracy against % pruned for smallest / largest / random (Li et al. §4.4)."""
    orders = list(dict.fromkeys(r["order"] for r in result["rows"]))
    layers = list(_get_sensitivity_info(result, orders[0])["curves"])
    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.5 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True)).ravel()
    for ax, layer in zip(axes, layers, strict=False):
        for order in orders:
            curve = _get_sensitivity_info(result, order)["curves"].get(layer, [])
            if curve:
                x, y = zip(*curve, strict=True)
                ax.plot(x, y, ORDER_STYLES.get(order, "-"), marker="o", markersize=2, label=order)
        ax.set_title(layer, fontsize="small")
        ax.set_xlabel("% pruned", fontsize="small")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize="x-small")
    for ax in axes[len(layers):]:
        ax.set_visible(False)
    return fig


def plot_tradeoff(levels: Sequence[Mapping[str, Any]]) -> Figure:
    """Accuracy before/after fine-tuning against MAC reduction, one point per pruning level."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    x = [100 * (1 - lv["macs"] / lv["base_macs"]) for lv in levels]
    ax.plot(x, [100 * lv["accuracy"] for lv in levels], "o--", label="pruned, no fine-tuning")
    tuned = [(xi, lv["finetuned_accuracy"]) for xi, lv in zip(x, levels, strict=True)
             if lv.get("finetuned_accuracy") is not None]
    if tuned:
        ax.plot([t[0] for t in tuned], [100 * t[1] for t in tuned], "o-", label="after fine-tuning")
    base = levels[0]["base_accuracy"] * 100 if levels else None
    if base is not None:
        ax.axhline(base, color="grey", lw=0.8, label="unpruned")
        ax.axhline(base - 1, color="grey", lw=0.8, ls=":", label="unpruned − 1 pp")
    ax.set(xlabel="MACs removed (%)", ylabel="accuracy (%)", title="Accuracy–efficiency trade-off")
    ax.legend(fontsize="small")
    return fig


__all__ = ["plot_agreement", "plot_layer_significance", "plot_order_comparison",
           "plot_sensitivity", "plot_tradeoff"]
