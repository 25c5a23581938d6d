"""The one definition of what a trial measures (`Counts`) and of a finished trial (`TrialRecord`).

The store's table columns are derived from these fields, so a new metric is one field here
(plus a store migration that adds its column).

Terms: a sample's prediction is *masked* when its top-1 equals the clean model's and every
output is finite; a *silent data corruption* (SDC) when the outputs are finite but the top-1
differs from the clean one; a *detected unrecoverable error*-like outcome (DUE) when some
output is NaN or Inf (counted as wrong, never a crash). masked + SDC + DUE = n.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

from approxmap.core.exceptions import InvalidParameterError


@dataclass
class Counts:
    """Counts over the samples seen so far (per trial, over the evaluation batches)."""

    n: int = 0
    correct1: int = 0
    correct5: int = 0
    agree: int = 0
    agree5: int = 0
    nonfinite: int = 0
    loss_sum: float = 0.0
    labeled: bool = field(default=True)

    def update(self, logits: torch.Tensor, labels: torch.Tensor | None,
               clean_top1: torch.Tensor) -> None:
        """Add a batch: logits (N, classes), labels (N,) or None, the clean top-1 (N,)."""
        logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        finite = torch.isfinite(logits).all(dim=1)
        safe = torch.where(finite.unsqueeze(1), logits, torch.zeros_like(logits))
        k = min(5, logits.shape[1])
        top = safe.topk(k, dim=1).indices
        clean_top1 = clean_top1.to(top.device)
        self.n += len(logits)
        self.nonfinite += int((~finite).sum())
        self.agree += int(((top[:, 0] == clean_top1) & finite).sum())
        self.agree5 += int(((top == clean_top1.unsqueeze(1)).any(1) & finite).sum())
        if labels is None:
            self.labeled = False
            return
        labels = labels.to(top.device)
        self.correct1 += int(((top[:, 0] == labels) & finite).sum())
        self.correct5 += int(((top == labels.unsqueeze(1)).any(1) & finite).sum())
        if finite.any():
            loss = F.cross_entropy(safe[finite].double(), labels[finite], reduction="sum")
            self.loss_sum += float(loss)

    def copy(self) -> Counts:
        return dataclasses.replace(self)


COUNT_FIELDS = [f.name for f in fields(Counts)]
_DEFAULTS = Counts()


def _whole(name: str, value, low: int, high: int | None = None) -> int:
    """A stored integer column, checked (SQLite keeps whatever a hand edit put there)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"a trial row has {name} = {value!r}, not an integer")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidParameterError(f"a trial row has {name} = {value}, not {bound}")
    return value


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterError(f"a trial row has {name} = {value!r}, not a finite number")
    return float(value)


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial: which (scenario key, trial index, seed), its counts, its time (s)."""

    scenario: str
    trial: int
    seed: int
    counts: Counts
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return self.counts.n

    @property
    def labeled(self) -> bool:
        return self.counts.labeled

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy if labeled, else top-1 agreement with the clean model."""
        c = self.counts
        return (c.correct1 if c.labeled else c.agree) / c.n

    @property
    def top5(self) -> float:
        c = self.counts
        return (c.correct5 if c.labeled else c.agree5) / c.n

    @property
    def agreement(self) -> float:
        return self.counts.agree / self.counts.n

    @property
    def sdc(self) -> int:
        """Samples whose top-1 changed while every output stayed finite."""
        return self.counts.n - self.counts.agree - self.counts.nonfinite

    @property
    def due(self) -> int:
        """Samples with a NaN or Inf output (DUE-like)."""
        return self.counts.nonfinite

    @property
    def masked(self) -> int:
        """Samples whose top-1 is the clean one, with finite outputs."""
        return self.counts.agree

    def same_result(self, other: TrialRecord) -> bool:
        """Equal in everything but the time it took."""
        return (self.scenario, self.trial, self.seed, self.counts) == (
            other.scenario, other.trial, other.seed, other.counts)

    def row(self) -> tuple:
        """The record as a flat tuple in `RECORD_COLUMNS` order (the store's columns)."""
        return (self.scenario, self.trial, self.seed,
                *(getattr(self.counts, f) for f in COUNT_FIELDS), self.seconds)

    @classmethod
    def from_row(cls, row: tuple) -> TrialRecord:
        """The record of a flat row in `RECORD_COLUMNS` order (as stored).

        Raises:
            InvalidParameterError: a damaged row: a value of the wrong type (text where a
                count belongs), a count below zero or above n, n = 0 (nothing measured), a
                non-finite loss or time; the message names the column.
        """
        if len(row) != len(RECORD_COLUMNS):
            raise InvalidParameterError(f"a trial row has {len(row)} values, not "
                                        f"{len(RECORD_COLUMNS)}")
        scenario, trial, seed, *rest = row
        values = dict(zip(COUNT_FIELDS, rest[:-1], strict=True))
        if not isinstance(scenario, str):
            raise InvalidParameterError(f"a trial row has scenario {scenario!r}, not text")
        _whole("trial", trial, 0)
        _whole("seed", seed, 0)
        n = _whole("n", values["n"], 1)
        for name, value in values.items():
            kind = type(getattr(_DEFAULTS, name))
            if kind is bool:
                if value not in (0, 1) or isinstance(value, float):
                    raise InvalidParameterError(f"a trial row has labeled = {value!r}, not 0 or 1")
                values[name] = bool(value)
            elif kind is int and name != "n":
                values[name] = _whole(name, value, 0, n)
            elif kind is float:
                values[name] = _real(name, value)
        return cls(scenario, int(trial), int(seed), Counts(**values), _real("seconds", rest[-1]))


RECORD_COLUMNS = ["scenario", "trial", "seed", *COUNT_FIELDS, "seconds"]

__all__ = ["COUNT_FIELDS", "Counts", "RECORD_COLUMNS", "TrialRecord"]
