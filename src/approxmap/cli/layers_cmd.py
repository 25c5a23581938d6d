"""`approxmap layers`: every layer's name, type, output shape, MACs and parameters."""

from __future__ import annotations

import argparse
import json

import torch

from approxmap.cli.options import add_model_args
from approxmap.cli.session import load
from approxmap.cli.tables import format_table
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import layer_table
from approxmap.engine.calibrate import check_model
from approxmap.zoo.datasets import create_dataset

HELP = "list a model's layers with output shapes, MACs and parameters"
MAX_INPUT_ELEMENTS = 2**26  # one sample of at most 64 M values (256 MiB in float32)


def add_parser(sub) -> None:
    p = sub.add_parser("layers", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_model_args(p)
    p.add_argument("--input-shape", metavar="C,H,W", type=_shape_arg,
                   help="one sample's shape, for a user model without --data (at most "
                        f"{MAX_INPUT_ELEMENTS:,} values)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def input_shape(text: str) -> tuple[int, ...]:
    """'1,28,28' as a shape of positive sizes, at most MAX_INPUT_ELEMENTS values in all."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise InvalidParameterError(f"--input-shape takes positive integers like 1,28,28; got {text!r}.")
    elements = 1
    for size in shape:
        elements *= size
    if elements > MAX_INPUT_ELEMENTS:
        raise InvalidParameterError(f"--input-shape {text} is {elements:,} values per sample; at "
                                    f"most {MAX_INPUT_ELEMENTS:,} are supported.")
    return shape


def _shape_arg(text: str) -> tuple[int, ...]:
    try:
        return input_shape(text)
    except InvalidParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args) -> int:
    loaded = load(args, data=False, pretrained=False)  # shapes and MACs need no weights
    model, info = loaded.model, loaded.info
    if args.input_shape is not None:
        sample = torch.zeros((1, *args.input_shape))
    elif args.data is None and info is not None:
        sample = torch.zeros((1, *info.input_shape))
    elif args.data is not None:
        data = create_dataset(args.data, args.images)
        check_model(model, data)  # the same output check as every command's, before any work
        sample = data.sample(1)
    else:
        raise InvalidParameterError("Give --data or --input-shape for a user model.")
    rows = layer_table(model, sample)
    total_macs = sum(r.macs for r in rows if "." not in r.name and r.runs)
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    table = [[r.name, r.type, "x".join(map(str, r.output_shape or ())) or "-",
              f"{r.macs:,}" if r.runs else "never runs", f"{r.params:,}"] for r in rows]
    print(format_table(["layer", "type", "output", "MACs", "params"], table))
    total_params = sum(r.params for r in rows if "." not in r.name)
    print(f"\ntotal: {_whole(model, sample, total_macs):,} MACs per sample, "
          f"{total_params:,} parameters")
    return 0


def _whole(model, sample, summed: int) -> int:
    """The whole model's MACs (flop_counter's global count, which also sees work done outside
    named submodules)."""
    from approxmap.core.layers import cast_to_model, count_macs

    return max(summed, count_macs(model, cast_to_model(model, sample)).get("", 0))


__all__ = ["add_parser", "run"]
