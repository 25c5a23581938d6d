"""The run: how every campaign of an analysis is executed and where its trials are kept.

One `Run` is passed to every analysis (`profile_layers(model, data, spec, run)`,
`compute_significance(..., run=run)`, ...): its engine, its store (the run folder's
results.sqlite, or memory), batch size, seed, trials per point, the optional CI target and
whether to show progress.

>>> run = Run(trials=5, seed=1)                     # local engine on the CPU, in memory
>>> run = Run(engine=create_engine("local", device="auto"), store="runs/x/results.sqlite")
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from approxmap.campaign.store import Store
from approxmap.core.exceptions import InvalidParameterError
from approxmap.engine.base import Engine, create_engine


def check_int(name: str, value: Any, low: int) -> int:
    """`value` if it is an int >= low, else InvalidParameterError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidParameterError(f"{name} must be an integer >= {low}. Got {value!r}.")
    return value


@dataclass
class Run:
    """Execution settings shared by the campaigns of one analysis (or one run folder).

    Args:
        engine: where trials run (default: the local engine on the CPU).
        store: a Store, a path to an SQLite file, or None (in memory).
        batch_size: evaluation batch size (part of each campaign's setup).
        seed: the campaign seed every trial seed derives from.
        trials: seeded trials per point (the minimum when ci_target is set).
        ci_target: add trials until the 95 % CI half-width of the mean accuracy is below
            this fraction (0.005 = 0.5 percentage points), up to max_trials.
        max_trials: the most trials per point with ci_target (default 10 x trials).
        progress: show progress bars with ETA.
        names: facts naming the experiment in every campaign's setup (model, dataset).

    Raises:
        InvalidParameterError: a count < 1, a negative seed, ci_target outside (0, 1).
    """

    engine: Engine | None = None
    store: Store | str | Path | None = None
    batch_size: int = 256
    seed: int = 0
    trials: int = 10
    ci_target: float | None = None
    max_trials: int | None = None
    progress: bool = False
    names: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_int("trials", self.trials, 1)
        if self.ci_target is not None and not (isinstance(self.ci_target, float | int)
                                               and 0 < self.ci_target < 1):
            raise InvalidParameterError(f"ci_target must be in (0, 1). Got {self.ci_target!r}.")
        if self.max_trials is None:
            self.max_trials = max(self.trials, 10 * self.trials)
        check_int("max_trials", self.max_trials, self.trials)
        if self.engine is None:
            self.engine = create_engine("local")
        if not isinstance(self.engine, Engine):
            raise InvalidParameterError(f"engine must be an Engine (see create_engine). "
                                        f"Got {type(self.engine).__name__}.")
        if not isinstance(self.store, Store):
            self.store = Store(self.store)

    def with_(self, **changes: Any) -> Run:
        """A copy with some settings changed (the same engine and store)."""
        return replace(self, **changes)


__all__ = ["Run", "check_int"]
