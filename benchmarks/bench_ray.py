"""The Ray engine on this machine: the speed-up of 2 workers over 1 and the engine's overhead
per trial group relative to the local engine, printed as ratios, in one run.

The workload: every Conv2d/Linear layer of the model x 2 sigmas (0.5, 1; Gaussian error at
the layer output) x `--trials` trials x `--images` images of mnist5k, batch size 250. The
clean pass runs once, outside the timed regions; every engine computes the same trial plans
against it, and the script checks that their records are identical.

1. local          LocalEngine(threads=1) in this process: the groups of the local engine.
2. ray-1 (same)   RayEngine with 1 worker and the local engine's groups (group_size=64):
                  (ray-1 - local) / groups is the engine's overhead per group (the goal:
                  below 5 % of local's time per group).
3. ray-1, ray-2   RayEngine with 1 and 2 workers and its default groups: ray-1 / ray-2 is
                  the speed-up (the goal on 2 cores: >= 1.7x).

Workers are started (`engine.start()`) before the timed regions; a timed run includes
putting the model, data and calibration into the object store and each worker building the
model. Each time is the median of `--repeat` runs, the engines alternating within a repeat
so that background load hits them alike; the load average is printed before and after, and
so is what 2 plain processes gain over 1 on this machine right now (the ceiling of any
2-worker speed-up while other jobs hold the cores).

    python benchmarks/bench_ray.py                          # mnist-cnn, 1000 images
    python benchmarks/bench_ray.py --model resnet20 --images 500 --trials 4
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

import torch

import approxmap as am
from approxmap.core.scenario import trial_seed
from approxmap.engine.base import TrialPlan
from approxmap.engine.local import MAX_GROUP, _groups


def load(name: str) -> torch.nn.Module:
    """The zoo model with its weights, else its untrained architecture (the same work per
    trial; resnet20's weights are trained on demand, not shipped)."""
    try:
        return am.create_model(name)
    except am.CheckpointError:
        torch.manual_seed(0)
        return am.create_model(name, pretrained=False)


def _spin(n: int) -> float:
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    start = time.perf_counter()
    for _ in range(n):
        a = torch.tanh(a @ a * 1e-3)
    return time.perf_counter() - start


def machine_ceiling(n: int = 300) -> float:
    """Throughput of 2 processes over 1 on this machine now (plain torch work, 1 thread each):
    the most any 2-worker speed-up can be while other jobs hold the cores."""
    import multiprocessing

    start = time.perf_counter()
    _spin(n)
    one = time.perf_counter() - start
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [5, 5])
        start = time.perf_counter()
        pool.map(_spin, [n, n])
        two = time.perf_counter() - start
    return 2 * one / two


def timed(engine, model, data, batch, plans, calibration) -> tuple[float, dict]:
    records: list = []
    start = time.perf_counter()
    engine.run(model, data, batch, plans, calibration, records.extend)
    return time.perf_counter() - start, {(r.scenario, r.trial): r for r in records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-cnn")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import ray

    print(f"load average before: {os.getloadavg()}  (CPUs: {os.cpu_count()})")
    model = load(args.model)
    data = am.create_dataset("mnist5k").subset(args.images)
    layers = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    scenarios = [am.Scenario.single(am.Site(layer), am.Gaussian(std=s))
                 for layer in layers for s in (0.5, 1.0)]
    plans = [TrialPlan(s, t, trial_seed(0, s.key, t)) for s in scenarios for t in range(args.trials)]
    local = am.LocalEngine(threads=1)
    calibration = local.calibrate(model, data, args.batch_size, [s.sites[0] for s in scenarios])
    groups = len(list(_groups(plans)))
    print(f"{args.model}: {len(layers)} layers x 2 sigmas x {args.trials} trials = {len(plans)} "
          f"trials in {groups} local groups, {len(data)} images, batch {args.batch_size}")

    ray.init(address="local", num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False,
             logging_level=logging.WARNING)
    recipe = am.ModelRecipe.from_spec(args.model)
    engines = {
        "ray-1 (same groups)": am.RayEngine(workers=1, rebuild=recipe, group_size=MAX_GROUP),
        "ray-1": am.RayEngine(workers=1, rebuild=recipe),
        "ray-2": am.RayEngine(workers=2, rebuild=recipe),
    }
    times: dict[str, list[float]] = {"local": [], **{name: [] for name in engines}}
    reference = None
    for _ in range(args.repeat):
        seconds, reference = timed(local, model, data, args.batch_size, plans, calibration)
        times["local"].append(seconds)
        for name, engine in engines.items():
            engine.start()  # only one engine's workers at a time hold the CPUs
            seconds, got = timed(engine, model, data, args.batch_size, plans, calibration)
            times[name].append(seconds)
            assert got.keys() == reference.keys() and all(
                got[k].same_result(reference[k]) for k in got), f"{name}: other records"
            engine.close()  # its workers leave the CPUs to the next engine's
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        print(f"  {name:22s} {value:8.2f} s   ({', '.join(f'{v:.2f}' for v in times[name])})")
    overhead = median["ray-1 (same groups)"] - median["local"]
    print(f"overhead per group: {1e3 * overhead / groups:.1f} ms = "
          f"{100 * overhead / median['local']:.1f} % of local's {median['local'] / groups:.2f} s "
          f"per group (goal < 5 %)")
    ceiling = machine_ceiling()
    print(f"speed-up ray-2 / ray-1: {median['ray-1'] / median['ray-2']:.2f}x (goal >= 1.7x on "
          f"2 idle cores); this machine now gives 2 processes {ceiling:.2f}x the throughput "
          "of one")
    print(f"load average after: {os.getloadavg()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
