"""`approxmap profile`: the layer-wise error-resilience analysis."""

from __future__ import annotations

import re
import shlex
import sys

from approxmap.analysis.profile import DEFAULT_SWEEP, ERROR_KINDS, ProfileSpec, profile_layers
from approxmap.cli.common import (
    add_model_args,
    format_table,
    load_model_and_data,
    number_list,
    positive_int,
    writable_dir,
)
from approxmap.engine.local import LocalEngine
from approxmap.exceptions import InvalidParameterError
from approxmap.report.profile_files import write_profile_outputs
from approxmap.sites import TARGETS

HELP = "inject errors into each layer alone and measure how accuracy falls as they grow"


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help=HELP, description=HELP.capitalize() + ".")
    add_model_args(p)
    p.add_argument("--layers", nargs="+", metavar="GLOB|TYPE",
                   help="layers by name, glob (conv_layers.*) or type (Conv2d); "
                        "default: every Conv2d and Linear")
    p.add_argument("--site", choices=TARGETS, default="output", help="where the error enters")
    p.add_argument("--error", choices=list(ERROR_KINDS), default="gaussian")
    p.add_argument("--sigma", type=number_list, metavar="LIST|START:STOP:N",
                   help="error std values to sweep (gaussian/uniform); default "
                        + ",".join(f"{v:g}" for v in DEFAULT_SWEEP["gaussian"]))
    p.add_argument("--mean", type=number_list, default=[0.0], metavar="LIST",
                   help="error mean(s); several give a mean x sigma heatmap (default 0)")
    p.add_argument("--rate", type=number_list, metavar="P",
                   help="fraction of elements hit (default 1); for --error stuck, the "
                        "list of rates to sweep")
    p.add_argument("--value", type=float, default=0.0, help="stuck-at value (default 0)")
    p.add_argument("--scale", choices=("abs", "rel"), default="rel",
                   help="abs: raw units; rel: multiples of the std of the site's clean "
                        "values (default)")
    p.add_argument("--trials", type=positive_int, default=10, help="trials per point (default 10)")
    p.add_argument("--ci-target", type=float, metavar="PP",
                   help="add trials until the 95%% CI half-width is below PP percentage points")
    p.add_argument("--max-trials", type=positive_int, metavar="N",
                   help="most trials per point with --ci-target (default 10 x --trials)")
    p.add_argument("--budget", type=float, default=1.0, metavar="PP",
                   help="tolerated accuracy drop in percentage points (default 1)")
    p.add_argument("--refine", type=int, nargs="?", const=4, default=0, metavar="STEPS",
                   help="bisect each threshold STEPS times (default 4 when given)")
    p.add_argument("--batch-size", type=positive_int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/profile-MODEL-DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def spec_from_args(args) -> ProfileSpec:
    if args.error == "stuck":
        if args.sigma is not None:
            raise InvalidParameterError("--sigma applies to gaussian/uniform; sweep --rate for stuck.")
        sweep, rate = args.rate, 1.0
    else:
        if args.rate is not None and len(args.rate) != 1:
            raise InvalidParameterError(f"--rate takes one value for {args.error} errors.")
        sweep, rate = args.sigma, (args.rate or [1.0])[0]
    if sweep is not None and min(sweep) < 0:
        raise InvalidParameterError(f"Swept values must be >= 0. Got {min(sweep):g}.")
    if not 0 <= rate <= 1:
        raise InvalidParameterError(f"--rate must be in [0, 1]. Got {rate:g}.")
    if args.ci_target is not None and not 0 < args.ci_target < 100:
        raise InvalidParameterError(f"--ci-target must be in (0, 100) percentage points. Got {args.ci_target:g}.")
    if args.refine < 0:
        raise InvalidParameterError(f"--refine takes a number of steps >= 0. Got {args.refine}.")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed must be >= 0. Got {args.seed}.")
    return ProfileSpec(
        layers=tuple(args.layers) if args.layers else None, site=args.site, error=args.error,
        sweep=None if sweep is None else tuple(sweep), means=tuple(args.mean), rate=rate,
        value=args.value, scale=args.scale, budget_pp=args.budget, refine_steps=args.refine,
        extra={"command": "approxmap " + shlex.join(sys.argv[1:])},
    )


def run(args) -> int:
    spec = spec_from_args(args)
    model, _, data, data_name = load_model_and_data(args)
    out = writable_dir(args.out or f"runs/profile-{_slug(args.model)}-{_slug(data_name)}")
    profile = profile_layers(
        model, data, spec, trials=args.trials, seed=args.seed,
        storage=out / "results.sqlite", batch_size=args.batch_size,
        ci_target=None if args.ci_target is None else args.ci_target / 100,
        max_trials=args.max_trials, engine=LocalEngine(progress=not args.quiet),
        names={"model": args.model, "dataset": data_name},
    )
    files = write_profile_outputs(profile, out)
    print(summary_table(profile))
    print(f"\nReport: {files['report']}\nData:   {files['json']}, {files['csv']}, "
          f"{out / 'results.sqlite'}")
    return 0


def summary_table(profile: dict) -> str:
    axis = "sigma" if profile["axis"] == "sigma" else "rate"
    head = (f"{profile['model']} on {profile['dataset']} ({profile['images']} images): clean "
            f"accuracy {100 * profile['clean_accuracy']:.2f}%, budget {profile['budget_pp']:g} pp, "
            f"{profile['error']['kind']} error at the {profile['error']['site']} "
            f"({profile['error']['scale']} scale)")
    rows = []
    for layer in sorted(profile["layers"], key=lambda r: r["rank"]):
        last = layer["points"][-1]
        threshold = "fails" if layer["threshold"] is None else (
            (">=" if layer["threshold_censored"] else "") + f"{layer['threshold']:g}")
        rows.append([str(layer["rank"]), layer["name"], layer["type"], f"{layer['macs']:,}",
                     threshold, f"{100 * last['accuracy']:.2f}% @ {last['magnitude']:g}"])
    table = format_table(["rank", "layer", "type", "MACs", f"tolerated {axis}",
                          "accuracy at largest"], rows)
    return head + "\n\n" + table


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.rsplit("/", 1)[-1]).strip("_") or "model"


__all__ = ["add_parser", "run"]
