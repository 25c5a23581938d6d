"""Time one layer profile three ways: approxmap, the straightforward loop, and the floor.

The workload: the 5 Conv2d/Linear layers of `mnist-cnn` x 4 sigmas (0.25, 0.5, 1, 2, in
units of the std of the layer's clean output; Gaussian error at the layer output, rate 1)
x 10 trials x 1,000 images of `mnist5k`, batch size 250. Every trial injects (no sigma 0).

1. approxmap      `profile_layers(...)` with an in-memory store and `LocalEngine`. Its time
                  includes everything it does: the clean calibration pass, fx tracing,
                  the trials, the store and the assembly of the profile.
2. straightforward  what one writes by hand (or with PyTorchFI-style hooks): one clean pass
                  for each layer's reference std, then for every layer x sigma x trial a
                  forward hook adding seeded noise and a full forward of every batch.
                  The clean pass is *inside* its timed region, as approxmap's is.
3. floor          only the work no implementation can skip: per layer x sigma x trial x
                  batch, draw the noise and run the part of the network after the layer on
                  (clean layer output + noise). The clean layer outputs are computed
                  *outside* the timed region, so this is a lower bound.

All three use approxmap's own seeds, `trial_seed(0, scenario.key, trial)`, so they compute
the same numbers: the script checks that every trial's correct count is identical.

How to read the result: "speed-up vs straightforward" is straightforward / approxmap (the
goal is >= 5x); "approxmap / floor" is the overhead over the lower bound (goal <= 1.3x).
The floor also bounds any speed-up from prefix caching: straightforward / floor is the most
that skipping the clean prefix can give on this model.
Each time is the median of `--repeat` runs; the methods alternate within each repeat so
that background load hits them alike. Times on a busy machine are noisy: see the load line.

    python benchmarks/bench_profile.py                       # the full measurement
    python benchmarks/bench_profile.py --images 250 --trials 2 --repeat 1   # quick check
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import approxmap
from approxmap import ProfileSpec, Run, Site, Store, trial_seed
from approxmap.engine.calibrate import calibrate

# (scenario key, trial index) -> number of correctly classified images
Counts = dict[tuple[str, int], int]


@dataclass(frozen=True)
class Config:
    """The workload: model, data, layers, sigmas, trials and batch size."""

    model: nn.Module
    data: approxmap.EvalData
    layers: tuple[str, ...]
    sigmas: tuple[float, ...]
    trials: int
    batch_size: int

    @property
    def spec(self) -> ProfileSpec:
        return ProfileSpec(layers=self.layers, sweep=self.sigmas)

    def key(self, layer: str, sigma: float) -> str:
        return self.spec.scenario(layer, sigma).key

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(self.data.batches(self.batch_size))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images of mnist5k (1000)")
    parser.add_argument("--trials", type=int, default=10, help="trials per layer and sigma (10)")
    parser.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=[0.25, 0.5, 1.0, 2.0],
        help="relative sigmas, all > 0 (0.25 0.5 1 2)",
    )
    parser.add_argument("--batch-size", type=int, default=250, help="batch size (250)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; median (3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    args = parser.parse_args(argv)
    if min(args.sigmas) <= 0:
        parser.error("--sigmas must all be > 0, so that every trial injects.")
    return args


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (on {os.cpu_count()} CPUs)"
    except OSError:
        return "unknown"


# --- 1. approxmap ---------------------------------------------------------------------


def run_approxmap(cfg: Config) -> Counts:
    """The profile through the public API; returns every trial's correct count."""
    store = Store(None)  # in memory: what Run() creates, kept to read the records
    run = Run(store=store, trials=cfg.trials, seed=0, batch_size=cfg.batch_size)
    approxmap.profile_layers(cfg.model, cfg.data, cfg.spec, run)
    return {key: record.counts.correct1 for key, record in store.trials("profile").items()}


# --- 2. the straightforward way -------------------------------------------------------


