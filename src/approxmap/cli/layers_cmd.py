"""`approxmap layers`: every layer's name, type, output shape, MACs and parameters."""

from __future__ import annotations

import json

import torch

from approxmap.analysis.layers import layer_table
from approxmap.cli.common import add_model_args, format_table, load_model_and_data
from approxmap.exceptions import InvalidParameterError
from approxmap.zoo.models import load_model

HELP = "list a model's layers with output shapes, MACs and parameters"


def add_parser(sub) -> None:
    p = sub.add_parser("layers", help=HELP, description=HELP.capitalize() + ".")
    add_model_args(p)
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="one sample's shape, for a user model without --data")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args) -> int:
    model, sample = _model_and_sample(args)
    rows = layer_table(model, sample)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    table = [[r.name, r.type, "x".join(map(str, r.output_shape or ())) or "-",
              f"{r.macs:,}", f"{r.params:,}"] for r in rows]
    print(format_table(["layer", "type", "output", "MACs", "params"], table))
    total_macs = sum(r.macs for r in rows if "." not in r.name)
    total_params = sum(p.numel() for p in model.parameters())
    print(f"\ntotal: {total_macs:,} MACs per sample, {total_params:,} parameters")
    return 0


def _model_and_sample(args):
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise InvalidParameterError(f"--input-shape takes integers like 1,28,28; got {args.input_shape!r}.") from None
        model, _ = load_model(args.model, args.weights)
        return model, torch.zeros((1, *shape))
    if args.data is None and ":" not in args.model:
        model, info = load_model(args.model, args.weights)
        return model, torch.zeros((1, *info.input_shape))
    model, _, data, _ = load_model_and_data(args)
    return model, data.sample(1)
