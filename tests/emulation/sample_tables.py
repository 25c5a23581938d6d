"""Small approximate-multiplier tables built from formulas, for tests and benchmarks.

Not a unit library (that lives elsewhere in the package): these are the kinds the emulation
must handle, built as plain `Table` objects in the layout of `tables` (``lut[a][w]``,
signed indices = value + 128).

- `truncated(k)`: partial products a_i w_j with i + j < k removed (an array multiplier with
  its k lowest columns truncated, no compensation). Signed: the Baugh-Wooley array of the
  two's-complement operands with the same columns removed.
- `broken_array(hbl, vbl)`: the broken-array multiplier (BAM) of Mahdiani et al., "Bio-Inspired
  Imprecise Computational Blocks for Efficient VLSI Implementation of Soft-Computing
  Applications", IEEE TCAS-I 57(4), 2010: the carry-save cells of the partial products of
  the weight bits j < hbl (horizontal break) and of columns i + j < vbl (vertical break) are
  omitted.
- `drum(k)`: DRUM of Hashemi, Bahar and Reda, "DRUM: A Dynamic Range Unbiased Multiplier for
  Approximate Applications", ICCAD 2015: each operand keeps k bits from its leading one, the
  lowest kept bit set to 1, then an exact product (sign-magnitude when signed).
- `random_table(noise)`: the exact product plus uniform integer noise in [-noise, noise],
  clipped to the 16-bit output range (no structure at all).
"""

from __future__ import annotations

import numpy as np

from approxmap.multipliers.products import SIGNED_RANGE, UNSIGNED_RANGE, Table


def _operands(signed: bool) -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(-128, 128) if signed else np.arange(256)
    return values[:, None], values[None, :]


def _partial_product_table(keep, signed: bool) -> np.ndarray:
    """sum over kept (i, j) of +-a_i w_j 2^(i+j); Baugh-Wooley signs when signed."""
    a, w = _operands(signed)
    abits, wbits = a & 0xFF, w & 0xFF  # two's complement bit patterns
    out = np.zeros((256, 256), dtype=np.int64)
    for i in range(8):
        for j in range(8):
            if not keep(i, j):
                continue
            sign = -1 if signed and ((i == 7) != (j == 7)) else 1
            out += sign * (((abits >> i) & 1) * ((wbits >> j) & 1) << (i + j))
    return out


def truncated(k: int, signed: bool = False) -> Table:
    """Array multiplier with partial products of columns i + j < k removed."""
    lut = _partial_product_table(lambda i, j: i + j >= k, signed)
    return Table(lut.astype(np.int32), signed, name=f"trunc{k}{'s' if signed else 'u'}")


def broken_array(hbl: int, vbl: int, signed: bool = False) -> Table:
    """Broken-array multiplier: partial products with j < hbl or i + j < vbl removed."""
    lut = _partial_product_table(lambda i, j: j >= hbl and i + j >= vbl, signed)
    return Table(lut.astype(np.int32), signed,
                 name=f"bam{hbl}-{vbl}{'s' if signed else 'u'}")


def _drum_operand(x: np.ndarray, k: int) -> np.ndarray:
    lead = np.floor(np.log2(np.maximum(x, 1))).astype(np.int64)
    shift = np.maximum(lead - k + 1, 0)
    approx = (((x >> shift) | 1) << shift)
    return np.where(shift > 0, approx, x)


def drum(k: int, signed: bool = False) -> Table:
    """DRUM-k: operands truncated to k bits below their leading one (unbiased)."""
    a, w = _operands(signed)
    ma, mw = _drum_operand(np.abs(a), k), _drum_operand(np.abs(w), k)
    lut = np.sign(a) * np.sign(w) * ma * mw if signed else ma * mw
    lo, hi = SIGNED_RANGE if signed else UNSIGNED_RANGE
    return Table(np.clip(lut, lo, hi).astype(np.int32), signed,
                 name=f"drum{k}{'s' if signed else 'u'}")


def random_table(noise: int, signed: bool = False, seed: int = 0) -> Table:
    """Exact product plus seeded uniform integer noise in [-noise, noise], clipped to range."""
    a, w = _operands(signed)
    rng = np.random.default_rng(seed)
    lut = a * w + rng.integers(-noise, noise + 1, size=(256, 256))
    lo, hi = SIGNED_RANGE if signed else UNSIGNED_RANGE
    return Table(np.clip(lut, lo, hi).astype(np.int32), signed,
                 name=f"random{noise}{'s' if signed else 'u'}")
