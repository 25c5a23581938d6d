"""Published approximate multipliers: reference figures, definitions, hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from approxmap.core.exceptions import InvalidParameterError, UnknownNameError
from approxmap.multipliers import characterize, create_unit
from approxmap.multipliers import formulas as F

A, W = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
EXACT = A * W


@pytest.mark.parametrize(("name", "mred", "wcre"), [
    ("mitchell", 3.79, 11.1),   # Mitchell 1962
    ("drum:6", 1.30, 6.35),     # Hashemi, Bahar, Reda 2015
    ("kulkarni", 3.28, None),   # Kulkarni, Gupta, Ercegovac 2011
])
def test_reference_figures_reproduced(name, mred, wcre):
    m = characterize(name)
    assert m.mred_pct == pytest.approx(mred, abs=0.05)
    if wcre is not None:
        assert m.wcre_pct == pytest.approx(wcre, abs=0.05)
    # The convention: relative error over the pairs with a nonzero exact product.
    table = create_unit(name).lut.astype(np.int64)
    nz = EXACT != 0
    red = np.abs(table - EXACT)[nz] / EXACT[nz]
    assert m.mred_pct == pytest.approx(red.mean() * 100, rel=1e-12)
    assert m.wcre_pct == pytest.approx(red.max() * 100, rel=1e-12)


ZERO_EXACT = ["exact", "exact-u", "mitchell", "kulkarni", "trunc-c:1", "trunc-c:2",
              *[f"trunc:{k}" for k in range(16)], *[f"drum:{k}" for k in range(2, 9)],
              *[f"bam:{h},{v}" for h in range(8) for v in range(0, 16, 3)]]


@pytest.mark.parametrize("name", ZERO_EXACT)
def test_exact_on_zero_where_the_definition_says_so(name):
    unit = create_unit(name)
    assert unit.exact_on_zero
    z = unit.offset
    assert not unit.lut[z, :].any() and not unit.lut[:, z].any()


@pytest.mark.parametrize("name", ["etm:4", "etm:5", "etm:6", "etm:7", "trunc-c:4", "trunc-c:6"])
def test_units_whose_definition_is_not_exact_on_zero(name):
    unit = create_unit(name)
    assert not unit.exact_on_zero
    z = unit.offset
    assert unit.lut[z, :].any() or unit.lut[:, z].any()


def test_mitchell_definition():
    m = F.mitchell(A, W)
    assert int(F.mitchell(3, 3)) == 8                # fa = fw = 1/2: 2**2 * (1/2 + 1/2) * 2
    assert int(F.mitchell(5, 6)) == 28               # 2**4 * (1 + 1/4 + 1/2)
    assert np.all(m <= EXACT)                        # Mitchell never overestimates
    powers = 1 << np.arange(8)
    assert np.array_equal(F.mitchell(powers[:, None], W[0][None, :]), powers[:, None] * W[0])
    # No truncation: the float formula evaluated exactly gives the same integers.
    nz = (A > 0) & (W > 0)
    ka, kw = np.floor(np.log2(np.where(nz, A, 1))), np.floor(np.log2(np.where(nz, W, 1)))
    fa, fw = np.where(nz, A, 1) / 2**ka - 1, np.where(nz, W, 1) / 2**kw - 1
    ref = np.where(fa + fw < 1, 2 ** (ka + kw) * (1 + fa + fw), 2 ** (ka + kw + 1) * (fa + fw))
    assert np.array_equal(m, np.where(nz, np.floor(ref), 0).astype(np.int64))


def test_drum_definition():
    assert int(F.drum(200, 100, 4)) == 13 * 13 << 7   # 1100|1 and 1100|1, shifts 4 + 3
    assert int(F.drum(255, 255, 6)) == 63 * 63 << 4
    small = np.arange(64)
    exact_small = np.multiply.outer(small, small)
    assert np.array_equal(F.drum(small[:, None], small[None, :], 6), exact_small)
    assert np.array_equal(create_unit("drum:8").lut, create_unit("exact-u").lut)
    seg, shift = F.drum_operand(np.array([0, 5, 64, 200]), 4)
    assert seg.tolist() == [0, 5, 9, 13] and shift.tolist() == [0, 0, 3, 4]


def test_kulkarni_definition():
    assert int(F.kulkarni(3, 3)) == 7
    assert int(F.kulkarni(15, 15)) == 175 and int(F.kulkarni(255, 255)) == 50575
    k = F.kulkarni(A, W)
    assert np.all(k <= EXACT)
    # Operands without a base-4 digit 3 never meet the 3 x 3 block: exact.
    no_three = np.array([a for a in range(256) if all((a >> s) & 3 != 3 for s in (0, 2, 4, 6))])
    assert np.array_equal(k[no_three], EXACT[no_three])


def test_etm_definition():
    assert int(F.etm(200, 100, 4)) == (12 * 6 << 8) + 255   # MSB product + all-ones NMP
    assert int(F.etm(9, 13, 4)) == 117                      # both MSB parts zero: exact
    assert int(F.etm(0, 255, 4)) == 255
    assert int(F.etm(16, 0, 4)) == 0                        # aH*wH = 0 and aL | wL = 0
    assert F.etm_low_part(np.array([0, 1, 8]), np.array([0, 0, 3]), 4).tolist() == [0, 31, 255]


def test_truncation_and_broken_array_definitions():
    assert np.array_equal(create_unit("trunc:0").lut, create_unit("exact-u").lut)
    assert [F.truncation_correction(k) for k in (1, 2, 3, 4, 6, 8)] == [0, 0, 8, 16, 64, 512]
    for k in (2, 4, 6, 8):
        dropped = sum((c + 1) * 2**c for c in range(k)) / 4       # uniform: each bit 1/4
        assert characterize(f"trunc:{k}").mean_error == pytest.approx(-dropped, abs=1e-9)
        assert characterize(f"trunc-c:{k}").mean_error == pytest.approx(
            F.truncation_correction(k) - dropped, abs=1e-9)
    for v in range(16):
        assert np.array_equal(create_unit(f"bam:0,{v}").lut, create_unit(f"trunc:{v}").lut)
    for h in range(8):  # rows w_0 .. w_{h-1} omitted: a * (w with its h low bits cleared)
        assert np.array_equal(F.broken_array(A, W, h, 0), A * (W & ~((1 << h) - 1)))
    assert int(F.broken_array(1, 255, 2, 0)) == 252 and int(F.broken_array(255, 1, 2, 0)) == 0
    m = characterize("bam:2,4")
    keep = F.broken_array_keep(2, 4)
    i, j = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    assert m.mean_error == pytest.approx(-np.sum(np.where(keep, 0, 2.0 ** (i + j))) / 4)


def test_power_figures():
    assert create_unit("exact-u").power_mw == 0.391 and create_unit("exact").power_mw == 0.425
    assert not create_unit("exact").power_is_estimate
    t4 = create_unit("trunc:4")
    assert t4.power_mw is None and t4.power_is_estimate
    assert t4.power_estimate == pytest.approx((64 - 10) / 64 * 0.391)
    assert create_unit("drum:6").power == pytest.approx(36 / 64 * 0.391)
    assert create_unit("mitchell").power is None and not create_unit("mitchell").power_is_estimate


@pytest.mark.parametrize("spec", ["drum:1", "drum:9", "drum:x", "drum", "trunc:16", "trunc:-1",
                                  "bam:8,0", "bam:1", "bam:1,2,3", "etm:3", "etm:8",
                                  "trunc-c:0", "exact:3", "mitchell:2", "", "   "])
def test_bad_parameters_are_one_line_errors(spec):
    with pytest.raises(InvalidParameterError) as err:
        create_unit(spec)
    assert "\n" not in str(err.value)


def test_unknown_family_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean: drum"):
        create_unit("drumm:6")
    with pytest.raises(InvalidParameterError, match="signed= applies only"):
        create_unit("drum:6", signed=True)


def test_spec_normalization_and_product_errors():
    assert create_unit("BAM: 2, 4") is create_unit("bam:2,4")
    assert create_unit("drum:06").name == "drum:6"
    unit = create_unit("drum:6")
    assert int(unit.product(200, 100)) == int(F.drum(200, 100, 6))
    with pytest.raises(InvalidParameterError, match="0..255"):
        unit.product(np.array([256]), np.array([1]))
    with pytest.raises(InvalidParameterError, match="integers"):
        unit.product(torch.tensor([1.0]), torch.tensor([1]))
    with pytest.raises(InvalidParameterError, match="-128..127"):
        create_unit("exact").product(128, 1)
    with pytest.raises(InvalidParameterError):
        F.mitchell(-1, 3)
