"""Multiplier tables: validation, operand conventions, and the generic decomposition."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from emul_helpers import EVO_DIR
from sample_tables import broken_array, drum, random_table, truncated

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers.decompose import MAX_TERMS, decompose
from approxmap.multipliers.emulate import unit_products, valid_rows
from approxmap.multipliers.products import (
    Table,
    as_table,
    exact_product_table,
    exact_table,
    product_table,
)


class Duck:
    def __init__(self, lut, signed):
        self.lut, self.signed = lut, signed


@pytest.mark.parametrize("lut, signed, match", [
    (np.zeros((255, 256), np.int32), False, "shape"),
    (np.zeros((256, 256, 1), np.int32), False, "shape"),
    (np.zeros((256, 256), np.float32), False, "integers"),
    (np.zeros((256, 256), bool), False, "integers"),
    (torch.zeros(256, 256), False, "integers"),
    (np.full((256, 256), -1), False, "0..65535"),
    (np.full((256, 256), 70000), False, "0..65535"),
    (np.full((256, 256), 40000), True, "-32768..32767"),
    ("not a table", False, "integers"),
])
def test_bad_tables_are_refused_in_one_line(lut, signed, match):
    with pytest.raises(InvalidParameterError, match=match) as info:
        as_table(Duck(lut, signed))
    assert "\n" not in str(info.value)


def test_bad_units_are_refused():
    with pytest.raises(InvalidParameterError, match=".lut and .signed"):
        as_table(object())
    with pytest.raises(InvalidParameterError, match="bool"):
        as_table(Duck(np.zeros((256, 256), np.int32), "yes"))


def test_accepted_forms():
    exact = exact_table(False)
    for lut in (exact.lut, torch.from_numpy(exact.lut), exact.lut.astype(np.uint16),
                exact.lut.tolist()):
        t = as_table(Duck(lut, False))
        assert t.lut.dtype == np.int64 and np.array_equal(t.lut, exact.lut)
    assert as_table(t) is t


@pytest.mark.parametrize("activation", ["uint8", "int8"])
@pytest.mark.parametrize("signed", [False, True])
def test_exact_tables_give_exact_products(activation, signed):
    p = product_table(as_table(exact_table(signed)), activation)
    expected = exact_product_table(activation, signed)
    rows = valid_rows(activation)
    if activation == "int8" and not signed:  # sign-magnitude: |q| <= 127 on valid rows
        assert np.array_equal(p[rows], expected[rows])
    else:
        assert np.array_equal(p, expected)


def test_operand_conventions():
    # unsigned unit, uint8 activations: sign-magnitude weight, lut[a][|w|]
    lut = np.random.default_rng(0).integers(0, 65536, (256, 256))
    p = product_table(as_table(Table(lut, False)), "uint8")
    assert p[200, 127 + 5] == lut[200, 5] and p[200, 127 - 5] == -lut[200, 5]
    assert p[9, 127] == lut[9, 0]  # zero weight: + sign
    # signed unit: row = index (uint8 code - 128 + 128 = code; int8 code + 128)
    lut_s = np.random.default_rng(1).integers(-32768, 32768, (256, 256))
    for activation in ("uint8", "int8"):
        ps = product_table(as_table(Table(lut_s, True)), activation)
        assert ps[77, 127 - 3] == lut_s[77, 128 - 3]
    # int8 activations into an unsigned unit: sign-magnitude on both
    pu = product_table(as_table(Table(lut, False)), "int8")
    assert pu[128 - 6, 127 + 4] == -lut[6, 4] and pu[128 - 6, 127 - 4] == lut[6, 4]


@pytest.mark.parametrize("activation", ["uint8", "int8"])
def test_decomposition_reconstructs_every_sample_table(activation):
    rows = valid_rows(activation)
    structured, low_rank = [], []
    for unit in (None, truncated(3), truncated(8), truncated(8, True), broken_array(2, 8),
                 broken_array(3, 5, True), drum(4), drum(3, True), random_table(7),
                 random_table(100, True)):
        table = None if unit is None else as_table(unit)
        p, offset = unit_products(table, activation)
        dec = decompose(p, rows, offset)
        assert np.array_equal(dec.reconstruct()[rows], p[rows])
        for term in dec.terms:
            assert term.weight.min() >= -128 and term.weight.max() <= 127
            span = term.feature[rows].max() - term.feature[rows].min()
            assert span <= 255
        assert len(dec.terms) <= MAX_TERMS or dec.bit_linear
        if dec.bit_linear:
            structured.append(unit.name if unit is not None else "exact")
        elif dec.residual is None:
            low_rank.append(unit.name)
    expected = {"exact", "trunc3u", "trunc8u", "trunc8s", "bam2-8u", "bam3-5s"}
    if activation == "int8":  # sign-magnitude activations: low rank instead
        expected -= {"trunc3u", "trunc8u", "bam2-8u"}
        assert {"trunc3u", "trunc8u"} <= set(low_rank)
    assert set(structured) == expected


def test_exact_product_is_one_plane():
    for activation, signed in (("uint8", False), ("uint8", True), ("int8", True)):
        p = exact_product_table(activation, signed)
        dec = decompose(p, valid_rows(activation), 0 if activation == "uint8" and not signed
                        else 128)
        assert dec.bit_linear and len(dec.terms) == 1
        assert np.array_equal(dec.terms[0].feature, np.arange(256))


def test_every_evoapprox_table_decomposes_exactly():
    if not (EVO_DIR / "evo8_luts.npz").is_file():
        pytest.skip("EvoApprox tables not available")
    meta = json.loads((EVO_DIR / "evo8_luts.json").read_text())
    signed_of = {sha: meta["meta"][name]["signed"] for name, sha in meta["names"].items()}
    with np.load(EVO_DIR / "evo8_luts.npz") as z:
        for key in z.files:
            table = as_table(Table(z[key], bool(signed_of[key[4:]])))
            for activation in ("uint8", "int8"):
                rows = valid_rows(activation)
                p, offset = unit_products(table, activation)
                dec = decompose(p, rows, offset)
                assert np.array_equal(dec.reconstruct()[rows], p[rows]), key
                if table.signed:  # all signed EvoApprox tables are linear in the bits
                    assert dec.residual is None, key
