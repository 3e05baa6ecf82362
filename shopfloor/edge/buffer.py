"""The gateway's store-and-forward buffer: sample batches on disk until the broker acknowledges them.

SQLite in WAL mode, one row per committed batch holding its four columns as one blob
(tag id int32, ts int64, value float64, quality uint8: 21 bytes a sample), never a row per
sample. Row ids only grow (AUTOINCREMENT), so the uplink reads "everything after id N" in
the order the samples were read, and a row is deleted only once every message carrying it
was acknowledged (PUBACK). What is on disk survives a restart of the gateway.

Bounded by ``max_bytes`` of samples. When an append does not fit, ``drop_oldest`` deletes
the oldest rows until it does (a row is the unit), ``drop_newest`` refuses the new batch;
a batch larger than the whole bound is refused under both. Dropped samples are counted, in
the file (all time) and since open. ``synchronous=NORMAL``: a commit survives a crash of the
process; a power loss may take the last commits (WAL not yet checkpointed).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shopfloor.core.samples import SampleBatch

SAMPLE_BYTES = 4 + 8 + 8 + 1
WhenFull = Literal["drop_oldest", "drop_newest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def pack(batch: SampleBatch) -> bytes:
    """The four columns back to back."""
    return b"".join((
        batch.tag_id.astype(np.int32, copy=False).tobytes(),
        batch.ts.astype(np.int64, copy=False).tobytes(),
        batch.value.astype(np.float64, copy=False).tobytes(),
        batch.quality.astype(np.uint8, copy=False).tobytes(),
    ))


def unpack(n: int, data: bytes) -> SampleBatch:
    if len(data) != n * SAMPLE_BYTES:
        raise ValueError(f"buffer row of {n} samples has {len(data)} bytes, expected {n * SAMPLE_BYTES}")
    return SampleBatch(
        np.frombuffer(data, np.int32, n, 0),
        np.frombuffer(data, np.int64, n, 4 * n),
        np.frombuffer(data, np.float64, n, 12 * n),
        np.frombuffer(data, np.uint8, n, 20 * n),
    )


@dataclass(frozen=True, slots=True)
class BufferStats:
    rows: int
    samples: int
    bytes: int
    max_bytes: int
    when_full: str
    dropped_total: int
    dropped_since_open: int

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows, "samples": self.samples, "bytes": self.bytes, "max_bytes": self.max_bytes,
            "when_full": self.when_full, "dropped_total": self.dropped_total,
            "dropped_since_start": self.dropped_since_open,
        }


class DiskBuffer:
    """A bounded FIFO of sample batches in one SQLite file; thread-safe (one connection behind a lock)."""

    def __init__(self, path: str | Path, max_bytes: int, when_full: WhenFull = "drop_oldest") -> None:
        if max_bytes < SAMPLE_BYTES:
            raise ValueError(f"max_bytes must hold at least one sample ({SAMPLE_BYTES} bytes)")
        if when_full not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"when_full must be drop_oldest or drop_newest, got {when_full!r}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.when_full = when_full
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_SCHEMA)
        rows, samples, last = self._conn.execute(
            "SELECT count(*), coalesce(sum(n), 0), coalesce(max(id), 0) FROM batches"
        ).fetchone()
        seq = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
        self._rows = int(rows)
        self._samples = int(samples)
        self._last_id = max(int(last), int(seq[0]) if seq else 0)
        self._dropped_total = self.meta_get("dropped_samples")
        self._dropped_since_open = 0

    # ------------------------------------------------------------------ writing

    def append(self, batch: SampleBatch) -> tuple[bool, int]:
        """Store a batch; return whether it was stored and how many samples this call dropped (new or oldest)."""
        n = len(batch)
        if n == 0:
            return False, 0
        size = n * SAMPLE_BYTES
        with self._lock:
            dropped = 0
            fits = self._samples * SAMPLE_BYTES + size <= self.max_bytes
            if not fits and (self.when_full == "drop_newest" or size > self.max_bytes):
                self._count_dropped(n)
                return False, n
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if not fits:
                    dropped = self._drop_oldest(self._samples * SAMPLE_BYTES + size - self.max_bytes)
                cur = self._conn.execute("INSERT INTO batches (n, data) VALUES (?, ?)", (n, pack(batch)))
                if dropped:
                    self._conn.execute(
                        "INSERT INTO meta VALUES ('dropped_samples', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                        (self._dropped_total + dropped, self._dropped_total + dropped),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._last_id = int(cur.lastrowid or self._last_id)
            self._rows += 1
            self._samples += n
            if dropped:
                self._samples -= dropped
                self._dropped_total += dropped
                self._dropped_since_open += dropped
            return True, dropped

    def _drop_oldest(self, need_bytes: int) -> int:
        """Delete the oldest rows until ``need_bytes`` are free (inside the caller's transaction)."""
        freed = dropped = 0
        last = 0
        while freed < need_bytes:
            rows = self._conn.execute(
                "SELECT id, n FROM batches WHERE id > ? ORDER BY id LIMIT 256", (last,)
            ).fetchall()
            if not rows:
                break
            for row_id, n in rows:
                if freed >= need_bytes:
                    break
                freed += n * SAMPLE_BYTES
                dropped += n
                last = row_id
                self._rows -= 1
        self._conn.execute("DELETE FROM batches WHERE id <= ?", (last,))
        return dropped

    def _count_dropped(self, n: int) -> None:
        self._dropped_total += n
        self._dropped_since_open += n
        self._conn.execute(
            "INSERT INTO meta VALUES ('dropped_samples', ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (self._dropped_total, self._dropped_total),
        )

    def delete(self, ids: Sequence[int]) -> None:
        """Forget rows whose samples the broker acknowledged (ids already gone are ignored)."""
        if not ids:
            return
        with self._lock:
            removed = self._conn.execute(
                f"DELETE FROM batches WHERE id IN ({','.join('?' * len(ids))}) RETURNING n", list(ids)
            ).fetchall()
            self._rows -= len(removed)
            self._samples -= sum(int(r[0]) for r in removed)

    # ------------------------------------------------------------------ reading

    @property
    def last_id(self) -> int:
        """Id of the newest row ever appended (0: none yet)."""
        return self._last_id

    def read(self, after_id: int, max_samples: int, max_rows: int = 1000) -> list[tuple[int, SampleBatch]]:
        """The oldest rows with id > after_id, in order, up to max_samples (at least one row if any)."""
        out: list[tuple[int, SampleBatch]] = []
        total = 0
        with self._lock:
            cursor = self._conn.execute(
                "SELECT id, n, data FROM batches WHERE id > ? ORDER BY id LIMIT ?", (after_id, max_rows)
            )
            for row_id, n, data in cursor:  # fetched lazily: the rows beyond max_samples are never read
                if out and total + n > max_samples:
                    break
                out.append((int(row_id), unpack(int(n), data)))
                total += n
            cursor.close()
        return out

    def stats(self) -> BufferStats:
        with self._lock:
            return BufferStats(self._rows, self._samples, self._samples * SAMPLE_BYTES, self.max_bytes,
                               self.when_full, self._dropped_total, self._dropped_since_open)

    # ------------------------------------------------------------------ small persistent counters

    def meta_get(self, key: str, default: int = 0) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def meta_set(self, key: str, value: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
