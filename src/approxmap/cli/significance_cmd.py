"""`approxmap significance`: rank every filter by several criteria and sort them into classes."""

from __future__ import annotations

import csv
import json
import math
import shlex
import sys
from html import escape
from pathlib import Path

from approxmap.analysis.classify import (
    CLASSES,
    check_classes,
    class_counts,
    classify_by_budget,
    classify_by_thresholds,
)
from approxmap.analysis.pruning import accuracy
from approxmap.analysis.significance import (
    Significance,
    agreement,
    compute_significance,
    filter_rows,
    get_criterion,
    list_criteria,
)
from approxmap.cli.common import (
    add_model_args,
    format_table,
    load_model_and_data,
    number_list,
    positive_int,
    writable_dir,
)
from approxmap.cli.profile_cmd import _slug
from approxmap.engine.local import LocalEngine
from approxmap.exceptions import InvalidParameterError
from approxmap.report.html import Section
from approxmap.report.significance_figures import (
    html_table,
    join_report,
    plot_agreement,
    plot_layer_significance,
    save_png,
)

HELP = "rank each layer's filters by significance criteria and classify them"


def name_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_calibration_args(p) -> None:
    p.add_argument("--calib-images", type=positive_int, default=1000, metavar="N",
                   help="images of the data used by data-driven criteria (default 1000)")
    p.add_argument("--batch-size", type=positive_int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub) -> None:
    p = sub.add_parser("significance", help=HELP, description=HELP.capitalize() + ".")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE",
                   help="layers by name, glob or type (default: every Conv2d)")
    p.add_argument("--criteria", type=name_list, default=["l1", "l2", "mean", "apoz", "taylor"],
                   help=f"comma list of {', '.join(list_criteria())} (default l1,l2,mean,apoz,taylor)")
    p.add_argument("--rank-by", default=None, metavar="CRITERION",
                   help="criterion the classes are based on (default: the first of --criteria)")
    p.add_argument("--classes", type=name_list, default=list(CLASSES),
                   help="classes to use, from critical,approximable,prunable (default all three)")
    p.add_argument("--thresholds", type=number_list, metavar="LIST",
                   help="ascending normalized-significance thresholds, least significant class "
                        "first (default 0.2,0.5)")
    p.add_argument("--scope", choices=("layer", "global"), default="layer",
                   help="normalize significance per layer (default) or over all layers")
    p.add_argument("--budget", type=float, metavar="PP",
                   help="accuracy-driven classes: the largest sets within PP percentage points")
    p.add_argument("--sigma", type=float, default=None,
                   help="relative error std: the approximable test with --budget (default 0.5) "
                        "and, if given, the resilience criterion perturbs instead of removing")
    p.add_argument("--trials", type=positive_int, default=3,
                   help="trials per point of Gaussian errors (default 3)")
    add_calibration_args(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/significance-MODEL-DATA)")
    p.set_defaults(run=run)


def _check_args(args) -> str:
    for name in args.criteria:
        get_criterion(name)
    if not args.criteria:
        raise InvalidParameterError("--criteria is empty.")
    rank_by = args.rank_by or args.criteria[0]
    if rank_by not in args.criteria:
        raise InvalidParameterError(f"--rank-by {rank_by!r} must be one of --criteria.")
    check_classes(args.classes)
    if args.sigma is not None and not (math.isfinite(args.sigma) and args.sigma > 0):
        raise InvalidParameterError(f"--sigma must be > 0. Got {args.sigma:g}.")
    if args.budget is not None and not 0 <= args.budget <= 100:
        raise InvalidParameterError(f"--budget must be in [0, 100] percentage points. Got {args.budget:g}.")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed must be >= 0. Got {args.seed}.")
    return rank_by


