"""The append-only audit log of remote control, in SQLite (``<data_dir>/control-audit.sqlite``).

Every attempt to command equipment is one row, refused ones included: who (user and role), what
(command, kind, value), where (equipment, protocol, target: topic and metric, node id, register),
when, the decision and the rule that refused, the device's answer and the round trip. Triggers make
the table append-only: an UPDATE or DELETE aborts inside SQLite itself, so neither a bug in the
platform nor someone with the file and the sqlite3 shell can quietly rewrite history (they would
have to drop the triggers, which is visible in the schema). Rows are written in WAL mode and
synchronously, before the API answers.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    command TEXT NOT NULL,
    kind TEXT NOT NULL,
    equipment TEXT NOT NULL,
    protocol TEXT NOT NULL,
    target TEXT NOT NULL,
    value REAL,
    value_text TEXT NOT NULL,
    step TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule TEXT,
    reason TEXT NOT NULL,
    answer TEXT,
    round_trip_ms REAL
);
CREATE INDEX IF NOT EXISTS audit_command ON audit (command, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the control audit log is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the control audit log is append-only: DELETE is not allowed'); END;
"""

_COLUMNS = (
    "ts_ns", "user", "role", "command", "kind", "equipment", "protocol", "target", "value", "value_text", "step",
    "decision", "rule", "reason", "answer", "round_trip_ms",
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One attempt. ``step``: request, confirm or authorize; ``decision``: executed, failed, refused,
    confirm_required or authorized; ``rule`` names what refused (role, range, interlock:<name>, ...)."""

    ts_ns: int
    user: str
    role: str
    command: str
    kind: str
    equipment: str
    protocol: str
    value: float | None
    value_text: str
    step: str
    decision: str
    rule: str | None
    reason: str
    answer: str | None = None
    round_trip_ms: float | None = None
    target: str = ""  # what was written: topic and metric, node id, or register


class AuditLog:
    """Appends and reads audit rows; thread-safe (one connection under a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def append(self, entry: AuditEntry) -> int:
        """Write one row (committed when this returns); its id."""
        row = asdict(entry)
        sql = f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._lock:
            cur = self._db.execute(sql, [row[c] for c in _COLUMNS])
            return int(cur.lastrowid or 0)

    def read(
        self, *, limit: int = 100, before_id: int | None = None, command: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` pages back."""
        where: list[str] = []
        args: list[object] = []
        if before_id is not None:
            where.append("id < ?")
            args.append(before_id)
        if command is not None:
            where.append("command = ?")
            args.append(command)
        if user is not None:
            where.append("user = ?")
            args.append(user)
        sql = f"SELECT id, {', '.join(_COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        keys = ("id", *_COLUMNS)
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM audit").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["AuditEntry", "AuditLog"]
