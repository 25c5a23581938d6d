"""Per-filter significance of Conv2d (and Linear) layers by several criteria, and their agreement.

Criteria (a registry, `list_criteria()`): weight-based `l1` (Li et al. 2017) and `l2`;
activation-based `mean` (mean |activation| where the next layer reads the channel) and
`apoz` (average percentage of zeros there, Hu et al. 2016); gradient-based `taylor`
(|activation x gradient| averaged over the data, Molchanov et al. 2017); and `resilience`,
the loss increase when the filter's output is removed (or perturbed), measured through the
campaign engine with confidence intervals.

>>> sig = compute_significance(model, data, ["l1", "apoz"])   # doctest: +SKIP
>>> sig.oriented("apoz")["features.conv1_1"]                  # higher = more significant
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats as _stats
from torch import nn

from approxmap.analysis.pruning import read_points
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.scenario import Scenario
from approxmap.engine.local import LocalEngine
from approxmap.errors import Gaussian, StuckAt
from approxmap.exceptions import InvalidParameterError, UnknownNameError
from approxmap.registry import Registry
from approxmap.sites import Site, select_layers
from approxmap.zoo.datasets import EvalData


@dataclass
class Context:
    """What a criterion may use: the model, its layers, calibration data and options."""

    model: nn.Module
    layers: list[str]
    data: EvalData | None
    points: dict[str, str]
    batch_size: int = 250
    sigma: float | None = None
    trials: int = 1
    seed: int = 0
    engine: LocalEngine | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Criterion:
    """A significance criterion: `fn(context) -> {layer: scores per filter}`."""

    name: str
    fn: Callable[[Context], dict[str, np.ndarray]]
    higher_is_significant: bool = True
    needs_data: bool = False
    description: str = ""


_CRITERIA: Registry[Criterion] = Registry("significance criterion")


def register_criterion(name: str, *, higher_is_significant: bool = True, needs_data: bool = False,
                       description: str = ""):
    """Decorator adding `fn(context) -> {layer: np.ndarray}` to the criteria under `name`."""

    def wrap(fn: Callable[[Context], dict[str, np.ndarray]]):
        _CRITERIA.register(name, Criterion(name, fn, higher_is_significant, needs_data, description))
        return fn

    return wrap


def list_criteria(pattern: str = "*") -> list[str]:
    return _CRITERIA.names(pattern)


def get_criterion(name: str) -> Criterion:
    return _CRITERIA.get(name)


def _weights(ctx: Context) -> dict[str, torch.Tensor]:
    modules = dict(ctx.model.named_modules())
    return {name: modules[name].weight.detach().flatten(1).double() for name in ctx.layers}


@register_criterion("l1", description="sum of |kernel weights| of the filter (Li et al. 2017)")
def _l1(ctx: Context) -> dict[str, np.ndarray]:
    return {name: w.abs().sum(1).numpy() for name, w in _weights(ctx).items()}


@register_criterion("l2", description="L2 norm of the filter's kernel weights")
def _l2(ctx: Context) -> dict[str, np.ndarray]:
    return {name: w.norm(dim=1).numpy() for name, w in _weights(ctx).items()}


def _channel_stats(ctx: Context) -> dict[str, dict[str, np.ndarray]]:
    """Per channel at each layer's read point: mean |activation| and fraction of zeros."""
    if "activation_stats" in ctx.details:
        return ctx.details["activation_stats"]
    modules = dict(ctx.model.named_modules())
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in ctx.layers}

    def hook(name):
        def record(module, args, out):
            dims = [d for d in range(out.dim()) if d != 1]
            acc = sums[name]
            acc[0] = acc[0] + out.detach().abs().double().sum(dims)
            acc[1] = acc[1] + (out.detach() == 0).double().sum(dims)
            acc[2] += out.numel() // out.shape[1]
        return record

    handles = [modules[ctx.points[name]].register_forward_hook(hook(name)) for name in ctx.layers]
    try:
        with torch.no_grad():
            for x, _ in ctx.data.batches(ctx.batch_size):
                ctx.model(x)
    finally:
        for handle in handles:
            handle.remove()
    stats = {name: {"mean": (s / n).numpy(), "apoz": (z / n).numpy()} for name, (s, z, n) in sums.items()}
    ctx.details["activation_stats"] = stats
    return stats


@register_criterion("mean", needs_data=True,
                    description="mean |activation| of the channel where the next layer reads it")
def _mean(ctx: Context) -> dict[str, np.ndarray]:
    return {name: s["mean"] for name, s in _channel_stats(ctx).items()}


