"""A trial in progress: its generator, resolved errors, faulty parameters and counts."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from approxmap.campaign.records import TrialRecord
from approxmap.campaign.scenario import Scenario
from approxmap.engine.metrics import Counts
from approxmap.errors import ErrorModel
from approxmap.inject import Injection, apply_at_site, perturbed_parameters
from approxmap.sites import Site


@dataclass(frozen=True)
class TrialPlan:
    """One trial to compute: the scenario, the trial index and its derived seed."""

    scenario: Scenario
    trial: int
    seed: int


class ActiveTrial:
    """State of one trial while the engine streams the evaluation batches through it."""

    def __init__(self, plan: TrialPlan, model: nn.Module, site_std: dict[str, float]) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.generator = torch.Generator().manual_seed(plan.seed)
        self.injections: list[Injection] = [
            (site, error.resolve(site_std[site.key]) if error.relative else error)
            for site, error in plan.scenario.injections
        ]
        self.overrides = perturbed_parameters(model, self.injections, self.generator)
        self.params: dict[str, dict[str, torch.Tensor]] = {}
        for name, tensor in self.overrides.items():
            module, _, target = name.rpartition(".")
            self.params.setdefault(module, {})[target] = tensor
        self.at_input = self._by_module("input")
        self.at_output = self._by_module("output")
        self.counts = Counts()

    def _by_module(self, target: str) -> dict[str, list[tuple[Site, ErrorModel]]]:
        table: dict[str, list[tuple[Site, ErrorModel]]] = {}
        for site, error in self.injections:
            if site.target == target:
                table.setdefault(site.module, []).append((site, error))
        return table

    def is_clean(self) -> bool:
        """True when no injection can change anything (e.g. every error has std 0)."""
        return all(error.is_identity() for _, error in self.injections)

    def inject(self, table: dict, module: str, value: torch.Tensor) -> torch.Tensor:
        for site, error in table.get(module, ()):
            value = apply_at_site(value, site, error, self.generator)
        return value

    def record(self) -> TrialRecord:
        c = self.counts
        return TrialRecord(
            scenario=self.plan.scenario.key, trial=self.plan.trial, seed=self.plan.seed,
            n=c.n, correct1=c.correct1, correct5=c.correct5, agree=c.agree, agree5=c.agree5,
            nonfinite=c.nonfinite, loss_sum=c.loss_sum, labeled=c.labeled,
            seconds=time.perf_counter() - self.started,
        )
