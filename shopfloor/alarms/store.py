"""The alarm store: an append-only journal, each alarm's present state, and the rules made through the API.

SQLite in ``<data_dir>/alarms.sqlite`` (stdlib, durable, independent of the
historian backend). Triggers refuse UPDATE and DELETE on the journal, so the
record of who did what and when can only grow. A batch's transitions and the
alarms' new states are written in one transaction: after a crash the journal
and the states agree.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopfloor.alarms.lifecycle import AlarmStatus, Transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    recorded_ns INTEGER NOT NULL,
    alarm_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    event TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    value REAL,
    user TEXT,
    comment TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL DEFAULT '',
    annunciated INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS journal_alarm ON journal (alarm_id, id);
CREATE INDEX IF NOT EXISTS journal_ts ON journal (ts_ns);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the alarm journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the alarm journal is append-only'); END;
CREATE TABLE IF NOT EXISTS alarm_state (alarm_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rules (
    name TEXT PRIMARY KEY, definition TEXT NOT NULL, updated_ns INTEGER NOT NULL, updated_by TEXT
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    ts_ns: int
    recorded_ns: int
    alarm_id: str
    rule: str
    event: str
    from_state: str
    to_state: str
    value: float | None
    user: str | None
    comment: str
    priority: str
    annunciated: bool


class AlarmStore:
    """Thread-safe; one connection shared under a lock (writes are small and rare next to ingest)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- journal and states --------------------------------------------------------------------------------------

    def record(
        self, transitions: Iterable[tuple[Transition, str, str]], states: Iterable[AlarmStatus],
        removed: Iterable[str] = (),
    ) -> None:
        """Append transitions (each with its rule and priority) and save the alarms' states, atomically."""
        now = time.time_ns()
        rows = [
            (t.ts_ns, now, t.alarm_id, rule, t.event, t.from_state, t.to_state, t.value, t.user, t.comment, prio,
             int(t.annunciated))
            for t, rule, prio in transitions
        ]
        state_rows = [(s.alarm_id, json.dumps(s.to_dict())) for s in states]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO journal (ts_ns, recorded_ns, alarm_id, rule, event, from_state, to_state, value,"
                    " user, comment, priority, annunciated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
                )
                self._db.executemany("INSERT OR REPLACE INTO alarm_state (alarm_id, data) VALUES (?, ?)", state_rows)
                self._db.executemany("DELETE FROM alarm_state WHERE alarm_id = ?", [(r,) for r in removed])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_states(self) -> dict[str, AlarmStatus]:
        with self._lock:
            rows = self._db.execute("SELECT alarm_id, data FROM alarm_state").fetchall()
        return {a: AlarmStatus.from_dict(json.loads(d)) for a, d in rows}

    def journal(
        self, *, alarm_id: str | None = None, rule: str | None = None, since_ns: int | None = None,
        until_ns: int | None = None, limit: int = 100, before_id: int | None = None,
    ) -> list[JournalEntry]:
        """Newest first; page with before_id (the smallest id of the previous page)."""
        where, args = [], []
        for cond, arg in (("alarm_id = ?", alarm_id), ("rule = ?", rule), ("ts_ns >= ?", since_ns),
                          ("ts_ns < ?", until_ns), ("id < ?", before_id)):
            if arg is not None:
                where.append(cond)
                args.append(arg)
        sql = "SELECT * FROM journal" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], bool(r[12]))
                for r in rows]

    # --- rules made through the API ------------------------------------------------------------------------------

    def api_rules(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT definition FROM rules ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def save_rule(self, name: str, definition: dict[str, Any], user: str | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO rules (name, definition, updated_ns, updated_by) VALUES (?, ?, ?, ?)",
                (name, json.dumps(definition), time.time_ns(), user),
            )

    def delete_rule(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM rules WHERE name = ?", (name,))

    # --- small persistent values (suppressor states) -------------------------------------------------------------

    def get(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))
