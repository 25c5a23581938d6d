"""Published approximate multipliers, defined by formula and built as 256 x 256 tables.

Every unit here is unsigned 8 x 8 -> 16 bit (``a, w`` in 0..255, ``lut[a][w]``), except
``exact`` (signed int8 x int8, ``lut[a + 128][w + 128]``). ``a`` is the activation and ``w``
the weight (see :mod:`approxmap.multipliers.units`). Bits are numbered from the least
significant: ``a_i`` is bit ``i`` of ``a``; the partial-product array of an 8 x 8
multiplier holds the 64 bits ``a_i * w_j`` of weight ``2**(i + j)``; column ``c`` holds
the bits with ``i + j == c``, row ``j`` the bits ``a * w_j`` (the partial product of weight
bit ``j``; row 0 is the top, least significant row of an array multiplier).

Families and their specs:

========================  ============================================================
``exact``                 signed int8 x int8, exact
``exact-u``               unsigned uint8 x uint8, exact
``trunc:K``               truncated: columns 0..K-1 of the array removed (K in 0..15)
``trunc-c:K``             truncated with constant correction (K in 1..15)
``bam:H,V``               broken-array multiplier (H in 0..7, V in 0..15)
``mitchell``              Mitchell's logarithmic multiplier
``drum:K``                DRUM with K-bit segments (K in 2..8)
``kulkarni``              Kulkarni's underdesigned multiplier (2 x 2 block 3 * 3 = 7)
``etm:K``                 error-tolerant multiplier, K-bit multiplication part (K in 4..7)
========================  ============================================================

The relative-error figures of this module follow one convention: relative error distance
``|approx - exact| / exact`` over the operand pairs with ``exact != 0`` (both operands
nonzero), all pairs equally likely; MRED is its mean, WCRE its maximum. Measured over all
65,025 such pairs:

- ``mitchell``: MRED 3.788 %, WCRE 11.111 % (reference 3.79 % and 11.1 %),
- ``drum:6``: MRED 1.301 %, WCRE 6.348 % (reference 1.30 % and 6.35 %),
- ``kulkarni``: MRED 3.281 % (reference 3.28 %), WCRE 22.22 % (3 * 3 -> 7).

The vectorized functions (:func:`truncated`, :func:`broken_array`, :func:`mitchell`,
:func:`drum`, :func:`kulkarni`, :func:`etm`) take integer numpy arrays (or ints) of
operand values 0..255, broadcast, and return int64 arrays; they raise
InvalidParameterError for values outside 0..255 or bad parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers.units import (
    EXACT_POWER_MW,
    Multiplier,
    exact_table,
    no_params,
    parse_int_params,
    register_unit_family,
)

BITS = 8

CITE_TRUNC = (
    "Y. C. Lim, \"Single-precision multiplier with reduced circuit complexity for signal "
    "processing applications\", IEEE Trans. Computers 41(10):1333-1336, 1992 "
    "(truncated multiplication)")
CITE_TRUNC_C = (
    "M. J. Schulte, E. E. Swartzlander Jr., \"Truncated multiplication with correction "
    "constant\", VLSI Signal Processing VI, IEEE, 1993, pp. 388-396")
CITE_BAM = (
    "H. R. Mahdiani, A. Ahmadi, S. M. Fakhraie, C. Lucas, \"Bio-inspired imprecise "
    "computational blocks for efficient VLSI implementation of soft-computing "
    "applications\", IEEE Trans. Circuits and Systems I 57(4):850-862, 2010")
CITE_MITCHELL = (
    "J. N. Mitchell, \"Computer multiplication and division using binary logarithms\", "
    "IRE Trans. Electronic Computers EC-11(4):512-517, 1962")
CITE_DRUM = (
    "S. Hashemi, R. I. Bahar, S. Reda, \"DRUM: A dynamic range unbiased multiplier for "
    "approximate applications\", IEEE/ACM ICCAD 2015, pp. 418-425")
CITE_KULKARNI = (
    "P. Kulkarni, P. Gupta, M. Ercegovac, \"Trading accuracy for power with an "
    "underdesigned multiplier architecture\", 24th Int. Conf. on VLSI Design, 2011, "
    "pp. 346-351")
CITE_ETM = (
    "K. Y. Kyaw, W. L. Goh, K. S. Yeo, \"Low-power high-speed multiplier for error-tolerant "
    "application\", IEEE Int. Conf. of Electron Devices and Solid-State Circuits (EDSSC), "
    "2010")
CITE_EXACT = (
    "exact product; power: EvoApproxLib exact 8-bit multipliers (mul8u_1JFF 0.391 mW, "
    "mul8s_1KV8 v1.0 0.425 mW, PDK45), V. Mrazek et al., \"EvoApprox8b: Library of "
    "approximate adders and multipliers for circuit design and benchmarking of "
    "approximation methods\", DATE 2017")

#: Reference figures (percent, 8-bit operands, MRED over nonzero products) the formula
#: units must reproduce; kept on the units as ``recorded`` with tolerance 0.05 points.
REFERENCE_FIGURES: dict[str, dict[str, float]] = {
    "mitchell": {"mred_pct": 3.79, "wcre_pct": 11.1},
    "drum:6": {"mred_pct": 1.30, "wcre_pct": 6.35},
    "kulkarni": {"mred_pct": 3.28},
}
REFERENCE_ATOL = 0.05


# --------------------------------------------------------------------------------------
# Helpers


def _operands(a: Any, w: Any) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast integer operands 0..255 to int64 arrays; InvalidParameterError otherwise."""
    arrays = []
    for value, name in ((a, "a"), (w, "w")):
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise InvalidParameterError(f"Operand {name} must hold integers, got {arr.dtype}.")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
            raise InvalidParameterError(
                f"Operand {name} must lie in 0..255 (unsigned 8-bit), got "
                f"{int(arr.min())}..{int(arr.max())}.")
        arrays.append(arr)
    aa, ww = np.broadcast_arrays(*arrays)
    return aa, ww


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """All operand pairs: int64 arrays (256, 256), A[i, j] = i (activation), W[i, j] = j."""
    v = np.arange(256, dtype=np.int64)
    return np.meshgrid(v, v, indexing="ij")


