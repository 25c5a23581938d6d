"""The run folder: one model on one evaluation set, its stored trials, results and report.

`RunFolder` owns the folder's file names: `results.sqlite` (every campaign's trials),
`<kind>.json` per result (profile.json, significance.json, sensitivity.json, prune.json,
...), the renderers' CSV tables and figures, `report.html`, rebuilt from every result in the
folder, and the configuration of the command that wrote each result (`config-<command>.toml`,
and `config.toml`: the last command's), when the command line gave one (`keep_config`). A folder holding another model, weights or evaluation data is refused before
anything is written, and nothing is written before the first result or trial.

>>> with RunFolder("runs/demo", identity_of(model, data, "mnist-cnn")) as folder:  # doctest: +SKIP
...     result = profile_layers(model, data, spec, folder.run(trials=5))
...     folder.save(result)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from approxmap.analysis.results import Result, list_result_kinds, result_class
from approxmap.campaign.campaign import weights_digest
from approxmap.campaign.run import Run
from approxmap.campaign.store import Store
from approxmap.core.data import EvalData
from approxmap.core.exceptions import ApproxmapError, InvalidParameterError, StoreError
from approxmap.report.html import page
from approxmap.report.renderers import ORDER, percent, renderer_for

RESULTS = "results.sqlite"
REPORT = "report.html"
CONFIG = "config.toml"
IDENTITY_KEYS = ("model", "weights", "dataset", "images", "data")


def data_digest(data: EvalData) -> str:
    """A short hash (16 hex digits, blake2b) of the evaluation inputs and labels."""
    h = hashlib.blake2b(digest_size=8)
    if data.x is not None:
        h.update(data.x.contiguous().numpy().tobytes())
        if data.y is not None:
            h.update(data.y.contiguous().numpy().tobytes())
    elif hasattr(data, "files"):
        for path, label in zip(data.files, data.labels or [None] * len(data.files), strict=True):
            h.update(f"{Path(path).name}:{Path(path).stat().st_size}:{label}".encode())
    else:
        for x, y in data.batches(256):
            h.update(x.contiguous().numpy().tobytes())
            if y is not None:
                h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()


def identity_of(model: nn.Module, data: EvalData, model_name: str = "custom",
                dataset: str | None = None) -> dict[str, Any]:
    """What a run folder is about: the model (name, weights digest) and the evaluation data
    (name, number of images, content digest, how the subset was taken)."""
    return {"model": model_name, "weights": weights_digest(model),
            "dataset": dataset or data.name, "images": len(data), "data": data_digest(data),
            "selection": data.selection}


class RunFolder:
    """A run folder; see the module docstring.

    Raises:
        InvalidParameterError: an empty path, a path that is a file, or a folder that
            cannot be created or written.
        StoreError: the folder holds results of another model, weights or data, a damaged
            or foreign results.sqlite, or a damaged result file (`<kind>.json`); the file
            is named, and nothing in the folder is changed.
    """

    def __init__(self, path: str | Path, identity: Mapping[str, Any] | None = None) -> None:
        if not str(path).strip():
            raise InvalidParameterError("The output folder is an empty path.")
        self.path = Path(path)
        _check_writable(self.path)
        self.identity = dict(identity) if identity is not None else None
        self._store: Store | None = None
        self._configs: dict[str, str] = {}
        self._written = 0
        try:  # a damaged store or result file is refused now, before any work
            if self.identity is not None:
                self._check_identity()
            else:
                self.stored_identity()
            self.results()
        except BaseException:
            self.close()  # a refused folder is left as it was (no -wal/-shm files)
            raise

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The folder's results.sqlite (created by its first write)."""
        if self._store is None:
            self._store = Store(self.path / RESULTS)
            if self.identity is not None and self._store.meta("identity") is None:
                self._store.set_meta("identity", self.identity)
        return self._store

    def run(self, **settings: Any) -> Run:
        """A Run storing its campaigns here, named after the folder's model and dataset."""
        names = {} if self.identity is None else {
            "model": self.identity["model"], "dataset": self.identity["dataset"]}
        return Run(store=self.store, names=names, **settings)

    def keep_config(self, command: str, text: str) -> None:
        """The configuration (a campaign file's text) of the command writing here; `save`
        writes it beside the result as config-<command>.toml and config.toml."""
        self._configs[command] = text

    @property
    def trials_written(self) -> int:
        """How many trials this object stored (also after `close`)."""
        return self._written + (self._store.trials_written if self._store is not None else 0)

    def close(self) -> None:
        if self._store is not None:
            self._written += self._store.trials_written
            self._store.close()
            self._store = None

    # -- identity ------------------------------------------------------------------------------

    def _check_identity(self) -> None:
        stored = self.stored_identity()
        if stored is None:
            return
        problems = identity_problems(stored, self.identity)
        if problems:
            raise StoreError(f"{self.path} holds results of another setup ({'; '.join(problems)}). "
                             "Results are never mixed: use another output folder.")

    def stored_identity(self) -> dict[str, Any] | None:
        """The identity recorded in the folder (from its store, or its result files)."""
        if (self.path / RESULTS).exists():
            store = self.store
            identity = store.meta("identity")
            if identity is not None:
                return identity
            setups = list(store.campaign_setups().values())
            if setups:  # a store of approxmap 0.1: no identity, the campaign setup has it
                return {k: setups[0][k] for k in ("model", "weights", "dataset", "images")
                        if k in setups[0]}
        for kind in list_result_kinds():
            data = self._read_json(kind)
            if data is not None:
                return {k: data[k] for k in ("model", "dataset") if k in data}
        return None

    # -- results -------------------------------------------------------------------------------

    def _read_json(self, kind: str) -> dict[str, Any] | None:
        path = self.path / f"{kind}.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path} is damaged (not readable JSON: {exc}); move it away or "
                             "use another output folder.") from None
        if not isinstance(data, dict):
            raise StoreError(f"{path} is damaged (not a JSON object).")
        return data

    def results(self) -> list[Result]:
        """Every result stored in the folder, in report order.

        Raises:
            StoreError: a result file is damaged (named).
        """
        kinds = [k for k in ORDER if k in list_result_kinds()]
        kinds += [k for k in list_result_kinds() if k not in kinds]
        out = []
        for kind in kinds:
            data = self._read_json(kind)
            if data is None:
                continue
            try:
                out.append(result_class(kind).from_dict(data))
            except ApproxmapError as exc:
                raise StoreError(f"{self.path / f'{kind}.json'} is damaged: {exc}") from None
        return out

    def save(self, result: Result) -> dict[str, Path]:
        """Write `<kind>.json`, the result's artifacts, tables and figures, and report.html."""
        self.path.mkdir(parents=True, exist_ok=True)
        artifacts = result.write_artifacts(self.path)
        path = self.path / f"{result.kind}.json"
        _atomic_write(path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
        for command, text in self._configs.items():
            _atomic_write(self.path / f"config-{command}.toml", text)
            _atomic_write(self.path / CONFIG, text)
        if self.identity is not None:
            self.store.commit_meta()
        renderer_for(result.kind).files(result, self.path)
        return {"json": path, "report": self.write_report(),
                **{f.name: f for f in artifacts}}

    def write_report(self, rerender: bool = False) -> Path:
        """Rebuild report.html from every result in the folder (`rerender`: figures and tables
        too, e.g. after the folder was copied without them)."""
        results = self.results()
        if rerender:
            for result in results:
                renderer_for(result.kind).files(result, self.path)
        sections = [renderer_for(r.kind).section(r, self.path) for r in results]
        first = results[0].to_dict() if results else {}
        clean = next((r.to_dict().get("clean_accuracy") for r in results
                      if r.to_dict().get("clean_accuracy") is not None), None)
        identity = self.stored_identity() or {}
        summary = [("Model", first.get("model", identity.get("model", "—"))),
                   ("Dataset", first.get("dataset", identity.get("dataset", "—"))),
                   ("Images", first.get("selection") or first.get("images", "—")),
                   ("Clean accuracy", f"{percent(clean)} %" if clean is not None else "—"),
                   ("Weights digest", identity.get("weights", "—")),
                   ("Results", ", ".join(r.kind for r in results) or "none"),
                   ("Report built", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))]
        commands = [(f"Command ({r.kind})", r.to_dict()["command"]) for r in results
                    if r.to_dict().get("command")]
        title = f"approxmap report: {summary[0][1]} on {summary[1][1]}"
        path = self.path / REPORT
        _atomic_write(path, page(self.path, title, summary + commands, sections))
        return path


def identity_problems(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a folder's identity and this run's (keys both have).

    A store of approxmap 0.1 has no data digest; it matches only data used whole (0.1 took
    the first N images where this version takes a class-balanced sample).
    """
    problems = [f"{k}: stored {stored[k]!r}, now {now[k]!r}" for k in IDENTITY_KEYS
                if k in stored and k in now and stored[k] != now[k]]
    if "data" not in stored and "weights" in stored and not str(now.get("selection", "all")
                                                                ).startswith("all"):
        problems.append("images: stored the first N (approxmap 0.1), now a class-balanced subset")
    return problems


def _check_writable(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(f"Output folder {path} is a file.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"Cannot write to output folder {path} ({existing} is not a "
                                    "writable folder).")


def _atomic_write(path: Path, text: str) -> None:
    """Write through a temporary file of this process (two processes saving the same folder
    never rename each other's half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ApproxmapError(f"Cannot write {path}: {exc.strerror or exc}") from None


__all__ = ["CONFIG", "IDENTITY_KEYS", "REPORT", "RESULTS", "RunFolder", "data_digest", "identity_of",
           "identity_problems"]
