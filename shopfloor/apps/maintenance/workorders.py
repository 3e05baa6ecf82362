"""Maintenance work orders: one record per developing bearing fault, kept in SQLite beside the historian.

The maintenance service opens an order when a machine's RUL lower bound falls under the plant's limit
(equipment, predicted fault and its confidence, predicted failure time, due time = predicted failure
minus a margin), refreshes its prediction while it stays open, and closes it when the bearing is
replaced (the health indicator back at a new bearing's level). Engineers acknowledge or close orders
through the API. Orders are never deleted: the table is the history of predicted failures.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from shopfloor.core.errors import ShopfloorError

Status = Literal["open", "acknowledged", "closed"]


class UnknownWorkOrder(ShopfloorError, KeyError):
    """No work order with that id."""


class WorkOrderClosed(ShopfloorError, ValueError):
    """The work order is closed already."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the service predicts when it opens or refreshes an order."""

    fault: str
    confidence: float
    now_ns: int
    predicted_failure_ns: int
    failure_low_ns: int
    due_ns: int
    rul_h: float
    rul_low_h: float


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """One maintenance work order (times in ns since the epoch, sim time where the plant runs on it)."""

    id: int
    number: str
    equipment: str
    fault: str
    confidence: float
    created_ns: int
    predicted_failure_ns: int
    failure_low_ns: int
    due_ns: int
    rul_h: float
    rul_low_h: float
    status: Status
    updated_ns: int
    acked_by: str | None = None
    acked_ns: int | None = None
    closed_by: str | None = None
    closed_ns: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with ISO times beside the ns fields for people."""
        out = asdict(self)
        for key in ("created_ns", "predicted_failure_ns", "failure_low_ns", "due_ns", "updated_ns", "acked_ns",
                    "closed_ns"):
            ns = out[key]
            out[key.removesuffix("_ns")] = None if ns is None else _iso(ns)
        return out


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{ns // 1_000_000 % 1000:03d}Z"


_COLUMNS = ("id", "number", "equipment", "fault", "confidence", "created_ns", "predicted_failure_ns", "failure_low_ns",
            "due_ns", "rul_h", "rul_low_h", "status", "updated_ns", "acked_by", "acked_ns", "closed_by", "closed_ns",
            "note")


class WorkOrderStore:
    """Thread-safe store of work orders (the service writes, the API reads and acts)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS work_orders (id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT UNIQUE,"
            " equipment TEXT NOT NULL, fault TEXT NOT NULL, confidence REAL, created_ns INTEGER,"
            " predicted_failure_ns INTEGER, failure_low_ns INTEGER, due_ns INTEGER, rul_h REAL, rul_low_h REAL,"
            " status TEXT NOT NULL, updated_ns INTEGER, acked_by TEXT, acked_ns INTEGER, closed_by TEXT,"
            " closed_ns INTEGER, note TEXT NOT NULL DEFAULT '')"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS work_orders_open ON work_orders (equipment, status)")

    def _row(self, row: tuple[Any, ...]) -> WorkOrder:
        return WorkOrder(**dict(zip(_COLUMNS, row, strict=True)))

    def create(self, equipment: str, p: Prediction, note: str = "") -> WorkOrder:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO work_orders (equipment, fault, confidence, created_ns, predicted_failure_ns,"
                " failure_low_ns, due_ns, rul_h, rul_low_h, status, updated_ns, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
                (equipment, p.fault, p.confidence, p.now_ns, p.predicted_failure_ns, p.failure_low_ns, p.due_ns,
                 p.rul_h, p.rul_low_h, p.now_ns, note),
            )
            wid = int(cur.lastrowid or 0)
            self._db.execute("UPDATE work_orders SET number = ? WHERE id = ?", (f"MWO-{wid:06d}", wid))
        return self.get(wid)

    def update_prediction(self, wid: int, p: Prediction) -> None:
        """Refresh an order's prediction while it is not closed."""
        with self._lock:
            self._db.execute(
                "UPDATE work_orders SET fault = ?, confidence = ?, predicted_failure_ns = ?, failure_low_ns = ?,"
                " due_ns = ?, rul_h = ?, rul_low_h = ?, updated_ns = ? WHERE id = ? AND status != 'closed'",
                (p.fault, p.confidence, p.predicted_failure_ns, p.failure_low_ns, p.due_ns, p.rul_h, p.rul_low_h,
                 p.now_ns, wid),
            )

    def get(self, wid: int) -> WorkOrder:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM work_orders WHERE id = ?", (wid,)).fetchone()
        if row is None:
            raise UnknownWorkOrder(f"no work order {wid}")
        return self._row(row)

    def list(self, *, status: str | None = None, equipment: str | None = None, limit: int = 200) -> list[WorkOrder]:
        """Newest first; ``status`` ``open`` also lists acknowledged orders (both are not done yet)."""
        where, args = [], []
        if status == "open":
            where.append("status != 'closed'")
        elif status:
            where.append("status = ?")
            args.append(status)
        if equipment:
            where.append("equipment = ?")
            args.append(equipment)
        query = f"SELECT {', '.join(_COLUMNS)} FROM work_orders"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [self._row(r) for r in rows]

    def open_for(self, equipment: str) -> WorkOrder | None:
        """The equipment's order that is not closed, if any."""
        found = self.list(status="open", equipment=equipment, limit=1)
        return found[0] if found else None

    def acknowledge(self, wid: int, user: str, now_ns: int | None = None) -> WorkOrder:
        order = self.get(wid)
        if order.status == "closed":
            raise WorkOrderClosed(f"work order {order.number} is closed")
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            self._db.execute("UPDATE work_orders SET status = 'acknowledged', acked_by = ?, acked_ns = ?,"
                             " updated_ns = ? WHERE id = ?", (user, now, now, wid))
        return self.get(wid)

    def close(self, wid: int, user: str, note: str = "", now_ns: int | None = None) -> WorkOrder:
        order = self.get(wid)
        if order.status == "closed":
            raise WorkOrderClosed(f"work order {order.number} is closed")
        now = time.time_ns() if now_ns is None else now_ns
        text = f"{order.note}\n{note}".strip() if note else order.note
        with self._lock:
            self._db.execute("UPDATE work_orders SET status = 'closed', closed_by = ?, closed_ns = ?, updated_ns = ?,"
                             " note = ? WHERE id = ?", (user, now, now, text, wid))
        return self.get(wid)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM work_orders GROUP BY status").fetchall()
        return {str(s): int(n) for s, n in rows}

    def close_db(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["Prediction", "UnknownWorkOrder", "WorkOrder", "WorkOrderClosed", "WorkOrderStore"]
