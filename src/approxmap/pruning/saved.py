"""Save and load physically pruned models safely: a JSON pruning plan plus safetensors weights.

The architecture is never pickled: `<stem>.json` holds the base model spec and, per layer,
the removed filter indices; loading builds a fresh base model, replays the plan with
Torch-Pruning and loads `<stem>.safetensors` strictly.

>>> save_pruned(pruned, plan, "runs/p/pruned")      # doctest: +SKIP
>>> model = load_pruned("runs/p/pruned.json")       # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from approxmap.core.exceptions import ApproxmapError, CheckpointError, InvalidParameterError
from approxmap.core.files import read_text
from approxmap.pruning.physical import prune_model
from approxmap.pruning.plan import PruningPlan
from approxmap.zoo.checkpoints import load_weights_into
from approxmap.zoo.models import load_model


def save_pruned(model: nn.Module, plan: PruningPlan, stem: str | Path) -> tuple[Path, Path]:
    """Write `<stem>.json` (the plan) and `<stem>.safetensors` (the pruned weights)."""
    from safetensors.torch import save_file

    if not plan.input_shape:
        raise InvalidParameterError("The pruning plan needs the input shape to be replayable.")
    stem = Path(stem)
    plan_path, weights_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    try:
        plan_path.write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
        save_file(state, str(weights_path), metadata={"format": "approxmap-pruned/1"})
    except OSError as exc:
        raise ApproxmapError(f"Cannot write the pruned model {stem}: {exc.strerror or exc}") from None
    return plan_path, weights_path


def read_plan(path: str | Path) -> PruningPlan:
    """The pruning plan stored in a JSON file; CheckpointError if unreadable (also a FIFO or
    a device, refused before reading)."""
    try:
        data = json.loads(read_text(path, "pruning plan", CheckpointError))
    except ValueError as exc:
        raise CheckpointError(f"Cannot read pruning plan {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != "approxmap-pruning-plan/1":
        raise CheckpointError(f"{path} is not an approxmap pruning plan.")
    try:
        return PruningPlan.from_dict(data)
    except ApproxmapError as exc:
        raise CheckpointError(f"Pruning plan {path} is damaged: {exc}") from None


def base_model(spec: str) -> nn.Module:
    """A fresh model of the plan's base architecture (untrained when it is a zoo arch)."""
    from approxmap.zoo.archs import ARCHS, build_arch

    if spec in ARCHS:
        return build_arch(spec).eval()
    return load_model(spec)[0]


def load_pruned(plan_path: str | Path, weights: str | Path | None = None) -> nn.Module:
    """Rebuild a pruned model from its plan and load its weights (default: next to the plan)."""
    plan_path = Path(plan_path)
    plan = read_plan(plan_path)
    model = base_model(plan.base)
    pruned = prune_model(model, plan, torch.zeros((1, *plan.input_shape)))
    return load_weights_into(pruned, weights or plan_path.with_suffix(".safetensors")).eval()


__all__ = ["base_model", "load_pruned", "read_plan", "save_pruned"]
