"""Emulation: the accuracy of the network with real approximate multipliers in its layers.

Each chosen Conv2d/Linear is quantized to int8 (weights per output channel, activations
per tensor, ranges from a calibration split) and computed bit-exactly through each unit:
each unit in each layer alone, optionally each unit in all chosen layers at once, and
always the `exact` unit in all layers (the plain int8 network, beside the float one).
The same unit in the same layer is deterministic, so every point is one trial, stored in
the run's campaign "emulate"; accuracies carry the Wilson interval over the images.

>>> result = emulate_analysis(model, data, EmulateSpec(units=("drum:6", "trunc:4")), run)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from approxmap.analysis.results import Result, register_result
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.errors import StuckAt
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import layer_table
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site, select_layers
from approxmap.multipliers.quant import QuantScheme
from approxmap.multipliers.target import Multiplier8
from approxmap.multipliers.units import create_unit
from approxmap.pruning.units import read_points

ALL = "*"  # the layer name of "every chosen layer at once"


@dataclass(frozen=True)
class Assignment:
    """How a layer is computed: `unit` for the output filters `channels` (None: all), the
    other filters with exact int8 products, the `pruned` filters removed (made zero where
    the next layers read them)."""

    layer: str
    unit: str
    channels: tuple[int, ...] | None = None
    pruned: tuple[int, ...] = ()

    def injections(self, unit: Multiplier8, target: str, points: Mapping) -> list:
        """(site, error) pairs: the layer through `unit` at `target` ("multiplier" emulates,
        "multiplier-noise" predicts), plus the masks of the pruned filters."""
        pairs = [(Site(self.layer, target, self.channels), unit)]
        if self.pruned:
            point = points[self.layer]
            pairs.append((Site(point.module, "output", self.pruned), StuckAt(point.zero)))
        return pairs

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "unit": self.unit,
                "channels": None if self.channels is None else list(self.channels),
                "pruned": list(self.pruned)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assignment:
        channels = data.get("channels")
        return cls(str(data["layer"]), str(data["unit"]),
                   None if channels is None else tuple(int(c) for c in channels),
                   tuple(int(c) for c in data.get("pruned") or ()))


def checked_units(units: Sequence[str]) -> tuple[str, ...]:
    """The units' canonical names, duplicates dropped.

    Raises:
        UnknownNameError / InvalidParameterError: an unknown unit or bad parameters.
    """
    return tuple(dict.fromkeys(create_unit(u).name for u in units))


class Quantized:
    """For specs with `activation`, `calibration`, `percentile` fields: their quantization
    scheme (validated on construction) and the perturbation of a unit under it."""

    def check_scheme(self) -> None:
        QuantScheme(self.activation, self.calibration, self.percentile)

    def check_units_and_scheme(self) -> None:
        """At least one unit, every unit known (kept by canonical name), a valid scheme."""
        if not self.units:
            raise InvalidParameterError("Give at least one multiplier unit.")
        self.check_scheme()
        object.__setattr__(self, "units", checked_units(self.units))

    def unit(self, name: str) -> Multiplier8:
        return Multiplier8(name, self.activation, self.calibration, self.percentile)


@dataclass(frozen=True)
class EmulateSpec(Quantized):
    """Which units, in which layers, quantized how.

    Args:
        units: unit names (`approxmap units list`), e.g. ("exact", "drum:6", "evo:mul8u_2AC").
        layers: names, globs or types (default: every Conv2d and Linear that runs).
        per_layer: each unit in each layer alone.
        all_layers: each unit in all chosen layers at once.
        plan: Assignments (a plan to replay), evaluated as one scenario.
        activation, calibration, percentile: the activation quantization (`QuantScheme`).
        calib_images: images of the calibration split (class-balanced).

    Raises:
        UnknownNameError: an unknown unit (close matches named).
        InvalidParameterError: no unit, nothing to evaluate, a bad quantization scheme.
    """

    units: tuple[str, ...] = ("exact",)
    layers: tuple[str, ...] | None = None
    per_layer: bool = True
    all_layers: bool = False
    plan: tuple[Assignment, ...] = ()
    activation: str = "uint8"
    calibration: str = "minmax"
    percentile: float = 99.99
    calib_images: int = 500
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.units and not self.plan:
            raise InvalidParameterError("Give at least one multiplier unit.")
        checked_units([a.unit for a in self.plan])
        self.check_scheme()
        if not (self.per_layer or self.all_layers or self.plan):
            raise InvalidParameterError("Nothing to emulate: per_layer and all_layers are off.")
        object.__setattr__(self, "units", checked_units(self.units))

    def scenario(self, assignments: Sequence[Assignment], points: Mapping | None = None,
                 target: str = "multiplier") -> Scenario:
        """Layers computed through units (and pruned filters removed), as one scenario."""
        return Scenario(tuple(pair for a in assignments
                              for pair in a.injections(self.unit(a.unit), target, points or {})))


@dataclass
class EmulateRow:
    """One evaluated assignment: `layer` (or "*" for every chosen layer, or "plan"), the
    unit, accuracies (fractions), the Wilson 95 % interval of top-1, drops in pp."""

    layer: str
    unit: str
    accuracy: float
    top5: float
    agreement: float
    wilson_low: float
    wilson_high: float
    drop_pp: float
    drop_vs_int8_pp: float
    seconds: float


@register_result("emulate")
@dataclass
class EmulateResult(Result):
    """What emulate.json holds."""

    model: str
    dataset: str
    images: int
    selection: str
    calibration: str
    scheme: dict[str, Any]
    layers: list[str]
    float_accuracy: float
    int8_accuracy: float
    rows: list[EmulateRow]
    macs: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmulateResult:
        names = {"model", "dataset", "images", "selection", "calibration", "scheme", "layers",
                 "float_accuracy", "int8_accuracy", "macs"}
        try:
            values = {k: data[k] for k in names if k in data}
            rows = [EmulateRow(**r) for r in data["rows"]]
            return cls(**values, rows=rows,
                       extra={k: v for k, v in data.items() if k not in names | {"rows"}})
        except (KeyError, TypeError) as exc:
            raise InvalidParameterError(f"Not an emulation result: {exc}") from None

    def accuracy(self, layer: str, unit: str) -> float | None:
        return next((r.accuracy for r in self.rows if r.layer == layer and r.unit == unit), None)


def multiplier_layers(model: nn.Module, patterns: Sequence[str] | None,
                      executed: set[str]) -> list[str]:
    """The chosen layers a multiplier can compute: float Conv2d/Linear that run in forward.

    Raises:
        UnknownNameError: a pattern matching no layer (`select_layers`).
        InvalidParameterError: none of the chosen layers is a float Conv2d or Linear.
    """
    modules = dict(model.named_modules())
    chosen = [n for n in select_layers(model, patterns, executed)
              if type(modules[n]) in (nn.Conv2d, nn.Linear)]
    if not chosen:
        raise InvalidParameterError("None of the chosen layers is a float Conv2d or Linear.")
    return chosen


def calibration_split(data: EvalData, images: int, calib_data: EvalData | None) -> EvalData:
    """The data quantization ranges are taken from: `calib_data` if given, else a
    class-balanced subset of the evaluation data (said in the result)."""
    if calib_data is not None:
        return calib_data.subset(min(images, len(calib_data))) if calib_data.x is not None else (
            calib_data)
    return data.subset(min(images, len(data))) if data.x is not None else data


def emulate_analysis(model: nn.Module, data: EvalData, spec: EmulateSpec, run: Run | None = None,
                     calib_data: EvalData | None = None) -> EmulateResult:
    """Emulate every requested (layer, unit) and the all-exact int8 network.

    Raises:
        UnknownNameError / InvalidParameterError: bad layers (not float Conv2d/Linear,
            never run), units or scheme.
    """
    run = (run or Run()).with_(trials=1)
    table = {row.name: row for row in layer_table(model, data.sample(1))}
    executed = {n for n, r in table.items() if r.executed}
    chosen = [a.layer for a in spec.plan] if spec.plan else multiplier_layers(
        model, spec.layers, executed)
    calib = calibration_split(data, spec.calib_images, calib_data)

    def everywhere(unit: str) -> Scenario:
        return spec.scenario([Assignment(layer, unit) for layer in chosen])

    cases: dict[tuple[str, str], Scenario] = {(ALL, "exact"): everywhere("exact")}
    for unit in spec.units:
        if spec.per_layer:
            cases.update({(layer, unit): spec.scenario([Assignment(layer, unit)])
                          for layer in chosen})
        if spec.all_layers:
            cases[(ALL, unit)] = everywhere(unit)
    if spec.plan:
        points = read_points(model) if any(a.pruned for a in spec.plan) else {}
        cases[("plan", "plan")] = spec.scenario(spec.plan, points)
    campaign = Campaign(model, data, cases.values(), run, name="emulate", stats_data=calib,
                        setup={"calibration": f"{calib.name}: {calib.selection}"})
    campaign.run()
    clean = campaign.clean_accuracy()
    summaries = dict(zip(cases, campaign.summaries([s.key for s in cases.values()]), strict=True))
    records = campaign.records()
    int8 = summaries[(ALL, "exact")].accuracy
    rows = [EmulateRow(layer, unit, s.accuracy, s.top5, s.agreement, s.wilson_low, s.wilson_high,
                       100 * (clean - s.accuracy), 100 * (int8 - s.accuracy),
                       records[(cases[(layer, unit)].key, 0)].seconds)
            for (layer, unit), s in summaries.items()]
    return EmulateResult(
        run.names.get("model", "custom"), run.names.get("dataset", data.name), len(data),
        data.selection, f"{calib.name}: {calib.selection}",
        spec.unit("exact").scheme.to_dict(), chosen, clean, int8, rows,
        {layer: table[layer].macs for layer in chosen}, dict(spec.extra))


__all__ = ["ALL", "Assignment", "EmulateResult", "EmulateRow", "EmulateSpec", "Quantized",
           "calibration_split", "checked_units",
           "emulate_analysis"]
