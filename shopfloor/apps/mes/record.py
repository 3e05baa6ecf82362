"""Appending to the tamper-evident event record: hash chain, genealogy edges, signed checkpoints.

One ``EventLog`` per database is the writer. ``append`` hashes each event onto the chain,
inserts events and their genealogy edges in one transaction (plain ``executemany``: no ORM
object per event, which is what makes millions of events per run affordable), and seals every
full block of ``block_size`` events with a signed checkpoint. ``seal()`` also seals a partial
block (call it on shutdown or on a timer, so that the tail is signed too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import Connection

from shopfloor.apps.mes.chain import (
    GENESIS,
    SiteKey,
    canonical_event,
    canonical_payload,
    checkpoint_message,
    fingerprints,
    link,
    merkle_root,
)
from shopfloor.apps.mes.errors import MesError
from shopfloor.apps.mes.models import Checkpoint, Equipment, EventKind

DEFAULT_BLOCK_SIZE = 1024
EDGE_KINDS = frozenset({EventKind.PRODUCED, EventKind.PACKED})


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``inputs`` ((item id, quantity), ...) become genealogy edges into ``item_id``."""

    ts_ns: int
    kind: EventKind
    item_id: int | None = None
    equipment_id: int | None = None
    operator: str | None = None
    work_order_id: int | None = None
    operation_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[tuple[int, float], ...] = ()


def placeholders(conn: Connection, n: int) -> str:
    """n positional placeholders in the driver's own style (executemany goes straight to the driver)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


class EventLog:
    """The single writer of events; thread-safe (one lock), one process per database at a time."""

    def __init__(self, engine: Engine, key: SiteKey, *, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if block_size < 1:
            raise ValueError("block_size must be at least 1")
        self.engine = engine
        self.key = key
        self.block_size = block_size
        self._lock = threading.Lock()
        self._equipment: dict[str, int] = {}
        self._head_seq = 0
        self._head_hash = GENESIS
        self._sealed_seq = 0
        self._unsealed: list[bytes] = []  # chain hashes of events after the last checkpoint
        self._load_head()

    @property
    def head(self) -> tuple[int, bytes]:
        return self._head_seq, self._head_hash

    def _load_head(self) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT seq, hash FROM mes_event ORDER BY seq DESC LIMIT 1")).first()
            last_cp = conn.execute(select(Checkpoint.last_seq).order_by(Checkpoint.last_seq.desc()).limit(1)).first()
            self._head_seq, self._head_hash = (int(row[0]), bytes(row[1])) if row else (0, GENESIS)
            self._sealed_seq = int(last_cp[0]) if last_cp else 0
            rows = conn.execute(
                text("SELECT hash FROM mes_event WHERE seq > :s ORDER BY seq"), {"s": self._sealed_seq}
            ).all()
            self._unsealed = [bytes(r[0]) for r in rows]

    def equipment_id(self, path: str) -> int:
        """The id of a machine or line path, created on first use."""
        cached = self._equipment.get(path)
        if cached is not None:
            return cached
        with self.engine.begin() as conn:
            row = conn.execute(select(Equipment.id).where(Equipment.path == path)).first()
            if row is None:
                conn.execute(insert(Equipment).values(path=path))
                row = conn.execute(select(Equipment.id).where(Equipment.path == path)).one()
        self._equipment[path] = int(row[0])
        return int(row[0])

    def append(self, events: Sequence[NewEvent], conn: Connection | None = None) -> list[int]:
        """Append events in order (one transaction); returns their sequence numbers."""
        if not events:
            return []
        with self._lock:
            if conn is not None:
                return self._append(conn, events)
            with self.engine.begin() as own:
                return self._append(own, events)

    def _append(self, conn: Connection, events: Sequence[NewEvent]) -> list[int]:
        db_head = conn.execute(text("SELECT seq FROM mes_event ORDER BY seq DESC LIMIT 1")).first()
        if (int(db_head[0]) if db_head else 0) != self._head_seq:
            self._load_head()  # another writer appended since: continue its chain
        seq, prev = self._head_seq, self._head_hash
        rows: list[tuple[Any, ...]] = []
        edges: list[tuple[int, int, int, float]] = []
        hashes: list[bytes] = []
        for ev in events:
            seq += 1
            payload = dict(ev.payload)
            if ev.inputs:
                if ev.kind not in EDGE_KINDS or ev.item_id is None:
                    raise MesError(f"only {sorted(EDGE_KINDS)} events of an item take inputs")
                payload["inputs"] = [[int(i), float(q)] for i, q in ev.inputs]
                edges.extend((ev.item_id, int(i), seq, float(q)) for i, q in ev.inputs)
            body = canonical_payload(payload)
            kind = ev.kind.value
            prev = link(prev, canonical_event(
                seq, ev.ts_ns, kind, ev.item_id, ev.equipment_id, ev.operator, ev.work_order_id, ev.operation_id, body
            ))
            hashes.append(prev)
            rows.append((seq, ev.ts_ns, kind, ev.item_id, ev.equipment_id, ev.operator, ev.work_order_id,
                         ev.operation_id, body, prev))
        cursor_sql = (
            "INSERT INTO mes_event (seq, ts_ns, kind, item_id, equipment_id, operator, work_order_id, operation_id, "
            f"payload, hash) VALUES ({placeholders(conn, 10)})"
        )
        conn.exec_driver_sql(cursor_sql, rows)
        if edges:
            conn.exec_driver_sql(
                f"INSERT INTO mes_genealogy_edge (output_id, input_id, event_seq, quantity) "
                f"VALUES ({placeholders(conn, 4)})",
                edges,
            )
        first = self._head_seq + 1
        unsealed = self._unsealed + hashes
        sealed = self._sealed_seq
        checkpoints = []
        while len(unsealed) >= self.block_size:
            block, unsealed = unsealed[: self.block_size], unsealed[self.block_size :]
            checkpoints.append(self._checkpoint(sealed + 1, block))
            sealed += len(block)
        if checkpoints:
            conn.execute(insert(Checkpoint), checkpoints)
        self._head_seq, self._head_hash = seq, prev
        self._unsealed, self._sealed_seq = unsealed, sealed
        return list(range(first, seq + 1))

    def _checkpoint(self, first_seq: int, block: list[bytes]) -> dict[str, Any]:
        last_seq = first_seq + len(block) - 1
        root = merkle_root(block)
        fps = fingerprints(block)
        signed_ns = time.time_ns()
        message = checkpoint_message(first_seq, last_seq, root, block[-1], signed_ns, fps)
        return {
            "first_seq": first_seq, "last_seq": last_seq, "merkle_root": root, "head_hash": block[-1],
            "signed_ns": signed_ns, "key_id": self.key.key_id, "signature": self.key.sign(message),
            "fingerprints": fps,
        }

    def seal(self) -> int:
        """Sign the events not yet under a checkpoint (a partial block); returns how many were sealed."""
        with self._lock, self.engine.begin() as conn:
            if not self._unsealed:
                return 0
            n = len(self._unsealed)
            conn.execute(insert(Checkpoint), [self._checkpoint(self._sealed_seq + 1, self._unsealed)])
            self._sealed_seq += n
            self._unsealed = []
            return n
