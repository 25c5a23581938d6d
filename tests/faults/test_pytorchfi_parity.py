"""The same single-bit faults in approxmap and PyTorchFI give identical results (skipped when
the benchmark-only peer `pytorchfi==0.6.0` is not installed: `make bench-peers`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pytorchfi.py"


def test_identical_logits_and_counts_as_pytorchfi(capsys):
    core = pytest.importorskip("pytorchfi.core")
    spec = importlib.util.spec_from_file_location("bench_pytorchfi", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    ok = bench.validate(core, images=100, batch=50, trials=2)
    out = capsys.readouterr().out
    assert ok, out
    assert out.count("logits identical") == 3 and out.count("masked/SDC/DUE identical") == 3
