"""Physical pruning with Torch-Pruning: a smaller copy of the model, checked against masking.

>>> small = prune_model(model, plan, data.sample(1))    # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from approxmap.pruning.plan import PruningPlan, check_plan
from approxmap.pruning.units import PruneUnit, dependency_graph, pruning_units, torch_pruning


def prune_model(model: nn.Module, plan: PruningPlan, sample: torch.Tensor,
                units: Sequence[PruneUnit] | None = None) -> nn.Module:
    """A physically pruned copy of `model` (Torch-Pruning); the model itself is left as it was.

    Raises:
        InvalidParameterError / UnknownNameError: the plan does not fit the model's units.
    """
    tp = torch_pruning()
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


__all__ = ["parameter_count", "prune_model"]
