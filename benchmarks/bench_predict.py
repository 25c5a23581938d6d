"""Statistical prediction against bit-exact emulation: time and agreement, in one run.

For every (layer, unit) of a model, the time to emulate the unit in the layer (one
deterministic trial) and to predict it through the Gaussian engine (the noise model's
statistics plus `--trials` seeded trials), each through its own in-memory campaign with the
same calibration split, on the same images.

    python benchmarks/bench_predict.py                       # mnist-cnn and vgg-small
    python benchmarks/bench_predict.py --models mnist-cnn --images 500
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import approxmap as am
from approxmap.analysis.emulate import EmulateSpec, emulate_analysis
from approxmap.analysis.predict import PredictSpec, predict_analysis

UNITS = ("trunc:4", "trunc:6", "bam:2,6", "drum:4", "drum:6", "mitchell", "kulkarni",
         "evo:mul8u_2P7", "evo:mul8u_KEM", "evo:mul8u_CK5", "evo:mul8u_2AC", "evo:mul8u_NGR",
         "evo:mul8u_185Q", "evo:mul8u_12N4", "evo:mul8u_17KS")
DATA = {"mnist-cnn": "mnist5k", "vgg-small": "fashion-mnist", "resnet20": "fashion-mnist"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist-cnn", "vgg-small"])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--calib-images", type=int, default=256)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()}")
    for name in args.models:
        model = am.create_model(name)
        data = am.create_dataset(DATA[name], images=args.images)
        calib = data.subset(args.calib_images)
        started = time.perf_counter()
        emulated = emulate_analysis(model, data, EmulateSpec(units=UNITS), am.Run(), calib)
        emulate_s = time.perf_counter() - started
        started = time.perf_counter()
        predicted = predict_analysis(model, data, PredictSpec(units=UNITS),
                                     am.Run(trials=args.trials), calib, emulated)
        predict_s = time.perf_counter() - started
        v = predicted.validation
        errors = np.array([abs(r.error_pp) for r in predicted.rows if r.error_pp is not None])
        print(f"\n{name} on {DATA[name]} ({data.selection}), {len(emulated.layers)} layers x "
              f"{len(UNITS)} units:")
        print(f"  emulation  {emulate_s:8.1f} s  (one trial per pair, plus the int8 baseline)")
        print(f"  prediction {predict_s:8.1f} s  ({args.trials} trials per pair)")
        print(f"  prediction / emulation time: {predict_s / emulate_s:.2f}  "
              f"(emulation / prediction: {emulate_s / predict_s:.2f}x; goal >= 20x)")
        print(f"  |predicted - emulated| over {v.get('pairs', 0)} pairs with emulated drop <= 5 pp:"
              f" median {v.get('median_pp', float('nan')):.2f} pp (goal <= 0.5), 90th percentile "
              f"{v.get('p90_pp', float('nan')):.2f} pp (goal <= 2), worst "
              f"{v.get('worst_pp', float('nan')):.2f} pp; over all {len(errors)} pairs: median "
              f"{np.median(errors):.2f}, worst {errors.max():.2f}")
        for pair in v.get("worst_pairs", []):
            print(f"    worst: {pair['layer']} {pair['unit']} {pair['error_pp']:+.2f} pp "
                  f"(K = {pair['terms']})")


if __name__ == "__main__":
    main()
