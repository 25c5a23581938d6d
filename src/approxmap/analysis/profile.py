"""The layer-wise resilience profile: accuracy against error magnitude, per layer alone.

>>> profile = profile_layers(model, data, ProfileSpec(sweep=(0.0, 0.5, 1.0)), trials=5)  # doctest: +SKIP
>>> [(layer["name"], layer["threshold"]) for layer in profile["layers"]]                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from approxmap.analysis.layers import layer_table
from approxmap.analysis.stats import Summary
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.scenario import Scenario
from approxmap.campaign.store import Store
from approxmap.engine.local import LocalEngine
from approxmap.errors import ErrorModel, Gaussian, StuckAt, Uniform
from approxmap.exceptions import InvalidParameterError
from approxmap.sites import TARGETS, Site, select_layers
from approxmap.zoo.datasets import EvalData

ERROR_KINDS = {"gaussian": Gaussian, "uniform": Uniform, "stuck": StuckAt}
DEFAULT_SWEEP = {"gaussian": (0.0, 0.1, 0.2, 0.5, 1.0, 2.0),
                 "uniform": (0.0, 0.1, 0.2, 0.5, 1.0, 2.0),
                 "stuck": (0.0, 0.001, 0.01, 0.05, 0.1, 0.5)}


@dataclass(frozen=True)
class ProfileSpec:
    """What to sweep: layers, where to inject, which error and over which magnitudes.

    The swept magnitude is the error's std for gaussian/uniform and the hit rate for stuck.
    `scale="rel"` measures std and mean in units of the std of each site's clean values.
    """

    layers: tuple[str, ...] | None = None
    site: str = "output"
    error: str = "gaussian"
    sweep: tuple[float, ...] | None = None
    means: tuple[float, ...] = (0.0,)
    rate: float = 1.0
    value: float = 0.0
    scale: str = "rel"
    budget_pp: float = 1.0
    refine_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error not in ERROR_KINDS:
            raise InvalidParameterError(
                f"--error must be one of {', '.join(ERROR_KINDS)}. Got {self.error!r}.")
        if self.site not in TARGETS:
            raise InvalidParameterError(f"--site must be one of {', '.join(TARGETS)}. Got {self.site!r}.")
        sweep = tuple(sorted(set(self.sweep if self.sweep is not None else DEFAULT_SWEEP[self.error])))
        object.__setattr__(self, "sweep", sweep)
        object.__setattr__(self, "means", tuple(dict.fromkeys(self.means)) or (0.0,))
        if not 0 <= self.budget_pp <= 100:
            raise InvalidParameterError(f"--budget must be in [0, 100] percentage points. Got {self.budget_pp}.")
        if self.refine_steps < 0:
            raise InvalidParameterError(f"refine steps must be >= 0. Got {self.refine_steps}.")
        if self.error == "stuck" and self.means != (0.0,):
            raise InvalidParameterError("--mean applies to gaussian and uniform errors, not stuck.")
        for magnitude in self.sweep:  # validates ranges through the error models themselves
            for mean in self.means:
                self.error_model(magnitude, mean)

    @property
    def curve_mean(self) -> float:
        """The mean of the per-layer curves and thresholds: 0 if swept, else the first."""
        return 0.0 if 0.0 in self.means else self.means[0]

    @property
    def axis(self) -> str:
        return "rate" if self.error == "stuck" else "sigma"

    def error_model(self, magnitude: float, mean: float = 0.0) -> ErrorModel:
        if self.error == "stuck":
            return StuckAt(value=self.value, rate=magnitude, scale=self.scale)
        return ERROR_KINDS[self.error](std=magnitude, mean=mean, rate=self.rate, scale=self.scale)

    def scenario(self, layer: str, magnitude: float, mean: float = 0.0) -> Scenario:
        return Scenario.single(Site(layer, self.site), self.error_model(magnitude, mean))


def profile_layers(model: nn.Module, data: EvalData, spec: ProfileSpec | None = None, *,
                   trials: int = 10, seed: int = 0, storage: str | Store | None = None,
                   batch_size: int = 256, ci_target: float | None = None,
                   max_trials: int | None = None, engine: LocalEngine | None = None,
                   names: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the layer-wise resilience analysis and return the profile (profile.json's content).

    `names` may give {"model": ..., "dataset": ...} for the record; they join the campaign's
    setup, so a store never mixes results of different models or datasets.
    """
    spec = spec or ProfileSpec()
    layers = select_layers(model, spec.layers)
    names = {"model": "custom", "dataset": data.name, **(names or {})}
    campaign = Campaign(model, data, trials=trials, seed=seed, storage=storage, name="profile",
                        batch_size=batch_size, ci_target=ci_target, max_trials=max_trials,
                        setup=dict(names))
    try:
        campaign.add_scenarios(spec.scenario(layer, m, mean)
                               for layer in layers for mean in spec.means for m in spec.sweep)
        campaign.run(engine)
        extra = _refine(campaign, spec, layers, engine) if spec.refine_steps else {}
        return _assemble(campaign, spec, model, data, layers, names, extra)
    finally:
        if not isinstance(storage, Store):  # a store opened here is closed here
            campaign.store.close()


