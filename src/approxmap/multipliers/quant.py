"""Post-training int8 quantization of Conv2d/Linear layers, with integer-only execution.

The scheme is the standard integer-only one of Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018 (as in TFLite,
gemmlowp and PyTorch's fbgemm/x86 backends), with products optionally computed by an
approximate 8-bit multiplier given as a truth table (`approxmap.multipliers.products`).

Quantization
------------
- Weights: symmetric int8 per OUTPUT channel o: ``s_w[o] = max|W_o| / 127`` (1.0 for an
  all-zero channel), codes ``w = clamp(round(W / s_w[o]), -127, 127)``.
- Activations (the layer input), per tensor, from a calibrated range [lo, hi] extended to
  include 0 (`ActivationRange`, calibrated by min/max or by percentiles of a sample):

  - ``uint8`` (asymmetric): ``s_a = (hi - lo) / 255``, zero point
    ``z = clamp(round(-lo / s_a), 0, 255)``, codes ``q = clamp(round(x * (1/s_a)) + z, 0, 255)``;
  - ``int8`` (symmetric): ``s_a = max(|lo|, |hi|) / 127``, z = 0,
    codes ``q = clamp(round(x * (1/s_a)), -127, 127)``.

  ``round`` is round-half-to-even and ``x * (1/s_a)`` a float32 product with the float32
  reciprocal of the float32 scale (the same on every device; note that fbgemm's
  ``torch.quantize_per_tensor`` rounds some ties differently). Real 0.0 maps exactly to z. Internally an activation is its *index* ``i = q`` (uint8) or
  ``i = q + 128`` (int8), always 0..255; `Int8Layer.zero_index` is the index of real 0.
- Bias: int32, ``b_q[o] = round(b[o] / (s_a * s_w[o]))`` (float64), clamped to int32.

Integer execution and the multiplier
------------------------------------
For output channel o at one output position, with K = (C/groups) * kh * kw products
(zero padding is padding with the code z, i.e. real 0, and the padded codes go through the
multiplier like any other)::

    acc[o] = sum_k P(i_k, w_ok) - v(z_index) * sum_k w_ok + b_q[o]        (exact integers)
    y[o]   = float32(acc[o]) * float32(s_a * s_w[o])                     (dequantized)

``P(i, w)`` is the unit's output for the operand pair, ``v(i)`` the operand value fed to it
(`tables.product_table`). Only ``P`` goes through the multiplier; the zero-point term
``v(z) * sum_k w`` is exact, as in accelerators that fold it into a per-channel constant. With
the exact unit ``P(i, w) = v(i) * w`` and ``acc = sum_k (q_k - z) * w_ok + b_q``: plain integer
inference. The operand conventions (what the unit is given):

- uint8 activations, unsigned unit (mul8u): the uint8 code q and |w|; the weight's sign is
  applied after (sign-magnitude): ``P = sgn(w) * unit(q, |w|)``, ``v(i) = q``.
- int8 activations, signed unit (mul8s): int8 code x int8 code, ``v(i) = q``.
- uint8 activations, signed unit: the code is shifted into int8 by subtracting 128 (flipping
  its top bit, as in TFLite's uint8 -> int8 conversion) and the zero point with it:
  ``P = unit(q - 128, w)``, ``v(i) = q - 128``, the constant uses ``z - 128``.
- int8 activations, unsigned unit: sign-magnitude on both operands,
  ``P = sgn(q) * sgn(w) * unit(|q|, |w|)``.

``sgn`` is the sign bit: -1 for negative, +1 otherwise.

Accumulator range: the true accumulator is bounded by
``sum_k max_i |P(i, w_ok) - v(z) w_ok| + |b_q[o]|``, at most ``K * (65535 + 255 * 127) + |b_q|``;
it is checked against the int32 range for every layer and unit (InvalidParameterError when an
int32 accumulator could overflow; for the exact unit |acc| <= 255 * sum_k |w_ok| + |b_q[o]|,
e.g. below 2^31 for any K <= 66,000). The emulation itself never wraps around.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from approxmap.core.exceptions import InvalidParameterError

ACTIVATIONS = ("uint8", "int8")
CALIBRATIONS = ("minmax", "percentile")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class QuantScheme:
    """How a layer is quantized.

    Attributes:
        activation: "uint8" (asymmetric, with a zero point) or "int8" (symmetric).
        calibration: "minmax" (the observed min and max) or "percentile" (the
            ``percentile``-th and ``(100 - percentile)``-th percentiles of a sample).
        percentile: in (50, 100]; used only by "percentile" calibration.
    """

    activation: str = "uint8"
    calibration: str = "minmax"
    percentile: float = 99.99

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise InvalidParameterError(
                f"QuantScheme.activation must be one of {', '.join(ACTIVATIONS)}; "
                f"got {self.activation!r}."
            )
        if self.calibration not in CALIBRATIONS:
            raise InvalidParameterError(
                f"QuantScheme.calibration must be one of {', '.join(CALIBRATIONS)}; "
                f"got {self.calibration!r}."
            )
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 50 < float(p) <= 100:
            raise InvalidParameterError(
                f"QuantScheme.percentile must be a number in (50, 100]; got {p!r}."
            )
        object.__setattr__(self, "percentile", float(p))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantScheme:
        unknown = set(data) - {"activation", "calibration", "percentile"}
        if unknown:
            raise InvalidParameterError(
                f"Unknown QuantScheme field(s): {', '.join(sorted(unknown))}."
            )
        return cls(**data)


@dataclass(frozen=True, eq=False)
class ActivationRange:
    """Statistics of a layer's input seen in a calibration pass.

    Attributes:
        min, max: the smallest and largest observed value (finite, min <= max).
        sample: optional 1-d float tensor of observed values, for percentile calibration
            (any subsample; e.g. a few hundred thousand values drawn uniformly).
    """

    min: float
    max: float
    sample: torch.Tensor | None = None

    def __post_init__(self) -> None:
        lo, hi = float(self.min), float(self.max)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise InvalidParameterError(
                f"An activation range needs finite min <= max; got min={self.min!r}, "
                f"max={self.max!r}."
            )
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)
        s = self.sample
        if s is not None and (not isinstance(s, torch.Tensor) or s.dim() != 1
                              or not s.is_floating_point() or s.numel() == 0):
            raise InvalidParameterError(
                "ActivationRange.sample must be a non-empty 1-d float tensor."
            )

    @classmethod
    def of(cls, x: torch.Tensor, sample_size: int = 0) -> ActivationRange:
        """The range of a tensor; with ``sample_size`` > 0, keep up to that many values."""
        flat = x.detach().reshape(-1).float()
        sample = None
        if sample_size > 0:
            step = max(1, flat.numel() // sample_size)
            sample = flat[::step][:sample_size].cpu().clone()
        return cls(float(flat.min()), float(flat.max()), sample)

    def bounds(self, scheme: QuantScheme) -> tuple[float, float]:
        """The calibrated (lo, hi) under a scheme (before extending the range to 0)."""
        if scheme.calibration == "minmax":
            return self.min, self.max
        if self.sample is None:
            raise InvalidParameterError(
                "Percentile calibration needs ActivationRange.sample (observed values)."
            )
        values = self.sample.detach().double().cpu().numpy()
        hi = float(np.percentile(values, scheme.percentile))
        lo = float(np.percentile(values, 100.0 - scheme.percentile))
        return max(lo, self.min), min(hi, self.max)


@dataclass(frozen=True)
class ActivationQuant:
    """Per-tensor activation quantization: scale, zero point and index range.

    ``index = clamp(round(x * inv_scale) + zero_index, index_min, 255)`` with float32
    arithmetic; the code is ``index`` (uint8) or ``index - 128`` (int8).
    """

    activation: str
    scale: float  # float32-representable
    zero_point: int  # in the code domain: 0..255 (uint8) or 0 (int8)

    @property
    def zero_index(self) -> int:
        return self.zero_point if self.activation == "uint8" else 128

    @property
    def index_min(self) -> int:
        return 0 if self.activation == "uint8" else 1

    @property
    def inv_scale(self) -> float:
        return float(np.float32(1.0) / np.float32(self.scale))


def activation_quant(act_range: ActivationRange, scheme: QuantScheme) -> ActivationQuant:
    """Scale and zero point of a layer input from its calibrated range (see module doc)."""
    lo, hi = act_range.bounds(scheme)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if scheme.activation == "uint8":
        scale = float(np.float32((hi - lo) / 255.0))
        if not scale > 0 or not math.isfinite(1.0 / scale):
            return ActivationQuant("uint8", 1.0, 0)
        zero_point = int(min(255, max(0, round(-lo / scale))))
        return ActivationQuant("uint8", scale, zero_point)
    scale = float(np.float32(max(-lo, hi) / 127.0))
    if not scale > 0 or not math.isfinite(1.0 / scale):
        scale = 1.0
    return ActivationQuant("int8", scale, 0)


def _index_values(x: torch.Tensor, aq: ActivationQuant) -> torch.Tensor:
    """The activation indices of x as integer-valued float32 (the quantization itself)."""
    inv = torch.tensor(aq.inv_scale, dtype=torch.float32, device=x.device)
    t = torch.mul(x.to(torch.float32), inv).round_()
    return t.add_(aq.zero_index).clamp_(aq.index_min, 255)


def quantize_index(x: torch.Tensor, aq: ActivationQuant) -> torch.Tensor:
    """Activation indices (uint8 tensor, same shape and device as x) of a float tensor."""
    return _index_values(x, aq).to(torch.uint8)


def quantize_padded(x: torch.Tensor, aq: ActivationQuant,
                    padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Indices of an (N, C, H, W) input, channels last and padded with the zero index.

    Returns:
        uint8 (N, H + top + bottom, W + left + right, C), contiguous; equal to
        `quantize_index` of x, permuted and padded with ``aq.zero_index`` (real 0).
    """
    top, bottom, left, right = padding
    n, c, h, w = x.shape
    values = _index_values(x, aq).permute(0, 2, 3, 1)
    if not any(padding):
        return values.to(torch.uint8, memory_format=torch.contiguous_format).contiguous()
    out = torch.full((n, h + top + bottom, w + left + right, c), aq.zero_index,
                     dtype=torch.uint8, device=x.device)
    out[:, top:top + h, left:left + w, :] = values
    return out


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 codes (-127..127) and float32 scales of a weight.

    Args:
        weight: float tensor (O, ...).

    Returns:
        (codes int8 of weight's shape, scales float32 (O,)); an all-zero channel gets scale 1.
    """
    w = weight.detach().to(torch.float64)
    absmax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
    scale = (absmax / 127.0).to(torch.float32)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    view = (-1,) + (1,) * (w.dim() - 1)
    codes = torch.round(w / scale.to(torch.float64).view(view)).clamp_(-127, 127)
    return codes.to(torch.int8), scale


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class Int8Layer(nn.Module):
    """An int8-quantized Conv2d or Linear layer, executed with exact or approximate products.

    Buffers (move with ``.to(device)``):
        weight_codes: int8 (O, C/groups, kh, kw); a Linear layer's (O, C) is kept as
            (O, C, 1, 1).
        weight_scale: float32 (O,), s_w.
        bias_codes: int32 (O,), b_q (zeros when the module has no bias).
        out_scale: float32 (O,), float32(s_a * s_w[o]) (the dequantization factor).

    Attributes:
        kind: "conv2d" or "linear".
        act: `ActivationQuant` (scale, zero point, coding) of the input.
        stride, dilation: (h, w) pairs; padding: (top, bottom, left, right); groups.
        in_channels, out_channels, kernel_size.

    Use `quantize_layer` to build one from a float module.
    """

    def __init__(self, kind: str, weight_codes: torch.Tensor, weight_scale: torch.Tensor,
                 bias_codes: torch.Tensor, act: ActivationQuant, *,
                 stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int, int, int] = (0, 0, 0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1) -> None:
        super().__init__()
        if kind not in ("conv2d", "linear"):
            raise InvalidParameterError(f"Int8Layer kind must be conv2d or linear; got {kind!r}.")
        if weight_codes.dim() == 2:
            weight_codes = weight_codes[:, :, None, None]
        self.kind = kind
        self.act = act
        self.stride, self.dilation = _pair(stride), _pair(dilation)
        self.padding = tuple(int(p) for p in padding)
        self.groups = int(groups)
        self.out_channels = int(weight_codes.shape[0])
        self.in_channels = int(weight_codes.shape[1]) * self.groups
        self.kernel_size = (int(weight_codes.shape[2]), int(weight_codes.shape[3]))
        self.register_buffer("weight_codes", weight_codes.to(torch.int8).contiguous())
        self.register_buffer("weight_scale", weight_scale.to(torch.float32).contiguous())
        self.register_buffer("bias_codes", bias_codes.to(torch.int32).contiguous())
        out_scale = (weight_scale.to(torch.float64) * float(act.scale)).to(torch.float32)
        self.register_buffer("out_scale", out_scale)
        self._plans: dict[Any, Any] = {}

    @property
    def zero_index(self) -> int:
        """Activation index of real 0 (the padding index)."""
        return self.act.zero_index

    @property
    def reduction_size(self) -> int:
        """K: products summed per output value, (C / groups) * kh * kw."""
        return (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]

    def extra_repr(self) -> str:
        return (f"{self.kind}, {self.in_channels}->{self.out_channels}, "
                f"kernel={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, groups={self.groups}, act={self.act.activation}, "
                f"s_a={self.act.scale:.4g}, z={self.act.zero_point}")

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda() drop compiled plans
        self._plans = {}
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles leave the plans behind
        state = self.__dict__.copy()
        state["_plans"] = {}
        return state

    def clear_plans(self) -> None:
        """Drop the compiled emulation plans (they are rebuilt on the next use)."""
        self._plans = {}

    # --- shapes -------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Reshape an input to (N, C, H, W); returns it and the leading shape to restore.

        Conv2d takes (N, C, H, W) or (C, H, W); Linear takes (*, C). Raises
        InvalidParameterError on a shape mismatch.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise InvalidParameterError("Int8Layer input must be a float tensor.")
        c = self.in_channels
        if self.kind == "linear":
            if x.dim() < 1 or x.shape[-1] != c:
                raise InvalidParameterError(
                    f"Linear Int8Layer expects (*, {c}) input; got {tuple(x.shape)}."
                )
            lead = tuple(x.shape[:-1])
            return x.reshape(-1, c, 1, 1), lead
        if x.dim() == 3:
            x, lead = x.unsqueeze(0), ()
        else:
            lead = None
        if x.dim() != 4 or x.shape[1] != c:
            raise InvalidParameterError(
                f"Conv2d Int8Layer expects (N, {c}, H, W) input; got {tuple(x.shape)}."
            )
        return x, lead if lead is not None else (x.shape[0],)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (H, W) for an input of that size."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom, left, right = self.padding
        ho = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
        wo = (width + left + right - dw * (kw - 1) - 1) // sw + 1
        if ho < 1 or wo < 1:
            raise InvalidParameterError(
                f"Input {height}x{width} is too small for this layer (kernel "
                f"{self.kernel_size}, padding {self.padding}, dilation {self.dilation})."
            )
        return ho, wo

    def restore(self, y: torch.Tensor, lead: tuple[int, ...]) -> torch.Tensor:
        """Undo `check_input`'s reshape on an (N, O, Ho, Wo) output."""
        if self.kind == "linear":
            return y.reshape(*lead, self.out_channels)
        return y if len(lead) == 1 else y[0]

    # --- arithmetic -----------------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Activation indices (uint8, x's shape) of a float input; see the module doc."""
        return quantize_index(x, self.act)

    def input_codes(self, x: torch.Tensor) -> torch.Tensor:
        """The activation codes themselves: uint8 (uint8 scheme) or int8 (int8 scheme)."""
        index = self.quantize_input(x)
        if self.act.activation == "uint8":
            return index
        return (index.to(torch.int16) - 128).to(torch.int8)

    def dequantize(self, acc: torch.Tensor) -> torch.Tensor:
        """float32 output of an (N, O, Ho, Wo) integer-valued accumulator (any dtype).

        ``float32(acc) * out_scale[o]``; an exact integer accumulator held as int64, float64
        or (when below 2^24) float32 gives identical results.
        """
        return acc.to(torch.float32) * self.out_scale.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor, unit: Any = None) -> torch.Tensor:
        """float32 output of the layer with products through ``unit`` (None: exact int8).

        Args:
            x: float input, (N, C, H, W) / (C, H, W) for conv2d, (*, C) for linear.
            unit: an approximate multiplier (``.lut``, ``.signed``), or None.
        """
        from approxmap.multipliers.emulate import emulate_forward

        return emulate_forward(self, x, unit)


