"""The embedded SQLite ring: the last ``ring_hours`` of every point, for ``ap show``,
``speaker show`` and the demo when no InfluxDB is configured (and always, as a
local copy).

``{state_dir}/telemetry.db`` in WAL mode (readers never block the writer) with
``synchronous=NORMAL`` (a power loss may cost the last transactions; this is a
cache of recent history, not the record). Three tables: ``series`` (measurement
and tags, once per series), ``series_tag`` (one row per tag, to find a series by
any tag), ``points`` (timestamp, series, fields as JSON). Writes come in batches
from one thread at a time (``asyncio.to_thread``); :meth:`Ring.prune` deletes
what is older than the window, in chunks so the writer is never held long.

Every method is blocking: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netmgr.telemetry.points import Point

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    UNIQUE (measurement, tags)
);
CREATE TABLE IF NOT EXISTS series_tag (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    PRIMARY KEY (key, value, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS points (
    ts INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_series_ts ON points (series_id, ts);
CREATE INDEX IF NOT EXISTS points_ts ON points (ts);
"""
PRUNE_CHUNK = 20_000


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe fields: None and non-finite floats left out (the API answers strict JSON)."""
    out = {}
    for k, v in fields.items():
        if v is None or (type(v) is float and not math.isfinite(v)):
            continue
        out[k] = v
    return out


class Ring:
    """Recent points in SQLite, pruned to ``hours``."""

    def __init__(self, path: Path, hours: float) -> None:
        self.path = Path(path)
        self.hours = hours
        self._db: sqlite3.Connection | None = None
        self._series: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()
        self.points_written = 0
        self.points_pruned = 0

    def open(self) -> Ring:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
        self._db = db
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _series_id(self, db: sqlite3.Connection, p: Point) -> int:
        try:
            ck: tuple[Any, ...] = (p.measurement, *p.tags, *p.tags.values())
            sid = self._series.get(ck)
        except TypeError:
            ck, sid = (), None
        if sid is not None:
            return sid
        tags = {str(k): str(v) for k, v in sorted(p.tags.items()) if v not in (None, "")}
        tags_json = json.dumps(tags, separators=(",", ":"), ensure_ascii=False)
        row = db.execute("SELECT id FROM series WHERE measurement = ? AND tags = ?",
                         (p.measurement, tags_json)).fetchone()
        if row is None:
            sid = db.execute("INSERT INTO series (measurement, tags) VALUES (?, ?)",
                             (p.measurement, tags_json)).lastrowid
            db.executemany("INSERT OR IGNORE INTO series_tag (key, value, series_id) VALUES (?, ?, ?)",
                           [(k, v, sid) for k, v in tags.items()])
        else:
            sid = row[0]
        assert sid is not None
        if ck:
            if len(self._series) > 500_000:
                self._series.clear()
            self._series[ck] = sid
        return sid

    def write(self, points: Iterable[Point]) -> int:
        """Store a batch in one transaction; returns how many points were stored."""
        with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError(f"telemetry ring {self.path} is closed")
            dumps = json.dumps
            rows = []
            db.execute("BEGIN")
            try:
                for p in points:
                    fields = _clean_fields(p.fields)
                    if not fields:
                        continue
                    rows.append((p.ts_ns, self._series_id(db, p),
                                 dumps(fields, separators=(",", ":"), ensure_ascii=False)))
                db.executemany("INSERT INTO points (ts, series_id, fields) VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._series.clear()  # ids made in the rolled-back transaction are gone
                raise
            self.points_written += len(rows)
            return len(rows)

    def prune(self, now_ns: int | None = None) -> int:
        """Delete points older than the window (in chunks); returns how many went."""
        cutoff = (now_ns if now_ns is not None else time.time_ns()) - int(self.hours * 3600e9)
        total = 0
        while True:
            with self._lock:
                if self._db is None:
                    return total
                n = self._db.execute(
                    "DELETE FROM points WHERE rowid IN (SELECT rowid FROM points WHERE ts < ? LIMIT ?)",
                    (cutoff, PRUNE_CHUNK)).rowcount
            total += n
            if n < PRUNE_CHUNK:
                break
        self.points_pruned += total
        return total

    def count(self, measurement: str | None = None) -> int:
        """Points held (of one measurement, or all)."""
        with self._lock:
            assert self._db is not None
            if measurement is None:
                return self._db.execute("SELECT count(*) FROM points").fetchone()[0]
            return self._db.execute("SELECT count(*) FROM points p JOIN series s ON s.id = p.series_id "
                                    "WHERE s.measurement = ?", (measurement,)).fetchone()[0]

    def history(self, measurement: str, tag_key: str, tag_value: str, since: int,
                fields: Iterable[str] | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """Points of ``measurement`` whose tag ``tag_key`` is ``tag_value``, at or after ``since``
        (ns), oldest first: ``{"ts": ns, "tags": {...}, "fields": {...}}`` (only ``fields`` if given)."""
        with self._lock:
            assert self._db is not None
            return query_history(self._db, measurement, tag_key, tag_value, since, fields, limit)


def query_history(db: sqlite3.Connection, measurement: str, tag_key: str, tag_value: str, since: int,
                  fields: Iterable[str] | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """:meth:`Ring.history` on any connection to a ring database."""
    rows = db.execute(
        "SELECT p.ts, s.tags, p.fields FROM series_tag t "
        "JOIN series s ON s.id = t.series_id "
        "JOIN points p ON p.series_id = s.id "
        "WHERE t.key = ? AND t.value = ? AND s.measurement = ? AND p.ts >= ? "
        "ORDER BY p.ts DESC LIMIT ?",
        (tag_key, tag_value, measurement, since, limit)).fetchall()
    wanted = set(fields) if fields is not None else None
    out = []
    for ts, tags, f in reversed(rows):
        values = json.loads(f)
        if wanted is not None:
            values = {k: v for k, v in values.items() if k in wanted}
        out.append({"ts": ts, "tags": json.loads(tags), "fields": values})
    return out


def history(path: Path, measurement: str, tag_key: str, tag_value: str, since: int,
            fields: Iterable[str] | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """:meth:`Ring.history` from the database file, read-only (for the API; [] if there is none yet)."""
    if not Path(path).exists():
        return []
    db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        return query_history(db, measurement, tag_key, tag_value, since, fields, limit)
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        db.close()
