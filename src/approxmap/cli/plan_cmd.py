"""`approxmap plan`: which layer (and filters) get which multiplier within an accuracy budget."""

from __future__ import annotations

from approxmap.analysis.plan import PlanSpec, plan_analysis
from approxmap.cli.options import (
    add_model_args,
    add_out_arg,
    add_quant_args,
    add_run_args,
    number_list,
    quant_settings,
    real,
    text,
    unit_list,
)
from approxmap.cli.session import (
    calibration_data,
    calibration_note,
    command_line,
    load,
    make_run,
    open_folder,
    say,
)
from approxmap.cli.tables import format_table
from approxmap.multipliers.energy import EnergyModel, load_energy_model

HELP = "plan approximate multipliers per layer (or significance class) under an accuracy budget"


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help=HELP, description=HELP[0].upper() + HELP[1:] + ": searched on "
                       "predictions, verified by emulation; writes plan.json.")
    add_model_args(p)
    p.add_argument("--units", type=unit_list, required=True, metavar="U1,U2,...")
    p.add_argument("--budget", type=real(0, 100), default=1.0, metavar="PP",
                   help="accuracy loss allowed below the exact int8 network, in percentage "
                        "points (default 1)")
    p.add_argument("--granularity", choices=("layer", "class"), default="layer",
                   help="one unit per layer (default), or per significance class: critical "
                        "filters exact, approximable ones the unit")
    p.add_argument("--prune", action="store_true", help="with --granularity class: remove the "
                                                        "prunable filters")
    p.add_argument("--criterion", default="l1", help="significance criterion of the classes")
    p.add_argument("--thresholds", type=number_list, help="class thresholds (default 0.2,0.5)")
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE")
    p.add_argument("--energy", metavar="FILE", type=text("--energy"),
                   help="energy figures (TOML or CSV) overriding the defaults")
    add_quant_args(p)
    add_run_args(p, trials=2)
    add_out_arg(p, "plan")
    p.set_defaults(run=run)


def run(args) -> int:
    spec = PlanSpec(units=tuple(args.units), budget_pp=args.budget, granularity=args.granularity,
                    prune=args.prune, layers=tuple(args.layers) if args.layers else None,
                    criterion=args.criterion,
                    thresholds=tuple(args.thresholds) if args.thresholds else None,
                    **quant_settings(args),
                    energy=load_energy_model(args.energy) if args.energy else EnergyModel(),
                    extra={"command": command_line()})
    loaded = load(args)
    calib = calibration_data(args, loaded.data_name)
    with open_folder(args, loaded, "plan") as folder:
        say(args, f"plan: {len(spec.units)} unit(s), budget {spec.budget_pp:g} pp, "
                  f"{spec.granularity} granularity; run folder {folder.path}")
        result = plan_analysis(loaded.model, loaded.data, spec, make_run(args, folder), calib)
        files = folder.save(result)
    print(f"{result.model} on {result.dataset} ({result.selection}): float accuracy "
          f"{100 * result.float_accuracy:.2f}%, int8 {100 * result.int8_accuracy:.2f}%; "
          f"quantization calibrated on {result.calibration}\n")
    rows = [[r.layer, r.unit, "all" if r.channels is None else str(len(r.channels)),
             str(len(r.pruned)), f"{r.macs:,}", f"{r.energy_pj:,.0f}",
             f"{r.predicted_loss_pp:.2f}"] for r in result.layers]
    print(format_table(["layer", "unit", "filters", "pruned", "MACs", "energy pJ",
                        "predicted loss pp"], rows))
    verdict = "meets" if result.meets_budget else "DOES NOT meet"
    best = result.best_uniform
    print(f"\nmultiplier energy {result.energy_pj:,.0f} pJ vs {result.exact_energy_pj:,.0f} pJ "
          f"exact int8: saving {result.saving_pct:.1f}%; accuracy int8 "
          f"{100 * result.int8_accuracy:.2f}%, predicted {100 * result.predicted_accuracy:.2f}%, "
          f"verified {100 * result.verified_accuracy:.2f}% [{100 * result.verified_low:.2f}, "
          f"{100 * result.verified_high:.2f}]: {verdict} the {result.budget_pp:g} pp budget"
          + (f" after {len(result.repairs)} repair(s)" if result.repairs else "")
          + (f" and {len(result.upgrades)} verified upgrade(s)" if result.upgrades else "")
          + ("" if result.chosen_from == "search" else f" (chosen: the {result.chosen_from})"))
    if best is not None:
        where = ("everywhere" if result.granularity == "layer" else
                 "on the approximable filters of every layer")
        print(f"best uniform assignment within budget: {best['unit']} {where}, saving "
              f"{best['saving_pct']:.1f}%")
    print(calibration_note(calib), end="")
    print(f"\nPlan:   {files['json']} (replay: approxmap emulate --plan {files['json']})\n"
          f"Report: {files['report']}")
    return 0


__all__ = ["add_parser", "run"]
