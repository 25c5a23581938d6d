"""Immutable, validated, seeded error models that round-trip through a dict.

Every model acts on a tensor with an explicit `torch.Generator`:

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> Gaussian(std=0.1).apply(torch.zeros(3), g).shape
torch.Size([3])

`scale="rel"` means the magnitudes are multiples of a reference std (the std of the clean
values at the injection site, measured by the engine's calibration pass); `resolve(stats)`
turns such a model into the equivalent absolute one, given the site's `SiteStats`. A model
may use any statistic it needs there (std, absmax, min/max, per channel).

Every registered model can be swept by `approxmap profile --error NAME --sweep PARAM=LIST`:
`default_axis` and `default_sweep` say what is swept when nothing is given.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from approxmap.core.exceptions import InvalidParameterError, ModelError
from approxmap.core.registry import Registry
from approxmap.core.stats import SiteStats

# Error models defined in higher layers, registered when first needed.
PROVIDERS = ("approxmap.multipliers.target", "approxmap.faults.models")
_REGISTRY: Registry[type[ErrorModel]] = Registry("error model", PROVIDERS)
SCALES = ("abs", "rel")
# The largest magnitude an additive or stuck-at error may take, relative or resolved: beyond
# float32's range a value is Inf in the tensors it is applied to.
MAX_MAGNITUDE = float(torch.finfo(torch.float32).max)


def register_error_model(name: str):
    """Class decorator adding an ErrorModel subclass to the registry under `name`."""

    def wrap(cls: type[ErrorModel]) -> type[ErrorModel]:
        cls.kind = name
        _REGISTRY.register(name, cls)
        return cls

    return wrap


def list_error_models(pattern: str = "*") -> list[str]:
    return _REGISTRY.names(pattern)


def get_error_model_class(name: str) -> type[ErrorModel]:
    """The class registered under `name` (UnknownNameError with close matches if none)."""
    return _REGISTRY.get(name)


def create_error_model(name: str, **params: Any) -> ErrorModel:
    """Build a registered error model by name, e.g. `create_error_model("gaussian", std=0.1)`.

    Raises:
        UnknownNameError: no model of that name.
        InvalidParameterError: a parameter the model does not have, or out of range.
    """
    cls = _REGISTRY.get(name)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in params if k not in known]
    if unknown:
        raise InvalidParameterError(
            f"Error model {name!r} has no parameter {unknown[0]!r}; its parameters are "
            f"{', '.join(sorted(known)) or 'none'}.")
    return cls(**params)


def error_model_from_dict(data: dict[str, Any]) -> ErrorModel:
    data = dict(data)
    return create_error_model(data.pop("kind"), **data)


def _check_real(owner: str, name: str, value: Any, low=-math.inf, high=math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be a finite number. Got {value!r} instead."
        )
    if not low <= value <= high:
        if abs(value) > MAX_MAGNITUDE and MAX_MAGNITUDE in (high, -low):
            rng = f"within float32's range (magnitude at most {MAX_MAGNITUDE:.4g})"
        elif math.isfinite(high) and high != MAX_MAGNITUDE:
            rng = f"[{low:g}, {high:g}]"
        else:
            rng = f">= {low:g}"
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {rng}. Got {value!r} instead."
        )
    return float(value)


def _hit_mask(tensor: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor | None:
    """Bernoulli(rate) mask of the elements hit, or None when every element is hit."""
    if rate >= 1.0:
        return None
    draws = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype, device=tensor.device)
    return draws < rate


@dataclass(frozen=True)
class ErrorModel:
    """Base class: `apply(tensor, generator)` returns a new tensor, never modifies its input."""

    kind: ClassVar[str] = "abstract"
    default_axis: ClassVar[str | None] = None
    default_sweep: ClassVar[tuple[float, ...]] = ()

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    @property
    def relative(self) -> bool:
        """True when apply() needs the site's statistics first (see resolve)."""
        return getattr(self, "scale", "abs") == "rel"

    def resolve(self, stats: SiteStats) -> ErrorModel:
        """The model ready to apply at a site whose clean values have these statistics.

        Absolute models return themselves; `scale="rel"` models scale their magnitudes by
        `stats.std`.
        """
        return self

    def is_identity(self) -> bool:
        """True when apply() never changes a tensor (e.g. std 0, mean 0 or rate 0)."""
        return False

    @property
    def sparse(self) -> bool:
        """True when the error leaves most of a sample's values clean (e.g. one bit flip):
        a speed hint for the engine, which then computes only the samples still changed."""
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def label(self) -> str:
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in dataclasses.asdict(self).items())
        return f"{self.kind}({params})"


