"""Characterization of approximate multipliers: error metrics over all 65,536 operand pairs,
and, with a model, weighted by what each layer really multiplies (the histogram of its
activation codes on the calibration data x the histogram of its weight codes).

>>> result = characterize_units(UnitsSpec(units=("drum:6", "mitchell")))               # doctest: +SKIP
>>> result = characterize_units(spec, model, data, run)   # + per-layer weighted metrics  # doctest: +SKIP

Metric definitions (`approxmap.multipliers.characterize`): mean error and its std, MAE, WCE
(worst-case |error|), MRED and worst-case relative error (%), error probability EP (%)
(Mrazek et al., DATE 2017; Liang, Han and Lombardi, IEEE TC 2013).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from approxmap.analysis.emulate import Quantized, calibration_split, multiplier_layers
from approxmap.analysis.results import Result, register_result
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import cast_to_model, executed_modules
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.engine.base import eval_mode
from approxmap.engine.calibrate import run_model
from approxmap.multipliers.characterize import characterize
from approxmap.multipliers.quant import Int8Layer
from approxmap.multipliers.target import MultiplierTarget
from approxmap.multipliers.units import create_unit


@dataclass(frozen=True)
class UnitsSpec(Quantized):
    """Units to characterize; with a model, the layers and their quantization.

    Raises:
        UnknownNameError: an unknown unit. InvalidParameterError: none given.
    """

    units: tuple[str, ...]
    layers: tuple[str, ...] | None = None
    activation: str = "uint8"
    calibration: str = "minmax"
    percentile: float = 99.99
    calib_images: int = 500
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check_units_and_scheme()


@register_result("units")
@dataclass
class UnitsResult(Result):
    """What units.json holds: per unit its facts and metrics; per (layer, unit) the metrics
    weighted by the layer's operand distribution (empty without a model)."""

    units: list[dict[str, Any]]
    layers: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    dataset: str = ""
    calibration: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitsResult:
        names = {"units", "layers", "model", "dataset", "calibration"}
        try:
            return cls(**{k: data[k] for k in names if k in data},
                       extra={k: v for k, v in data.items() if k not in names})
        except TypeError as exc:
            raise InvalidParameterError(f"Not a units result: {exc}") from None


def unit_facts(name: str) -> dict[str, Any]:
    """A unit's family, signedness, power and its metrics over all operand pairs."""
    unit = create_unit(name)
    return {"unit": unit.name, "family": unit.family, "signed": unit.signed,
            "power_mw": unit.power, "power_is_estimate": unit.power_is_estimate,
            "sha": unit.sha, **characterize(unit).to_dict()}


def characterize_units(spec: UnitsSpec, model: nn.Module | None = None,
                       data: EvalData | None = None, run: Run | None = None,
                       calib_data: EvalData | None = None) -> UnitsResult:
    """Metrics of every unit; with `model` and `data`, also per chosen layer, weighted by
    the layer's activation-code histogram on the calibration split and its weight codes."""
    rows = [unit_facts(u) for u in spec.units]
    if model is None:
        return UnitsResult(rows, extra=dict(spec.extra))
    if data is None:
        raise InvalidParameterError("Per-layer characterization needs data for the calibration.")
    run = run or Run()
    modules = dict(model.named_modules())
    chosen = multiplier_layers(model, spec.layers, executed_modules(model, data.sample(1)))
    calib = calibration_split(data, spec.calib_images, calib_data)
    perturbation = spec.unit("exact")
    sites = [Site(layer, "multiplier") for layer in chosen]
    campaign = Campaign(model, calib, [Scenario.single(s, perturbation) for s in sites], run,
                        name="units")
    target = MultiplierTarget()
    layers = {layer: target.quantized(modules[layer], campaign.calibration.site_stats[s.key],
                                      perturbation.scheme)
              for layer, s in zip(chosen, sites, strict=True)}
    codes = activation_histograms(model, calib, layers, run.batch_size)
    per_layer = []
    for layer, int8 in layers.items():
        for name in spec.units:
            unit = create_unit(name)
            p_a, p_w = layer_operands(int8, codes[layer], unit.signed)
            per_layer.append({"layer": layer, "unit": unit.name,
                              **characterize(unit, (p_a, p_w)).to_dict()})
    return UnitsResult(rows, per_layer, run.names.get("model", "custom"),
                       run.names.get("dataset", data.name), f"{calib.name}: {calib.selection}",
                       dict(spec.extra))


def activation_histograms(model: nn.Module, data: EvalData, layers: Mapping[str, Int8Layer],
                          batch_size: int) -> dict[str, torch.Tensor]:
    """Per layer, the histogram (int64, 256 bins, by code index 0..255) of its quantized
    input codes over `data`."""
    modules = dict(model.named_modules())
    counts = {name: torch.zeros(256, dtype=torch.int64) for name in layers}

    def hook(name):
        def record(module, args, output):
            index = layers[name].quantize_input(args[0].detach().float())
            counts[name] += torch.bincount(index.flatten().long().cpu(), minlength=256)
        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    try:
        with torch.no_grad(), eval_mode(model):
            for x, _ in data.batches(batch_size):
                run_model(model, cast_to_model(model, x))
    finally:
        for handle in handles:
            handle.remove()
    return counts


def layer_operands(layer: Int8Layer, act_index_counts: torch.Tensor, signed: bool):
    """(p_a, p_w): the operand distributions (float64, 256 bins each, in the unit's index
    layout) a unit of this signedness sees in the layer, under the operand convention of
    `approxmap.multipliers.quant`: signed units get int8 operands (uint8 activation codes
    shifted by -128), unsigned units the magnitudes (uint8 codes as they are, |w|)."""
    counts = act_index_counts.double()
    if not signed and layer.act.activation == "int8":  # sign-magnitude: |q| of q = i - 128
        magnitude = (torch.arange(256) - 128).abs()
        counts = torch.zeros(256, dtype=torch.float64).index_add_(0, magnitude, counts)
    w = layer.weight_codes.flatten().to(torch.int64).cpu()
    w_index = w + 128 if signed else w.abs()
    w_counts = torch.bincount(w_index, minlength=256).double()
    return ((counts / counts.sum().clamp_min(1)).numpy(),
            (w_counts / w_counts.sum().clamp_min(1)).numpy())


__all__ = ["UnitsResult", "UnitsSpec", "activation_histograms", "characterize_units",
           "layer_operands", "unit_facts"]
