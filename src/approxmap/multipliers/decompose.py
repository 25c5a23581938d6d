"""Split a product table into exact low-rank terms and a residual table (found generically).

A product table ``P[i, w]`` (activation index i in 0..255, weight code w in -127..127; see
`tables.product_table`) is written as

    P[i, w] = c(w) + sum_r 2^shift_r * u_r(i) * z_r(w) + R[i, w]        for every valid i

with integer vectors: ``u_r`` (a feature of the activation index whose values span at most
256 consecutive integers, so that it fits a (centred) 8-bit plane), ``z_r`` (a function of the
weight code in -128..127, an int8 weight) and the residual ``R``. Summed over a layer's
reduction, each term is one exact integer convolution of the feature plane ``u_r(i)`` with
the weights ``z_r(w)``, ``c`` is a per-output-channel constant, and only ``R`` needs a table
lookup (an embedding-bag sum; see `kernels`).

Detection, with no per-family code:

- If ``P`` is *linear in the bits of the activation index* -- ``P[i, w] = c(w) +
  sum_b bit_b(i) h_b(w)``, read off index 129 and its 8 one-bit neighbours (valid for both
  codings) and verified in integers on every valid row -- the
  table is fully structured: R = 0. This holds for the exact product, for units made by
  removing partial products (truncated, broken-array; signed ones in two's complement, whose
  index bits are those of the int8 code with the top bit flipped) and for all signed tables of
  EvoApproxLib. Each nonzero ``h_b = 2^t z_b`` becomes a term on bit b; terms with identical
  ``z`` (up to sign) are merged into one multi-bit feature while its span stays <= 255 (the
  exact product merges into a single term ``u = i``); a ``z`` wider than int8 is split into
  balanced base-128 digits.
- Otherwise: one exact term (``u = i``, ``z = w``; ``c(w) = -offset * w``) and the residual
  ``R = P - v(i) * w``, the error of the unit. If R has a small rank and factors over
  integers on a basis of its own columns or rows, e.g. ``R = sum_j R[:, w_j] * C[j, :]``
  with integer C (true for 25 of the 53 unsigned EvoApprox tables, e.g. mul8u_125K, 2P7,
  14VP, QJD, 96D, R36), its terms are planes too (split into digits when wide) as long as
  there are at most `MAX_TERMS` terms; else R goes to table lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from approxmap.multipliers.products import WEIGHT_CODES, WEIGHT_MAX

BITS = 8
INT8_MIN, INT8_MAX = -128, 127
FEATURE_SPAN = 255
BASE_ROW = 129
MAX_TERMS = 32  # planes beyond which table lookups are about as fast (~45 on vgg-small)


@dataclass(frozen=True, eq=False)
class Term:
    """One exact term 2^shift * u(i) * z(w).

    Attributes:
        feature: (256,) int64, u(i) for every activation index (invalid rows: any value).
        weight: (255,) int64 in -128..127, z(w) at column w + 127.
        shift: power-of-two multiplier of the term.
    """

    feature: np.ndarray
    weight: np.ndarray
    shift: int


@dataclass(frozen=True, eq=False)
class Decomposition:
    """``P = constant(w) + sum of terms + residual`` on the valid activation rows.

    Attributes:
        constant: (255,) int64, c(w).
        terms: the exact terms.
        residual: (256, 255) int64, or None when the table is fully structured.
        valid: (256,) bool, activation indices that can occur.
        bit_linear: whether P is linear in the bits of the activation index.
    """

    constant: np.ndarray
    terms: tuple[Term, ...]
    residual: np.ndarray | None
    valid: np.ndarray
    bit_linear: bool

    def reconstruct(self) -> np.ndarray:
        """The (256, 255) table the decomposition represents (valid rows are exact)."""
        out = np.broadcast_to(self.constant, (256, WEIGHT_CODES)).astype(np.int64)
        for t in self.terms:
            out = out + (np.outer(t.feature, t.weight) << t.shift)
        if self.residual is not None:
            out = out + self.residual
        return out


def index_bits() -> np.ndarray:
    """(256, 8) int64: bit b of activation index i."""
    return (np.arange(256)[:, None] >> np.arange(BITS)[None, :]) & 1


def _fits_int8(z: np.ndarray) -> bool:
    return bool(z.min() >= INT8_MIN and z.max() <= INT8_MAX)


def _two_adic(values: np.ndarray, cap: int) -> int:
    """Largest t <= cap with 2^t dividing every entry (values not all zero)."""
    nonzero = values[values != 0]
    t = 0
    while t < cap and not np.any(nonzero & ((1 << (t + 1)) - 1)):
        t += 1
    return t


def _digits(z: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Balanced base-128 digits of an integer vector: z = sum_d digit_d * 128^d."""
    out: list[tuple[np.ndarray, int]] = []
    shift = 0
    while not _fits_int8(z):
        low = ((z + 64) % 128) - 64
        out.append((low, shift))
        z = (z - low) // 128
        shift += 7
    out.append((z, shift))
    return [(d, s) for d, s in out if np.any(d)]


