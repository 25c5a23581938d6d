"""Predicting a multiplier's effect statistically: each (layer, unit) becomes a Gaussian error
with per-channel mean and std at the layer's output (`approxmap.multipliers.noise`), whose
accuracy the engine measures like any injected error (trials, CIs) — without emulating the
unit. Compared with emulation where both were run.

>>> result = predict_analysis(model, data, PredictSpec(units=("drum:6",)), run)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from approxmap.analysis.emulate import (
    EmulateResult,
    Quantized,
    calibration_split,
    multiplier_layers,
)
from approxmap.analysis.profile import ProfileResult
from approxmap.analysis.results import Result, register_result
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import layer_table
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.multipliers.target import MultiplierTarget
from approxmap.multipliers.units import create_unit


@dataclass(frozen=True)
class PredictSpec(Quantized):
    """Units and layers to predict, and the quantization (as for emulation).

    Raises:
        UnknownNameError: an unknown unit. InvalidParameterError: none given, bad scheme.
    """

    units: tuple[str, ...]
    layers: tuple[str, ...] | None = None
    channels: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    activation: str = "uint8"
    calibration: str = "minmax"
    percentile: float = 99.99
    calib_images: int = 500
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check_units_and_scheme()

    def scenario(self, layer: str, unit: str) -> Scenario:
        return Scenario.single(Site(layer, "multiplier-noise", self.channels.get(layer)),
                               self.unit(unit))


@dataclass
class PredictRow:
    """One (layer, unit): the predicted accuracy (mean over trials, Student-t 95 % CI), the
    model's error size (rms over channels of the unit's part and of unit + quantization, in
    the layer's output units), and the emulated accuracy when known."""

    layer: str
    unit: str
    accuracy: float
    ci_low: float
    ci_high: float
    unit_rms: float
    total_rms: float
    trials: int
    emulated: float | None = None
    error_pp: float | None = None
    terms: int = 0


@register_result("predict")
@dataclass
class PredictResult(Result):
    """What predict.json holds, with the validation against emulation and the link to the
    profile (which units each layer tolerates, by its tolerated std)."""

    model: str
    dataset: str
    images: int
    selection: str
    calibration: str
    float_accuracy: float
    rows: list[PredictRow]
    validation: dict[str, Any] = field(default_factory=dict)
    tolerance: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictResult:
        names = {"model", "dataset", "images", "selection", "calibration", "float_accuracy",
                 "validation", "tolerance", "seconds"}
        try:
            return cls(**{k: data[k] for k in names if k in data},
                       rows=[PredictRow(**r) for r in data["rows"]],
                       extra={k: v for k, v in data.items() if k not in names | {"rows"}})
        except (KeyError, TypeError) as exc:
            raise InvalidParameterError(f"Not a prediction result: {exc}") from None

    def accuracy(self, layer: str, unit: str) -> float | None:
        return next((r.accuracy for r in self.rows if r.layer == layer and r.unit == unit), None)


def predict_analysis(model: nn.Module, data: EvalData, spec: PredictSpec, run: Run | None = None,
                     calib_data: EvalData | None = None, emulated: EmulateResult | None = None,
                     profile: ProfileResult | None = None) -> PredictResult:
    """Predict every (layer, unit) through the Gaussian engine (campaign "predict");
    validate against `emulated` and relate to `profile` when given."""
    run = run or Run()
    started = time.perf_counter()
    table = {row.name: row for row in layer_table(model, data.sample(1))}
    modules = dict(model.named_modules())
    layers = multiplier_layers(model, spec.layers, {k for k, r in table.items() if r.executed})
    calib = calibration_split(data, spec.calib_images, calib_data)
    cases = {(layer, unit): spec.scenario(layer, unit) for layer in layers for unit in spec.units}
    campaign = Campaign(model, data, cases.values(), run, name="predict", stats_data=calib,
                        setup={"calibration": f"{calib.name}: {calib.selection}"})
    campaign.run()
    summaries = dict(zip(cases, campaign.summaries([s.key for s in cases.values()]), strict=True))
    sizes = noise_sizes(model, campaign, cases, spec)
    rows = []
    for (layer, unit), s in summaries.items():
        emul = emulated.accuracy(layer, create_unit(unit).name) if emulated else None
        rows.append(PredictRow(layer, create_unit(unit).name, s.accuracy, s.ci_low, s.ci_high,
                               *sizes[(layer, unit)], s.trials, emul,
                               None if emul is None else 100 * (s.accuracy - emul),
                               _terms(modules[layer])))
    return PredictResult(
        run.names.get("model", "custom"), run.names.get("dataset", data.name), len(data),
        data.selection, f"{calib.name}: {calib.selection}", campaign.clean_accuracy(), rows,
        validate(rows, campaign.clean_accuracy()) if emulated else {},
        tolerance_table(rows, profile) if profile else [],
        time.perf_counter() - started, dict(spec.extra))


def _terms(module: nn.Module) -> int:
    """K: products summed per output of the layer."""
    return int(module.weight[0].numel())


def noise_sizes(model, campaign: Campaign, cases, spec: PredictSpec) -> dict:
    """(unit rms, total rms) of each case's error model, in the layer's output units."""
    from approxmap.multipliers.noise import channel_noise, index_distribution

    modules = dict(model.named_modules())
    out = {}
    for (layer, unit), scenario in cases.items():
        site = scenario.sites[0]
        stats = campaign.calibration.site_stats[site.key]
        int8 = MultiplierTarget().quantized(modules[layer], stats, spec.unit(unit).scheme)
        noise = channel_noise(int8, create_unit(unit), index_distribution(int8, stats.sample),
                              modules[layer].weight, stats.mean, stats.std**2,
                              modules[layer].bias)
        out[(layer, unit)] = (noise.rms("unit"), noise.rms("total"))
    return out


def validate(rows: Sequence[PredictRow], clean: float, max_drop_pp: float = 5.0) -> dict:
    """|predicted - emulated| (pp) over pairs whose emulated drop is <= max_drop_pp: median,
    90th percentile, worst; and the worst pairs, for where the model breaks."""
    pairs = [r for r in rows if r.emulated is not None and 100 * (clean - r.emulated) <= max_drop_pp]
    if not pairs:
        return {"pairs": 0}
    errors = np.array([abs(r.error_pp) for r in pairs])
    worst = sorted(pairs, key=lambda r: -abs(r.error_pp))[:5]
    return {"pairs": len(pairs), "max_emulated_drop_pp": max_drop_pp,
            "median_pp": float(np.median(errors)), "p90_pp": float(np.percentile(errors, 90)),
            "worst_pp": float(errors.max()),
            "worst_pairs": [{"layer": r.layer, "unit": r.unit, "error_pp": r.error_pp,
                             "terms": r.terms} for r in worst]}


def tolerance_table(rows: Sequence[PredictRow], profile: ProfileResult) -> list[dict]:
    """Per (layer, unit): the layer's tolerated std (profile, absolute scale) against the
    unit's predicted error size: the unit fits when its rms error is within the tolerance."""
    if profile.error.get("scale") != "abs" or profile.axis != "sigma":
        return []
    tolerated = {layer.name: layer.threshold for layer in profile.layers}
    out = []
    for r in rows:
        if r.layer in tolerated and tolerated[r.layer] is not None:
            t = tolerated[r.layer]
            out.append({"layer": r.layer, "unit": r.unit, "tolerated_std": t,
                        "unit_rms": r.total_rms, "fits": bool(r.total_rms <= t)})
    return out


__all__ = ["PredictResult", "PredictRow", "PredictSpec", "predict_analysis", "tolerance_table",
           "validate"]
