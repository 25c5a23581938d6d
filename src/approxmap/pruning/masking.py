"""Masking: removing filters emulated by making their channels zero where they are read.

Masking equals physical removal (tested against Torch-Pruning's result) and runs through the
campaign engine, so it is fast, stored and resumable like any other scenario.

>>> injections = mask_injections(units, plan, read_points(model))     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from approxmap.core.errors import StuckAt
from approxmap.core.scenario import Scenario
from approxmap.core.sites import Site
from approxmap.pruning.plan import PruningPlan, check_plan
from approxmap.pruning.units import PruneUnit, ReadPoint


def mask_injections(units: Sequence[PruneUnit], plan: PruningPlan,
                    points: Mapping[str, ReadPoint]) -> list[tuple[Site, StuckAt]]:
    """(Site, StuckAt) pairs that make the plan's filters zero where the next layers read them.

    Raises:
        InvalidParameterError / UnknownNameError: the plan does not fit the units.
    """
    check_plan(plan, units)
    by_name = {u.name: u for u in units}
    return [(Site(points[conv].module, "output", channels=idxs), StuckAt(points[conv].zero))
            for name, idxs in plan.removed.items() if idxs for conv in by_name[name].convs]


def mask_scenario(units: Sequence[PruneUnit], plan: PruningPlan,
                  points: Mapping[str, ReadPoint]) -> Scenario | None:
    """The plan's masks as one scenario (None when the plan removes nothing)."""
    injections = mask_injections(units, plan, points)
    return Scenario(tuple(injections)) if injections else None


__all__ = ["mask_injections", "mask_scenario"]
