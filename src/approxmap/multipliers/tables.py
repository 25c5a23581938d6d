"""User-supplied multiplier tables (``file:`` units).

Formats (chosen by the file suffix, case-insensitive):

- ``.npy``: a 256 x 256 integer array (``np.save``); pickled arrays are refused
  (``allow_pickle=False``).
- ``.bin``: TFApprox style, 65,536 little-endian uint16 values, ``lut[a * 256 + w]``
  (131,072 bytes); unsigned units only.
- ``.csv``: 256 lines of 256 comma-separated integers, line ``i`` = activation index ``i``.

Every table is in the layout of :mod:`approxmap.multipliers.units`: row = activation
index, column = weight index; unsigned ``index = value``, signed ``index = value + 128``.

Signedness, declared (``signed=True/False``) or inferred, is checked against the values.
With ``U``, ``S`` and ``T`` the exact products in the unsigned layout, the signed offset
layout (``lut[a + 128][w + 128]``) and the signed two's-complement layout
(``lut[a & 0xFF][w & 0xFF]``, a common mistake), and ``mae_X`` the mean absolute
difference between the table and ``X``:

1. Range: unsigned tables hold 0..65535, signed ones -32768..32767.
2. Inference (``signed=None``): a table with a negative value is signed; a table with a
   value above 32767 is unsigned; a table within 0..32767 is unsigned only when it is
   closer to the unsigned products than to either signed layout
   (``mae_U < min(mae_S, mae_T)``), otherwise it is ambiguous and refused with a message
   asking for ``signed=`` (e.g. an all-zero table, or a unit that keeps only the top
   partial-product row).
3. Plausibility of a signed table (declared or inferred): it must not be closer to the
   two's-complement layout than to the offset layout (``mae_T < mae_S`` is refused, with
   the value at ``a = -1, w = -1``, index [127][127], which should be about 1, and how to
   convert); a signed table without negative values that is closer to the unsigned
   products is refused; a table with negatives that matches the unsigned products once
   read modulo 65536 is refused as an unsigned table stored in int16.

All refusals are one-line :class:`DataError` (file content) or
:class:`InvalidParameterError` (arguments) naming the file; no traceback escapes.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np

from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.multipliers.units import (
    TABLE_SHAPE,
    Multiplier,
    exact_table,
    register_unit_family,
)

SUFFIXES = (".npy", ".bin", ".csv")
BIN_BYTES = 256 * 256 * 2
_LOCK = threading.Lock()
_CACHE: dict[tuple[str, int, int, bool | None], Multiplier] = {}


def _twos_complement_table() -> np.ndarray:
    v = np.arange(256, dtype=np.int64)
    v = np.where(v < 128, v, v - 256)
    return np.multiply.outer(v, v)


def _read_npy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{path}: pickled .npy files are refused (object arrays need "
                            "pickle); save a plain integer array with np.save.") from None
        raise DataError(f"{path}: not a readable .npy file ({exc}).") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc}).") from None
    if not isinstance(data, np.ndarray):
        if hasattr(data, "close"):
            data.close()
        raise DataError(f"{path}: holds an .npz archive, not a single .npy array.")
    return data


def _read_bin(path: Path) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if len(raw) != BIN_BYTES:
        raise DataError(f"{path}: a .bin table holds 65,536 little-endian uint16 values "
                        f"({BIN_BYTES:,} bytes), this file has {len(raw):,} bytes.")
    return np.frombuffer(raw, dtype="<u2").reshape(TABLE_SHAPE).astype(np.int64)


def _read_csv(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2, encoding="utf-8")
    except (ValueError, OverflowError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a table of comma-separated integers ({first}).") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return data


def _check_array(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype.kind not in "iu":
        raise DataError(f"{path}: the table must hold integers, found dtype {data.dtype}.")
    if data.shape != TABLE_SHAPE:
        raise DataError(f"{path}: the table must have shape (256, 256), found {data.shape}.")
    if data.dtype.kind == "u" and int(data.max()) > 65535:
        raise DataError(f"{path}: values up to {int(data.max())} are out of the 16-bit "
                        "product range (at most 65535).")
    return data.astype(np.int64)


def _mae(table: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(table - reference).mean())


def _resolve_signed(table: np.ndarray, signed: bool | None, path: Path) -> bool:
    """Declared or inferred signedness, checked against the values (module docstring)."""
    lo, hi = int(table.min()), int(table.max())
    mae_u = _mae(table, exact_table(False))
    mae_s = _mae(table, exact_table(True))
    mae_t = _mae(table, _twos_complement_table())
    if signed is None:
        if lo < 0 and hi > 32767:
            raise DataError(f"{path}: values {lo}..{hi} fit neither a signed (-32768..32767) "
                            "nor an unsigned (0..65535) 16-bit product.")
        if lo < 0:
            signed = True
        elif hi > 32767:
            signed = False
        elif mae_u < min(mae_s, mae_t):
            signed = False
        else:
            raise DataError(
                f"{path}: ambiguous signedness (values {lo}..{hi}, no negative product, "
                f"mean |table - exact| {mae_u:.0f} as unsigned vs {mae_s:.0f} as signed); "
                "pass signed=True or signed=False.")
    if signed:
        if lo < -32768 or hi > 32767:
            raise DataError(f"{path}: values {lo}..{hi} are out of the signed 16-bit range "
                            "-32768..32767 of a signed table.")
        if lo < 0 and _mae(table % 65536, exact_table(False)) < mae_s:
            raise DataError(
                f"{path}: looks like an unsigned table stored as int16 (negative values "
                "wrap products above 32767); convert it with table % 65536 "
                "and store it as uint16 or int32.")
        if mae_t < mae_s:
            raise DataError(
                f"{path}: the signed table looks indexed by two's complement (lut[a & 0xFF]) "
                f"instead of lut[a + 128]: the value at a=-1, w=-1 (index [127][127]) is "
                f"{int(table[127, 127])}, expected about 1; convert it with "
                "np.roll(table, 128, axis=(0, 1)).")
        if lo >= 0 and mae_u < mae_s:
            raise DataError(
                f"{path}: declared signed but it has no negative product and matches the "
                f"unsigned products (mean |error| {mae_u:.0f} vs {mae_s:.0f} as signed); "
                "pass signed=False.")
        return True
    if lo < 0 or hi > 65535:
        raise DataError(f"{path}: values {lo}..{hi} are out of the unsigned 16-bit range "
                        "0..65535 of an unsigned table" + ("; pass signed=True for a signed "
                                                           "table." if lo < 0 else "."))
    return False


def load_table(path: str | os.PathLike[str], signed: bool | None = None) -> Multiplier:
    """Load a user table as a Multiplier named ``file:<absolute path>``.

    Args:
        path: a ``.npy``, ``.bin`` or ``.csv`` file (formats in the module docstring).
        signed: the table's signedness; None infers it from the values (module docstring).

    Returns:
        A Multiplier (family ``"file"``, int32 table (256, 256), no citation beyond the
        file, no power figure, not promised exact on zero). Loads are cached per file
        path, modification time, size and ``signed``.

    Raises:
        InvalidParameterError: unsupported suffix, ``signed`` not a bool/None, or
            ``signed=True`` for a ``.bin`` file.
        DataError: missing, unreadable or corrupt file, pickled ``.npy``, wrong shape,
            non-integer values, values out of the 16-bit range, implausible or ambiguous
            signedness.
    """
    if signed is not None and not isinstance(signed, bool | np.bool_):
        raise InvalidParameterError(
            f"{Path(path)}: signed must be True, False or None, got {signed!r}.")
    signed = None if signed is None else bool(signed)
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidParameterError(
            f"{p}: unsupported table format {suffix or '(no suffix)'!r}; use .npy, .bin "
            "(TFApprox uint16) or .csv.")
    if suffix == ".bin" and signed:
        raise InvalidParameterError(
            f"{p}: .bin tables (TFApprox uint16) are unsigned; save a signed table as .npy "
            "or .csv.")
    try:
        resolved = p.resolve()
        stat = resolved.stat()
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({exc.strerror or exc}).") from None
    if not resolved.is_file():
        raise DataError(f"{p}: is not a file.")
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, signed)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    if suffix == ".npy":
        data = _read_npy(resolved)
    elif suffix == ".bin":
        data = _read_bin(resolved)
        signed = False
    else:
        data = _read_csv(resolved)
    table = _check_array(data, resolved)
    is_signed = _resolve_signed(table, signed, resolved)
    kind = "signed" if is_signed else "unsigned"
    unit = Multiplier(name=f"file:{resolved}", family="file", signed=is_signed, lut=table,
                      citation=f"user table {resolved}",
                      description=f"user table {resolved.name} ({kind})")
    with _LOCK:
        _CACHE[key] = unit
    return unit


def _file_factory(params: str | None, *, signed: bool | None = None) -> Multiplier:
    if not params:
        raise InvalidParameterError(
            "The 'file' family needs a path: file:PATH with a .npy, .bin or .csv table.")
    return load_table(params, signed=signed)


register_unit_family(
    "file", _file_factory, description="user table (.npy, TFApprox .bin, .csv)",
    syntax="file:PATH (.npy, .bin or .csv)", standard=(), accepts_signed=True,
    cacheable=False, listing_order=90)
