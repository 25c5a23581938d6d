"""`approxmap sensitivity`: per-layer pruning sensitivity and the order comparison of Li et al."""

from __future__ import annotations

from approxmap.analysis.sensitivity import DEFAULT_RATIOS, SensitivitySpec, sensitivity_analysis
from approxmap.cli.options import (
    add_calib_args,
    add_model_args,
    add_out_arg,
    add_run_args,
    int_in,
    name_list,
    number_list,
)
from approxmap.cli.session import command_line, load, make_run, open_folder, say
from approxmap.cli.tables import format_table
from approxmap.report.renderers import sensitivity_table

HELP = "prune a fraction of one layer's filters at a time and measure accuracy (no fine-tuning)"


def add_parser(sub) -> None:
    p = sub.add_parser("sensitivity", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", metavar="NAME", help="convolutions (default: every unit)")
    p.add_argument("--ratios", type=number_list, default=list(DEFAULT_RATIOS), metavar="LIST",
                   help="fractions of filters to remove (default 0.1,...,0.9)")
    p.add_argument("--criterion", default="l1", help="significance criterion (default l1)")
    p.add_argument("--compare", type=name_list, default=["smallest"],
                   help="orders, from smallest,largest,random (default smallest)")
    p.add_argument("--draws", type=int_in(1, 1000, "a number of draws"), default=3,
                   help="random draws per point (default 3)")
    add_calib_args(p)
    add_run_args(p, trials=None)
    add_out_arg(p, "sensitivity")
    p.set_defaults(run=run)


def run(args) -> int:
    spec = SensitivitySpec(layers=tuple(args.layers) if args.layers else None,
                           ratios=tuple(args.ratios), criterion=args.criterion,
                           orders=tuple(args.compare), draws=args.draws,
                           calib_images=args.calib_images, extra={"command": command_line()})
    loaded = load(args)
    with open_folder(args, loaded, "sensitivity") as folder:
        say(args, f"sensitivity: {len(spec.ratios)} ratios x {len(spec.orders)} order(s) per "
                  f"layer on {loaded.data.selection}; run folder {folder.path}")
        result = sensitivity_analysis(loaded.model, loaded.data, spec, make_run(args, folder))
        files = folder.save(result)
    header, rows = sensitivity_table(result.to_dict())
    print(f"{result.model} on {result.dataset} ({loaded.data.selection}): clean accuracy "
          f"{100 * result.clean_accuracy:.2f}%; "
          f"accuracy (%) with the fraction of one layer's filters removed, by {result.criterion}\n")
    print(format_table(header, rows))
    for layer, why in result.left_out.items():
        print(f"left out: {layer}: {why}")
    print(f"\nReport: {files['report']}\nData:   {files['json']}, {folder.path / 'sensitivity.csv'}")
    return 0


__all__ = ["add_parser", "run"]
