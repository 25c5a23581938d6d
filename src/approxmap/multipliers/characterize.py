"""Error metrics of a multiplier unit, over all operand pairs or under an operand distribution.

With ``e = approx - exact`` over the 65,536 operand pairs (index layout of the unit) and a
probability ``P(a, w)`` of each pair (uniform by default):

- ``mean_error`` = sum P e, ``std_error`` = sqrt(sum P (e - mean_error)**2) (population),
- ``mae`` = sum P |e| (mean absolute error), ``mse`` = sum P e**2,
- ``wce`` = max |e| over the pairs with P > 0 (worst-case error),
- ``mred_pct`` = 100 * sum P |e| / |exact| / sum P, both sums over pairs with exact != 0
  (mean relative error distance, Liang, Han, Lombardi, "New metrics for the reliability
  of approximate and probabilistic adders", IEEE Trans. Computers 62(9), 2013; the pairs
  with an exact product of 0 have no relative error and are left out),
- ``wcre_pct`` = 100 * max |e| / |exact| over the pairs with P > 0 and exact != 0,
- ``ep_pct`` = 100 * sum over e != 0 of P (error probability).

With uniform P these are the MAE, WCE, MRE, EP figures of EvoApproxLib (Mrazek et al.,
"EvoApprox8b", DATE 2017), which this module reproduces exactly from the tables. MRED and
WCRE are NaN when no probability mass lies on a nonzero exact product.

A layer sees a distribution of operands: :func:`operand_histograms` turns the integer
activation and weight codes of a layer into the two 256-bin marginals, and
``characterize(unit, weights=(p_a, p_w))`` weighs every pair by ``p_a[a] * p_w[w]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from approxmap.core.exceptions import InvalidParameterError
from approxmap.multipliers.units import Multiplier, create_unit, exact_table


@dataclass(frozen=True)
class UnitMetrics:
    """Error metrics of one unit (definitions in the module docstring).

    Attributes:
        unit: the unit's canonical name. weighted: whether a distribution was given.
        mean_error, std_error, mae, mse, wce: in product units (the integer scale of the
            16-bit product). mred_pct, wcre_pct, ep_pct: percentages.
    """

    unit: str
    weighted: bool
    mean_error: float
    std_error: float
    mae: float
    mse: float
    wce: float
    mred_pct: float
    wcre_pct: float
    ep_pct: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready: NaN becomes None)."""
        out = asdict(self)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in out.items()}


