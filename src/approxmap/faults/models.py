"""The registered hardware-fault error models: `bitflip` (transient) and `stuckbit` (permanent).

Both act on the stored representation of each element hit (see `approxmap.faults.bits`):
format fp32, fp16, bf16 (IEEE 754 / bfloat16: cast, change bits, cast back) or int8 (the
element's code under a symmetric per-tensor or per-channel scale from the calibration pass,
`SiteStats.absmax / 127` or `channel_absmax / 127`; changed, then dequantized).

Where they act is the Site's business: activations (targets "output", "input") or
parameters ("weight", "bias"), whole tensors or chosen channels. `per="auto"` (the default)
treats dim 0 of an activation as the batch sample (one inference each) and a parameter as one
tensor; it is resolved from the site's statistics (`SiteStats.channel_dim`: 1 for
activations, 0 for parameters).

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> BitFlip(bit=30).apply(torch.ones(4, 8), g).isinf().sum(1).tolist()  # one per sample
[1, 1, 1, 1]

(1.0 with exponent bit 30 flipped is Inf; int8 code 2 at scale 0.5 with its sign bit flipped
is 2 - 128 = -126, i.e. -63.)
>>> BitFlip(format="int8", bits="sign", qscale=0.5).apply(torch.ones(1, 2), g).sort().values
tensor([[-63.,   1.]])

Sweeps: `approxmap profile --error bitflip` sweeps `bit` over every position of the
format (also spelled `--sweep bits=0:31`); `--sweep rate=1e-7,1e-6,...` gives the bit error
rate curve (then `bit` stays -1 and `bits` chooses the positions).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from approxmap.core.errors import ErrorModel, register_error_model
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.stats import SiteStats
from approxmap.faults.bits import (
    FORMATS,
    Int8Scale,
    binomial,
    bits_text,
    distinct_indices,
    flip_random_bits,
    force_bits,
    get_format,
    parse_bits,
)

PER = ("auto", "sample", "tensor")
GRANULARITY = ("tensor", "channel")


def _integer(owner: str, name: str, value: Any, low: int) -> int:
    """An integral int/float/str as an int >= low (sweeps give floats, --param strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not number.is_integer() or number < low:
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be an integer >= {low}. Got {value!r}.")
    return int(number)


def _fraction(owner: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be a number in [0, 1]. Got {value!r}.")
    return number


@dataclass(frozen=True)
class BitFault(ErrorModel):
    """Shared parameters of the bit-fault models.

    Args:
        format: "fp32", "fp16", "bf16" or "int8": how the values are stored.
        bits: the positions that may be hit: "all", a field ("sign", "exponent",
            "mantissa"; int8: "sign", "magnitude"), "30", "0:7", "0:3,30" or a tuple.
        bit: one position (an integer, the numeric axis swept per bit); -1: use `bits`.
        per: "sample" (dim 0 is the batch: each inference gets its own faults), "tensor"
            (the whole tensor at once) or "auto" (sample for activations, tensor for
            weights and biases).
        granularity: int8 scale per "tensor" or per "channel" (from the calibration pass).
        qscale: an explicit int8 scale (> 0); 0: from the site's statistics.
    """

    format: str = "fp32"
    bits: Any = "all"
    bit: int = -1
    per: str = "auto"
    granularity: str = "tensor"
    qscale: float = 0.0

    default_axis: ClassVar[str] = "bit"
    default_sweep: ClassVar[tuple[float, ...]] = tuple(float(b) for b in range(32))
    axis_aliases: ClassVar[dict[str, str]] = {"bits": "bit"}  # `--sweep bits=0:31` sweeps bit
    categorical_axes: ClassVar[tuple[str, ...]] = ("bit",)  # positions: no threshold

    def __post_init__(self) -> None:
        owner = type(self).__name__
        f = get_format(self.format)
        bit = _integer(owner, "bit", self.bit, -1)
        if bit >= 0:
            if self.bits not in ("all", None) and parse_bits(self.bits, f) != (bit,):
                raise InvalidParameterError(
                    f"{owner}: give either bit={bit} or bits={self.bits!r}, not both.")
            parse_bits(bit, f)  # range check
            bits = str(bit)
        else:
            bits = bits_text(parse_bits("all" if self.bits is None else self.bits, f), f)
        if self.per not in PER:
            raise InvalidParameterError(
                f"The 'per' parameter of {owner} must be one of {PER}. Got {self.per!r}.")
        if self.granularity not in GRANULARITY:
            raise InvalidParameterError(
                f"The 'granularity' parameter of {owner} must be one of {GRANULARITY}. "
                f"Got {self.granularity!r}.")
        try:
            qscale = float(self.qscale)
        except (TypeError, ValueError):
            qscale = math.nan
        if not (math.isfinite(qscale) and qscale >= 0):
            raise InvalidParameterError(
                f"The 'qscale' parameter of {owner} must be a finite number >= 0. "
                f"Got {self.qscale!r}.")
        object.__setattr__(self, "bit", bit)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "qscale", qscale)

    @classmethod
    def default_sweep_for(cls, params: dict[str, Any]) -> tuple[float, ...]:
        """The default sweep given the fixed parameters: every bit position of the format."""
        width = get_format(params.get("format", "fp32")).width
        return tuple(float(b) for b in range(width))

    @property
    def positions(self) -> tuple[int, ...]:
        """The bit positions that may be hit, sorted."""
        return parse_bits(self.bits, self.format)

    @property
    def relative(self) -> bool:
        """int8 without an explicit scale needs the site's statistics (resolve)."""
        return self.format == "int8" and self.qscale == 0 and self._scale is None

    _scale: ClassVar[Int8Scale | None] = None  # set per instance by resolve()

    def resolve(self, stats: SiteStats | None) -> BitFault:
        """The model for a site: `per="auto"` decided and the int8 scale taken from its
        clean values (absmax / 127, per tensor or per channel along the site's channel dim).

        Raises:
            InvalidParameterError: int8 without a qscale and without statistics.
        """
        channel_dim = getattr(stats, "channel_dim", 1) if stats is not None else 1
        per = self.per
        if per == "auto":
            per = "sample" if channel_dim >= 1 else "tensor"
        out = dataclasses.replace(self, per=per)
        if self.format != "int8":
            return out
        if self.qscale > 0:
            scale = Int8Scale(self.qscale)
        elif stats is None:
            raise InvalidParameterError(
                f"{self.label()} needs the site's statistics for its int8 scale (or qscale=).")
        elif self.granularity == "channel" and len(stats.channel_absmax):
            scale = Int8Scale(stats.channel_absmax.float() / 127, channel_dim)
        else:
            scale = Int8Scale(stats.absmax / 127)
        object.__setattr__(out, "_scale", scale)
        return out

    def int8_scale(self) -> Int8Scale | None:
        """The int8 scale in use (None for float formats)."""
        if self.format != "int8":
            return None
        if self._scale is not None:
            return self._scale
        if self.qscale > 0:
            return Int8Scale(self.qscale)
        raise InvalidParameterError(
            f"{self.label()} is int8 without a scale: resolve(stats) it or give qscale=.")

    def per_sample(self, tensor: torch.Tensor) -> bool:
        return self.per in ("auto", "sample") and tensor.dim() >= 2


@register_error_model("bitflip")
@dataclass(frozen=True)
class BitFlip(BitFault):
    """Transient bit flips in the stored values (fp32/fp16/bf16/int8), fresh in every inference.

    How many (one of):
        rate: bit error rate, the probability of each allowed element-bit to flip.
        count: exactly this many flipped element-bits per sample (or per tensor).
        neither (default): one fault per inference: one random element of each sample's
            tensor (a parameter: of the whole tensor, once per trial), one random allowed bit.

    Other parameters: see `BitFault` (format, bits, bit, per, granularity, qscale).
    """

    rate: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rate is not None and self.count is not None:
            raise InvalidParameterError(
                "BitFlip: give either rate= (a bit error rate) or count= (faults per sample), "
                "not both.")
        if self.rate is not None:
            object.__setattr__(self, "rate", _fraction("BitFlip", "rate", self.rate))
        if self.count is not None:
            object.__setattr__(self, "count", _integer("BitFlip", "count", self.count, 0))

    @property
    def mode(self) -> str:
        """"rate", "count" or "single" (one fault per inference)."""
        return "rate" if self.rate is not None else "count" if self.count is not None else (
            "single")

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """`tensor` (any floating dtype and shape, on any device) with bits flipped; never
        modifies its input. NaN and Inf results are kept (the engine counts them)."""
        if self.is_identity():
            return tensor
        return flip_random_bits(tensor, self.format, self.positions, generator, rate=self.rate,
                                count=self.count, per_sample=self.per_sample(tensor),
                                scale=self.int8_scale())

    def is_identity(self) -> bool:
        return self.rate == 0.0 or self.count == 0

    @property
    def sparse(self) -> bool:
        """A few faults per sample (one per inference, or a count): most are masked a layer
        or two later (by a ReLU or a max pool), so the engine computes only the samples they
        still change (exact; see GraphRunner.suffix_sparse)."""
        return self.rate is None

    def faults_per_sample(self) -> int | None:
        """Faults per sample (or per tensor): 1 single, `count`, None for a rate."""
        return None if self.rate is not None else (1 if self.count is None else self.count)


@register_error_model("stuckbit")
@dataclass(frozen=True)
class StuckBit(BitFault):
    """Permanent stuck-at faults: the chosen bits forced to `value` on a fraction of elements.

    The same elements are stuck in every inference of a trial: at a weight the faulty tensor
    is drawn once per trial; at an activation the element positions (within a sample: the
    same for every sample and batch) derive from the trial's seed.

    Args:
        value: 0 (stuck-at-0) or 1 (stuck-at-1).
        rate: the fraction of elements stuck (a binomial count of distinct elements).
        format, bits, bit, per, granularity, qscale: see `BitFault`; every position of
            `bits` is forced on each stuck element.
    """

    value: int = 1
    rate: float = 0.01

    default_axis: ClassVar[str] = "bit"

    def __post_init__(self) -> None:
        super().__post_init__()
        value = _integer("StuckBit", "value", self.value, 0)
        if value > 1:
            raise InvalidParameterError(
                f"The 'value' parameter of StuckBit must be 0 or 1. Got {self.value!r}.")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "rate", _fraction("StuckBit", "rate", self.rate))

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """`tensor` with the bits of the stuck elements forced; never modifies its input."""
        if self.is_identity():
            return tensor
        per_sample = self.per_sample(tensor)
        unit = tensor[0].numel() if per_sample else tensor.numel()
        # Positions are a function of the trial's seed alone, so every batch of the trial
        # sees the same stuck elements (the generator itself advances batch by batch).
        fixed = torch.Generator(device=generator.device).manual_seed(
            (generator.initial_seed() * 0x9E3779B97F4A7C15 + 0x5EED) % 2**63)
        k = binomial(unit, self.rate, fixed)
        index = distinct_indices(1, k, unit, fixed).reshape(-1)
        if per_sample:
            rows = torch.arange(tensor.shape[0], device=index.device).unsqueeze(1) * unit
            index = (rows + index).reshape(-1)
        return force_bits(tensor, self.format, self.positions, self.value, index,
                          self.int8_scale())

    def is_identity(self) -> bool:
        return self.rate == 0.0


__all__ = ["FORMATS", "BitFault", "BitFlip", "StuckBit"]
