"""A trial in progress: its generator, per-site target states and counts; and the hooks that
apply it to a model that torch.fx cannot split.

Every site's target `begin`s once per trial, in scenario order (parameter targets draw their
faulty tensors then); activation targets draw afresh for every batch as it passes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from approxmap.core.errors import ErrorModel
from approxmap.core.records import Counts, TrialRecord
from approxmap.core.sites import Site
from approxmap.core.stats import SiteStats
from approxmap.engine.base import TrialPlan

Injection = tuple[Site, ErrorModel]


class ActiveTrial:
    """State of one trial while the engine streams the evaluation batches through it.

    Args:
        injections: (site, error) pairs, in scenario order.
        modules: the model's modules by name.
        site_stats: statistics per site key (from the calibration pass).
        generator: the trial's generator (on the engine's device), seeded by the plan.
    """

    def __init__(self, injections: list[Injection], modules: Mapping[str, nn.Module],
                 site_stats: Mapping[str, SiteStats], generator: torch.Generator,
                 plan: TrialPlan | None = None) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.generator = generator
        self.identity = all(site.kind.is_identity(error) for site, error in injections)
        # errors that leave most samples of a batch clean (single bit flips, low rates) at
        # activations: the engine then computes only the samples they still change
        self.sparse = any(getattr(error, "sparse", False) for _, error in injections) and all(
            site.kind.hook in ("output", "input") for site, _ in injections)
        self.at_input: dict[str, list[tuple[Site, Any]]] = {}
        self.at_output: dict[str, list[tuple[Site, Any]]] = {}
        self.params: dict[str, dict[str, torch.Tensor]] = {}
        self.calls: dict[str, tuple[Site, Any]] = {}
        for site, error in injections:
            module = modules[site.module]
            state = site.kind.begin(site, error, module, site_stats.get(site.key), generator)
            hook = site.kind.hook
            if hook == "input":
                self.at_input.setdefault(site.module, []).append((site, state))
            elif hook == "output":
                self.at_output.setdefault(site.module, []).append((site, state))
            elif hook == "parameter":
                self.params.setdefault(site.module, {}).update(site.kind.overrides(site, state))
            else:
                self.calls[site.module] = (site, state)
        self.counts = Counts()

    @classmethod
    def from_plan(cls, plan: TrialPlan, modules: Mapping[str, nn.Module],
                  site_stats: Mapping[str, SiteStats], device: torch.device) -> ActiveTrial:
        generator = torch.Generator(device=device).manual_seed(plan.seed)
        return cls(list(plan.scenario.injections), modules, site_stats, generator, plan)

    @property
    def modules(self) -> set[str]:
        """Names of the modules this trial changes."""
        return {*self.at_input, *self.at_output, *self.params, *self.calls}

    def is_clean(self) -> bool:
        """True when no injection can change anything (e.g. every error has std 0)."""
        return self.identity

    def transform_input(self, module: str, value: torch.Tensor) -> torch.Tensor:
        for site, state in self.at_input.get(module, ()):
            value = site.kind.transform(site, state, value, self.generator)
        return value

    def transform_output(self, module: str, value: torch.Tensor) -> torch.Tensor:
        for site, state in self.at_output.get(module, ()):
            value = site.kind.transform(site, state, value, self.generator)
        return value

    def call(self, name: str, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        """The module's output under this trial's parameter overrides and call targets."""
        params = self.params.get(name, {})
        if name in self.calls:
            site, state = self.calls[name]
            return site.kind.call(site, state, module, args, kwargs, params)
        if params:
            return torch.func.functional_call(module, params, args, kwargs, strict=False)
        return module(*args, **kwargs)

    def record(self) -> TrialRecord:
        plan = self.plan
        return TrialRecord(plan.scenario.key, plan.trial, plan.seed, self.counts.copy(),
                           time.perf_counter() - self.started)


@contextlib.contextmanager
def attached(model: nn.Module, trial: ActiveTrial) -> Iterator[None]:
    """Forward hooks applying `trial` to `model` (for models torch.fx cannot split).

    Input and output transforms are pre- and post-hooks; a module whose call the trial
    replaces (parameter overrides, call targets) gets a hook that returns `trial.call`.
    Every hook is removed on exit, also when the forward raises.
    """
    modules = dict(model.named_modules())
    busy: set[str] = set()  # modules being re-called by trial.call: their hooks stand aside
    handles = []
    try:
        for name in trial.modules:
            module = modules[name]
            if name in trial.at_input:
                handles.append(module.register_forward_pre_hook(_input_hook(trial, name, busy)))
            if name in trial.params or name in trial.calls:
                handles.append(module.register_forward_hook(_call_hook(trial, name, busy),
                                                            with_kwargs=True))
            if name in trial.at_output:
                handles.append(module.register_forward_hook(_output_hook(trial, name, busy)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _input_hook(trial: ActiveTrial, name: str, busy: set[str]):
    def hook(module, args):
        if name in busy:
            return None
        return (trial.transform_input(name, args[0]), *args[1:])

    return hook


def _call_hook(trial: ActiveTrial, name: str, busy: set[str]):
    def hook(module, args, kwargs, output):
        if name in busy:
            return None
        busy.add(name)
        try:  # the module's own output is discarded (the price of the hook fallback)
            return trial.call(name, module, args, kwargs)
        finally:
            busy.discard(name)

    return hook


def _output_hook(trial: ActiveTrial, name: str, busy: set[str]):
    def hook(module, args, output):
        if name in busy:
            return None
        return trial.transform_output(name, output)

    return hook


__all__ = ["ActiveTrial", "Injection", "attached"]
