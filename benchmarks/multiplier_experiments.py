"""The approximate-multiplier experiments of docs/approximate-multipliers.md and docs/planning.md.

For each workload: emulation of every unit in every chosen layer alone and in all layers at
once, the statistical prediction of every (layer, unit) with its validation against
emulation, and plans at a 1 pp budget (layer granularity, and class granularity with
pruning). Every step is an approxmap command into the workload's run folder, so an
interrupted run resumes, and the folder's report.html shows everything.

    python benchmarks/multiplier_experiments.py                  # every workload
    python benchmarks/multiplier_experiments.py --only mnist-cnn --images 500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

EVO = ("evo:mul8u_2P7", "evo:mul8u_KEM", "evo:mul8u_CK5", "evo:mul8u_2AC", "evo:mul8u_NGR",
       "evo:mul8u_185Q", "evo:mul8u_12N4", "evo:mul8u_17KS")
FORMULA = ("exact", "trunc:4", "trunc:6", "bam:2,6", "drum:4", "drum:6", "mitchell", "kulkarni")
UNITS = FORMULA + EVO
# The planner also gets units with larger errors and savings, so that layers which tolerate
# them can take them while the others cannot (the point of a per-layer plan).
AGGRESSIVE = ("trunc:8", "drum:3", "bam:4,8", "evo:mul8u_1AGV", "evo:mul8u_JV3",
              "evo:mul8u_18DU", "evo:mul8u_QKX", "evo:mul8u_13QR")
PLAN_UNITS = tuple(u for u in UNITS if u != "exact") + AGGRESSIVE
WORKLOADS = {
    "mnist-cnn": {"model": "mnist-cnn", "data": "mnist5k", "images": 2000, "layers": None},
    "vgg-small": {"model": "vgg-small", "data": "fashion-mnist", "images": 2000, "layers": None},
    "efficientnet-lite0": {
        "model": "efficientnet-lite0", "data": "photos", "images": 64,
        "layers": ["_conv_stem", "_blocks.1._depthwise_conv", "_blocks.1._project_conv",
                   "_blocks.8._depthwise_conv", "_blocks.8._expand_conv", "_conv_head", "_fc"]},
}


def approxmap(*argv: str) -> None:
    command = [sys.executable, "-m", "approxmap", *argv]
    print("+ approxmap " + " ".join(argv), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def run_workload(name: str, spec: dict, args) -> dict:
    out = Path(args.out) / name
    images = str(args.images or spec["images"])
    common = ["--model", spec["model"], "--data", spec["data"], "--images", images,
              "--calib-images", str(args.calib_images), "--out", str(out), "--quiet"]
    if spec["layers"]:
        common += ["--layers", *spec["layers"]]
    units = ",".join(UNITS)
    approxmap("emulate", "--units", units, "--all-layers", *common)
    approxmap("predict", "--units", ",".join(u for u in UNITS if u != "exact"),
              "--trials", str(args.trials), *common)
    approxmap("plan", "--units", ",".join(PLAN_UNITS), "--budget", "1",
              "--trials", str(args.trials), *common)
    summary = {"emulate": json.loads((out / "emulate.json").read_text()),
               "predict": json.loads((out / "predict.json").read_text()),
               "plan": json.loads((out / "plan.json").read_text())}
    if not args.skip_class and name != "efficientnet-lite0":
        class_out = Path(args.out) / f"{name}-class"
        approxmap("plan", "--units", ",".join(PLAN_UNITS), "--budget", "1",
                  "--granularity", "class", "--prune", "--trials", str(args.trials),
                  *[a if a != str(out) else str(class_out) for a in common])
        summary["plan_class"] = json.loads((class_out / "plan.json").read_text())
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS))
    parser.add_argument("--images", type=int, default=None, help="override each workload's")
    parser.add_argument("--calib-images", type=int, default=256)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--skip-class", action="store_true")
    parser.add_argument("--out", default="runs/multipliers")
    args = parser.parse_args()
    results = {}
    for name in args.only or list(WORKLOADS):
        results[name] = run_workload(name, WORKLOADS[name], args)
    path = Path(args.out) / "summary.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"summary: {path}")


if __name__ == "__main__":
    main()