def _conv_padding(module: nn.Conv2d) -> tuple[int, int, int, int]:
    if module.padding_mode != "zeros":
        raise InvalidParameterError(
            f"Int8 emulation supports only zero padding; this Conv2d uses padding_mode="
            f"{module.padding_mode!r}."
        )
    pad = module.padding
    if pad == "valid":
        return (0, 0, 0, 0)
    if pad == "same":
        out = []
        for d, k in zip(module.dilation, module.kernel_size, strict=True):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return (out[0][0], out[0][1], out[1][0], out[1][1])
    ph, pw = _pair(pad)
    return (ph, ph, pw, pw)


def quantize_layer(module: nn.Module, act_range: ActivationRange,
                   scheme: QuantScheme | None = None) -> Int8Layer:
    """Quantize a float Conv2d or Linear layer (post-training, per-channel int8 weights).

    Args:
        module: an ``nn.Conv2d`` (zero padding) or ``nn.Linear``.
        act_range: statistics of the layer's input from a calibration pass.
        scheme: the `QuantScheme` (default: uint8 activations, min/max calibration).

    Returns:
        An `Int8Layer` on the module's device.

    Raises:
        InvalidParameterError: another module type, a non-zero padding mode, or a layer
            whose exact accumulator could exceed the int32 range.
    """
    scheme = scheme or QuantScheme()
    if not isinstance(act_range, ActivationRange):
        raise InvalidParameterError("quantize_layer needs an ActivationRange for the input.")
    if isinstance(module, nn.Conv2d):
        kind, geometry = "conv2d", dict(stride=module.stride, padding=_conv_padding(module),
                                        dilation=module.dilation, groups=module.groups)
    elif isinstance(module, nn.Linear):
        kind, geometry = "linear", {}
    else:
        raise InvalidParameterError(
            f"Only Conv2d and Linear layers can be quantized; got {type(module).__name__}."
        )
    act = activation_quant(act_range, scheme)
    codes, scale = quantize_weight(module.weight)
    if module.bias is not None:
        denom = scale.to(torch.float64) * float(act.scale)
        bias = torch.round(module.bias.detach().to(torch.float64).cpu() / denom.cpu())
        bias = bias.clamp_(INT32_MIN, INT32_MAX).to(torch.int32)
    else:
        bias = torch.zeros(codes.shape[0], dtype=torch.int32)
    layer = Int8Layer(kind, codes.cpu(), scale.cpu(), bias, act, **geometry)
    bound = 255 * layer.weight_codes.abs().to(torch.int64).sum(dim=(1, 2, 3))
    bound += layer.bias_codes.abs().to(torch.int64)
    if int(bound.max()) > INT32_MAX:
        raise InvalidParameterError(
            f"The int32 accumulator of this {kind} layer could overflow (bound {int(bound.max())})."
        )
    return layer.to(module.weight.device)


def integer_conv_reference(layer: Int8Layer, index: torch.Tensor) -> torch.Tensor:
    """Exact-unit accumulator of activation indices, independently: a float64 convolution.

    ``sum_k (i_k - z) * w_ok + b_q[o]`` via ``conv2d`` in float64 of the centred indices
    (|values| < 2^53, so every partial sum is an exact integer), returned as int64
    (N, O, Ho, Wo). For tests and checks.
    """
    top, bottom, left, right = layer.padding
    centred = index.to(torch.float64) - layer.zero_index
    centred = F.pad(centred, (left, right, top, bottom))  # zero = real 0
    acc = F.conv2d(centred, layer.weight_codes.to(torch.float64), None, layer.stride, 0,
                   layer.dilation, layer.groups)
    acc = acc + layer.bias_codes.to(torch.float64).view(1, -1, 1, 1)
    return acc.round().to(torch.int64)
