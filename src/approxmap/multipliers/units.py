"""8-bit multiplier units as 256 x 256 truth tables, and the registry of unit families.

Operand convention (the one convention of this package, used by every table):

- The first operand ``a`` is the ACTIVATION, the second ``w`` the WEIGHT, and a unit's
  table is indexed ``lut[a_index][w_index]`` (rows: activation, columns: weight).
- Unsigned units (``mul8u``): ``a, w`` in 0..255, ``index = value``.
- Signed units (``mul8s``): ``a, w`` in -128..127, ``index = value + 128`` (so row 0 is
  ``a = -128``, row 128 is ``a = 0``, row 255 is ``a = 127``).
- A table holds the 16-bit product the unit returns, as int32: 0..65535 for unsigned
  units, -32768..32767 for signed ones.

This is also EvoApproxLib's layout (``lut[a][b]`` / ``lut[a + 128][b + 128]`` with ``a``
the first operand of the published function) and TFApprox's ``.bin`` layout
(``lut[a * 256 + b]``). Operand order matters: most approximate tables are not symmetric.

Units are created from spec strings ``"family"`` or ``"family:parameters"``:

>>> from approxmap.multipliers import create_unit
>>> unit = create_unit("drum:6")
>>> int(unit.product(200, 100))            # exact: 20000
20808
>>> create_unit("evo:mul8u_2AC").name      # EvoApproxLib, release v1.0 by default
'evo:v10/mul8u_2AC'

Families are registered with :func:`register_unit_family`; :func:`list_units` lists the
concrete units worth listing (formula units at standard parameters, every EvoApprox unit).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from approxmap.core.exceptions import InvalidParameterError, UnknownNameError
from approxmap.core.registry import Registry, close_matches_hint

N_CODES = 256
TABLE_SHAPE = (N_CODES, N_CODES)
SIGNED_OFFSET = 128

#: Published PDK45 power of EvoApproxLib's exact 8-bit multipliers (mW): unsigned
#: ``mul8u_1JFF`` and signed ``mul8s_1KV8`` (release v1.0). Mrazek et al., DATE 2017.
EXACT_POWER_MW = {False: 0.391, True: 0.425}


def operand_values(signed: bool) -> np.ndarray:
    """The operand value of each table index: int64 array of shape (256,).

    0..255 for unsigned units, -128..127 for signed ones (``value = index - 128``).
    """
    values = np.arange(N_CODES, dtype=np.int64)
    return values - SIGNED_OFFSET if signed else values


def exact_table(signed: bool) -> np.ndarray:
    """The exact products in the index layout: int64 array of shape (256, 256), read-only."""
    table = _EXACT_TABLES.get(bool(signed))
    if table is None:
        v = operand_values(signed)
        table = np.multiply.outer(v, v)
        table.setflags(write=False)
        _EXACT_TABLES[bool(signed)] = table
    return table


_EXACT_TABLES: dict[bool, np.ndarray] = {}


def table_sha(lut: np.ndarray) -> str:
    """First 12 hex digits of the SHA-1 of the table as little-endian int32 bytes, row-major."""
    data = np.ascontiguousarray(np.asarray(lut), dtype="<i4").tobytes()
    return hashlib.sha1(data).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class Multiplier:
    """One 8 x 8 -> 16 bit multiplier unit, given by its complete truth table.

    Attributes:
        name: canonical spec string, e.g. ``"drum:6"``, ``"evo:v10/mul8u_2AC"``;
            ``create_unit(name)`` returns this unit again.
        family: the unit family (``"drum"``, ``"evo"``, ``"file"``, ...).
        signed: True for int8 x int8 units (index = value + 128), False for uint8 x uint8.
        lut: int32 array of shape (256, 256), read-only: ``lut[a_index][w_index]`` is the
            product of activation ``a`` and weight ``w`` (see the module docstring).
        citation: the source of the definition or circuit.
        power_mw: published power in mW (PDK45 synthesis, as in EvoApproxLib), when known.
        power_estimate: for units without a published figure, an estimate in mW:
            ``(partial-product AND cells the unit keeps / 64) x power of the exact 8-bit
            multiplier of the same signedness`` (0.391 mW unsigned, 0.425 mW signed,
            EvoApproxLib PDK45). For units built around a smaller k x k core multiplier
            (DRUM, ETM) the kept cells are the core's k*k; the extra logic (leading-one
            detectors, shifters, OR chains) is ignored, so such estimates are low.
            None where no partial-product count describes the unit (Mitchell, Kulkarni).
        recorded: published or recorded metrics of the unit (names as in
            :class:`~approxmap.multipliers.characterize.UnitMetrics`: ``mae``, ``wce``,
            ``mred_pct``, ``wcre_pct``, ``ep_pct``, ``mean_error``, ``std_error``), read-only.
        recorded_atol: absolute tolerance of the recorded figures (0 for figures recomputed
            exactly from the table, e.g. 0.05 for percentages published to two decimals).
        description: one line for listings.
        exact_on_zero: True when the unit's definition guarantees ``product(0, w) == 0``
            and ``product(a, 0) == 0`` for every operand.
        sha: first 12 hex digits of the SHA-1 of the int32 table bytes, row-major (computed).
        power_is_estimate: True when ``power_mw`` is unknown and ``power_estimate`` is set
            (computed).

    Raises:
        InvalidParameterError: the table is not an integer array of shape (256, 256) with
            values in the 16-bit range of its signedness.
    """

    name: str
    family: str
    signed: bool
    lut: np.ndarray
    citation: str
    power_mw: float | None = None
    power_estimate: float | None = None
    recorded: Mapping[str, float] = field(default_factory=dict)
    recorded_atol: float = 0.0
    description: str = ""
    exact_on_zero: bool = False
    sha: str = field(init=False)
    power_is_estimate: bool = field(init=False)

    def __post_init__(self) -> None:
        lut = np.asarray(self.lut)
        if lut.shape != TABLE_SHAPE or lut.dtype.kind not in "iu":
            raise InvalidParameterError(
                f"Unit {self.name!r}: a table must be an integer array of shape (256, 256), "
                f"got {lut.dtype} {lut.shape}.")
        lo, hi = (-32768, 32767) if self.signed else (0, 65535)
        if lut.size and (int(lut.min()) < lo or int(lut.max()) > hi):
            raise InvalidParameterError(
                f"Unit {self.name!r}: values must lie in {lo}..{hi} for a "
                f"{'signed' if self.signed else 'unsigned'} unit, got "
                f"{int(lut.min())}..{int(lut.max())}.")
        if not (lut.dtype == np.int32 and lut.flags.c_contiguous and not lut.flags.writeable):
            lut = np.array(lut, dtype=np.int32, order="C", copy=True)
            lut.setflags(write=False)
        object.__setattr__(self, "lut", lut)
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "recorded", MappingProxyType(dict(self.recorded)))
        object.__setattr__(self, "sha", table_sha(lut))
        object.__setattr__(self, "power_is_estimate",
                           self.power_mw is None and self.power_estimate is not None)
        object.__setattr__(self, "_torch_luts", {})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Multiplier):
            return NotImplemented
        return (self.name, self.signed, self.sha) == (other.name, other.signed, other.sha)

    def __hash__(self) -> int:
        return hash((self.name, self.signed, self.sha))

    def __repr__(self) -> str:
        kind = "signed" if self.signed else "unsigned"
        return f"Multiplier({self.name!r}, {kind}, sha={self.sha})"

    @property
    def offset(self) -> int:
        """Index offset of the operand values: 128 for signed units, 0 for unsigned."""
        return SIGNED_OFFSET if self.signed else 0

    @property
    def value_range(self) -> tuple[int, int]:
        """Smallest and largest operand value: (-128, 127) or (0, 255)."""
        return (-128, 127) if self.signed else (0, 255)

    @property
    def power(self) -> float | None:
        """``power_mw`` when published, else ``power_estimate`` (mW), else None."""
        return self.power_mw if self.power_mw is not None else self.power_estimate

    def operand_values(self) -> np.ndarray:
        """Operand value of each index: int64 array (256,)."""
        return operand_values(self.signed)

    def exact_table(self) -> np.ndarray:
        """Exact products in this unit's layout: int64 (256, 256), read-only."""
        return exact_table(self.signed)

    def error_table(self) -> np.ndarray:
        """Error ``approx - exact`` of every operand pair: int64 array (256, 256)."""
        return self.lut.astype(np.int64) - exact_table(self.signed)

    def product(self, a: Any, w: Any) -> Any:
        """Table products of activations ``a`` and weights ``w`` (operand values, not indices).

        Args:
            a, w: integers, integer numpy arrays or integer torch tensors, broadcastable
                against each other; values in -128..127 (signed units) or 0..255 (unsigned).

        Returns:
            The products: a torch int32 tensor on ``a``'s device when either input is a
            tensor, else a numpy int32 array (a 0-d array for two scalars).

        Raises:
            InvalidParameterError: non-integer input or a value outside the operand range.
        """
        if isinstance(a, torch.Tensor) or isinstance(w, torch.Tensor):
            return self._product_torch(a, w)
        ia = self._indices_numpy(a, "a")
        iw = self._indices_numpy(w, "w")
        return self.lut[ia, iw]

    def _check_range(self, lo: int, hi: int, operand: str) -> None:
        vlo, vhi = self.value_range
        if lo < vlo or hi > vhi:
            raise InvalidParameterError(
                f"Unit {self.name!r}: operand {operand} must lie in {vlo}..{vhi} "
                f"({'signed' if self.signed else 'unsigned'} unit), got {lo}..{hi}.")

    def _indices_numpy(self, values: Any, operand: str) -> np.ndarray:
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu":
            raise InvalidParameterError(
                f"Unit {self.name!r}: operand {operand} must hold integers, got {arr.dtype}.")
        arr = arr.astype(np.int64, copy=False)
        if arr.size:
            self._check_range(int(arr.min()), int(arr.max()), operand)
        return arr + self.offset

    def _product_torch(self, a: Any, w: Any) -> torch.Tensor:
        device = next(t.device for t in (a, w) if isinstance(t, torch.Tensor))
        ta = torch.as_tensor(a, device=device)
        tw = torch.as_tensor(w, device=device)
        indices = []
        for t, operand in ((ta, "a"), (tw, "w")):
            if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
                raise InvalidParameterError(
                    f"Unit {self.name!r}: operand {operand} must hold integers, got {t.dtype}.")
            t = t.to(torch.int64)
            if t.numel():
                self._check_range(int(t.min()), int(t.max()), operand)
            indices.append(t + self.offset)
        return self.torch_lut(device)[indices[0], indices[1]]

    def torch_lut(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The table as a torch int32 tensor (256, 256) on ``device`` (cached; do not modify)."""
        device = torch.device(device)
        cache: dict[torch.device, torch.Tensor] = self._torch_luts  # type: ignore[attr-defined]
        if device not in cache:
            cache[device] = torch.tensor(self.lut, dtype=torch.int32, device=device)
        return cache[device]


# --------------------------------------------------------------------------------------
# Families


UnitFactory = Callable[..., Multiplier]


@dataclass(frozen=True)
class UnitFamily:
    """A family of units created from ``"name"`` or ``"name:parameters"`` spec strings.

    ``factory(params)`` receives the text after the first ``:`` (None when there is none)
    and returns a :class:`Multiplier` whose ``name`` is the canonical spec; families with
    ``accepts_signed`` also receive ``signed=`` (user tables). ``standard`` lists the
    concrete specs :func:`list_units` shows (a sequence, or a callable returning one).
    """

    name: str
    factory: UnitFactory
    description: str = ""
    syntax: str = ""
    standard: Sequence[str] | Callable[[], Sequence[str]] = ()
    accepts_signed: bool = False
    cacheable: bool = True
    listing_order: int = 100

    def standard_units(self) -> list[str]:
        specs = self.standard() if callable(self.standard) else self.standard
        return list(specs)


_FAMILIES: Registry[UnitFamily] = Registry("multiplier type")
_FAMILY_ORDER: list[str] = []
_CACHE: dict[str, Multiplier] = {}
_LOCK = threading.RLock()
_FAMILY_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def register_unit_family(name: str, factory: UnitFactory, *, description: str = "",
                         syntax: str = "",
                         standard: Sequence[str] | Callable[[], Sequence[str]] = (),
                         accepts_signed: bool = False, cacheable: bool = True,
                         listing_order: int = 100) -> UnitFamily:
    """Register a unit family under ``name`` (lower case letters, digits and '-').

    Args:
        name: the family name, the part of a spec before ``:``.
        factory: ``factory(params: str | None) -> Multiplier`` (plus ``signed=`` when
            ``accepts_signed``); it raises InvalidParameterError for bad parameters.
        description: one line for listings.
        syntax: the spec syntax for error messages, e.g. ``"drum:K with K in 2..8"``.
        standard: specs listed by :func:`list_units` (or a callable returning them).
        accepts_signed: whether ``create_unit(..., signed=...)`` is meaningful.
        cacheable: whether created units are cached by spec (False for files that change).
        listing_order: families are listed by (listing_order, registration order); the
            formula families use 10, EvoApprox 50, user tables 90.

    Raises:
        InvalidParameterError: a malformed name. ValueError: the name is already taken.
    """
    if not _FAMILY_NAME.match(name):
        raise InvalidParameterError(
            f"Invalid multiplier family name {name!r}: use lower case letters, digits and '-'.")
    family = UnitFamily(name, factory, description, syntax, standard, accepts_signed, cacheable,
                        listing_order)
    _FAMILIES.register(name, family)
    _FAMILY_ORDER.append(name)
    return family


def list_unit_families() -> list[UnitFamily]:
    """The registered families, in listing order (see :func:`list_units`)."""
    families = [_FAMILIES.get(n) for n in _FAMILY_ORDER]
    return sorted(families, key=lambda f: f.listing_order)


def get_unit_family(name: str) -> UnitFamily:
    """The family registered as ``name``; UnknownNameError (with close matches) if none."""
    return _FAMILIES.get(name)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"drum:6"`` -> ``("drum", "6")``; ``"mitchell"`` -> ``("mitchell", None)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError(
            f"A multiplier spec must be a non-empty string like 'drum:6', got {spec!r}.")
    family, sep, params = spec.strip().partition(":")
    return family.strip().lower(), (params.strip() if sep else None)


def create_unit(spec: str | Multiplier, *, signed: bool | None = None) -> Multiplier:
    """The unit named by ``spec``, e.g. ``"exact"``, ``"trunc:4"``, ``"bam:2,4"``,
    ``"drum:6"``, ``"evo:mul8u_2AC"``, ``"evo:v2022/mul8s_1KV8"``, ``"file:table.npy"``.

    Units are cached: creating the same spec twice returns the same object.

    Args:
        spec: a spec string, or a :class:`Multiplier` (returned as is).
        signed: for user tables (``file:``) only: the declared signedness (see
            :func:`~approxmap.multipliers.tables.load_table`).

    Raises:
        UnknownNameError: unknown family or unknown EvoApprox name (with close matches).
        InvalidParameterError: malformed or out-of-range parameters.
        DataError: a user table that cannot be used.
    """
    if isinstance(spec, Multiplier):
        return spec
    family_name, params = split_spec(spec)
    family = _FAMILIES.get(family_name)
    if signed is not None and not family.accepts_signed:
        raise InvalidParameterError(
            f"signed= applies only to user tables ('file:...'); the {family.name!r} family "
            "defines the signedness of its units.")
    key = f"{family_name}:{params}" if params is not None else family_name
    with _LOCK:
        if family.cacheable and key in _CACHE:
            return _CACHE[key]
        unit = family.factory(params, signed=signed) if family.accepts_signed \
            else family.factory(params)
        if not family.cacheable:
            return unit
        unit = _CACHE.setdefault(unit.name, unit)
        _CACHE[key] = unit
        return unit


def list_units(pattern: str = "*") -> list[str]:
    """Canonical names of the concrete units worth listing that match the glob ``pattern``.

    The formula families at their standard parameters (see
    :mod:`approxmap.multipliers.formulas`) and every EvoApprox unit of every release
    (``evo:v10/...``, ``evo:master/...``, ``evo:v2022/...``); families in the order of
    their ``listing_order`` (formulas, then EvoApprox), then of registration. A pattern
    without a release (no ``/``) matches every release: ``evo:mul8u_2*`` lists
    ``evo:v10/mul8u_2AC``, ``evo:master/...`` and ``evo:v2022/...`` alike.
    """
    names: list[str] = []
    families = [_FAMILIES.get(n) for n in _FAMILY_ORDER]
    for family in sorted(families, key=lambda f: f.listing_order):  # stable sort
        names.extend(family.standard_units())

    def matches(name: str) -> bool:
        if fnmatch.fnmatchcase(name, pattern):
            return True
        return "/" not in pattern and fnmatch.fnmatchcase(re.sub(r":[^/:]*/", ":", name), pattern)

    return [n for n in names if matches(n)]


def parse_int_params(family: str, params: str | None, count: int,
                     bounds: Sequence[tuple[int, int]], syntax: str) -> tuple[int, ...]:
    """Parse ``count`` comma-separated integers, each within its inclusive bounds.

    Raises:
        InvalidParameterError: missing, malformed or out-of-range parameters (one line,
            giving ``syntax``).
    """
    if params is None or not params:
        raise InvalidParameterError(f"The {family!r} family needs parameters: {syntax}.")
    parts = [p.strip() for p in params.split(",")]
    if len(parts) != count or not all(re.fullmatch(r"[+-]?\d+", p) for p in parts):
        raise InvalidParameterError(
            f"Bad parameters {params!r} for the {family!r} family: {syntax}.")
    values = tuple(int(p) for p in parts)
    for value, (lo, hi) in zip(values, bounds, strict=True):
        if not lo <= value <= hi:
            raise InvalidParameterError(
                f"Parameter {value} of {family}:{params} is out of range: {syntax}.")
    return values


def no_params(family: str, params: str | None) -> None:
    """Raise InvalidParameterError when a family without parameters got some."""
    if params is not None:
        raise InvalidParameterError(
            f"The {family!r} family takes no parameters: use {family!r}, not "
            f"'{family}:{params}'.")


def unknown_name_error(kind: str, name: str, candidates: Sequence[str],
                       where: str) -> UnknownNameError:
    """An UnknownNameError of one line with close matches and where to list the names."""
    hint = close_matches_hint(name, list(candidates))
    return UnknownNameError(f"Unknown {kind} {name!r}.{hint} {where}")
