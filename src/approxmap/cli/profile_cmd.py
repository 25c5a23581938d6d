"""`approxmap profile`: the layer-wise error-resilience analysis."""

from __future__ import annotations

import argparse
import dataclasses
import math

from approxmap.analysis.profile import ProfileResult, ProfileSpec, profile_layers
from approxmap.cli.options import (
    add_model_args,
    add_out_arg,
    add_run_args,
    number_list,
    real,
    trials_int,
)
from approxmap.cli.session import command_line, load, make_run, open_folder, say
from approxmap.cli.tables import format_table
from approxmap.core.errors import get_error_model_class, list_error_models
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import layer_table
from approxmap.core.sites import select_layers
from approxmap.core.targets import list_targets
from approxmap.faults import BitFault, FaultSampling, plan_fault_sampling

HELP = "inject errors into each layer alone and measure how accuracy falls as they grow"


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE",
                   help="layers by name, glob (conv_layers.*) or type (Conv2d); "
                        "default: every Conv2d and Linear that runs")
    p.add_argument("--channels", action="append", default=[], metavar="LAYER=LIST",
                   help="restrict the error to some channels of a layer, e.g. "
                        "conv_layers.0=0,5,7 (repeatable; channels are output channels)")
    p.add_argument("--site", default="output", metavar="TARGET",
                   help=f"where the error enters: {', '.join(list_targets())} (default output)")
    p.add_argument("--error", default="gaussian", metavar="NAME",
                   help=f"a registered error model: {', '.join(list_error_models())} "
                        "(default gaussian; `approxmap list errors` shows their parameters)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a fixed parameter of the error model, e.g. --param rate=0.01 (repeatable)")
    p.add_argument("--sweep", metavar="PARAM=LIST",
                   help="the swept parameter and its values, e.g. std=0:1:5 or rate=0,0.01,0.1 "
                        "(default: the error model's own axis and values)")
    p.add_argument("--sigma", type=number_list, metavar="LIST|START:STOP:N",
                   help="shorthand for --sweep std=LIST (gaussian, uniform)")
    p.add_argument("--mean", type=number_list, default=None, metavar="LIST",
                   help="error mean(s); several give a mean x sigma heatmap (default 0)")
    p.add_argument("--rate", type=number_list, metavar="P",
                   help="fraction of elements hit (default 1); for --error stuck, the list of "
                        "rates to sweep")
    p.add_argument("--value", type=real(), default=None, help="stuck-at value (default 0)")
    p.add_argument("--scale", choices=("abs", "rel"), default=None,
                   help="abs: raw units; rel: multiples of the std of the site's clean values "
                        "(default rel)")
    p.add_argument("--ci-target", type=real(0, 100, closed_low=False), metavar="PP",
                   help="add trials until the 95%% CI half-width is below PP percentage points")
    p.add_argument("--max-trials", type=trials_int, metavar="N",
                   help="most trials per point with --ci-target (default 10 x --trials)")
    p.add_argument("--budget", type=real(0, 100), default=1.0, metavar="PP",
                   help="tolerated accuracy drop in percentage points (default 1)")
    p.add_argument("--refine", type=int, nargs="?", const=4, default=0, metavar="STEPS",
                   help="bisect each threshold STEPS times (default 4 when given, at most 20)")
    p.add_argument("--trials", type=trials_or_auto, default=10, metavar="N|auto",
                   help="seeded trials per point (default 10); auto (bit faults): as many as "
                        "--margin at --confidence needs (Leveugle et al., DATE 2009)")
    p.add_argument("--margin", type=fraction("--margin"), default=0.01, metavar="E",
                   help="error margin of the SDC rate for --trials auto, e.g. 1%% or 0.01 "
                        "(default 1%%)")
    p.add_argument("--confidence", type=fraction("--confidence", "0.99 or 99%"), default=0.99, metavar="C",
                   help="confidence level for --trials auto, e.g. 99%% or 0.99 (default 99%%)")
    add_run_args(p, trials=None)
    add_out_arg(p, "profile")
    p.set_defaults(run=run)


def trials_or_auto(text: str) -> int | str:
    """--trials: a number of trials, or "auto" (computed from --margin and --confidence)."""
    return "auto" if text.strip().lower() == "auto" else trials_int(text)


