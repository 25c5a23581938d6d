"""Campaigns: scenarios x seeded trials, run by the run's engine, kept in its store, resumable.

>>> from approxmap import Campaign, Gaussian, Run, Scenario, Site
>>> campaign = Campaign(model, data, [Scenario.single(Site("fc"), Gaussian(std=0.5))],
...                     Run(trials=10, seed=0))  # doctest: +SKIP
>>> campaign.run()                                                                # doctest: +SKIP
>>> campaign.summaries()[0].accuracy                                               # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from approxmap.campaign.run import Run
from approxmap.core.data import EvalData
from approxmap.core.records import TrialRecord
from approxmap.core.scenario import Scenario, trial_seed
from approxmap.core.statistics import Summary, mean_ci, wilson
from approxmap.engine.base import Calibration, TrialPlan


def weights_digest(model: nn.Module) -> str:
    """A short hash (16 hex digits, blake2b) of the model's parameters and buffers."""
    h = hashlib.blake2b(digest_size=8)
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(_bytes(value))
    return h.hexdigest()


def _bytes(value: Any) -> bytes:
    """Every value of a state_dict entry: a tensor (quantized ones dequantized, bf16/fp16 by
    their bits), or a tuple/list of them (packed weights of quantized linear layers, whose
    repr would elide the values)."""
    if isinstance(value, tuple | list):
        return b"".join([b"(", *(_bytes(v) + b"," for v in value), b")"])
    if not isinstance(value, torch.Tensor):
        return repr(value).encode()  # e.g. the dtype of packed parameters
    t = value.detach().cpu()
    if t.is_quantized:
        t = t.dequantize()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.contiguous().numpy().tobytes()


