"""Renderers: one per result kind, writing its tables and figures and its report section.

A renderer is a small class registered for a result kind:

>>> @register_renderer("toy")
... class ToyRenderer(Renderer):
...     def section(self, result, folder):
...         return Section("Toy", f"<p>{result.value}</p>")

`files(result, folder)` writes the kind's CSV tables and figures (paths relative to the
run folder), `section(result, folder)` returns the report section. Kinds without a
registered renderer are shown as a JSON summary.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from approxmap.analysis.classify import CLASSES, class_counts
from approxmap.analysis.results import Result
from approxmap.core.errors import get_error_model_class
from approxmap.core.exceptions import UnknownNameError
from approxmap.core.registry import Registry
from approxmap.core.statistics import wilson
from approxmap.faults import BitFault
from approxmap.report.figures import (
    format_number,
    layers_by_rank,
    render_profile_figures,
    safe_name,
    save_figure,
)
from approxmap.report.html import Figure, Section, table
from approxmap.report.significance_figures import (
    plot_agreement,
    plot_layer_significance,
    plot_order_comparison,
    plot_sensitivity,
)

_RENDERERS: Registry[Renderer] = Registry("renderer", ("approxmap.report.multiplier_report",))
ORDER = ("profile", "significance", "sensitivity", "prune", "units", "emulate", "plan")


def register_renderer(kind: str):
    """Class decorator registering a Renderer (one instance) for results of `kind`."""

    def wrap(cls: type[Renderer]) -> type[Renderer]:
        _RENDERERS.register(kind, cls())
        return cls

    return wrap


def renderer_for(kind: str) -> Renderer:
    return _RENDERERS.get(kind) if kind in _RENDERERS else Renderer()


class Renderer:
    """Default: no files; a section with the result's JSON."""

    def files(self, result: Result, folder: Path) -> list[str]:
        return []

    def section(self, result: Result, folder: Path) -> Section:
        text = json.dumps(result.to_dict(), indent=1)[:20_000]
        return Section(result.kind, f"<pre>{escape(text)}</pre>")


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
              ) -> None:
    """Rows as CSV (atomically: a temp file then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns or (rows[0] if rows else [])),
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _png(fig, folder: Path, stem: str) -> str:
    """Save as PNG + SVG; the PNG's name (relative to the folder) for the report."""
    return save_figure(fig, folder, safe_name(stem))[0].name


def percent(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:.{digits}f}"


# -- profile -------------------------------------------------------------------------------

PROFILE_CSV = ["rank", "layer", "type", "macs", "params", "threshold", "threshold_low",
               "threshold_high", "threshold_censored", "magnitude", "sigma", "mean", "rate",
               "accuracy", "ci_low", "ci_high", "wilson_low", "wilson_high", "top5",
               "agreement", "nonfinite", "sdc", "loss", "trials", "samples", "masked",
               "sdc_low", "sdc_high"]
_CAPTIONS = {"curves": "Accuracy against error magnitude, per layer (95 % CI bands)",
             "ranking": "Layer resilience ranking (interpolated threshold within budget)",
             "sdc": "SDC rate (top-1 changed, outputs finite) per swept value, per layer "
                    "(95 % Wilson bands)"}


def is_bit_fault(profile: Mapping[str, Any]) -> bool:
    """True when the profile's error model is a registered bit fault (bitflip, stuckbit)."""
    try:
        cls = get_error_model_class((profile.get("error") or {}).get("kind", ""))
    except UnknownNameError:
        return False
    return issubclass(cls, BitFault)


def threshold_text(layer: Mapping[str, Any]) -> str:
    threshold = layer["threshold"]
    if threshold is None:
        return "fails"
    if layer["threshold_censored"]:
        return f"≥ {format_number(threshold)}"
    low, high = (layer.get("threshold_interval") or [None, None])[:2]
    return format_number(threshold) + (f" ({format_number(low)}–{format_number(high)})"
                                       if low is not None and high is not None else "")


