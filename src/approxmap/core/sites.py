"""Injection sites: a place in a network named by module, target and optional channels.

>>> Site("conv_layers.0", "output", channels=(0, 3)).key
'conv_layers.0:output[0,3]'

Channels are defined in `approxmap.core.channels`: dim 1 of activations, and for weights
and biases the filters that produce each output channel, whatever the module kind.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from torch import nn

from approxmap.core import targets as _targets
from approxmap.core.exceptions import InvalidParameterError, UnknownNameError
from approxmap.core.layers import type_name
from approxmap.core.registry import close_matches_hint

DEFAULT_LAYER_TYPES = ("Conv2d", "Linear", "QuantizedConv2d", "QuantizedLinear",
                       "DynamicQuantizedLinear")


@dataclass(frozen=True)
class Site:
    """A module's output/input activations or its weight/bias (or any registered target),
    optionally restricted to output channels.

    Raises:
        InvalidParameterError: an unknown target, or channels that are not distinct
            indices >= 0.
    """

    module: str
    target: str = "output"
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.target not in _targets.list_targets():
            raise InvalidParameterError(
                f"A site's target must be one of {', '.join(_targets.list_targets())}. "
                f"Got {self.target!r}.")
        if self.channels is not None:
            try:
                chans = tuple(int(c) for c in self.channels)
            except (TypeError, ValueError):
                chans = ()
            if not chans or min(chans) < 0 or len(set(chans)) != len(chans):
                raise InvalidParameterError(
                    f"Channels of site {self.module!r} must be distinct indices >= 0. "
                    f"Got {self.channels!r}.")
            object.__setattr__(self, "channels", tuple(sorted(chans)))

    @property
    def key(self) -> str:
        chans = "" if self.channels is None else "[" + ",".join(map(str, self.channels)) + "]"
        return f"{self.module}:{self.target}{chans}"

    @property
    def kind(self) -> _targets.Target:
        """The registered Target that says what happens here and through which hook."""
        return _targets.get_target(self.target)

    @property
    def is_parameter(self) -> bool:
        return self.kind.hook == "parameter"

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "target": self.target,
                "channels": None if self.channels is None else list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        channels = data.get("channels")
        return cls(data["module"], data.get("target", "output"),
                   None if channels is None else tuple(channels))

    def check(self, model: nn.Module) -> nn.Module:
        """The module this site names in `model`.

        Raises:
            UnknownNameError: no module of that name (close matches suggested).
            InvalidParameterError: the target does not apply to that module, or a channel
                is out of range for it.
        """
        modules = dict(model.named_modules())
        module = modules.get(self.module)
        if module is None or self.module == "":
            raise UnknownNameError(
                f"No layer named {self.module!r} in the model."
                f"{close_matches_hint(self.module, [n for n in modules if n])}")
        self.kind.check(self, module)
        return module

    def check_channels(self, module: nn.Module, count: int | None, what: str) -> None:
        """Raise InvalidParameterError when a chosen channel is >= count (None: unknown yet)."""
        if self.channels is not None and count is not None and max(self.channels) >= count:
            raise InvalidParameterError(
                f"Channel {max(self.channels)} is out of range for {self.key}: "
                f"{type(module).__name__} {self.module!r} has {count} {what} channels.")


def select_layers(model: nn.Module, selectors: list[str] | tuple[str, ...] | None = None,
                  executed: Collection[str] | None = None) -> list[str]:
    """Names of the modules chosen by exact names, globs (`conv_layers.*`) or type names (`Conv2d`).

    With no selectors, every Conv2d and Linear layer (float or eager-mode quantized). Order follows the model's module order.
    `executed`, when given, names the modules that run in forward(): the others (e.g. an
    unused head in a ModuleList) are left out of default and glob/type selections, and
    naming one exactly is refused.

    Raises:
        UnknownNameError: an exact name that does not exist, or a selector that matches no
            layer (close matches suggested).
        InvalidParameterError: an exactly named layer that never runs in forward().
    """
    named = [(n, m) for n, m in model.named_modules() if n]
    runs = (lambda n: True) if executed is None else (lambda n: n in executed)
    if not selectors:
        chosen = [n for n, m in named if type_name(m) in DEFAULT_LAYER_TYPES and runs(n)]
        if not chosen:
            raise UnknownNameError("The model has no Conv2d or Linear layer that runs in "
                                   "forward(); choose layers by name.")
        return chosen
    picked: set[str] = set()
    for selector in selectors:
        hits = _match(named, selector)
        if not hits:
            names = [n for n, _ in named] + sorted({type_name(m) for _, m in named})
            raise UnknownNameError(
                f"Layer selection {selector!r} matches no layer of the model."
                f"{close_matches_hint(selector, names)} See `approxmap layers --model ...`.")
        if hits == [selector] and not runs(selector):
            raise InvalidParameterError(
                f"Layer {selector!r} never runs in the model's forward(); nothing injected "
                "there could change the output.")
        picked.update(h for h in hits if runs(h))
    if not picked:
        raise InvalidParameterError(
            f"The layers matching {', '.join(selectors)} never run in the model's forward().")
    return [n for n, _ in named if n in picked]


def _match(named: list[tuple[str, nn.Module]], selector: str) -> list[str]:
    type_hits = [n for n, m in named if type_name(m) == selector]
    if type_hits:
        return type_hits
    if any(n == selector for n, _ in named):
        return [selector]
    return [n for n, _ in named if fnmatch.fnmatchcase(n, selector)]


__all__ = ["DEFAULT_LAYER_TYPES", "Site", "select_layers"]
