"""Statistical fault injection: how many faults to inject for a given error margin.

Leveugle, Calvez, Maistri and Vanhauwaert, "Statistical fault injection: quantified error
and confidence", DATE 2009: to estimate a proportion (here: the probability that a fault
causes an SDC) from a sample of n faults drawn from a population of N possible faults, with
error margin e at a confidence level whose two-sided normal quantile is t,

    n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p)))

with p the expected proportion (0.5, the worst case, when nothing is known). For an unbounded
population this is t^2 p (1 - p) / e^2 (16,588 for e = 1 %, 99 % confidence).

The population of a single-fault campaign (`bitflip` with one fault per inference) is
elements x allowed bits of the site tensor (per sample) x images for an activation, and
elements x allowed bits for a weight or bias (one fault per trial). Multi-fault models
(a rate, a count above 1, stuck bits) have an unbounded population; their experiments are
the inferences (transient faults at activations) or the trials (everything drawn once per
trial). Faults are drawn independently (with replacement); for n much smaller than N this
is the formula's without-replacement sample to within rounding.

>>> sample_size(None, 0.01, 0.99)
16588
>>> sample_size(1000, 0.05, 0.95)
278
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import torch
from torch import nn

from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import cast_to_model
from approxmap.core.scenario import Scenario
from approxmap.faults.models import BitFault, BitFlip


def normal_quantile(confidence: float) -> float:
    """The two-sided standard normal quantile t of a confidence level (0.99 -> 2.5758)."""
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"The confidence must be in (0, 1). Got {confidence!r}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check(margin: float, p: float) -> None:
    if not 0 < margin < 1:
        raise InvalidParameterError(f"The error margin must be in (0, 1). Got {margin!r}.")
    if not 0 < p < 1:
        raise InvalidParameterError(f"The expected proportion p must be in (0, 1). Got {p!r}.")


def sample_size(population: int | None, margin: float, confidence: float,
                p: float = 0.5) -> int:
    """Faults to inject (Leveugle et al., DATE 2009), rounded up; never more than N.

    Args:
        population: N, the number of possible faults (None: unbounded).
        margin: e, the error margin as a fraction (0.01 = 1 percentage point).
        confidence: the confidence level as a fraction (0.99).
        p: the expected proportion (0.5: the worst case).

    Raises:
        InvalidParameterError: a margin, confidence or p outside (0, 1), N < 1.
    """
    _check(margin, p)
    t = normal_quantile(confidence)
    infinite = t * t * p * (1 - p) / (margin * margin)
    if population is None:
        return math.ceil(infinite - 1e-9)
    if population < 1:
        raise InvalidParameterError(f"The population must be >= 1 fault. Got {population}.")
    n = population / (1 + margin * margin * (population - 1) / (t * t * p * (1 - p)))
    return min(population, math.ceil(n - 1e-9))


def achieved_margin(sampled: int, population: int | None, confidence: float,
                    p: float = 0.5) -> float:
    """The error margin e that `sampled` faults give (the formula solved for e); 0 when the
    whole population was sampled."""
    if sampled <= 0:
        return math.inf
    t = normal_quantile(confidence)
    if population is None:
        return t * math.sqrt(p * (1 - p) / sampled)
    if sampled >= population or population <= 1:
        return 0.0
    return t * math.sqrt(p * (1 - p) * (population - sampled) / (sampled * (population - 1)))


@dataclass(frozen=True)
class PointSampling:
    """One scenario's fault space: `population` possible faults (None: unbounded),
    `per_trial` experiments per trial, `needed` for the margin, hence `trials_needed`.
    An experiment (`unit`) is one "fault" (single-fault models), one faulty "inference"
    (transient multi-fault models at activations) or one faulty "trial" (permanent faults,
    weights)."""

    scenario: str
    population: int | None
    per_trial: int
    needed: int
    trials_needed: int
    unit: str = "fault"


@dataclass(frozen=True)
class FaultSampling:
    """How many faults a campaign samples per point, out of how many possible.

    `trials` is the number of trials per point (computed, or given); `points` has one entry
    per scenario.
    """

    margin: float
    confidence: float
    p: float
    trials: int
    computed: bool
    points: list[PointSampling] = field(default_factory=list)

    def sampled(self, point: PointSampling) -> int:
        return self.trials * point.per_trial

    def margin_of(self, point: PointSampling) -> float:
        return achieved_margin(self.sampled(point), point.population, self.confidence, self.p)

    def summary(self) -> str:
        """One line: faults sampled out of possible, per point, and the margin reached."""
        if not self.points:
            return "no fault scenarios"
        sampled = sorted({self.sampled(p) for p in self.points})
        worst = max(self.margin_of(p) for p in self.points)
        count = f"{sampled[0]:,}" if len(sampled) == 1 else f"{sampled[0]:,} to {sampled[-1]:,}"
        singles = [p.population for p in self.points if p.population is not None]
        parts = []
        if singles:
            low, high = min(singles), max(singles)
            possible = f"{low:,}" if low == high else f"{low:,} to {high:,}"
            parts.append(f"{count} faults sampled per point out of {possible} possible")
        for unit in sorted({p.unit for p in self.points if p.population is None}):
            parts.append(f"{count} faulty {unit}s per point (multi-fault model: the fault "
                         "space is unbounded)")
        how = "computed for" if self.computed else "given; reaching"
        return (f"{self.trials} trials per point ({how} a margin of ±{100 * worst:.3g} pp at "
                f"{100 * self.confidence:g} % confidence, Leveugle et al. 2009): "
                + "; ".join(parts))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for point, raw in zip(self.points, data["points"], strict=True):
            raw["sampled"] = self.sampled(point)
            raw["margin"] = self.margin_of(point)
        data["summary"] = self.summary()
        return data


def site_sizes(model: nn.Module, data: EvalData, scenarios: Sequence[Scenario]
               ) -> dict[str, int]:
    """Elements of each site's tensor (per sample for activations, whole for parameters),
    measured on one sample by the targets' own `observed` / `static_tensor`."""
    modules = dict(model.named_modules())
    sizes: dict[str, int] = {}
    handles = []
    sites = {site.key: site for s in scenarios for site in s.sites}
    for site in sites.values():
        module = site.check(model)
        static = site.kind.static_tensor(site, module)
        if static is not None:
            sizes[site.key] = static.numel()
            continue

        def hook(mod, args, output, site=site):
            if site.key not in sizes:
                seen = site.kind.observed(site, args, output)
                if seen is not None:
                    sizes[site.key] = seen.numel() // max(len(seen), 1)

        handles.append(modules[site.module].register_forward_hook(hook))
    if handles:
        was_training = model.training
        try:
            with torch.no_grad():
                model.eval()(cast_to_model(model, data.sample(1)))
        finally:
            model.train(was_training)
            for handle in handles:
                handle.remove()
    missing = [key for key in sites if key not in sizes]
    if missing:
        raise InvalidParameterError(f"Site {missing[0]} did not run on a sample of the data.")
    return sizes


