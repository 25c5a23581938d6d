"""Injection sites: a place in a network named by module, target and optional channels.

>>> Site("conv_layers.0", "output", channels=(0, 3)).key
'conv_layers.0:output[0,3]'
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from torch import nn

from approxmap.exceptions import InvalidParameterError, UnknownNameError
from approxmap.registry import close_matches_hint

TARGETS = ("output", "input", "weight", "bias")
DEFAULT_LAYER_TYPES = ("Conv2d", "Linear")


@dataclass(frozen=True)
class Site:
    """A module's output/input activations, or its weight/bias, optionally restricted to channels.

    Channels index dim 1 of activations (N, C, ...) and dim 0 of weights and biases
    (the output filters).
    """

    module: str
    target: str = "output"
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise InvalidParameterError(
                f"A site's target must be one of {', '.join(TARGETS)}. Got {self.target!r}."
            )
        if self.channels is not None:
            chans = tuple(int(c) for c in self.channels)
            if not chans or min(chans) < 0 or len(set(chans)) != len(chans):
                raise InvalidParameterError(
                    f"Channels of site {self.module!r} must be distinct indices >= 0. "
                    f"Got {self.channels!r}."
                )
            object.__setattr__(self, "channels", tuple(sorted(chans)))

    @property
    def key(self) -> str:
        chans = "" if self.channels is None else "[" + ",".join(map(str, self.channels)) + "]"
        return f"{self.module}:{self.target}{chans}"

    @property
    def is_parameter(self) -> bool:
        return self.target in ("weight", "bias")

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "target": self.target,
                "channels": None if self.channels is None else list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        channels = data.get("channels")
        return cls(data["module"], data.get("target", "output"),
                   None if channels is None else tuple(channels))

    def check(self, model: nn.Module) -> nn.Module:
        """Return the module this site names in `model`; raise a clear error if it can't apply."""
        modules = dict(model.named_modules())
        module = modules.get(self.module)
        if module is None or self.module == "":
            raise UnknownNameError(
                f"No layer named {self.module!r} in the model."
                f"{close_matches_hint(self.module, [n for n in modules if n])}"
            )
        if self.is_parameter:
            param = getattr(module, self.target, None)
            if not isinstance(param, nn.Parameter):
                raise InvalidParameterError(
                    f"Layer {self.module!r} ({type(module).__name__}) has no {self.target} to inject into."
                )
            if self.channels is not None and max(self.channels) >= param.shape[0]:
                raise InvalidParameterError(
                    f"Channel {max(self.channels)} is out of range for {self.key}: "
                    f"{self.target} has {param.shape[0]} filters."
                )
        return module


def select_layers(model: nn.Module, selectors: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Names of the modules chosen by exact names, globs (`conv_layers.*`) or type names (`Conv2d`).

    With no selectors, every Conv2d and Linear layer. Order follows the model's module order.
    An unknown exact name, or a selector that matches nothing, raises UnknownNameError.
    """
    named = [(n, m) for n, m in model.named_modules() if n]
    if not selectors:
        chosen = {n for n, m in named if type(m).__name__ in DEFAULT_LAYER_TYPES}
        if not chosen:
            raise UnknownNameError("The model has no Conv2d or Linear layer; choose layers by name.")
        return [n for n, _ in named if n in chosen]
    chosen: set[str] = set()
    for selector in selectors:
        hits = _match(named, selector)
        if not hits:
            names = [n for n, _ in named] + sorted({type(m).__name__ for _, m in named})
            raise UnknownNameError(
                f"Layer selection {selector!r} matches no layer of the model."
                f"{close_matches_hint(selector, names)} See `approxmap layers --model ...`."
            )
        chosen.update(hits)
    return [n for n, _ in named if n in chosen]


def _match(named: list[tuple[str, nn.Module]], selector: str) -> list[str]:
    type_hits = [n for n, m in named if type(m).__name__ == selector]
    if type_hits:
        return type_hits
    return [n for n, _ in named if fnmatch.fnmatchcase(n, selector)]