def _points(campaign: Campaign, spec: ProfileSpec, layer: str, mean: float,
            magnitudes: Sequence[float]) -> list[dict[str, Any]]:
    keys = [spec.scenario(layer, m, mean).key for m in magnitudes]
    return [_point(spec, m, mean, s) for m, s in zip(magnitudes, campaign.summaries(keys), strict=True)]


def _point(spec: ProfileSpec, magnitude: float, mean: float, s: Summary) -> dict[str, Any]:
    sigma = None if spec.error == "stuck" else magnitude
    rate = magnitude if spec.error == "stuck" else spec.rate
    return {"sigma": sigma, "mean": mean, "rate": rate, "magnitude": magnitude,
            "accuracy": s.accuracy, "ci_low": s.ci_low, "ci_high": s.ci_high,
            "wilson_low": s.wilson_low, "wilson_high": s.wilson_high, "top5": s.top5,
            "agreement": s.agreement, "nonfinite": s.nonfinite, "loss": _finite(s.loss),
            "trials": s.trials}


def tolerance(points: Sequence[dict], clean: float, budget_pp: float) -> tuple[float | None, bool, float | None]:
    """(threshold, censored, first failing magnitude) from points sorted by magnitude.

    The threshold is the largest magnitude before the first one whose mean accuracy drops
    more than the budget below the clean accuracy; censored when none fails.
    """
    passing = None
    for point in points:
        if (clean - point["accuracy"]) * 100 > budget_pp + 1e-9:
            return passing, False, point["magnitude"]
        passing = point["magnitude"]
    return passing, True, None


def _refine(campaign: Campaign, spec: ProfileSpec, layers: list[str],
            engine: LocalEngine | None) -> dict[str, list[float]]:
    """Bisect each layer's threshold interval `refine_steps` times; returns added magnitudes."""
    clean, mean = campaign.clean_accuracy(), spec.curve_mean
    added: dict[str, list[float]] = {layer: [] for layer in layers}
    for _ in range(spec.refine_steps):
        new = []
        for layer in layers:
            mags = sorted(set(spec.sweep) | set(added[layer]))
            low, censored, high = tolerance(_points(campaign, spec, layer, mean, mags), clean, spec.budget_pp)
            if censored:
                continue
            mid = ((low or 0.0) + high) / 2
            if mid not in mags:
                added[layer].append(mid)
                new.append(spec.scenario(layer, mid, mean))
        if not new:
            break
        campaign.add_scenarios(new)
        campaign.run(engine, keys=[s.key for s in new])
    return added


def _assemble(campaign, spec, model, data, layers, names, added) -> dict[str, Any]:
    clean = campaign.clean_accuracy()
    info = {row.name: row for row in layer_table(model, data.sample(1))}
    rows = []
    for layer in layers:
        mags = sorted(set(spec.sweep) | set(added.get(layer, [])))
        points = _points(campaign, spec, layer, spec.curve_mean, mags)
        threshold, censored, _ = tolerance(points, clean, spec.budget_pp)
        rows.append({"name": layer, "type": info[layer].type, "macs": info[layer].macs,
                     "params": info[layer].params, "threshold": threshold,
                     "threshold_censored": censored, "points": points})
    _rank(rows)
    return {
        "model": names["model"], "dataset": names["dataset"], "images": len(data),
        "clean_accuracy": clean, "labeled": campaign.calibration.counts.labeled,
        "budget_pp": spec.budget_pp, "axis": spec.axis,
        "error": {"kind": spec.error, "scale": spec.scale, "rate": spec.rate,
                  "site": spec.site, **({"value": spec.value} if spec.error == "stuck" else {})},
        "seed": campaign.seed, "trials": campaign.trials, "ci_target": campaign.ci_target,
        "layers": rows, "grid": _grid(campaign, spec, layers),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **spec.extra,
    }


def _rank(rows: list[dict]) -> None:
    """Rank 1 = most resilient: highest threshold, then censored first, then mean accuracy."""
    def key(row):
        threshold = -math.inf if row["threshold"] is None else row["threshold"]
        area = sum(p["accuracy"] for p in row["points"]) / max(len(row["points"]), 1)
        return (-threshold, not row["threshold_censored"], -area)

    for rank, row in enumerate(sorted(rows, key=key), start=1):
        row["rank"] = rank


def _grid(campaign: Campaign, spec: ProfileSpec, layers: list[str]) -> dict | None:
    if len(spec.means) < 2:
        return None
    grid = {}
    for layer in layers:
        acc = [[p["accuracy"] for p in _points(campaign, spec, layer, mean, spec.sweep)]
               for mean in spec.means]
        grid[layer] = {"means": list(spec.means), "sigmas": list(spec.sweep), "accuracy": acc}
    return {"layers": grid}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


__all__ = ["ProfileSpec", "profile_layers", "tolerance"]
