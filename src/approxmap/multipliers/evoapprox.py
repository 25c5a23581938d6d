"""EvoApproxLib 8-bit multipliers (shipped truth tables), as ``evo:`` units.

Source: EvoApproxLib (github.com/ehw-fit/evoapproxlib, MIT licence, Copyright 2018
EHW@FIT, Faculty of Information Technology, Brno University of Technology; see
``data/ATTRIBUTION.txt``); V. Mrazek, R. Hrbacek, Z. Vasicek, L. Sekanina, "EvoApprox8b:
Library of approximate adders and multipliers for circuit design and benchmarking of
approximation methods", DATE 2017, pp. 258-261.

Data (``data/evo8_luts.npz`` and ``data/evo8_luts.json``, loaded lazily on first use):
66 distinct 256 x 256 int32 tables keyed ``sha_<12 hex>`` (SHA-1 of the int32 bytes),
and per release/name the table hash, signedness, published PDK45 power and the error
metrics of the circuit. Releases: ``v10`` (tag v1.0, the default), ``master`` and
``v2022``.

Specs: ``evo:NAME`` (release v10), ``evo:RELEASE/NAME`` (``v10`` or its alias ``v1.0``,
``master``, ``v2022``); the canonical name always carries the release, e.g.
``evo:v10/mul8u_2AC``. Names were reused across releases for different circuits (v1.0's
``mul8s_1KV8`` is exact, v2022's is approximate), so a unit is identified by release and
table hash, never by its name alone. Signed tables (``mul8s_*``) use the
``lut[a + 128][w + 128]`` layout, unsigned ones ``lut[a][w]``; ``a`` (the first operand of
the published C function) is the activation, ``w`` the weight.
"""

from __future__ import annotations

import json
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from approxmap.core.exceptions import DataError, InvalidParameterError
from approxmap.multipliers.units import (
    Multiplier,
    register_unit_family,
    table_sha,
    unknown_name_error,
)

DATA_DIR = Path(__file__).parent / "data"
LUT_FILE = DATA_DIR / "evo8_luts.npz"
META_FILE = DATA_DIR / "evo8_luts.json"
RELEASES = ("v10", "master", "v2022")
DEFAULT_RELEASE = "v10"
RELEASE_ALIASES = {"v10": "v10", "v1.0": "v10", "master": "master", "v2022": "v2022"}
CITATION = (
    "EvoApproxLib (github.com/ehw-fit/evoapproxlib, MIT licence, (c) Brno University of "
    "Technology), release {release}; V. Mrazek, R. Hrbacek, Z. Vasicek, L. Sekanina, "
    "\"EvoApprox8b: Library of approximate adders and multipliers for circuit design and "
    "benchmarking of approximation methods\", DATE 2017, pp. 258-261")

#: json metric name -> UnitMetrics field name.
METRIC_NAMES = {"mae": "mae", "wce": "wce", "mre_pct": "mred_pct", "ep_pct": "ep_pct",
                "mean": "mean_error", "std": "std_error"}

_POWER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*mW\s*$")
_LOCK = threading.Lock()
_TABLES: dict[str, np.ndarray] = {}


@lru_cache(maxsize=1)
def _index() -> dict[str, Any]:
    """The parsed json (``names``, ``meta``, ``layout``); DataError if missing or corrupt."""
    try:
        with open(META_FILE, encoding="utf-8") as f:
            index = json.load(f)
        if not isinstance(index.get("names"), dict) or not isinstance(index.get("meta"), dict):
            raise ValueError("the keys 'names' and 'meta' are missing")
    except (OSError, ValueError) as exc:
        raise DataError(f"EvoApprox index {META_FILE} cannot be read: {exc}") from None
    return index


def evo_names(release: str | None = None) -> list[str]:
    """``release/name`` of every EvoApprox multiplier (of one release when given), in the
    order of the data file (v10, master, v2022)."""
    names = list(_index()["names"])
    if release is None:
        return names
    rel = _release(release)
    return [n for n in names if n.split("/", 1)[0] == rel]


