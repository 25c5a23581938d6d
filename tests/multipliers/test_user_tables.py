"""User tables: round trips through .npy, .bin and .csv, signedness, and every refusal."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.multipliers import create_unit, load_table


@pytest.fixture(scope="module")
def unsigned():
    return create_unit("drum:6")


@pytest.fixture(scope="module")
def signed():
    return create_unit("evo:v10/mul8s_1L2H")


def _csv(path, table):
    np.savetxt(path, table, fmt="%d", delimiter=",")


def test_round_trips(tmp_path, unsigned, signed):
    np.save(tmp_path / "u32.npy", unsigned.lut)
    np.save(tmp_path / "u16.npy", unsigned.lut.astype(np.uint16))
    np.save(tmp_path / "s16.npy", signed.lut.astype(np.int16))
    unsigned.lut.astype("<u2").tofile(tmp_path / "u.bin")
    _csv(tmp_path / "u.csv", unsigned.lut)
    _csv(tmp_path / "s.csv", signed.lut)
    for name, ref in [("u32.npy", unsigned), ("u16.npy", unsigned), ("u.bin", unsigned),
                      ("u.csv", unsigned), ("s16.npy", signed), ("s.csv", signed)]:
        unit = load_table(tmp_path / name)                       # signedness inferred
        assert unit.signed is ref.signed, name
        assert unit.sha == ref.sha and np.array_equal(unit.lut, ref.lut), name
        assert unit.family == "file" and unit.name == f"file:{(tmp_path / name).resolve()}"
        assert unit.lut.dtype == np.int32 and not unit.exact_on_zero
    assert load_table(tmp_path / "s.csv", signed=True).signed
    assert not load_table(tmp_path / "u.bin", signed=False).signed


def test_bin_layout_is_a_times_256_plus_w(tmp_path):
    flat = np.zeros(65536, dtype="<u2")
    flat[200 * 256 + 3] = 600                                  # a = 200, w = 3
    flat.tofile(tmp_path / "one.bin")
    unit = load_table(tmp_path / "one.bin", signed=False)
    assert int(unit.product(200, 3)) == 600 and int(unit.product(3, 200)) == 0


def test_file_units_through_create_unit(tmp_path, unsigned):
    path = tmp_path / "t.npy"
    np.save(path, unsigned.lut)
    unit = create_unit(f"file:{path}")
    assert unit.sha == unsigned.sha
    assert create_unit(f"file:{path}", signed=False).sha == unsigned.sha
    # A changed file is read again (loads are cached by path, mtime and size).
    np.save(path, create_unit("exact-u").lut)
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert create_unit(f"file:{path}").sha == create_unit("exact-u").sha


def test_ambiguous_signedness_asks_for_signed(tmp_path):
    np.save(tmp_path / "zero.npy", np.zeros((256, 256), np.int32))
    with pytest.raises(DataError, match="signed="):
        load_table(tmp_path / "zero.npy")
    assert not load_table(tmp_path / "zero.npy", signed=False).signed
    assert load_table(tmp_path / "zero.npy", signed=True).signed
    # Within 0..32767 but clearly an unsigned multiplier: inferred unsigned.
    half = np.minimum(create_unit("exact-u").lut, 32767)
    np.save(tmp_path / "half.npy", half)
    assert not load_table(tmp_path / "half.npy").signed


def _refusals(tmp_path, unsigned, signed):
    p = tmp_path
    np.save(p / "float.npy", unsigned.lut.astype(np.float64))
    np.save(p / "shape.npy", np.zeros((255, 256), np.int32))
    np.save(p / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (p / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    np.savez(p / "archive.npz", t=unsigned.lut)
    (p / "archive.npz").rename(p / "archive.npy")
    np.save(p / "big.npy", np.full((256, 256), 70000, np.int32))
    np.save(p / "both.npy", np.where(unsigned.lut > 30000, -5, 40000).astype(np.int32))
    np.save(p / "twos.npy", np.roll(signed.lut, 128, axis=(0, 1)))
    np.save(p / "wrapped.npy", unsigned.lut.astype(np.int16))
    np.save(p / "u.npy", unsigned.lut)
    np.save(p / "s.npy", signed.lut)
    (p / "ragged.csv").write_text("1,2,3\n4,5\n")
    (p / "floats.csv").write_text("\n".join(",".join(["1.5"] * 256) for _ in range(256)))
    (p / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (p / "short.bin").write_bytes(b"\0" * 100)
    (p / "dir.npy").mkdir()
    return [
        ("float.npy", None, DataError, "integers"),
        ("shape.npy", None, DataError, "shape"),
        ("pickled.npy", None, DataError, "pickle"),
        ("corrupt.npy", None, DataError, "readable"),
        ("archive.npy", None, DataError, "npz"),
        ("big.npy", None, DataError, "0..65535"),
        ("both.npy", None, DataError, "neither"),
        ("twos.npy", None, DataError, "two's complement"),
        ("wrapped.npy", None, DataError, "int16"),
        ("u.npy", True, DataError, "signed 16-bit range"),
        ("s.npy", False, DataError, "signed=True"),
        ("ragged.csv", None, DataError, "comma-separated"),
        ("floats.csv", None, DataError, "comma-separated"),
        ("binary.csv", None, DataError, "comma-separated"),
        ("short.bin", None, DataError, "131,072 bytes"),
        ("missing.npy", None, DataError, "cannot be read"),
        ("dir.npy", None, DataError, "not a file"),
        ("table.txt", None, InvalidParameterError, "unsupported"),
        ("short.bin", True, InvalidParameterError, "unsigned"),
        ("u.npy", "yes", InvalidParameterError, "True, False or None"),
    ]


def test_every_refusal_is_one_line_naming_the_file(tmp_path, unsigned, signed):
    for name, declared, exc, fragment in _refusals(tmp_path, unsigned, signed):
        with pytest.raises(exc) as err:
            load_table(tmp_path / name, signed=declared)
        message = str(err.value)
        assert fragment in message, (name, message)
        assert name in message and "\n" not in message, (name, message)
        # No chained traceback: nothing raised from, and any context suppressed.
        value = err.value
        assert value.__cause__ is None, name
        assert value.__context__ is None or value.__suppress_context__, name
