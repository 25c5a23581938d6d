"""Bit-level faults in stored number formats: pure, vectorized tensor functions.

A *format* is how an accelerator stores a value:

======  =====  ==================================================  ==========================
name    bits   layout (bit 0 = least significant)                  source
======  =====  ==================================================  ==========================
fp32    32     sign 31, exponent 23-30, mantissa 0-22              IEEE 754-2019 binary32
fp16    16     sign 15, exponent 10-14, mantissa 0-9               IEEE 754-2019 binary16
bf16    16     sign 15, exponent 7-14, mantissa 0-6                bfloat16 (Google Brain;
                                                                   fp32's top 16 bits)
int8    8      two's complement code, sign 7; value = code x       symmetric linear
               scale (zero point 0)                                quantization
======  =====  ==================================================  ==========================

A float value is cast to its format (round to nearest even), its bits are changed on an
integer view of the same memory (`tensor.view(torch.int32)` for fp32, `int16` for fp16 and
bf16) by XOR, AND and OR, and it is cast back to the tensor's dtype. An int8 value is
quantized to its code `clamp(round(x / scale), -128, 127)`, the code's bits are changed, and
the new code is dequantized (`code * scale`). Only the elements hit are converted: every
other element keeps its exact value (no rounding to the format, no quantization error).

Fault positions are drawn as counts plus indices: the number of faults first (a binomial
draw for a bit error rate, or an exact count), then that many distinct (element, bit)
indices, never a random draw per element-bit (except a dense fallback when more than a
quarter of all element-bits are hit). Random numbers come only from the `torch.Generator`
passed in; results are on the input tensor's device.

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.ones(2, 3)
>>> flip_at(x, torch.tensor([4]), torch.tensor([31]), "fp32")[1]
tensor([ 1., -1.,  1.])
>>> int(count_changed_bits(x, flip_random_bits(x, "fp32", (30,), g, count=1), "fp32"))
2
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from approxmap.core.exceptions import InvalidParameterError


@dataclass(frozen=True)
class Format:
    """A stored number format: its name, width in bits, the integer dtype of its bit view,
    the float dtype it is stored as (None for int8) and its named bit fields."""

    name: str
    width: int
    int_dtype: torch.dtype
    float_dtype: torch.dtype | None
    fields: dict[str, tuple[int, ...]]


def _span(low: int, high: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1))


FORMATS: dict[str, Format] = {
    "fp32": Format("fp32", 32, torch.int32, torch.float32,
                   {"sign": (31,), "exponent": _span(23, 30), "mantissa": _span(0, 22)}),
    "fp16": Format("fp16", 16, torch.int16, torch.float16,
                   {"sign": (15,), "exponent": _span(10, 14), "mantissa": _span(0, 9)}),
    "bf16": Format("bf16", 16, torch.int16, torch.bfloat16,
                   {"sign": (15,), "exponent": _span(7, 14), "mantissa": _span(0, 6)}),
    "int8": Format("int8", 8, torch.int8, None, {"sign": (7,), "magnitude": _span(0, 6)}),
}
DENSE_FRACTION = 0.25  # above this fraction of hit positions, draw a random key per position


def get_format(name: str) -> Format:
    """The format called `name` (fp32, fp16, bf16, int8).

    Raises:
        InvalidParameterError: an unknown name.
    """
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise InvalidParameterError(
            f"Unknown number format {name!r}; the formats are {', '.join(FORMATS)}.") from None


def parse_bits(spec: str | int | float | Iterable[int], fmt: str | Format) -> tuple[int, ...]:
    """Bit positions (sorted, distinct; 0 = least significant) from a specification.

    `spec` is "all", a field name ("sign", "exponent", "mantissa"; int8: "sign",
    "magnitude"), one position ("30", 30 or 30.0), an inclusive range ("0:7"), a comma list
    of any of these ("0:3,30,sign"), or an iterable of positions.

    Raises:
        InvalidParameterError: a position outside [0, width) of the format, an empty set, or
            a specification that is none of the above.
    """
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    positions: list[int] = []
    if isinstance(spec, str):
        for part in (p.strip() for p in spec.split(",")):
            if part == "all":
                positions += range(f.width)
            elif part in f.fields:
                positions += f.fields[part]
            elif ":" in part:
                low, _, high = part.partition(":")
                first, last = _position(low, spec, f), _position(high, spec, f)
                if first > last:
                    raise InvalidParameterError(
                        f"Bit range {part!r} runs backwards; write LOW:HIGH, e.g. 0:7.")
                positions += range(first, last + 1)
            else:
                positions.append(_position(part, spec, f))
    elif isinstance(spec, int | float) and not isinstance(spec, bool):
        positions.append(_position(spec, spec, f))
    else:
        try:
            positions += [_position(p, spec, f) for p in spec]
        except TypeError:
            raise InvalidParameterError(
                f"Bits are 'all', a field, a position, a range A:B or a list; got {spec!r}."
            ) from None
    if not positions:
        raise InvalidParameterError(f"No bit position in {spec!r}.")
    return tuple(sorted(set(positions)))


def _position(value, spec, f: Format) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        fields = ", ".join(f.fields)
        raise InvalidParameterError(
            f"Bits are 'all', {fields}, a position, a range A:B or a comma list; got "
            f"{spec!r}.") from None
    if not number.is_integer() or not 0 <= number < f.width:
        raise InvalidParameterError(
            f"Bit position {value!r} is out of range for {f.name}: positions are integers from "
            f"0 to {f.width - 1}.")
    return int(number)


def bits_text(positions: Iterable[int], fmt: str | Format) -> str:
    """The canonical text of a set of positions: "all", or ranges like "0:7,30"."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    ps = sorted(set(positions))
    if ps == list(range(f.width)):
        return "all"
    parts, start = [], 0
    for i in range(1, len(ps) + 1):
        if i == len(ps) or ps[i] != ps[i - 1] + 1:
            run = ps[start:i]
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
            start = i
    return ",".join(parts)


