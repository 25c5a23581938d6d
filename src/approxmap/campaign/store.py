"""Embedded SQLite store of trial records: one committed row per finished trial.

`Store(None)` keeps everything in memory; `Store("runs/x/results.sqlite")` persists it (WAL
journal). A file is only created by the first write, so a run refused before its first
result leaves the folder as it found it. Each campaign is identified by a name and its
setup (everything that changes a trial's numbers); opening a name with another setup is
refused. A store may also carry the *identity* of its run folder (model, weights, data),
checked the same way.

Schema versions: 1 (approxmap 0.1: campaigns, scenarios, trials; no version stamp) and 2
(adds the application id, `PRAGMA user_version`, and the `meta` table). Version-1 files are
migrated in place when opened; files of other applications are refused before anything is
written to them.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from approxmap.core.exceptions import InvalidParameterError, StoreError
from approxmap.core.records import COUNT_FIELDS, RECORD_COLUMNS, Counts, TrialRecord

APPLICATION_ID = 0x414D4150  # "AMAP"
SCHEMA_VERSION = 2
_SQL_TYPES = {int: "INTEGER", float: "REAL", bool: "INTEGER", str: "TEXT"}


def _count_columns() -> str:
    kinds = {name: type(getattr(Counts(), name)) for name in COUNT_FIELDS}
    return ", ".join(f"{name} {_SQL_TYPES[kinds[name]]} NOT NULL" for name in COUNT_FIELDS)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS campaigns (
    name TEXT PRIMARY KEY, setup TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scenarios (
    campaign TEXT NOT NULL, key TEXT NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY (campaign, key));
CREATE TABLE IF NOT EXISTS trials (
    campaign TEXT NOT NULL, scenario TEXT NOT NULL, trial INTEGER NOT NULL,
    seed INTEGER NOT NULL, {_count_columns()}, seconds REAL NOT NULL,
    PRIMARY KEY (campaign, scenario, trial));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_V1_TABLES = {"campaigns", "scenarios", "trials"}


class Store:
    """Trial records of one or more campaigns; finished records are never changed.

    An existing file is checked when opened, before anything is written to it: another
    application's SQLite file, a truncated or corrupt file, a campaign setup that is not a
    JSON object, or a trials row of the wrong types or impossible counts (n = 0, text where
    a count belongs) are refused.

    Raises:
        StoreError (one line, naming the file): the file is not an approxmap store, is
            damaged, was claimed by another process for another setup, or cannot be written.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, dict[str, Any]] = {}  # campaign -> setup, written with data
        self._pending_meta: dict[str, str] = {}
        self.trials_written = 0  # by this object (e.g. to say whether an interrupted run resumes)
        if self.path is None:
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            _create_schema(self._db)
        elif self.path.exists():
            self._connect()

    # -- connection, version and migration -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        existed = self.path.exists()
        db = None
        try:
            if not existed:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            if existed:
                _check_ours(db, self.path)
                _check_contents(db, self.path)
            _enable_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            _create_schema(db)
        except sqlite3.DatabaseError as exc:
            _close(db)
            raise StoreError(f"Cannot use results store {self.path}: {exc}") from None
        except StoreError:
            _close(db)
            raise
        except OSError as exc:
            raise StoreError(f"Cannot create results store {self.path}: {exc.strerror or exc}") from None
        self._db = db
        return db

    @property
    def exists(self) -> bool:
        """True when something is stored (in memory, or a file on disk)."""
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- identity of the run folder --------------------------------------------------------

    def meta(self, key: str) -> Any:
        """A stored metadata value (JSON-decoded), or None."""
        if self._db is None:
            return None
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        if not rows:
            return None
        row = rows[0]
        try:
            return json.loads(row[0])
        except ValueError:
            raise StoreError(f"Results store {self.path} holds a corrupt {key!r} entry.") from None

    def set_meta(self, key: str, value: Any) -> None:
        """Store a metadata value with the next write (not before: nothing is claimed early)."""
        self._pending_meta[key] = json.dumps(value, sort_keys=True)

    def commit_meta(self) -> None:
        """Write pending metadata now (creating the file): a result was saved."""
        if self._pending_meta:
            self._write("SELECT 1", [], None)

    def campaign_setups(self) -> dict[str, dict[str, Any]]:
        """Every stored campaign's setup, by name."""
        if self._db is None:
            return {}
        setups = {}
        for name, text in self._query("SELECT name, setup FROM campaigns", ()):
            setups[name] = _decode_setup(text, name, self.path)
        return setups

    # -- campaigns, scenarios, trials -------------------------------------------------------

    def open_campaign(self, name: str, setup: Mapping[str, Any]) -> None:
        """Check that a stored campaign `name` has this setup; a new one is written with its
        first trials (so a refused run leaves nothing behind).

        Raises:
            StoreError: the stored campaign of that name has another setup.
        """
        setup = json.loads(json.dumps(dict(setup), sort_keys=True))
        stored = self.campaign_setups().get(name)
        if stored is not None:
            _compare(stored, setup, f"{self.path or 'memory'} holds a campaign {name!r}")
        self._pending[name] = setup

    def add_scenarios(self, campaign: str, scenarios: Iterable[tuple[str, dict]]) -> None:
        rows = [(campaign, key, json.dumps(spec, sort_keys=True)) for key, spec in scenarios]
        if rows:
            self._write("INSERT OR IGNORE INTO scenarios VALUES (?, ?, ?)", rows, campaign)

    def add_trials(self, campaign: str, records: Iterable[TrialRecord]) -> None:
        """Commit finished trials (one row each); a trial already stored is kept as it was."""
        rows = [(campaign, *r.row()) for r in records]
        marks = ", ".join("?" * (len(RECORD_COLUMNS) + 1))
        self._write(f"INSERT OR IGNORE INTO trials VALUES ({marks})", rows, campaign)
        self.trials_written += len(rows)

    def trials(self, campaign: str) -> dict[tuple[str, int], TrialRecord]:
        if self._db is None:
            return {}
        cols = ", ".join(RECORD_COLUMNS)
        rows = self._query(f"SELECT {cols} FROM trials WHERE campaign = ?", (campaign,))
        return _records(rows, self.path, campaign)

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"Results store {self.path} is unreadable or corrupt: {exc}") from None

    def _write(self, sql: str, rows: list[tuple], campaign: str | None) -> None:
        """One transaction: pending metadata and the campaign's setup (checked again, for
        another process that created it meanwhile), then the rows."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in self._pending_meta.items():
                    db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
                    stored = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                    if stored[0] != value and _decoded(stored[0]) != json.loads(value):
                        raise StoreError(  # another process claimed the new folder first
                            f"{self.path} holds results of another setup (its {key} was just "
                            "written by another process). Results are never mixed: use "
                            "another output folder.")
                setup = self._pending.get(campaign)
                if setup is not None:
                    text = json.dumps(setup, sort_keys=True)
                    db.execute("INSERT OR IGNORE INTO campaigns VALUES (?, ?, ?)",
                               (campaign, text, time.time()))
                    row = db.execute("SELECT setup FROM campaigns WHERE name = ?",
                                     (campaign,)).fetchone()
                    _compare(_decode_setup(row[0], campaign, self.path), setup,
                             f"{self.path or 'memory'} holds a campaign {campaign!r}")
                if rows:
                    db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write results store {self.path}: {exc}") from None
        self._pending_meta.clear()


def _when_unlocked(action, timeout: float = 30.0):
    """`action()`, retried while SQLite answers "database is locked" without waiting (it
    does so when another process switches the same new file to WAL at the same moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005 + random.random() * 0.02)


