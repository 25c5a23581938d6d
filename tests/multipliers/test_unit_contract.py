"""The contract every listed unit keeps: table shape, dtype, layout, hash, recorded metrics."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from approxmap.multipliers import characterize, create_unit, exact_table, list_units

ALL_UNITS = list_units()


def _twos_complement_products() -> np.ndarray:
    v = np.arange(256)
    v = np.where(v < 128, v, v - 256)
    return np.multiply.outer(v, v)


TWOS = _twos_complement_products()


def test_listing_holds_formula_units_and_every_evoapprox_release():
    for name in ("exact", "exact-u", "trunc:4", "trunc-c:4", "bam:2,4", "mitchell", "drum:6",
                 "kulkarni", "etm:4"):
        assert name in ALL_UNITS
    evo = [n for n in ALL_UNITS if n.startswith("evo:")]
    assert len(evo) == 148
    assert {n.split(":")[1].split("/")[0] for n in evo} == {"v10", "master", "v2022"}
    assert ALL_UNITS.index("exact") < ALL_UNITS.index(evo[0])  # formulas listed first
    assert len(set(ALL_UNITS)) == len(ALL_UNITS)
    assert list_units("drum:*") == ["drum:3", "drum:4", "drum:5", "drum:6"]
    assert all(n.startswith("evo:v2022/") for n in list_units("evo:v2022/*"))


@pytest.mark.parametrize("name", ALL_UNITS)
def test_unit_contract(name: str):
    unit = create_unit(name)
    assert unit.name == name
    assert create_unit(name) is unit  # cached

    lut = unit.lut
    assert lut.shape == (256, 256)
    assert lut.dtype == np.int32
    assert not lut.flags.writeable
    assert unit.sha == hashlib.sha1(lut.astype("<i4").tobytes()).hexdigest()[:12]

    # Signedness consistent with the layout: value range, and the table is closest to the
    # exact products of its own layout (a constant table carries no layout information).
    table = lut.astype(np.int64)
    mae_u = np.abs(table - exact_table(False)).mean()
    mae_s = np.abs(table - exact_table(True)).mean()
    mae_t = np.abs(table - TWOS).mean()
    if unit.signed:
        assert -32768 <= table.min() and table.max() <= 32767
        assert mae_s < min(mae_u, mae_t)
    else:
        assert 0 <= table.min() and table.max() <= 65535
        assert table.std() == 0 or mae_u < min(mae_s, mae_t)
    if unit.family == "evo":
        assert unit.signed == ("/mul8s_" in name)

    if unit.exact_on_zero:
        zero = unit.offset
        assert not lut[zero, :].any() and not lut[:, zero].any()

    metrics = characterize(unit).to_dict()
    if unit.family == "evo":
        assert set(unit.recorded) == {"mae", "wce", "mred_pct", "ep_pct", "mean_error",
                                      "std_error"}
    for key, value in unit.recorded.items():
        tolerance = max(unit.recorded_atol, 1e-9)
        assert metrics[key] == pytest.approx(value, rel=1e-9, abs=tolerance), key

    # product() reads the table with the documented index convention (numpy and torch).
    lo, hi = unit.value_range
    a = np.array([lo, lo, hi, 0, 1, hi // 2])
    w = np.array([lo, hi, lo, 7, 0, hi])
    expected = lut[a + unit.offset, w + unit.offset]
    assert np.array_equal(unit.product(a, w), expected)
    out = unit.product(torch.tensor(a), torch.tensor(w))
    assert out.dtype == torch.int32 and torch.equal(out, torch.from_numpy(expected.copy()))
