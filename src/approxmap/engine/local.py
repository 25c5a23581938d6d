"""The local engine: runs trials in this process, prefix-cached and several per forward."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby

import torch
from torch import nn
from tqdm.auto import tqdm

from approxmap.campaign.records import TrialRecord
from approxmap.campaign.scenario import Scenario
from approxmap.engine.calibrate import Calibration
from approxmap.engine.graph import GraphRunner, stackable
from approxmap.engine.trial import ActiveTrial, TrialPlan
from approxmap.exceptions import ApproxmapError, InvalidParameterError
from approxmap.inject import Injector
from approxmap.zoo.datasets import EvalData


class LocalEngine:
    """Executes trials here. Engines differ in where trials run, never in what they compute.

    Args:
        prefix_cache: split the graph with torch.fx and run the clean prefix once per batch
            (falls back to a full forward with hooks, with one warning, if fx cannot trace).
        stack_memory_mb: activation memory (MiB) that trials stacked along the batch dimension
            may take in one forward; 0 (default) runs one trial per forward. Stacking cuts
            per-op overhead when the suffix is small, but matrix kernels may round the last
            bits differently for other batch sizes, so a stacked trial recomputed alone can
            differ in the last float bits; unstacked, it is bit-identical.
        progress: show a progress bar with ETA.
    """

    def __init__(self, prefix_cache: bool = True, stack_memory_mb: int = 0,
                 progress: bool = True) -> None:
        if stack_memory_mb < 0:
            raise InvalidParameterError(f"stack_memory_mb must be >= 0. Got {stack_memory_mb}.")
        self.prefix_cache = prefix_cache
        self.stack_memory_mb = stack_memory_mb
        self.progress = progress

    @torch.no_grad()
    def run_trials(
        self, model: nn.Module, data: EvalData, batch_size: int, plans: Sequence[TrialPlan],
        calibration: Calibration, on_finished: Callable[[list[TrialRecord]], None],
        desc: str = "trials",
    ) -> None:
        """Compute every planned trial; hand each group's records to `on_finished` when done."""
        if not plans:
            return
        runners = _Runners(model, plans) if self.prefix_cache else None
        batches = -(-len(calibration.clean_top1) // batch_size) if data.x is not None else None
        total = None if batches is None else len(plans) * batches
        with tqdm(total=total, desc=desc, unit="trial-batch", disable=not self.progress,
                  leave=False, dynamic_ncols=True) as bar:
            for group in _groups(plans):
                runner = runners.get(group[0].scenario) if runners else None
                trials = [ActiveTrial(p, model, calibration.site_std) for p in group]
                clean = [t for t in trials if t.is_clean()]
                for trial in clean:  # no error at all: the clean pass already measured it
                    trial.counts = dataclasses.replace(calibration.counts)
                bar.update(len(clean) * (batches or 0))
                noisy = [t for t in trials if not t.is_clean()]
                if noisy:
                    self._stream(model, runner, data, batch_size, noisy, calibration, bar)
                on_finished([t.record() for t in trials])

    def _stream(self, model, runner, data, batch_size, trials, calibration, bar) -> None:
        offset = 0
        for x, y in data.batches(batch_size):
            clean = calibration.clean_top1[offset:offset + len(x)]
            offset += len(x)
            if runner is None:
                for trial in trials:
                    with Injector(model, trial.injections, generator=trial.generator,
                                  overrides=trial.overrides) as run:
                        trial.counts.update(run(x), y, clean)
            else:
                self._stream_graph(runner, x, y, clean, trials, calibration)
            bar.update(len(trials))

    def _stream_graph(self, runner, x, y, clean, trials, calibration) -> None:
        cut = runner.cut(trials[0].plan.scenario.sites)
        live = runner.prefix(x, cut)
        per_forward = self._stack_size(len(x), calibration) if stackable(live) else 1
        for start in range(0, len(trials), per_forward):
            chunk = trials[start:start + per_forward]
            logits = runner.suffix(live, cut, len(chunk), *_hooks(chunk, len(x)))
            for trial, part in zip(chunk, logits.split(len(x)), strict=True):
                trial.counts.update(part, y, clean)

    def _stack_size(self, batch: int, calibration: Calibration) -> int:
        per_copy = max(calibration.sample_bytes * batch, 1)
        return max(1, int(self.stack_memory_mb * 2**20 // per_copy))


# Trials computed (and then committed) together: bounds the work an interrupt can lose
# and the memory of faulty parameters held at once; one prefix pass serves them all.
MAX_GROUP = 64


class _Runners:
    """Graph runners for groups of trials: one traced graph for all sites when possible.

    A site module nested in another site module (a block and its own conv) cannot be a
    node of the same graph, so such groups get a graph of their own; a group that no graph
    can serve (the model is not traceable) runs full forwards with hooks, said once.
    """

    def __init__(self, model: nn.Module, plans: Sequence[TrialPlan]) -> None:
        self.model = model
        self.shared: GraphRunner | None = None
        self.own: dict[frozenset[str], GraphRunner | None] = {}
        self.warned = False
        try:
            self.shared = GraphRunner(model, {s.module for p in plans for s in p.scenario.sites})
        except ApproxmapError:
            pass

    def get(self, scenario: Scenario) -> GraphRunner | None:
        if self.shared is not None:
            return self.shared
        modules = frozenset(site.module for site in scenario.sites)
        if modules not in self.own:
            try:
                self.own[modules] = GraphRunner(self.model, modules)
            except ApproxmapError as exc:
                self.own[modules] = None
                if not self.warned:
                    warnings.warn(f"{exc}; falling back to a full forward per trial (slower).",
                                  stacklevel=4)
                    self.warned = True
        return self.own[modules]


def _groups(plans: Sequence[TrialPlan]) -> Iterator[list[TrialPlan]]:
    """Trials injecting at the same modules and targets (any channels): they share one cut,
    so one prefix per batch."""

    def places(plan: TrialPlan) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({(site.module, site.target) for site in plan.scenario.sites}))

    ordered = sorted(plans, key=lambda p: (places(p), p.scenario.key, p.trial))
    for _, group in groupby(ordered, key=places):
        group = list(group)
        for start in range(0, len(group), MAX_GROUP):
            yield group[start:start + MAX_GROUP]


def _hooks(chunk: list[ActiveTrial], batch: int):
    """on_input, on_output and call_module hooks for trials stacked along the batch dim."""

    def per_trial(table_name: str):
        def hook(module: str, value: torch.Tensor) -> torch.Tensor:
            tables = [getattr(t, table_name) for t in chunk]
            if not any(module in table for table in tables):
                return value
            parts = [t.inject(table, module, part)
                     for t, table, part in zip(chunk, tables, value.split(batch), strict=True)]
            return parts[0] if len(parts) == 1 else torch.cat(parts)

        return hook

    def call_module(module_name: str, module: nn.Module, args: tuple, kwargs: dict):
        if not any(module_name in t.params for t in chunk):
            return module(*args, **kwargs)
        outs = [torch.func.functional_call(module, t.params.get(module_name, {}),
                                           (part, *args[1:]), kwargs, strict=False)
                for t, part in zip(chunk, args[0].split(batch), strict=True)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    return per_trial("at_input"), per_trial("at_output"), call_module