def plan_fault_sampling(model: nn.Module, data: EvalData, scenarios: Sequence[Scenario],
                        margin: float = 0.01, confidence: float = 0.99, p: float = 0.5,
                        trials: int | None = None) -> FaultSampling:
    """The trials per point for a margin (trials=None), or what given trials sample.

    Every scenario must inject bit faults (`bitflip`, `stuckbit`) at one site.

    Args:
        model, data: the network and the evaluation data (images = len(data)).
        scenarios: e.g. `[spec.scenario(layer, value) for ...]` of a profile.
        margin, confidence, p: see `sample_size`.
        trials: None: computed, the largest number any scenario needs; else taken as given.

    Raises:
        InvalidParameterError: a scenario that is not a single bit-fault injection, an
            invalid margin or confidence.
    """
    _check(margin, p)
    normal_quantile(confidence)
    images = len(data)
    sizes = site_sizes(model, data, scenarios)
    points = []
    for scenario in scenarios:
        if len(scenario.injections) != 1 or not isinstance(scenario.injections[0][1], BitFault):
            raise InvalidParameterError(
                f"Fault sampling applies to one bit fault per scenario; got {scenario.key}.")
        site, error = scenario.injections[0]
        per_sample = error.per == "sample" or (error.per == "auto" and not site.is_parameter)
        single = isinstance(error, BitFlip) and error.faults_per_sample() == 1
        if single:
            population = sizes[site.key] * len(error.positions) * (images if per_sample else 1)
            per_trial, unit = images if per_sample else 1, "fault"
        else:
            transient = isinstance(error, BitFlip) and per_sample
            population = None
            per_trial, unit = (images, "inference") if transient else (1, "trial")
        needed = sample_size(population, margin, confidence, p)
        points.append(PointSampling(scenario.key, population, per_trial, needed,
                                    max(1, math.ceil(needed / per_trial)), unit))
    chosen = trials if trials is not None else max((pt.trials_needed for pt in points), default=1)
    return FaultSampling(margin, confidence, p, chosen, trials is None, points)


__all__ = ["FaultSampling", "PointSampling", "achieved_margin", "normal_quantile",
           "plan_fault_sampling", "sample_size", "site_sizes"]
