"""Pruning plans: which filters of which unit go, chosen by significance; replayable as JSON.

>>> units = pruning_units(model, data.sample(1))                          # doctest: +SKIP
>>> plan = plan_by_ratio(units, unit_scores(units, l1_scores), 0.5)       # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.core.files import read_text
from approxmap.pruning.units import PruneUnit, find_unit

ORDERS = ("smallest", "largest", "random")


@dataclass(frozen=True)
class PruningPlan:
    """Which filters go: unit name -> removed filter indices (in the unpruned model).

    `base` is the model spec (zoo name or path:factory) the plan applies to, `input_shape`
    one sample's shape; both make the plan replayable on a fresh model.
    """

    removed: Mapping[str, tuple[int, ...]]
    base: str = "custom"
    input_shape: tuple[int, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "approxmap-pruning-plan/1", "base": self.base,
                "input_shape": list(self.input_shape),
                "removed": {k: list(v) for k, v in self.removed.items()}, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningPlan:
        try:
            removed = {str(k): tuple(int(i) for i in v) for k, v in data["removed"].items()}
            return cls(removed, str(data.get("base", "custom")),
                       tuple(int(d) for d in data.get("input_shape", ())), dict(data.get("meta", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidParameterError(f"Not a pruning plan: {type(exc).__name__}: {exc}") from None


def check_plan(plan: PruningPlan, units: Sequence[PruneUnit]) -> None:
    """Raise a clear error for unknown layers, layers left out of pruning (grouped
    convolutions), bad indices, or a layer left with no filter."""
    by_name = {u.name: u for u in units}
    for name, idxs in plan.removed.items():
        unit = by_name.get(name) or find_unit(units, name)
        if unit.name != name:
            raise InvalidParameterError(
                f"Layer {name!r} is pruned together with {', '.join(unit.convs)}; "
                f"name the group by its first layer {unit.name!r}.")
        if len(set(idxs)) != len(idxs) or (idxs and not 0 <= min(idxs) <= max(idxs) < unit.channels):
            raise InvalidParameterError(
                f"Filter indices of {name!r} must be distinct and in [0, {unit.channels - 1}].")
        if len(idxs) >= unit.channels:
            raise InvalidParameterError(
                f"The plan would remove every filter of layer {name!r} ({len(idxs)} of "
                f"{unit.channels}); keep at least one.")


def unit_scores(units: Sequence[PruneUnit], scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One significance per unit filter: the sum over its convolutions of max-normalized scores."""
    out = {}
    for unit in units:
        parts = [torch.as_tensor(scores[c], dtype=torch.float64) for c in unit.convs if c in scores]
        if not parts:
            raise InvalidParameterError(f"No significance scores for layer {unit.name!r}.")
        out[unit.name] = sum(p / p.abs().max().clamp_min(1e-12) for p in parts)
    return out


def choose(scores: torch.Tensor, k: int, order: str = "smallest",
           generator: torch.Generator | None = None) -> tuple[int, ...]:
    """Indices of k filters: the least significant, the most significant, or random ones."""
    if order not in ORDERS:
        raise InvalidParameterError(f"Order must be one of {', '.join(ORDERS)}. Got {order!r}.")
    if order == "random":
        picked = torch.randperm(len(scores), generator=generator)[:k]
    else:
        picked = torch.argsort(scores, descending=order == "largest", stable=True)[:k]
    return tuple(sorted(int(i) for i in picked))


def check_ratio(ratio: float, what: str = "The pruning ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio < 1:
        raise InvalidParameterError(
            f"{what} is the fraction of filters to remove, in [0, 1). Got {ratio!r}.")
    return float(ratio)


def plan_by_layer_ratios(units: Sequence[PruneUnit], scores: Mapping[str, torch.Tensor],
                         ratios: Mapping[str, float], order: str = "smallest", **plan_args) -> PruningPlan:
    """Remove floor(ratio x filters) of each named layer (any convolution of a unit names it)."""
    removed: dict[str, tuple[int, ...]] = {}
    for layer, ratio in ratios.items():
        unit = find_unit(units, layer)
        if unit.name in removed:
            raise InvalidParameterError(f"Layers {layer!r} and {unit.name!r} are pruned together; "
                                        "give one ratio for the group.")
        k = math.floor(check_ratio(ratio, f"The ratio of {layer!r}") * unit.channels + 1e-9)
        removed[unit.name] = choose(scores[unit.name], k, order)
    return PruningPlan({k: v for k, v in removed.items() if v}, **plan_args)


def plan_by_ratio(units: Sequence[PruneUnit], scores: Mapping[str, torch.Tensor], ratio: float,
                  order: str = "smallest", **plan_args) -> PruningPlan:
    """Remove the same fraction of filters from every unit.

    >>> plan_by_ratio(units, unit_scores(units, l1), 0.25).removed  # doctest: +SKIP
    """
    return plan_by_layer_ratios(units, scores, {u.name: ratio for u in units}, order, **plan_args)




def read_layer_ratios(path: str | Path) -> dict[str, float]:
    """A JSON file holding an object layer -> ratio, e.g. {"conv1": 0.5}.

    Raises:
        DataError: the file is missing, not a regular file (a FIFO, a device) or not JSON.
        InvalidParameterError: not an object of ratios in [0, 1).
    """
    try:
        data = json.loads(read_text(path, "layer ratios file", DataError))
    except ValueError as exc:
        raise DataError(f"Cannot read layer ratios {path}: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise InvalidParameterError(f"{path} must hold a JSON object like {{\"conv1\": 0.5}}.")
    for layer, ratio in data.items():
        check_ratio(ratio, f"The ratio of {layer!r} in {path}")
    return {str(k): float(v) for k, v in data.items()}


__all__ = ["ORDERS", "PruningPlan", "check_plan", "check_ratio", "choose", "plan_by_layer_ratios",
           "plan_by_ratio", "read_layer_ratios", "unit_scores"]
