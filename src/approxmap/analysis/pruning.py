"""Filter pruning: units of coupled filters, masking that equals removal, plans, physical pruning.

A *unit* is the set of convolutions whose output filters must go together (Torch-Pruning's
dependency group: residual adds tie the convolutions of a stage, depthwise convolutions
follow their producer); it is named by its first convolution. Removing filter i of a unit
is emulated by zeroing channel i where the next layers read it: after the convolution's
BatchNorm and activation (zeroing only the weights would leave BatchNorm's shift).

>>> units = pruning_units(model, data.sample(1))                       # doctest: +SKIP
>>> plan = plan_by_ratio(units, unit_scores(units, l1_scores), 0.5)   # doctest: +SKIP
>>> small = prune_model(model, plan, data.sample(1))                  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from approxmap.campaign.campaign import Campaign
from approxmap.campaign.scenario import Scenario, trial_seed
from approxmap.engine.local import LocalEngine
from approxmap.errors import StuckAt
from approxmap.exceptions import ApproxmapError, InvalidParameterError, UnknownNameError
from approxmap.registry import close_matches_hint
from approxmap.sites import Site
from approxmap.zoo.datasets import EvalData

ORDERS = ("smallest", "largest", "random")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Hardswish,
                nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Mish)
TP_INSTALL = "pip install --no-deps torch-pruning==1.6.1"


def _torch_pruning():
    try:
        import torch_pruning
    except ImportError:
        raise ApproxmapError(f"Physical pruning needs Torch-Pruning. Install it with: {TP_INSTALL}") from None
    return torch_pruning


def read_points(model: nn.Module) -> dict[str, str]:
    """For each Conv2d/Linear, the module whose output is where the next layers read its channels.

    Follows conv -> BatchNorm -> activation while each is a module called once whose output
    has a single user; e.g. {'features.conv1_1': 'features.relu1_1'}.
    """
    try:
        graph = fx.Tracer().trace(model)
    except Exception as exc:  # fx raises many kinds on untraceable code
        raise ApproxmapError(f"torch.fx cannot trace the model: {type(exc).__name__}: {exc}") from None
    modules = dict(model.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    points = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d | nn.Linear):
            continue
        point = node
        for kind in (_NORMS, _ACTIVATIONS):  # each optional, in this order
            users = list(point.users)
            nxt = users[0] if len(users) == 1 else None
            if (nxt is not None and nxt.op == "call_module" and calls[nxt.target] == 1
                    and isinstance(modules[nxt.target], kind)):
                point = nxt
        points[node.target] = point.target
    return points


@dataclass(frozen=True)
class PruneUnit:
    """Convolutions whose filters are removed together; `name` is the first one."""

    name: str
    convs: tuple[str, ...]
    channels: int

    @property
    def coupled(self) -> bool:
        return len(self.convs) > 1


def dependency_graph(model: nn.Module, sample: torch.Tensor):
    """Torch-Pruning's dependency graph of `model`, traced with one input sample."""
    tp = _torch_pruning()
    with torch.enable_grad():
        try:
            return tp.DependencyGraph().build_dependency(model, example_inputs=sample[:1],
                                                         verbose=False)
        except Exception as exc:
            raise ApproxmapError(f"Torch-Pruning cannot trace the model: {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from None


def pruning_units(model: nn.Module, sample: torch.Tensor, graph=None) -> list[PruneUnit]:
    """The prunable units of every Conv2d's output filters, in module order."""
    tp = _torch_pruning()
    graph = graph or dependency_graph(model, sample)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    name_of = {m: n for n, m in model.named_modules()}
    seen: set[str] = set()
    units = []
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d) or name in seen:
            continue
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, [0])
        members = sorted({name_of[dep.target.module] for dep, _ in group
                          if isinstance(dep.target.module, nn.Conv2d)
                          and graph.is_out_channel_pruning_fn(dep.handler)}, key=order.get)
        seen.update(members)
        units.append(PruneUnit(members[0], tuple(members), conv.out_channels))
    return units


def find_unit(units: Sequence[PruneUnit], layer: str) -> PruneUnit:
    """The unit that a convolution belongs to; UnknownNameError (with close matches) if none."""
    for unit in units:
        if layer in unit.convs:
            return unit
    names = [c for u in units for c in u.convs]
    raise UnknownNameError(f"No prunable convolution named {layer!r}.{close_matches_hint(layer, names)}")


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
    """Raise a clear error for unknown layers, bad indices or a layer left with no filter."""
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


def check_ratio(ratio: float, what: str = "--ratio") -> float:
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


def mask_injections(units: Sequence[PruneUnit], plan: PruningPlan,
                    points: Mapping[str, str]) -> list[tuple[Site, StuckAt]]:
    """(Site, StuckAt(0)) pairs that zero the plan's filters where the next layers read them."""
    check_plan(plan, units)
    by_name = {u.name: u for u in units}
    return [(Site(points[conv], "output", channels=idxs), StuckAt(0.0))
            for name, idxs in plan.removed.items() if idxs for conv in by_name[name].convs]


