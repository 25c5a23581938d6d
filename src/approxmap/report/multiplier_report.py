"""Renderers of the approximate-multiplier results: unit characterization and emulation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np
from matplotlib.figure import Figure as MplFigure

from approxmap.report.figures import safe_name, save_figure
from approxmap.report.html import Figure, Section, table
from approxmap.report.multiplier_figures import plot_error_heatmap, plot_unit_metric_bars
from approxmap.report.renderers import Renderer, percent, register_renderer, write_csv

UNIT_KEYS = ("mean_error", "std_error", "mae", "wce", "mred_pct", "wcre_pct", "ep_pct")


def _num(value) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else (
        f"{value:.4g}")


@register_renderer("units")
class UnitsRenderer(Renderer):
    def files(self, result, folder):
        write_csv(folder / "units.csv", result.units)
        names = []
        for row in result.units:
            stem = safe_name(f"unit_error_{row['unit']}")
            names.append(save_figure(plot_error_heatmap(row["unit"]), folder, stem)[0].name)
        if result.layers:
            write_csv(folder / "units_layers.csv", result.layers)
            names.append(save_figure(plot_unit_metric_bars(result.layers, "mae", log=True),
                                     folder, "units_layers_mae")[0].name)
        return names

    def section(self, result, folder):
        rows = [[u["unit"], u["family"], "yes" if u["signed"] else "no",
                 _num(u["power_mw"]) + (" (est.)" if u["power_is_estimate"] else ""),
                 *(_num(u[k]) for k in UNIT_KEYS)] for u in result.units]
        html = ("<p>Error = approximate − exact product, over all 65,536 operand pairs (MRED and "
                "WCRE over pairs with a non-zero product).</p>"
                + table(["unit", "family", "signed", "power (mW)", "mean", "std", "MAE", "WCE",
                         "MRED %", "WCRE %", "EP %"], rows))
        figures = [Figure(f"{safe_name('unit_error_' + u['unit'])}.png",
                          f"Error of {u['unit']} over (activation, weight)")
                   for u in result.units]
        if result.layers:
            layer_rows = [[r["layer"], r["unit"], _num(r["mean_error"]), _num(r["mae"]),
                           _num(r["mred_pct"])] for r in result.layers]
            html += (f"<h3>Weighted by each layer's operands</h3><p>Activation codes on "
                     f"{escape(result.calibration)} × the layer's weight codes.</p>"
                     + table(["layer", "unit", "mean", "MAE", "MRED %"], layer_rows, left=2))
            figures.append(Figure("units_layers_mae.png", "Weighted MAE per layer and unit"))
        return Section("Approximate multipliers", html, figures)


def plot_drop_heatmap(layers: Sequence[str], units: Sequence[str], drop: np.ndarray,
                      title: str) -> MplFigure:
    """Accuracy drop (pp) per layer (rows) x unit (columns), annotated."""
    fig = MplFigure(figsize=(max(6.0, 1.6 + 0.9 * len(units)), 1.2 + 0.35 * len(layers)),
                    layout="constrained")
    ax = fig.subplots()
    finite = drop[np.isfinite(drop)]
    vmax = max(float(finite.max()) if finite.size else 1.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(drop), cmap="Reds", vmin=0, vmax=vmax, aspect="auto")
    for (i, j), value in np.ndenumerate(drop):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize="x-small",
                    color="white" if value > vmax / 2 else "black")
    ax.set_xticks(range(len(units)), units, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(len(layers)), layers, fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, label="accuracy drop (pp)")
    return fig


def _drop_grid(result) -> tuple[list[str], list[str], np.ndarray]:
    units = list(dict.fromkeys(r.unit for r in result.rows if r.layer != "plan"))
    layers = [*result.layers, "*"]
    grid = np.full((len(layers), len(units)), np.nan)
    for r in result.rows:
        if r.layer in layers and r.unit in units:
            grid[layers.index(r.layer), units.index(r.unit)] = r.drop_pp
    keep = [i for i in range(len(layers)) if np.isfinite(grid[i]).any()]
    return [("all layers" if layers[i] == "*" else layers[i]) for i in keep], units, grid[keep]


@register_renderer("emulate")
class EmulateRenderer(Renderer):
    def files(self, result, folder):
        write_csv(folder / "emulate.csv", result.to_dict()["rows"])
        layers, units, grid = _drop_grid(result)
        fig = plot_drop_heatmap(layers, units, grid,
                                f"{result.model}: accuracy drop vs float (pp)")
        return [save_figure(fig, folder, "emulate_drop")[0].name]

    def section(self, result, folder):
        layers, units, grid = _drop_grid(result)
        rows = [[layer, *("" if not np.isfinite(v) else f"{v:.2f}" for v in grid[i])]
                for i, layer in enumerate(layers)]
        text = (f"Float accuracy {percent(result.float_accuracy)} %, int8 with exact products in "
                f"every layer {percent(result.int8_accuracy)} %; quantization ({result.scheme}) "
                f"calibrated on {result.calibration}. Accuracy drop vs float in percentage points, "
                "each unit in each layer alone (last row: in every layer at once).")
        html = f"<p>{escape(text)}</p>" + table(["layer", *units], rows)
        plan = next((r for r in result.rows if r.layer == "plan"), None)
        if plan is not None:
            html += (f"<p>Plan replayed: accuracy {percent(plan.accuracy)} % "
                     f"[{percent(plan.wilson_low)}, {percent(plan.wilson_high)}] (Wilson 95 %).</p>")
        return Section("Approximate multipliers: emulation", html,
                       [Figure("emulate_drop.png", "Accuracy drop per layer and unit")])


def plot_predicted_vs_emulated(rows) -> MplFigure:
    """Predicted against emulated accuracy (%), one point per (layer, unit), identity line."""
    pairs = [(100 * r.emulated, 100 * r.accuracy) for r in rows if r.emulated is not None]
    fig = MplFigure(figsize=(5.2, 5.0), layout="constrained")
    ax = fig.subplots()
    if pairs:
        x, y = zip(*pairs, strict=True)
        ax.scatter(x, y, s=14, alpha=0.7)
        low, high = min(*x, *y), max(*x, *y)
        ax.plot([low, high], [low, high], color="0.4", lw=0.8, label="identity")
        ax.legend(fontsize="small")
    ax.set(xlabel="emulated accuracy (%)", ylabel="predicted accuracy (%)",
           title="Gaussian prediction vs bit-exact emulation")
    ax.grid(True, alpha=0.3)
    return fig


@register_renderer("predict")
class PredictRenderer(Renderer):
    def files(self, result, folder):
        write_csv(folder / "predict.csv", result.to_dict()["rows"])
        return [save_figure(plot_predicted_vs_emulated(result.rows), folder,
                            "predict_vs_emulated")[0].name]

    def section(self, result, folder):
        rows = [[r.layer, r.unit, percent(r.accuracy), f"[{percent(r.ci_low)}, {percent(r.ci_high)}]",
                 "—" if r.emulated is None else percent(r.emulated),
                 "—" if r.error_pp is None else f"{r.error_pp:+.2f}", _num(r.total_rms), r.terms]
                for r in result.rows]
        html = (f"<p>{escape(f'Predicted in {result.seconds:.1f} s; quantization calibrated on {result.calibration}.')}</p>"
                + table(["layer", "unit", "predicted %", "95% CI", "emulated %", "error pp",
                         "rms error", "K"], rows, left=2))
        v = result.validation
        if v.get("pairs"):
            html += (f"<p>Prediction error over {v['pairs']} pairs whose emulated drop is at most "
                     f"{v['max_emulated_drop_pp']:g} pp: median {v['median_pp']:.2f} pp, 90th "
                     f"percentile {v['p90_pp']:.2f} pp, worst {v['worst_pp']:.2f} pp.</p>")
        if result.tolerance:
            tol = [[t["layer"], t["unit"], _num(t["tolerated_std"]), _num(t["unit_rms"]),
                    "yes" if t["fits"] else "no"] for t in result.tolerance]
            html += ("<h3>Which units each layer tolerates</h3><p>The layer's tolerated std "
                     "(profile, absolute scale) against the unit's predicted rms error.</p>"
                     + table(["layer", "unit", "tolerated std", "unit rms error", "fits"], tol,
                             left=2))
        return Section("Approximate multipliers: prediction", html,
                       [Figure("predict_vs_emulated.png", "Predicted vs emulated accuracy")])


def plot_pareto(result) -> MplFigure:
    """Multiplier energy against accuracy: the predicted front, verified points, uniform
    assignments and the chosen plan; the right panel zooms on the budget."""
    fig = MplFigure(figsize=(10, 4.4), layout="constrained")
    exact = result.exact_energy_pj
    front = sorted(result.front, key=lambda p: p["energy_pj"])
    verified = [p for p in front if p.get("verified_accuracy") is not None]
    best = result.best_uniform
    floor = 100 * result.int8_accuracy - result.budget_pp
    for ax, zoom in zip(fig.subplots(1, 2), (False, True), strict=True):
        ax.plot([100 * p["energy_pj"] / exact for p in front],
                [100 * (result.int8_accuracy - p["predicted_loss_pp"] / 100) for p in front],
                "o--", color="tab:blue", label="predicted front")
        ax.plot([100 * p["energy_pj"] / exact for p in verified],
                [100 * p["verified_accuracy"] for p in verified], "s", color="tab:green",
                label="front, verified")
        ax.plot([100 * u["energy_pj"] / exact for u in result.uniform],
                [100 * u["verified_accuracy"] for u in result.uniform], "^", color="tab:orange",
                label="uniform (one unit everywhere)")
        if best is not None:
            ax.annotate(f"best uniform: {best['unit']}",
                        (100 * best["energy_pj"] / exact, 100 * best["verified_accuracy"]),
                        fontsize="x-small", xytext=(4, -12), textcoords="offset points")
        ax.plot([100 * result.energy_pj / exact], [100 * result.verified_accuracy], "*",
                markersize=14, color="tab:red", label="plan (verified)")
        ax.axhline(floor, color="0.4", ls=":", label=f"int8 − {result.budget_pp:g} pp")
        ax.set(xlabel="multiplier energy (% of exact int8)", ylabel="accuracy (%)")
        ax.grid(True, alpha=0.3)
        if zoom:
            margin = max(result.budget_pp, 0.5)
            ax.set_ylim(floor - 3 * margin, 100 * result.int8_accuracy + margin)
            ax.set_title("near the budget (points below are cut off)", fontsize="small")
        else:
            ax.set_title(f"{result.model}: energy vs accuracy", fontsize="small")
            ax.legend(fontsize="x-small")
    return fig


@register_renderer("plan")
class PlanRenderer(Renderer):
    def files(self, result, folder):
        return [save_figure(plot_pareto(result), folder, "plan_pareto")[0].name]

    def section(self, result, folder):
        rows = [[r.layer, r.unit, "all" if r.channels is None else len(r.channels),
                 len(r.pruned), f"{r.macs:,}", f"{r.energy_pj:,.0f}", f"{r.exact_energy_pj:,.0f}",
                 f"{r.predicted_loss_pp:.2f}"] for r in result.layers]
        verdict = "meets" if result.meets_budget else "does NOT meet"
        text = (f"Multiplier energy {result.energy_pj:,.0f} pJ per inference against "
                f"{result.exact_energy_pj:,.0f} pJ for exact int8 products: saving "
                f"{result.saving_pct:.1f} %. Accuracy: float {percent(result.float_accuracy)} %, "
                f"int8 {percent(result.int8_accuracy)} %, predicted "
                f"{percent(result.predicted_accuracy)} %, verified by emulation "
                f"{percent(result.verified_accuracy)} % [{percent(result.verified_low)}, "
                f"{percent(result.verified_high)}]: the plan {verdict} the "
                f"{result.budget_pp:g} pp budget ({result.granularity} granularity"
                f"{', with pruning' if result.prune else ''}). The plan is the least-energy "
                f"emulated configuration within the budget: the {result.chosen_from}. "
                "Energy sources: "
                + ", ".join(f"{u}: {s}" for u, s in result.energy_sources.items()) + ".")
        html = f"<p>{escape(text)}</p>" + table(
            ["layer", "unit", "filters with the unit", "pruned", "MACs", "energy pJ",
             "exact pJ", "predicted loss pp"], rows)
        if result.repairs:
            html += "<p>Repairs after verification:</p>" + table(
                ["layer", "from", "to", "measured drop pp"],
                [[r["layer"], r["from"], r["to"], f"{r['measured_drop_pp']:.2f}"]
                 for r in result.repairs])
        if result.upgrades:
            html += "<p>Upgrades kept after verification:</p>" + table(
                ["layer", "from", "to", "measured drop pp"],
                [[r["layer"], r["from"], r["to"], f"{r['measured_drop_pp']:.2f}"]
                 for r in result.upgrades])
        uniform = [[u["unit"], f"{u['saving_pct']:.1f}", percent(u["verified_accuracy"]),
                    "yes" if u["meets_budget"] else "no"] for u in result.uniform]
        html += "<h3>Uniform assignments</h3>" + table(
            ["unit everywhere", "saving %", "verified accuracy %", "meets budget"], uniform)
        return Section("Approximate multipliers: plan", html,
                       [Figure("plan_pareto.png", "Energy against accuracy")])


__all__ = ["EmulateRenderer", "PlanRenderer", "PredictRenderer", "UnitsRenderer",
           "plot_drop_heatmap", "plot_pareto", "plot_predicted_vs_emulated"]