@dataclass(frozen=True)
class _Additive(ErrorModel):
    """Additive error with a mean, a std, a hit rate and a scale."""

    std: float = 0.0
    mean: float = 0.0
    rate: float = 1.0
    scale: str = "abs"

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "std", _check_real(name, "std", self.std, 0.0, MAX_MAGNITUDE))
        object.__setattr__(self, "mean", _check_real(name, "mean", self.mean, -MAX_MAGNITUDE,
                                                     MAX_MAGNITUDE))
        object.__setattr__(self, "rate", _check_real(name, "rate", self.rate, 0.0, 1.0))
        if self.scale not in SCALES:
            raise InvalidParameterError(
                f"The 'scale' parameter of {name} must be one of {SCALES}. Got {self.scale!r}."
            )

    def _draw(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.relative:
            raise InvalidParameterError(
                f"{self.label()} is relative: resolve(stats) it before applying"
            )
        if self.is_identity():
            return tensor
        noise = self._draw(tensor, generator)
        mask = _hit_mask(tensor, self.rate, generator)
        if mask is not None:
            noise.mul_(mask)
        return noise.add_(tensor)

    def resolve(self, stats: SiteStats) -> ErrorModel:
        if not self.relative:
            return self
        return dataclasses.replace(
            self, std=_scaled(self, "std", stats.std), mean=_scaled(self, "mean", stats.std),
            scale="abs")

    def is_identity(self) -> bool:
        return self.rate == 0.0 or (self.std == 0.0 and self.mean == 0.0)


def _scaled(model: ErrorModel, name: str, ref: float) -> float:
    """A relative magnitude times the site's reference value.

    Raises:
        InvalidParameterError: the product is not finite or beyond float32's range
            (MAX_MAGNITUDE), i.e. it would only write Inf into the tensors.
    """
    value = getattr(model, name) * ref
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise InvalidParameterError(
            f"The {name!r} of {model.label()} times the site's clean std ({ref:g}) is "
            f"{value:g}, beyond float32's range ({MAX_MAGNITUDE:.3g}); use a smaller relative "
            "magnitude.")
    return value


@register_error_model("gaussian")
@dataclass(frozen=True)
class Gaussian(_Additive):
    """Additive N(mean, std^2) error on a fraction `rate` of the elements."""

    default_axis: ClassVar[str] = "std"
    default_sweep: ClassVar[tuple[float, ...]] = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0)

    def _draw(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.normal(self.mean, self.std, tensor.shape, generator=generator,
                            dtype=tensor.dtype, device=tensor.device)


@register_error_model("uniform")
@dataclass(frozen=True)
class Uniform(_Additive):
    """Additive uniform error with the given mean and std: U(mean - sqrt(3) std, mean + sqrt(3) std)."""

    default_axis: ClassVar[str] = "std"
    default_sweep: ClassVar[tuple[float, ...]] = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0)

    def _draw(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        half_width = math.sqrt(3.0) * self.std
        noise = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype,
                           device=tensor.device)
        return noise.mul_(2.0 * half_width).add_(self.mean - half_width)


@register_error_model("stuck")
@dataclass(frozen=True)
class StuckAt(ErrorModel):
    """A fraction `rate` of the elements is stuck at `value` (e.g. 0, a dead unit)."""

    default_axis: ClassVar[str] = "rate"
    default_sweep: ClassVar[tuple[float, ...]] = (0.0, 0.001, 0.01, 0.05, 0.1, 0.5)

    value: float = 0.0
    rate: float = 1.0
    scale: str = "abs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _check_real("StuckAt", "value", self.value,
                                                      -MAX_MAGNITUDE, MAX_MAGNITUDE))
        object.__setattr__(self, "rate", _check_real("StuckAt", "rate", self.rate, 0.0, 1.0))
        if self.scale not in SCALES:
            raise InvalidParameterError(
                f"The 'scale' parameter of StuckAt must be one of {SCALES}. Got {self.scale!r}."
            )

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.relative:
            raise InvalidParameterError(
                f"{self.label()} is relative: resolve(stats) it before applying"
            )
        if self.rate == 0.0:
            return tensor
        mask = _hit_mask(tensor, self.rate, generator)
        if mask is None:
            return torch.full_like(tensor, self.value)
        return torch.where(mask, torch.as_tensor(self.value, dtype=tensor.dtype), tensor)

    def resolve(self, stats: SiteStats) -> ErrorModel:
        if not self.relative:
            return self
        return dataclasses.replace(self, value=_scaled(self, "value", stats.std), scale="abs")

    def is_identity(self) -> bool:
        return self.rate == 0.0


@register_error_model("custom")
@dataclass(frozen=True)
class Custom(ErrorModel):
    """Any callable (tensor, torch.Generator) -> tensor; stored by its import path.

    `fn` may be the callable itself or "package.module:function". A callable that cannot be
    imported by that path still runs, but a stored campaign cannot rebuild it.
    """

    fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | str = ""

    def __post_init__(self) -> None:
        if isinstance(self.fn, str):
            object.__setattr__(self, "fn", _import_callable(self.fn))
        if not callable(self.fn):
            raise InvalidParameterError(
                f"The 'fn' parameter of Custom must be callable. Got {self.fn!r} instead."
            )

    def apply(self, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        try:
            out = self.fn(tensor, generator)
        except (Exception, SystemExit) as exc:  # user code: one line naming it
            raise ModelError.from_exception(exc, f"Custom error function {self.path()}") from None
        if not isinstance(out, torch.Tensor) or out.shape != tensor.shape:
            raise InvalidParameterError(
                f"Custom error function {self.path()} must return a tensor of shape "
                f"{tuple(tensor.shape)}; got {getattr(out, 'shape', type(out).__name__)}."
            )
        return out

    def path(self) -> str:
        fn = self.fn
        return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "fn": self.path()}

    def label(self) -> str:
        return f"custom({self.path()})"


def _import_callable(path: str) -> Callable:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InvalidParameterError(
            f"A custom error function is named 'package.module:function'. Got {path!r}."
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidParameterError(f"Cannot import custom error function {path!r}: {exc}") from None
    return obj
