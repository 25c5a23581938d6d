"""The pruning layer: units of coupled filters, read points, plans, masking that equals
removal, physical pruning with Torch-Pruning, fine-tuning, and safe saving of pruned models."""

from approxmap.pruning.finetune import finetune
from approxmap.pruning.masking import mask_injections, mask_scenario
from approxmap.pruning.physical import parameter_count, prune_model
from approxmap.pruning.plan import (
    ORDERS,
    PruningPlan,
    check_plan,
    check_ratio,
    choose,
    plan_by_layer_ratios,
    plan_by_ratio,
    unit_scores,
)
from approxmap.pruning.saved import load_pruned, read_plan, save_pruned
from approxmap.pruning.units import (
    PruneUnit,
    ReadPoint,
    dependency_graph,
    find_unit,
    pruning_units,
    read_points,
)

__all__ = ["ORDERS", "PruneUnit", "PruningPlan", "ReadPoint", "check_plan", "check_ratio",
           "choose", "dependency_graph", "finetune", "find_unit", "load_pruned",
           "mask_injections", "mask_scenario", "parameter_count", "plan_by_layer_ratios",
           "plan_by_ratio", "prune_model", "pruning_units", "read_plan", "read_points",
           "save_pruned", "unit_scores"]
