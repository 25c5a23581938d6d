"""The statistical model of an approximate multiplier in a layer: the error it adds to each
output channel, as a Gaussian with a per-channel mean and variance.

An output of an int8 layer computed through unit P is (`approxmap.multipliers.quant`)

    y_emulated[o] = s_a s_w[o] (sum_k P(i_k, w_ok) - v(z) sum_k w_ok + b_q[o])

and differs from the float output y[o] by two sums over the K products of the output:

- the unit's error e(i, w) = P(i, w) - v(i) w, with the activation index i drawn from the
  layer's activation-code distribution p(i) (measured on the calibration data) and the
  weights fixed: mean  s_a s_w[o] sum_k m(w_ok),  variance  (s_a s_w[o])^2 sum_k v(w_ok),
  where m(w) = sum_i p(i) e(i, w) and v(w) = sum_i p(i) e(i, w)^2 - m(w)^2;
- quantization: activations rounded to the grid (error uniform on +-s_a/2: variance s_a^2/12
  per product, times the quantized weight squared) and weights rounded per channel (a fixed
  error dW_ok multiplying an activation of mean mu_x and variance var_x): mean
  -mu_x sum_k dW_ok, variance sum_k (s_a^2/12 Wq_ok^2 + var_x dW_ok^2), plus the bias rounding.

By the central limit theorem over K terms, assuming the activations of one output are
independent, the sum is Gaussian: an additive N(mu_o, sigma_o^2) error at the layer output,
exactly what the engine injects (the premise of error-resilience analysis: Chippa et al.,
DAC 2013; Mrazek et al., ICCAD 2019 for approximate multipliers in CNNs). Where it breaks:
units with rare large errors (heavy tails), layers with few terms per output (depthwise 3x3:
K = 9), and activations correlated across the receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from approxmap.multipliers.products import (
    WEIGHT_MAX,
    as_table,
    exact_product_table,
    product_table,
)
from approxmap.multipliers.quant import Int8Layer


@dataclass(frozen=True)
class ChannelNoise:
    """Per output channel (float64, shape (O,)): mean and std of the error in output units,
    split into the unit's part and the quantization part (means add, variances add)."""

    unit_mean: np.ndarray
    unit_std: np.ndarray
    quant_mean: np.ndarray
    quant_std: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.unit_mean + self.quant_mean

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.unit_std**2 + self.quant_std**2)

    def rms(self, part: str = "unit") -> float:
        """sqrt(mean_o(mean_o^2 + std_o^2)): one number for comparing units and layers."""
        mean, std = ((self.unit_mean, self.unit_std) if part == "unit"
                     else (self.mean, self.std))
        return float(np.sqrt(np.mean(mean**2 + std**2)))


def unit_moments(layer: Int8Layer, unit, index_probability: np.ndarray) -> tuple[np.ndarray, ...]:
    """(m, v): mean and variance of the unit's product error for each weight code -127..127
    (float64, shape (255,)) when the activation index has distribution `index_probability`
    (shape (256,), sums to 1)."""
    activation = layer.act.activation
    if unit is None:
        return np.zeros(2 * WEIGHT_MAX + 1), np.zeros(2 * WEIGHT_MAX + 1)
    table = as_table(unit)
    error = (product_table(table, activation)
             - exact_product_table(activation, table.signed)).astype(np.float64)
    p = np.asarray(index_probability, dtype=np.float64)[:, None]
    m = (p * error).sum(0)
    v = np.maximum((p * error**2).sum(0) - m**2, 0.0)
    return m, v


def channel_noise(layer: Int8Layer, unit, index_probability: np.ndarray, weight: torch.Tensor,
                  input_mean: float, input_var: float, bias: torch.Tensor | None = None
                  ) -> ChannelNoise:
    """The Gaussian error model of `unit` in `layer` (see the module docstring).

    Args:
        layer: the quantized layer (its weight codes, scales, activation quantization).
        unit: the multiplier (anything `as_table` takes), or None for the exact unit.
        index_probability: the activation-index distribution p(i), shape (256,).
        weight: the float weight of the layer (O, C/g, kh, kw) or (O, C).
        input_mean, input_var: moments of the layer's float input.
        bias: the float bias (O,), for its rounding error.
    """
    codes = layer.weight_codes.flatten(1).to(torch.int64).cpu().numpy()  # (O, K)
    scale = layer.out_scale.double().cpu().numpy()  # s_a * s_w[o]
    m, v = unit_moments(layer, unit, index_probability)
    unit_mean = scale * m[codes + WEIGHT_MAX].sum(1)
    unit_std = scale * np.sqrt(v[codes + WEIGHT_MAX].sum(1))
    s_a = float(layer.act.scale)
    s_w = layer.weight_scale.double().cpu().numpy()[:, None]
    quantized = codes * s_w
    dw = quantized - weight.detach().double().flatten(1).cpu().numpy()
    quant_var = (s_a**2 / 12.0) * (quantized**2).sum(1) + input_var * (dw**2).sum(1)
    quant_mean = input_mean * dw.sum(1)
    if bias is not None:
        quant_mean = quant_mean + (layer.bias_codes.double().cpu().numpy() * scale
                                   - bias.detach().double().cpu().numpy())
    return ChannelNoise(unit_mean, unit_std, quant_mean, np.sqrt(quant_var))


def index_distribution(layer: Int8Layer, sample: torch.Tensor) -> np.ndarray:
    """p(i): the distribution of the layer's activation indices over sampled input values."""
    index = layer.quantize_input(sample.float().to(layer.weight_codes.device))
    counts = torch.bincount(index.flatten().long().cpu(), minlength=256).double()
    return (counts / counts.sum().clamp_min(1)).numpy()


__all__ = ["ChannelNoise", "channel_noise", "index_distribution", "unit_moments"]
