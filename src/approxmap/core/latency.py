"""Measured CPU latency: median of repeated forwards at a fixed thread count, after warm-up.

>>> measure_latency(model, torch.zeros(1, 1, 28, 28), threads=1).median_ms  # doctest: +SKIP
1.84
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import eval_mode


@dataclass(frozen=True)
class Latency:
    """Per-forward wall time in milliseconds over `repeats` timed runs."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    warmup: int
    threads: int
    batch: int

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def measure_latency(model: nn.Module, inputs: torch.Tensor, *, threads: int = 1,
                    repeats: int = 30, warmup: int = 5) -> Latency:
    """Time `model(inputs)` on the CPU with `threads` intra-op threads, in eval mode (the
    thread count and every module's training flag restored afterwards)."""
    for name, value, low in (("threads", threads, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidParameterError(f"{name} must be an integer >= {low}. Got {value!r}.")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with eval_mode(model):
            for _ in range(warmup):
                model(inputs)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(inputs)
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    return Latency(statistics.median(times), deciles[0], deciles[-1], repeats, warmup, threads,
                   len(inputs))


__all__ = ["Latency", "measure_latency"]
