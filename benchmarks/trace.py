"""Traceability benchmark: event write rate, and backward/forward trace latency on a large genealogy.

Generates a plant history of ``--events`` events (default 10 million) through the MES's own
write path (``EventLog.append``: canonical encoding, SHA-256 chain, genealogy edges, signed
Merkle checkpoints every ``--block-size`` events) into SQLite (WAL). The genealogy, per pallet:
150 machined parts, each made from the steel lot loaded at its machine (a new lot every 500
parts) and inspected; 50 assemblies of 3 parts each, inspected; the 50 assemblies packed on the
pallet; plus machine state changes and operator log-ons. Then it times (p50/p99 over ``--queries``
random roots, each a full trace: recursive CTE plus every event of every item found):

* backward trace of a pallet (its assemblies, parts and steel lots; ~200 items),
* forward trace of a steel lot (the recall scope: every part, assembly and pallet it went into).

    python benchmarks/trace.py                     # 10 M events (a few minutes on 2 cores)
    python benchmarks/trace.py --events 200000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Engine, text

from shopfloor.apps.mes.chain import SiteKey
from shopfloor.apps.mes.db import open_database
from shopfloor.apps.mes.genealogy import trace
from shopfloor.apps.mes.models import EventKind
from shopfloor.apps.mes.record import EventLog, NewEvent, placeholders
from shopfloor.apps.mes.verify import verify
from shopfloor.testing.machine import cpu_model

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
PARTS_PER_ASSEMBLY = 3
ASSEMBLIES_PER_PALLET = 50
PARTS_PER_LOT = 500
MACHINES = 6
STATE_EVENTS_PER_PALLET = 20
BATCH_EVENTS = 8192  # events per transaction (a plant's writer batches the same way)
EVENTS_PER_PALLET_APPROX = 2 * 150 + 2 * 50 + 1 + STATE_EVENTS_PER_PALLET


class Generator:
    """Writes the plant history in pallet-sized units; items go in by executemany, events through EventLog."""

    def __init__(self, engine: Engine, log: EventLog) -> None:
        self.engine = engine
        self.log = log
        self.next_item = 1
        self.ts = T0
        self.parts_on_lot = PARTS_PER_LOT
        self.lot: int | None = None
        self.lots: list[int] = []
        self.pallets: list[int] = []
        self.assemblies: list[int] = []
        self.machines = [log.equipment_id(f"plant/machining/line1/cell{m}/cnc{m}") for m in range(1, MACHINES + 1)]
        self.assembly_cell = log.equipment_id("plant/assembly/line2/cell1/press1")
        self.write_s = 0.0
        self.events = 0
        self._events: list[NewEvent] = []
        self._items_buf: list[tuple[Any, ...]] = []
        self.rng = random.Random(7)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO mes_product (id, code, name, unit, gtin) VALUES (1, 'PART', 'Shaft', 'pcs', "
                "'04012345000016'), (2, 'ASSY', 'Drive unit', 'pcs', NULL), (3, 'PALLET', 'Pallet', 'pcs', NULL)"
            )
            conn.exec_driver_sql("INSERT INTO mes_material (id, code, name, unit) VALUES (1, 'STEEL', 'Steel', 'kg')")

    def flush(self) -> None:
        """One transaction: the new items, then their events through the MES write path (timed)."""
        if not self._events:
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO mes_item (id, code, kind, product_id, material_id, work_order_id, quantity, created_ns) "
                f"VALUES ({placeholders(conn, 8)})", self._items_buf,
            )
            t = time.perf_counter()
            self.log.append(self._events, conn)
            self.write_s += time.perf_counter() - t
        self.events += len(self._events)
        self._events, self._items_buf = [], []

    def _new_id(self) -> int:
        self.next_item += 1
        return self.next_item - 1

    def pallet(self) -> int:
        """Queue one pallet's history; returns the events queued (flush() writes them)."""
        events = self._events
        items = self._items_buf
        before = len(events)
        rng = self.rng
        for _ in range(STATE_EVENTS_PER_PALLET):
            m = rng.choice(self.machines)
            state = rng.choice(("idle", "down", "setup", "running"))
            events.append(NewEvent(self.ts, EventKind.STATE, equipment_id=m,
                                   payload={"state": state, "reason": "breakdown" if state == "down" else None}))
        assemblies = []
        for _a in range(ASSEMBLIES_PER_PALLET):
            parts = []
            for _p in range(PARTS_PER_ASSEMBLY):
                if self.parts_on_lot >= PARTS_PER_LOT:
                    self.lot = self._new_id()
                    self.lots.append(self.lot)
                    items.append((self.lot, f"STEEL-{self.lot}", "lot", None, 1, None, 400.0, self.ts))
                    for m in self.machines:
                        events.append(NewEvent(self.ts, EventKind.MATERIAL_LOAD, item_id=self.lot, equipment_id=m,
                                               operator=f"op{m}", payload={"quantity": 400.0 / MACHINES}))
                    self.parts_on_lot = 0
                assert self.lot is not None
                self.parts_on_lot += 1
                part = self._new_id()
                parts.append(part)
                items.append((part, f"SN-{part}", "serial", 1, None, None, 1.0, self.ts))
                m = self.machines[part % MACHINES]
                self.ts += 8 * S
                params = {"spindle_load_pct": 55.0 + part % 13}
                events.append(NewEvent(self.ts, EventKind.PRODUCED, item_id=part, equipment_id=m, operator=f"op{m}",
                                       payload={"quality": "good", "parameters": params}, inputs=((self.lot, 0.8),)))
                events.append(NewEvent(self.ts + 5 * S, EventKind.INSPECTION, item_id=part, equipment_id=m,
                                       payload={"characteristic": "diameter", "value": 20.0 + (part % 7) * 0.002,
                                                "lower": 19.98, "upper": 20.02, "unit": "mm", "passed": True}))
            assy = self._new_id()
            assemblies.append(assy)
            items.append((assy, f"AS-{assy}", "serial", 2, None, None, 1.0, self.ts))
            events.append(NewEvent(self.ts, EventKind.PRODUCED, item_id=assy, equipment_id=self.assembly_cell,
                                   operator="assembler", payload={"quality": "good", "parameters": {}},
                                   inputs=tuple((p, 1.0) for p in parts)))
            events.append(NewEvent(self.ts + S, EventKind.INSPECTION, item_id=assy, equipment_id=self.assembly_cell,
                                   payload={"characteristic": "torque", "value": 42.0, "lower": 40.0, "upper": 45.0,
                                            "unit": "Nm", "passed": True}))
        pallet = self._new_id()
        items.append((pallet, f"PAL-{pallet}", "lot", 3, None, None, float(ASSEMBLIES_PER_PALLET), self.ts))
        events.append(NewEvent(self.ts + 2 * S, EventKind.PACKED, item_id=pallet,
                               inputs=tuple((a, 1.0) for a in assemblies)))
        self.pallets.append(pallet)
        self.assemblies.extend(assemblies[:2])
        return len(events) - before