def _leading_one(x: np.ndarray) -> np.ndarray:
    """Position of the most significant 1 of each positive integer (-1 for 0), int64."""
    x = np.asarray(x, dtype=np.int64)
    pos = np.full(x.shape, -1, dtype=np.int64)
    for bit in range(16):
        pos = np.where(x >> bit > 0, bit, pos)
    return pos


def _column_rows() -> tuple[np.ndarray, np.ndarray]:
    """Index grids (8, 8) of the partial-product array: I = bit of a, J = bit of w."""
    idx = np.arange(BITS)
    return np.meshgrid(idx, idx, indexing="ij")


def _partial_product_sum(a: np.ndarray, w: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Sum of the kept partial-product bits: sum over keep[i, j] of a_i * w_j * 2**(i + j).

    ``keep`` is a bool array (8, 8) indexed [bit of a, bit of w]; the sum is computed exactly
    (all carries kept), as the remaining array of an array multiplier does.
    """
    total = np.zeros(np.broadcast_shapes(a.shape, w.shape), dtype=np.int64)
    for i in range(BITS):
        row_mask = int(sum(1 << j for j in range(BITS) if keep[i, j]))
        if row_mask:
            total += ((a >> i) & 1) * ((w & row_mask) << i)
    return total


def _dropped_mean(keep: np.ndarray) -> float:
    """Expected value of the removed partial-product bits for uniform random operands.

    Each bit ``a_i * w_j`` is 1 with probability 1/4 when ``a`` and ``w`` are uniform on
    0..255, so the expectation is ``sum over removed (i, j) of 2**(i + j) / 4``.
    """
    i, j = _column_rows()
    return float(np.sum(np.where(keep, 0, 2.0 ** (i + j))) / 4.0)


def _estimate(kept_cells: int, signed: bool = False) -> float:
    """Power estimate (mW): kept partial-product cells / 64 x the exact multiplier's power."""
    return kept_cells / 64 * EXACT_POWER_MW[signed]


# --------------------------------------------------------------------------------------
# Truncation and broken arrays


def truncation_keep(k: int) -> np.ndarray:
    """Kept partial-product bits of ``trunc:k``: bool (8, 8), True where ``i + j >= k``."""
    i, j = _column_rows()
    return (i + j) >= k


def truncation_correction(k: int) -> int:
    """Correction constant of ``trunc-c:k`` (Schulte & Swartzlander 1993).

    The expected value ``E_k`` of the removed bits for uniform operands,
    ``E_k = sum_{c < k} n_c * 2**c / 4`` (``n_c`` bits in column ``c``), rounded to the
    precision of the retained columns, i.e. to the nearest multiple of ``2**k`` (halves
    round up): ``C_k = 2**k * floor(E_k / 2**k + 1/2)``. Schulte & Swartzlander add the
    constant into the retained columns; the removed columns produce no bits at all. So
    ``C_1 = C_2 = 0`` (trunc-c:1 and :2 equal trunc:1 and :2), ``C_4 = 16``, ``C_6 = 64``.
    """
    e_k = _dropped_mean(truncation_keep(k))
    return (2**k) * int(np.floor(e_k / 2**k + 0.5))


def truncated(a: Any, w: Any, k: int, correction: bool = False) -> np.ndarray:
    """Truncated multiplier: the ``k`` least significant partial-product columns removed.

    Every bit ``a_i * w_j`` with ``i + j < k`` is dropped; the others are summed exactly
    (Lim 1992). With ``correction`` the constant :func:`truncation_correction` is added
    (Schulte & Swartzlander 1993). The result never exceeds 16 bits for k >= 1.

    Args:
        a, w: operand values 0..255 (integers or integer arrays, broadcast).
        k: number of removed columns, 0..15 (0: exact).
        correction: add the constant correction.

    Returns:
        int64 array of the products.
    """
    if not 0 <= int(k) <= 15:
        raise InvalidParameterError(f"trunc: k must lie in 0..15, got {k}.")
    aa, ww = _operands(a, w)
    out = _partial_product_sum(aa, ww, truncation_keep(int(k)))
    if correction:
        out = out + truncation_correction(int(k))
    return out


def broken_array_keep(hbl: int, vbl: int) -> np.ndarray:
    """Kept partial-product bits of ``bam:hbl,vbl``: bool (8, 8) [bit of a, bit of w]."""
    i, j = _column_rows()
    return (j >= hbl) & ((i + j) >= vbl)


def broken_array(a: Any, w: Any, hbl: int, vbl: int) -> np.ndarray:
    """Broken-array multiplier BAM(hbl, vbl) of Mahdiani et al. (IEEE TCAS-I 2010).

    In the array multiplier, row ``j`` (j = 0 the top, least significant row) adds the
    partial product ``a * w_j * 2**j`` of weight bit ``w_j``; the weight is the array's
    multiplier operand, the activation its multiplicand. The horizontal break level
    ``hbl`` omits the ``hbl`` top rows (the carry-save cells of rows ``j < hbl``, i.e. the
    partial products of weight bits ``w_0 .. w_{hbl-1}``); the vertical break level
    ``vbl`` omits every cell to the right of the vertical line, i.e. the bits of columns
    ``i + j < vbl``. So bit ``a_i * w_j`` is kept iff ``j >= hbl and i + j >= vbl``, and
    the kept bits are summed exactly. ``bam:0,V`` equals ``trunc:V``; ``bam:0,0`` is exact.
    The unit is not symmetric in ``a`` and ``w`` when ``hbl > 0``.

    Args:
        a, w: operand values 0..255 (integers or integer arrays, broadcast).
        hbl: horizontal break level, 0..7. vbl: vertical break level, 0..15.

    Returns:
        int64 array of the products.
    """
    if not 0 <= int(hbl) <= 7 or not 0 <= int(vbl) <= 15:
        raise InvalidParameterError(
            f"bam: hbl must lie in 0..7 and vbl in 0..15, got {hbl}, {vbl}.")
    aa, ww = _operands(a, w)
    return _partial_product_sum(aa, ww, broken_array_keep(int(hbl), int(vbl)))


# --------------------------------------------------------------------------------------
# Logarithmic and dynamic-range multipliers


def mitchell(a: Any, w: Any) -> np.ndarray:
    """Mitchell's logarithmic multiplier (IRE Trans. Electronic Computers, 1962), integers.

    An operand ``x > 0`` with leading one at ``k = floor(log2 x)`` is written
    ``x = 2**k * (1 + f)``, ``0 <= f < 1``; its approximate logarithm is ``k + f``. The
    product's logarithm ``(ka + kw) + (fa + fw)`` is turned back by the same piecewise
    linear antilogarithm: ``2**(ka + kw) * (1 + fa + fw)`` when ``fa + fw < 1``, else
    ``2**(ka + kw + 1) * (fa + fw)``. For integer operands the fractions carry ``ka`` and
    ``kw`` bits, so ``2**(ka + kw) * (fa + fw) = (a - 2**ka) * 2**kw + (w - 2**kw) * 2**ka``
    is an integer and the result is exact integer arithmetic: nothing is truncated
    (a floating-point evaluation floored toward zero gives the same table). A zero operand
    gives 0 (the logarithm of 0 does not exist; hardware uses a zero flag). The result
    never exceeds the exact product (all errors are <= 0); WCRE 1/9 = 11.1 % at
    ``fa = fw = 1/2``.
    """
    aa, ww = _operands(a, w)
    nonzero = (aa > 0) & (ww > 0)
    ka = np.where(nonzero, _leading_one(aa), 0)
    kw = np.where(nonzero, _leading_one(ww), 0)
    frac_sum = (aa - (1 << ka)) * (1 << kw) + (ww - (1 << kw)) * (1 << ka)  # 2**(ka+kw) * (fa+fw)
    scale = 1 << (ka + kw)
    out = np.where(frac_sum < scale, scale + frac_sum, 2 * frac_sum)
    return np.where(nonzero, out, 0)


def drum_operand(x: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """DRUM's reduction of an operand to its k-bit segment: (segment, shift), int64 arrays.

    An operand whose leading one is at position ``t >= k`` keeps bits ``t .. t-k+1``
    (``segment = x >> (t - k + 1)``) and the segment's least significant bit is set to 1
    (the unbiasing of DRUM: the expected value of the dropped bits); ``shift = t - k + 1``.
    An operand with ``t < k`` (``x < 2**k``, zero included) is used as is (shift 0).
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.maximum(_leading_one(x) - k + 1, 0)
    segment = x >> shift
    segment = np.where(shift > 0, segment | 1, segment)
    return segment, shift


def drum(a: Any, w: Any, k: int) -> np.ndarray:
    """DRUM(k), the dynamic range unbiased multiplier (Hashemi, Bahar, Reda, ICCAD 2015).

    Each operand is reduced to its k-bit leading segment with the segment's LSB set to 1
    (:func:`drum_operand`), the k x k segments are multiplied exactly, and the product is
    shifted back by the sum of the shifts: ``(sa * sw) << (ha + hw)``. Exact when both
    operands are below ``2**k``; 0 when either operand is 0. DRUM(8) is exact.

    Args:
        a, w: operand values 0..255. k: segment width, 2..8.
    """
    if not 2 <= int(k) <= 8:
        raise InvalidParameterError(f"drum: k must lie in 2..8, got {k}.")
    aa, ww = _operands(a, w)
    sa, ha = drum_operand(aa, int(k))
    sw, hw = drum_operand(ww, int(k))
    return (sa * sw) << (ha + hw)


# --------------------------------------------------------------------------------------
# Underdesigned and error-tolerant multipliers


def _kulkarni2(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Kulkarni's 2 x 2 block: exact except 3 * 3 = 7 (3 output bits instead of 4)."""
    return np.where((a == 3) & (w == 3), 7, a * w)


def _kulkarni_rec(a: np.ndarray, w: np.ndarray, bits: int) -> np.ndarray:
    if bits == 2:
        return _kulkarni2(a, w)
    half = bits // 2
    mask = (1 << half) - 1
    ah, al, wh, wl = a >> half, a & mask, w >> half, w & mask
    high = _kulkarni_rec(ah, wh, half)
    cross = _kulkarni_rec(ah, wl, half) + _kulkarni_rec(al, wh, half)
    low = _kulkarni_rec(al, wl, half)
    return (high << (2 * half)) + (cross << half) + low


def kulkarni(a: Any, w: Any) -> np.ndarray:
    """Kulkarni's underdesigned multiplier (Kulkarni, Gupta, Ercegovac, VLSI Design 2011).

    The 2 x 2 building block computes ``3 * 3 = 7`` (binary 111, three output bits) and
    every other 2-bit product exactly. A 2n x 2n multiplier is composed of four n x n
    ones by the paper's recursive decomposition with exact additions:
    ``a * w = (aH*wH) << 2n + (aH*wL + aL*wH) << n + aL*wL`` (``aH``, ``aL`` the high and
    low halves); 4 x 4 from 2 x 2 blocks, 8 x 8 from 4 x 4. Errors are never positive;
    zero operands give 0.
    """
    aa, ww = _operands(a, w)
    return _kulkarni_rec(aa, ww, BITS)


def etm_low_part(x: np.ndarray, y: np.ndarray, low_bits: int) -> np.ndarray:
    """The non-multiplication part of ETM for ``low_bits``-bit parts: int64 array.

    Kyaw et al.'s scheme on ``L = low_bits`` bits yields a ``2L``-bit result: scanning the
    bit positions from the most significant down, while both operand bits are 0 the result
    bit is 0; at the first position ``t`` where at least one bit is 1, that result bit and
    all lower ones are 1. The upper ``L`` result bits (positions ``L .. 2L-1``) mirror the
    ``L`` operand positions; the lower ``L`` bits are all 1 once any bit is 1. So with
    ``t`` the leading one of ``x | y``: ``((2**(t+1) - 1) << L) | (2**L - 1)``, and 0 when
    ``x | y == 0``.
    """
    either = np.asarray(x, dtype=np.int64) | np.asarray(y, dtype=np.int64)
    t = _leading_one(either)
    upper = ((1 << (t + 1)) - 1) << low_bits
    return np.where(either > 0, upper | ((1 << low_bits) - 1), 0)


def etm(a: Any, w: Any, k: int) -> np.ndarray:
    """Error-tolerant multiplier ETM (Kyaw, Goh, Yeo, EDSSC 2010) with a k-bit multiplication part.

    Each 8-bit operand is split into its ``k`` most significant bits (the multiplication
    part, ``aH``, ``wH``) and its ``L = 8 - k`` low bits (the non-multiplication part,
    ``aL``, ``wL``). A control block checks the multiplication parts:

    - both zero (``a < 2**L`` and ``w < 2**L``): the k x k multiplier multiplies the low
      parts exactly, ``aL * wL`` (so ``L <= k`` is required: k in 4..7);
    - otherwise: ``(aH * wH) << 2L`` from the exact k x k multiplier, and the low ``2L``
      product bits come from the non-multiplication part :func:`etm_low_part` of
      ``aL, wL``; the cross terms ``aH*wL + aL*wH`` are not computed.

    A zero operand does not give 0 (e.g. ``etm(0, 255, 4) == 255``): not exact on zero.
    """
    if not 4 <= int(k) <= 7:
        raise InvalidParameterError(f"etm: k must lie in 4..7, got {k}.")
    aa, ww = _operands(a, w)
    low = BITS - int(k)
    mask = (1 << low) - 1
    ah, al, wh, wl = aa >> low, aa & mask, ww >> low, ww & mask
    approx = ((ah * wh) << (2 * low)) + etm_low_part(al, wl, low)
    return np.where((ah == 0) & (wh == 0), al * wl, approx)


# --------------------------------------------------------------------------------------
# Units and their registration


def _unit(name: str, family: str, table: np.ndarray, citation: str, description: str, *,
          signed: bool = False, exact_on_zero: bool = True, power_mw: float | None = None,
          power_estimate: float | None = None) -> Multiplier:
    recorded: dict[str, float] = {}
    atol = 0.0
    if name in REFERENCE_FIGURES:
        recorded, atol = dict(REFERENCE_FIGURES[name]), REFERENCE_ATOL
    if family in ("exact", "exact-u"):
        recorded = {"mae": 0.0, "wce": 0.0, "ep_pct": 0.0, "mean_error": 0.0, "std_error": 0.0}
    return Multiplier(name=name, family=family, signed=signed, lut=table, citation=citation,
                      power_mw=power_mw, power_estimate=power_estimate, recorded=recorded,
                      recorded_atol=atol, description=description, exact_on_zero=exact_on_zero)


def _exact_factory(params: str | None) -> Multiplier:
    no_params("exact", params)
    return _unit("exact", "exact", exact_table(True), CITE_EXACT,
                 "exact signed int8 x int8 multiplier", signed=True,
                 power_mw=EXACT_POWER_MW[True])


def _exact_u_factory(params: str | None) -> Multiplier:
    no_params("exact-u", params)
    return _unit("exact-u", "exact-u", exact_table(False), CITE_EXACT,
                 "exact unsigned uint8 x uint8 multiplier", power_mw=EXACT_POWER_MW[False])


TRUNC_SYNTAX = "trunc:K with K in 0..15 (K least significant partial-product columns removed)"
TRUNC_C_SYNTAX = "trunc-c:K with K in 1..15 (truncation with constant correction)"
BAM_SYNTAX = "bam:H,V with H in 0..7 (rows omitted) and V in 0..15 (columns omitted)"
DRUM_SYNTAX = "drum:K with K in 2..8 (segment width)"
ETM_SYNTAX = "etm:K with K in 4..7 (bits of the multiplication part)"


def _trunc_factory(params: str | None) -> Multiplier:
    (k,) = parse_int_params("trunc", params, 1, [(0, 15)], TRUNC_SYNTAX)
    a, w = _grid()
    keep = truncation_keep(k)
    return _unit(f"trunc:{k}", "trunc", truncated(a, w, k), CITE_TRUNC,
                 f"truncated multiplier, {k} least significant columns removed",
                 power_estimate=_estimate(int(keep.sum())))


def _trunc_c_factory(params: str | None) -> Multiplier:
    (k,) = parse_int_params("trunc-c", params, 1, [(1, 15)], TRUNC_C_SYNTAX)
    a, w = _grid()
    keep = truncation_keep(k)
    c = truncation_correction(k)
    return _unit(f"trunc-c:{k}", "trunc-c", truncated(a, w, k, correction=True),
                 f"{CITE_TRUNC}; constant correction: {CITE_TRUNC_C}",
                 f"truncated multiplier, {k} columns removed, constant correction +{c}",
                 exact_on_zero=(c == 0), power_estimate=_estimate(int(keep.sum())))


def _bam_factory(params: str | None) -> Multiplier:
    hbl, vbl = parse_int_params("bam", params, 2, [(0, 7), (0, 15)], BAM_SYNTAX)
    a, w = _grid()
    keep = broken_array_keep(hbl, vbl)
    return _unit(f"bam:{hbl},{vbl}", "bam", broken_array(a, w, hbl, vbl), CITE_BAM,
                 f"broken-array multiplier, rows w0..w{hbl - 1} and columns < {vbl} omitted"
                 if hbl else f"broken-array multiplier, columns < {vbl} omitted",
                 power_estimate=_estimate(int(keep.sum())))


def _mitchell_factory(params: str | None) -> Multiplier:
    no_params("mitchell", params)
    a, w = _grid()
    return _unit("mitchell", "mitchell", mitchell(a, w), CITE_MITCHELL,
                 "Mitchell's logarithmic multiplier")


def _drum_factory(params: str | None) -> Multiplier:
    (k,) = parse_int_params("drum", params, 1, [(2, 8)], DRUM_SYNTAX)
    a, w = _grid()
    return _unit(f"drum:{k}", "drum", drum(a, w, k), CITE_DRUM,
                 f"DRUM, {k}-bit unbiased leading segments", power_estimate=_estimate(k * k))


def _kulkarni_factory(params: str | None) -> Multiplier:
    no_params("kulkarni", params)
    a, w = _grid()
    return _unit("kulkarni", "kulkarni", kulkarni(a, w), CITE_KULKARNI,
                 "Kulkarni's underdesigned multiplier (2x2 block: 3*3 = 7)")


def _etm_factory(params: str | None) -> Multiplier:
    (k,) = parse_int_params("etm", params, 1, [(4, 7)], ETM_SYNTAX)
    a, w = _grid()
    return _unit(f"etm:{k}", "etm", etm(a, w, k), CITE_ETM,
                 f"error-tolerant multiplier, {k}-bit multiplication part",
                 exact_on_zero=False, power_estimate=_estimate(k * k))


#: The standard parameters list_units() shows for each formula family.
STANDARD_UNITS: dict[str, tuple[str, ...]] = {
    "exact": ("exact",),
    "exact-u": ("exact-u",),
    "trunc": ("trunc:2", "trunc:4", "trunc:6", "trunc:8"),
    "trunc-c": ("trunc-c:4", "trunc-c:6", "trunc-c:8"),
    "bam": ("bam:2,4", "bam:0,6", "bam:2,8", "bam:4,8"),
    "mitchell": ("mitchell",),
    "drum": ("drum:3", "drum:4", "drum:5", "drum:6"),
    "kulkarni": ("kulkarni",),
    "etm": ("etm:4", "etm:5", "etm:6"),
}

_FAMILY_TABLE = (
    ("exact", _exact_factory, "exact signed int8 x int8", "exact"),
    ("exact-u", _exact_u_factory, "exact unsigned uint8 x uint8", "exact-u"),
    ("trunc", _trunc_factory, "truncated multiplier (Lim 1992)", TRUNC_SYNTAX),
    ("trunc-c", _trunc_c_factory,
     "truncated with constant correction (Schulte & Swartzlander 1993)", TRUNC_C_SYNTAX),
    ("bam", _bam_factory, "broken-array multiplier (Mahdiani et al. 2010)", BAM_SYNTAX),
    ("mitchell", _mitchell_factory, "logarithmic multiplier (Mitchell 1962)", "mitchell"),
    ("drum", _drum_factory, "dynamic range unbiased multiplier (Hashemi et al. 2015)",
     DRUM_SYNTAX),
    ("kulkarni", _kulkarni_factory, "underdesigned multiplier (Kulkarni et al. 2011)",
     "kulkarni"),
    ("etm", _etm_factory, "error-tolerant multiplier (Kyaw et al. 2010)", ETM_SYNTAX),
)

for _name, _factory, _description, _syntax in _FAMILY_TABLE:
    register_unit_family(_name, _factory, description=_description, syntax=_syntax,
                         standard=STANDARD_UNITS[_name], listing_order=10)
