"""The Engine protocol: where the clean pass and the trials run. A registry chooses by name.

Engines differ in where trials run (this process, a GPU, a Ray cluster), never in what a
trial computes: a trial's record depends only on the model, the data, the batch size and
its plan (scenario, index, seed).

>>> engine = create_engine("local", device="cpu")
>>> engine.name, str(engine.device)
('local', 'cpu')
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from approxmap.core.data import EvalData
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.layers import eval_mode
from approxmap.core.records import Counts, TrialRecord
from approxmap.core.registry import Registry
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.core.stats import SiteStats

_ENGINES: Registry[type[Engine]] = Registry("engine")
DEVICES = ("cpu", "cuda", "cuda:N", "auto")


@dataclass(frozen=True)
class TrialPlan:
    """One trial to compute: the scenario, the trial index and its derived seed."""

    scenario: Scenario
    trial: int
    seed: int


@dataclass
class Calibration:
    """The clean pass: clean top-1 predictions (in data order, int64 on the CPU), the clean
    counts, each site's statistics, activation bytes per sample (summed over leaf modules)
    and the number of model outputs."""

    clean_top1: torch.Tensor
    counts: Counts
    site_stats: dict[str, SiteStats] = field(default_factory=dict)
    sample_bytes: int = 0
    num_outputs: int = 0

    @property
    def accuracy(self) -> float:
        c = self.counts
        return (c.correct1 if c.labeled else c.agree) / c.n

    @property
    def loss(self) -> float:
        """Mean cross-entropy of the clean model (NaN for label-free data)."""
        return self.counts.loss_sum / self.counts.n if self.counts.labeled else float("nan")


OnFinished = Callable[[list[TrialRecord]], None]


def register_engine(name: str):
    """Class decorator registering an Engine subclass under `name` (e.g. "local", "ray")."""

    def wrap(cls: type[Engine]) -> type[Engine]:
        cls.name = name
        _ENGINES.register(name, cls)
        return cls

    return wrap


def get_engine_class(name: str) -> type[Engine]:
    return _ENGINES.get(name)


def list_engines(pattern: str = "*") -> list[str]:
    return _ENGINES.names(pattern)


def create_engine(name: str = "local", **options: Any) -> Engine:
    """The one factory of engines: `create_engine("local", device="auto")`.

    Raises:
        UnknownNameError: no engine of that name.
        InvalidParameterError: an option the engine does not take, or a bad device.
    """
    cls = _ENGINES.get(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise InvalidParameterError(f"Bad options for engine {name!r}: {exc}") from None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available, else the CPU).

    Raises:
        InvalidParameterError: an unknown device, or CUDA asked for but not available.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or (
            device.startswith("cuda:") and device[5:].isdigit())):
        raise InvalidParameterError(f"device must be one of {', '.join(DEVICES)}. Got {device!r}.")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidParameterError(f"device {device!r} was asked for, but this machine has "
                                        "no CUDA device (torch sees none); use --device cpu.")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise InvalidParameterError(f"device {device!r} does not exist; this machine has "
                                        f"{torch.cuda.device_count()} CUDA device(s).")
    return torch.device(device)


class Engine(ABC):
    """Runs the clean pass and trials of a campaign.

    Args:
        device: "cpu", "cuda", "cuda:N" or "auto"; the model, the batches, the noise
            generators and emulation tables live there. Results come back as counts.
    """

    name: str = "abstract"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)

    @abstractmethod
    def calibrate(self, model: nn.Module, data: EvalData, batch_size: int,
                  sites: Sequence[Site], stats_data: EvalData | None = None) -> Calibration:
        """The clean pass over `data`; site statistics over `stats_data` (default `data`)."""

    @abstractmethod
    def run(self, model: nn.Module, data: EvalData, batch_size: int, plans: Sequence[TrialPlan],
            calibration: Calibration, on_finished: OnFinished, *, progress: bool = False,
            desc: str = "trials") -> None:
        """Compute every planned trial; hand each finished group's records to `on_finished`."""

    def describe(self) -> dict[str, Any]:
        """What to record about the engine in a run's configuration."""
        return {"engine": self.name, "device": str(self.device)}


__all__ = ["Calibration", "DEVICES", "Engine", "TrialPlan", "create_engine", "eval_mode",
           "get_engine_class", "list_engines", "register_engine", "resolve_device"]