def bit_masks(positions: Iterable[int], fmt: str | Format,
              device: torch.device | str | None = None) -> torch.Tensor:
    """One mask per position in the format's integer dtype (two's complement: the top bit's
    mask is negative, e.g. -2**31 for fp32 bit 31)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    values = [(1 << p) - (1 << f.width if p == f.width - 1 else 0) for p in positions]
    return torch.tensor(values, dtype=f.int_dtype, device=device)


# -- encoding ----------------------------------------------------------------------------------


def encode(values: torch.Tensor, fmt: str | Format,
           scale: torch.Tensor | float | None = None) -> torch.Tensor:
    """The stored codes of `values` (any float dtype): the format's integer dtype, same shape.

    Floats: cast to the format and viewed as integers. int8: `clamp(round(values / scale),
    -128, 127)`; `scale` (a float or a tensor broadcastable to `values`) must be >= 0, and an
    element with scale 0 gets code 0.

    Raises:
        InvalidParameterError: int8 without a scale.
    """
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    if f.float_dtype is not None:
        return values.to(f.float_dtype).contiguous().view(f.int_dtype)
    if scale is None:
        raise InvalidParameterError("int8 codes need a scale (e.g. absmax / 127).")
    s = torch.as_tensor(scale, dtype=torch.float32, device=values.device)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    codes = torch.round(values.float() / safe).clamp_(-128, 127)
    return torch.where(s > 0, codes, torch.zeros_like(codes)).to(torch.int8)


def decode(codes: torch.Tensor, fmt: str | Format, dtype: torch.dtype,
           scale: torch.Tensor | float | None = None) -> torch.Tensor:
    """The values of stored codes, as `dtype` (the inverse of `encode` up to its rounding)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    if f.float_dtype is not None:
        return codes.contiguous().view(f.float_dtype).to(dtype)
    if scale is None:
        raise InvalidParameterError("int8 codes need a scale (e.g. absmax / 127).")
    s = torch.as_tensor(scale, dtype=torch.float32, device=codes.device)
    return (codes.float() * s).to(dtype)


@dataclass(frozen=True)
class Int8Scale:
    """The int8 scale of a tensor: one value, or one per channel along `dim` (shape (C,))."""

    scale: torch.Tensor | float
    dim: int = 1

    def at(self, flat_index: torch.Tensor, shape: torch.Size) -> torch.Tensor | float:
        """The scale of each element at these flat (row-major) indices of a tensor."""
        if not isinstance(self.scale, torch.Tensor) or self.scale.dim() == 0:
            return float(self.scale)
        if len(shape) <= self.dim or shape[self.dim] != len(self.scale):
            raise InvalidParameterError(
                f"Per-channel int8 scales for {len(self.scale)} channels along dim {self.dim} "
                f"do not fit a tensor of shape {tuple(shape)}.")
        inner = math.prod(shape[self.dim + 1:])
        channel = torch.div(flat_index, inner, rounding_mode="floor") % shape[self.dim]
        return self.scale.to(flat_index.device, torch.float32)[channel]


