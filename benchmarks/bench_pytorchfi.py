"""approxmap side by side with PyTorchFI 0.6.0: identical single-bit faults, and a timed campaign.

PyTorchFI (Mahmoud et al., DSN-W 2020) is a benchmark-only peer, never a dependency of
approxmap: `make bench-peers` installs `pytorchfi==0.6.0` (it declares no dependencies and
works with torch 2.13). Without it this script says it skipped and exits 0.

1. Validation (mnist-cnn, every Conv2d, fp32 activations). approxmap draws random single-bit
   faults (`bitflip`, one fault per inference) from a seed; the same (layer, sample, channel,
   row, column, bit) are replayed in PyTorchFI through `declare_neuron_fi(function=...)`,
   whose hook flips each bit with a scalar `struct` round trip written here (an oracle
   independent of approxmap's tensor code). Checked: (a) one batch through
   `approxmap.Injector`: logits bitwise identical (NaN where NaN); (b) whole trials through
   the campaign engine (torch.fx prefix cache): per-trial masked / SDC / DUE counts identical.

2. Speed: a campaign of random single-bit faults in fp32 activations, one fault per
   inference, at every Conv2d layer, `--images` x `--trials` per layer, on mnist-cnn
   (mnist5k) and resnet20 (fashion-mnist; shipped weights if trained, else random init:
   timing only), both tools in one run, same batch size:
   - approxmap: one `Campaign` (local engine, CPU) with a `bitflip` scenario per layer; its
     time includes the clean pass, fx tracing and the store.
   - PyTorchFI, as its batched error models work (`random_neuron_inj_batched`): per batch,
     `declare_neuron_fi` with one random location per image in the layer, a custom hook
     flipping a random bit of each (vectorized with an int32 view: the fastest hook we could
     write), and a full forward of the corrupted model; the clean top-1 once per batch.
   Printed: both times, the ratio, and the machine load (`uptime`) before and after.

    python benchmarks/bench_pytorchfi.py             # 1,000 images x 100 trials per layer
    python benchmarks/bench_pytorchfi.py --quick     # 250 images x 4 trials per layer
    python benchmarks/bench_pytorchfi.py --validate-only
"""

from __future__ import annotations

import argparse
import os
import platform
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import approxmap as am
from approxmap.faults.bits import random_positions

PEER = "pytorchfi==0.6.0"
FP32_BITS = tuple(range(32))


def load_pytorchfi():
    """pytorchfi.core, or None when it is not installed."""
    try:
        from pytorchfi import core
    except ImportError:
        return None
    return core


# -- machine facts -------------------------------------------------------------------------

def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- the workloads -------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    model: nn.Module
    data: am.EvalData
    note: str

    @property
    def input_shape(self) -> list[int]:
        return list(self.data.x.shape[1:])


def mnist_cnn(images: int) -> Workload:
    return Workload("mnist-cnn", am.create_model("mnist-cnn").eval(),
                    am.create_dataset("mnist5k", images=images), "shipped weights")


def resnet20(images: int) -> Workload:
    try:
        model, note = am.create_model("resnet20"), "shipped weights"
    except am.ApproxmapError:
        from approxmap.zoo.archs import build_arch

        torch.manual_seed(0)
        model, note = build_arch("resnet20"), "random init (no trained weights here): timing only"
    return Workload("resnet20", model.eval(), am.create_dataset("fashion-mnist", images=images),
                    note)


