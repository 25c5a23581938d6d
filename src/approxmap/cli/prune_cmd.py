"""`approxmap prune`: remove filters for real and measure accuracy, MACs, parameters, latency."""

from __future__ import annotations

import json
import math
import shlex
import sys
from html import escape
from pathlib import Path
from typing import Any

import torch

from approxmap.analysis.classify import CLASSES, classify_by_budget, classify_by_thresholds
from approxmap.analysis.latency import measure_latency
from approxmap.analysis.layers import count_macs
from approxmap.analysis.pruning import (
    PruningPlan,
    accuracy,
    check_plan,
    check_ratio,
    finetune,
    mask_injections,
    masked_accuracy,
    parameter_count,
    plan_by_layer_ratios,
    plan_by_ratio,
    prune_model,
    pruning_units,
    read_points,
    unit_scores,
)
from approxmap.analysis.significance import compute_significance, get_criterion, scores_for
from approxmap.cli.common import (
    add_model_args,
    format_table,
    load_model_and_data,
    number_list,
    positive_int,
    writable_dir,
)
from approxmap.cli.profile_cmd import _slug
from approxmap.cli.significance_cmd import add_calibration_args, name_list
from approxmap.engine.local import LocalEngine
from approxmap.exceptions import DataError, InvalidParameterError
from approxmap.inject import Injector
from approxmap.report.html import Section
from approxmap.report.significance_figures import html_table, join_report
from approxmap.zoo.datasets import create_dataset, list_datasets
from approxmap.zoo.pruned import read_plan, save_pruned

HELP = "prune filters physically (Torch-Pruning) and measure the accuracy-efficiency trade-off"


