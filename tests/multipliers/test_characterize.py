"""Error metrics: unweighted, weighted by a joint distribution or by marginals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers import characterize, create_unit, operand_histograms

FIELDS = ("mean_error", "std_error", "mae", "mse", "wce", "mred_pct", "wcre_pct", "ep_pct")


@pytest.mark.parametrize("name", ["mitchell", "trunc-c:4", "etm:5", "evo:v10/mul8s_1KR6",
                                  "evo:v2022/mul8u_17MJ"])
def test_uniform_weights_equal_the_unweighted_metrics(name):
    plain = characterize(name)
    assert not plain.weighted
    for weights in (np.ones((256, 256)), np.full((256, 256), 7.0),
                    (np.ones(256), np.full(256, 0.5)), torch.ones(256, 256)):
        weighted = characterize(name, weights)
        assert weighted.weighted
        for f in FIELDS:
            assert getattr(weighted, f) == pytest.approx(getattr(plain, f), rel=1e-9, abs=1e-9), f


def test_hand_computed_tiny_distribution():
    # mitchell: (3, 3) -> 8 (error -1, exact 9); (5, 6) -> 28 (error -2, exact 30);
    # (0, 7) -> 0 (error 0, exact 0: no relative error). Weights 1 : 3 : 1.
    p = np.zeros((256, 256))
    p[3, 3], p[5, 6], p[0, 7] = 1, 3, 1
    m = characterize("mitchell", p)
    assert m.mean_error == pytest.approx(-1.4)
    assert m.mae == pytest.approx(1.4)
    assert m.mse == pytest.approx(2.6)
    assert m.std_error == pytest.approx(0.8)
    assert m.wce == 2
    assert m.mred_pct == pytest.approx((0.2 / 9 + 0.6 * 2 / 30) / 0.8 * 100)
    assert m.wcre_pct == pytest.approx(100 / 9)
    assert m.ep_pct == pytest.approx(80.0)


def test_marginals_equal_their_outer_product_and_signed_layout():
    rng = np.random.default_rng(0)
    p_a, p_w = rng.random(256), rng.random(256)
    unit = create_unit("evo:v10/mul8s_1L2H")
    a = characterize(unit, (p_a, p_w))
    b = characterize(unit, np.outer(p_a, p_w))
    for f in FIELDS:
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-9), f
    # All mass on a = -1, w = -1 (index [127][127] of a signed unit).
    p = np.zeros((256, 256))
    p[127, 127] = 1.0
    m = characterize(unit, p)
    assert m.mean_error == pytest.approx(float(unit.product(-1, -1)) - 1)


def test_no_mass_on_nonzero_products_gives_nan_relative_errors():
    p = np.zeros((256, 256))
    p[0, :] = 1.0                                   # a = 0 only
    m = characterize("etm:4", p)
    assert math.isnan(m.mred_pct) and math.isnan(m.wcre_pct)
    d = m.to_dict()
    assert d["mred_pct"] is None and d["unit"] == "etm:4" and d["weighted"] is True
    assert m.mae > 0                                # ETM is not exact on zero


def test_operand_histograms():
    p_a, p_w = operand_histograms(np.array([-128, -1, -1, 127]), torch.tensor([[0, 0], [5, 0]]),
                                  signed=True)
    assert p_a.shape == p_w.shape == (256,) and p_a.dtype == np.float64
    assert p_a[0] == 0.25 and p_a[127] == 0.5 and p_a[255] == 0.25 and p_a.sum() == 1
    assert p_w[128] == 0.75 and p_w[133] == 0.25
    p_a, p_w = operand_histograms(torch.arange(256), np.full(10, 255, np.uint8), signed=False)
    assert np.allclose(p_a, 1 / 256) and p_w[255] == 1.0
    # A layer's view of a unit: its histograms as weights.
    assert characterize("exact-u", (p_a, p_w)).mae == 0.0
    with pytest.raises(InvalidParameterError, match="0..255"):
        operand_histograms(np.array([-1]), np.array([0]), signed=False)
    with pytest.raises(InvalidParameterError, match="integers"):
        operand_histograms(np.array([0.5]), np.array([0]), signed=False)
    with pytest.raises(InvalidParameterError, match="empty"):
        operand_histograms(np.array([], dtype=np.int64), np.array([0]), signed=False)


@pytest.mark.parametrize("weights", [np.ones((255, 256)), -np.ones((256, 256)),
                                     np.zeros((256, 256)), (np.ones(256),),
                                     (np.ones(256), np.ones(10)),
                                     np.full((256, 256), np.nan)])
def test_bad_weights(weights):
    with pytest.raises(InvalidParameterError):
        characterize("drum:6", weights)