def reference_stds(cfg: Config) -> dict[str, float]:
    """Std of each layer's clean output over all images, accumulated in float64 per batch."""
    modules = dict(cfg.model.named_modules())
    sums = {layer: [0, 0.0, 0.0] for layer in cfg.layers}

    def hook_for(layer: str):
        def hook(module, args, out):
            t = out.detach().double()
            acc = sums[layer]
            acc[0] += t.numel()
            acc[1] += float(t.sum())
            acc[2] += float((t * t).sum())

        return hook

    handles = [modules[layer].register_forward_hook(hook_for(layer)) for layer in cfg.layers]
    try:
        with torch.no_grad():
            for x, _ in cfg.data.batches(cfg.batch_size):
                cfg.model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {layer: max(ss / n - (s / n) ** 2, 0.0) ** 0.5 for layer, (n, s, ss) in sums.items()}


def baseline_trial(cfg: Config, module: nn.Module, scale: float, seed: int) -> int:
    """One trial: a seeded noise hook on `module` and a full forward of every batch."""
    g = torch.Generator().manual_seed(seed)

    def add_noise(mod, args, out):
        return out + torch.randn(out.shape, generator=g) * scale

    handle = module.register_forward_hook(add_noise)
    correct = 0
    try:
        with torch.no_grad():
            for x, y in cfg.data.batches(cfg.batch_size):
                correct += int((cfg.model(x).argmax(dim=1) == y).sum())
    finally:
        handle.remove()
    return correct


def run_baseline(cfg: Config) -> Counts:
    """Clean pass for the reference stds, then every layer x sigma x trial in full."""
    stds = reference_stds(cfg)
    modules = dict(cfg.model.named_modules())
    counts: Counts = {}
    for layer in cfg.layers:
        for sigma in cfg.sigmas:
            key, scale = cfg.key(layer, sigma), sigma * stds[layer]
            for trial in range(cfg.trials):
                seed = trial_seed(0, key, trial)
                counts[(key, trial)] = baseline_trial(cfg, modules[layer], scale, seed)
    return counts


# --- 3. the floor ---------------------------------------------------------------------


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """mnist-cnn's forward() as a flat list of (name, module), written out by hand."""
    return [
        ("normalize", model.normalize),
        *((f"conv_layers.{i}", m) for i, m in enumerate(model.conv_layers)),
        ("flatten", nn.Flatten(1)),
        *((f"fc_layers.{i}", m) for i, m in enumerate(model.fc_layers)),
    ]


def split_at(model: nn.Module, layer: str) -> tuple[nn.Sequential, nn.Sequential]:
    """(the network up to and including `layer`, the rest after it)."""
    steps = stages(model)
    cut = [name for name, _ in steps].index(layer) + 1
    return (
        nn.Sequential(*(m for _, m in steps[:cut])),
        nn.Sequential(*(m for _, m in steps[cut:])),
    )


@torch.no_grad()
def prepare_floor(cfg: Config) -> dict[str, tuple[nn.Sequential, list]]:
    """Per layer: the rest of the network and the clean layer output of every batch."""
    prepared = {}
    for layer in cfg.layers:
        head, rest = split_at(cfg.model, layer)
        cached = [(head(x), y) for x, y in cfg.batches()]
        for (x, _), (clean, _) in zip(cfg.batches(), cached, strict=True):
            if not torch.equal(rest(clean), cfg.model(x)):
                raise RuntimeError(f"The hand-written split at {layer} differs from forward().")
        prepared[layer] = (rest, cached)
    return prepared


@torch.no_grad()
def floor_trial(rest: nn.Sequential, cached: list, scale: float, seed: int) -> int:
    """One trial on cached clean outputs: noise, then only the suffix of the network."""
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for clean, y in cached:
        noisy = clean + torch.randn(clean.shape, generator=g).mul_(scale)
        correct += int((rest(noisy).argmax(dim=1) == y).sum())
    return correct


def run_floor(cfg: Config, prepared: dict, stds: dict[str, float]) -> Counts:
    counts: Counts = {}
    for layer in cfg.layers:
        rest, cached = prepared[layer]
        for sigma in cfg.sigmas:
            key, scale = cfg.key(layer, sigma), sigma * stds[layer]
            for trial in range(cfg.trials):
                counts[(key, trial)] = floor_trial(rest, cached, scale, trial_seed(0, key, trial))
    return counts


