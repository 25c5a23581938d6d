"""Scenarios (sets of site + error model) and the derivation of every trial's seed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from approxmap.core.errors import ErrorModel, error_model_from_dict
from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.sites import Site


@dataclass(frozen=True)
class Scenario:
    """Errors injected together in one trial: a tuple of (Site, ErrorModel) pairs.

    >>> from approxmap.core.errors import Gaussian
    >>> Scenario.single(Site("fc"), Gaussian(std=0.1)).key
    'fc:output=gaussian(std=0.1, mean=0, rate=1, scale=abs)'
    """

    injections: tuple[tuple[Site, ErrorModel], ...]

    def __post_init__(self) -> None:
        if not self.injections:
            raise InvalidParameterError("A scenario needs at least one (site, error model).")
        keys = [site.key for site, _ in self.injections]
        if len(set(keys)) != len(keys):
            raise InvalidParameterError(f"A scenario names the same site twice: {keys}.")

    @classmethod
    def single(cls, site: Site, error: ErrorModel) -> Scenario:
        return cls(((site, error),))

    @property
    def key(self) -> str:
        """A stable, readable identity, used in the store and in seed derivation."""
        return " + ".join(f"{site.key}={error.label()}" for site, error in self.injections)

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(site for site, _ in self.injections)

    def to_dict(self) -> dict[str, Any]:
        return {"injections": [{"site": s.to_dict(), "error": e.to_dict()}
                               for s, e in self.injections]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        return cls(tuple((Site.from_dict(item["site"]), error_model_from_dict(item["error"]))
                         for item in data["injections"]))


def trial_seed(campaign_seed: int, scenario_key: str, trial: int) -> int:
    """The seed of one trial, from (campaign seed, scenario key, trial index); 63-bit."""
    payload = json.dumps([int(campaign_seed), scenario_key, int(trial)]).encode()
    digest = hashlib.blake2b(payload, digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
