"""Interval estimates for accuracies measured over repeated trials.

- `mean_ci`: the Student-t confidence interval of the mean of per-trial accuracies.
- `wilson`: the Wilson score interval of a binomial proportion (Wilson, JASA 1927), used for
  pooled counts (accuracy over all trials' samples, SDC and DUE rates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _stats

Z95 = 1.959963984540054


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean (half-width 0 for one value).

    Returns:
        (mean, low, high) as Python floats; NaN for no values.
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, mean, mean
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = float(_stats.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    return mean, mean - half, mean + half


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if total <= 0:
        return math.nan, math.nan
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Summary:
    """Statistics of one scenario over its trials; accuracies are fractions in [0, 1]."""

    scenario: str
    trials: int
    accuracy: float
    ci_low: float
    ci_high: float
    wilson_low: float
    wilson_high: float
    top5: float
    agreement: float
    nonfinite: int
    loss: float
    samples: int = 0
    sdc: int = 0
    masked: int = 0

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    @property
    def sdc_rate(self) -> float:
        """Fraction of evaluated samples with a silent data corruption (top-1 changed)."""
        return self.sdc / self.samples if self.samples else float("nan")

    @property
    def due_rate(self) -> float:
        """Fraction of evaluated samples with a NaN/Inf output (DUE-like)."""
        return self.nonfinite / self.samples if self.samples else float("nan")
