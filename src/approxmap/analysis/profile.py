"""The layer-wise resilience profile: accuracy against error magnitude, per layer alone.

Any registered error model can be profiled; one of its numeric parameters is the swept
axis (by default the model's `default_axis`: the std of Gaussian and uniform errors, the hit
rate of stuck-at errors), optionally a second one gives a grid (e.g. mean x std).

>>> spec = ProfileSpec(error="gaussian", sweep=(0.0, 0.5, 1.0))
>>> result = profile_layers(model, data, spec, Run(trials=5))        # doctest: +SKIP
>>> [(layer.name, layer.threshold) for layer in result.layers]        # doctest: +SKIP

The threshold of a layer is where its mean accuracy crosses clean − budget: linearly
interpolated between the last passing and the first failing swept point (both reported as
the interval), a lower bound ("censored") when every point passes, None when the first
point already fails. A categorical axis (an error model's `categorical_axes`, e.g. the bit
position of a bit flip) has no threshold: its layers are ranked by mean accuracy over the
points, and each point's SDC rate (with its Wilson interval) is what to read.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from approxmap.analysis.results import Result, register_result
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.errors import ErrorModel, create_error_model, get_error_model_class
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import layer_table
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site, select_layers
from approxmap.core.statistics import Summary, wilson
from approxmap.core.targets import get_target

AXIS_NAMES = {"std": "sigma"}  # profile.json calls the swept std "sigma" (as approxmap 0.1)


@dataclass(frozen=True)
class ProfileSpec:
    """What to sweep: layers, where to inject, which error model and over which values.

    Args:
        layers: names, globs or type names (default: every Conv2d and Linear that runs).
        channels: per layer name, the channels the error is restricted to (e.g. the filters
            a designer targets); the other layers get every channel.
        site: the target ("output", "input", "weight", "bias", or any registered one).
        error: a registered error model name (`approxmap list errors`).
        params: the model's fixed parameters; error models with a `scale` parameter default
            to "rel" (magnitudes in units of the std of each site's clean values).
        axis: the swept parameter (default: the model's `default_axis`).
        sweep: its values (default: the model's `default_sweep`), sorted, duplicates dropped.
        grid_axis, grid: an optional second swept parameter and its values (a heatmap).
        budget_pp: tolerated accuracy drop in percentage points.
        refine_steps: bisect each layer's threshold interval this many times.
        extra: facts copied into the result (e.g. the command line).

    Raises:
        InvalidParameterError: an unknown parameter or axis, values out of the model's
            ranges, a budget outside [0, 100].
        UnknownNameError: an unknown error model or target.
    """

    layers: tuple[str, ...] | None = None
    channels: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    site: str = "output"
    error: str = "gaussian"
    params: Mapping[str, Any] = field(default_factory=dict)
    axis: str | None = None
    sweep: tuple[float, ...] | None = None
    grid_axis: str | None = None
    grid: tuple[float, ...] = ()
    budget_pp: float = 1.0
    refine_steps: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cls = get_error_model_class(self.error)
        get_target(self.site)
        names = {f.name for f in dataclasses.fields(cls)}
        params = dict(self.params)
        if "scale" in names and "scale" not in params:
            params["scale"] = "rel"
        axis = getattr(cls, "axis_aliases", {}).get(self.axis, self.axis) or cls.default_axis
        if axis is None or axis not in names:
            raise InvalidParameterError(
                f"Error model {self.error!r} has no parameter {axis!r} to sweep; its parameters "
                f"are {', '.join(sorted(names)) or 'none'}.")
        sweep = self.sweep
        if sweep is None:  # a model may choose its default values from its parameters
            chooser = getattr(cls, "default_sweep_for", None)
            sweep = chooser(params) if chooser is not None else cls.default_sweep
        if not sweep:
            raise InvalidParameterError(f"Give the values of {axis!r} to sweep.")
        if self.grid_axis is not None and (self.grid_axis not in names or self.grid_axis == axis
                                           or not self.grid):
            raise InvalidParameterError(
                f"The grid axis must be another parameter of {self.error!r} with values; got "
                f"{self.grid_axis!r} with {len(self.grid)} values.")
        for given in (axis, self.grid_axis):
            params.pop(given, None)
        if not 0 <= self.budget_pp <= 100:
            raise InvalidParameterError(
                f"The budget must be in [0, 100] percentage points. Got {self.budget_pp}.")
        if isinstance(self.refine_steps, bool) or not isinstance(self.refine_steps, int) or (
                self.refine_steps < 0):
            raise InvalidParameterError(f"refine steps must be an integer >= 0. Got {self.refine_steps!r}.")
        object.__setattr__(self, "channels", {str(k): tuple(v) for k, v in self.channels.items()})
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "axis", axis)
        object.__setattr__(self, "sweep", tuple(sorted(set(sweep))))
        object.__setattr__(self, "grid", tuple(dict.fromkeys(self.grid)))
        for value in self.sweep:  # validates every value through the error model itself
            for second in self.grid or (None,):
                self.error_model(value, second)

    @property
    def categorical(self) -> bool:
        """True when the swept values are categories, not magnitudes (e.g. a bit position,
        the error model's `categorical_axes`): no threshold, layers ranked by mean accuracy."""
        return self.axis in getattr(get_error_model_class(self.error), "categorical_axes", ())

    @property
    def curve_grid_value(self) -> Any:
        """The grid value of the per-layer curves and thresholds: 0 if swept, else the first."""
        if not self.grid:
            return None
        return 0.0 if 0.0 in self.grid else self.grid[0]

    def error_model(self, value: float, grid_value: Any = None) -> ErrorModel:
        params = {**self.params, self.axis: value}
        if self.grid_axis is not None and grid_value is not None:
            params[self.grid_axis] = grid_value
        return create_error_model(self.error, **params)

    def scenario(self, layer: str, value: float, grid_value: Any = None) -> Scenario:
        site = Site(layer, self.site, self.channels.get(layer))
        return Scenario.single(site, self.error_model(value, grid_value))

    def describe(self) -> dict[str, Any]:
        """The error model as profile.json's "error" entry (kind, fixed parameters, site)."""
        return {"kind": self.error, **self.params, "site": self.site}


@dataclass
class ProfilePoint:
    """One swept value of one layer: its parameters and the statistics over its trials
    (accuracies are fractions; sdc, masked and nonfinite (DUE-like) are sample counts over
    all trials, of `samples`; sdc_low/sdc_high: the 95 % Wilson interval of the SDC rate)."""

    magnitude: float
    params: dict[str, Any]
    accuracy: float
    ci_low: float
    ci_high: float
    wilson_low: float
    wilson_high: float
    top5: float
    agreement: float
    nonfinite: int
    loss: float | None
    trials: int
    sdc: int = 0
    samples: int = 0
    sigma: float | None = None
    mean: float | None = None
    rate: float | None = None
    masked: int | None = None
    sdc_low: float | None = None
    sdc_high: float | None = None


@dataclass
class LayerProfile:
    """A layer's curve and tolerance: threshold (interpolated), its interval, its rank."""

    name: str
    type: str
    macs: int
    params: int
    threshold: float | None
    threshold_censored: bool
    threshold_interval: list[float | None]
    points: list[ProfilePoint]
    rank: int | None = None
    channels: list[int] | None = None  # the channels the error was restricted to (None: all)


@register_result("profile")
@dataclass
class ProfileResult(Result):
    """The layer-wise profile: what profile.json holds."""

    model: str
    dataset: str
    images: int
    selection: str
    clean_accuracy: float
    labeled: bool
    budget_pp: float
    axis: str
    error: dict[str, Any]
    seed: int
    trials: int
    ci_target: float | None
    layers: list[LayerProfile]
    grid: dict[str, Any] | None = None
    categorical: bool = False  # swept values are categories (bit positions): no thresholds
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileResult:
        try:
            names = {f.name for f in dataclasses.fields(cls)}
            values = {k: v for k, v in data.items() if k in names and k != "extra"}
            values["layers"] = [_layer_from_dict(layer) for layer in data["layers"]]
            values.setdefault("selection", f"{data.get('images', '?')} images")
            values.setdefault("trials", 0)
            values.setdefault("seed", 0)
            values.setdefault("ci_target", None)
            values.setdefault("labeled", True)
            values.setdefault("error", {})
            extra = {k: v for k, v in data.items() if k not in names}
            return cls(**values, extra=extra)
        except (KeyError, TypeError) as exc:
            raise InvalidParameterError(f"Not a profile: {type(exc).__name__}: {exc}") from None


def _layer_from_dict(data: Mapping[str, Any]) -> LayerProfile:
    points = [ProfilePoint(**{k: v for k, v in p.items()
                              if k in {f.name for f in dataclasses.fields(ProfilePoint)}})
              if "params" in p else _v1_point(p) for p in data["points"]]
    return LayerProfile(data["name"], data.get("type", "?"), data.get("macs", 0),
                        data.get("params", 0), data["threshold"], data["threshold_censored"],
                        data.get("threshold_interval", [data["threshold"], None]), points,
                        data.get("rank"), data.get("channels"))


def _v1_point(p: Mapping[str, Any]) -> ProfilePoint:
    """A point of an approxmap 0.1 profile.json (no params entry)."""
    params = {k: p[k] for k in ("sigma", "mean", "rate") if p.get(k) is not None}
    return ProfilePoint(p["magnitude"], params, p["accuracy"], p["ci_low"], p["ci_high"],
                        p["wilson_low"], p["wilson_high"], p["top5"], p["agreement"],
                        p["nonfinite"], p["loss"], p["trials"], sigma=p.get("sigma"),
                        mean=p.get("mean"), rate=p.get("rate"))


def profile_layers(model: nn.Module, data: EvalData, spec: ProfileSpec | None = None,
                   run: Run | None = None) -> ProfileResult:
    """Run the layer-wise resilience analysis (one campaign named "profile").

    Args:
        model: the network (never modified).
        data: evaluation data.
        spec: what to sweep (default `ProfileSpec()`: Gaussian output errors, relative std).
        run: engine, store, seeds, trials (default `Run()`: local, in memory, 10 trials).

    Raises:
        UnknownNameError / InvalidParameterError: a layer selection that matches nothing,
            or names a layer that never runs.
        DataError, ModelError: the data does not fit the model, or the model raises.
    """
    spec = spec or ProfileSpec()
    run = run or Run()
    table = {row.name: row for row in layer_table(model, data.sample(1))}
    layers = select_layers(model, spec.layers, {n for n, r in table.items() if r.executed})
    unknown = [name for name in spec.channels if name not in layers]
    if unknown:
        raise InvalidParameterError(
            f"Channels are given for {unknown[0]!r}, which is not among the profiled layers "
            f"({', '.join(layers)}).")
    campaign = Campaign(model, data, run=run, name="profile")
    grid_values = spec.grid or (None,)
    campaign.add_scenarios(spec.scenario(layer, v, g)
                           for layer in layers for g in grid_values for v in spec.sweep)
    campaign.run()
    added = _refine(campaign, spec, layers) if spec.refine_steps and not spec.categorical else {}
    rows = []
    clean = campaign.clean_accuracy()
    for layer in layers:
        values = sorted(set(spec.sweep) | set(added.get(layer, [])))
        points = _points(campaign, spec, layer, spec.curve_grid_value, values)
        threshold, censored, interval = ((None, False, [None, None]) if spec.categorical
                                         else tolerance(points, clean, spec.budget_pp))
        info = table[layer]
        chans = spec.channels.get(layer)
        rows.append(LayerProfile(layer, info.type, info.macs, info.params, threshold, censored,
                                 interval, points, channels=None if chans is None else list(chans)))
    rank_layers(rows)
    return ProfileResult(
        model=run.names.get("model", "custom"), dataset=run.names.get("dataset", data.name),
        images=len(data), selection=data.selection, clean_accuracy=clean,
        labeled=campaign.calibration.counts.labeled, budget_pp=spec.budget_pp,
        axis=AXIS_NAMES.get(spec.axis, spec.axis), error=spec.describe(), seed=run.seed,
        trials=run.trials, ci_target=run.ci_target, layers=rows, grid=_grid(campaign, spec, layers),
        categorical=spec.categorical,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), extra=dict(spec.extra))


def _points(campaign: Campaign, spec: ProfileSpec, layer: str, grid_value: Any,
            values: Sequence[float]) -> list[ProfilePoint]:
    keys = [spec.scenario(layer, v, grid_value).key for v in values]
    return [_point(spec, v, grid_value, s)
            for v, s in zip(values, campaign.summaries(keys), strict=True)]


def _point(spec: ProfileSpec, value: float, grid_value: Any, s: Summary) -> ProfilePoint:
    params = spec.error_model(value, grid_value).to_dict()
    params.pop("kind", None)
    sdc_low, sdc_high = wilson(s.sdc, s.samples)
    return ProfilePoint(
        magnitude=value, params=params, accuracy=s.accuracy, ci_low=s.ci_low, ci_high=s.ci_high,
        wilson_low=s.wilson_low, wilson_high=s.wilson_high, top5=s.top5, agreement=s.agreement,
        nonfinite=s.nonfinite, loss=s.loss if math.isfinite(s.loss) else None, trials=s.trials,
        sdc=s.sdc, samples=s.samples, sigma=params.get("std"), mean=params.get("mean"),
        rate=params.get("rate"), masked=s.masked,
        sdc_low=sdc_low if math.isfinite(sdc_low) else None,
        sdc_high=sdc_high if math.isfinite(sdc_high) else None)


def tolerance(points: Sequence[ProfilePoint], clean: float, budget_pp: float
              ) -> tuple[float | None, bool, list[float | None]]:
    """(threshold, censored, [last passing, first failing]) from points sorted by magnitude.

    A point fails when its mean accuracy is more than `budget_pp` below `clean`. The
    threshold is the magnitude where the accuracy, linearly interpolated between the last
    passing and the first failing point, equals clean − budget; censored (a lower bound:
    the largest magnitude) when no point fails; None when the first point fails.
    """
    line = clean - budget_pp / 100
    passing: ProfilePoint | None = None
    for point in points:
        if (clean - point.accuracy) * 100 > budget_pp + 1e-9:
            if passing is None:
                return None, False, [None, point.magnitude]
            span = passing.accuracy - point.accuracy
            frac = (passing.accuracy - line) / span if span > 0 else 0.0
            crossing = passing.magnitude + min(max(frac, 0.0), 1.0) * (
                point.magnitude - passing.magnitude)
            return crossing, False, [passing.magnitude, point.magnitude]
        passing = point
    last = passing.magnitude if passing is not None else None
    return last, True, [last, None]


def _refine(campaign: Campaign, spec: ProfileSpec, layers: list[str]) -> dict[str, list[float]]:
    """Bisect each layer's threshold interval `refine_steps` times; returns added values."""
    clean, grid_value = campaign.clean_accuracy(), spec.curve_grid_value
    added: dict[str, list[float]] = {layer: [] for layer in layers}
    for _ in range(spec.refine_steps):
        new = []
        for layer in layers:
            values = sorted(set(spec.sweep) | set(added[layer]))
            points = _points(campaign, spec, layer, grid_value, values)
            _, censored, (low, high) = tolerance(points, clean, spec.budget_pp)
            if censored:
                continue
            mid = ((low or 0.0) + high) / 2
            if mid not in values:
                added[layer].append(mid)
                new.append(spec.scenario(layer, mid, grid_value))
        if not new:
            break
        campaign.add_scenarios(new)
        campaign.run(keys=[s.key for s in new])
    return added


def rank_layers(rows: list[LayerProfile]) -> None:
    """Rank 1 = most resilient: highest threshold, then censored first, then mean accuracy
    (only the mean accuracy over the points when no layer has a threshold)."""
    def key(row: LayerProfile):
        threshold = -math.inf if row.threshold is None else row.threshold
        area = sum(p.accuracy for p in row.points) / max(len(row.points), 1)
        return (-threshold, not row.threshold_censored, -area)

    for rank, row in enumerate(sorted(rows, key=key), start=1):
        row.rank = rank


def _grid(campaign: Campaign, spec: ProfileSpec, layers: list[str]) -> dict | None:
    if len(spec.grid) < 2:
        return None
    grid = {}
    for layer in layers:
        acc = [[p.accuracy for p in _points(campaign, spec, layer, g, spec.sweep)]
               for g in spec.grid]
        grid[layer] = {"means": list(spec.grid), "sigmas": list(spec.sweep), "accuracy": acc,
                       "rows": spec.grid_axis, "columns": AXIS_NAMES.get(spec.axis, spec.axis)}
    return {"layers": grid}


__all__ = ["LayerProfile", "ProfilePoint", "ProfileResult", "ProfileSpec", "profile_layers",
           "rank_layers", "tolerance"]
