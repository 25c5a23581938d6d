"""Post-training int8 quantization: schemes, ranges, codes, zero points, bias, refusals."""

from __future__ import annotations

import pytest
import torch
from emul_helpers import make_layer
from torch import nn

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers.quant import (
    ActivationQuant,
    ActivationRange,
    QuantScheme,
    activation_quant,
    quantize_index,
    quantize_layer,
    quantize_weight,
)


def test_scheme_validation_and_round_trip():
    scheme = QuantScheme(activation="int8", calibration="percentile", percentile=99.9)
    assert QuantScheme.from_dict(scheme.to_dict()) == scheme
    assert QuantScheme().to_dict() == {"activation": "uint8", "calibration": "minmax",
                                       "percentile": 99.99}
    for bad in (dict(activation="int4"), dict(calibration="mse"), dict(percentile=50),
                dict(percentile=100.5), dict(percentile=True), dict(percentile="99")):
        with pytest.raises(InvalidParameterError):
            QuantScheme(**bad)
    with pytest.raises(InvalidParameterError, match="Unknown QuantScheme field"):
        QuantScheme.from_dict({"activation": "uint8", "bits": 8})


def test_activation_range_validation():
    for lo, hi in ((1.0, 0.0), (float("nan"), 1.0), (0.0, float("inf"))):
        with pytest.raises(InvalidParameterError):
            ActivationRange(lo, hi)
    with pytest.raises(InvalidParameterError):
        ActivationRange(0.0, 1.0, sample=torch.zeros(3, 2))
    with pytest.raises(InvalidParameterError, match="sample"):
        ActivationRange(0.0, 1.0).bounds(QuantScheme(calibration="percentile"))


def test_uint8_zero_point_maps_zero_exactly_and_codes_stay_in_range():
    gen = torch.Generator().manual_seed(0)
    for lo, hi in ((-1.3, 2.7), (-0.01, 5.0), (-3.0, -0.5), (0.2, 0.9), (0.0, 0.0)):
        aq = activation_quant(ActivationRange(lo, hi), QuantScheme())
        assert 0 <= aq.zero_point <= 255
        assert int(quantize_index(torch.zeros(1), aq)) == aq.zero_point
        x = torch.empty(10_000).uniform_(lo - 1, hi + 1, generator=gen)
        q = quantize_index(x, aq)
        assert q.dtype == torch.uint8
        # inside the range: |dequantized - x| <= scale / 2 (+ float rounding)
        inside = (x >= min(lo, 0)) & (x <= max(hi, 0))
        back = (q.double() - aq.zero_point) * aq.scale
        if inside.any():
            assert float((back - x.double())[inside].abs().max()) <= aq.scale * 0.5001
    # a positive range is extended to include 0: zero point 0
    aq = activation_quant(ActivationRange(0.2, 0.9), QuantScheme())
    assert aq.zero_point == 0 and aq.scale == pytest.approx(0.9 / 255)


def test_int8_symmetric_codes():
    aq = activation_quant(ActivationRange(-0.5, 2.54), QuantScheme(activation="int8"))
    assert aq.zero_point == 0 and aq.scale == pytest.approx(2.54 / 127)
    layer = make_layer(nn.Linear(4, 2), torch.tensor([[-0.5, 2.54, 0.0, 9.0]]), "int8")
    codes = layer.input_codes(torch.tensor([[-100.0, 100.0, 0.0, 0.01]]))
    assert codes.dtype == torch.int8
    assert codes.tolist() == [[-127, 127, 0, 0]]


def test_percentile_calibration_ignores_outliers():
    sample = torch.cat([torch.linspace(-1, 1, 100_000), torch.tensor([50.0, -40.0])])
    rng = ActivationRange(float(sample.min()), float(sample.max()), sample)
    lo, hi = rng.bounds(QuantScheme(calibration="percentile", percentile=99.9))
    assert -1.0 <= lo < -0.99 and 0.99 < hi <= 1.0
    assert rng.bounds(QuantScheme()) == (-40.0, 50.0)
    rng2 = ActivationRange.of(sample.view(2, -1), sample_size=1000)
    assert rng2.sample.numel() == 1000 and rng2.max == 50.0


