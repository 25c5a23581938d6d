"""Plain name -> factory registries (models, datasets, error models) with helpful lookups."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from approxmap.core.exceptions import UnknownNameError

T = TypeVar("T")


def close_matches_hint(name: str, candidates: list[str]) -> str:
    """Return ' Did you mean: a, b?' for the candidates close to name, or ''."""
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    if not close:
        close = [c for c in candidates if name.lower() in c.lower()][:3]
    return f" Did you mean: {', '.join(close)}?" if close else ""


class Registry(Generic[T]):
    """A named collection of entries; `kind` names them in error messages ("model").

    `providers` name modules (of higher layers, e.g. `approxmap.multipliers.target`) that
    register more entries when imported: they are imported on the first lookup, the way
    plugins are found through entry points, so the layer holding the registry never imports
    them statically and `import approxmap` stays light.
    """

    def __init__(self, kind: str, providers: tuple[str, ...] = (), plural: str | None = None
                 ) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, T] = {}
        self._providers = list(providers)

    def _load_providers(self) -> None:
        while self._providers:
            importlib.import_module(self._providers.pop(0))

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def names(self, pattern: str = "*") -> list[str]:
        self._load_providers()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str) -> T:
        if name not in self._entries:
            self._load_providers()
        try:
            return self._entries[name]
        except KeyError:
            hint = close_matches_hint(name, list(self._entries))
            known = ", ".join(sorted(self._entries))
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{hint} Known {self.plural}: {known}."
            ) from None

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self._load_providers()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
