"""Approximate 8-bit multiplier units: truth tables, published definitions, EvoApproxLib.

A unit is a :class:`Multiplier`, the complete 256 x 256 table of an 8 x 8 -> 16 bit
multiplier, indexed ``lut[a_index][w_index]`` with ``a`` the ACTIVATION and ``w`` the
WEIGHT (unsigned: index = value in 0..255; signed: index = value + 128 for -128..127).

>>> from approxmap.multipliers import characterize, create_unit, list_units
>>> unit = create_unit("drum:6")
>>> round(characterize(unit).mred_pct, 2)
1.3
>>> "evo:v2022/mul8s_1KV8" in list_units("evo:*")
True

Families: ``exact``, ``exact-u``, ``trunc:K``, ``trunc-c:K``, ``bam:H,V``, ``mitchell``,
``drum:K``, ``kulkarni``, ``etm:K`` (:mod:`.formulas`), ``evo:[RELEASE/]NAME``
(:mod:`.evoapprox`), ``file:PATH`` (:mod:`.tables`); more with :func:`register_unit_family`.
"""

from __future__ import annotations

from approxmap.multipliers import evoapprox, formulas, tables  # noqa: F401  (register families)
from approxmap.multipliers.characterize import (
    UnitMetrics,
    characterize,
    joint_distribution,
    operand_histograms,
)
from approxmap.multipliers.evoapprox import evo_names
from approxmap.multipliers.tables import load_table
from approxmap.multipliers.units import (
    Multiplier,
    UnitFamily,
    create_unit,
    exact_table,
    get_unit_family,
    list_unit_families,
    list_units,
    operand_values,
    register_unit_family,
    table_sha,
)

__all__ = [
    "Multiplier",
    "UnitFamily",
    "UnitMetrics",
    "characterize",
    "create_unit",
    "evo_names",
    "exact_table",
    "get_unit_family",
    "joint_distribution",
    "list_unit_families",
    "list_units",
    "load_table",
    "operand_histograms",
    "operand_values",
    "register_unit_family",
    "table_sha",
]
