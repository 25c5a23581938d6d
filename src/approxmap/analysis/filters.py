"""The significance analysis: score every filter by several criteria, compare the criteria
(and each against the measured resilience), and sort filters into classes.

>>> spec = SignificanceSpec(criteria=("l1", "l1_folded", "resilience"), budget_pp=1.0)
>>> result = significance_analysis(model, data, spec, run)      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from approxmap.analysis.classify import (
    CLASSES,
    check_classes,
    class_counts,
    classify_by_budget,
    classify_by_thresholds,
)
from approxmap.analysis.results import Result, json_safe, register_result
from approxmap.analysis.significance import (
    Significance,
    agreement,
    compute_significance,
    filter_rows,
    get_criterion,
    trust,
)
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError

DEFAULT_CRITERIA = ("l1", "l2", "mean", "apoz", "taylor")


@dataclass(frozen=True)
class SignificanceSpec:
    """Criteria, layers, and how classes are made (thresholds, or an accuracy budget).

    Raises:
        UnknownNameError: an unknown criterion.
        InvalidParameterError: rank_by not among the criteria, bad classes, a budget
            outside [0, 100], sigma <= 0.
    """

    criteria: tuple[str, ...] = DEFAULT_CRITERIA
    layers: tuple[str, ...] | None = None
    rank_by: str | None = None
    classes: tuple[str, ...] = CLASSES
    thresholds: tuple[float, ...] | None = None
    scope: str = "layer"
    budget_pp: float | None = None
    sigma: float | None = None
    calib_images: int = 1000
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.criteria:
            raise InvalidParameterError("Give at least one significance criterion.")
        for name in self.criteria:
            get_criterion(name)
        rank_by = self.rank_by or self.criteria[0]
        if rank_by not in self.criteria:
            raise InvalidParameterError(f"rank_by {rank_by!r} must be one of the criteria.")
        object.__setattr__(self, "rank_by", rank_by)
        object.__setattr__(self, "classes", check_classes(self.classes))
        if self.sigma is not None and not (math.isfinite(self.sigma) and 0 < self.sigma <= 1e6):
            raise InvalidParameterError(f"sigma must be in (0, 1e6]. Got {self.sigma:g}.")
        if self.budget_pp is not None and not 0 <= self.budget_pp <= 100:
            raise InvalidParameterError(
                f"The budget must be in [0, 100] percentage points. Got {self.budget_pp:g}.")
        if self.scope not in ("layer", "global"):
            raise InvalidParameterError(f"scope must be 'layer' or 'global'. Got {self.scope!r}.")


@register_result("significance")
@dataclass
class SignificanceResult(Result):
    """What significance.json holds: raw scores per criterion, classes, agreement, trust."""

    model: str
    dataset: str
    images: int
    selection: str
    rank_by: str
    layers: list[str]
    scores: dict[str, dict[str, list[float]]]
    classes: dict[str, list[str]]
    classification: dict[str, Any]
    agreement: list[dict[str, Any]]
    trust: dict[str, dict[str, float]]
    details: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def significance(self) -> Significance:
        return Significance(list(self.layers), {c: {k: np.asarray(v, dtype=float)
                                                    for k, v in per.items()}
                                                for c, per in self.scores.items()}, self.details)

    def filters(self) -> list[dict[str, Any]]:
        return filter_rows(self.significance(), self.classes, self.rank_by)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "model": self.model, "dataset": self.dataset, "images": self.images,
            "selection": self.selection, "rank_by": self.rank_by,
            "classification": self.classification, "layers": self.layers,
            "counts": class_counts(self.classes), "filters": self.filters(),
            "agreement": self.agreement, "trust": self.trust, "scores": self.scores,
            "classes": self.classes, "details": self.details, **self.extra})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignificanceResult:
        try:
            keys = ("model", "dataset", "images", "selection", "rank_by", "layers", "scores",
                    "classes", "classification", "agreement", "trust", "details")
            values = {k: data[k] for k in keys}
            known = set(keys) | {"counts", "filters"}
            return cls(**values, extra={k: v for k, v in data.items() if k not in known})
        except (KeyError, TypeError) as exc:
            raise InvalidParameterError(f"Not a significance result: {exc}") from None


def significance_analysis(model: nn.Module, data: EvalData, spec: SignificanceSpec | None = None,
                          run: Run | None = None) -> SignificanceResult:
    """Score filters on a class-balanced calibration subset of `data` (`spec.calib_images`),
    classify them by thresholds or by measured accuracy on all of `data` (budget), and say
    how far each criterion agrees with the others and with the measured resilience."""
    spec = spec or SignificanceSpec()
    run = run or Run()
    calib = data.subset(min(spec.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, spec.criteria, spec.layers, sigma=spec.sigma, run=run)
    if spec.budget_pp is None:
        classes = classify_by_thresholds(sig, spec.rank_by, spec.classes, spec.thresholds,
                                         spec.scope)
        how = {"mode": "thresholds", "scope": spec.scope,
               "thresholds": list(spec.thresholds) if spec.thresholds else "default (0.2, 0.5)",
               "clean_accuracy": Campaign(model, data, run=run, name="clean").clean_accuracy()}
    else:
        classes, info = classify_by_budget(model, data, sig, spec.rank_by, spec.budget_pp,
                                           spec.classes, spec.sigma or 0.5, run=run)
        how = {"mode": "budget", **info}
    scores = {c: {layer: v.tolist() for layer, v in per.items()} for c, per in sig.scores.items()}
    return SignificanceResult(
        run.names.get("model", "custom"), run.names.get("dataset", data.name), len(calib),
        calib.selection, spec.rank_by, list(sig.layers), scores, classes, how, agreement(sig),
        trust(sig), sig.details, dict(spec.extra))


__all__ = ["DEFAULT_CRITERIA", "SignificanceResult", "SignificanceSpec", "significance_analysis"]
