"""EvoApproxLib units: every table against its recorded metrics, releases, names, power."""

from __future__ import annotations

import json

import numpy as np
import pytest

from approxmap.core.exceptions import DataError, InvalidParameterError, UnknownNameError
from approxmap.multipliers import characterize, create_unit, evo_names, exact_table
from approxmap.multipliers import evoapprox as evo

META = json.loads(evo.META_FILE.read_text(encoding="utf-8"))


def _mae_wce(table: np.ndarray, signed: bool) -> tuple[float, int]:
    err = np.abs(table.astype(np.int64) - exact_table(signed))
    return float(err.mean()), int(err.max())


def test_every_distinct_table_matches_its_recorded_mae_and_wce():
    by_sha = {}
    for key, meta in META["meta"].items():
        by_sha.setdefault(meta["sha"], []).append((key, meta))
    assert len(by_sha) == 66
    with np.load(evo.LUT_FILE, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(f"sha_{s}" for s in by_sha)
        for sha, entries in by_sha.items():
            for key, meta in entries:
                mae, wce = _mae_wce(data[f"sha_{sha}"], meta["signed"])
                assert mae == pytest.approx(meta["mae"], rel=1e-12), key
                assert wce == meta["wce"], key


@pytest.mark.parametrize("key", sorted(META["names"]))
def test_every_name_resolves_to_its_table_and_metrics(key):
    unit = create_unit(f"evo:{key}")
    meta = META["meta"][key]
    assert unit.sha == META["names"][key] == meta["sha"]
    assert unit.signed is meta["signed"]
    mae, wce = _mae_wce(unit.lut, unit.signed)
    assert mae == pytest.approx(meta["mae"], rel=1e-12) and wce == meta["wce"]
    assert unit.power_mw == pytest.approx(float(meta["pwr_mW"].split()[0]))


def test_names_reused_across_releases_are_different_circuits():
    v10 = create_unit("evo:v10/mul8s_1KV8")
    v2022 = create_unit("evo:v2022/mul8s_1KV8")
    assert v10.sha != v2022.sha and v10 != v2022
    assert np.array_equal(v10.lut, exact_table(True))            # v1.0: exact, signed layout
    assert characterize(v2022).mae > 0                           # v2022: approximate
    assert np.array_equal(create_unit("evo:v2022/mul8s_1KV6").lut, exact_table(True))
    assert np.array_equal(create_unit("evo:v2022/mul8u_1JJQ").lut, exact_table(False))
    assert np.array_equal(create_unit("evo:mul8u_1JFF").lut, create_unit("exact-u").lut)
    assert create_unit("evo:mul8u_1JFF").power_mw == 0.391
    assert v10.power_mw == 0.425


def test_default_release_and_aliases():
    unit = create_unit("evo:mul8u_2AC")
    assert unit.name == "evo:v10/mul8u_2AC"
    assert create_unit("evo:v10/mul8u_2AC") is unit
    assert create_unit("evo:v1.0/mul8u_2AC") is unit
    master = create_unit("evo:master/mul8u_2AC")
    assert master.name == "evo:master/mul8u_2AC" and master.sha == unit.sha
    assert "v1.0" in unit.citation and "Brno" in unit.citation
    assert len(evo_names()) == 148 and len(evo_names("v2022")) == 50


def test_signed_table_with_published_mae():
    # The correct negative x negative quadrant of mul8s_1L2H gives the published MAE 53.
    unit = create_unit("evo:mul8s_1L2H")
    assert characterize(unit).mae == pytest.approx(53, abs=0.5)
    # Signed layout: lut[a + 128][w + 128]; a = -1, w = -1 sits at [127][127].
    assert unit.product(-1, -1) == unit.lut[127, 127]
    assert unit.product(-128, 127) == unit.lut[0, 255]


def test_unit_errors_are_one_line_with_hints():
    with pytest.raises(UnknownNameError, match="Did you mean: mul8u_2AC"):
        create_unit("evo:mul8u_2ACX")
    with pytest.raises(UnknownNameError, match="evo:master/mul8u_1CMB"):
        create_unit("evo:mul8u_1CMB")                            # only in master
    with pytest.raises(InvalidParameterError, match="release"):
        create_unit("evo:v3/mul8u_2AC")
    with pytest.raises(InvalidParameterError, match="needs a multiplier name"):
        create_unit("evo:")


def test_power_parsing():
    assert evo.parse_power("0.052 mW") == 0.052
    assert evo.parse_power(" 1.5mW") == 1.5
    with pytest.raises(DataError):
        evo.parse_power("n/a")
