"""`approxmap sensitivity`: per-layer pruning sensitivity and the order comparison of Li et al."""

from __future__ import annotations

import csv
import json
import shlex
import sys

from approxmap.analysis.pruning import ORDERS, pruning_units, sensitivity, unit_scores
from approxmap.analysis.significance import compute_significance, get_criterion, scores_for
from approxmap.cli.common import (
    add_model_args,
    format_table,
    load_model_and_data,
    number_list,
    positive_int,
    writable_dir,
)
from approxmap.cli.profile_cmd import _slug
from approxmap.cli.significance_cmd import add_calibration_args, name_list
from approxmap.engine.local import LocalEngine
from approxmap.exceptions import InvalidParameterError
from approxmap.report.html import Section
from approxmap.report.significance_figures import (
    html_table,
    join_report,
    plot_order_comparison,
    plot_sensitivity,
    save_png,
)

HELP = "prune a fraction of one layer's filters at a time and measure accuracy (no fine-tuning)"
DEFAULT_RATIOS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help=HELP, description=HELP.capitalize() + ".")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", metavar="NAME", help="convolutions (default: every unit)")
    p.add_argument("--ratios", type=number_list, default=DEFAULT_RATIOS, metavar="LIST",
                   help="fractions of filters to remove (default 0.1,...,0.9)")
    p.add_argument("--criterion", default="l1", help="significance criterion (default l1)")
    p.add_argument("--compare", type=name_list, default=["smallest"],
                   help="orders, from smallest,largest,random (default smallest)")
    p.add_argument("--draws", type=positive_int, default=3, help="random draws per point (default 3)")
    add_calibration_args(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/sensitivity-MODEL-DATA)")
    p.set_defaults(run=run)


def _check_args(args) -> None:
    get_criterion(args.criterion)
    bad = [o for o in args.compare if o not in ORDERS]
    if bad or not args.compare:
        raise InvalidParameterError(f"--compare takes orders from {', '.join(ORDERS)}. Got {args.compare}.")
    for ratio in args.ratios:
        if not 0 <= ratio < 1:
            raise InvalidParameterError(f"--ratios are fractions of filters in [0, 1). Got {ratio:g}.")


def run(args) -> int:
    _check_args(args)
    model, _, data, data_name = load_model_and_data(args)
    out = writable_dir(args.out or f"runs/sensitivity-{_slug(args.model)}-{_slug(data_name)}")
    engine = LocalEngine(progress=not args.quiet)
    units = pruning_units(model, data.sample(1))
    calib = data.subset(min(args.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, [args.criterion], batch_size=args.batch_size,
                               seed=args.seed, engine=engine)
    result = sensitivity(model, data, units, unit_scores(units, scores_for(sig, args.criterion)),
                         sorted(set(args.ratios)), args.compare, layers=args.layers,
                         draws=args.draws, seed=args.seed, batch_size=args.batch_size, engine=engine)
    result.update(model=args.model, dataset=data_name, criterion=args.criterion,
                  command="approxmap " + shlex.join(sys.argv[1:]))
    (out / "sensitivity.json").write_text(json.dumps(result, indent=2))
    _write_csv(out / "sensitivity.csv", result["rows"])
    figures = [save_png(plot_sensitivity(result, args.compare[0]), out, "sensitivity")]
    if len(args.compare) > 1:
        figures.append(save_png(plot_order_comparison(result), out, "sensitivity_orders"))
    header, rows = table(result)
    report = join_report(out, "2-sensitivity",
                         Section("Pruning sensitivity", html_table(header, rows, left=2), figures),
                         {"model": args.model, "dataset": data_name,
                          "clean_accuracy": result["clean_accuracy"], "command": result["command"]})
    print(f"{args.model} on {data_name}: clean accuracy {100 * result['clean_accuracy']:.2f}%; "
          f"accuracy (%) with the fraction of one layer's filters removed, by {args.criterion}\n")
    print(format_table(header, rows))
    print(f"\nReport: {report}\nData:   {out / 'sensitivity.json'}, {out / 'sensitivity.csv'}")
    return 0


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    ratios = sorted({r["ratio"] for r in result["rows"]})
    cells: dict[tuple[str, str], dict[float, float]] = {}
    for r in result["rows"]:
        cells.setdefault((r["layer"], r["order"]), {})[r["ratio"]] = r["accuracy"]
    header = ["layer", "order", *(f"{100 * q:g}%" for q in ratios)]
    rows = [[layer, order, *(f"{100 * acc[q]:.2f}" for q in ratios)]
            for (layer, order), acc in cells.items()]
    return header, rows


def _write_csv(path, rows) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "convs"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


__all__ = ["add_parser", "run"]
