"""Dead letters: every input that could not be used, with the reason, kept for inspection.

A malformed payload, a message on an unknown topic, a value for an unknown tag:
each is counted and stored here with its bytes, and the pipeline goes on. The
store is SQLite (stdlib, durable, independent of the historian backend) and
bounded: past ``max_rows`` the oldest rows go, while the counters keep counting.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_ns: int
    source: str
    topic: str
    reason: str
    payload: bytes


class DeadLetterStore:
    """Thread-safe, bounded, durable store of rejected inputs."""

    def __init__(self, path: str | Path, max_rows: int = 100_000) -> None:
        self.path = str(path)
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, received_ns INTEGER,"
            " source TEXT, topic TEXT, reason TEXT, payload BLOB)"
        )
        self.counts: Counter[str] = Counter()  # by source, since start
        self._since_prune = 0

    def add(self, source: str, topic: str, reason: str, payload: bytes, received_ns: int | None = None) -> None:
        received = received_ns if received_ns is not None else time.time_ns()
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letters (received_ns, source, topic, reason, payload) VALUES (?, ?, ?, ?, ?)",
                (received, source, topic, reason[:2000], bytes(payload)),
            )
            self.counts[source] += 1
            self._since_prune += 1
            if self._since_prune >= 1000:
                self._since_prune = 0
                self._db.execute(
                    "DELETE FROM dead_letters WHERE id <= (SELECT MAX(id) FROM dead_letters) - ?", (self.max_rows,)
                )

    def list(self, limit: int = 100, offset: int = 0, source: str | None = None) -> list[DeadLetter]:
        """Newest first."""
        query = "SELECT id, received_ns, source, topic, reason, payload FROM dead_letters"
        args: tuple[object, ...] = ()
        if source:
            query += " WHERE source = ?"
            args = (source,)
        query += " ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit, offset)).fetchall()
        return [DeadLetter(*row) for row in rows]

    def total(self) -> int:
        """Rows kept (the oldest beyond max_rows are gone)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
