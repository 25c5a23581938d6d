"""Sort filters into classes (critical / approximable / prunable) by significance.

Two ways: thresholds on normalized significance (per layer or global), or accuracy-driven:
the largest set of least-significant filters whose removal keeps the accuracy drop within a
budget is `prunable`; then the largest further set that tolerates Gaussian errors of relative
std sigma (with the prunable ones removed) within the budget is `approximable`.

>>> labels = classify_by_thresholds(sig, "l1", thresholds=(0.2, 0.5))        # doctest: +SKIP
>>> labels, info = classify_by_budget(model, data, sig, "l1", budget_pp=1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from approxmap.analysis.significance import Significance
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.errors import ErrorModel, Gaussian, StuckAt
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.pruning.units import ReadPoint, masking_notes, read_points, warn_masking

CLASSES = ("critical", "approximable", "prunable")
DEFAULT_THRESHOLDS = (0.2, 0.5)


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """Validate a class list: a subset of CLASSES in that order, with 'critical' and >= 2 classes."""
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or len(classes) < 2 or "critical" not in classes or len(set(classes)) != len(classes):
        raise InvalidParameterError(
            f"Classes must be two or three of {', '.join(CLASSES)} including 'critical'. "
            f"Got {','.join(classes)!r}.")
    return tuple(c for c in CLASSES if c in classes)


def classify_by_thresholds(sig: Significance, criterion: str, classes: Sequence[str] = CLASSES,
                           thresholds: Sequence[float] | None = None,
                           scope: str = "layer") -> dict[str, list[str]]:
    """Class of every filter from its normalized significance s in [0, 1].

    Thresholds ascend from the least significant class: with three classes (0.2, 0.5) means
    s <= 0.2 prunable, s <= 0.5 approximable, else critical.
    """
    classes = check_classes(classes)
    ladder = classes[::-1][:-1]  # least significant first, without 'critical'
    thresholds = tuple(thresholds if thresholds is not None else DEFAULT_THRESHOLDS[-len(ladder):])
    if len(thresholds) != len(ladder) or list(thresholds) != sorted(thresholds) or not all(
            0 <= t <= 1 for t in thresholds):
        raise InvalidParameterError(
            f"Give {len(ladder)} ascending threshold(s) in [0, 1] for classes {', '.join(classes)}. "
            f"Got {', '.join(map(str, thresholds))}.")
    labels = {}
    for layer, values in sig.normalized(criterion, scope).items():
        labels[layer] = [next((c for c, t in zip(ladder, thresholds, strict=True) if v <= t + 1e-12),
                              "critical") for v in values]
    return labels


@dataclass(frozen=True)
class _Filter:
    layer: str
    index: int


def _global_order(sig: Significance, criterion: str, exclude: set | frozenset = frozenset(),
                  keep_one: bool = True) -> list[_Filter]:
    """Filters by ascending per-layer normalized significance; one filter per layer is held back."""
    norm = sig.normalized(criterion, "layer")
    items = []
    for li, layer in enumerate(sig.layers):
        idx = [i for i in np.argsort(norm[layer], kind="stable") if (layer, int(i)) not in exclude]
        if keep_one:
            idx = idx[:-1]  # never every filter of a layer
        items += [(float(norm[layer][i]), li, int(i)) for i in idx]
    return [_Filter(sig.layers[li], i) for _, li, i in sorted(items)]


def _sites(filters: Sequence[_Filter], points: dict[str, ReadPoint],
           error: ErrorModel | None) -> list:
    """(site, error) pairs for filters, one per layer at its read point; error None removes
    them (stuck at the read point's zero)."""
    by_layer: dict[str, list[int]] = {}
    for f in filters:
        by_layer.setdefault(f.layer, []).append(f.index)
    return [(Site(points[layer].module, "output", channels=tuple(sorted(idx))),
             StuckAt(points[layer].zero) if error is None else error)
            for layer, idx in by_layer.items()]


def _largest_passing(count: int, passes: Callable[[int], bool]) -> int:
    """Largest k in [0, count] with passes(k), by bisection (assumes passing is monotone)."""
    low, high = 0, count
    while low < high:
        mid = (low + high + 1) // 2
        if passes(mid):
            low = mid
        else:
            high = mid - 1
    return low


class _Evaluator:
    """Accuracy of scenarios through one campaign of the run (measured points are kept)."""

    def __init__(self, model, data, run: Run, name: str) -> None:
        self.campaign = Campaign(model, data, run=run, name=name)
        self.clean = self.campaign.clean_accuracy()
        self.measured: list[dict[str, Any]] = []

    def drop_pp(self, injections: list, step: str, count: int) -> float:
        if not injections:
            return 0.0
        scenario = Scenario(tuple(injections))
        self.campaign.add_scenarios([scenario])
        self.campaign.run(keys=[scenario.key])
        summary = self.campaign.summaries([scenario.key])[0]
        drop = 100 * (self.clean - summary.accuracy)
        self.measured.append({"step": step, "filters": count, "accuracy": summary.accuracy,
                              "ci_low": summary.ci_low, "ci_high": summary.ci_high,
                              "drop_pp": drop, "trials": summary.trials})
        return drop


def classify_by_budget(model: nn.Module, data: EvalData, sig: Significance, criterion: str,
                       budget_pp: float = 1.0, classes: Sequence[str] = CLASSES,
                       sigma: float = 0.5, *, run: Run | None = None
                       ) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Accuracy-driven classes: the largest prunable set, then the largest approximable set.

    Filters are taken in ascending significance (normalized per layer, so comparable across
    layers); each set size is found by bisection on measured accuracy, and the chosen sizes
    were measured within `budget_pp` percentage points of the clean accuracy. Removal is
    deterministic (one trial); the approximable test uses `run.trials` trials. Both
    campaigns ("classify-prunable", "classify-approximable") are kept in `run.store`, so an
    interrupted classification resumes.

    Raises:
        InvalidParameterError: bad classes, a budget outside [0, 100], sigma <= 0.

    >>> labels, info = classify_by_budget(model, data, sig, "l1", budget_pp=1)  # doctest: +SKIP
    """
    classes = check_classes(classes)
    if not 0 <= budget_pp <= 100:
        raise InvalidParameterError(f"budget_pp must be in [0, 100] percentage points. Got {budget_pp}.")
    if "approximable" in classes and not (math.isfinite(sigma) and sigma > 0):
        raise InvalidParameterError(f"sigma must be > 0. Got {sigma}.")
    run = run or Run()
    points = read_points(model)
    if "prunable" in classes:
        warn_masking(masking_notes(points, sig.layers))
    removal = _Evaluator(model, data, run.with_(trials=1), "classify-prunable")
    prunable: list[_Filter] = []
    if "prunable" in classes:
        order = _global_order(sig, criterion)
        k = _largest_passing(len(order), lambda n: removal.drop_pp(
            _sites(order[:n], points, None), "prunable", n) <= budget_pp)
        prunable = order[:k]
    removed = _sites(prunable, points, None)
    approximable: list[_Filter] = []
    measured = removal.measured
    trials = run.trials
    if "approximable" in classes:
        noisy = _Evaluator(model, data, run, "classify-approximable")
        taken = {(f.layer, f.index) for f in prunable}
        order = _global_order(sig, criterion, taken, keep_one=False)
        noise = Gaussian(std=sigma, scale="rel")
        m = _largest_passing(len(order), lambda n: noisy.drop_pp(
            removed + _sites(order[:n], points, noise), "approximable", n) <= budget_pp)
        approximable = order[:m]
        measured = measured + noisy.measured
    labels = _labels(sig, criterion, prunable, approximable)
    info = {"budget_pp": budget_pp, "sigma": sigma, "criterion": criterion,
            "clean_accuracy": removal.clean, "images": len(data), "trials": trials,
            "prunable": len(prunable), "approximable": len(approximable), "measured": measured,
            "final_drop_pp": _final_drop(measured, len(prunable), len(approximable))}
    return labels, info


def _labels(sig: Significance, criterion: str, prunable: list[_Filter],
            approximable: list[_Filter]) -> dict[str, list[str]]:
    labels = {layer: ["critical"] * len(sig.oriented(criterion)[layer]) for layer in sig.layers}
    for cls, chosen in (("prunable", prunable), ("approximable", approximable)):
        for f in chosen:
            labels[f.layer][f.index] = cls
    return labels


def _final_drop(measured: list[dict], prunable: int, approximable: int) -> float:
    """The measured drop of the chosen sets (0 when nothing was chosen)."""
    for step, count in (("approximable", approximable), ("prunable", prunable)):
        hits = [m["drop_pp"] for m in measured if m["step"] == step and m["filters"] == count]
        if count and hits:
            return hits[-1]
    return 0.0


def class_counts(labels: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """Per layer, how many filters fall in each class."""
    return {layer: {c: values.count(c) for c in CLASSES} for layer, values in labels.items()}


__all__ = ["CLASSES", "DEFAULT_THRESHOLDS", "check_classes", "class_counts",
           "classify_by_budget", "classify_by_thresholds"]
