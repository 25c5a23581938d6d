"""`approxmap prune`: remove filters for real and measure accuracy, MACs, parameters, latency."""

from __future__ import annotations

from approxmap.analysis.classify import CLASSES
from approxmap.analysis.prune import MAX_LATENCY_BATCH, PruneSpec, prune_analysis
from approxmap.cli.options import (
    add_calib_args,
    add_model_args,
    add_out_arg,
    add_run_args,
    images_int,
    int_in,
    name_list,
    number_list,
    real,
    text,
)
from approxmap.cli.session import command_line, load, make_run, open_folder, say
from approxmap.cli.tables import format_table
from approxmap.core.exceptions import InvalidParameterError
from approxmap.pruning.plan import read_layer_ratios
from approxmap.pruning.saved import read_plan
from approxmap.report.renderers import prune_rows
from approxmap.zoo.datasets import create_dataset, list_datasets

HELP = "prune filters physically (Torch-Pruning) and measure the accuracy-efficiency trade-off"


def add_parser(sub) -> None:
    p = sub.add_parser("prune", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_model_args(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--by-class", choices=("prunable",), help="remove the filters of this class")
    how.add_argument("--ratio", type=real(0, 1), help="remove this fraction of every layer's filters")
    how.add_argument("--layer-ratios", metavar="FILE", type=text("--layer-ratios"),
                     help='JSON {"layer": ratio, ...}')
    how.add_argument("--plan", metavar="FILE", type=text("--plan"),
                     help="replay a pruning plan (pruned.json)")
    p.add_argument("--criterion", default="l1", help="significance criterion (default l1)")
    p.add_argument("--classes", type=name_list, default=list(CLASSES), help="with --by-class")
    p.add_argument("--thresholds", type=number_list, help="with --by-class (default 0.2,0.5)")
    p.add_argument("--budget", type=real(0, 100), metavar="PP", help="with --by-class: accuracy-driven")
    p.add_argument("--finetune-epochs", type=int_in(0, 10_000, "a number of epochs"), default=0,
                   metavar="N", help="fine-tuning epochs after pruning (default 0: none)")
    p.add_argument("--train-data", type=text("--train-data"),
                   help="fine-tuning data (default: DATA-train)")
    p.add_argument("--train-images", type=images_int, metavar="N",
                   help="fine-tune on N training images only (class-balanced)")
    p.add_argument("--lr", type=real(0, 100, closed_low=False), default=0.01,
                   help="fine-tuning learning rate (default 0.01)")
    p.add_argument("--threads", type=int_in(1, 4096, "a thread count"), default=1,
                   help="latency threads (default 1, at most the CPU count)")
    p.add_argument("--latency-batch", type=int_in(1, MAX_LATENCY_BATCH, "a batch size"), default=1,
                   metavar="N", help="batch size of the latency measurement (default 1)")
    p.add_argument("--repeats", type=int_in(1, 100_000, "a number of runs"), default=30,
                   help="timed latency runs (default 30)")
    add_calib_args(p)
    add_run_args(p, trials=None)
    add_out_arg(p, "prune")
    p.set_defaults(run=run)


def _spec(args) -> PruneSpec:
    return PruneSpec(
        ratio=args.ratio,
        layer_ratios=read_layer_ratios(args.layer_ratios) if args.layer_ratios else None,
        by_class=args.by_class, plan=read_plan(args.plan) if args.plan else None,
        criterion=args.criterion, classes=tuple(args.classes),
        thresholds=tuple(args.thresholds) if args.thresholds else None, budget_pp=args.budget,
        finetune_epochs=args.finetune_epochs, lr=args.lr, threads=args.threads,
        latency_batch=args.latency_batch, repeats=args.repeats, calib_images=args.calib_images,
        base=args.model, extra={"command": command_line()})


def _train_data(args, data_name: str):
    if not args.finetune_epochs:
        return None
    name = args.train_data or f"{data_name}-train"
    if name not in list_datasets() and ":" not in name:
        raise InvalidParameterError(f"No training data {name!r} for fine-tuning; pass --train-data.")
    return create_dataset(name, args.train_images)


def run(args) -> int:
    spec = _spec(args)
    loaded = load(args)
    train = _train_data(args, loaded.data_name)
    with open_folder(args, loaded, "prune") as folder:
        say(args, f"prune: {spec.mode} on {loaded.data.selection}; run folder {folder.path}")
        result = prune_analysis(loaded.model, loaded.data, spec, make_run(args, folder), train)
        files = folder.save(result)
    removed = sum(result.removed_filters.values())
    print(f"{result.model} on {result.dataset} ({result.selection}): {removed} filters removed in "
          f"{len(result.removed_filters)} layer(s) ({result.how['mode']})\n")
    print(format_table(["", "before", "after", "change"], prune_rows(result.to_dict())))
    for layer, why in result.left_out.items():
        print(f"left out: {layer}: {why}")
    print(f"\nPruned model: {folder.path / 'pruned.json'} + pruned.safetensors\n"
          f"Report: {files['report']}\nData:   {files['json']}")
    return 0


__all__ = ["add_parser", "run"]