def prune_model(model: nn.Module, plan: PruningPlan, sample: torch.Tensor,
                units: Sequence[PruneUnit] | None = None) -> nn.Module:
    """A physically pruned copy of `model` (Torch-Pruning); the model itself is left as it was."""
    tp = _torch_pruning()
    pruned = copy.deepcopy(model).eval()
    graph = dependency_graph(pruned, sample)
    check_plan(plan, units if units is not None else pruning_units(pruned, sample, graph))
    modules = dict(pruned.named_modules())
    for name, idxs in plan.removed.items():
        if idxs:
            group = graph.get_pruning_group(modules[name], tp.prune_conv_out_channels, list(idxs))
            group.prune()
    return pruned.eval()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())




def accuracy(model: nn.Module, data: EvalData, batch_size: int = 250) -> float:
    """Top-1 accuracy (agreement with itself when unlabeled) of `model` on EvalData."""
    return Campaign(model, data, trials=1, batch_size=batch_size, name="clean").clean_accuracy()


def masked_accuracy(model: nn.Module, data: EvalData, units: Sequence[PruneUnit], plan: PruningPlan,
                    points: Mapping[str, str], batch_size: int = 250,
                    engine: LocalEngine | None = None) -> float:
    """Accuracy with the plan's filters masked (zeroed where read) through the campaign engine."""
    injections = mask_injections(units, plan, points)
    if not injections:
        return accuracy(model, data, batch_size)
    scenario = Scenario(tuple(injections))
    campaign = Campaign(model, data, [scenario], trials=1, batch_size=batch_size, name="masked")
    campaign.run(engine or LocalEngine(progress=False))
    return campaign.summaries()[0].accuracy


def sensitivity(model: nn.Module, data: EvalData, units: Sequence[PruneUnit],
                scores: Mapping[str, torch.Tensor], ratios: Sequence[float],
                orders: Sequence[str] = ("smallest",), *, layers: Sequence[str] | None = None,
                draws: int = 3, seed: int = 0, batch_size: int = 250,
                engine: LocalEngine | None = None) -> dict[str, Any]:
    """Per-layer pruning sensitivity: accuracy with k% of one layer's filters masked.

    For each layer (unit) alone, each ratio and each order (smallest / largest significance
    first, or random: the mean over `draws` seeded draws), masking through one campaign.

    >>> sensitivity(model, data, units, scores, [0.25, 0.5], ["smallest", "random"])  # doctest: +SKIP
    """
    for r in ratios:
        check_ratio(r, "A pruning ratio")
    chosen = [find_unit(units, name) for name in layers] if layers else list(units)
    points = read_points(model)
    cases = _sensitivity_cases(chosen, scores, ratios, orders, draws, seed)
    scenarios = {key: Scenario(tuple(mask_injections(units, plan, points)))
                 for key, plan in cases.items() if plan.removed}
    campaign = Campaign(model, data, scenarios.values(), trials=1, batch_size=batch_size,
                        name="sensitivity")
    campaign.run(engine or LocalEngine(progress=False))
    clean = campaign.clean_accuracy()
    acc = {key: s.accuracy for key, s in zip(scenarios, campaign.summaries(
        [s.key for s in scenarios.values()]), strict=True)}
    rows = []
    for unit in chosen:
        for order in orders:
            for ratio in ratios:
                values = [acc.get(k, clean) for k in cases if k[:3] == (unit.name, order, ratio)]
                rows.append({"layer": unit.name, "convs": list(unit.convs), "order": order,
                             "ratio": ratio, "filters": unit.channels,
                             "removed": math.floor(ratio * unit.channels + 1e-9),
                             "accuracy": sum(values) / len(values), "draws": len(values)})
    return {"clean_accuracy": clean, "images": len(data), "rows": rows}


def _sensitivity_cases(units, scores, ratios, orders, draws, seed) -> dict[tuple, PruningPlan]:
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


def finetune(model: nn.Module, train: EvalData, epochs: int = 1, *, lr: float = 0.01,
             batch_size: int = 128, seed: int = 0, flip: bool = True,
             weight_decay: float = 5e-4) -> nn.Module:
    """Fine-tune `model` in place with SGD (momentum 0.9, cosine lr); seeded shuffling and flips.

    >>> finetune(pruned, create_dataset("fashion-mnist-train"), epochs=1)  # doctest: +SKIP
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidParameterError(f"Fine-tuning epochs must be an integer >= 1. Got {epochs!r}.")
    if train.x is None or train.y is None:
        raise InvalidParameterError("Fine-tuning needs in-memory labeled training data.")
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(train.x) / batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                          weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train.x), generator=gen)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:
                continue
            x = train.x[index]
            if flip:
                x = torch.where((torch.rand(len(index), generator=gen) < 0.5)[:, None, None, None],
                                x.flip(-1), x)
            loss = torch.nn.functional.cross_entropy(model(x), train.y[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


__all__ = ["ORDERS", "PruneUnit", "PruningPlan", "accuracy", "check_plan", "check_ratio",
           "choose", "dependency_graph", "find_unit", "finetune", "mask_injections",
           "masked_accuracy", "parameter_count", "plan_by_layer_ratios", "plan_by_ratio",
           "prune_model", "pruning_units", "read_points", "sensitivity", "unit_scores"]
