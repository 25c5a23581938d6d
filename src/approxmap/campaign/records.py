"""The immutable record of one finished trial."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class TrialRecord:
    """Counts of one trial over the whole evaluation set (see engine.metrics.Counts)."""

    scenario: str
    trial: int
    seed: int
    n: int
    correct1: int
    correct5: int
    agree: int
    agree5: int
    nonfinite: int
    loss_sum: float
    labeled: bool
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy if labeled, else top-1 agreement with the clean model."""
        return (self.correct1 if self.labeled else self.agree) / self.n

    @property
    def top5(self) -> float:
        return (self.correct5 if self.labeled else self.agree5) / self.n

    @property
    def agreement(self) -> float:
        return self.agree / self.n

    def same_result(self, other: TrialRecord) -> bool:
        """Equal in everything but the time it took."""
        a, b = asdict(self), asdict(other)
        a.pop("seconds"), b.pop("seconds")
        return a == b


RECORD_FIELDS = [f.name for f in fields(TrialRecord)]
