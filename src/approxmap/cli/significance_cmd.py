"""`approxmap significance`: rank every filter by several criteria and sort them into classes."""

from __future__ import annotations

from approxmap.analysis.classify import CLASSES
from approxmap.analysis.filters import DEFAULT_CRITERIA, SignificanceSpec, significance_analysis
from approxmap.analysis.significance import list_criteria
from approxmap.cli.options import (
    add_calib_args,
    add_model_args,
    add_out_arg,
    add_run_args,
    name_list,
    number_list,
    real,
)
from approxmap.cli.session import command_line, load, make_run, open_folder, say
from approxmap.cli.tables import format_table
from approxmap.report.renderers import count_rows, trust_table

HELP = "rank each layer's filters by significance criteria and classify them"


def add_parser(sub) -> None:
    p = sub.add_parser("significance", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE",
                   help="layers by name, glob or type (default: every Conv2d that runs)")
    p.add_argument("--criteria", type=name_list, default=list(DEFAULT_CRITERIA),
                   help=f"comma list of {', '.join(list_criteria())} "
                        f"(default {','.join(DEFAULT_CRITERIA)})")
    p.add_argument("--rank-by", default=None, metavar="CRITERION",
                   help="criterion the classes are based on (default: the first of --criteria)")
    p.add_argument("--classes", type=name_list, default=list(CLASSES),
                   help="classes to use, from critical,approximable,prunable (default all three)")
    p.add_argument("--thresholds", type=number_list, metavar="LIST",
                   help="ascending normalized-significance thresholds, least significant class "
                        "first (default 0.2,0.5)")
    p.add_argument("--scope", choices=("layer", "global"), default="layer",
                   help="normalize significance per layer (default) or over all layers")
    p.add_argument("--budget", type=real(0, 100), metavar="PP",
                   help="accuracy-driven classes: the largest sets within PP percentage points")
    p.add_argument("--sigma", type=real(0, 1e6, closed_low=False), default=None,
                   help="relative error std: the approximable test with --budget (default 0.5) "
                        "and, if given, the resilience criterion perturbs instead of removing")
    add_calib_args(p)
    add_run_args(p, trials=3)
    add_out_arg(p, "significance")
    p.set_defaults(run=run)


def run(args) -> int:
    spec = SignificanceSpec(
        criteria=tuple(args.criteria), layers=tuple(args.layers) if args.layers else None,
        rank_by=args.rank_by, classes=tuple(args.classes),
        thresholds=tuple(args.thresholds) if args.thresholds else None, scope=args.scope,
        budget_pp=args.budget, sigma=args.sigma, calib_images=args.calib_images,
        extra={"command": command_line()})
    loaded = load(args)
    with open_folder(args, loaded, "significance") as folder:
        say(args, f"significance: {', '.join(spec.criteria)} on {loaded.data.selection}; "
                  f"run folder {folder.path}")
        result = significance_analysis(loaded.model, loaded.data, spec, make_run(args, folder))
        files = folder.save(result)
    print(f"{result.model} on {result.dataset} ({loaded.data.selection})\n")
    print(summary_text(result))
    print(f"\nReport: {files['report']}\nData:   {folder.path / 'significance.csv'}, "
          f"{files['json']}, {folder.path / 'agreement.csv'}")
    return 0


def summary_text(result) -> str:
    how = result.classification
    mode = (f"budget {how['budget_pp']:g} pp: {how['prunable']} prunable, {how['approximable']} "
            f"approximable (measured drop {how['final_drop_pp']:.2f} pp)"
            if how["mode"] == "budget" else f"thresholds, {how['scope']} scope")
    header, rows = count_rows(result)
    text = (f"Classes by {result.rank_by} ({mode}); Spearman rho between criteria per layer:\n\n"
            + format_table(header, rows))
    trust_header, trust_rows = trust_table(result)
    if trust_rows:
        text += ("\n\nAgreement of each criterion with the measured resilience (Spearman rho):\n\n"
                 + format_table(trust_header, trust_rows))
    return text


__all__ = ["add_parser", "run"]