def run(args) -> int:
    rank_by = _check_args(args)
    model, _, data, data_name = load_model_and_data(args)
    out = writable_dir(args.out or f"runs/significance-{_slug(args.model)}-{_slug(data_name)}")
    engine = LocalEngine(progress=not args.quiet)
    calib = data.subset(min(args.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, args.criteria, args.layers, batch_size=args.batch_size,
                               sigma=args.sigma, trials=args.trials, seed=args.seed, engine=engine)
    if args.budget is None:
        labels = classify_by_thresholds(sig, rank_by, args.classes, args.thresholds, args.scope)
        how = {"mode": "thresholds", "scope": args.scope,
               "thresholds": args.thresholds or "default (0.2, 0.5)",
               "clean_accuracy": accuracy(model, data, args.batch_size)}
    else:
        labels, how = classify_by_budget(model, data, sig, rank_by, args.budget, args.classes,
                                         args.sigma or 0.5, trials=args.trials, seed=args.seed,
                                         batch_size=args.batch_size, engine=engine)
        how = {"mode": "budget", **how}
    result = write_outputs(sig, labels, rank_by, how, out,
                           {"model": args.model, "dataset": data_name, "images": len(calib),
                            "command": "approxmap " + shlex.join(sys.argv[1:])})
    print(summary_text(sig, labels, result["agreement"], rank_by, how))
    print(f"\nReport: {result['report']}\nData:   {out / 'significance.csv'}, "
          f"{out / 'significance.json'}, {out / 'agreement.csv'}")
    return 0


def write_outputs(sig: Significance, labels: dict, rank_by: str, how: dict, out: Path,
                  names: dict) -> dict:
    """significance.csv/.json, agreement.csv, figures and the report section."""
    rows = filter_rows(sig, labels, rank_by)
    agree = agreement(sig)
    _write_csv(out / "significance.csv", rows)
    _write_csv(out / "agreement.csv", agree)
    payload = {**names, "rank_by": rank_by, "classification": how, "layers": sig.layers,
               "counts": class_counts(labels), "filters": rows, "agreement": agree,
               "details": sig.details}
    (out / "significance.json").write_text(json.dumps(payload, indent=2, default=_jsonable))
    norm = sig.normalized(rank_by)
    figures = [save_png(plot_layer_significance(layer, norm[layer], labels[layer], rank_by), out,
                        f"significance_{layer}") for layer in sig.layers]
    if agree:
        figures.insert(0, save_png(plot_agreement(agree), out, "agreement"))
    html = _section_html(sig, labels, agree, rank_by, how)
    report = join_report(out, "1-significance", Section("Filter significance", html, figures),
                         {**names, "clean_accuracy": how.get("clean_accuracy", float("nan"))})
    return {"report": report, "agreement": agree}


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _mean_rho(agree: list[dict], layer: str) -> dict[str, str]:
    return {f"{r['a']}~{r['b']}": "—" if math.isnan(r["rho"]) else f"{r['rho']:.2f}"
            for r in agree if r["layer"] == layer}


def _count_rows(sig, labels, agree) -> tuple[list[str], list[list[str]]]:
    pairs = list(dict.fromkeys(f"{r['a']}~{r['b']}" for r in agree))
    header = ["layer", "filters", *CLASSES, *pairs]
    counts = class_counts(labels)
    rows = [[layer, str(len(labels[layer])), *(str(counts[layer][c]) for c in CLASSES),
             *(_mean_rho(agree, layer).get(p, "—") for p in pairs)] for layer in sig.layers]
    return header, rows


def summary_text(sig, labels, agree, rank_by, how) -> str:
    header, rows = _count_rows(sig, labels, agree)
    mode = (f"budget {how['budget_pp']:g} pp: {how['prunable']} prunable, {how['approximable']} "
            f"approximable (measured drop {how['final_drop_pp']:.2f} pp)"
            if how["mode"] == "budget" else f"thresholds, {how['scope']} scope")
    return (f"Classes by {rank_by} ({mode}); Spearman rho between criteria per layer:\n\n"
            + format_table(header, rows))


def _section_html(sig, labels, agree, rank_by, how) -> str:
    header, rows = _count_rows(sig, labels, agree)
    text = (f"Classes by normalized {rank_by} significance ({how['mode']}: "
            f"{', '.join(f'{k}={v}' for k, v in how.items() if k not in ('mode', 'measured'))}). "
            "Columns after the classes: Spearman ρ between criteria (higher = more agreement).")
    return f"<p>{escape(text)}</p>" + html_table(header, rows)


__all__ = ["add_parser", "run"]