def fraction(option: str, example: str = "0.01 or 1%"):
    """A fraction in (0, 1), written 0.01 or 1%."""

    def parse(text: str) -> float:
        value = text.strip()
        try:
            number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            number = math.nan
        if not 0 < number < 1:
            raise argparse.ArgumentTypeError(
                f"{option} takes a fraction in (0, 1) such as {example}; got {text!r}")
        return number

    return parse


def _coerce(cls, name: str, text: str):
    """A --param value converted to the type of the error model's field (numbers as numbers)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise InvalidParameterError(
            f"Error model {cls.kind!r} has no parameter {name!r}; its parameters are "
            f"{', '.join(sorted(fields))}.")
    default = fields[name].default
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise InvalidParameterError(
            f"--param {name}={text}: expected a {type(default).__name__}.") from None
    return text


def _pair(option: str, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise InvalidParameterError(f"{option} takes NAME=VALUE; got {text!r}.")
    return name.strip(), value.strip()


def spec_from_args(args) -> ProfileSpec:
    """The ProfileSpec the flags describe (the classic flags are shorthands of --param/--sweep)."""
    cls = get_error_model_class(args.error)
    fields = {f.name for f in dataclasses.fields(cls)}
    params = {}
    for item in args.param:
        name, value = _pair("--param", item)
        params[name] = _coerce(cls, name, value)
    axis, sweep = None, None
    if args.sweep:
        axis, text = _pair("--sweep", args.sweep)
        _coerce(cls, axis, "0")  # an unknown parameter is refused here
        try:
            sweep = number_list(text)
        except Exception as exc:  # argparse.ArgumentTypeError: the same one-line message
            raise InvalidParameterError(f"--sweep {args.sweep}: {exc}") from None
    stuck_like = "std" not in fields and "rate" in fields
    if args.sigma is not None:
        if args.sweep:
            raise InvalidParameterError(
                "--sigma is a shorthand of --sweep std=LIST: give one of them, not both.")
        if "std" not in fields:
            raise InvalidParameterError(
                f"--sigma sweeps the std; error model {args.error!r} has none (use --sweep).")
        axis, sweep = "std", args.sigma
    if args.rate is not None:
        if stuck_like and axis is None:
            axis, sweep = "rate", args.rate
        elif len(args.rate) != 1:
            raise InvalidParameterError(f"--rate takes one value for {args.error} errors.")
        else:
            params["rate"] = args.rate[0]
    grid_axis, grid = None, ()
    if args.mean is not None:
        if "mean" not in fields:
            raise InvalidParameterError(f"--mean applies to errors with a mean, not {args.error}.")
        if len(args.mean) > 1:
            grid_axis, grid = "mean", tuple(args.mean)
        else:
            params["mean"] = args.mean[0]
    for flag, name in ((args.value, "value"), (args.scale, "scale")):
        if flag is not None:
            if name not in fields:
                raise InvalidParameterError(f"--{name} does not apply to {args.error} errors.")
            params[name] = flag
    channels = {}
    for item in args.channels:
        layer, text = _pair("--channels", item)
        try:
            channels[layer] = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise InvalidParameterError(f"--channels {item}: expected LAYER=0,5,7.") from None
        if not channels[layer]:
            raise InvalidParameterError(f"--channels {item}: no channel given.")
    if not 0 <= args.refine <= 20:
        raise InvalidParameterError(f"--refine takes 0 to 20 steps. Got {args.refine}.")
    swept = getattr(cls, "axis_aliases", {}).get(axis, axis) or cls.default_axis
    given = [item for item in args.param if _pair("--param", item)[0] == swept]
    if given:  # the sweep would silently replace it
        raise InvalidParameterError(
            f"--param {given[0]} names the swept parameter; to fix it, sweep one value: "
            f"--sweep {given[0]}.")
    return ProfileSpec(
        layers=tuple(args.layers) if args.layers else None, channels=channels, site=args.site,
        error=args.error,
        params=params, axis=axis, sweep=None if sweep is None else tuple(sweep),
        grid_axis=grid_axis, grid=grid, budget_pp=args.budget, refine_steps=args.refine,
        extra={"command": command_line()})


def fault_sampling(args, spec: ProfileSpec, loaded) -> FaultSampling | None:
    """For bit-fault models: the trials --trials auto needs, or what --trials N samples
    (faults sampled per point out of the possible ones); None for other error models."""
    if not issubclass(get_error_model_class(spec.error), BitFault):
        if args.trials == "auto":
            raise InvalidParameterError(
                f"--trials auto applies to the bit-fault error models (bitflip, stuckbit), not "
                f"{spec.error}; give a number of trials or --ci-target.")
        return None
    executed = {row.name for row in layer_table(loaded.model, loaded.data.sample(1))
                if row.executed}
    layers = select_layers(loaded.model, spec.layers, executed)
    scenarios = [spec.scenario(layer, value, grid)
                 for layer in layers for grid in spec.grid or (None,) for value in spec.sweep]
    return plan_fault_sampling(loaded.model, loaded.data, scenarios, args.margin, args.confidence,
                               trials=None if args.trials == "auto" else args.trials)


def run(args) -> int:
    spec = spec_from_args(args)
    loaded = load(args)
    sampling = fault_sampling(args, spec, loaded)
    if sampling is not None:
        spec = dataclasses.replace(spec, extra={**spec.extra,
                                                "fault_sampling": sampling.to_dict()})
    with open_folder(args, loaded, "profile") as folder:
        settings = {"max_trials": args.max_trials}
        if args.ci_target is not None:
            settings["ci_target"] = args.ci_target / 100
        if sampling is not None:
            settings["trials"] = sampling.trials
            if args.max_trials is not None and args.max_trials < sampling.trials:
                settings["max_trials"] = sampling.trials
        run_ = make_run(args, folder, **settings)
        say(args, f"profile: {args.error} errors at the {spec.site} of each layer, {spec.axis} "
                  f"over {len(spec.sweep)} values x {max(len(spec.grid), 1)}, {run_.trials} "
                  f"trials each, on {loaded.data.selection}; run folder {folder.path}")
        result = profile_layers(loaded.model, loaded.data, spec, run_)
        files = folder.save(result)
    print(summary_table(result))
    if sampling is not None:
        print(f"\nFault sampling: {sampling.summary()}.")
    print(f"\nReport: {files['report']}\nData:   {files['json']}, {folder.path / 'profile.csv'}, "
          f"{folder.path / 'results.sqlite'}")
    return 0


def summary_table(result: ProfileResult) -> str:
    from approxmap.report.renderers import threshold_text

    profile = result.to_dict()
    head = (f"{profile['model']} on {profile['dataset']} ({profile['selection']}): clean "
            f"accuracy {100 * profile['clean_accuracy']:.2f}%, budget {profile['budget_pp']:g} pp, "
            f"{profile['error']['kind']} error at the {profile['error']['site']}"
            + (f" ({profile['error']['scale']} scale)" if "scale" in profile["error"] else ""))
    rows = []
    for layer in sorted(profile["layers"], key=lambda r: r["rank"]):
        last = layer["points"][-1]
        if profile.get("categorical"):
            worst = max(layer["points"], key=lambda p: p.get("sdc") or 0)
            rows.append([str(layer["rank"]), layer["name"], layer["type"], f"{layer['macs']:,}",
                         f"{100 * _mean_sdc(layer):.2f}%",
                         f"{worst['magnitude']:g} ({100 * _sdc_rate(worst):.2f}%)"])
            continue
        rows.append([str(layer["rank"]), layer["name"], layer["type"], f"{layer['macs']:,}",
                     threshold_text(layer), f"{100 * last['accuracy']:.2f}% @ {last['magnitude']:g}"])
    columns = (["mean SDC rate", f"worst {profile['axis']} (SDC rate)"] if profile.get("categorical")
               else [f"tolerated {profile['axis']}", "accuracy at largest"])
    table = format_table(["rank", "layer", "type", "MACs", *columns], rows)
    return head + "\n\n" + table


def _sdc_rate(point) -> float:
    return (point.get("sdc") or 0) / point["samples"] if point.get("samples") else 0.0


def _mean_sdc(layer) -> float:
    """The SDC rate averaged over the points (e.g. a fault at a uniformly random bit)."""
    return sum(_sdc_rate(p) for p in layer["points"]) / max(len(layer["points"]), 1)


__all__ = ["add_parser", "run", "spec_from_args", "summary_table"]
