"""`approxmap units list|characterize`: the multiplier library and each unit's error."""

from __future__ import annotations

from approxmap.cli.options import add_model_args, add_quant_args, add_run_args, quant_settings, text
from approxmap.cli.tables import format_table

HELP = "list approximate multipliers, or characterize their error (optionally per layer)"


def add_parser(sub) -> None:
    p = sub.add_parser("units", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", parser_class=type(p))
    verbs.required = True
    ls = verbs.add_parser("list", help="the units: family, signedness, power, MAE, MRED")
    ls.add_argument("pattern", nargs="?", default="*", help="glob over names (default *)")
    ls.set_defaults(run=run_list)
    ch = verbs.add_parser("characterize", help="error metrics over all operand pairs and, with "
                                               "--model, weighted by each layer's operands")
    ch.add_argument("units", nargs="+", metavar="UNIT",
                    help="unit names (`approxmap units list`), e.g. drum:6 evo:mul8u_2AC")
    add_model_args(ch, default_model=None)
    ch.add_argument("--layers", nargs="+", metavar="GLOB|TYPE")
    add_quant_args(ch)
    add_run_args(ch, trials=None)
    ch.add_argument("--out", metavar="DIR", type=text("--out"),
                    help="run folder for units.json, figures and report.html (default "
                         "runs/units[-MODEL-DATA])")
    ch.set_defaults(run=run_characterize)


def run_list(args) -> int:
    from approxmap.analysis.units import unit_facts
    from approxmap.multipliers.units import list_units

    rows = []
    for name in list_units(args.pattern):
        f = unit_facts(name)
        power = "—" if f["power_mw"] is None else (
            f"{f['power_mw']:.3f}" + (" (est.)" if f["power_is_estimate"] else ""))
        rows.append([f["unit"], f["family"], "yes" if f["signed"] else "no", power,
                     f"{f['mae']:.2f}", f"{f['mred_pct']:.3f}"])
    print(format_table(["unit", "family", "signed", "power (mW)", "MAE", "MRED (%)"], rows))
    print(f"\n{len(rows)} units. Power: PDK45 as published (EvoApproxLib), or an estimate "
          "(kept partial-product cells); MAE and MRED over all 65,536 operand pairs.")
    return 0


def run_characterize(args) -> int:
    from approxmap.analysis.units import UnitsSpec, characterize_units
    from approxmap.cli.session import (
        calibration_data,
        command_line,
        keep_config,
        load,
        make_run,
        open_folder,
    )
    from approxmap.report.folder import RunFolder

    spec = UnitsSpec(units=tuple(args.units), layers=tuple(args.layers) if args.layers else None,
                     **quant_settings(args), extra={"command": command_line()})
    if args.model is None:
        with RunFolder(args.out or "runs/units") as folder:
            keep_config(args, folder)
            result = characterize_units(spec)
            files = folder.save(result)
    else:
        loaded = load(args)
        calib = calibration_data(args, loaded.data_name)
        with open_folder(args, loaded, "units") as folder:
            result = characterize_units(spec, loaded.model, loaded.data, make_run(args, folder),
                                        calib)
            files = folder.save(result)
    keys = ("mean_error", "std_error", "mae", "wce", "mred_pct", "wcre_pct", "ep_pct")
    rows = [[u["unit"], *(f"{u[k]:.4g}" for k in keys)] for u in result.units]
    print(format_table(["unit", "mean", "std", "MAE", "WCE", "MRED %", "WCRE %", "EP %"], rows))
    if result.layers:
        rows = [[r["layer"], r["unit"], f"{r['mae']:.4g}", f"{r['mred_pct']:.4g}",
                 f"{r['mean_error']:.4g}"] for r in result.layers]
        print("\nweighted by each layer's operands (calibration: " + result.calibration + ")\n")
        print(format_table(["layer", "unit", "MAE", "MRED %", "mean"], rows))
    print(f"\nReport: {files['report']}\nData:   {files['json']}")
    return 0


__all__ = ["add_parser"]