@register_renderer("profile")
class ProfileRenderer(Renderer):
    def files(self, result, folder):
        profile = result.to_dict()
        rows = []
        for layer in profile["layers"]:
            low, high = (layer.get("threshold_interval") or [None, None])[:2]
            facts = {"rank": layer["rank"], "layer": layer["name"], "type": layer["type"],
                     "macs": layer["macs"], "params": layer["params"],
                     "threshold": layer["threshold"], "threshold_low": low,
                     "threshold_high": high, "threshold_censored": layer["threshold_censored"]}
            rows += [{**point, **facts} for point in layer["points"]]  # the layer's params win
        write_csv(folder / "profile.csv", rows, PROFILE_CSV)
        figures = render_profile_figures(profile, folder, sdc=is_bit_fault(profile))
        return [paths[0].name for paths in figures.values()]

    def section(self, result, folder):
        profile = result.to_dict()
        categorical = bool(profile.get("categorical"))
        stems = ("curves",) + (() if categorical else ("ranking",)) + (
            ("sdc",) if is_bit_fault(profile) else ())
        figures = [Figure(f"{stem}.png", _CAPTIONS.get(stem, stem))
                   for stem in stems if (folder / f"{stem}.png").is_file()]
        figures += [Figure(p.name, f"Accuracy (%) over the grid: {p.stem.removeprefix('heatmap_')}")
                    for p in sorted(folder.glob("heatmap_*.png"))]
        error = profile.get("error") or {}
        facts = [("Error model", ", ".join(f"{k}={v}" for k, v in error.items()) or "—"),
                 ("Swept", profile["axis"]),
                 ("Budget", f"{profile['budget_pp']:g} pp (accuracy ≥ "
                            f"{percent(profile['clean_accuracy'] - profile['budget_pp'] / 100)} %)"),
                 ("Trials per point", _trials_text(profile)), ("Seed", profile.get("seed", "—"))]
        sampling = profile.get("fault_sampling")
        if sampling:
            facts.append(("Fault sampling", sampling.get("summary", "—")))
        if categorical:
            ranking = [(layer["rank"], layer["name"], layer.get("type", "—"),
                        f"{layer.get('macs', 0):,}", f"{layer.get('params', 0):,}",
                        percent(_mean_sdc(layer)), _worst_text(layer))
                       for layer in layers_by_rank(profile)]
            note = (f"<p>The swept {escape(profile['axis'])} is a category, not a magnitude: "
                    "layers are ranked by their mean accuracy over the points; the SDC rate "
                    "averaged over the points is that of a fault at a uniformly random one.</p>")
            columns = ["Rank", "Layer", "Type", "MACs", "Params", "Mean SDC rate (%)",
                       f"Most vulnerable {profile['axis']} (SDC %)"]
        else:
            ranking = [(layer["rank"], layer["name"], layer.get("type", "—"),
                        f"{layer.get('macs', 0):,}", f"{layer.get('params', 0):,}",
                        threshold_text(layer)) for layer in layers_by_rank(profile)]
            note = ("<p>Threshold: the magnitude where the mean accuracy crosses clean − budget, "
                    "interpolated between the last passing and the first failing point (in "
                    "brackets); ≥ marks a lower bound (every tested magnitude passed), 'fails' "
                    "a layer that fails at the smallest magnitude.</p>")
            columns = ["Rank", "Layer", "Type", "MACs", "Params",
                       f"Threshold ({profile['axis']})"]
        points = "".join(_points_html(layer, profile["axis"], categorical)
                         for layer in profile["layers"])
        html = (table(["Item", "Value"], facts, left=2) + "<h3>Layer ranking</h3>" + note
                + table(columns, ranking, left=0)
                + "<h3>Per-layer results</h3>" + points)
        return Section("Layer-wise error resilience", html, figures)


def _trials_text(profile: Mapping[str, Any]) -> str:
    target = profile.get("ci_target")
    if target is None:
        return str(profile.get("trials", "—"))
    return f"at least {profile['trials']}, until the 95 % CI half-width is ≤ {target * 100:g} pp"


def _sdc_rate(point: Mapping[str, Any]) -> float | None:
    samples = point.get("samples")
    return (point.get("sdc") or 0) / samples if samples else None


def _mean_sdc(layer: Mapping[str, Any]) -> float | None:
    rates = [r for r in map(_sdc_rate, layer["points"]) if r is not None]
    return sum(rates) / len(rates) if rates else None


def _worst_text(layer: Mapping[str, Any]) -> str:
    worst = max(layer["points"], key=lambda p: _sdc_rate(p) or 0.0, default=None)
    if worst is None:
        return "—"
    return f"{format_number(worst['magnitude'])} ({percent(_sdc_rate(worst))})"


def _sdc_text(point: Mapping[str, Any]) -> str:
    """SDC rate (%) with its 95 % Wilson interval, from the counts."""
    rate, samples = _sdc_rate(point), point.get("samples")
    if rate is None:
        return "—"
    low, high = point.get("sdc_low"), point.get("sdc_high")
    if low is None or high is None:
        low, high = wilson(point.get("sdc") or 0, samples)
    return f"{percent(rate)} [{percent(low)}, {percent(high)}]"


