"""A layer computed through an approximate multiplier: the `multiplier` target and its
perturbation, so emulation runs through the engine, campaigns, store and reports like any
other scenario.

>>> site = Site("conv_layers.3", "multiplier")                   # a Conv2d or Linear
>>> scenario = Scenario.single(site, Multiplier8("drum:6"))      # doctest: +SKIP

The layer is quantized post-training (int8 weights per output channel; activations per
tensor, `QuantScheme`), with the activation range taken from the calibration pass of the
campaign (its `stats_data`: a calibration split); its products go through the unit bit-exactly
(`approxmap.multipliers.emulate`). With channels, only those output channels use the unit and
the others are exact int8 (the significance-driven assignment of approximate units).
The same unit in the same layer is deterministic: one trial suffices.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from approxmap.core.errors import ErrorModel, register_error_model
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.targets import Target, plain, register_target
from approxmap.multipliers.quant import ActivationRange, Int8Layer, QuantScheme, quantize_layer
from approxmap.multipliers.units import create_unit


@register_error_model("multiplier")
@dataclass(frozen=True)
class Multiplier8(ErrorModel):
    """A layer's products computed by an 8-bit multiplier `unit` (at a `multiplier` site), in
    int8 with `activation` coding and `calibration` of the activation range."""

    unit: str = "exact"
    activation: str = "uint8"
    calibration: str = "minmax"
    percentile: float = 99.99
    default_axis: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        create_unit(self.unit)  # unknown units: one line with close matches
        QuantScheme(self.activation, self.calibration, self.percentile)

    @property
    def scheme(self) -> QuantScheme:
        return QuantScheme(self.activation, self.calibration, self.percentile)

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise InvalidParameterError(
            f"{self.label()} computes a layer; use it at a 'multiplier' site "
            "(Site(layer, 'multiplier')), not on a tensor.")

    def is_identity(self) -> bool:
        return False

    def label(self) -> str:
        return (f"multiplier(unit={self.unit}, activation={self.activation}, "
                f"calibration={self.calibration}, percentile={self.percentile:g})")


@register_target("multiplier")
class MultiplierTarget(Target):
    """A Conv2d or Linear computed in int8 through an approximate multiplier (its call
    replaced); channels: the output channels that use the unit (the rest exact int8)."""

    hook = "call"
    _layers: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    def check(self, site, module: nn.Module) -> None:
        if type(module) not in (nn.Conv2d, nn.Linear):
            raise InvalidParameterError(
                f"Layer {site.module!r} is a {type(module).__name__}; approximate multipliers "
                "are emulated in float Conv2d and Linear layers.")
        site.check_channels(module, module.weight.shape[0], "output")

    def observed(self, site, args, output):
        return plain(args[0])

    def begin(self, site, error, module, stats, generator):
        if not isinstance(error, Multiplier8):
            raise InvalidParameterError(
                f"A 'multiplier' site takes a Multiplier8 (a unit), not {error.label()}.")
        if stats is None or not stats.count:
            raise InvalidParameterError(f"{site.key}: no calibration statistics of its input.")
        layer = self.quantized(module, stats, error.scheme)
        return layer, create_unit(error.unit)

    def quantized(self, module: nn.Module, stats, scheme: QuantScheme) -> Int8Layer:
        """The module quantized for this input range and scheme (cached per module)."""
        key = (stats.min, stats.max, stats.count, scheme)
        cache = self._layers.setdefault(module, {})
        if key not in cache:
            act = ActivationRange(stats.min, stats.max, stats.sample)
            cache.clear()  # one range per module at a time: a new campaign, new statistics
            cache[key] = quantize_layer(module, act, scheme)
        return cache[key]

    def call(self, site, state, module, args, kwargs, params):
        if params:
            raise InvalidParameterError(
                f"{site.key}: parameter errors and an approximate multiplier at the same layer "
                "are not combined.")
        layer, unit = state
        x = plain(args[0])
        out = layer(x.float(), unit)
        if site.channels is not None:
            exact = layer(x.float(), None)
            index = torch.tensor(site.channels, device=out.device)
            out = exact.index_copy(1, index, out.index_select(1, index))
        return out.to(x.dtype)



@register_target("multiplier-noise")
class MultiplierNoiseTarget(Target):
    """The statistical model of a multiplier in a float layer: the Gaussian error a unit (and
    int8 quantization) adds to each output channel, injected at the layer's output
    (`approxmap.multipliers.noise`). Predicts what the `multiplier` target emulates."""

    hook = "output"

    def check(self, site, module: nn.Module) -> None:
        MultiplierTarget().check(site, module)

    def observed(self, site, args, output):
        return plain(args[0])

    def is_identity(self, error) -> bool:
        return False

    def begin(self, site, error, module, stats, generator):
        from approxmap.multipliers.noise import channel_noise, index_distribution

        layer, unit = MultiplierTarget().begin(site, error, module, stats, generator)
        noise = channel_noise(layer, unit, index_distribution(layer, stats.sample),
                              module.weight, stats.mean, stats.std**2, module.bias)
        device = module.weight.device
        mean = torch.as_tensor(noise.mean, dtype=torch.float32, device=device)
        std = torch.as_tensor(noise.std, dtype=torch.float32, device=device)
        if site.channels is not None:  # the unit only in these channels; the others exact int8
            exact = channel_noise(layer, None, index_distribution(layer, stats.sample),
                                  module.weight, stats.mean, stats.std**2, module.bias)
            keep = torch.zeros(len(mean), dtype=torch.bool, device=device)
            keep[list(site.channels)] = True
            mean = torch.where(keep, mean, torch.as_tensor(exact.mean, dtype=torch.float32,
                                                           device=device))
            std = torch.where(keep, std, torch.as_tensor(exact.std, dtype=torch.float32,
                                                         device=device))
        return mean, std

    def transform(self, site, state, value, generator):
        mean, std = state
        shape = [1] * value.dim()
        shape[1] = -1
        noise = torch.randn(value.shape, generator=generator, dtype=value.dtype,
                            device=value.device)
        return value + noise * std.view(shape).to(value.dtype) + mean.view(shape).to(value.dtype)


__all__ = ["Multiplier8", "MultiplierNoiseTarget", "MultiplierTarget"]
