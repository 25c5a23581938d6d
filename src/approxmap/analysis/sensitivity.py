"""Per-layer pruning sensitivity (Li et al., "Pruning Filters for Efficient ConvNets", ICLR
2017, Fig. 2(b)): accuracy with a fraction of one layer's filters removed, no fine-tuning,
for the smallest / largest / random filters by a criterion.

>>> result = sensitivity_analysis(model, data, SensitivitySpec(ratios=(0.25, 0.5)), run)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from approxmap.analysis.results import Result, register_result
from approxmap.analysis.significance import compute_significance, get_criterion, scores_for
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.scenario import trial_seed
from approxmap.pruning.masking import mask_scenario
from approxmap.pruning.plan import ORDERS, PruningPlan, check_ratio, choose, unit_scores
from approxmap.pruning.units import (
    PruneUnit,
    find_unit,
    masking_notes,
    pruning_units,
    read_points,
    require_units,
    warn_masking,
)

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class SensitivitySpec:
    """Which layers, fractions and orders; the criterion ranking filters; random draws.

    Raises:
        InvalidParameterError: a ratio outside [0, 1), an unknown order, draws < 1.
        UnknownNameError: an unknown criterion.
    """

    layers: tuple[str, ...] | None = None
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    criterion: str = "l1"
    orders: tuple[str, ...] = ("smallest",)
    draws: int = 3
    calib_images: int = 1000
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_criterion(self.criterion)
        bad = [o for o in self.orders if o not in ORDERS]
        if bad or not self.orders:
            raise InvalidParameterError(
                f"Orders must be taken from {', '.join(ORDERS)}. Got {list(self.orders)}.")
        for ratio in self.ratios:
            check_ratio(ratio, "A pruning ratio")
        if not self.ratios:
            raise InvalidParameterError("Give at least one pruning ratio.")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise InvalidParameterError(f"draws must be an integer >= 1. Got {self.draws!r}.")
        object.__setattr__(self, "ratios", tuple(sorted(set(self.ratios))))
        object.__setattr__(self, "orders", tuple(dict.fromkeys(self.orders)))


@dataclass
class SensitivityRow:
    layer: str
    convs: list[str]
    order: str
    ratio: float
    filters: int
    removed: int
    accuracy: float
    draws: int


@register_result("sensitivity")
@dataclass
class SensitivityResult(Result):
    """What sensitivity.json holds: one row per (layer, order, ratio)."""

    model: str
    dataset: str
    images: int
    selection: str
    criterion: str
    clean_accuracy: float
    rows: list[SensitivityRow]
    left_out: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    uncertain: dict[str, str] = field(default_factory=dict)  # layer -> why masking may differ


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SensitivityResult:
        try:
            rows = [SensitivityRow(**r) for r in data["rows"]]
            names = {"model", "dataset", "images", "selection", "criterion", "clean_accuracy",
                     "left_out", "uncertain"}
            values = {k: data[k] for k in names if k in data}
            values.setdefault("selection", "")
            extra = {k: v for k, v in data.items() if k not in names | {"rows"}}
            return cls(**values, rows=rows, extra=extra)
        except (KeyError, TypeError) as exc:
            raise InvalidParameterError(f"Not a sensitivity result: {exc}") from None


def sensitivity(model: nn.Module, data: EvalData, units: Sequence[PruneUnit],
                scores: Mapping[str, torch.Tensor], ratios: Sequence[float],
                orders: Sequence[str] = ("smallest",), *, layers: Sequence[str] | None = None,
                draws: int = 3, run: Run | None = None) -> tuple[float, list[SensitivityRow]]:
    """Accuracy with k% of one layer's filters masked: per unit, ratio and order (random:
    the mean over `draws` seeded draws), all through one campaign ("sensitivity") of the run.

    Returns the clean accuracy and the rows.

    >>> clean, rows = sensitivity(model, data, units, scores, [0.25, 0.5])  # doctest: +SKIP
    """
    run = run or Run()
    for r in ratios:
        check_ratio(r, "A pruning ratio")
    chosen = [find_unit(units, name) for name in layers] if layers else list(units)
    points = read_points(model)
    warn_masking(masking_notes(points, [c for unit in chosen for c in unit.convs]))
    cases = _cases(chosen, scores, ratios, orders, draws, run.seed)
    scenarios = {key: mask_scenario(units, plan, points) for key, plan in cases.items()}
    scenarios = {k: s for k, s in scenarios.items() if s is not None}
    campaign = Campaign(model, data, scenarios.values(), run.with_(trials=1), name="sensitivity")
    campaign.run()
    clean = campaign.clean_accuracy()
    acc = {key: s.accuracy for key, s in zip(scenarios, campaign.summaries(
        [s.key for s in scenarios.values()]), strict=True)}
    rows = []
    for unit in chosen:
        for order in orders:
            for ratio in ratios:
                values = [acc.get(k, clean) for k in cases if k[:3] == (unit.name, order, ratio)]
                rows.append(SensitivityRow(unit.name, list(unit.convs), order, ratio,
                                           unit.channels, math.floor(ratio * unit.channels + 1e-9),
                                           sum(values) / len(values), len(values)))
    return clean, rows


def _cases(units, scores, ratios, orders, draws, seed) -> dict[tuple, PruningPlan]:
    cases = {}
    for unit in units:
        for order in orders:
            for ratio in ratios:
                for draw in range(draws if order == "random" else 1):
                    k = math.floor(ratio * unit.channels + 1e-9)
                    gen = torch.Generator().manual_seed(
                        trial_seed(seed, f"random:{unit.name}:{ratio}", draw))
                    idx = choose(scores[unit.name], k, order, gen)
                    cases[(unit.name, order, ratio, draw)] = PruningPlan({unit.name: idx} if idx else {})
    return cases


def sensitivity_analysis(model: nn.Module, data: EvalData, spec: SensitivitySpec | None = None,
                         run: Run | None = None) -> SensitivityResult:
    """Score filters by `spec.criterion` on a class-balanced calibration subset, then measure
    the sensitivity of every prunable layer (grouped convolutions left out, said in the result;
    layers whose masking approxmap cannot vouch for are named in `uncertain`, and warned of).
    """
    spec = spec or SensitivitySpec()
    run = run or Run()
    units = require_units(pruning_units(model, data.sample(1)), model)
    calib = data.subset(min(spec.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, [spec.criterion], run=run)
    scores = unit_scores(units, scores_for(sig, spec.criterion))
    clean, rows = sensitivity(model, data, units, scores, spec.ratios, spec.orders,
                              layers=spec.layers, draws=spec.draws, run=run)
    measured = {c for row in rows for c in row.convs}
    return SensitivityResult(run.names.get("model", "custom"), run.names.get("dataset", data.name),
                             len(data), data.selection, spec.criterion, clean, rows,
                             dict(units.left_out), dict(spec.extra),
                             masking_notes(read_points(model), sorted(measured)))


__all__ = ["DEFAULT_RATIOS", "SensitivityResult", "SensitivityRow", "SensitivitySpec",
           "sensitivity", "sensitivity_analysis"]
