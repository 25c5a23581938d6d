"""`approxmap emulate`: the network's accuracy with approximate multipliers in its layers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from approxmap.analysis.emulate import ALL, Assignment, EmulateResult, EmulateSpec, emulate_analysis
from approxmap.cli.options import (
    add_model_args,
    add_out_arg,
    add_quant_args,
    add_run_args,
    quant_settings,
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
from approxmap.core.exceptions import DataError, InvalidParameterError

HELP = "emulate approximate 8-bit multipliers bit-exactly in int8 Conv2d/Linear layers"


def add_parser(sub) -> None:
    p = sub.add_parser("emulate", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_model_args(p)
    p.add_argument("--units", type=unit_list, default=None, metavar="U1,U2,...",
                   help="multiplier units (see `approxmap units list`), e.g. exact,drum:6,"
                        "evo:mul8u_2AC")
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE",
                   help="layers (default: every Conv2d and Linear that runs)")
    p.add_argument("--all-layers", action="store_true",
                   help="also each unit in all chosen layers at once")
    p.add_argument("--no-per-layer", action="store_true",
                   help="skip each unit in each layer alone (with --all-layers)")
    p.add_argument("--plan", metavar="FILE", type=text("--plan"),
                   help="replay a plan (plan.json of `approxmap plan`)")
    add_quant_args(p)
    add_run_args(p, trials=None)
    add_out_arg(p, "emulate")
    p.set_defaults(run=run)


def read_plan(path: str) -> tuple[Assignment, ...]:
    """The layer assignments of a plan.json written by `approxmap plan`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read plan {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != "approxmap-plan/1":
        raise InvalidParameterError(f"{path} is not an approxmap plan (plan.json).")
    try:
        return tuple(Assignment.from_dict(row) for row in data["layers"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{path} is a damaged plan ({exc}).") from None


def run(args) -> int:
    if args.units is None and args.plan is None:
        raise InvalidParameterError("Give --units U1,U2,... or --plan FILE.")
    spec = EmulateSpec(units=tuple(args.units or ()),
                       layers=tuple(args.layers) if args.layers else None,
                       per_layer=not args.no_per_layer, all_layers=args.all_layers,
                       plan=read_plan(args.plan) if args.plan else (),
                       **quant_settings(args),
                       extra={"command": command_line()})
    loaded = load(args)
    calib = calibration_data(args, loaded.data_name)
    with open_folder(args, loaded, "emulate") as folder:
        say(args, f"emulate: {len(spec.units)} unit(s) on {loaded.data.selection}; run folder "
                  f"{folder.path}")
        result = emulate_analysis(loaded.model, loaded.data, spec, make_run(args, folder), calib)
        files = folder.save(result)
    print(summary_table(result, spec.plan))
    print(calibration_note(calib), end="")
    print(f"\nReport: {files['report']}\nData:   {files['json']}, {folder.path / 'emulate.csv'}")
    return 0


def summary_table(result: EmulateResult, plan_layers: Sequence[Assignment] = ()) -> str:
    units = list(dict.fromkeys(r.unit for r in result.rows if r.layer not in ("plan",)))
    layers = [*result.layers, ALL]
    cells = {(r.layer, r.unit): r for r in result.rows}
    rows = []
    for layer in layers:
        row = [("all layers" if layer == ALL else layer)]
        for unit in units:
            cell = cells.get((layer, unit))
            row.append("" if cell is None else f"{100 * cell.accuracy:.2f}")
        if any(row[1:]):
            rows.append(row)
    plan = cells.get(("plan", "plan"))
    head = (f"{result.model} on {result.dataset} ({result.selection}): float accuracy "
            f"{100 * result.float_accuracy:.2f}%, int8 (exact unit in every layer) "
            f"{100 * result.int8_accuracy:.2f}%; quantization calibrated on {result.calibration}\n"
            f"accuracy (%) with the unit in the layer alone (last row: in every layer at once; "
            f"for other units than exact with --all-layers)")
    text = head + "\n\n" + format_table(["layer", *units], rows)
    if plan is not None:
        text += "\n\nplan:\n" + "\n".join(
            f"  {a.layer}: {a.unit} on "
            f"{'every filter' if a.channels is None else f'{len(a.channels)} filters'}"
            + (f", {len(a.pruned)} pruned" if a.pruned else "") for a in plan_layers)
        text += f"\nplan: accuracy {100 * plan.accuracy:.2f}% (drop {plan.drop_pp:.2f} pp)"
    return text


__all__ = ["add_parser", "run"]