def _feature_digits(feature: np.ndarray, valid: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Base-256 digits of a feature until the last spans <= 255: f = sum_d f_d * 256^d."""
    out: list[tuple[np.ndarray, int]] = []
    shift = 0
    while int(feature[valid].max() - feature[valid].min()) > FEATURE_SPAN:
        low = feature % 256
        out.append((low, shift))
        feature = (feature - low) // 256
        shift += 8
    out.append((feature, shift))
    return [(d, s) for d, s in out if np.any(d[valid])]


def _power_of_two_first(values: np.ndarray) -> list[int]:
    """Indices ordered: values +-2^b first, then by magnitude, positive first."""
    mag = np.abs(values)
    return sorted(range(len(values)),
                  key=lambda j: (not (mag[j] and mag[j] & (mag[j] - 1) == 0), mag[j], values[j] < 0))


def _integer_factor(m: np.ndarray, order: list[int],
                    max_rank: int) -> tuple[list[int], np.ndarray] | None:
    """``m = m[:, basis] @ coef`` with integer coef, basis picked greedily in `order`.

    Gram-Schmidt keeps each column (in `order`) with a component outside the span so far;
    None when the rank exceeds max_rank or the coefficients are not integers (checked
    exactly).
    """
    dense = m.astype(np.float64)
    basis: list[int] = []
    ortho = np.zeros((dense.shape[0], 0))
    for j in order:  # level-1/2 operations only: cheap, and no BLAS threads
        col = dense[:, j]
        rest = col - ortho @ (ortho.T @ col)
        norm = float(np.linalg.norm(rest))
        if norm > 1e-7 * max(1.0, float(np.linalg.norm(col))):
            if len(basis) == max_rank:
                return None
            basis.append(j)
            ortho = np.concatenate([ortho, (rest / norm)[:, None]], axis=1)
    if not basis:
        return None
    # m[:, basis] = Q T with Q orthonormal: coef = T^-1 Q^T m, rounded, then checked exactly
    tri = ortho.T @ dense[:, basis]
    coef = np.rint(np.linalg.solve(tri, ortho.T @ dense)).astype(np.int64)
    if not np.array_equal(m[:, basis] @ coef, m):
        return None
    return basis, coef


def _low_rank_terms(residual: np.ndarray, valid: np.ndarray, max_terms: int) -> list[Term] | None:
    """Terms of an integer low-rank factorization of the residual, or None.

    Two factorizations are tried, over a basis of R's own columns (``R = sum_j R[:, w_j] *
    C[j, :]``: features are residual columns, weights integer coefficients) and of its rows
    (``R = sum_j C[:, j] * R[i_j, :]``: features are coefficients, weights residual rows),
    each basis chosen greedily (operands +-2^b first, then by magnitude). The one with fewer
    terms is kept, after splitting features into base-256 and weights into base-128 digits,
    if it has at most ``max_terms`` terms.
    """
    rows = residual[valid]
    index = np.flatnonzero(valid)
    w = np.arange(-WEIGHT_MAX, WEIGHT_MAX + 1)
    candidates: list[list[tuple[np.ndarray, np.ndarray]]] = []
    by_column = _integer_factor(rows, _power_of_two_first(w), max_terms)
    if by_column is not None:
        basis, coef = by_column
        candidates.append([(np.where(valid, residual[:, col], 0), coef[j])
                           for j, col in enumerate(basis)])
    by_row = _integer_factor(rows.T, _power_of_two_first(index), max_terms)
    if by_row is not None:
        basis, coef = by_row  # rows.T = rows.T[:, basis] @ coef
        pairs = []
        for j, r in enumerate(basis):
            feature = np.zeros(256, dtype=np.int64)
            feature[index] = coef[j]
            pairs.append((feature, rows[r]))
        candidates.append(pairs)
    best = None
    for pairs in candidates:
        terms = [Term(f, z, zs + fs) for feature, weight in pairs
                 for z, zs in _digits(weight) for f, fs in _feature_digits(feature, valid)]
        if len(terms) <= max_terms and (best is None or len(terms) < len(best)):
            best = terms
    return best


def _bit_terms(h: np.ndarray, valid: np.ndarray) -> list[Term]:
    """Terms from the bit coefficients h (8, 255), merged on identical weight vectors."""
    bits = index_bits()
    raw: list[tuple[int, int, np.ndarray, int]] = []  # (bit, sign, z, shift)
    for b in range(BITS):
        if not np.any(h[b]):
            continue
        t = _two_adic(h[b], 7)
        scaled = h[b] >> t
        # orient z to correlate positively with w (merges z with -z) ...
        corr = int(scaled @ np.arange(-WEIGHT_MAX, WEIGHT_MAX + 1))
        sign = (1 if corr > 0 else -1) if corr else (
            1 if scaled[np.flatnonzero(scaled)[0]] > 0 else -1)
        if not _fits_int8(scaled * sign) and _fits_int8(scaled):
            sign = 1  # ... unless only one of them is an int8 vector
        for z, s in _digits(scaled * sign):
            raw.append((b, sign, z, s + t))
    groups: dict[bytes, list[tuple[int, int, int]]] = {}
    vectors: dict[bytes, np.ndarray] = {}
    for b, sign, z, shift in raw:
        key = z.tobytes()
        groups.setdefault(key, []).append((shift, b, sign))
        vectors[key] = z
    terms: list[Term] = []
    for key, members in groups.items():
        members.sort()
        current: list[tuple[int, int, int]] = []
        for member in members + [None]:  # type: ignore[list-item]
            if member is not None:
                trial = current + [member]
                base = trial[0][0]
                feature = sum(sign * (bits[:, b] << (s - base)) for s, b, sign in trial)
                span = int(feature[valid].max() - feature[valid].min())
                if span <= FEATURE_SPAN and all(s - base < 8 for s, _, _ in trial):
                    current = trial
                    continue
            if current:
                base = current[0][0]
                feature = sum(sign * (bits[:, b] << (s - base)) for s, b, sign in current)
                terms.append(Term(np.asarray(feature, dtype=np.int64), vectors[key], base))
            current = [member] if member is not None else []
    return terms


def decompose(product: np.ndarray, valid: np.ndarray, offset: int,
              max_terms: int = MAX_TERMS) -> Decomposition:
    """Decompose a (256, 255) int64 product table (see module doc).

    Args:
        product: ``P[i, w + 127]``.
        valid: (256,) bool, the activation indices that can occur (rows outside are ignored).
        offset: operand value offset, v(i) = i - offset (for the generic split).
        max_terms: most terms (exact one included) of a low-rank split of an unstructured
            table; beyond, the residual goes to table lookups. 1 disables the split.
    """
    product = np.asarray(product, dtype=np.int64)
    design = np.concatenate([np.ones((256, 1), np.int64), index_bits()], axis=1)
    rows = np.flatnonzero(valid)
    # the candidate bit coefficients from a base row and its 8 one-bit neighbours (129 and
    # its neighbours are valid for uint8 and int8 codes), then an exact integer check
    base = BASE_ROW
    coef = np.empty((BITS + 1, product.shape[1]), dtype=np.int64)
    for b in range(BITS):
        step = product[base ^ (1 << b)] - product[base]
        coef[b + 1] = -step if base >> b & 1 else step
    coef[0] = product[base] - design[base, 1:] @ coef[1:]
    if np.array_equal(design[rows] @ coef, product[rows]):
        terms = tuple(_bit_terms(coef[1:], valid))
        return Decomposition(coef[0].copy(), terms, None, valid.copy(), True)
    w = np.arange(-WEIGHT_MAX, WEIGHT_MAX + 1)
    exact = Term(np.arange(256, dtype=np.int64), w.astype(np.int64), 0)
    residual = product - np.outer(np.arange(256) - offset, w)
    residual[~valid] = 0
    constant = -offset * w.astype(np.int64)
    low_rank = _low_rank_terms(residual, valid, max_terms - 1)
    if low_rank is not None:
        return Decomposition(constant, (exact, *low_rank), None, valid.copy(), False)
    return Decomposition(constant, (exact,), residual, valid.copy(), False)