def _enable_wal(db: sqlite3.Connection) -> None:
    _when_unlocked(lambda: db.execute("PRAGMA journal_mode=WAL"))


def _create_schema(db: sqlite3.Connection) -> None:
    """Create missing tables and stamp the version, atomically (a v1 file gains `meta`)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                db.execute(statement)
        if version < SCHEMA_VERSION:
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _check_ours(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not an approxmap store (before anything is written to it)."""
    def read() -> tuple[int, int, set[str]]:
        db.execute("BEGIN")  # one read transaction: another process may be making the schema
        try:
            return (db.execute("PRAGMA application_id").fetchone()[0],
                    db.execute("PRAGMA user_version").fetchone()[0],
                    {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")})
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    try:
        app, version, tables = _when_unlocked(read)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"{path} is not an SQLite results store ({exc}).") from None
    if app == APPLICATION_ID and version > SCHEMA_VERSION:
        db.close()
        raise StoreError(f"{path} was written by a newer approxmap (schema {version}); "
                         f"this one reads up to schema {SCHEMA_VERSION}.")
    is_v1 = app == 0 and version == 0 and (not tables or tables == _V1_TABLES)
    if app != APPLICATION_ID and not is_v1:
        db.close()
        raise StoreError(f"{path} is an SQLite file of another application (tables: "
                         f"{', '.join(sorted(tables)) or 'none'}); refusing to write to it. "
                         "Use another output folder.")
    if is_v1 and tables:
        columns = [r[1] for r in db.execute("PRAGMA table_info(trials)")]
        if columns != ["campaign", *RECORD_COLUMNS]:
            db.close()
            raise StoreError(f"{path} has an unknown trials table; refusing to use it.")


def _close(db: sqlite3.Connection | None) -> None:
    if db is not None:
        db.close()


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _records(rows: Iterable[tuple], path: Path | None, campaign: str
             ) -> dict[tuple[str, int], TrialRecord]:
    """Stored rows as records; a damaged row is a StoreError naming the file."""
    records = {}
    for row in rows:
        try:
            record = TrialRecord.from_row(row)
        except InvalidParameterError as exc:
            raise StoreError(f"Results store {path} is damaged: {exc} (campaign {campaign!r}); "
                             "use another output folder.") from None
        records[(record.scenario, record.trial)] = record
    return records


def _bad_row_condition() -> str:
    """SQL that is true for a trials row `TrialRecord.from_row` would refuse."""
    whole = "typeof({0}) != 'integer' OR {0} < 0"
    checks = ["typeof(scenario) != 'text'", whole.format("trial"), whole.format("seed"),
              "typeof(n) != 'integer' OR n < 1", "labeled NOT IN (0, 1)",
              "typeof(seconds) NOT IN ('real', 'integer')"]
    for name in COUNT_FIELDS:
        kind = type(getattr(Counts(), name))
        if kind is int and name != "n":
            checks.append(whole.format(name) + f" OR {name} > n")
        elif kind is float:
            checks.append(f"typeof({name}) NOT IN ('real', 'integer')")
    return " OR ".join(f"({c})" for c in checks)


def _check_contents(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged store when it is opened (before any work): a campaign setup that
    is not a JSON object, or a trials row of the wrong types or impossible counts (a hand
    edit, a foreign tool). Reads only."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"campaigns", "trials"} <= tables:
        return
    for name, text in db.execute("SELECT name, setup FROM campaigns"):
        _decode_setup(text, name, path)
    cols = ", ".join(["campaign", *RECORD_COLUMNS])
    bad = db.execute(f"SELECT {cols} FROM trials WHERE {_bad_row_condition()} LIMIT 1").fetchone()
    if bad is not None:
        _records([bad[1:]], path, bad[0])  # raises, naming what is wrong
        raise StoreError(f"Results store {path} is damaged: a trials row of campaign "
                         f"{bad[0]!r} holds impossible values; use another output folder.")


def _decode_setup(text: str, name: str, path: Path | None) -> dict[str, Any]:
    try:
        setup = json.loads(text)
    except ValueError:
        setup = None
    if not isinstance(setup, dict):
        raise StoreError(f"Results store {path} holds a corrupt setup for campaign {name!r} "
                         "(not a JSON object); use another output folder.")
    return setup


def _compare(stored: Mapping[str, Any], now: Mapping[str, Any], where: str) -> None:
    if dict(stored) == dict(now):
        return
    diffs = [f"{k}: stored {stored.get(k)!r}, now {now.get(k)!r}"
             for k in sorted(set(stored) | set(now)) if stored.get(k) != now.get(k)]
    raise StoreError(f"{where} with another setup ({'; '.join(diffs[:4])}). Results are never "
                     "mixed: use another output folder.")


__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Store"]
