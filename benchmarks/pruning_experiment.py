"""The pruning experiment: Li et al.'s findings and the accuracy-efficiency trade-off, measured.

On a trained zoo model (vgg-small or resnet20, Fashion-MNIST), in stages whose results are
kept in OUT/results.json (a rerun skips finished stages):

1. agreement   L1 vs L2 (every convolution) and resilience (removal, one trial, calibration
               images from the training split) vs L1 on the first convolution of each stage;
               Spearman rho and the overlap of the 25% least significant filters.
2. sensitivity per layer, k% of its filters masked (smallest-L1 first, largest first,
               random), accuracy on the first --sens-images test images (Li et al. Fig. 2).
3. tradeoff    L1 pruning of every layer at each --levels ratio (coupled residual groups
               at ratio x --coupled-scale): MACs, parameters,
               CPU latency (median, 1 thread, batch 1 and 64), accuracy on the test split
               before and after --finetune-epochs of fine-tuning on the training split.

    python benchmarks/pruning_experiment.py --arch resnet20 --cache /tmp/approxmap-cache
    python benchmarks/pruning_experiment.py --arch vgg-small --levels 0.2,0.3 --finetune-epochs 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from approxmap import Campaign, Injector, Run
from approxmap.analysis.sensitivity import sensitivity
from approxmap.analysis.significance import agreement, compute_significance, scores_for
from approxmap.core.latency import measure_latency
from approxmap.core.layers import count_macs
from approxmap.pruning import (
    finetune,
    mask_injections,
    parameter_count,
    plan_by_layer_ratios,
    prune_model,
    pruning_units,
    read_points,
    unit_scores,
)
from approxmap.report.figures import save_figure
from approxmap.report.significance_figures import (
    plot_order_comparison,
    plot_sensitivity,
    plot_tradeoff,
)
from approxmap.zoo.fashion import load_fashion_mnist
from approxmap.zoo.trained import load_trained


def save_png(fig, out: Path, stem: str) -> Path:
    return save_figure(fig, out, stem)[0]


def accuracy(model, data) -> float:
    return Campaign(model, data, run=Run(batch_size=250)).clean_accuracy()


def stage(results: dict, name: str, out: Path, fn):
    """Run fn() unless results already hold `name`; save results after it."""
    if name not in results:
        started = time.perf_counter()
        results[name] = fn()
        results[name + "_seconds"] = round(time.perf_counter() - started, 1)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"[{name}] done in {results[name + '_seconds']} s", flush=True)
    return results[name]


def first_convs(units) -> list[str]:
    """The first convolution of each residual block / every independent convolution."""
    return [u.name for u in units if not u.coupled]


def lowest_overlap(a: np.ndarray, b: np.ndarray, fraction: float = 0.25) -> float:
    k = max(1, int(len(a) * fraction))
    return len(set(np.argsort(a)[:k]) & set(np.argsort(b)[:k])) / k


def run_agreement(model, calib, units, args) -> dict:
    layers = first_convs(units)[: args.resilience_layers]
    sig = compute_significance(model, calib, ["l1", "l2"], run=Run(batch_size=250))
    res = compute_significance(model, calib.subset(args.resilience_images), ["l1", "resilience"],
                               layers=layers, run=Run(batch_size=250))
    l1_l2 = [r for r in agreement(sig) if r["a"] == "l1"]
    rows = []
    for layer in layers:
        a, b = res.oriented("l1")[layer], res.oriented("resilience")[layer]
        drops = [f["accuracy_drop_pp"] for f in res.details["resilience"]["filters"][layer]]
        rows.append({"layer": layer, "rho": agreement(res)[layers.index(layer)]["rho"],
                     "low25_overlap": lowest_overlap(a, b), "max_drop_pp": max(drops),
                     "harmless_filters": sum(d <= 0 for d in drops), "filters": len(a)})
    return {"l1_l2": l1_l2, "l1_resilience": rows, "images": args.resilience_images}


def run_sensitivity(model, data, units, scores, args) -> dict:
    subset = data.subset(args.sens_images)
    clean, rows = sensitivity(model, subset, units, scores, args.sens_ratios,
                              ("smallest", "largest", "random"), draws=2, run=Run(batch_size=250))
    return {"clean_accuracy": clean, "images": len(subset),
            "rows": [dataclasses.asdict(r) for r in rows]}


def measure(model, test, sample, args) -> dict:
    lat1 = measure_latency(model, sample[:1], threads=1, repeats=args.repeats)
    lat64 = measure_latency(model, sample[:64], threads=1, repeats=max(5, args.repeats // 5))
    return {"accuracy": accuracy(model, test), "macs": count_macs(model, sample[:1])[""],
            "params": parameter_count(model), "latency_b1_ms": lat1.median_ms,
            "latency_b64_ms": lat64.median_ms}


def run_level(model, test, train, units, scores, ratio, base, args) -> dict:
    sample = test.x[:64]
    plan = level_plan(units, scores, ratio, args)
    pruned = prune_model(model, plan, sample, units)
    with torch.no_grad(), Injector(model, mask_injections(units, plan, read_points(model)),
                                   seed=0) as masked:
        gap = float((masked(sample) - pruned(sample)).abs().max())
    row = {"ratio": ratio, **measure(pruned, test, sample, args), "masked_vs_pruned": gap,
           "base_accuracy": base["accuracy"], "base_macs": base["macs"]}
    started = time.perf_counter()
    finetune(pruned, train, args.finetune_epochs, lr=args.lr, seed=0)
    row["finetune_seconds"] = round(time.perf_counter() - started, 1)
    row["finetuned_accuracy"] = accuracy(pruned, test)
    print(f"  ratio {ratio}: {row}", flush=True)
    return row


def level_plan(units, scores, ratio, args):
    ratios = {u.name: ratio * (args.coupled_scale if u.coupled else 1.0) for u in units}
    return plan_by_layer_ratios(units, scores, {k: v for k, v in ratios.items() if v > 0})


def interleaved_latency(model, test, units, scores, args, rounds: int = 15) -> dict:
    """Latency of the base and every level, measured in alternation (shared-load fairness).

    Latency does not depend on the weight values, so the pruned models are rebuilt from
    their plans; each model's figure is the median (and the minimum, the least disturbed
    by other load) of its per-round medians.
    """
    sample = test.x[:64]
    models = {"base": model} | {str(r): prune_model(model, level_plan(units, scores, r, args),
                                                    sample, units)
                                for r in (float(v) for v in args.levels.split(","))}
    times: dict[str, dict[str, list[float]]] = {k: {"b1": [], "b64": []} for k in models}
    for _ in range(rounds):
        for name, m in models.items():
            times[name]["b1"].append(measure_latency(m, sample[:1], repeats=30).median_ms)
            times[name]["b64"].append(measure_latency(m, sample, repeats=5).median_ms)
    return {name: {k: float(np.median(v)) for k, v in t.items()}
            | {f"{k}_min": float(np.min(v)) for k, v in t.items()} | {"rounds": rounds}
            for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--cache", default=None, help="checkpoint directory")
    p.add_argument("--levels", default="0.2,0.3,0.4")
    p.add_argument("--sens-ratios", default="0.25,0.5,0.75")
    p.add_argument("--sens-images", type=int, default=1000)
    p.add_argument("--resilience-images", type=int, default=500)
    p.add_argument("--resilience-layers", type=int, default=4)
    p.add_argument("--coupled-scale", type=float, default=1.0,
                   help="ratio multiplier for coupled groups (residual stages); 0 prunes only "
                        "the first convolution of each block, as Li et al. do for ResNets")
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--train-images", type=int, default=None)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads outside latency runs")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.sens_ratios = [float(v) for v in args.sens_ratios.split(",")]
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/pruning-experiment/{args.arch}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "load": os.getloadavg(), "torch": torch.__version__}
    model = load_trained(args.arch, directory=args.cache)
    test, train = load_fashion_mnist("test"), load_fashion_mnist("train")
    train = train.subset(args.train_images)
    units = pruning_units(model, test.x[:1])
    calib = train.subset(1000)
    scores = unit_scores(units, scores_for(compute_significance(model, None, ["l1"]), "l1"))
    stage(results, "agreement", out, lambda: run_agreement(model, calib, units, args))
    sens = stage(results, "sensitivity", out, lambda: run_sensitivity(model, test, units, scores, args))
    save_png(plot_sensitivity(sens), out, "sensitivity")
    save_png(plot_order_comparison(sens), out, "orders")
    base = stage(results, "base", out, lambda: measure(model, test, test.x[:64], args))
    for ratio in (float(v) for v in args.levels.split(",")):
        stage(results, f"level_{ratio}", out,
              lambda r=ratio: run_level(model, test, train, units, scores, r, base, args))
    stage(results, "latency", out, lambda: interleaved_latency(model, test, units, scores, args))
    levels = [results[k] for k in results if k.startswith("level_") and not k.endswith("_seconds")]
    save_png(plot_tradeoff(sorted(levels, key=lambda r: r["ratio"])), out, "tradeoff")
    print(json.dumps({k: v for k, v in results.items() if k.startswith(("base", "level_"))}, indent=1))


if __name__ == "__main__":
    main()