def parse_power(text: Any) -> float:
    """``"0.052 mW"`` -> 0.052; DataError for anything else."""
    match = _POWER.match(str(text))
    if not match:
        raise DataError(f"EvoApprox power figure {text!r} is not of the form '0.123 mW'.")
    return float(match.group(1))


def _release(release: str) -> str:
    rel = RELEASE_ALIASES.get(release.strip().lower())
    if rel is None:
        raise InvalidParameterError(
            f"Unknown EvoApprox release {release!r}: use one of v10 (tag v1.0, the default), "
            "master, v2022.")
    return rel


def resolve_name(spec: str) -> str:
    """``"mul8u_2AC"`` -> ``"v10/mul8u_2AC"``; ``"v2022/mul8s_1KV8"`` stays.

    Raises:
        InvalidParameterError: no name or an unknown release.
        UnknownNameError: no such multiplier in that release (close matches and, when the
            name exists in another release, which one).
    """
    text = (spec or "").strip()
    if not text:
        raise InvalidParameterError(
            "The 'evo' family needs a multiplier name: evo:NAME or evo:RELEASE/NAME, e.g. "
            "evo:mul8u_2AC or evo:v2022/mul8s_1KV8.")
    release, sep, name = text.rpartition("/")
    rel = _release(release) if sep else DEFAULT_RELEASE
    key = f"{rel}/{name}"
    names = _index()["names"]
    if key in names:
        return key
    elsewhere = [n for n in names if n.split("/", 1)[1] == name]
    if elsewhere:
        where = ", ".join(f"evo:{n}" for n in elsewhere)
        raise unknown_name_error("EvoApprox multiplier", f"evo:{key}", [],
                                 f"{name} is not in release {rel}; it exists as {where}.")
    candidates = [n.split("/", 1)[1] for n in names if n.startswith(rel + "/")]
    raise unknown_name_error("EvoApprox multiplier", name, candidates,
                             f"(release {rel}; list them with `approxmap units list 'evo:*'`).")


def _table(sha: str) -> np.ndarray:
    """The read-only int32 table of that hash (loaded once, shared by releases)."""
    with _LOCK:
        table = _TABLES.get(sha)
        if table is None:
            try:
                with np.load(LUT_FILE, allow_pickle=False) as data:
                    table = np.array(data[f"sha_{sha}"], dtype=np.int32, order="C")
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(
                    f"EvoApprox table sha_{sha} cannot be read from {LUT_FILE}: {exc}") from None
            if table.shape != (256, 256) or table_sha(table) != sha:
                raise DataError(f"EvoApprox table sha_{sha} in {LUT_FILE} is corrupt "
                                "(shape or hash does not match).")
            table.setflags(write=False)
            _TABLES[sha] = table
        return table


def evo_unit(key: str) -> Multiplier:
    """The Multiplier of ``release/name`` (a key of :func:`evo_names`)."""
    index = _index()
    sha = index["names"][key]
    meta = index["meta"][key]
    release, name = key.split("/", 1)
    signed = bool(meta["signed"])
    if signed != name.startswith("mul8s"):
        raise DataError(f"EvoApprox entry {key}: signedness does not match the name.")
    recorded = {METRIC_NAMES[k]: float(meta[k]) for k in METRIC_NAMES if k in meta}
    kind = "signed" if signed else "unsigned"
    return Multiplier(
        name=f"evo:{key}", family="evo", signed=signed, lut=_table(sha),
        citation=CITATION.format(release="v1.0" if release == "v10" else release),
        power_mw=parse_power(meta["pwr_mW"]), recorded=recorded, recorded_atol=0.0,
        description=f"EvoApproxLib {release} {name} ({kind}, {meta['pwr_mW']})",
        exact_on_zero=False)


def _evo_factory(params: str | None) -> Multiplier:
    return evo_unit(resolve_name(params or ""))


def _standard() -> list[str]:
    return [f"evo:{n}" for n in evo_names()]


register_unit_family(
    "evo", _evo_factory, description="EvoApproxLib 8-bit multipliers (Mrazek et al. 2017)",
    syntax="evo:NAME or evo:RELEASE/NAME (releases v10 (default), master, v2022)",
    standard=_standard, listing_order=50)