def _checked(tensor: torch.Tensor) -> None:
    if not tensor.is_floating_point():
        raise InvalidParameterError(
            f"Bit faults act on floating-point tensors (stored as fp32, fp16, bf16 or int8); "
            f"got {tensor.dtype}.")


def _change(tensor: torch.Tensor, flat_index: torch.Tensor, masks: torch.Tensor, f: Format,
            scale: Int8Scale | None, op: str, value: int = 1) -> torch.Tensor:
    """A copy of `tensor` whose elements at `flat_index` have the bits of `masks` flipped
    (op "xor") or forced to `value` (op "force"); an element listed several times gets the OR
    of its masks (callers never list the same (element, bit) twice)."""
    out = tensor.clone(memory_format=torch.contiguous_format)
    if not len(flat_index):
        return out
    flat = out.view(-1)
    index = flat_index.to(tensor.device)
    elements, inverse = torch.unique(index, return_inverse=True)
    combined = torch.zeros(len(elements), dtype=f.int_dtype, device=tensor.device)
    combined.index_add_(0, inverse, masks.to(tensor.device).expand(len(index)))
    s = None if scale is None else scale.at(elements, tensor.shape)
    codes = encode(flat[elements], f, s)
    if op == "xor":
        codes = codes ^ combined
    elif value:
        codes = codes | combined
    else:
        codes = codes & ~combined
    flat[elements] = decode(codes, f, tensor.dtype, s)
    return out


def flip_at(tensor: torch.Tensor, flat_index: torch.Tensor, bit: torch.Tensor,
            fmt: str | Format, scale: Int8Scale | None = None) -> torch.Tensor:
    """A copy of `tensor` with one bit flipped per (element, bit) pair.

    Args:
        tensor: any floating tensor (never modified).
        flat_index: int64 (K,), row-major indices into `tensor.view(-1)`.
        bit: int64 (K,), bit positions; (element, bit) pairs must be distinct.
        fmt: the stored format.
        scale: the int8 scale (required for int8).

    Raises:
        InvalidParameterError: an unknown format, a bit out of range, a non-float tensor.
    """
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    _checked(tensor)
    bit = torch.as_tensor(bit, dtype=torch.long)
    if len(bit) and (int(bit.min()) < 0 or int(bit.max()) >= f.width):
        raise InvalidParameterError(f"Bit positions for {f.name} are 0 to {f.width - 1}.")
    table = bit_masks(range(f.width), f, tensor.device)
    return _change(tensor, torch.as_tensor(flat_index, dtype=torch.long), table[bit.to(
        tensor.device)], f, scale, "xor")


def distinct_indices(rows: int, k: int, population: int,
                     generator: torch.Generator) -> torch.Tensor:
    """`k` distinct integers in [0, population) per row, uniformly: int64 (rows, k).

    Sparse draws (k <= population / 4) sample with replacement and redraw duplicates until
    none is left (a few rounds over the duplicates, never over the elements); dense ones take
    the k largest of one uniform key per integer. Both are symmetric in the integers, so every
    k-subset is equally likely. On the generator's device.

    Raises:
        InvalidParameterError: k > population, or a negative count.
    """
    device = generator.device
    if k < 0 or rows < 0:
        raise InvalidParameterError(f"Counts must be >= 0; got {k} per row, {rows} rows.")
    if k > population:
        raise InvalidParameterError(
            f"Cannot draw {k} distinct faults among {population} possible positions.")
    if k == 0 or rows == 0:
        return torch.zeros(rows, k, dtype=torch.long, device=device)
    if k > DENSE_FRACTION * population:
        keys = torch.rand(rows, population, generator=generator, device=device)
        return keys.topk(k, dim=1).indices
    index = torch.randint(0, population, (rows, k), generator=generator, device=device)
    while k > 1:
        ordered, order = index.sort(dim=1)
        repeated = torch.zeros_like(index, dtype=torch.bool)
        repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        if not bool(repeated.any()):
            break
        again = torch.zeros_like(repeated).scatter_(1, order, repeated)
        index[again] = torch.randint(0, population, (int(again.sum()),), generator=generator,
                                     device=device)
    return index


def binomial(trials: int, p: float, generator: torch.Generator) -> int:
    """One Binomial(trials, p) draw (float64 on the generator's device)."""
    if p <= 0 or trials <= 0:
        return 0
    if p >= 1:
        return trials
    device = generator.device
    n = torch.tensor([float(trials)], dtype=torch.float64, device=device)
    prob = torch.tensor([p], dtype=torch.float64, device=device)
    return int(torch.binomial(n, prob, generator=generator).item())


