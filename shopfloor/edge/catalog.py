"""The gateway's metrics: stable ids by (device, name), and the last value read of each.

The id is the tag id the connectors emit, the id stored in the buffer and the Sparkplug
alias. It is kept in the buffer's SQLite file by name, so a backlog written before a restart
still means the same metrics after it, even if edge.yaml gained or reordered tags; samples
of metrics that edge.yaml no longer has are not forwarded (counted as orphaned).

The last value of each metric (value, timestamp, quality) goes into the births, with its
own timestamp: the platform then stores the very sample it already has (idempotent on
tag and timestamp) rather than a new one. It is saved to the file now and then, so the
births after a restart carry the values read before it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shopfloor.connectors.mqtt.sparkplug import DataType
from shopfloor.core.samples import Quality, SampleBatch

NODE = ""  # the device key of the gateway's own metrics

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    name TEXT NOT NULL,
    last_ts INTEGER,
    last_value REAL,
    last_quality INTEGER,
    UNIQUE (device, name)
);
"""


@dataclass(frozen=True, slots=True)
class Metric:
    id: int
    device: str  # NODE for the gateway's own metrics
    name: str
    datatype: DataType


class MetricCatalog:
    """Ids and last values of the configured metrics; thread-safe."""

    def __init__(self, path: str | Path, wanted: Sequence[tuple[str, str, DataType]]) -> None:
        self._conn = sqlite3.connect(Path(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_SCHEMA)
        known = {(d, n): (i, ts, v, q) for i, d, n, ts, v, q in self._conn.execute(
            "SELECT id, device, name, last_ts, last_value, last_quality FROM metrics")}
        self.metrics: list[Metric] = []
        self._conn.execute("BEGIN IMMEDIATE")
        for device, name, datatype in wanted:
            row = known.get((device, name))
            if row is None:
                cur = self._conn.execute("INSERT INTO metrics (device, name) VALUES (?, ?)", (device, name))
                metric_id = int(cur.lastrowid or 0)
                known[(device, name)] = (metric_id, None, None, None)
            else:
                metric_id = int(row[0])
            self.metrics.append(Metric(metric_id, device, name, datatype))
        self._conn.execute("COMMIT")
        size = max((m.id for m in self.metrics), default=0) + 1
        self.configured = np.zeros(size, np.bool_)
        self.last_ts = np.zeros(size, np.int64)  # 0: never read
        self.last_value = np.full(size, np.nan)
        self.last_quality = np.full(size, int(Quality.BAD), np.uint8)
        self._dirty = np.zeros(size, np.bool_)
        self.by_id: dict[int, Metric] = {}
        for m in self.metrics:
            self.configured[m.id] = True
            self.by_id[m.id] = m
            _, ts, value, quality = known[(m.device, m.name)]
            if ts is not None:
                self.last_ts[m.id] = ts
                self.last_value[m.id] = np.nan if value is None else value
                self.last_quality[m.id] = quality if quality is not None else int(Quality.GOOD)
        self._lock = threading.Lock()

    def id_of(self, device: str, name: str) -> int:
        for m in self.metrics:
            if m.device == device and m.name == name:
                return m.id
        raise KeyError(f"no metric {name!r} on device {device!r}")

    def known(self, tag_ids: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
        """Which ids are metrics of the current edge.yaml."""
        inside = (tag_ids >= 0) & (tag_ids < len(self.configured))
        out = np.zeros(len(tag_ids), np.bool_)
        out[inside] = self.configured[tag_ids[inside]]
        return out

    def update_last(self, batch: SampleBatch) -> None:
        """Remember the newest sample of each metric in the batch (an older one does not replace a newer)."""
        if not len(batch):
            return
        last = batch.last_per_tag()
        keep = self.known(last.tag_id)
        ids = last.tag_id[keep]
        with self._lock:
            newer = last.ts[keep] >= self.last_ts[ids]
            ids = ids[newer]
            self.last_ts[ids] = last.ts[keep][newer]
            self.last_value[ids] = last.value[keep][newer]
            self.last_quality[ids] = last.quality[keep][newer]
            self._dirty[ids] = True

    def last(self, ids: Sequence[int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
        """Copies of (ts ns, value, quality) of the given metrics; ts 0 means never read."""
        index = np.asarray(ids, np.int64)
        with self._lock:
            return self.last_ts[index].copy(), self.last_value[index].copy(), self.last_quality[index].copy()

    def save(self) -> None:
        """Write the last values that changed since the previous save."""
        with self._lock:
            ids = np.flatnonzero(self._dirty)
            rows = [(int(self.last_ts[i]), float(self.last_value[i]) if not np.isnan(self.last_value[i]) else None,
                     int(self.last_quality[i]), int(i)) for i in ids]
            self._dirty[:] = False
        if rows:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "UPDATE metrics SET last_ts = ?, last_value = ?, last_quality = ? WHERE id = ?", rows
            )
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self.save()
        self._conn.close()
