"""Typed results of analyses, registered by kind so that a run folder can read them back.

Each analysis returns a `Result` subclass (a dataclass) with `to_dict()` / `from_dict()`; its
`kind` names its file in a run folder (`<kind>.json`) and its renderer in the report.

>>> @register_result("toy")
... @dataclass
... class ToyResult(Result):
...     value: float = 0.0
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

from approxmap.core.exceptions import InvalidParameterError
from approxmap.core.registry import Registry

_RESULTS: Registry[type[Result]] = Registry("result kind")


def register_result(kind: str):
    """Class decorator registering a Result dataclass under `kind` (its file stem)."""

    def wrap(cls: type[Result]) -> type[Result]:
        cls.kind = kind
        _RESULTS.register(kind, cls)
        return cls

    return wrap


def result_class(kind: str) -> type[Result]:
    return _RESULTS.get(kind)


def list_result_kinds() -> list[str]:
    return list(_RESULTS.names())


class Result:
    """Base of analysis results: a dataclass that round-trips through standard JSON.

    The default `to_dict` is `dataclasses.asdict` with non-finite floats as None (standard
    JSON has no NaN) and the entries of an `extra` field (e.g. the command line) merged in at
    the top level; `from_dict` passes the known keys to the constructor and the others to
    `extra`. Results with nested dataclasses override `from_dict`.
    """

    kind: ClassVar[str] = "abstract"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        extra = data.pop("extra", None) or {}
        return json_safe({**data, **extra})

    def write_artifacts(self, directory: Path) -> list[Path]:
        """Files beyond `<kind>.json` that the result owns (e.g. a pruned model); none here."""
        return []

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        try:
            names = {f.name for f in dataclasses.fields(cls)}
            known = {k: v for k, v in data.items() if k in names and k != "extra"}
            if "extra" in names:
                known["extra"] = {k: v for k, v in data.items() if k not in names}
            return cls(**known)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"Not a {cls.kind} result: {exc}") from None


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float turned into None and tuples into lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return json_safe(value.tolist())
    return value


__all__ = ["Result", "json_safe", "list_result_kinds", "register_result", "result_class"]