def _as_numpy(values: Any, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype.kind not in "iuf":
        raise InvalidParameterError(f"{what} must be numeric, got {arr.dtype}.")
    return arr


def joint_distribution(weights: Any) -> np.ndarray:
    """Normalize ``weights`` to a joint probability over the index layout: float64 (256, 256).

    Args:
        weights: a non-negative (256, 256) array (numpy or torch) in the unit's index
            layout (``[a_index, w_index]``), or a pair ``(p_a, p_w)`` of non-negative
            arrays of shape (256,) (marginals of activation and weight indices, treated as
            independent: ``P = outer(p_a, p_w)``). Need not be normalized.

    Raises:
        InvalidParameterError: wrong shape, negative or non-finite entries, zero total.
    """
    if isinstance(weights, tuple | list):
        if len(weights) != 2:
            raise InvalidParameterError(
                "weights must be a (256, 256) matrix or a pair (p_a, p_w) of 256-bin "
                f"marginals, got a sequence of {len(weights)}.")
        p_a = _as_numpy(weights[0], "p_a").astype(np.float64)
        p_w = _as_numpy(weights[1], "p_w").astype(np.float64)
        if p_a.shape != (256,) or p_w.shape != (256,):
            raise InvalidParameterError(
                f"Marginals must have shape (256,), got {p_a.shape} and {p_w.shape}.")
        joint = np.multiply.outer(p_a, p_w)
        parts = (p_a, p_w)
    else:
        joint = _as_numpy(weights, "weights").astype(np.float64)
        if joint.shape != (256, 256):
            raise InvalidParameterError(
                f"A joint distribution must have shape (256, 256), got {joint.shape}.")
        parts = (joint,)
    for part in parts:
        if not np.all(np.isfinite(part)) or np.any(part < 0):
            raise InvalidParameterError("weights must be finite and non-negative.")
    total = joint.sum()
    if not total > 0:
        raise InvalidParameterError("weights sum to zero: no operand pair is possible.")
    return joint / total


def characterize(unit: Multiplier | str, weights: Any = None) -> UnitMetrics:
    """Error metrics of ``unit`` over all 65,536 operand pairs, or weighted by a distribution.

    Args:
        unit: a Multiplier or a spec string (``create_unit``).
        weights: None (every pair equally likely), a (256, 256) joint probability in the
            unit's index layout, or marginals ``(p_a, p_w)`` (see :func:`joint_distribution`).

    Returns:
        UnitMetrics (definitions in the module docstring).

    Raises:
        InvalidParameterError: bad weights; errors of ``create_unit`` for a bad spec.
    """
    unit = create_unit(unit)
    error = unit.lut.astype(np.int64) - exact_table(unit.signed)
    exact = np.abs(exact_table(unit.signed))
    abs_err = np.abs(error)
    nonzero = exact != 0
    if weights is None:
        prob = None
        red = abs_err[nonzero] / exact[nonzero]
        mean = float(error.mean())
        metrics = dict(
            mean_error=mean, std_error=float(error.std()), mae=float(abs_err.mean()),
            mse=float(np.mean(error.astype(np.float64) ** 2)), wce=float(abs_err.max()),
            mred_pct=float(red.mean() * 100), wcre_pct=float(red.max() * 100),
            ep_pct=float(np.count_nonzero(error) / error.size * 100))
    else:
        prob = joint_distribution(weights)
        err = error.astype(np.float64)
        mean = float(np.sum(prob * err))
        support = prob > 0
        rel_support = support & nonzero
        rel_mass = float(prob[rel_support].sum())
        red = abs_err[rel_support] / exact[rel_support]
        metrics = dict(
            mean_error=mean,
            std_error=float(np.sqrt(max(np.sum(prob * (err - mean) ** 2), 0.0))),
            mae=float(np.sum(prob * abs_err)), mse=float(np.sum(prob * err**2)),
            wce=float(abs_err[support].max()),
            mred_pct=(float(np.sum(prob[rel_support] * red) / rel_mass * 100)
                      if rel_mass > 0 else math.nan),
            wcre_pct=float(red.max() * 100) if red.size else math.nan,
            ep_pct=float(prob[error != 0].sum() * 100))
    return UnitMetrics(unit=unit.name, weighted=prob is not None, **metrics)


def operand_histograms(a_codes: Any, w_codes: Any, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """256-bin histograms of a layer's activation and weight codes, in the index layout.

    Args:
        a_codes, w_codes: integer numpy arrays or torch tensors (any shape) of operand
            values: -128..127 when ``signed`` (bin = value + 128), else 0..255 (bin = value).
        signed: the signedness of the unit the histograms are meant for.

    Returns:
        ``(p_a, p_w)``: float64 arrays of shape (256,), each summing to 1 (the relative
        frequency of each code), ready for ``characterize(unit, weights=(p_a, p_w))``.

    Raises:
        InvalidParameterError: non-integer codes, codes out of range, or no codes.
    """
    lo, hi = (-128, 127) if signed else (0, 255)
    out = []
    for codes, what in ((a_codes, "activation codes"), (w_codes, "weight codes")):
        arr = _as_numpy(codes, what)
        if arr.dtype.kind not in "iu":
            raise InvalidParameterError(f"{what} must be integers, got {arr.dtype}.")
        if arr.size == 0:
            raise InvalidParameterError(f"{what} are empty.")
        arr = arr.astype(np.int64, copy=False).ravel()
        if int(arr.min()) < lo or int(arr.max()) > hi:
            raise InvalidParameterError(
                f"{what} must lie in {lo}..{hi} for a {'signed' if signed else 'unsigned'} "
                f"unit, got {int(arr.min())}..{int(arr.max())}.")
        counts = np.bincount(arr - lo, minlength=256).astype(np.float64)
        out.append(counts / counts.sum())
    return out[0], out[1]