def random_positions(shape: torch.Size, bits: tuple[int, ...], generator: torch.Generator, *,
                     rate: float | None = None, count: int | None = None,
                     per_sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct random (flat element index, bit) pairs of a tensor of `shape`.

    Exactly one of:
        rate: each element-bit (of the allowed `bits`) is hit with probability `rate`,
            independently: K ~ Binomial(elements x len(bits), rate), then K distinct pairs.
        count: exactly `count` pairs per sample (dim 0, when `per_sample` and the tensor has
            one) or in the whole tensor.
    Neither: one pair per sample (per_sample) or in the whole tensor: the single-fault model.

    Returns:
        (flat_index int64 (K,), bit int64 (K,)) on the generator's device.
    """
    device = generator.device
    nb = len(bits)
    numel = math.prod(shape)
    sampled = per_sample and len(shape) >= 2 and rate is None
    rows = shape[0] if sampled else 1
    per_row = numel // rows if rows else 0
    if rate is not None:
        k = binomial(per_row * nb, rate, generator)
    else:
        k = 1 if count is None else count
    pairs = distinct_indices(rows, k, per_row * nb, generator)
    offsets = torch.arange(rows, device=device).unsqueeze(1) * per_row
    element = (torch.div(pairs, nb, rounding_mode="floor") + offsets).reshape(-1)
    bit_index = (pairs % nb).reshape(-1)
    return element, torch.tensor(bits, dtype=torch.long, device=device)[bit_index]


def flip_random_bits(tensor: torch.Tensor, fmt: str | Format, bits: tuple[int, ...],
                     generator: torch.Generator, *, rate: float | None = None,
                     count: int | None = None, per_sample: bool = True,
                     scale: Int8Scale | None = None) -> torch.Tensor:
    """A copy of `tensor` with random bits of its stored representation flipped.

    Args:
        tensor: any floating tensor, e.g. activations (N, C, H, W) or a weight (never
            modified).
        fmt: fp32, fp16, bf16 or int8.
        bits: the positions that may flip (see `parse_bits`).
        generator: the only source of randomness.
        rate, count, per_sample: how many flip (see `random_positions`).
        scale: the int8 scale (required for int8).
    """
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    _checked(tensor)
    element, bit = random_positions(tensor.shape, bits, generator, rate=rate, count=count,
                                    per_sample=per_sample)
    table = bit_masks(range(f.width), f, tensor.device)
    return _change(tensor, element, table[bit.to(tensor.device)], f, scale, "xor")


def force_bits(tensor: torch.Tensor, fmt: str | Format, bits: tuple[int, ...], value: int,
               element_index: torch.Tensor, scale: Int8Scale | None = None) -> torch.Tensor:
    """A copy of `tensor` whose elements at `element_index` (flat, distinct) have every bit
    of `bits` forced to `value` (0 or 1): stuck-at faults."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    _checked(tensor)
    mask = bit_masks(bits, f, tensor.device).sum(dtype=torch.int64)
    mask = torch.tensor(_wrap(int(mask), f.width), dtype=f.int_dtype, device=tensor.device)
    return _change(tensor, element_index, mask, f, scale, "force", value)


def _wrap(value: int, width: int) -> int:
    """An integer as a signed two's-complement number of `width` bits."""
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def count_changed_bits(before: torch.Tensor, after: torch.Tensor, fmt: str | Format,
                       scale: Int8Scale | None = None) -> torch.Tensor:
    """The number of differing bits between the stored codes of two tensors (int64 scalar);
    for checking what a fault changed."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    s = None
    if scale is not None:
        s = scale.at(torch.arange(before.numel(), device=before.device), before.shape)
    a = encode(before.reshape(-1), f, s).to(torch.int64) & ((1 << f.width) - 1)
    b = encode(after.reshape(-1), f, s).to(torch.int64) & ((1 << f.width) - 1)
    diff = a ^ b
    ones = torch.zeros_like(diff)
    for position in range(f.width):  # a loop over bit positions, not elements
        ones += (diff >> position) & 1
    return ones.sum()


__all__ = ["DENSE_FRACTION", "FORMATS", "Format", "Int8Scale", "binomial", "bit_masks",
           "bits_text", "count_changed_bits", "decode", "distinct_indices", "encode",
           "flip_at", "flip_random_bits", "force_bits", "get_format", "parse_bits",
           "random_positions"]
