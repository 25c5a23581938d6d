"""Campaigns: scenarios x seeded trials, run by an engine, kept in a store, resumable.

>>> from approxmap import Campaign, Gaussian, Scenario, Site
>>> campaign = Campaign(model, data, [Scenario.single(Site("fc"), Gaussian(std=0.5))],
...                     trials=10, seed=0)  # doctest: +SKIP
>>> campaign.run()                                                                # doctest: +SKIP
>>> campaign.summaries()[0].accuracy                                               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from approxmap.analysis.stats import Summary, mean_ci, wilson
from approxmap.campaign.records import TrialRecord
from approxmap.campaign.scenario import Scenario, trial_seed
from approxmap.campaign.store import Store
from approxmap.engine.calibrate import Calibration, calibrate
from approxmap.engine.local import LocalEngine
from approxmap.engine.trial import TrialPlan
from approxmap.exceptions import InvalidParameterError
from approxmap.zoo.datasets import EvalData


def weights_digest(model: nn.Module) -> str:
    """A short hash of the model's parameters and buffers (part of a campaign's setup)."""
    h = hashlib.blake2b(digest_size=8)
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Campaign:
    """Scenarios x trials with a seed; every trial's seed derives from (seed, scenario, index).

    Args:
        model: the network (never modified); evaluated in eval mode.
        data: evaluation data (EvalData, or a tensor pair via EvalData(x, y)).
        scenarios: the error scenarios; more can be added with `add_scenarios`.
        trials: trials per scenario (the minimum when `ci_target` is set).
        seed: the campaign seed.
        storage: None (in memory), a path to an SQLite file, or a Store.
        name: the campaign's name inside the store.
        batch_size: evaluation batch size (part of the setup: it shapes the error draws).
        ci_target: optional target half-width of the 95% CI of the mean accuracy, as a
            fraction (0.005 = 0.5 percentage points); trials are added until it is reached.
        max_trials: the most trials per scenario when `ci_target` is set.
        setup: extra facts identifying the experiment (e.g. the model and dataset names).
    """

    def __init__(self, model: nn.Module, data: EvalData, scenarios: Iterable[Scenario] = (),
                 trials: int = 10, seed: int = 0, storage: str | Path | Store | None = None,
                 name: str = "campaign", batch_size: int = 256, ci_target: float | None = None,
                 max_trials: int | None = None, setup: dict[str, Any] | None = None) -> None:
        _check_int("trials", trials, 1)
        _check_int("batch_size", batch_size, 1)
        _check_int("seed", seed, 0)
        if ci_target is not None and not 0 < ci_target < 1:
            raise InvalidParameterError(f"ci_target must be in (0, 1). Got {ci_target}.")
        self.max_trials = max_trials if max_trials is not None else max(trials, 10 * trials)
        _check_int("max_trials", self.max_trials, trials)
        self.model = model.eval()
        self.data, self.trials, self.seed = data, trials, seed
        self.batch_size, self.ci_target, self.name = batch_size, ci_target, name
        self.store = storage if isinstance(storage, Store) else Store(storage)
        self.setup = {"seed": seed, "batch_size": batch_size, "images": len(data),
                      "weights": weights_digest(model), **(setup or {})}
        self.store.open_campaign(name, self.setup)
        self.scenarios: dict[str, Scenario] = {}
        self._calibration: Calibration | None = None
        self.add_scenarios(scenarios)

    def add_scenarios(self, scenarios: Iterable[Scenario]) -> None:
        new = [s for s in scenarios if s.key not in self.scenarios]
        for scenario in new:
            for site in scenario.sites:
                site.check(self.model)
            self.scenarios[scenario.key] = scenario
        self.store.add_scenarios(self.name, [(s.key, s.to_dict()) for s in new])
        calibrated = self._calibration.site_std if self._calibration is not None else {}
        if any(site.key not in calibrated for s in new for site in s.sites):
            self._calibration = None  # a new site needs its clean std: one more clean pass

    @property
    def calibration(self) -> Calibration:
        """The clean pass: clean predictions, clean accuracy, each site's clean std."""
        if self._calibration is None:
            sites = [site for s in self.scenarios.values() for site in s.sites]
            self._calibration = calibrate(self.model, self.data, self.batch_size, sites)
        return self._calibration

    def clean_accuracy(self) -> float:
        counts = self.calibration.counts
        return (counts.correct1 if counts.labeled else counts.agree) / counts.n

    def plans(self, scenario: Scenario, trials: range) -> list[TrialPlan]:
        return [TrialPlan(scenario, t, trial_seed(self.seed, scenario.key, t)) for t in trials]

    def pending(self, keys: Iterable[str] | None = None) -> list[TrialPlan]:
        """Trials still to run: the first `trials` of each scenario, plus CI-driven ones."""
        done = self.store.trials(self.name)
        plans = []
        for key in keys if keys is not None else self.scenarios:
            scenario = self.scenarios[key]
            wanted = self._wanted(scenario, done)
            plans += [p for p in self.plans(scenario, range(wanted)) if (key, p.trial) not in done]
        return plans

    def _wanted(self, scenario: Scenario, done: dict) -> int:
        """How many trials the scenario needs: `trials`, or more until the CI is narrow."""
        if self.ci_target is None:
            return self.trials
        have = sum(1 for (key, _) in done if key == scenario.key)
        if have < self.trials:
            return self.trials
        summary = self._summarize(scenario.key, done)
        if summary.half_width <= self.ci_target or have >= self.max_trials:
            return have
        return min(self.max_trials, have + self.trials)

    def run(self, engine: LocalEngine | None = None, keys: Iterable[str] | None = None) -> None:
        """Run every pending trial (of the given scenario keys); resumable at any point."""
        engine = engine or LocalEngine()
        keys = list(keys) if keys is not None else list(self.scenarios)
        while plans := self.pending(keys):
            engine.run_trials(self.model, self.data, self.batch_size, plans, self.calibration,
                              lambda records: self.store.add_trials(self.name, records),
                              desc=self.name)

    def recompute(self, scenario: Scenario, trial: int,
                  engine: LocalEngine | None = None) -> TrialRecord:
        """Compute one trial alone, without storing it (it equals the stored one)."""
        records: list[TrialRecord] = []
        engine = engine or LocalEngine(progress=False)
        self.add_scenarios([scenario])
        engine.run_trials(self.model, self.data, self.batch_size,
                          self.plans(scenario, range(trial, trial + 1)), self.calibration,
                          records.extend)
        return records[0]

    def records(self) -> dict[tuple[str, int], TrialRecord]:
        return self.store.trials(self.name)

    def summaries(self, keys: Sequence[str] | None = None) -> list[Summary]:
        done = self.store.trials(self.name)
        return [self._summarize(k, done) for k in (keys if keys is not None else self.scenarios)]

    def _summarize(self, key: str, done: dict[tuple[str, int], TrialRecord]) -> Summary:
        limit = self.trials if self.ci_target is None else self.max_trials
        rows = sorted((r for (k, t), r in done.items() if k == key and t < limit),
                      key=lambda r: r.trial)
        mean, low, high = mean_ci([r.accuracy for r in rows])
        hits = sum(r.correct1 if r.labeled else r.agree for r in rows)
        total = sum(r.n for r in rows)
        w_low, w_high = wilson(hits, total)
        finite_n = total - sum(r.nonfinite for r in rows)
        return Summary(
            scenario=key, trials=len(rows), accuracy=mean, ci_low=low, ci_high=high,
            wilson_low=w_low, wilson_high=w_high,
            top5=sum(r.top5 for r in rows) / max(len(rows), 1),
            agreement=sum(r.agreement for r in rows) / max(len(rows), 1),
            nonfinite=sum(r.nonfinite for r in rows),
            loss=sum(r.loss_sum for r in rows) / finite_n if finite_n else float("nan"),
        )


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidParameterError(f"{name} must be an integer >= {low}. Got {value!r}.")

