"""The pruning experiment: choose filters, mask them (measured through the engine), remove
them physically (Torch-Pruning), check that both agree, fine-tune, and measure accuracy,
MACs, parameters and latency before and after.

>>> result = prune_analysis(model, data, PruneSpec(ratio=0.3), run)   # doctest: +SKIP
>>> save_pruned(result.pruned, result.plan, "runs/p/pruned")          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from approxmap.analysis.classify import CLASSES, classify_by_budget, classify_by_thresholds
from approxmap.analysis.results import Result, json_safe, register_result
from approxmap.analysis.significance import compute_significance, get_criterion, scores_for
from approxmap.campaign.campaign import Campaign
from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, InvalidParameterError
from approxmap.core.latency import measure_latency
from approxmap.core.layers import cast_to_model, count_macs
from approxmap.engine.base import eval_mode
from approxmap.engine.inject import Injector
from approxmap.pruning.finetune import finetune
from approxmap.pruning.masking import mask_injections, mask_scenario
from approxmap.pruning.physical import parameter_count, prune_model
from approxmap.pruning.plan import (
    PruningPlan,
    check_plan,
    check_ratio,
    plan_by_layer_ratios,
    plan_by_ratio,
    unit_scores,
)
from approxmap.pruning.saved import save_pruned
from approxmap.pruning.units import (
    Units,
    masking_notes,
    pruning_units,
    read_points,
    require_units,
)

MAX_LATENCY_BATCH = 4096
# Physical and masked logits may differ by float rounding only: relative to the logits' scale.
MASK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PruneSpec:
    """How the filters to remove are chosen (exactly one of ratio, layer_ratios, by_class,
    plan), fine-tuning, and the latency measurement.

    Raises:
        InvalidParameterError: none or several ways given, a ratio outside [0, 1), epochs
            < 0, lr <= 0, threads outside [1, CPU count], a latency batch outside
            [1, 4096], repeats < 1.
    """

    ratio: float | None = None
    layer_ratios: Mapping[str, float] | None = None
    by_class: str | None = None
    plan: PruningPlan | None = None
    criterion: str = "l1"
    classes: tuple[str, ...] = CLASSES
    thresholds: tuple[float, ...] | None = None
    budget_pp: float | None = None
    finetune_epochs: int = 0
    lr: float = 0.01
    threads: int = 1
    latency_batch: int = 1
    repeats: int = 30
    calib_images: int = 1000
    base: str = "custom"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ways = [w for w in ("ratio", "layer_ratios", "by_class", "plan") if getattr(self, w) is not None]
        if len(ways) != 1:
            raise InvalidParameterError(
                "Choose the filters in exactly one way: ratio, layer_ratios, by_class or plan"
                + (f" (got {', '.join(ways)})." if ways else "."))
        get_criterion(self.criterion)
        if self.ratio is not None:
            check_ratio(self.ratio)
        for layer, ratio in (self.layer_ratios or {}).items():
            check_ratio(ratio, f"The ratio of {layer!r}")
        if self.by_class is not None and self.by_class != "prunable":
            raise InvalidParameterError(f"by_class removes the 'prunable' class. Got {self.by_class!r}.")
        _check_int("finetune_epochs", self.finetune_epochs, 0, 10_000)
        if not (isinstance(self.lr, float | int) and 0 < self.lr < 100):
            raise InvalidParameterError(f"The learning rate must be in (0, 100). Got {self.lr!r}.")
        _check_int("threads", self.threads, 1, os.cpu_count() or 1)
        _check_int("latency_batch", self.latency_batch, 1, MAX_LATENCY_BATCH)
        _check_int("repeats", self.repeats, 1, 100_000)

    @property
    def mode(self) -> str:
        return next(w for w in ("ratio", "layer_ratios", "by_class", "plan")
                    if getattr(self, w) is not None)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterError(f"{name} must be an integer in [{low}, {high}]. Got {value!r}.")


@register_result("prune")
@dataclass
class PruneResult(Result):
    """What prune.json holds; `pruned` and `plan` are the pruned model and its plan."""

    model: str
    dataset: str
    images: int
    selection: str
    how: dict[str, Any]
    removed_filters: dict[str, int]
    before: dict[str, Any]
    after: dict[str, Any]
    finetune_epochs: int
    left_out: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    pruned: nn.Module | None = field(default=None, repr=False, compare=False)
    plan: PruningPlan | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        keys = ("model", "dataset", "images", "selection", "how", "removed_filters", "before",
                "after", "finetune_epochs", "left_out", "files")
        return json_safe({**{k: getattr(self, k) for k in keys}, **self.extra})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruneResult:
        keys = ("model", "dataset", "images", "selection", "how", "removed_filters", "before",
                "after", "finetune_epochs", "left_out", "files")
        try:
            values = {k: data[k] for k in keys if k in data}
            values.setdefault("selection", "")
            return cls(**values, extra={k: v for k, v in data.items() if k not in keys})
        except TypeError as exc:
            raise InvalidParameterError(f"Not a prune result: {exc}") from None

    def write_artifacts(self, directory: Path) -> list[Path]:
        """The pruned model as pruned.json (the plan) + pruned.safetensors (its weights)."""
        if self.pruned is None or self.plan is None:
            return []
        files = list(save_pruned(self.pruned, self.plan, directory / "pruned"))
        self.files = [f.name for f in files]
        return files


def prune_analysis(model: nn.Module, data: EvalData, spec: PruneSpec, run: Run | None = None,
                   train_data: EvalData | None = None) -> PruneResult:
    """Choose, mask, remove, check, fine-tune (with `train_data`), measure.

    Raises:
        InvalidParameterError: the plan does not fit the model, or fine-tuning was asked for
            without training data.
        ApproxmapError: the physically pruned model differs from the masked one beyond
            float rounding (a structure masking does not reproduce).
    """
    run = run or Run()
    if spec.finetune_epochs and train_data is None:
        raise InvalidParameterError("Fine-tuning needs training data.")
    sample = data.sample(1)
    units = pruning_units(model, sample)
    if spec.plan is None:  # choosing filters needs something to choose from
        require_units(units, model)
    plan, how = _make_plan(model, data, spec, sample, units, run)
    before = measure(model, data, sample, spec, run)
    scenario = mask_scenario(units, plan, read_points(model))
    masked = before["accuracy"]
    if scenario is not None:
        campaign = Campaign(model, data, [scenario], run.with_(trials=1), name="prune-masked")
        campaign.run()
        masked = campaign.summaries()[0].accuracy
    pruned = prune_model(model, plan, sample, units)
    after = measure(pruned, data, sample, spec, run)
    after["masked_accuracy"] = masked
    after["max_logit_difference_vs_masked"] = _check_masking(model, pruned, units, plan, data)
    if spec.finetune_epochs:
        finetune(pruned, train_data, spec.finetune_epochs, lr=spec.lr, seed=run.seed)
        after["finetuned_accuracy"] = _accuracy(pruned, data, run)
    return PruneResult(
        run.names.get("model", "custom"), run.names.get("dataset", data.name), len(data),
        data.selection, how, {k: len(v) for k, v in plan.removed.items()}, before, after,
        spec.finetune_epochs, dict(units.left_out), extra=dict(spec.extra), pruned=pruned,
        plan=plan)


def _make_plan(model, data, spec: PruneSpec, sample, units: Units, run: Run
               ) -> tuple[PruningPlan, dict]:
    meta = {"base": spec.base, "input_shape": tuple(sample.shape[1:])}
    if spec.plan is not None:
        plan = PruningPlan(spec.plan.removed, spec.base, meta["input_shape"], spec.plan.meta)
        check_plan(plan, units)
        return plan, {"mode": "plan"}
    calib = data.subset(min(spec.calib_images, len(data))) if data.x is not None else data
    sig = compute_significance(model, calib, [spec.criterion], run=run)
    scores = unit_scores(units, scores_for(sig, spec.criterion))
    info = {"criterion": spec.criterion}
    if spec.ratio is not None:
        return plan_by_ratio(units, scores, spec.ratio, **meta, meta=info), {"mode": "ratio", **info}
    if spec.layer_ratios is not None:
        return (plan_by_layer_ratios(units, scores, spec.layer_ratios, **meta, meta=info),
                {"mode": "layer-ratios", **info})
    if spec.budget_pp is None:
        labels = classify_by_thresholds(sig, spec.criterion, spec.classes, spec.thresholds)
        how = {"mode": "by-class", "thresholds": list(spec.thresholds or ()) or "default"}
    else:
        labels, found = classify_by_budget(model, data, sig, spec.criterion, spec.budget_pp,
                                           [c for c in spec.classes if c != "approximable"],
                                           run=run.with_(trials=1))
        how = {"mode": "by-class", "budget_pp": spec.budget_pp,
               "masked_drop_pp": found["final_drop_pp"]}
    removed = {}
    for unit in units:  # a coupled filter goes only if it is prunable in every convolution
        members = [labels[c] for c in unit.convs if c in labels]
        idx = tuple(i for i in range(unit.channels)
                    if members and all(m[i] == spec.by_class for m in members))
        if idx:
            removed[unit.name] = idx
    plan = PruningPlan(removed, **meta, meta={"criterion": spec.criterion, **how})
    check_plan(plan, units)
    return plan, {**how, "criterion": spec.criterion}


def _accuracy(model: nn.Module, data: EvalData, run: Run) -> float:
    return Campaign(model, data, run=run, name="clean").clean_accuracy()


def measure(model: nn.Module, data: EvalData, sample: torch.Tensor, spec: PruneSpec,
            run: Run) -> dict[str, Any]:
    """Accuracy, MACs (flop_counter), parameters and CPU latency of one model."""
    inputs = cast_to_model(model, sample[:1].expand(spec.latency_batch, *sample.shape[1:]))
    with eval_mode(model):
        latency = measure_latency(model, inputs, threads=spec.threads, repeats=spec.repeats)
        macs = count_macs(model, cast_to_model(model, sample[:1]))[""]
    return {"accuracy": _accuracy(model, data, run), "macs": macs,
            "params": parameter_count(model), "latency_ms": latency.median_ms,
            "latency": latency.to_dict()}


def _tolerance(dtype: torch.dtype) -> float:
    """Relative logit gap that float rounding explains: MASK_TOLERANCE in float32, a few
    rounding steps of the dtype in bfloat16/float16 (the sums run in other orders)."""
    return max(MASK_TOLERANCE, 16 * torch.finfo(dtype).eps) if dtype.is_floating_point else (
        MASK_TOLERANCE)


def _check_masking(model, pruned, units, plan, data) -> float:
    """Max |logit difference| of pruned vs masked on 16 samples; an error beyond rounding."""
    x = cast_to_model(model, data.sample(16))
    with torch.no_grad(), Injector(model, mask_injections(units, plan, read_points(model)),
                                   seed=0) as masked, eval_mode(pruned):
        reference = masked(x)
        gap = float((reference - pruned(x)).abs().max())
    scale = max(1.0, float(reference.abs().max()))
    if gap > _tolerance(reference.dtype) * scale:
        by_name = {u.name: u for u in units}
        notes = masking_notes(read_points(model), [c for name in plan.removed
                                                   for c in by_name[name].convs])
        why = (f" (layer {next(iter(notes))}: {next(iter(notes.values()))})" if notes else
               "; please report the model")
        raise ApproxmapError(
            f"The physically pruned model differs from the masked one by {gap:.3g} in the logits "
            f"(more than float rounding); masking does not reproduce removal for this model's "
            f"structure, so no result is reported{why}.")
    return gap


__all__ = ["PruneResult", "PruneSpec", "measure", "prune_analysis"]
