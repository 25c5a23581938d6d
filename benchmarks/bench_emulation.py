"""Time whole-network inference with every Conv2d/Linear emulated through a multiplier table.

For each network, every Conv2d/Linear layer is quantized to int8 (per-channel weights,
per-tensor activations calibrated by min/max of the layer input on a few batches) and
replaced by an `EmulatedLayer`. Reported: the time of one batch (default 256 images) through
the emulated network relative to the float network, both with `--threads` threads (default
2): float and emulated runs alternate `--repeat` times after a warm-up of each (the warm-up
also compiles the per-layer plans; their compile time and memory are reported apart), and
the ratio is the median of the per-pair ratios, which keeps a varying background load out
of it as far as possible. Check the load lines: on a busy machine the figures are noisy.

Networks:
- mnist-cnn: the built-in trained model (3 conv + 2 linear), calibrated on mnist5k.
- vgg-small: `approxmap.zoo.archs.build_arch("vgg-small")`, RANDOM INIT (seed 0; timing
  only), eval mode, calibrated on uniform [0, 1] 1x28x28 inputs.

Units: exact int8 (plain integer inference), truncated and broken-array arrays (structured:
a few exact convolutions), DRUM and random tables (unstructured: table lookups; the 16-bit
one, with errors up to 65535, needs two-digit tables: the worst case), EvoApprox
tables from /work/shared/evoapprox (if present), unsigned units with uint8 activations and
signed units with int8 activations. The naive table-gather reference
(`reference.reference_forward`) is timed on a smaller batch (`--ref-batch`) and its ratio is
per image. Also: top-1 accuracy of the int8 (exact unit) mnist-cnn vs float on the first
1,000 images of mnist5k, and (full run) of mnist-cnn with each unit.

    python benchmarks/bench_emulation.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_emulation.py --quick    # a few units, fewer repeats
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import approxmap
from approxmap.multipliers.emulate import EmulatedLayer, plan_for
from approxmap.multipliers.products import Table, exact_table
from approxmap.multipliers.quant import ActivationRange, QuantScheme, quantize_layer
from approxmap.multipliers.reference import reference_forward
from approxmap.multipliers.units import create_unit
from approxmap.zoo.archs import build_arch

# unsigned unstructured (17KS, rank 17; NGR, rank 52), unsigned low-rank (2P7, MAE 1),
# signed bit-linear (1KVL); the quick run takes the first
EVO_UNITS = ("v10/mul8u_17KS", "v10/mul8u_2P7", "v10/mul8s_1KVL", "v10/mul8u_NGR")


def random_table(noise: int, signed: bool = False, seed: int = 0) -> Table:
    """The exact product plus uniform integer noise in [-noise, noise] (an unstructured unit)."""
    rng = np.random.default_rng(seed)
    lut = exact_table(signed).lut.astype(np.int64) + rng.integers(-noise, noise + 1, (256, 256))
    low, high = (-32768, 32767) if signed else (0, 65535)
    return Table(np.clip(lut, low, high).astype(np.int32), signed, name=f"random +-{noise}")


def units(quick: bool) -> list[tuple[str, str, Any]]:
    """(label, activation scheme, unit) of the variants to time."""
    out: list[tuple[str, str, Any]] = [
        ("exact int8 (uint8 act)", "uint8", None),
        ("truncated k=8, unsigned", "uint8", create_unit("trunc:8")),
        ("random table, unsigned", "uint8", random_table(64)),
    ]
    if not quick:
        out[2:2] = [
            ("truncated k=4, unsigned", "uint8", create_unit("trunc:4")),
            ("broken-array 2/8, unsigned", "uint8", create_unit("bam:2,8")),
            ("DRUM k=4, unsigned", "uint8", create_unit("drum:4")),
        ]
        out += [
            ("exact int8 (int8 act)", "int8", None),
            ("random table, signed", "int8", random_table(64, signed=True)),
            ("random 16-bit table (worst case)", "uint8", random_table(65535, seed=3)),
        ]
    for name in EVO_UNITS if not quick else EVO_UNITS[:1]:
        unit = create_unit(f"evo:{name}")
        out.append((f"EvoApprox {unit.name}", "int8" if unit.signed else "uint8", unit))
    return out


def calibrate(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, ActivationRange]:
    """min/max of every Conv2d/Linear input over the batches."""
    stats: dict[str, list[float]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, args, name=name):
                x = args[0].detach()
                lo, hi = stats.get(name, [float("inf"), float("-inf")])
                stats[name] = [min(lo, float(x.min())), max(hi, float(x.max()))]
            hooks.append(module.register_forward_pre_hook(hook))
    with torch.no_grad():
        for x in batches:
            model(x)
    for h in hooks:
        h.remove()
    return {name: ActivationRange(lo, hi) for name, (lo, hi) in stats.items()}


def emulated(model: nn.Module, ranges: dict[str, ActivationRange], scheme: QuantScheme,
             unit: Any, wrap: Callable[..., nn.Module] = EmulatedLayer) -> nn.Module:
    """A copy of the model with every Conv2d/Linear replaced by ``wrap(int8_layer, unit)``."""
    out = copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if name in ranges:
            parent_name, _, child = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, child, wrap(quantize_layer(module, ranges[name], scheme), unit))
    return out.eval()


class ReferenceLayer(nn.Module):
    """An Int8Layer run by the naive table-gather reference."""

    def __init__(self, layer: nn.Module, unit: Any) -> None:
        super().__init__()
        self.layer, self.unit = layer, unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reference_forward(self.layer, x, self.unit)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `repeat` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_pair(base: Callable[[], Any], other: Callable[[], Any],
               repeat: int) -> tuple[float, float, float]:
    """Alternate runs of base and other (after a warm-up of each).

    Returns (median base time, median other time, median of the per-pair ratios
    other / base): pairing keeps a slowly varying background load out of the ratio.
    """
    base()
    other()
    pairs = []
    for _ in range(repeat):
        start = time.perf_counter()
        base()
        middle = time.perf_counter()
        other()
        pairs.append((middle - start, time.perf_counter() - middle))
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            statistics.median(p[1] / p[0] for p in pairs))


def plan_memory(model: nn.Module) -> tuple[int, str]:
    """Bytes of the compiled plans of an emulated model and the paths its layers take."""
    total, kinds = 0, set()
    for m in model.modules():
        if isinstance(m, EmulatedLayer):
            plan = plan_for(m.layer, m.unit)
            total += plan.nbytes
            kinds.add(plan.description)
    return total, "/".join(sorted(kinds))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, len(x), batch))
    return 100.0 * hits / len(x)


def networks(batch: int) -> list[tuple[str, nn.Module, list[torch.Tensor], torch.Tensor]]:
    """(name, float model, calibration batches, timing batch) of each network."""
    mnist = approxmap.create_dataset("mnist5k", images=1000)
    mnist_model = approxmap.create_model("mnist-cnn").eval()
    calib = [mnist.x[i:i + 250] for i in range(0, 1000, 250)]
    x_mnist = mnist.x[:batch] if batch <= 1000 else mnist.x[torch.arange(batch) % 1000]
    torch.manual_seed(0)
    vgg = build_arch("vgg-small").eval()
    gen = torch.Generator().manual_seed(1)
    vgg_calib = [torch.rand(256, 1, 28, 28, generator=gen) for _ in range(2)]
    x_vgg = torch.rand(batch, 1, 28, 28, generator=gen)
    return [("mnist-cnn", mnist_model, calib, x_mnist), ("vgg-small", vgg, vgg_calib, x_vgg)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ref-batch", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="4-5 units, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 2)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}, batch {args.batch}, median of {args.repeat}")
    print(f"load average at start: {os.getloadavg()}")

    mnist = approxmap.create_dataset("mnist5k", images=1000)
    results = []
    for net_name, model, calib, x in networks(args.batch):
        ranges = calibrate(model, calib)
        with torch.no_grad():
            t_float = timed(lambda m=model, x=x: m(x), args.repeat)
        print(f"\n{net_name}: float {t_float * 1e3:.1f} ms / batch of {len(x)}")
        with_acc = net_name == "mnist-cnn" and not args.quick
        print(f"  {'unit':32s} {'act':5s} {'ms':>9s} {'ratio':>7s}  {'path':18s} "
              f"{'plans MB':>8s} {'compile s':>9s}" + ("  top-1 %" if with_acc else ""))
        for label, act, unit in units(args.quick):
            scheme = QuantScheme(activation=act)
            emu = emulated(model, ranges, scheme, unit)
            start = time.perf_counter()
            with torch.no_grad():
                emu(x[:2])  # compiles the plans
            compile_s = time.perf_counter() - start
            with torch.no_grad():
                _, t, ratio = timed_pair(lambda f=model, x=x: f(x), lambda m=emu, x=x: m(x),
                                         args.repeat)
            nbytes, kinds = plan_memory(emu)
            top1 = f"  {accuracy(emu, mnist.x, mnist.y, 250):7.1f}" if with_acc else ""
            print(f"  {label:32s} {act:5s} {t * 1e3:9.1f} {ratio:6.1f}x  {kinds:18s} "
                  f"{nbytes / 1e6:8.1f} {compile_s:9.2f}{top1}")
            results.append((net_name, label, ratio))
            del emu
        # the naive reference, per image, on a small batch
        ref_unit = random_table(64)
        ref = emulated(model, ranges, QuantScheme(), ref_unit, ReferenceLayer)
        xr = x[:args.ref_batch]
        with torch.no_grad():
            t_ref = timed(lambda m=ref, x=xr: m(x), 1) / len(xr)
        print(f"  {'naive gather reference (random)':32s} uint8 {t_ref * len(x) * 1e3:9.0f} "
              f"{t_ref / (t_float / len(x)):6.0f}x  (timed on {len(xr)} images, per image)")
        if net_name == "mnist-cnn":
            exact = emulated(model, ranges, QuantScheme(), None)
            xs, ys = mnist.x, mnist.y
            acc_f = accuracy(model, xs, ys, 250)
            acc_q = accuracy(exact, xs, ys, 250)
            print(f"  accuracy on mnist5k ({mnist.selection}): float {acc_f:.1f}%, int8 exact {acc_q:.1f}% "
                  f"(drop {acc_f - acc_q:+.1f} pp)")
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
