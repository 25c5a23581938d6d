"""Per-filter significance of Conv2d (and Linear) layers by several criteria, and their agreement.

Criteria (a registry, `list_criteria()`): weight-based `l1` (Li et al., ICLR 2017) and `l2`;
BatchNorm-aware `bn_gamma` (|γ| of the BatchNorm after the layer, Liu et al., "Network
Slimming", ICCV 2017) and `l1_folded` (the L1 norm of the filter with the BatchNorm folded
in: Σ|w| · |γ| / sqrt(running_var + eps)); activation-based `mean` (mean |activation| where
the next layer reads the channel) and `apoz` (average percentage of zeros there, Hu et al.
2016); gradient-based `taylor` (|activation x gradient|, Molchanov et al., ICLR 2017); and
`resilience`, the loss increase when the filter's output is removed (or perturbed),
measured through the campaign engine with confidence intervals and stored in the run.

>>> sig = compute_significance(model, data, ["l1", "apoz"])      # doctest: +SKIP
>>> sig.oriented("apoz")["features.conv1_1"]                     # higher = more significant
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

from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.errors import Gaussian, StuckAt
from approxmap.core.exceptions import InvalidParameterError, UnknownNameError
from approxmap.core.layers import cast_to_model, executed_modules, type_name
from approxmap.core.registry import Registry
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site, select_layers
from approxmap.engine.base import eval_mode
from approxmap.engine.calibrate import check_output, run_model
from approxmap.pruning.units import ReadPoint, masking_notes, read_points, warn_masking

# Criteria that read (or mask) channels at the read point: an unknown op after it is warned of.
READ_POINT_CRITERIA = ("mean", "apoz", "resilience")


@dataclass
class Context:
    """What a criterion may use: the model, its layers, data, read points, the run, options."""

    model: nn.Module
    layers: list[str]
    data: EvalData | None
    points: dict[str, ReadPoint]
    run: Run
    sigma: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Criterion:
    """A significance criterion: `fn(context) -> {layer: scores per filter}`."""

    name: str
    fn: Callable[[Context], dict[str, np.ndarray]]
    higher_is_significant: bool = True
    needs_data: bool = False
    description: str = ""


_CRITERIA: Registry[Criterion] = Registry("significance criterion",
                                                  plural="significance criteria")


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


def _modules(ctx: Context) -> dict[str, nn.Module]:
    return dict(ctx.model.named_modules())


def _weights(ctx: Context) -> dict[str, torch.Tensor]:
    modules = _modules(ctx)
    return {name: modules[name].weight.detach().flatten(1).double() for name in ctx.layers}


def _bn_scale(ctx: Context, name: str, filters: int) -> torch.Tensor:
    """|γ| / sqrt(var + eps) of the BatchNorm after `name` (ones when there is none)."""
    norm = ctx.points[name].norm if name in ctx.points else None
    if norm is None:
        return torch.ones(filters, dtype=torch.float64)
    bn = _modules(ctx)[norm]
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones(filters)
    return gamma.abs() / (bn.running_var.detach().double() + bn.eps).sqrt()


@register_criterion("l1", description="sum of |kernel weights| of the filter (Li et al. 2017)")
def _l1(ctx: Context) -> dict[str, np.ndarray]:
    return {name: w.abs().sum(1).numpy() for name, w in _weights(ctx).items()}


@register_criterion("l2", description="L2 norm of the filter's kernel weights")
def _l2(ctx: Context) -> dict[str, np.ndarray]:
    return {name: w.norm(dim=1).numpy() for name, w in _weights(ctx).items()}


@register_criterion("bn_gamma", description="|gamma| of the BatchNorm after the filter (Liu et al. "
                                            "2017, network slimming); 1 for layers without one")
def _bn_gamma(ctx: Context) -> dict[str, np.ndarray]:
    modules = _modules(ctx)
    out = {}
    for name in ctx.layers:
        norm = ctx.points[name].norm if name in ctx.points else None
        filters = modules[name].weight.shape[0]
        weight = modules[norm].weight if norm is not None else None
        out[name] = (weight.detach().double().abs().numpy() if weight is not None
                     else np.ones(filters))
    return out


@register_criterion("l1_folded", description="L1 norm of the filter with its BatchNorm folded in: "
                                             "sum|w| * |gamma| / sqrt(running_var + eps)")
def _l1_folded(ctx: Context) -> dict[str, np.ndarray]:
    return {name: (w.abs().sum(1) * _bn_scale(ctx, name, len(w))).numpy()
            for name, w in _weights(ctx).items()}


def _channel_stats(ctx: Context) -> dict[str, dict[str, np.ndarray]]:
    """Per channel where the next layer reads it (after any functional activation):
    mean |activation| and the fraction of exact zeros, over the data."""
    if "activation_stats" in ctx.details:
        return ctx.details["activation_stats"]
    modules = _modules(ctx)
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in ctx.layers}

    def hook(name):
        point = ctx.points[name]

        def record(module, args, out):
            value = point.activate(out.detach())
            dims = [d for d in range(value.dim()) if d != 1]
            acc = sums[name]
            acc[0] = acc[0] + value.abs().double().sum(dims).cpu()
            acc[1] = acc[1] + (value == 0).double().sum(dims).cpu()
            acc[2] += value.numel() // value.shape[1]
        return record

    handles = [modules[ctx.points[name].module].register_forward_hook(hook(name))
               for name in ctx.layers]
    try:
        with torch.no_grad(), eval_mode(ctx.model):
            for x, _ in ctx.data.batches(ctx.run.batch_size):
                run_model(ctx.model, cast_to_model(ctx.model, x))
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
                    description="average percentage of zeros of the channel after its activation "
                                "(Hu et al. 2016); a high APoZ means little significance")
def _apoz(ctx: Context) -> dict[str, np.ndarray]:
    return {name: s["apoz"] for name, s in _channel_stats(ctx).items()}


@register_criterion("taylor", needs_data=True,
                    description="first-order Taylor: |mean over positions of activation x "
                                "gradient of the loss|, averaged over images (Molchanov et al. 2017)")
def _taylor(ctx: Context) -> dict[str, np.ndarray]:
    modules = _modules(ctx)
    captured: dict[str, torch.Tensor] = {}
    handles = [modules[ctx.points[name].module].register_forward_hook(_keep(name, captured))
               for name in ctx.layers]
    totals = {name: 0.0 for name in ctx.layers}
    count = 0
    try:
        with eval_mode(ctx.model):
            for x, y in ctx.data.batches(ctx.run.batch_size):
                with torch.enable_grad():
                    logits = run_model(ctx.model, cast_to_model(ctx.model, x).requires_grad_(True))
                    target = y if y is not None else logits.argmax(1)
                    loss = F.cross_entropy(logits.float(), target, reduction="sum")
                    grads = torch.autograd.grad(loss, [captured[n] for n in ctx.layers])
                for name, grad in zip(ctx.layers, grads, strict=True):
                    prod = (captured[name].detach() * grad).double()
                    per_image = prod.flatten(2).mean(2) if prod.dim() > 2 else prod
                    totals[name] = totals[name] + per_image.abs().sum(0).cpu()
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
                    description="loss increase when the filter's output is removed (zero where "
                                "it is read) or, with a sigma, perturbed by Gaussian errors of "
                                "relative std sigma; measured by the campaign engine, with CIs")
def _resilience(ctx: Context) -> dict[str, np.ndarray]:
    modules = _modules(ctx)
    run = ctx.run.with_(trials=1) if ctx.sigma is None else ctx.run
    scenarios = {}
    for name in ctx.layers:
        point = ctx.points[name]
        error = StuckAt(point.zero) if ctx.sigma is None else Gaussian(std=ctx.sigma, scale="rel")
        for i in range(modules[name].weight.shape[0]):
            scenarios[(name, i)] = Scenario.single(Site(point.module, "output", channels=(i,)), error)
    campaign = Campaign(ctx.model, ctx.data, scenarios.values(), run, name="resilience")
    campaign.run()
    clean_loss = campaign.calibration.loss
    clean_acc = campaign.clean_accuracy()
    summaries = dict(zip(scenarios, campaign.summaries([s.key for s in scenarios.values()]),
                         strict=True))
    detail = {name: [] for name in ctx.layers}
    for (name, _), s in summaries.items():
        detail[name].append({"accuracy_drop_pp": 100 * (clean_acc - s.accuracy),
                             "ci_low_pp": 100 * (clean_acc - s.ci_high),
                             "ci_high_pp": 100 * (clean_acc - s.ci_low),
                             "loss_increase": s.loss - clean_loss, "trials": s.trials})
    label = "removed" if ctx.sigma is None else Gaussian(std=ctx.sigma, scale="rel").label()
    ctx.details["resilience"] = {"error": label, "clean_accuracy": clean_acc,
                                 "clean_loss": clean_loss, "images": len(ctx.data), "filters": detail}
    return {name: np.array([r["loss_increase"] for r in rows]) for name, rows in detail.items()}


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
    finite = reference[np.isfinite(reference)]
    if not len(finite):
        return np.ones_like(values, dtype=float)
    low, high = float(np.min(finite)), float(np.max(finite))
    if not high > low:
        return np.ones_like(values, dtype=float)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def significance_layers(model: nn.Module, layers: Sequence[str] | None,
                        sample: torch.Tensor | None) -> list[str]:
    """The chosen layers (default: every Conv2d that runs on `sample`, or every Conv2d
    when no sample is given); float Conv2d/Linear only.

    Raises:
        InvalidParameterError: a chosen layer is not a float Conv2d or Linear, or by default
            the model has no float Conv2d (the type of its convolutions named, e.g.
            QuantizedConv2d, as `approxmap layers` shows it).
    """
    modules = dict(model.named_modules())
    if not layers and not any(type(m) is nn.Conv2d for m in modules.values()):
        convs = [(n, type_name(m)) for n, m in modules.items() if "Conv" in type_name(m)]
        found = f"; {convs[0][0]!r} is a {convs[0][1]}" if convs else ""
        raise InvalidParameterError(
            f"Significance applies to float Conv2d and Linear layers; the model has no float "
            f"Conv2d{found}.")
    names = select_layers(model, list(layers) if layers else ["Conv2d"],
                          None if sample is None else executed_modules(model, sample))
    bad = [n for n in names if type(modules[n]) not in (nn.Conv2d, nn.Linear)]
    if bad:
        raise InvalidParameterError(
            f"Significance applies to float Conv2d and Linear layers; {bad[0]!r} is a "
            f"{type_name(modules[bad[0]])}.")
    return names


def compute_significance(model: nn.Module, data: EvalData | None = None,
                         criteria: Sequence[str] = ("l1", "l2"), layers: Sequence[str] | None = None,
                         *, sigma: float | None = None, run: Run | None = None) -> Significance:
    """Score every output filter of the chosen layers (default: every Conv2d) by each criterion.

    `data` is the calibration data of the data-driven criteria. For `resilience`, `sigma`
    None removes each filter (one deterministic trial), a number perturbs it with Gaussian
    errors of that relative std over `run.trials` trials (stored in `run.store`).

    Raises:
        UnknownNameError: an unknown criterion or layer.
        InvalidParameterError: no criterion, data missing for a data-driven criterion, a
            sigma <= 0, or a layer that is not a float Conv2d/Linear.
        DataError: the model does not return (batch, classes) logits for `data` (a tuple or
            dict: pick them with `logits_of`).

    >>> sig = compute_significance(model, data.subset(500), ["l1", "taylor"])  # doctest: +SKIP
    """
    chosen = [get_criterion(c) for c in dict.fromkeys(criteria)]
    if not chosen:
        raise InvalidParameterError("Give at least one significance criterion.")
    needs = [c.name for c in chosen if c.needs_data]
    if needs and data is None:
        raise InvalidParameterError(f"Criteria {', '.join(needs)} need calibration data.")
    if sigma is not None and not (isinstance(sigma, int | float) and math.isfinite(sigma)
                                  and 0 < sigma <= 1e6):
        raise InvalidParameterError(f"sigma must be a number in (0, 1e6]. Got {sigma!r}.")
    if data is not None:  # the output check every analysis makes before its work
        check_output(model, data)
    names = significance_layers(model, layers, data.sample(1) if data is not None else None)
    ctx = Context(model, names, data, read_points(model), run or Run(), sigma)
    uncertain = masking_notes(ctx.points, names)
    if uncertain and any(c.name in READ_POINT_CRITERIA for c in chosen):
        warn_masking(uncertain)
    scores = {c.name: {k: np.asarray(v, dtype=float) for k, v in c.fn(ctx).items()} for c in chosen}
    details = {k: v for k, v in ctx.details.items() if k != "activation_stats"}
    details["read_points"] = {n: ctx.points[n].module for n in names}
    functional = {n: ctx.points[n].activation for n in names if ctx.points[n].activation}
    if functional:
        details["functional_activations"] = functional
    if uncertain:
        details["uncertain_read_points"] = uncertain
    return Significance(names, scores, details)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 3 values."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0 or not (
            np.isfinite(a).all() and np.isfinite(b).all()):
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


def trust(sig: Significance, reference: str = "resilience") -> dict[str, dict[str, float]]:
    """How well each criterion ranks filters like the measured `reference` (Spearman rho per
    layer and their mean over layers with a defined rho); {} when it was not computed."""
    if reference not in sig.scores:
        return {}
    ref = sig.oriented(reference)
    out = {}
    for criterion in sig.scores:
        if criterion == reference:
            continue
        mine = sig.oriented(criterion)
        per_layer = {layer: spearman(mine[layer], ref[layer]) for layer in sig.layers}
        defined = [v for v in per_layer.values() if math.isfinite(v)]
        out[criterion] = {**per_layer, "mean": float(np.mean(defined)) if defined else math.nan}
    return out


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
           "significance_layers", "spearman", "trust"]