def add_parser(sub) -> None:
    p = sub.add_parser("prune", help=HELP, description=HELP.capitalize() + ".")
    add_model_args(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--by-class", choices=("prunable",), help="remove the filters of this class")
    how.add_argument("--ratio", type=float, help="remove this fraction of every layer's filters")
    how.add_argument("--layer-ratios", metavar="FILE", help='JSON {"layer": ratio, ...}')
    how.add_argument("--plan", metavar="FILE", help="replay a pruning plan (pruned.json)")
    p.add_argument("--criterion", default="l1", help="significance criterion (default l1)")
    p.add_argument("--classes", type=name_list, default=list(CLASSES), help="with --by-class")
    p.add_argument("--thresholds", type=number_list, help="with --by-class (default 0.2,0.5)")
    p.add_argument("--budget", type=float, metavar="PP", help="with --by-class: accuracy-driven")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N")
    p.add_argument("--train-data", help="fine-tuning data (default: DATA-train)")
    p.add_argument("--train-images", type=positive_int, metavar="N",
                   help="fine-tune on the first N training images only")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    p.add_argument("--threads", type=positive_int, default=1, help="latency threads (default 1)")
    p.add_argument("--latency-batch", type=positive_int, default=1)
    p.add_argument("--repeats", type=positive_int, default=30, help="timed latency runs (default 30)")
    add_calibration_args(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/prune-MODEL-DATA)")
    p.set_defaults(run=run)


def _check_args(args) -> None:
    get_criterion(args.criterion)
    if args.ratio is not None:
        check_ratio(args.ratio)
    if args.finetune_epochs < 0:
        raise InvalidParameterError(f"--finetune-epochs must be >= 0. Got {args.finetune_epochs}.")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise InvalidParameterError(f"--lr must be > 0. Got {args.lr:g}.")


def read_layer_ratios(path: str) -> dict[str, float]:
    """A JSON object layer -> ratio; DataError/InvalidParameterError for anything else."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read layer ratios {path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise InvalidParameterError(f"{path} must hold a JSON object like {{\"conv1\": 0.5}}.")
    for layer, ratio in data.items():
        check_ratio(ratio, f"The ratio of {layer!r} in {path}")
    return {str(k): float(v) for k, v in data.items()}


def make_plan(args, model, data, sample, units, engine) -> tuple[PruningPlan, dict]:
    """The plan the arguments ask for, and how it was made."""
    meta = {"base": args.model, "input_shape": tuple(sample.shape[1:])}
    if args.plan:
        plan = read_plan(args.plan)
        plan = PruningPlan(plan.removed, args.model, meta["input_shape"], plan.meta)
        check_plan(plan, units)
        return plan, {"mode": "plan", "file": args.plan}
    if args.layer_ratios:  # read first: a bad file fails before any computation
        ratios = read_layer_ratios(args.layer_ratios)
    calib = data.subset(min(args.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, [args.criterion], batch_size=args.batch_size,
                               seed=args.seed, engine=engine)
    scores = unit_scores(units, scores_for(sig, args.criterion))
    info = {"criterion": args.criterion}
    if args.ratio is not None:
        return plan_by_ratio(units, scores, args.ratio, **meta, meta=info), {"mode": "ratio", **info}
    if args.layer_ratios:
        return (plan_by_layer_ratios(units, scores, ratios, **meta, meta=info),
                {"mode": "layer-ratios", "file": args.layer_ratios, **info})
    return _class_plan(args, model, data, sig, units, meta, engine)


def _class_plan(args, model, data, sig, units, meta, engine) -> tuple[PruningPlan, dict]:
    if args.budget is None:
        labels = classify_by_thresholds(sig, args.criterion, args.classes, args.thresholds)
        how = {"mode": "by-class", "thresholds": args.thresholds or "default"}
    else:
        labels, info = classify_by_budget(model, data, sig, args.criterion, args.budget,
                                          [c for c in args.classes if c != "approximable"],
                                          trials=1, seed=args.seed, batch_size=args.batch_size,
                                          engine=engine)
        how = {"mode": "by-class", "budget_pp": args.budget, "masked_drop_pp": info["final_drop_pp"]}
    removed = {}
    for unit in units:  # a coupled filter goes only if it is prunable in every convolution
        members = [labels[c] for c in unit.convs if c in labels]
        idx = tuple(i for i in range(unit.channels)
                    if members and all(m[i] == args.by_class for m in members))
        if idx:
            removed[unit.name] = idx
    plan = PruningPlan(removed, **meta, meta={"criterion": args.criterion, **how})
    check_plan(plan, units)
    return plan, {**how, "criterion": args.criterion}


def measure(model, data, sample, args) -> dict[str, Any]:
    """Accuracy, MACs, parameters and latency of one model."""
    latency = measure_latency(model, sample[:1].expand(args.latency_batch, *sample.shape[1:]),
                              threads=args.threads, repeats=args.repeats)
    return {"accuracy": accuracy(model, data, args.batch_size), "macs": count_macs(model, sample[:1])[""],
            "params": parameter_count(model), "latency_ms": latency.median_ms,
            "latency": latency.to_dict()}


def train_data(args, data_name: str):
    name = args.train_data or f"{data_name}-train"
    if name not in list_datasets() and ":" not in name:
        raise InvalidParameterError(f"No training data {name!r} for fine-tuning; pass --train-data.")
    return create_dataset(name, args.train_images)


def run(args) -> int:
    _check_args(args)
    model, _, data, data_name = load_model_and_data(args)
    out = writable_dir(args.out or f"runs/prune-{_slug(args.model)}-{_slug(data_name)}")
    engine = LocalEngine(progress=not args.quiet)
    sample = data.sample(1)
    units = pruning_units(model, sample)
    plan, how = make_plan(args, model, data, sample, units, engine)
    before = measure(model, data, sample, args)
    masked = masked_accuracy(model, data, units, plan, read_points(model), args.batch_size, engine)
    pruned = prune_model(model, plan, sample, units)
    after = measure(pruned, data, sample, args)
    after["masked_accuracy"] = masked
    with torch.no_grad():
        after["max_logit_difference_vs_masked"] = _logit_gap(model, pruned, units, plan, data)
    if args.finetune_epochs:
        finetune(pruned, train_data(args, data_name), args.finetune_epochs, lr=args.lr,
                 seed=args.seed)
        after["finetuned_accuracy"] = accuracy(pruned, data, args.batch_size)
    files = save_pruned(pruned, plan, out / "pruned")
    result = {"model": args.model, "dataset": data_name, "images": len(data), "how": how,
              "removed_filters": {k: len(v) for k, v in plan.removed.items()},
              "before": before, "after": after, "finetune_epochs": args.finetune_epochs,
              "files": [str(f) for f in files], "command": "approxmap " + shlex.join(sys.argv[1:])}
    (out / "prune.json").write_text(json.dumps(result, indent=2))
    report = join_report(out, "3-prune", Section("Physical pruning", _html(result)),
                         {"model": args.model, "dataset": data_name,
                          "clean_accuracy": before["accuracy"], "command": result["command"]})
    print(summary_table(result))
    print(f"\nPruned model: {files[0]} + {files[1].name}\nReport: {report}\nData:   {out / 'prune.json'}")
    return 0


def _logit_gap(model, pruned, units, plan, data) -> float:
    x = data.sample(16)
    with Injector(model, mask_injections(units, plan, read_points(model)), seed=0) as masked:
        return float((masked(x) - pruned(x)).abs().max())


def _rows(result: dict) -> list[list[str]]:
    b, a = result["before"], result["after"]

    def pct(x):
        return f"{100 * x:.2f}%"

    def drop(x, y):
        return f"-{100 * (1 - y / x):.1f}%"

    rows = [["accuracy", pct(b["accuracy"]), pct(a["accuracy"]),
             f"{100 * (a['accuracy'] - b['accuracy']):+.2f} pp"],
            ["accuracy (masked)", "", pct(a["masked_accuracy"]), ""],
            ["MACs", f"{b['macs']:,}", f"{a['macs']:,}", drop(b["macs"], a["macs"])],
            ["parameters", f"{b['params']:,}", f"{a['params']:,}", drop(b["params"], a["params"])],
            ["latency (ms)", f"{b['latency_ms']:.3f}", f"{a['latency_ms']:.3f}",
             drop(b["latency_ms"], a["latency_ms"])]]
    if "finetuned_accuracy" in a:
        rows.insert(2, [f"accuracy after {result['finetune_epochs']} epoch(s) fine-tuning", "",
                        pct(a["finetuned_accuracy"]),
                        f"{100 * (a['finetuned_accuracy'] - b['accuracy']):+.2f} pp"])
    return rows


def summary_table(result: dict) -> str:
    removed = sum(result["removed_filters"].values())
    head = (f"{result['model']} on {result['dataset']} ({result['images']} images): {removed} "
            f"filters removed in {len(result['removed_filters'])} layer(s) ({result['how']['mode']})")
    return head + "\n\n" + format_table(["", "before", "after", "change"], _rows(result))


def _html(result: dict) -> str:
    layers = [[k, v] for k, v in result["removed_filters"].items()]
    lat = result["after"]["latency"]
    note = (f"Latency: median of {lat['repeats']} runs after {lat['warmup']} warm-up runs, "
            f"{lat['threads']} thread(s), batch {lat['batch']}. Masked accuracy zeroes the "
            f"filters where the next layer reads them; max |logit difference| pruned vs "
            f"masked: {result['after']['max_logit_difference_vs_masked']:.2e}.")
    return (html_table(["", "before", "after", "change"], _rows(result)) + f"<p>{escape(note)}</p>"
            + "<details><summary>Filters removed per layer</summary>"
            + html_table(["layer", "removed"], layers) + "</details>")


__all__ = ["add_parser", "run"]
