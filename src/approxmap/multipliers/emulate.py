"""Fast, bit-exact emulation of int8 layers whose products go through an approximate unit.

`emulate_forward(layer, x, unit)` (also ``Int8Layer.forward(x, unit)``) returns exactly what
integer hardware computes (see `approxmap.multipliers.quant` for the arithmetic): the int32
accumulator equals `approxmap.multipliers.reference.reference_accumulate` bit for bit and
the float32 output equals its dequantization.

How (per layer and unit, compiled once into a `Plan` and cached on the layer):

1. The unit's product table ``P[i, w]`` is decomposed (`decompose`) into exact low-rank terms
   ``2^s * u_r(i) * z_r(w)``, a per-weight constant ``c(w)`` and, for unstructured tables, a
   residual ``R[i, w]``.
2. Each term is an exact integer convolution of an 8-bit feature plane ``u_r(i)`` of the
   input with int8 weights ``z_r(w)``; terms of equal shift are stacked as channels into one
   convolution (`kernels.PlanePass`): oneDNN's int8 convolution on CPU (int32 accumulation,
   self-checked), else float32/float64 convolutions with static bounds that keep every
   partial sum an exact integer (a term whose bound is too large is split into 4-bit digits).
   Units linear in the bits of the activation (exact, truncated, broken-array, signed
   EvoApprox) need only these: one plane for the exact product, one per distinct
   partial-product column pattern otherwise.
3. ``sum_k c(w_ok)``, the zero-point term and the bias form one per-channel constant.
4. The residual, if any, is summed by `kernels.table_sum`: an embedding-bag over a per-layer
   table ``T[(k, i), o] = R[i, w_ok]`` with the im2col of the activation indices as bags.

Memory of a compiled plan (`Plan.nbytes`): the expanded int8 weights (R bytes per weight for
R planes) and, for a residual, its lookup table of K * 256 * O float32 values (two float32
digits, 8 bytes, when its sums could reach 2^24): kept when it fits `kernels.TABLE_KEEP` (64 MB; e.g. 37.7 MB
for a 3x3 conv 64->64), else rebuilt at every call in chunks of `kernels.TABLE_CHUNK` (16 MB),
which costs about one extra pass over the table per call (negligible for convolutions, about
the cost of the lookups themselves for a Linear layer at batch 256). A layer keeps its two
most recent plans (`Int8Layer.clear_plans()` drops them); decompositions are cached per unit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers import kernels
from approxmap.multipliers.decompose import Decomposition, decompose
from approxmap.multipliers.products import (
    Table,
    activation_offset,
    as_table,
    exact_product_table,
    product_table,
    table_digest,
)
from approxmap.multipliers.quant import INT32_MAX, Int8Layer, quantize_padded

PLANS_PER_LAYER = 2
_DECOMPOSITIONS: OrderedDict[tuple[str, str], Decomposition] = OrderedDict()
_DECOMPOSITION_CACHE = 64


def unit_key(unit: Any) -> tuple[Table | None, str]:
    """Validated table (None for the exact unit) and a cache key for a unit."""
    if unit is None:
        return None, "exact"
    table = as_table(unit)
    digest = getattr(table, "_digest", None)
    if digest is None:
        digest = table_digest(table)
        object.__setattr__(table, "_digest", digest)
    return table, digest


def valid_rows(activation: str) -> np.ndarray:
    """(256,) bool: activation indices that quantization can produce."""
    valid = np.ones(256, dtype=bool)
    if activation == "int8":
        valid[0] = False  # int8 codes are clamped to -127..127
    return valid


def unit_products(table: Table | None, activation: str) -> tuple[np.ndarray, int]:
    """(P, offset): the (256, 255) product table and the operand offset v(i) = i - offset."""
    if table is None:
        signed = activation == "int8"
        return exact_product_table(activation, signed), activation_offset(activation, signed)
    return product_table(table, activation), activation_offset(activation, table.signed)


def decomposition_for(table: Table | None, key: str, activation: str) -> Decomposition:
    """The (cached) decomposition of a unit's product table."""
    cache_key = (key, activation)
    dec = _DECOMPOSITIONS.get(cache_key)
    if dec is None:
        product, offset = unit_products(table, activation)
        dec = decompose(product, valid_rows(activation), offset)
        _DECOMPOSITIONS[cache_key] = dec
        while len(_DECOMPOSITIONS) > _DECOMPOSITION_CACHE:
            _DECOMPOSITIONS.popitem(last=False)
    else:
        _DECOMPOSITIONS.move_to_end(cache_key)
    return dec


@dataclass
class _PlaneTerm:
    feature: np.ndarray  # (256,) centred feature, in -128..127 on valid rows
    weights: torch.Tensor  # (O, Cg, kh, kw) int64 z(w_ok)
    shift: int
    bound: torch.Tensor  # (O,) int64: max|feature| * sum_k |z(w_ok)|
    wide: bool = False  # bound >= 2^24 even after digit splitting: float64 convolution


