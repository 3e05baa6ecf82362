"""Backward and forward traces of lots and serials.

A trace is one recursive CTE over ``mes_genealogy_edge`` (each step one index probe: the
primary key (output, input) going backward, the index (input, output) going forward), then one
indexed read of the events of the items found (``ix_mes_event_item_ts``): where and when each
was made, on which machine, by which operator, which lots were loaded, what inspection found.
Both run the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
from sqlalchemy import Connection, Engine, text

from shopfloor.apps.mes.errors import NotFound
from shopfloor.historian.base import Historian

Direction = Literal["backward", "forward"]
MAX_DEPTH = 64
_IN_CHUNK = 2000

# Items reached, each once per depth (UNION drops a row already found): a part reached by many paths is
# expanded once, so a genealogy with shared inputs (diamonds) costs its items, not its paths.
_CTE = {
    "backward": """
        WITH RECURSIVE t(id, depth) AS (
            SELECT CAST(:root AS BIGINT), 0
            UNION
            SELECT e.input_id, t.depth + 1 FROM mes_genealogy_edge e JOIN t ON e.output_id = t.id
            WHERE t.depth < :max_depth
        )
        SELECT i.id, min(t.depth), i.code, i.kind, i.quantity FROM t JOIN mes_item i ON i.id = t.id GROUP BY i.id
    """,
    "forward": """
        WITH RECURSIVE t(id, depth) AS (
            SELECT CAST(:root AS BIGINT), 0
            UNION
            SELECT e.output_id, t.depth + 1 FROM mes_genealogy_edge e JOIN t ON e.input_id = t.id
            WHERE t.depth < :max_depth
        )
        SELECT i.id, min(t.depth), i.code, i.kind, i.quantity FROM t JOIN mes_item i ON i.id = t.id GROUP BY i.id
    """,
}
# The edges among the items found, as (item, the item it links to towards the root, quantity).
_LINKS = {
    "backward": "SELECT input_id, output_id, quantity FROM mes_genealogy_edge WHERE input_id IN ({ids})",
    "forward": "SELECT output_id, input_id, quantity FROM mes_genealogy_edge WHERE output_id IN ({ids})",
}


@dataclass(slots=True)
class TraceEvent:
    """An event of a traced item; its payload stays the stored canonical JSON until someone reads it."""

    seq: int
    ts_ns: int
    kind: str
    equipment: str | None
    operator: str | None
    work_order_id: int | None
    payload_json: str
    _payload: dict[str, Any] | None = None

    @property
    def payload(self) -> dict[str, Any]:
        if self._payload is None:
            self._payload = orjson.loads(self.payload_json)
        return self._payload


@dataclass(slots=True)
class TraceNode:
    id: int
    code: str
    kind: str
    quantity: float
    depth: int
    links: list[tuple[int, float]] = field(default_factory=list)  # (item it links to towards the root, qty)
    events: list[TraceEvent] = field(default_factory=list)


@dataclass
class Trace:
    root: str
    direction: Direction
    nodes: dict[int, TraceNode]

    @property
    def root_node(self) -> TraceNode:
        return next(n for n in self.nodes.values() if n.depth == 0)

    def ends(self) -> list[TraceNode]:
        """The far ends: raw material lots (backward) or finished goods, the recall scope (forward)."""
        linked = {via for n in self.nodes.values() for via, _ in n.links}
        return sorted((n for n in self.nodes.values() if n.id not in linked and n.depth > 0), key=lambda n: n.code)

    def machines(self) -> list[str]:
        return sorted({e.equipment for n in self.nodes.values() for e in n.events if e.equipment})

    def operators(self) -> list[str]:
        return sorted({e.operator for n in self.nodes.values() for e in n.events if e.operator})

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root, "direction": self.direction, "items": len(self.nodes),
            "ends": [n.code for n in self.ends()], "machines": self.machines(), "operators": self.operators(),
            "nodes": [
                {
                    "code": n.code, "kind": n.kind, "quantity": n.quantity, "depth": n.depth,
                    "links": [{"code": self.nodes[v].code, "quantity": q} for v, q in n.links if v in self.nodes],
                    "events": [
                        {"seq": e.seq, "ts_ns": e.ts_ns, "kind": e.kind, "equipment": e.equipment,
                         "operator": e.operator, "work_order_id": e.work_order_id, "payload": e.payload}
                        for e in n.events
                    ],
                }
                for n in sorted(self.nodes.values(), key=lambda n: (n.depth, n.code))
            ],
        }


def item_id(conn: Connection, code: str) -> int:
    row = conn.execute(text("SELECT id FROM mes_item WHERE code = :c"), {"c": code}).first()
    if row is None:
        raise NotFound(f"no lot or serial {code!r}")
    return int(row[0])


def trace(
    engine: Engine, code: str, direction: Direction, *, max_depth: int = MAX_DEPTH, events: bool = True,
    equipment_paths: Mapping[int, str] | None = None,
) -> Trace:
    """The genealogy of a lot or serial: what went into it (backward) or what it went into (forward)."""
    if direction not in _CTE:
        raise ValueError(f"direction must be backward or forward, not {direction!r}")
    with _gc_paused(), engine.connect() as conn:
        root = item_id(conn, code)
        nodes: dict[int, TraceNode] = {}
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = _CTE[direction].replace(":root", mark).replace(":max_depth", mark)
        cursor = conn.connection.cursor()  # the driver's cursor: no per-row or per-parameter overhead
        cursor.execute(sql, (root, max_depth))
        for id_, depth, item_code, kind, quantity in cursor.fetchall():
            nodes[id_] = TraceNode(id_, item_code, kind, quantity, depth)
        ids = list(nodes)  # integers from the database: safe as literals, and no bind-parameter limit
        for a in range(0, len(ids), _IN_CHUNK):
            cursor.execute(_LINKS[direction].format(ids=",".join(map(str, ids[a : a + _IN_CHUNK]))))
            for id_, via, qty in cursor.fetchall():
                if via in nodes:
                    nodes[id_].links.append((via, qty))
        if events:
            paths = equipment_paths if equipment_paths is not None else _equipment_paths(conn)
            for ev_item, ev in _events(cursor, nodes.keys(), paths):
                nodes[ev_item].events.append(ev)
        cursor.close()
    return Trace(code, direction, nodes)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A trace allocates thousands of short-lived, acyclic objects (rows, nodes, events); reference counting
    frees them. Left on, the cyclic collector would run full passes over the whole process heap in the middle
    of a trace (measured: p99 150 ms instead of 36 ms on a 10 M event record), so it waits until the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _equipment_paths(conn: Connection) -> dict[int, str]:
    return {int(i): str(p) for i, p in conn.execute(text("SELECT id, path FROM mes_equipment"))}


def _events(cursor: Any, ids: Iterable[int], paths: Mapping[int, str]) -> Iterable[tuple[int, TraceEvent]]:
    ids = [int(i) for i in ids]  # literal integers in the SQL: ours, from the CTE, so nothing to inject
    for a in range(0, len(ids), _IN_CHUNK):
        chunk = ",".join(str(i) for i in ids[a : a + _IN_CHUNK])
        cursor.execute(
            "SELECT item_id, seq, ts_ns, kind, equipment_id, operator, work_order_id, payload FROM mes_event "
            f"WHERE item_id IN ({chunk}) ORDER BY item_id, ts_ns"
        )
        for item, seq, ts_ns, kind, eq, operator, wo, payload in cursor.fetchall():
            yield item, TraceEvent(seq, ts_ns, kind, paths.get(eq) if eq is not None else None, operator, wo, payload)


def process_parameters(
    historian: Historian, tag_ids: Mapping[str, int], tags: Iterable[tuple[str, str]], start_ns: int, end_ns: int
) -> dict[str, dict[str, float | int | None]]:
    """What the machine's tags read while an item was made: mean, min, max and count of each over [start, end).

    ``tags`` are (name, path) pairs; a tag the historian does not know is left out.
    """
    out: dict[str, dict[str, float | int | None]] = {}
    for name, path in tags:
        tag_id = tag_ids.get(path)
        if tag_id is None:
            continue
        raw = historian.raw(tag_id, start_ns, end_ns)
        values = raw.value[~np.isnan(raw.value)]
        out[name] = {
            "mean": float(values.mean()) if len(values) else None,
            "min": float(values.min()) if len(values) else None,
            "max": float(values.max()) if len(values) else None,
            "n": len(values),
        }
    return out