def codes(engine: Engine, prefix: str, limit: int = 50_000) -> list[str]:
    """Item codes with a prefix, spread over the whole history (every k-th), for a --reuse run."""
    with engine.connect() as conn:
        like = {"p": prefix + "%"}
        n = int(conn.execute(text("SELECT count(*) FROM mes_item WHERE code LIKE :p"), like).scalar_one())
        step = max(1, n // limit)
        rows = conn.execute(text("SELECT code FROM mes_item WHERE code LIKE :p AND id % :k = 0 ORDER BY id"),
                            {"p": prefix + "%", "k": step}).all()
    return [str(r[0]) for r in rows]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def time_traces(
    engine: Engine, codes: list[str], direction: str, queries: int, events: bool = True
) -> dict[str, float]:
    rng = random.Random(11)
    paths = {int(i): str(p) for i, p in engine.connect().execute(text("SELECT id, path FROM mes_equipment"))}
    picks = [rng.choice(codes) for _ in range(queries)]
    trace(engine, picks[0], direction, equipment_paths=paths, events=events)  # type: ignore[arg-type]  # warm-up
    times: list[float] = []
    cpu: list[float] = []
    sizes: list[int] = []
    found: list[int] = []
    for code in picks:
        t, c = time.perf_counter(), time.process_time()
        tr = trace(engine, code, direction, equipment_paths=paths, events=events)  # type: ignore[arg-type]
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
        sizes.append(len(tr.nodes))
        found.append(sum(len(n.events) for n in tr.nodes.values()))
    return {
        "p50_ms": percentile(times, 0.5), "p99_ms": percentile(times, 0.99), "max_ms": max(times),
        "cpu_p50_ms": percentile(cpu, 0.5), "cpu_p99_ms": percentile(cpu, 0.99),
        "items_median": statistics.median(sizes), "events_median": statistics.median(found),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000, help="events to generate (default 10 million)")
    ap.add_argument("--queries", type=int, default=200, help="traces timed per direction")
    ap.add_argument("--block-size", type=int, default=1024, help="events per signed checkpoint")
    ap.add_argument("--dir", type=Path, default=None, help="where the database goes (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--verify", action="store_true", help="also time a full verify of the record")
    ap.add_argument("--reuse", action="store_true",
                    help="time the traces on the database a --keep run left in --dir (no generation)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args(argv)
    if args.events < EVENTS_PER_PALLET_APPROX:
        ap.error(f"--events must be at least {EVENTS_PER_PALLET_APPROX} (one pallet's history)")
    console = Console(stderr=True)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="shopfloor-trace-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "mes-bench.sqlite"
    if args.reuse and not db.exists():
        ap.error(f"--reuse needs the database of a --keep run in --dir ({db} is not there)")
    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        (workdir / "site-ed25519.pem").unlink(missing_ok=True)
        (workdir / "site-ed25519.pub.pem").unlink(missing_ok=True)
    write_rate: float | None = None
    gen_s: float | None = None
    try:
        engine = open_database(db)
        log = EventLog(engine, SiteKey.load_or_create(workdir / "site-ed25519.pem"), block_size=args.block_size)
        if args.reuse:
            pallets, assemblies, lots = (codes(engine, p) for p in ("PAL-", "AS-", "STEEL-"))
            lots = lots[:-1]  # the last lot may be partly used
        else:
            gen = Generator(engine, log)
            started = time.perf_counter()
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console, transient=args.json) as progress:
                task = progress.add_task("generating events", total=args.events)
                queued = 0
                while gen.events + queued < args.events:
                    queued += gen.pallet()
                    if queued >= BATCH_EVENTS:
                        gen.flush()
                        queued = 0
                        progress.update(task, completed=min(gen.events, args.events))
                gen.flush()
                progress.update(task, completed=min(gen.events, args.events))
            gen_s = time.perf_counter() - started
            write_rate = gen.events / gen.write_s
            pallets = [f"PAL-{p}" for p in gen.pallets]
            assemblies = [f"AS-{a}" for a in gen.assemblies]
            lots = [f"STEEL-{lot}" for lot in gen.lots[:-1]]
        with engine.connect() as conn:
            n_events = int(conn.execute(text("SELECT count(*) FROM mes_event")).scalar_one())
            n_items = int(conn.execute(text("SELECT count(*) FROM mes_item")).scalar_one())
            n_edges = int(conn.execute(text("SELECT count(*) FROM mes_genealogy_edge")).scalar_one())
            n_cp = int(conn.execute(text("SELECT count(*) FROM mes_checkpoint")).scalar_one())
            if not args.reuse:
                conn.exec_driver_sql("ANALYZE")
        console.print("timing traces ...")
        backward = time_traces(engine, pallets, "backward", args.queries)
        backward_one = time_traces(engine, assemblies, "backward", args.queries)
        forward = time_traces(engine, lots, "forward", args.queries)
        forward_scope = time_traces(engine, lots, "forward", args.queries, events=False)
        verify_rate = None
        if args.verify:
            console.print("verifying the record ...")
            t = time.perf_counter()
            report = verify(engine, log.key)
            verify_rate = report.events / (time.perf_counter() - t)
            if not report.ok:
                console.print(f"[red]verify failed[/]: {report.first}")
                return 1
        size_mb = sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists()) / 2**20
        engine.dispose()
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    result = {
        "events": n_events, "items": n_items, "edges": n_edges, "checkpoints": n_cp, "db_mb": round(size_mb),
        "write_events_per_s": round(write_rate) if write_rate else None,
        "generate_s": round(gen_s, 1) if gen_s else None,
        "backward_pallet": backward, "backward_assembly": backward_one,
        "forward_lot": forward, "forward_lot_items_only": forward_scope,
        "verify_events_per_s": round(verify_rate) if verify_rate else None,
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d"), "load_average": round(os.getloadavg()[0], 1),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table(title=f"MES traceability, {n_events:,} events ({n_items:,} items, {n_edges:,} edges), SQLite WAL")
    for col in ("measure", "value", "target"):
        table.add_column(col)
    if write_rate:
        table.add_row("event write rate (chain, edges, signed checkpoints)", f"{write_rate:,.0f} events/s", "")
    for name, r in (("backward trace of a pallet", backward), ("backward trace of an assembly", backward_one),
                    ("forward trace of a steel lot, every event", forward),
                    ("forward trace of a steel lot, items only (recall scope)", forward_scope)):
        wall = f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
        cpu = f"CPU p50 {r['cpu_p50_ms']:.1f}, p99 {r['cpu_p99_ms']:.1f} ms"
        size = f"{r['items_median']:.0f} items, {r['events_median']:.0f} events"
        table.add_row(name, f"{wall} ({cpu}; {size})", "< 100 ms")
    if verify_rate:
        table.add_row("verify (chain, signatures, Merkle roots, edges)", f"{verify_rate:,.0f} events/s", "")
    table.add_row("database size", f"{result['db_mb']:,} MB", "")
    Console().print(table)
    console.print(f"{result['cpu']}, {result['cores']} cores, Python {result['python']}, {result['date']}, "
                  f"load average at the end {result['load_average']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
