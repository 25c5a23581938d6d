"""A multiplier as a 256 x 256 truth table, and the per-layer product table derived from it.

The emulation takes any object with two attributes (duck typing):

- ``lut``: integer array or tensor of shape (256, 256), the multiplier's output for every
  operand pair. The first operand ``a`` is the ACTIVATION, the second ``w`` the WEIGHT:
  ``lut[a_index][w_index]``.
- ``signed``: bool. Unsigned units (``mul8u``): a, w in 0..255, index = value, outputs in
  0..65535. Signed units (``mul8s``): a, w in -128..127, index = value + 128, outputs in
  -32768..32767 (two's-complement 16-bit product). This is the layout of EvoApproxLib's
  tables and of TFApprox's ``.bin`` files (``lut[a * 256 + b]``).

`Table` is a small frozen container of that shape; `as_table` validates any such object.

The product table
-----------------
A layer feeds the unit int8 weight codes w in -127..127 and activation codes whose
*activation index* ``i`` is 0..255 (the uint8 code itself, or int8 code + 128; see
`approxmap.multipliers.quant`). `product_table` gives ``P[i, w + 127]``, the integer the unit
returns for that pair under the operand convention of `approxmap.multipliers.quant`:

====================  ===============  =====================================================
activations           unit             P[i, w]  (v = operand value of index i)
====================  ===============  =====================================================
uint8 (v = i)         unsigned         sgn(w) * lut[i][|w|]               (sign-magnitude)
uint8 (v = i - 128)   signed           lut[i][w + 128]      (uint8 code - 128 = int8 code)
int8  (v = i - 128)   signed           lut[i][w + 128]
int8  (v = i - 128)   unsigned         sgn(v) * sgn(w) * lut[|v|][|w|]    (sign-magnitude)
====================  ===============  =====================================================

``sgn(x)`` is -1 for x < 0 and +1 otherwise (a sign-magnitude sign bit: a zero operand
has a + sign, so ``lut[a][0]`` is used as it is). For the exact unit ``P[i, w] = v(i) * w``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from approxmap.core.exceptions import InvalidParameterError

LUT_SHAPE = (256, 256)
UNSIGNED_RANGE = (0, 65535)
SIGNED_RANGE = (-32768, 32767)
WEIGHT_CODES = 255  # int8 weight codes -127..127, column w + 127 of a product table
WEIGHT_MAX = 127


@dataclass(frozen=True, eq=False)
class Table:
    """A multiplier given by its truth table.

    Attributes:
        lut: (256, 256) integer numpy array or tensor, ``lut[a_index][w_index]``.
        signed: False for ``mul8u`` (indices = values 0..255), True for ``mul8s``
            (index = value + 128).
        name: optional label for messages and reports.
    """

    lut: Any
    signed: bool
    name: str = field(default="")


def exact_table(signed: bool) -> Table:
    """The exact 8-bit multiplier in the same layout (a * w)."""
    values = np.arange(-128, 128) if signed else np.arange(256)
    lut = np.multiply.outer(values, values).astype(np.int32)
    return Table(lut, signed, name="exact-signed" if signed else "exact-unsigned")


def _lut_array(lut: Any) -> np.ndarray:
    if isinstance(lut, torch.Tensor):
        if lut.dtype == torch.bool or lut.is_floating_point() or lut.is_complex():
            raise InvalidParameterError(
                f"A multiplier table must hold integers; got a tensor of dtype {lut.dtype}."
            )
        return lut.detach().cpu().numpy()
    if isinstance(lut, np.ndarray):
        array = lut
    else:
        try:
            array = np.asarray(lut)
        except Exception as exc:  # ragged lists and the like
            raise InvalidParameterError(f"A multiplier table must be a 256x256 array: {exc}") from None
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise InvalidParameterError(
            f"A multiplier table must hold integers; got an array of dtype {array.dtype}."
        )
    return array


def as_table(unit: Any) -> Table:
    """Validate a unit (any object with ``.lut`` and ``.signed``) and return it as a `Table`.

    The returned table's ``lut`` is a C-contiguous int64 numpy array of shape (256, 256).

    Raises:
        InvalidParameterError: no ``lut``/``signed`` attribute, ``signed`` not a bool, a
            shape other than (256, 256), a non-integer dtype, or a value outside the
            16-bit product range (0..65535 unsigned, -32768..32767 signed).
    """
    if isinstance(unit, Table) and getattr(unit, "_validated", False):
        return unit
    if not hasattr(unit, "lut") or not hasattr(unit, "signed"):
        raise InvalidParameterError(
            f"A multiplier must have attributes .lut and .signed; got {type(unit).__name__}."
        )
    signed = unit.signed
    if not isinstance(signed, (bool, np.bool_)):
        raise InvalidParameterError(
            f"A multiplier's .signed must be a bool; got {type(signed).__name__}."
        )
    array = _lut_array(unit.lut)
    if tuple(array.shape) != LUT_SHAPE:
        raise InvalidParameterError(
            f"A multiplier table must have shape (256, 256); got {tuple(array.shape)}."
        )
    lo, hi = SIGNED_RANGE if signed else UNSIGNED_RANGE
    vmin, vmax = int(array.min()), int(array.max())
    if vmin < lo or vmax > hi:
        kind = "signed" if signed else "unsigned"
        raise InvalidParameterError(
            f"A {kind} 8-bit multiplier's outputs must lie in {lo}..{hi}; "
            f"this table holds {vmin}..{vmax}."
        )
    table = Table(np.ascontiguousarray(array, dtype=np.int64), bool(signed),
                  name=str(getattr(unit, "name", "") or ""))
    object.__setattr__(table, "_validated", True)
    return table


def table_digest(table: Table) -> str:
    """SHA-1 hex digest of a validated table's int64 bytes and signedness (a cache key)."""
    h = hashlib.sha1(table.lut.tobytes())
    h.update(b"s" if table.signed else b"u")
    return h.hexdigest()


def activation_offset(activation: str, signed: bool) -> int:
    """Offset of the operand value from the activation index: v(i) = i - offset.

    0 for uint8 activations into an unsigned unit, 128 otherwise (uint8 codes are shifted to
    int8 for a signed unit; int8 codes are stored as index = code + 128).
    """
    return 0 if (activation == "uint8" and not signed) else 128


def _sign(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, -1, 1).astype(np.int64)


def product_table(table: Table, activation: str) -> np.ndarray:
    """The (256, 255) int64 product table ``P[i, w + 127]`` of a validated table.

    Args:
        table: a validated `Table` (see `as_table`).
        activation: "uint8" or "int8", the activation coding of the layer.

    Returns:
        P with ``P[i, w + 127]`` = what the unit returns for activation index i and weight
        code w in -127..127, under the convention of this module's docstring.
    """
    lut = table.lut
    index = np.arange(256)[:, None]
    w = np.arange(-WEIGHT_MAX, WEIGHT_MAX + 1)[None, :]
    if table.signed:
        return lut[np.broadcast_to(index, (256, WEIGHT_CODES)),
                   np.broadcast_to(w + 128, (256, WEIGHT_CODES))].copy()
    if activation == "uint8":
        return _sign(w) * lut[index, np.abs(w)]
    v = index - 128
    return _sign(v) * _sign(w) * lut[np.abs(v), np.abs(w)]


def exact_product_table(activation: str, signed: bool) -> np.ndarray:
    """``v(i) * w`` as a (256, 255) int64 table: the product table of the exact unit."""
    v = np.arange(256)[:, None] - activation_offset(activation, signed)
    return v * np.arange(-WEIGHT_MAX, WEIGHT_MAX + 1)[None, :]
