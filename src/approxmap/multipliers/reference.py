"""Plain reference of the emulation: one table gather per product, int64 sums (tests only).

``acc[n, o, p] = sum_k P[i[n, k, p], w[o, k]] - v(z) * sum_k w[o, k] + b_q[o]`` with the
indices unfolded (im2col) from the input padded with the zero-point index. Thousands of times
slower than float inference; `approxmap.multipliers.emulate` must equal it bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from approxmap.multipliers.products import WEIGHT_CODES, WEIGHT_MAX
from approxmap.multipliers.quant import Int8Layer

GATHER_CHUNK = 1 << 24  # gathered products per batch chunk


def reference_accumulate(layer: Int8Layer, x: torch.Tensor, unit: Any = None) -> torch.Tensor:
    """int64 accumulator (N, O, Ho, Wo) of a layer for an input, products by table gather.

    Args:
        layer: the quantized layer.
        x: float input (N, C, H, W) (conv2d) or (N, C, 1, 1) / (*, C) (linear).
        unit: object with ``.lut``/``.signed``, or None for the exact product.
    """
    x4, _ = layer.check_input(x)
    return _accumulate(layer, x4, unit)


def _accumulate(layer: Int8Layer, x4: torch.Tensor, unit: Any) -> torch.Tensor:
    from approxmap.multipliers.emulate import unit_key, unit_products

    table, _ = unit_key(unit)
    product, offset = unit_products(table, layer.act.activation)
    flat = torch.as_tensor(product, device=x4.device).reshape(-1)  # P[i * 255 + w + 127]
    index = layer.quantize_input(x4)
    top, bottom, left, right = layer.padding
    padded = F.pad(index.to(torch.float64), (left, right, top, bottom), value=layer.zero_index)
    ho, wo = layer.output_size(x4.shape[2], x4.shape[3])
    n, g = x4.shape[0], layer.groups
    o = layer.out_channels
    weights = layer.weight_codes.to(torch.int64).reshape(g, o // g, -1)  # (G, Og, Kg)
    kg = weights.shape[2]
    per_image = o * kg * ho * wo
    step = max(1, GATHER_CHUNK // per_image)
    chunks = []
    for start in range(0, n, step):
        cols = F.unfold(padded[start:start + step], layer.kernel_size, layer.dilation, 0,
                        layer.stride).round().to(torch.int64)  # (n, C*kh*kw, L)
        cols = cols.reshape(cols.shape[0], g, 1, kg, ho * wo)
        gathered = flat[cols * WEIGHT_CODES + (weights + WEIGHT_MAX)[None, :, :, :, None]]
        chunks.append(gathered.sum(dim=3).reshape(cols.shape[0], o, ho, wo))
    acc = torch.cat(chunks)
    v_zero = layer.zero_index - offset
    const = layer.bias_codes.to(torch.int64) - v_zero * weights.reshape(o, kg).sum(dim=1)
    return acc + const.view(1, -1, 1, 1)


def reference_forward(layer: Int8Layer, x: torch.Tensor, unit: Any = None) -> torch.Tensor:
    """float32 output of the reference: the layer's dequantization of the int64 accumulator."""
    x4, lead = layer.check_input(x)
    return layer.restore(layer.dequantize(_accumulate(layer, x4, unit)), lead)