def test_weight_codes_per_channel():
    w = torch.randn(5, 3, 3, 3)
    w[2] = 0.0
    codes, scale = quantize_weight(w)
    assert codes.dtype == torch.int8 and scale.dtype == torch.float32
    assert int(codes.abs().max()) == 127 and int(codes.min()) >= -127
    assert scale[2] == 1.0 and not codes[2].any()
    for o in (0, 1, 3, 4):
        assert int(codes[o].abs().max()) == 127
        assert scale[o] == pytest.approx(float(w[o].abs().max()) / 127, rel=1e-6)
        assert torch.allclose(codes[o].float() * scale[o], w[o], atol=float(scale[o]) / 2 + 1e-7)


def test_layer_fields_bias_and_output():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    layer = make_layer(conv, x)
    assert layer.bias_codes.dtype == torch.int32
    expected = torch.round(conv.bias.double() / (layer.weight_scale.double() * layer.act.scale))
    assert torch.equal(layer.bias_codes.long(), expected.long())
    y = layer(x)
    assert y.dtype == torch.float32 and y.shape == conv(x).shape
    # int8 inference is close to float
    with torch.no_grad():
        err = (y - conv(x)).abs().max() / conv(x).abs().max()
    assert float(err) < 0.03
    assert layer.reduction_size == 27
    assert "uint8" in repr(layer)


def test_refusals_are_one_line():
    rng = ActivationRange(-1.0, 1.0)
    with pytest.raises(InvalidParameterError, match="padding_mode='reflect'") as info:
        quantize_layer(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), rng)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidParameterError, match="Conv1d"):
        quantize_layer(nn.Conv1d(2, 2, 3), rng)
    with pytest.raises(InvalidParameterError):
        quantize_layer(nn.Linear(2, 2), (0.0, 1.0))
    layer = quantize_layer(nn.Conv2d(2, 3, 3), rng)
    for bad in (torch.zeros(1, 3, 5, 5), torch.zeros(5, 5), torch.zeros(1, 2, 2, 2),
                torch.zeros(1, 2, 5, 5, dtype=torch.int32)):
        with pytest.raises(InvalidParameterError):
            layer(bad)
    lin = quantize_layer(nn.Linear(6, 2), rng)
    with pytest.raises(InvalidParameterError, match=r"\(\*, 6\)"):
        lin(torch.zeros(3, 5))


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_padding_same_and_valid_and_unbatched():
    torch.manual_seed(1)
    x = torch.randn(3, 7, 7)
    for pad in ("same", "valid"):  # even kernel: asymmetric "same" padding
        conv = nn.Conv2d(3, 2, 4, padding=pad)
        layer = make_layer(conv, x)
        y = layer(x)
        assert y.shape == conv(x).shape
        assert torch.equal(y, layer(x[None])[0])
    lin = make_layer(nn.Linear(7, 3), x)
    assert lin(x).shape == (3, 7, 3)


def test_activation_quant_properties():
    aq = ActivationQuant("int8", 0.5, 0)
    assert (aq.zero_index, aq.index_min) == (128, 1)
    aq = ActivationQuant("uint8", 0.25, 17)
    assert (aq.zero_index, aq.index_min, aq.inv_scale) == (17, 0, 4.0)


def test_layer_copies_and_pickles_without_plans(tmp_path):
    import copy

    from sample_tables import random_table

    torch.manual_seed(3)
    x = torch.randn(2, 3, 6, 6)
    layer = make_layer(nn.Conv2d(3, 4, 3, padding=1), x)
    y = layer(x, random_table(9))
    assert layer._plans
    twin = copy.deepcopy(layer)
    assert not twin._plans and torch.equal(twin(x, random_table(9)), y)
    torch.save(layer, tmp_path / "layer.pt")
    loaded = torch.load(tmp_path / "layer.pt", weights_only=False)
    assert torch.equal(loaded(x, random_table(9)), y)