class Campaign:
    """Scenarios x trials with a seed; every trial's seed derives from (seed, scenario, index).

    Args:
        model: the network (never modified; evaluated in eval mode).
        data: evaluation data.
        scenarios: the error scenarios; more can be added with `add_scenarios`.
        run: engine, store, batch size, seed, trials, CI target, progress (default `Run()`).
        name: the campaign's name inside the store.
        stats_data: data the site statistics are measured on (default: `data`), e.g. a
            calibration split for quantization ranges.
        setup: extra facts that change the trials' numbers (joined to the stored setup).
    """

    def __init__(self, model: nn.Module, data: EvalData, scenarios: Iterable[Scenario] = (),
                 run: Run | None = None, name: str = "campaign",
                 stats_data: EvalData | None = None, setup: dict[str, Any] | None = None) -> None:
        self.run_settings = run = run or Run()
        self.model, self.data, self.name, self.stats_data = model, data, name, stats_data
        self.trials, self.seed, self.ci_target = run.trials, run.seed, run.ci_target
        self.max_trials, self.batch_size = run.max_trials, run.batch_size
        self.store = run.store
        self.setup = {"seed": run.seed, "batch_size": run.batch_size, "images": len(data),
                      "weights": weights_digest(model), **run.names, **(setup or {})}
        if stats_data is not None:
            self.setup["stats_images"] = len(stats_data)
        device = getattr(run.engine, "device", None)
        if device is not None and device.type != "cpu":  # kernels round differently there
            self.setup["device"] = device.type
        self.store.open_campaign(name, self.setup)
        self.scenarios: dict[str, Scenario] = {}
        self._stored_scenarios: set[str] = set()
        self._calibration: Calibration | None = None
        self._warned: set[str] = set()
        self.add_scenarios(scenarios)

    def add_scenarios(self, scenarios: Iterable[Scenario]) -> None:
        new = [s for s in scenarios if s.key not in self.scenarios]
        for scenario in new:
            for site in scenario.sites:
                site.check(self.model)
            self.scenarios[scenario.key] = scenario
        calibrated = self._calibration.site_stats if self._calibration is not None else {}
        if any(site.key not in calibrated for s in new for site in s.sites):
            self._calibration = None  # a new site needs its statistics: one more clean pass

    @property
    def calibration(self) -> Calibration:
        """The clean pass: clean predictions, clean accuracy, each site's statistics."""
        if self._calibration is None:
            sites = [site for s in self.scenarios.values() for site in s.sites]
            self._calibration = self.run_settings.engine.calibrate(
                self.model, self.data, self.batch_size, sites, self.stats_data)
            counts = self._calibration.counts
            if counts.nonfinite:
                warnings.warn(f"the clean model gives NaN or Inf outputs for {counts.nonfinite} "
                              f"of {counts.n} samples (counted as wrong); check its weights.",
                              stacklevel=2)
        return self._calibration

    def clean_accuracy(self) -> float:
        return self.calibration.accuracy

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

    def run(self, keys: Iterable[str] | None = None) -> None:
        """Run every pending trial (of the given scenario keys); resumable at any point.

        Raises:
            InvalidParameterError: an error model cannot be resolved at its site (e.g. a
                relative magnitude that overflows there); checked for every scenario before
                the first trial, so nothing is stored.
        """
        keys = list(keys) if keys is not None else list(self.scenarios)
        settings = self.run_settings
        plans = self.pending(keys)
        if plans:
            self._check_errors({p.scenario.key for p in plans})
        while plans:
            settings.engine.run(self.model, self.data, self.batch_size, plans, self.calibration,
                                self._store_records, progress=settings.progress, desc=self.name)
            plans = self.pending(keys)

    def _check_errors(self, keys: Iterable[str]) -> None:
        """Resolve each scenario's error models at their sites' statistics (the trials do it
        again); warn once per site whose clean values hold NaN or Inf (they are left out of
        its statistics, and trials count the non-finite outputs they cause)."""
        stats = self.calibration.site_stats
        for key in sorted(keys):
            for site, error in self.scenarios[key].injections:
                site_stats = stats.get(site.key)
                if site_stats is None:
                    continue
                error.resolve(site_stats)
                if site_stats.nonfinite and site.key not in self._warned:
                    self._warned.add(site.key)
                    warnings.warn(f"the clean values at {site.key} hold {site_stats.nonfinite} "
                                  "NaN or Inf; they are left out of its statistics, and trials "
                                  "count the non-finite outputs as DUE.", stacklevel=2)

    def _store_records(self, records: list[TrialRecord]) -> None:
        """Commit finished trials (and the specs of their scenarios, the first time)."""
        keys = {r.scenario for r in records} - self._stored_scenarios
        if keys:
            self.store.add_scenarios(self.name, [(k, self.scenarios[k].to_dict()) for k in keys])
            self._stored_scenarios |= keys
        self.store.add_trials(self.name, records)

    def recompute(self, scenario: Scenario, trial: int) -> TrialRecord:
        """Compute one trial alone, without storing it (it equals the stored one)."""
        records: list[TrialRecord] = []
        self.add_scenarios([scenario])
        self.run_settings.engine.run(self.model, self.data, self.batch_size,
                                     self.plans(scenario, range(trial, trial + 1)),
                                     self.calibration, records.extend)
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
        return summarize(key, rows)


def summarize(key: str, rows: Sequence[TrialRecord]) -> Summary:
    """Statistics of one scenario's trials: mean accuracy with its Student-t 95 % CI (clipped
    to [0, 1], the range of an accuracy), the Wilson interval of the pooled counts, and the
    SDC/DUE counts."""
    mean, low, high = mean_ci([r.accuracy for r in rows])
    low, high = max(low, 0.0), min(high, 1.0)
    hits = sum(r.counts.correct1 if r.labeled else r.counts.agree for r in rows)
    total = sum(r.n for r in rows)
    w_low, w_high = wilson(hits, total)
    nonfinite = sum(r.due for r in rows)
    finite_n = total - nonfinite
    count = max(len(rows), 1)
    labeled = all(r.labeled for r in rows)  # label-free data has no loss (NaN, as the clean one)
    return Summary(
        scenario=key, trials=len(rows), accuracy=mean, ci_low=low, ci_high=high,
        wilson_low=w_low, wilson_high=w_high, top5=sum(r.top5 for r in rows) / count,
        agreement=sum(r.agreement for r in rows) / count, nonfinite=nonfinite,
        loss=sum(r.counts.loss_sum for r in rows) / finite_n if finite_n and labeled else
        float("nan"),
        samples=total, sdc=sum(r.sdc for r in rows), masked=sum(r.masked for r in rows))


__all__ = ["Campaign", "summarize", "weights_digest"]