def _points_html(layer: Mapping[str, Any], axis: str, categorical: bool = False) -> str:
    rows = [(format_number(p["magnitude"]), percent(p["accuracy"]),
             f"[{percent(p.get('ci_low'))}, {percent(p.get('ci_high'))}]", _sdc_text(p),
             p.get("sdc", "—"), p.get("nonfinite", "—"), p.get("masked", "—"),
             p.get("samples", "—"), p.get("trials", "—"))
            for p in layer["points"]]
    body = table([axis, "Accuracy (%)", "95% CI (%)", "SDC rate (%) [95% Wilson]", "SDC",
                  "NaN/Inf (DUE)", "Masked", "Inferences", "Trials"], rows, left=0)
    tail = (f"mean SDC rate {percent(_mean_sdc(layer))} %" if categorical
            else f"threshold {threshold_text(layer)}")
    title = f"{layer['name']} ({layer.get('type', '?')}), {tail}"
    return f"<details><summary>{escape(title)}</summary>{body}</details>"


# -- significance ---------------------------------------------------------------------------


@register_renderer("significance")
class SignificanceRenderer(Renderer):
    def files(self, result, folder):
        write_csv(folder / "significance.csv", result.filters())
        write_csv(folder / "agreement.csv", result.agreement, ["layer", "a", "b", "rho"])
        sig = result.significance()
        norm = sig.normalized(result.rank_by)
        names = [] if not result.agreement else [_png(plot_agreement(result.agreement), folder,
                                                      "agreement")]
        names += [_png(plot_layer_significance(layer, norm[layer], result.classes[layer],
                                               result.rank_by), folder, f"significance_{layer}")
                  for layer in result.layers]
        return names

    def section(self, result, folder):
        header, rows = count_rows(result)
        how = result.classification
        text = (f"Classes by normalized {result.rank_by} significance ({how['mode']}: "
                + ", ".join(f"{k}={v}" for k, v in how.items() if k not in ("mode", "measured"))
                + f"), on {result.selection}. Columns after the classes: Spearman ρ between "
                "criteria (higher = more agreement).")
        html = f"<p>{escape(text)}</p>" + table(header, rows)
        trust_header, trust_rows = trust_table(result)
        if trust_rows:
            html += ("<h3>Which criterion to trust</h3><p>Spearman ρ between each criterion's "
                     "ranking and the measured resilience, per layer and on average.</p>"
                     + table(trust_header, trust_rows))
        figures = [Figure(f"{safe_name('agreement')}.png", "Agreement between criteria")] if (
            result.agreement) else []
        figures += [Figure(f"{safe_name(f'significance_{layer}')}.png", f"Filters of {layer}")
                    for layer in result.layers]
        return Section("Filter significance", html, figures)


