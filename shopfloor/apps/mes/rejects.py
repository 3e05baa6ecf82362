"""Parts a machine made as good that a later inspection rejected: the quality loss OEE must charge to it.

A machine's counters say what it believed it made; an inspection downstream (a camera at the end of the
line, a gauge, a lab) may find some of those parts bad. ISO 22400 counts a part as good quantity only when
it meets the quality requirements, so such a part is scrap of the machine that made it, in the period it
was made (a shift's OEE may therefore drop when its parts are inspected later).

A serial's disposition is read from its ``inspection`` events in the MES record: for each characteristic
the latest result counts (a re-measurement replaces the earlier one), and a result that names another
characteristic in ``supersedes`` (a person's review of an automatic check) replaces that characteristic's
results up to then. The serial is rejected when any characteristic's standing result failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, text

# Both engines store the payload as canonical JSON (sorted keys, compact), so a failed result and a good
# part can be found by text before any payload is parsed: only parts with a failed check are read.
_PRODUCED_GOOD_WITH_A_FAILED_CHECK = text(
    "SELECT e.path, p.item_id FROM mes_event p JOIN mes_equipment e ON e.id = p.equipment_id "
    "WHERE p.kind = 'produced' AND e.path IN :paths AND p.ts_ns >= :a AND p.ts_ns < :b "
    "AND p.payload LIKE :good AND EXISTS (SELECT 1 FROM mes_event i "
    "WHERE i.item_id = p.item_id AND i.kind = 'inspection' AND i.payload LIKE :failed)"
).bindparams(bindparam("paths", expanding=True))
_INSPECTIONS = text(
    "SELECT item_id, payload FROM mes_event WHERE kind = 'inspection' AND item_id IN :items ORDER BY ts_ns, seq"
).bindparams(bindparam("items", expanding=True))
_CHUNK = 5_000  # items per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def rejected(results: Iterable[dict[str, Any]]) -> bool:
    """Whether a serial's inspection results (payloads, oldest first) leave it rejected (see the module)."""
    standing: dict[str, bool] = {}
    for r in results:
        superseded = r.get("supersedes")
        if isinstance(superseded, str):
            standing.pop(superseded, None)
        standing[str(r.get("characteristic"))] = bool(r.get("passed", True))
    return not all(standing.values())


def rejected_by_machine(engine: Engine, paths: Sequence[str], start_ns: int, end_ns: int) -> dict[str, int]:
    """For each machine path: parts it produced as good in [start_ns, end_ns) that inspection rejected."""
    counts = dict.fromkeys(paths, 0)
    if not paths or end_ns <= start_ns:
        return counts
    with engine.connect() as conn:
        made = conn.execute(_PRODUCED_GOOD_WITH_A_FAILED_CHECK,
                            {"paths": list(paths), "a": start_ns, "b": end_ns,
                             "good": '%"quality":"good"%', "failed": '%"passed":false%'}).all()
        machine_of = {int(item): str(path) for path, item in made}
        items = sorted(machine_of)
        results: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for k in range(0, len(items), _CHUNK):
            for item, payload in conn.execute(_INSPECTIONS, {"items": items[k:k + _CHUNK]}):
                results[int(item)].append(orjson.loads(payload))
    for item, path in machine_of.items():
        if rejected(results[item]):
            counts[path] += 1
    return counts


__all__ = ["rejected", "rejected_by_machine"]
