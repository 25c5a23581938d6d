"""`approxmap predict`: each (layer, unit) predicted as a Gaussian error, beside emulation."""

from __future__ import annotations

from approxmap.analysis.emulate import EmulateResult
from approxmap.analysis.predict import PredictSpec, predict_analysis
from approxmap.analysis.profile import ProfileResult
from approxmap.cli.options import (
    add_model_args,
    add_out_arg,
    add_quant_args,
    add_run_args,
    quant_settings,
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

HELP = "predict the accuracy with approximate multipliers from their error statistics"


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help=HELP, description=HELP[0].upper() + HELP[1:] + ". In a run "
                       "folder holding emulate.json the prediction is compared with emulation; "
                       "holding a profile (--scale abs) it is related to each layer's tolerance.")
    add_model_args(p)
    p.add_argument("--units", type=unit_list, required=True, metavar="U1,U2,...")
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE")
    add_quant_args(p)
    add_run_args(p, trials=3)
    add_out_arg(p, "predict")
    p.set_defaults(run=run)


def run(args) -> int:
    spec = PredictSpec(units=tuple(args.units), layers=tuple(args.layers) if args.layers else None,
                       **quant_settings(args),
                       extra={"command": command_line()})
    loaded = load(args)
    calib = calibration_data(args, loaded.data_name)
    with open_folder(args, loaded, "predict") as folder:
        known = {type(r): r for r in folder.results()}
        say(args, f"predict: {len(spec.units)} unit(s) on {loaded.data.selection}; run folder "
                  f"{folder.path}")
        result = predict_analysis(loaded.model, loaded.data, spec, make_run(args, folder), calib,
                                  known.get(EmulateResult), known.get(ProfileResult))
        files = folder.save(result)
    rows = [[r.layer, r.unit, f"{100 * r.accuracy:.2f}",
             "" if r.emulated is None else f"{100 * r.emulated:.2f}",
             "" if r.error_pp is None else f"{r.error_pp:+.2f}", f"{r.total_rms:.4g}"]
            for r in result.rows]
    print(f"{result.model} on {result.dataset} ({result.selection}): float accuracy "
          f"{100 * result.float_accuracy:.2f}%; prediction in {result.seconds:.1f} s\n")
    print(format_table(["layer", "unit", "predicted %", "emulated %", "error pp", "rms error"],
                       rows))
    v = result.validation
    if v.get("pairs"):
        print(f"\nprediction error over {v['pairs']} pairs with emulated drop <= "
              f"{v['max_emulated_drop_pp']:g} pp: median {v['median_pp']:.2f} pp, 90th percentile "
              f"{v['p90_pp']:.2f} pp, worst {v['worst_pp']:.2f} pp")
    if result.tolerance:  # the profile's tolerated std against each unit's rms error
        units = list(dict.fromkeys(t["unit"] for t in result.tolerance))
        layers = list(dict.fromkeys(t["layer"] for t in result.tolerance))
        cell = {(t["layer"], t["unit"]): t for t in result.tolerance}
        tolerated = {t["layer"]: t["tolerated_std"] for t in result.tolerance}
        table = [[layer, f"{tolerated[layer]:.4g}",
                  *[("fits" if cell[(layer, u)]["fits"] else "no") if (layer, u) in cell else ""
                    for u in units]] for layer in layers]
        print("\nwhich units each layer can take (rms error of the unit <= the layer's "
              "tolerated std from the profile, --scale abs):\n")
        print(format_table(["layer", "tolerated std", *units], table))
    print(calibration_note(calib), end="")
    print(f"\nReport: {files['report']}\nData:   {files['json']}, "
          f"{files['json'].with_name('predict.csv')}")
    return 0


__all__ = ["add_parser", "run"]