# --- timing and report ----------------------------------------------------------------


def measure(methods: dict[str, Callable[[], Counts]], repeat: int):
    """Run the methods in turn, `repeat` rounds; return their times and last counts."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    counts: dict[str, Counts] = {}
    for round_ in range(repeat):
        for name, fn in methods.items():
            start = time.perf_counter()
            counts[name] = fn()
            times[name].append(time.perf_counter() - start)
            print(f"  round {round_ + 1}/{repeat}  {name:<16} {times[name][-1]:8.2f} s", flush=True)
    return times, counts


def compare(reference: Counts, other: Counts) -> str:
    """'yes' when every trial's correct count is identical, else what differs."""
    if reference.keys() != other.keys():
        return f"NO (different trials: {len(reference)} vs {len(other)})"
    diffs = [abs(reference[k] - other[k]) for k in reference if reference[k] != other[k]]
    if not diffs:
        return f"yes (all {len(reference)} trials identical)"
    return f"NO ({len(diffs)} of {len(reference)} trials differ, by up to {max(diffs)} images)"


def print_report(times: dict[str, list[float]], counts: dict[str, Counts]) -> None:
    median = {name: statistics.median(t) for name, t in times.items()}
    ours = median["approxmap"]
    print(f"\n{'method':<16} {'seconds':>9} {'vs approxmap':>13}   runs")
    for name, seconds in median.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:<16} {seconds:9.2f} {seconds / ours:12.2f}x   {runs}")
    print(
        f"\nsame accuracies, straightforward vs approxmap: "
        f"{compare(counts['approxmap'], counts['straightforward'])}"
    )
    print(
        f"same accuracies, floor vs approxmap:           "
        f"{compare(counts['approxmap'], counts['floor'])}"
    )
    print(f"\nspeed-up vs straightforward: {median['straightforward'] / ours:.2f}x (goal >= 5x)")
    print(f"approxmap / floor: {ours / median['floor']:.2f}x (goal <= 1.3x)")


def setup(args: argparse.Namespace) -> Config:
    model = approxmap.create_model("mnist-cnn").eval()
    data = approxmap.create_dataset("mnist5k", images=args.images)
    layers = tuple(approxmap.select_layers(model))
    return Config(
        model, data, layers, tuple(sorted(set(args.sigmas))), args.trials, args.batch_size
    )


def check_stds(cfg: Config, stds: dict[str, float]) -> None:
    """The hand-computed reference stds must equal approxmap's calibration exactly."""
    theirs = calibrate(
        cfg.model, cfg.data, cfg.batch_size, [Site(layer) for layer in cfg.layers]
    ).site_stats
    same = all(theirs[Site(layer).key].std == stds[layer] for layer in cfg.layers)
    print(f"reference stds identical to approxmap's calibration: {'yes' if same else 'NO'}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = setup(args)
    print(
        f"date {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; torch {torch.__version__}; "
        f"threads {torch.get_num_threads()}; CPU {cpu_model()}"
    )
    print(
        f"workload: mnist-cnn, {len(cfg.layers)} layers x {len(cfg.sigmas)} sigmas "
        f"{list(cfg.sigmas)} x {cfg.trials} trials x {len(cfg.data)} images of mnist5k, "
        f"batch {cfg.batch_size}; repeat {args.repeat} (median)"
    )
    print(f"load average before: {load_average()}")
    stds = reference_stds(cfg)  # for the floor; the baseline measures its own, timed
    check_stds(cfg, stds)
    prepared = prepare_floor(cfg)
    methods = {
        "approxmap": lambda: run_approxmap(cfg),
        "straightforward": lambda: run_baseline(cfg),
        "floor": lambda: run_floor(cfg, prepared, stds),
    }
    times, counts = measure(methods, args.repeat)
    print(f"load average after:  {load_average()}")
    print_report(times, counts)


if __name__ == "__main__":
    main()