@register_criterion("apoz", higher_is_significant=False, needs_data=True,
                    description="average percentage of zeros of the channel (Hu et al. 2016); "
                                "a high APoZ means little significance")
def _apoz(ctx: Context) -> dict[str, np.ndarray]:
    return {name: s["apoz"] for name, s in _channel_stats(ctx).items()}


@register_criterion("taylor", needs_data=True,
                    description="first-order Taylor: |mean over positions of activation x "
                                "gradient of the loss|, averaged over images (Molchanov et al. 2017)")
def _taylor(ctx: Context) -> dict[str, np.ndarray]:
    modules = dict(ctx.model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    handles = [modules[ctx.points[name]].register_forward_hook(_keep(name, captured))
               for name in ctx.layers]
    totals = {name: 0.0 for name in ctx.layers}
    count = 0
    try:
        for x, y in ctx.data.batches(ctx.batch_size):
            with torch.enable_grad():
                logits = ctx.model(x.detach().requires_grad_(True))
                target = y if y is not None else logits.argmax(1)
                loss = F.cross_entropy(logits, target, reduction="sum")
                grads = torch.autograd.grad(loss, [captured[n] for n in ctx.layers])
            for name, grad in zip(ctx.layers, grads, strict=True):
                prod = (captured[name].detach() * grad).double()
                per_image = prod.flatten(2).mean(2) if prod.dim() > 2 else prod
                totals[name] = totals[name] + per_image.abs().sum(0)
            count += len(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (t / count).numpy() for name, t in totals.items()}


def _keep(name: str, captured: dict[str, torch.Tensor]):
    def hook(module, args, out):
        captured[name] = out
        return out.clone()  # an in-place op downstream must not change the kept tensor

    return hook


@register_criterion("resilience", needs_data=True,
                    description="loss increase when the filter's output is removed (stuck at 0) "
                                "or, with a sigma, perturbed by Gaussian errors of relative std "
                                "sigma; measured by the campaign engine, with CIs")
def _resilience(ctx: Context) -> dict[str, np.ndarray]:
    modules = dict(ctx.model.named_modules())
    error = StuckAt(0.0) if ctx.sigma is None else Gaussian(std=ctx.sigma, scale="rel")
    trials = 1 if ctx.sigma is None else ctx.trials
    scenarios = {(name, i): Scenario.single(Site(ctx.points[name], "output", channels=(i,)), error)
                 for name in ctx.layers for i in range(_filters(modules[name]))}
    campaign = Campaign(ctx.model, ctx.data, scenarios.values(), trials=trials, seed=ctx.seed,
                        batch_size=ctx.batch_size, name="resilience")
    campaign.run(ctx.engine or LocalEngine(progress=False))
    clean_loss = _clean_loss(ctx.model, ctx.data, ctx.batch_size)
    clean_acc = campaign.clean_accuracy()
    summaries = dict(zip(scenarios, campaign.summaries([s.key for s in scenarios.values()]),
                         strict=True))
    detail = {name: [] for name in ctx.layers}
    for (name, _), s in summaries.items():
        detail[name].append({"accuracy_drop_pp": 100 * (clean_acc - s.accuracy),
                             "ci_low_pp": 100 * (clean_acc - s.ci_high),
                             "ci_high_pp": 100 * (clean_acc - s.ci_low),
                             "loss_increase": s.loss - clean_loss, "trials": s.trials})
    ctx.details["resilience"] = {"error": error.label(), "clean_accuracy": clean_acc,
                                 "clean_loss": clean_loss, "images": len(ctx.data), "filters": detail}
    return {name: np.array([r["loss_increase"] for r in rows]) for name, rows in detail.items()}


def _filters(module: nn.Module) -> int:
    return module.weight.shape[0]


@torch.no_grad()
def _clean_loss(model: nn.Module, data: EvalData, batch_size: int) -> float:
    total, n = 0.0, 0
    for x, y in data.batches(batch_size):
        logits = model(x).double()
        target = y if y is not None else logits.argmax(1)
        total += float(F.cross_entropy(logits, target, reduction="sum"))
        n += len(x)
    return total / n


@dataclass
class Significance:
    """Raw scores per criterion and layer (one value per output filter), plus details."""

    layers: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    details: dict[str, Any] = field(default_factory=dict)

    def oriented(self, criterion: str) -> dict[str, np.ndarray]:
        """Scores turned so that higher always means more significant (APoZ: 1 - APoZ)."""
        raw = self._get(criterion)
        if get_criterion(criterion).higher_is_significant:
            return raw
        return {name: 1.0 - v if criterion == "apoz" else -v for name, v in raw.items()}

    def normalized(self, criterion: str, scope: str = "layer") -> dict[str, np.ndarray]:
        """Oriented scores min-max scaled to [0, 1] per layer, or over all layers ("global")."""
        if scope not in ("layer", "global"):
            raise InvalidParameterError(f"scope must be 'layer' or 'global'. Got {scope!r}.")
        oriented = self.oriented(criterion)
        if scope == "layer":
            return {name: _minmax(v, v) for name, v in oriented.items()}
        everything = np.concatenate(list(oriented.values()))
        return {name: _minmax(v, everything) for name, v in oriented.items()}

    def _get(self, criterion: str) -> dict[str, np.ndarray]:
        if criterion not in self.scores:
            raise UnknownNameError(f"Criterion {criterion!r} was not computed "
                                   f"(computed: {', '.join(self.scores)}).")
        return self.scores[criterion]


def _minmax(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    low, high = float(np.min(reference)), float(np.max(reference))
    if not high > low:
        return np.ones_like(values, dtype=float)
    return (values - low) / (high - low)


def compute_significance(model: nn.Module, data: EvalData | None = None,
                         criteria: Sequence[str] = ("l1", "l2"), layers: Sequence[str] | None = None,
                         *, batch_size: int = 250, sigma: float | None = None, trials: int = 3,
                         seed: int = 0, engine: LocalEngine | None = None) -> Significance:
    """Score every output filter of the chosen layers (default: every Conv2d) by each criterion.

    `data` is the calibration data of the data-driven criteria. For `resilience`, `sigma`
    None removes each filter (one deterministic trial), a number perturbs it with Gaussian
    errors of that relative std over `trials` trials.

    >>> sig = compute_significance(model, data.subset(500), ["l1", "taylor"])  # doctest: +SKIP
    """
    chosen = [get_criterion(c) for c in dict.fromkeys(criteria)]
    if not chosen:
        raise InvalidParameterError("Give at least one significance criterion.")
    names = select_layers(model, list(layers) if layers else ["Conv2d"])
    modules = dict(model.named_modules())
    bad = [n for n in names if not isinstance(modules[n], nn.Conv2d | nn.Linear)]
    if bad:
        raise InvalidParameterError(f"Significance applies to Conv2d and Linear layers; not to {bad[0]!r}.")
    needs = [c.name for c in chosen if c.needs_data]
    if needs and data is None:
        raise InvalidParameterError(f"Criteria {', '.join(needs)} need calibration data.")
    if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
        raise InvalidParameterError(f"sigma must be a number > 0. Got {sigma!r}.")
    model.eval()
    ctx = Context(model, names, data, read_points(model), batch_size, sigma, trials, seed, engine)
    scores = {c.name: {k: np.asarray(v, dtype=float) for k, v in c.fn(ctx).items()} for c in chosen}
    details = {k: v for k, v in ctx.details.items() if k != "activation_stats"}
    details["read_points"] = {n: ctx.points[n] for n in names}
    return Significance(names, scores, details)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 3 values."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(_stats.spearmanr(a, b).statistic)


def agreement(sig: Significance, criteria: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Spearman rho of oriented scores for every pair of criteria, per layer."""
    names = list(criteria or sig.scores)
    rows = []
    for a, b in itertools.combinations(names, 2):
        oa, ob = sig.oriented(a), sig.oriented(b)
        rows += [{"layer": layer, "a": a, "b": b, "rho": spearman(oa[layer], ob[layer])}
                 for layer in sig.layers]
    return rows


def filter_rows(sig: Significance, classes: Mapping[str, Sequence[str]] | None = None,
                rank_by: str | None = None) -> list[dict[str, Any]]:
    """The per-filter table: layer, filter, every criterion's raw score, normalized, class."""
    rank_by = rank_by or next(iter(sig.scores))
    norm = sig.normalized(rank_by)
    rows = []
    for layer in sig.layers:
        for i in range(len(norm[layer])):
            row = {"layer": layer, "filter": i}
            row.update({c: float(sig.scores[c][layer][i]) for c in sig.scores})
            row[f"{rank_by}_normalized"] = float(norm[layer][i])
            if classes is not None:
                row["class"] = classes[layer][i]
            rows.append(row)
    return rows


def scores_for(sig: Significance, criterion: str) -> dict[str, torch.Tensor]:
    """Oriented scores of one criterion as tensors (the input of pruning's unit_scores)."""
    return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in sig.oriented(criterion).items()}


__all__ = ["Context", "Criterion", "Significance", "agreement", "compute_significance",
           "filter_rows", "get_criterion", "list_criteria", "register_criterion", "scores_for",
           "spearman"]
