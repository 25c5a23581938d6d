"""The Gaussian model of a multiplier in a layer: exact for a constant-bias unit, its variance
matches Monte Carlo over emulated outputs, and the engine's noise target injects it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import approxmap as am
from approxmap.multipliers.noise import channel_noise, index_distribution
from approxmap.multipliers.quant import ActivationRange, QuantScheme, quantize_layer
from approxmap.multipliers.units import Multiplier, exact_table


def unit_from(lut: np.ndarray, signed: bool = False) -> Multiplier:
    return Multiplier("test", "test", signed, lut.astype(np.int32), "test table")


@pytest.fixture(scope="module")
def linear():
    gen = torch.Generator().manual_seed(0)
    layer = nn.Linear(64, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, 64, generator=gen))
        layer.bias.copy_(torch.randn(4, generator=gen) * 0.1)
    int8 = quantize_layer(layer, ActivationRange(0.0, 3.0), QuantScheme("uint8"))
    return layer, int8


def grid_inputs(int8, index: torch.Tensor) -> torch.Tensor:
    """Float inputs exactly on the quantization grid, so they quantize to `index`."""
    return ((index.double() - int8.act.zero_point) * int8.act.scale).float()


def test_a_constant_bias_unit_shifts_every_output_by_the_analytic_mean(linear):
    layer, int8 = linear
    lut = exact_table(False).astype(np.int64) + 3  # P = sgn(w) * (a |w| + 3)
    unit = unit_from(lut)
    index = torch.randint(0, 256, (50, 64), generator=torch.Generator().manual_seed(1))
    x = grid_inputs(int8, index)
    shift = (int8(x, unit) - int8(x, None)).double()
    sign = torch.where(int8.weight_codes.flatten(1) < 0, -1.0, 1.0).double()
    analytic = (3 * sign.sum(1) * int8.out_scale.double()).numpy()
    p = index_distribution(int8, x)
    noise = channel_noise(int8, unit, p, layer.weight, 0.0, 0.0)
    assert np.allclose(noise.unit_mean, analytic, rtol=0, atol=1e-9)
    assert np.allclose(noise.unit_std, 0.0)
    assert torch.allclose(shift, torch.as_tensor(analytic).expand_as(shift), atol=1e-4)


def test_the_variance_matches_monte_carlo_over_emulated_outputs(linear):
    layer, int8 = linear
    gen = np.random.default_rng(2)
    lut = exact_table(False).astype(np.int64) + gen.integers(-40, 41, (256, 256))
    unit = unit_from(np.clip(lut, 0, 65535))
    p = np.zeros(256)
    p[40:200] = gen.random(160)
    p /= p.sum()
    index = torch.from_numpy(gen.choice(256, size=(20_000, 64), p=p))
    x = grid_inputs(int8, index)
    error = (int8(x, unit) - int8(x, None)).double().numpy()
    noise = channel_noise(int8, unit, p, layer.weight, 0.0, 0.0)
    assert np.allclose(error.mean(0), noise.unit_mean, atol=4 * noise.unit_std.max() / 141)
    assert np.allclose(error.std(0), noise.unit_std, rtol=0.03)


def test_the_noise_target_injects_the_model_and_predicts_emulation(mnist_model, mnist_small):
    unit = am.create_error_model("multiplier", unit="drum:4")
    emulated = am.Scenario.single(am.Site("fc_layers.0", "multiplier"), unit)
    predicted = am.Scenario.single(am.Site("fc_layers.0", "multiplier-noise"), unit)
    campaign = am.Campaign(mnist_model, mnist_small, [emulated, predicted], am.Run(trials=3))
    campaign.run()
    emul, pred = campaign.summaries()
    assert emul.trials == 3 and pred.trials == 3
    assert abs(emul.accuracy - pred.accuracy) <= 0.03
    records = campaign.records()
    assert len({records[(predicted.key, t)].counts.loss_sum for t in range(3)}) == 3  # random
    assert len({records[(emulated.key, t)].counts.loss_sum for t in range(3)}) == 1  # exact