@dataclass
class Plan:
    """A layer's compiled emulation of one unit (see module doc).

    Attributes:
        passes: plane convolutions; const: (O,) float64 integer constant per channel.
        residual: lookup tables of the residual, or None.
        acc_dtype: float32 or float64, exact for every partial sum of the accumulator.
        bit_linear: whether the unit's products are linear in the activation's bits.
        description: the path: "exact", "planes:R" (R planes), "planes:1+table".
        extras: {"backend": the convolution backends used}.
    """

    passes: list[kernels.PlanePass]
    const: torch.Tensor
    residual: kernels.ResidualTable | None
    acc_dtype: torch.dtype
    bit_linear: bool
    description: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """About the bytes the plan holds: expanded weights (int8, plus the prepacked or float
        copy of the backend) and residual tables."""
        total = self.const.numel() * 8
        for p in self.passes:
            copy = p._float_weight.element_size() if p._float_weight is not None else 1
            total += p.weight.numel() * (1 + copy)
        return total + (self.residual.nbytes if self.residual is not None else 0)


def _centre(feature: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, int]:
    lo, hi = int(feature[valid].min()), int(feature[valid].max())
    centre = (lo + hi + 1) // 2
    return feature - centre, centre


def _split_digits(feature: np.ndarray, shift: int,
                  valid: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """Split a centred feature f = 16 * high + low (low in 0..15): (centred, centre, shift)."""
    low = feature % 16
    high = (feature - low) // 16
    return [(*_centre(high, valid), shift + 4), (*_centre(low, valid), shift)]


def compile_plan(layer: Int8Layer, unit: Any = None) -> Plan:
    """Compile the emulation of ``unit`` (None = exact) for ``layer`` on the layer's device.

    Raises:
        InvalidParameterError: an invalid unit table, or an int32 accumulator that could
            overflow with this unit.
    """
    table, key = unit_key(unit)
    activation = layer.act.activation
    dec = decomposition_for(table, key, activation)
    device = layer.weight_codes.device
    valid = dec.valid
    wi = layer.weight_codes.to(torch.int64) + 127  # (O, Cg, kh, kw) column of P
    product, offset = unit_products(table, activation)
    v_zero = layer.zero_index - offset
    wsum = (wi - 127).sum(dim=(1, 2, 3))
    bias = layer.bias_codes.to(torch.int64)

    # int32 accumulator check: sum_k max_i |P(i, w) - v(z) w| + |b|
    wvals = np.arange(-127, 128)
    worst = np.abs(product - v_zero * wvals[None, :])[valid].max(axis=0)
    acc_bound = torch.as_tensor(worst, device=device)[wi].sum(dim=(1, 2, 3)) + bias.abs()
    if int(acc_bound.max()) > INT32_MAX:
        raise InvalidParameterError(
            f"With this multiplier the int32 accumulator of layer {layer.extra_repr()} could "
            f"overflow (bound {int(acc_bound.max())} > 2^31 - 1)."
        )

    const = torch.as_tensor(dec.constant, device=device)[wi].sum(dim=(1, 2, 3))
    const = const - v_zero * wsum + bias

    # terms -> centred plane terms, split while a bound reaches 2^24
    pending: list[tuple[np.ndarray, np.ndarray, int]] = []
    for term in dec.terms:
        centred, centre = _centre(term.feature, valid)
        z = torch.as_tensor(term.weight, device=device)[wi]
        const = const + (centre << term.shift) * z.sum(dim=(1, 2, 3))
        pending.append((centred, term.weight, term.shift))
    planes: list[_PlaneTerm] = []
    while pending:
        centred, zvec, shift = pending.pop(0)
        z = torch.as_tensor(zvec, device=device)[wi]
        peak = int(np.abs(centred[valid]).max())
        bound = peak * z.abs().sum(dim=(1, 2, 3))
        wide = int(bound.max()) >= kernels.EXACT_F32
        if not wide or peak <= 8:  # a 4-bit digit too wide: float64 convolution
            planes.append(_PlaneTerm(centred, z, shift, bound, wide))
            continue
        for part, centre, part_shift in _split_digits(centred, shift, valid):
            const = const + (centre << part_shift) * z.sum(dim=(1, 2, 3))
            pending.append((part, zvec, part_shift))

    use_onednn = device.type == "cpu" and kernels.onednn_exact()
    passes: list[kernels.PlanePass] = []
    total = const.abs()
    by_shift: dict[tuple[int, bool], list[list[_PlaneTerm]]] = {}
    for pt in planes:  # terms of one shift share a convolution while the sum stays < 2^24
        bins = by_shift.setdefault((pt.shift, pt.wide), [])
        for members in bins:
            if pt.wide or int((sum(m.bound for m in members) + pt.bound).max()) < kernels.EXACT_F32:
                members.append(pt)
                break
        else:
            bins.append([pt])
    for (shift, wide), bins in sorted(by_shift.items()):
        for members in bins:
            lut = np.stack([m.feature for m in members], axis=1) + kernels.FEATURE_ZERO
            lut = np.clip(lut, 0, 255).astype(np.uint8)  # invalid rows may fall outside
            weight = torch.stack([m.weights for m in members], dim=2)  # (O, Cg, R, kh, kw)
            weight = weight.reshape(weight.shape[0], -1, *weight.shape[3:]).to(torch.int8)
            identity = len(members) == 1 and np.array_equal(
                lut[valid, 0], np.arange(256)[valid])
            if wide:
                backend = "float64"
            elif use_onednn:
                backend = "onednn"
            else:
                exact32 = device.type == "cpu" and kernels.cpu_float32_exact()
                backend = "float32" if exact32 else "float64"
            p = kernels.PlanePass(None if identity else torch.as_tensor(lut, device=device),
                                  weight.contiguous(), shift, backend, layer.stride,
                                  layer.dilation, layer.groups)
            p.prepare()
            if backend == "onednn" and not p.verify():  # e.g. saturating pre-VNNI kernels
                p.backend = "float32" if kernels.cpu_float32_exact() else "float64"
                p.prepare()
            passes.append(p)
            total = total + (sum(m.bound for m in members) << shift)

    residual = None
    if dec.residual is not None:
        res = np.where(valid[:, None], dec.residual, 0)
        worst_r = torch.as_tensor(np.abs(res).max(axis=0), device=device)[wi]
        total = total + worst_r.sum(dim=(1, 2, 3))
        residual = kernels.build_residual_table(torch.as_tensor(res, device=device),
                                                layer.weight_codes, layer.groups)
    acc_dtype = torch.float32 if int(total.max()) < kernels.EXACT_F32 else torch.float64
    planes_r = sum(int(p.weight.shape[1]) // max(1, layer.in_channels // layer.groups)
                   for p in passes)
    desc = "exact" if (dec.bit_linear and planes_r == 1 and key == "exact") else (
        f"planes:{planes_r}" + ("+table" if residual is not None else ""))
    return Plan(passes, const.to(torch.float64), residual, acc_dtype, dec.bit_linear, desc,
                {"backend": sorted({p.backend for p in passes})})


def plan_for(layer: Int8Layer, unit: Any = None) -> Plan:
    """The layer's cached plan for a unit (compiled on first use, per device)."""
    _, key = unit_key(unit)
    cache_key = (key, str(layer.weight_codes.device))
    plans = layer._plans
    plan = plans.get(cache_key)
    if plan is None:
        plan = compile_plan(layer, unit)
        plans[cache_key] = plan
        while len(plans) > PLANS_PER_LAYER:
            plans.pop(next(iter(plans)))
    return plan


def accumulate(layer: Int8Layer, x4: torch.Tensor, unit: Any = None) -> torch.Tensor:
    """Exact integer accumulator (N, O, Ho, Wo), as float32 or float64, of an (N, C, H, W) input.

    Equal, as integers, to `reference.reference_accumulate` (the bias included).
    """
    plan = plan_for(layer, unit)
    ho, wo = layer.output_size(x4.shape[2], x4.shape[3])
    xp = quantize_padded(x4, layer.act, layer.padding)
    if plan.passes:
        acc = kernels.plane_conv(plan.passes, xp, plan.const, plan.acc_dtype)
    else:  # a unit whose products depend on the weight only (e.g. constant zero)
        acc = plan.const.to(plan.acc_dtype).view(1, -1, 1, 1).expand(
            xp.shape[0], -1, ho, wo).clone()
    if plan.residual is not None:
        kernels.table_sum(plan.residual, xp, layer.kernel_size, layer.stride, layer.dilation,
                          (ho, wo), acc)
    return acc


@torch.no_grad()
def emulate_forward(layer: Int8Layer, x: torch.Tensor, unit: Any = None) -> torch.Tensor:
    """float32 output of an int8 layer with products through ``unit`` (None: exact int8).

    Args:
        layer: the quantized layer.
        x: float input: (N, C, H, W) or (C, H, W) for conv2d, (*, C) for linear.
        unit: object with ``.lut`` (256, 256) and ``.signed``, or None.
    """
    x4, lead = layer.check_input(x)
    acc = accumulate(layer, x4, unit)
    return layer.restore(layer.dequantize(acc), lead)


class EmulatedLayer(nn.Module):
    """A drop-in module running an `Int8Layer` with a fixed unit (None = exact int8)."""

    def __init__(self, layer: Int8Layer, unit: Any = None) -> None:
        super().__init__()
        self.layer = layer
        self.unit = as_table(unit) if unit is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return emulate_forward(self.layer, x, self.unit)

    def extra_repr(self) -> str:
        name = "exact" if self.unit is None else (self.unit.name or "table")
        return f"unit={name}"
