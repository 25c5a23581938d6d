"""Bit-level fault functions: exact bits changed (checked on bit views), rates, round trips."""

from __future__ import annotations

import math

import pytest
import torch

from approxmap.core.exceptions import InvalidParameterError
from approxmap.faults import bits as B

FLOATS = ("fp32", "fp16", "bf16")


def codes(values: torch.Tensor, fmt: str, scale=None) -> torch.Tensor:
    """The stored codes as non-negative int64 (so that XOR and popcount are plain)."""
    return B.encode(values, fmt, scale).to(torch.int64) & ((1 << B.get_format(fmt).width) - 1)


def values_for(fmt: str, n: int = 4096) -> torch.Tensor:
    """Finite values exactly representable in the format (so the cast is exact)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, generator=g) * 4
    if fmt == "int8":
        return torch.randint(-128, 128, (n,), generator=g).float() * 0.25
    return x.to(B.get_format(fmt).float_dtype).float()


@pytest.mark.parametrize("fmt", [*FLOATS, "int8"])
def test_flip_at_changes_exactly_the_requested_bits(fmt):
    f = B.get_format(fmt)
    scale = B.Int8Scale(0.25) if fmt == "int8" else None
    x = values_for(fmt, 64).reshape(8, 8)
    index = torch.arange(0, 64, 3)
    bit = torch.arange(len(index)) % f.width
    out = B.flip_at(x, index, bit, fmt, scale)
    s = 0.25 if fmt == "int8" else None
    diff = codes(x.reshape(-1), fmt, s) ^ codes(out.reshape(-1), fmt, s)
    expected = torch.zeros(64, dtype=torch.int64)
    expected[index] = 1 << bit
    assert torch.equal(diff, expected)
    untouched = torch.ones(64, dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(out.reshape(-1)[untouched], x.reshape(-1)[untouched])  # exact values
    assert torch.equal(B.flip_at(out, index, bit, fmt, scale), x)  # flipping twice restores


@pytest.mark.parametrize("fmt", [*FLOATS, "int8"])
@pytest.mark.parametrize("positions", ["all", "sign", "0:3", (1, 5)])
def test_random_counts_flip_exactly_count_bits_per_sample_at_allowed_positions(fmt, positions):
    allowed = B.parse_bits(positions, fmt)
    scale = B.Int8Scale(0.25) if fmt == "int8" else None
    x = values_for(fmt, 6 * 50).reshape(6, 5, 10)
    g = torch.Generator().manual_seed(1)
    count = min(3, 50 * len(allowed))
    out = B.flip_random_bits(x, fmt, allowed, g, count=count, per_sample=True, scale=scale)
    s = 0.25 if fmt == "int8" else None
    diff = (codes(x.reshape(6, -1), fmt, s) ^ codes(out.reshape(6, -1), fmt, s))
    ones = sum(((diff >> p) & 1) for p in range(B.get_format(fmt).width))
    assert ones.sum(1).tolist() == [count] * 6
    mask = sum(1 << p for p in allowed)
    assert int((diff & ~mask).abs().sum()) == 0  # nothing outside the allowed positions
    assert torch.equal(x, values_for(fmt, 300).reshape(6, 5, 10))  # input untouched


def test_single_fault_per_sample_and_per_tensor():
    x = torch.rand(16, 4, 3, 3)
    g = torch.Generator().manual_seed(0)
    out = B.flip_random_bits(x, "fp32", B.parse_bits("all", "fp32"), g)
    changed = (codes(x, "fp32") != codes(out, "fp32")).reshape(16, -1).sum(1)
    assert changed.tolist() == [1] * 16
    out = B.flip_random_bits(x, "fp32", (3,), g, per_sample=False)
    assert int(B.count_changed_bits(x, out, "fp32")) == 1


@pytest.mark.parametrize(("rate", "calls"), [(1e-4, 20), (3e-3, 5), (0.4, 2)])
def test_measured_flip_rate_matches_the_requested_rate(rate, calls):
    """Sparse draws (binomial count + distinct indices) and the dense fallback: the number
    of flipped element-bits is Binomial(n, rate); allow 5 standard deviations."""
    x = torch.randn(50, 20, 20)
    positions = (0, 7, 30)
    g = torch.Generator().manual_seed(11)
    flipped = sum(int(B.count_changed_bits(x, B.flip_random_bits(x, "fp32", positions, g,
                                                                 rate=rate), "fp32"))
                  for _ in range(calls))
    n = calls * x.numel() * len(positions)
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(flipped - n * rate) < 5 * sd, (flipped, n * rate, sd)


def test_distinct_indices_are_distinct_in_range_and_cover_the_population():
    g = torch.Generator().manual_seed(5)
    sparse = B.distinct_indices(200, 40, 100, g)  # many duplicates to redraw
    assert all(len(set(row.tolist())) == 40 for row in sparse)
    assert 0 <= int(sparse.min()) and int(sparse.max()) < 100
    dense = B.distinct_indices(3, 100, 100, g)
    assert all(sorted(row.tolist()) == list(range(100)) for row in dense)
    hits = torch.bincount(B.distinct_indices(4000, 2, 10, g).reshape(-1), minlength=10)
    assert int(hits.min()) > 600 and int(hits.max()) < 1000  # about uniform (800 each)
    with pytest.raises(InvalidParameterError, match="distinct faults"):
        B.distinct_indices(1, 11, 10, g)


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_half_formats_round_trip_and_bf16_is_the_top_of_fp32(fmt):
    x = values_for(fmt)
    assert torch.equal(B.decode(B.encode(x, fmt), fmt, torch.float32), x)
    if fmt == "bf16":
        top = B.encode(x, "fp32").to(torch.int64) >> 16
        assert torch.equal(codes(x, "bf16"), top & 0xFFFF)
    # a tensor in the format itself keeps its dtype and changes only the flipped bit
    y = x[:10].to(B.get_format(fmt).float_dtype)
    out = B.flip_at(y, torch.tensor([2]), torch.tensor([15]), fmt)
    assert out.dtype == y.dtype and out[2] == -y[2] and torch.equal(out[3:], y[3:])


def test_fp16_flip_of_an_fp32_value_rounds_it_to_fp16_first():
    x = torch.tensor([1.0 + 2**-20])  # not an fp16 value: rounds to 1.0 in fp16
    out = B.flip_at(x, torch.tensor([0]), torch.tensor([0]), "fp16")
    assert out.item() == 1.0 + 2**-10


def test_int8_sign_flip_changes_the_value_by_minus_or_plus_128_scale():
    scale = 0.02
    x = torch.tensor([0.0, 0.5, 1.2, -0.6, -2.56])
    out = B.flip_at(x, torch.arange(5), torch.full((5,), 7), "int8", B.Int8Scale(scale))
    code = torch.round(x / scale).clamp(-128, 127)
    expected = torch.where(code >= 0, code - 128, code + 128) * scale
    assert torch.allclose(out, expected)
    # non-negative codes get the sign bit set: the value falls by exactly 128 * scale
    assert torch.allclose(out[:3] - code[:3] * scale, torch.full((3,), -128 * scale))


def test_int8_per_channel_scales_follow_the_channel_dim():
    x = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])  # (1, 2 channels, 2)
    scale = B.Int8Scale(torch.tensor([0.5, 0.25]), dim=1)
    out = B.flip_at(x, torch.tensor([0, 2]), torch.tensor([7, 7]), "int8", scale)
    assert out[0, 0, 0].item() == (2 - 128) * 0.5 and out[0, 1, 0].item() == (4 - 128) * 0.25
    assert out[0, 0, 1].item() == 1.0 and out[0, 1, 1].item() == 1.0
    zero = B.Int8Scale(torch.tensor([0.0, 1.0]), dim=1)  # a dead channel: code 0, value 0
    assert B.flip_at(x, torch.tensor([0]), torch.tensor([3]), "int8", zero)[0, 0, 0] == 0


def test_stuck_bits_are_forced_to_their_value():
    x = torch.tensor([1.0, -1.0, 0.0, 3.0])
    high = B.force_bits(x, "fp32", (31,), 1, torch.tensor([0, 2]))
    assert high.tolist() == [-1.0, -1.0, -0.0, 3.0] and math.copysign(1, high[2]) < 0
    low = B.force_bits(x, "fp32", (31,), 0, torch.tensor([0, 1]))
    assert low.tolist() == [1.0, 1.0, 0.0, 3.0]
    exponent = B.force_bits(x, "fp32", B.parse_bits("exponent", "fp32"), 1, torch.tensor([3]))
    assert math.isnan(exponent[3]) and exponent[:3].tolist() == x[:3].tolist()


def test_flips_producing_inf_and_nan_are_values_not_errors():
    x = torch.tensor([1.0, 1.5])
    out = B.flip_at(x, torch.tensor([0, 1]), torch.tensor([30, 30]), "fp32")
    assert math.isinf(out[0]) and math.isnan(out[1])


def test_bit_specifications_and_their_errors():
    assert B.parse_bits("all", "int8") == tuple(range(8))
    assert B.parse_bits("0:3,30,sign", "fp32") == (0, 1, 2, 3, 30, 31)
    assert B.parse_bits(14.0, "fp16") == (14,)
    assert B.parse_bits("exponent", "bf16") == tuple(range(7, 15))
    assert B.bits_text((0, 1, 2, 3, 30), "fp32") == "0:3,30"
    assert B.bits_text(range(16), "fp16") == "all"
    for bad, fmt in (("8", "int8"), ("16", "fp16"), ("3:40", "fp32"), ("7:3", "fp32"),
                     ("mantissa", "int8"), ("x", "fp32"), (-1, "fp32"), (2.5, "fp32")):
        with pytest.raises(InvalidParameterError):
            B.parse_bits(bad, fmt)
    with pytest.raises(InvalidParameterError, match="Unknown number format 'fp64'"):
        B.get_format("fp64")


def test_the_trial_generator_is_the_only_source_of_randomness():
    x = torch.randn(8, 16)
    a = B.flip_random_bits(x, "fp32", (5, 9), torch.Generator().manual_seed(4), count=2)
    torch.manual_seed(123)  # the global generator plays no part
    b = B.flip_random_bits(x, "fp32", (5, 9), torch.Generator().manual_seed(4), count=2)
    assert torch.equal(a, b)
    with pytest.raises(InvalidParameterError, match="floating-point"):
        B.flip_random_bits(torch.ones(3, dtype=torch.int32), "fp32", (1,),
                           torch.Generator().manual_seed(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_flips_run_on_the_tensor_device():  # pragma: no cover - needs a GPU
    x = torch.randn(4, 8, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    out = B.flip_random_bits(x, "fp16", (14,), g, rate=0.25)
    assert out.device == x.device
