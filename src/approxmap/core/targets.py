"""Targets: what happens at a site, and through which engine hook.

A target is a small stateless class registered by name; `Site(module, target)` names one.
Its `hook` says where the engine calls it:

- ``"output"`` / ``"input"``: the module's output / first input is transformed
  (`transform`); the calibration pass observes that activation.
- ``"parameter"``: the module runs with some parameters replaced for the whole trial
  (`begin` draws them once: a faulty weight stays faulty for every input).
- ``"call"``: the module's call itself is replaced (`call`), e.g. a layer computed through
  an approximate multiplier; the calibration pass observes the module's input.

Adding a kind of site is one subclass plus `@register_target("name")`; engines need no
change. Activations arriving quantized (eager-mode int8 models) are dequantized, perturbed
and requantized with their own scale and zero point.

>>> get_target("weight").hook
'parameter'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from approxmap.core.channels import (
    from_out_channel_view,
    in_channels,
    out_channel_view,
    out_channels,
    replace_channels,
    select_channels,
)
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.registry import Registry

if TYPE_CHECKING:
    from approxmap.core.errors import ErrorModel
    from approxmap.core.sites import Site
    from approxmap.core.stats import SiteStats

HOOKS = ("output", "input", "parameter", "call")
# Targets defined in higher layers, registered when first needed.
PROVIDERS = ("approxmap.multipliers.target",)
_REGISTRY: Registry[Target] = Registry("target", PROVIDERS)


def register_target(name: str):
    """Class decorator registering a Target subclass (one instance) under `name`."""

    def wrap(cls: type[Target]) -> type[Target]:
        if cls.hook not in HOOKS:
            raise ValueError(f"Target {name!r} has hook {cls.hook!r}; expected one of {HOOKS}.")
        cls.name = name
        _REGISTRY.register(name, cls())
        return cls

    return wrap


def get_target(name: str) -> Target:
    return _REGISTRY.get(name)


def list_targets(pattern: str = "*") -> list[str]:
    return _REGISTRY.names(pattern)


class Target:
    """Base class; see the module docstring for the hooks."""

    name: ClassVar[str] = "abstract"
    hook: ClassVar[str] = "output"
    channel_dim: ClassVar[int] = 1  # of the observed tensor (activations: dim 1)

    def check(self, site: Site, module: nn.Module) -> None:
        """Raise InvalidParameterError if this target cannot apply to `module`."""

    def static_tensor(self, site: Site, module: nn.Module) -> torch.Tensor | None:
        """For parameter targets: the clean tensor the calibration pass takes stats of."""
        return None

    def observed(self, site: Site, args: tuple, output: Any) -> torch.Tensor | None:
        """What the calibration pass takes stats of when the module runs (None: nothing)."""
        return None

    def is_identity(self, error: ErrorModel) -> bool:
        """True when this target with this error changes nothing (the trial is the clean
        pass); a replaced call ("call" hook) never is."""
        return self.hook != "call" and error.is_identity()

    def begin(self, site: Site, error: ErrorModel, module: nn.Module, stats: SiteStats,
              generator: torch.Generator) -> Any:
        """Per-trial state: by default the error model resolved for the site's statistics."""
        return error.resolve(stats)

    def transform(self, site: Site, state: Any, value: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
        """Hooks "output"/"input": the perturbed activation."""
        raise NotImplementedError

    def overrides(self, site: Site, state: Any) -> dict[str, torch.Tensor]:
        """Hook "parameter": parameter name -> replacement tensor for this trial."""
        raise NotImplementedError

    def call(self, site: Site, state: Any, module: nn.Module, args: tuple, kwargs: dict,
             params: dict[str, torch.Tensor]) -> Any:
        """Hook "call": the module's output computed another way (`params`: overrides)."""
        raise NotImplementedError


def plain(value: Any) -> torch.Tensor:
    """An activation as a float tensor (dequantized when quantized).

    Raises:
        InvalidParameterError: the value is not a tensor (e.g. a tuple output).
    """
    if not isinstance(value, torch.Tensor):
        raise InvalidParameterError(
            f"The value there is a {type(value).__name__}, not a tensor; choose a layer whose "
            "output (or input) is one tensor.")
    return value.dequantize() if value.is_quantized else value


def perturb_activation(site: Site, error: ErrorModel, value: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
    """`error` applied to the site's channels (dim 1) of an activation, quantized or not."""
    clean = plain(value)
    quantized = value.is_quantized
    part = error.apply(select_channels(clean, 1, site.channels, site.key), generator)
    out = replace_channels(clean, 1, site.channels, part)
    if quantized:
        return torch.quantize_per_tensor(out, value.q_scale(), value.q_zero_point(), value.dtype)
    return out


@register_target("output")
class OutputTarget(Target):
    """The module's output activations (N, C, ...); channels index dim 1."""

    hook = "output"

    def check(self, site: Site, module: nn.Module) -> None:
        site.check_channels(module, out_channels(module), "output")

    def observed(self, site, args, output):
        return select_channels(plain(output), 1, site.channels, site.key)

    def transform(self, site, state, value, generator):
        return perturb_activation(site, state, value, generator)


@register_target("input")
class InputTarget(Target):
    """The module's first input activations (N, C, ...); channels index dim 1."""

    hook = "input"

    def check(self, site: Site, module: nn.Module) -> None:
        site.check_channels(module, in_channels(module), "input")

    def observed(self, site, args, output):
        return select_channels(plain(args[0]), 1, site.channels, site.key)

    def transform(self, site, state, value, generator):
        return perturb_activation(site, state, value, generator)


class _ParameterTarget(Target):
    """A parameter of the module, perturbed once per trial; channels are output channels."""

    hook = "parameter"
    channel_dim = 0  # of the out-channel view

    def check(self, site: Site, module: nn.Module) -> None:
        param = getattr(module, self.name, None)
        if not isinstance(param, nn.Parameter):
            kind = type(module)
            extra = " (a quantized module keeps packed int8 weights, no parameter)" if (
                "quantized" in kind.__module__) else ""
            raise InvalidParameterError(
                f"Layer {site.module!r} ({kind.__module__}.{kind.__name__}) has no {self.name} "
                f"parameter to inject into{extra}.")
        count = out_channels(module)
        site.check_channels(module, count if count is not None else param.shape[0], "output")

    def static_tensor(self, site: Site, module: nn.Module) -> torch.Tensor:
        view = out_channel_view(module, self.name, getattr(module, self.name).detach())
        return select_channels(view, 0, site.channels, site.key)

    def begin(self, site, error, module, stats, generator):
        clean = getattr(module, self.name).detach()
        view = out_channel_view(module, self.name, clean)
        part = error.resolve(stats).apply(select_channels(view, 0, site.channels, site.key),
                                          generator)
        return {self.name: from_out_channel_view(
            module, self.name, replace_channels(view, 0, site.channels, part))}

    def overrides(self, site, state):
        return state


@register_target("weight")
class WeightTarget(_ParameterTarget):
    """The module's weight (drawn once per trial); channels are its output filters."""


@register_target("bias")
class BiasTarget(_ParameterTarget):
    """The module's bias (drawn once per trial); channels are its output channels."""


__all__ = ["HOOKS", "Target", "get_target", "list_targets", "perturb_activation", "plain",
           "register_target"]
