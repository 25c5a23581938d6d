"""Energy per inference of int8 layers computed with (approximate) 8-bit multipliers.

Energy of a layer = MACs x (energy of one 8-bit multiplication with its unit + one 32-bit
addition) + MACs x an optional memory term.

Default figures (each overridable with a TOML or CSV file, `load_energy_model`):

- 8-bit multiplication 0.2 pJ and 32-bit addition 0.1 pJ, 45 nm (M. Horowitz, "Computing's
  energy problem (and what we can do about it)", ISSCC 2014, Fig. 1.1.9).
- A unit's multiplication: 0.2 pJ x (its power / the exact multiplier's power of the same
  library and signedness): EvoApproxLib PDK45 figures as published (exact: 0.391 mW
  unsigned `mul8u_1JFF`, 0.425 mW signed `mul8s_1KV8`); formula units without a published
  figure use the estimate of `Multiplier.power_estimate` (the fraction of partial-product
  cells kept), labelled "estimate" in every output; units with neither (Mitchell,
  Kulkarni) are charged the exact multiplier's energy (no saving is claimed), labelled
  "assumed exact".
- Memory: 0 pJ per MAC by default (set `memory_pj_per_mac` to include data movement).

>>> model = EnergyModel()
>>> round(model.multiply_pj("exact")[0], 3)
0.2
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.multipliers.units import EXACT_POWER_MW, create_unit

HOROWITZ_MUL8_PJ = 0.2
HOROWITZ_ADD32_PJ = 0.1
SOURCES = ("published", "estimate", "assumed exact", "file")


@dataclass(frozen=True)
class EnergyModel:
    """Energies in pJ: per 8-bit multiplication (exact), per 32-bit addition, per MAC of
    memory traffic, and per-unit multiplication energies that override the power ratio.

    Raises:
        InvalidParameterError: a negative or non-finite energy, or an unknown unit.
    """

    mul8_pj: float = HOROWITZ_MUL8_PJ
    add32_pj: float = HOROWITZ_ADD32_PJ
    memory_pj_per_mac: float = 0.0
    units: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("mul8_pj", "add32_pj", "memory_pj_per_mac"):
            _check_energy(name, getattr(self, name))
        resolved = {}
        for unit, value in self.units.items():
            _check_energy(f"the energy of unit {unit!r}", value)
            resolved[create_unit(unit).name] = float(value)
        object.__setattr__(self, "units", resolved)

    def multiply_pj(self, unit: str) -> tuple[float, str]:
        """(energy of one multiplication in pJ, its source: published / estimate /
        assumed exact / file)."""
        u = create_unit(unit)
        if u.name in self.units:
            return self.units[u.name], "file"
        exact = EXACT_POWER_MW[u.signed]
        if u.power_mw is not None:
            return self.mul8_pj * u.power_mw / exact, "published"
        if u.power_estimate is not None:
            return self.mul8_pj * u.power_estimate / exact, "estimate"
        return self.mul8_pj, "assumed exact"

    def mac_pj(self, unit: str) -> float:
        """Energy of one MAC with `unit`: multiplication + 32-bit addition + memory."""
        return self.multiply_pj(unit)[0] + self.add32_pj + self.memory_pj_per_mac

    def layer_pj(self, macs: float, unit: str) -> float:
        """Energy of `macs` MACs with `unit`, in pJ."""
        return macs * self.mac_pj(unit)

    def to_dict(self) -> dict[str, Any]:
        return {"mul8_pj": self.mul8_pj, "add32_pj": self.add32_pj,
                "memory_pj_per_mac": self.memory_pj_per_mac, "units": dict(self.units)}


def _check_energy(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0):
        raise InvalidParameterError(f"{name} must be a finite number >= 0 pJ. Got {value!r}.")


def load_energy_model(path: str | Path) -> EnergyModel:
    """An EnergyModel from a file.

    TOML: top-level `mul8_pj`, `add32_pj`, `memory_pj_per_mac` (all optional) and a table
    `[units]` of unit name -> multiplication energy in pJ. CSV: rows `unit,pJ` (header
    optional); the rows `mul8`, `add32`, `memory` set the three base figures.

    Raises:
        DataError: the file cannot be read or parsed, or holds no figure.
        InvalidParameterError / UnknownNameError: unknown keys or units, negative energies.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read energy file {path}: {exc}") from None
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{path}: not valid TOML ({exc}).") from None
        known = {"mul8_pj", "add32_pj", "memory_pj_per_mac", "units"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidParameterError(f"{path}: unknown key {unknown[0]!r}; known: "
                                        f"{', '.join(sorted(known))}.")
        units = data.get("units", {})
        if not isinstance(units, dict):
            raise InvalidParameterError(f"{path}: [units] must be a table of unit = pJ.")
        if not data or (set(data) == {"units"} and not units):
            raise DataError(f"{path}: no energy figure in it (an empty file changes nothing).")
        return EnergyModel(**{k: v for k, v in data.items() if k != "units"}, units=units)
    base = {"mul8": "mul8_pj", "add32": "add32_pj", "memory": "memory_pj_per_mac"}
    values: dict[str, Any] = {}
    units: dict[str, float] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].strip().startswith("#") or (number == 1 and row[0].strip() == "unit"):
            continue
        if len(row) != 2:
            raise DataError(f"{path} line {number}: expected 'unit,pJ', got {','.join(row)!r}.")
        name, value = row[0].strip(), row[1].strip()
        try:
            energy = float(value)
        except ValueError:
            raise DataError(f"{path} line {number}: {value!r} is not a number.") from None
        if name in base:
            values[base[name]] = energy
        else:
            units[name] = energy
    if not values and not units:
        raise DataError(f"{path}: no energy figure in it (an empty file changes nothing).")
    return EnergyModel(**values, units=units)


__all__ = ["EnergyModel", "HOROWITZ_ADD32_PJ", "HOROWITZ_MUL8_PJ", "load_energy_model"]