def _rho(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"


def count_rows(result) -> tuple[list[str], list[list[str]]]:
    """Per layer: filters, class counts, and Spearman rho of every pair of criteria."""
    pairs = list(dict.fromkeys(f"{r['a']}~{r['b']}" for r in result.agreement))
    counts = class_counts(result.classes)
    rhos = {(r["layer"], f"{r['a']}~{r['b']}"): r["rho"] for r in result.agreement}
    header = ["layer", "filters", *CLASSES, *pairs]
    rows = [[layer, str(len(result.classes[layer])), *(str(counts[layer][c]) for c in CLASSES),
             *(_rho(rhos.get((layer, p))) for p in pairs)] for layer in result.layers]
    return header, rows


def trust_table(result) -> tuple[list[str], list[list[str]]]:
    """Per criterion: rho against the measured resilience, mean and per layer."""
    if not result.trust:
        return [], []
    header = ["criterion", "mean ρ", *result.layers]
    rows = [[name, _rho(values.get("mean")), *(_rho(values.get(layer)) for layer in result.layers)]
            for name, values in sorted(result.trust.items(),
                                       key=lambda kv: -(kv[1].get("mean") or -math.inf))]
    return header, rows


# -- sensitivity ----------------------------------------------------------------------------


@register_renderer("sensitivity")
class SensitivityRenderer(Renderer):
    def files(self, result, folder):
        data = result.to_dict()
        write_csv(folder / "sensitivity.csv", data["rows"],
                  [k for k in data["rows"][0] if k != "convs"] if data["rows"] else None)
        orders = list(dict.fromkeys(r["order"] for r in data["rows"]))
        if not orders:  # no layer was measured: a table, no figure
            return []
        names = [_png(plot_sensitivity(data, orders[0]), folder, "sensitivity")]
        if len(orders) > 1:
            names.append(_png(plot_order_comparison(data), folder, "sensitivity_orders"))
        return names

    def section(self, result, folder):
        header, rows = sensitivity_table(result.to_dict())
        html = (f"<p>{escape(f'Accuracy (%) with the fraction of one layer’s filters removed, by {result.criterion}, on {result.selection}; clean accuracy {percent(result.clean_accuracy)} %.')}</p>"
                + table(header, rows, left=2) + _left_out_html(result.left_out)
                + _uncertain_html(result.uncertain))
        figures = [Figure(name, caption) for name, caption in (
            ("sensitivity.png", "Accuracy against the fraction of filters removed"),
            ("sensitivity_orders.png", "Smallest vs largest vs random filters"))
            if (folder / name).is_file()]
        return Section("Pruning sensitivity", html, figures)


def sensitivity_table(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    ratios = sorted({r["ratio"] for r in data["rows"]})
    cells: dict[tuple[str, str], dict[float, float]] = {}
    for r in data["rows"]:
        cells.setdefault((r["layer"], r["order"]), {})[r["ratio"]] = r["accuracy"]
    header = ["layer", "order", *(f"{100 * q:g}%" for q in ratios)]
    rows = [[layer, order, *(f"{100 * acc[q]:.2f}" for q in ratios)]
            for (layer, order), acc in cells.items()]
    return header, rows


def _left_out_html(left_out: Mapping[str, str]) -> str:
    if not left_out:
        return ""
    return ("<p>Left out of pruning:</p>"
            + table(["layer", "why"], [[k, v] for k, v in left_out.items()], left=2))


def _uncertain_html(uncertain: Mapping[str, str]) -> str:
    if not uncertain:
        return ""
    return ("<p>Masking may differ from removal (approxmap cannot tell) for:</p>"
            + table(["layer", "why"], [[k, v] for k, v in uncertain.items()], left=2))


# -- prune ----------------------------------------------------------------------------------


def prune_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """Before / after / change rows of a prune result (as a dict)."""
    b, a = result["before"], result["after"]

    def drop(x, y):  # signed relative change: -40.0% smaller, +0.5% larger
        return f"{100 * (y / x - 1):+.1f}%" if x else "—"

    rows = [["accuracy", percent(b["accuracy"]), percent(a["accuracy"]),
             f"{100 * (a['accuracy'] - b['accuracy']):+.2f} pp"],
            ["accuracy (masked)", "", percent(a["masked_accuracy"]), ""],
            ["MACs", f"{b['macs']:,}", f"{a['macs']:,}", drop(b["macs"], a["macs"])],
            ["parameters", f"{b['params']:,}", f"{a['params']:,}", drop(b["params"], a["params"])],
            ["latency (ms)", f"{b['latency_ms']:.3f}", f"{a['latency_ms']:.3f}",
             drop(b["latency_ms"], a["latency_ms"])]]
    if a.get("finetuned_accuracy") is not None:
        rows.insert(2, [f"accuracy after {result['finetune_epochs']} epoch(s) fine-tuning", "",
                        percent(a["finetuned_accuracy"]),
                        f"{100 * (a['finetuned_accuracy'] - b['accuracy']):+.2f} pp"])
    return rows


def _scientific(value) -> str:
    """A number as 1.23e-04; an undefined one (stored as null: e.g. NaN outputs) says so."""
    return "undefined (non-finite outputs)" if value is None else f"{value:.2e}"


@register_renderer("prune")
class PruneRenderer(Renderer):
    def section(self, result, folder):
        data = result.to_dict()
        lat = data["after"]["latency"]
        note = (f"Latency: median of {lat['repeats']} runs after {lat['warmup']} warm-up runs, "
                f"{lat['threads']} thread(s), batch {lat['batch']}. Masked accuracy zeroes the "
                f"filters where the next layer reads them; max |logit difference| pruned vs "
                f"masked: {_scientific(data['after']['max_logit_difference_vs_masked'])}.")
        layers = [[k, v] for k, v in data["removed_filters"].items()]
        html = (table(["", "before", "after", "change"], prune_rows(data)) + f"<p>{escape(note)}</p>"
                + "<details><summary>Filters removed per layer</summary>"
                + table(["layer", "removed"], layers) + "</details>"
                + _left_out_html(data.get("left_out") or {}))
        return Section("Physical pruning", html)


__all__ = ["ORDER", "Renderer", "count_rows", "percent", "prune_rows", "register_renderer",
           "renderer_for", "sensitivity_table", "threshold_text", "trust_table", "write_csv"]
