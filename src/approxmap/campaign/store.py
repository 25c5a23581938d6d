"""Embedded SQLite store of trial records: one committed row per finished trial.

`Store(None)` keeps everything in memory; `Store("runs/x/results.sqlite")` persists it
(WAL journal). Each campaign is identified by a name and its setup (everything that
changes a trial's numbers); opening a name with another setup is refused.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from approxmap.campaign.records import RECORD_FIELDS, TrialRecord
from approxmap.exceptions import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    name TEXT PRIMARY KEY, setup TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scenarios (
    campaign TEXT NOT NULL, key TEXT NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY (campaign, key));
CREATE TABLE IF NOT EXISTS trials (
    campaign TEXT NOT NULL, scenario TEXT NOT NULL, trial INTEGER NOT NULL,
    seed INTEGER NOT NULL, n INTEGER NOT NULL, correct1 INTEGER NOT NULL,
    correct5 INTEGER NOT NULL, agree INTEGER NOT NULL, agree5 INTEGER NOT NULL,
    nonfinite INTEGER NOT NULL, loss_sum REAL NOT NULL, labeled INTEGER NOT NULL,
    seconds REAL NOT NULL, PRIMARY KEY (campaign, scenario, trial));
"""


class Store:
    """Trial records of one or more campaigns; finished records are never changed."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path))
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"Cannot use results store {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def open_campaign(self, name: str, setup: dict[str, Any]) -> None:
        """Create campaign `name`, or check that the stored one has the same setup."""
        text = json.dumps(setup, sort_keys=True)
        row = self._query("SELECT setup FROM campaigns WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._write("INSERT INTO campaigns VALUES (?, ?, ?)", [(name, text, time.time())])
            return
        stored = json.loads(row[0])
        if stored != json.loads(text):
            diffs = [f"{k}: stored {stored.get(k)!r}, now {setup.get(k)!r}"
                     for k in sorted(set(stored) | set(setup)) if stored.get(k) != setup.get(k)]
            where = self.path or "memory"
            raise StoreError(
                f"{where} holds a campaign {name!r} with another setup ({'; '.join(diffs[:4])}). "
                "Results are never mixed: use another output folder."
            )

    def add_scenarios(self, campaign: str, scenarios: Iterable[tuple[str, dict]]) -> None:
        rows = [(campaign, key, json.dumps(spec, sort_keys=True)) for key, spec in scenarios]
        self._write("INSERT OR IGNORE INTO scenarios VALUES (?, ?, ?)", rows)

    def add_trials(self, campaign: str, records: Iterable[TrialRecord]) -> None:
        """Commit finished trials (one row each); a trial already stored is kept as it was."""
        rows = [(campaign, *[getattr(r, f) for f in RECORD_FIELDS]) for r in records]
        marks = ", ".join("?" * (len(RECORD_FIELDS) + 1))
        self._write(f"INSERT OR IGNORE INTO trials VALUES ({marks})", rows)

    def trials(self, campaign: str) -> dict[tuple[str, int], TrialRecord]:
        cols = ", ".join(RECORD_FIELDS)
        cursor = self._query(f"SELECT {cols} FROM trials WHERE campaign = ?", (campaign,))
        records = {}
        for row in cursor:
            values = dict(zip(RECORD_FIELDS, row, strict=True))
            values["labeled"] = bool(values["labeled"])
            record = TrialRecord(**values)
            records[(record.scenario, record.trial)] = record
        return records

    def _query(self, sql: str, params: tuple) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"Results store {self.path} is unreadable or corrupt: {exc}") from None

    def _write(self, sql: str, rows: list[tuple]) -> None:
        try:
            with self._db:
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write results store {self.path}: {exc}") from None