def conv_order(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """Names of the Conv2d modules in the order forward() calls them (PyTorchFI's layer
    numbers count hook calls, i.e. this order)."""
    order: list[str] = []
    handles = [m.register_forward_hook(lambda mod, a, o, n=n: order.append(n))
               for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    return order


def prefix_bound(model: nn.Module, sample: torch.Tensor, sites: list[str]) -> float:
    """The most that reusing the clean prefix can save on this campaign: the MACs of a full
    forward per site over the MACs after each site (modules in call order; functional ops
    have no MACs), summed over the sites."""
    from approxmap.core.layers import count_macs

    calls: list[str] = []
    handles = [m.register_forward_hook(lambda mod, a, o, n=n: calls.append(n))
               for n, m in model.named_modules() if n and not list(m.children())]
    try:
        macs = count_macs(model, sample)
    finally:
        for h in handles:
            h.remove()
    full = macs[""]
    after = [sum(macs.get(n, 0) for n in calls[calls.index(site) + 1:]) for site in sites]
    return full * len(sites) / max(sum(after), 1)


# -- PyTorchFI side ------------------------------------------------------------------------

def flip_scalar(value: float, bit: int) -> float:
    """The fp32 `value` with `bit` flipped, through Python's struct (the oracle)."""
    (word,) = struct.unpack("<I", struct.pack("<f", value))
    (out,) = struct.unpack("<f", struct.pack("<I", word ^ (1 << bit)))
    return out


class PfiFlips:
    """A PyTorchFI custom injection function flipping one bit per declared location.

    PyTorchFI calls it as a forward hook of every Conv2d of the corrupted model; it reads
    the declared locations from the injector (`corrupt_layer`, `corrupt_batch`, ...), this
    object's `bits`, and advances PyTorchFI's layer counter as its own hooks do.
    """

    def __init__(self, pfi, scalar: bool) -> None:
        self.pfi, self.scalar = pfi, scalar
        self.bits: list[int] = []

    def __call__(self, module, inputs, output):
        pfi = self.pfi
        layer = pfi.get_current_layer()
        chosen = [i for i, n in enumerate(pfi.corrupt_layer) if n == layer]
        if chosen:
            where = tuple(torch.tensor([getattr(pfi, name)[i] for i in chosen])
                          for name in ("corrupt_batch", "corrupt_dim1", "corrupt_dim2",
                                       "corrupt_dim3"))
            if self.scalar:
                for i, b, c, h, w in zip(chosen, *(t.tolist() for t in where), strict=True):
                    output[b, c, h, w] = flip_scalar(float(output[b, c, h, w]), self.bits[i])
            else:
                masks = torch.tensor([self.bits[i] for i in chosen], dtype=torch.int64)
                masks = torch.where(masks == 31, torch.tensor(-2**31), 1 << masks).to(torch.int32)
                words = output[where].contiguous().view(torch.int32) ^ masks
                output[where] = words.view(torch.float32)
        pfi.updateLayer()
        if pfi.get_current_layer() >= pfi.get_total_layers():
            pfi.reset_current_layer()


def pfi_injector(core, work: Workload, batch: int, scalar: bool):
    pfi = core.fault_injection(work.model, batch, input_shape=work.input_shape,
                               layer_types=[nn.Conv2d], use_cuda=False)
    return pfi, PfiFlips(pfi, scalar)


def pfi_forward(pfi, flips: PfiFlips, layer: int, x: torch.Tensor, locations) -> torch.Tensor:
    """Logits of `x` with one bit flip per (sample, channel, row, column, bit) in `layer`."""
    b, c, h, w, bit = (t.tolist() for t in locations)
    flips.bits = bit
    pfi.reset_current_layer()
    corrupted = pfi.declare_neuron_fi(batch=b, layer_num=[layer] * len(b), dim1=c, dim2=h,
                                      dim3=w, function=flips)
    with torch.no_grad():
        return corrupted(x)


def unravel(element: torch.Tensor, bit: torch.Tensor, shape) -> tuple[torch.Tensor, ...]:
    """Flat indices of an (N, C, H, W) tensor -> (n, c, h, w, bit)."""
    _, c, h, w = shape
    return (element // (c * h * w), element // (h * w) % c, element // w % h, element % w, bit)


# -- 1. validation -------------------------------------------------------------------------

def counts_of(logits: torch.Tensor, clean: torch.Tensor) -> tuple[int, int, int]:
    """(masked, SDC, DUE) of a batch, as approxmap's Counts defines them."""
    finite = torch.isfinite(logits).all(1)
    same = (logits.argmax(1) == clean) & finite
    return int(same.sum()), int((~same & finite).sum()), int((~finite).sum())


def validate(core, images: int, batch: int, trials: int) -> bool:
    work = mnist_cnn(images)
    x_all = work.data.x
    order = conv_order(work.model, x_all[:1])
    pfi, flips = pfi_injector(core, work, batch, scalar=True)
    ok = True
    print(f"Validation on mnist-cnn, {len(order)} Conv2d layers, fp32 activations:")
    # (a) one batch through approxmap.Injector: identical logits
    x = x_all[:batch]
    for index, layer in enumerate(order):
        site, error = am.Site(layer), am.BitFlip()
        seed = 1000 + index
        with am.Injector(work.model, [(site, error)], seed=seed) as run:
            ours = run(x)
        shape = (len(x), *pfi.get_layer_shape(index)[1:])
        element, bit = random_positions(torch.Size(shape), FP32_BITS,
                                        torch.Generator().manual_seed(seed))
        theirs = pfi_forward(pfi, flips, index, x, unravel(element, bit, shape))
        same = torch.equal(torch.isnan(ours), torch.isnan(theirs)) and torch.equal(
            torch.nan_to_num(ours), torch.nan_to_num(theirs))
        ok &= same
        nonfinite = int((~torch.isfinite(ours).all(1)).sum())
        print(f"  (a) {layer:16s} {len(x)} faults: logits {'identical' if same else 'DIFFER'}"
              f" ({nonfinite} samples with NaN/Inf)")
    # (b) whole trials through the engine: identical masked/SDC/DUE counts per trial
    store = am.Store(None)
    scenarios = [am.Scenario.single(am.Site(layer), am.BitFlip()) for layer in order]
    campaign = am.Campaign(work.model, work.data, scenarios,
                           am.Run(trials=trials, batch_size=batch, store=store), name="check")
    campaign.run()
    clean = campaign.calibration.clean_top1
    for index, (layer, scenario) in enumerate(zip(order, scenarios, strict=True)):
        agree = True
        for plan in campaign.plans(scenario, range(trials)):
            record = store.trials("check")[(scenario.key, plan.trial)]
            generator = torch.Generator().manual_seed(plan.seed)
            total = [0, 0, 0]
            for start in range(0, len(x_all), batch):
                xb = x_all[start:start + batch]
                shape = (len(xb), *pfi.get_layer_shape(index)[1:])
                element, bit = random_positions(torch.Size(shape), FP32_BITS, generator)
                logits = pfi_forward(pfi, flips, index, xb, unravel(element, bit, shape))
                part = counts_of(logits, clean[start:start + batch])
                total = [a + b for a, b in zip(total, part, strict=True)]
            mine = [record.masked, record.sdc, record.due]
            agree &= mine == total
            if mine != total:
                print(f"      trial {plan.trial}: approxmap {mine} vs PyTorchFI {total}")
        ok &= agree
        print(f"  (b) {layer:16s} {trials} trials x {len(x_all)} images: masked/SDC/DUE "
              f"{'identical' if agree else 'DIFFER'}")
    print("Validation:", "PASSED" if ok else "FAILED")
    return ok


# -- 2. speed ------------------------------------------------------------------------------

def time_approxmap(work: Workload, order: list[str], trials: int, batch: int,
                   stack_mb: int) -> tuple[float, tuple[int, int, int]]:
    start = time.perf_counter()
    store = am.Store(None)
    engine = am.create_engine("local", device="cpu")
    engine.stack_memory_mb = stack_mb
    run = am.Run(engine=engine, trials=trials, batch_size=batch, store=store)
    scenarios = [am.Scenario.single(am.Site(layer), am.BitFlip()) for layer in order]
    am.Campaign(work.model, work.data, scenarios, run, name="bench").run()
    seconds = time.perf_counter() - start
    records = store.trials("bench").values()
    return seconds, tuple(sum(getattr(r, k) for r in records) for k in ("masked", "sdc", "due"))


def time_pytorchfi(core, work: Workload, order: list[str], trials: int, batch: int
                   ) -> tuple[float, tuple[int, int, int]]:
    start = time.perf_counter()
    pfi, flips = pfi_injector(core, work, batch, scalar=False)
    batches = [x for x, _ in work.data.batches(batch)]
    with torch.no_grad():
        clean = [work.model(x).argmax(1) for x in batches]
    generator = torch.Generator().manual_seed(0)
    total = [0, 0, 0]
    for index in range(len(order)):
        _, c, h, w = pfi.get_layer_shape(index)
        for _ in range(trials):
            for x, ref in zip(batches, clean, strict=True):
                n = len(x)
                locations = (torch.arange(n),
                             *(torch.randint(0, size, (n,), generator=generator)
                               for size in (c, h, w, 32)))
                logits = pfi_forward(pfi, flips, index, x, locations)
                total = [a + b for a, b in zip(total, counts_of(logits, ref), strict=True)]
    return time.perf_counter() - start, tuple(total)


def speed(core, make: Callable[[int], Workload], images: int, trials: int, batch: int,
          stack_mb: int) -> float:
    work = make(images)
    order = conv_order(work.model, work.data.x[:1])
    faults = len(order) * trials * len(work.data)
    print(f"\n{work.name} ({work.note}) on {work.data.name}: {len(order)} Conv2d layers x "
          f"{trials} trials x {len(work.data)} images = {faults:,} single-bit faults, "
          f"batch {batch}")
    print(f"  load before: {uptime()}")
    ours, our_counts = time_approxmap(work, order, trials, batch, stack_mb)
    print(f"  approxmap  {ours:9.1f} s  ({faults / ours:10,.0f} faults/s)  "
          f"masked/SDC/DUE {our_counts}")
    theirs, their_counts = time_pytorchfi(core, work, order, trials, batch)
    print(f"  PyTorchFI  {theirs:9.1f} s  ({faults / theirs:10,.0f} faults/s)  "
          f"masked/SDC/DUE {their_counts}")
    print(f"  load after:  {uptime()}")
    ratio = theirs / ours
    print(f"  speed-up: {ratio:.2f}x (PyTorchFI time / approxmap time); skipping the clean "
          f"prefix alone can give at most {prefix_bound(work.model, work.data.x[:1], order):.2f}x"
          " on this campaign (MACs)")
    return ratio


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="250 images x 4 trials per layer (unless given)")
    parser.add_argument("--images", type=int, help="images per model (1000; quick 250)")
    parser.add_argument("--trials", type=int, help="trials per layer (100; quick 4)")
    parser.add_argument("--batch-size", type=int, default=250, help="both tools (250)")
    parser.add_argument("--models", nargs="+", default=["mnist-cnn", "resnet20"],
                        choices=["mnist-cnn", "resnet20"])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--stack-mb", type=int, default=0,
                        help="approxmap's stack_memory_mb (trials stacked per forward; 0)")
    parser.add_argument("--validate-only", action="store_true")
    parser.add_argument("--skip-validation", action="store_true")
    args = parser.parse_args(argv)
    args.images = args.images or (250 if args.quick else 1000)
    args.trials = args.trials or (4 if args.quick else 100)
    if args.images % args.batch_size:
        parser.error("--images must be a multiple of --batch-size (PyTorchFI's batch is fixed)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    core = load_pytorchfi()
    if core is None:
        print(f"bench_pytorchfi: skipped: {PEER} is not installed (make bench-peers).")
        return 0
    torch.set_num_threads(args.threads)
    print(f"approxmap {am.__version__}, {PEER}, torch {torch.__version__}, Python "
          f"{platform.python_version()}, {cpu_model()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch thread(s)")
    ok = True
    if not args.skip_validation:
        ok = validate(core, images=2 * args.batch_size, batch=args.batch_size, trials=2)
    if args.validate_only:
        return 0 if ok else 1
    makers = {"mnist-cnn": mnist_cnn, "resnet20": resnet20}
    ratios = {name: speed(core, makers[name], args.images, args.trials, args.batch_size,
                          args.stack_mb) for name in args.models}
    print("\nSummary: " + ", ".join(f"{name} {r:.2f}x" for name, r in ratios.items())
          + " faster than PyTorchFI (goal >= 10x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
