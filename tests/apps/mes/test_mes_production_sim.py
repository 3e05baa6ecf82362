"""The virtual factory's line controller (shopfloor/sim/production.py): a consistent, deterministic MES event
stream that agrees with the line's own counters, and that the recorder takes without a single rejection."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shopfloor.apps.mes import genealogy
from shopfloor.apps.mes.config import MesConfig
from shopfloor.apps.mes.events import parse_event
from shopfloor.apps.mes.ingest import Recorder, ensure_master_data
from shopfloor.apps.mes.models import OrderStatus, WorkOrder
from shopfloor.apps.mes.service import Mes
from shopfloor.apps.mes.verify import verify
from shopfloor.config import parse_plant_config
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.production import BOX_SIZE, LOT_SIZE, ProductionExtension

START_NS = int(datetime(2026, 3, 2, 5, 0, tzinfo=UTC).timestamp()) * 10**9  # a shift change at 06:00
HOURS = 2


def run(seed: int, hours: float = HOURS) -> tuple[VirtualFactory, list[dict[str, Any]], list[tuple[float, float]]]:
    events: list[dict[str, Any]] = []
    factory = VirtualFactory(seed=seed, start_ns=START_NS, extensions=[ProductionExtension(seed, sink=events.extend)])
    before = [(c.good, c.scrap) for c in factory.cncs]
    factory.advance(int(hours * 3600))
    return factory, events, before


@pytest.fixture(scope="module")
def line() -> tuple[VirtualFactory, list[dict[str, Any]], list[tuple[float, float]]]:
    return run(3)


def test_stream_is_consistent(line: tuple[VirtualFactory, list[dict[str, Any]], list[tuple[float, float]]]) -> None:
    factory, events, before = line
    kinds = Counter(e["kind"] for e in events)
    assert kinds["produced"] > 250 and kinds["packed"] > 10 and kinds["state"] > 0
    assert all(parse_event(e) for e in events)  # every event fits the contract
    orders: dict[str, dict[str, Any]] = {}
    loaded: dict[tuple[str, str], int] = {}  # (machine, lot) -> blanks loaded so far
    made: dict[str, dict[str, Any]] = {}
    good_by: Counter[str] = Counter()
    scrap_by: Counter[str] = Counter()
    good_in_order: Counter[str] = Counter()
    status: dict[str, str] = {}
    packed: set[str] = set()
    for e in events:
        k = e["kind"]
        if k == "work_order":
            assert e["number"] not in orders and e["due_ms"] > e["release_ms"]
            orders[e["number"]] = e
        elif k == "order_status":
            assert e["number"] in orders
            if e["status"] == "done":
                assert good_in_order[e["number"]] == orders[e["number"]]["quantity"]
            status[e["number"]] = e["status"]
        elif k == "material_load":
            loaded[(e["equipment"], e["lot"])] = loaded.get((e["equipment"], e["lot"]), 0) + e["quantity"]
            assert loaded[(e["equipment"], e["lot"])] <= LOT_SIZE
        elif k == "produced":
            order = orders[e["work_order"]]  # the order exists before its parts
            assert order["product"] == e["product"] and status[e["work_order"]] == "running"
            (lot,) = e["inputs"]
            assert (e["equipment"], lot["code"]) in loaded  # loaded at this machine before it was consumed
            assert e["serial"] not in made
            made[e["serial"]] = e
            if e["quality"] == "good":
                good_by[e["equipment"]] += 1
                good_in_order[e["work_order"]] += 1
            else:
                scrap_by[e["equipment"]] += 1
        elif k == "inspection":
            part = made[e["serial"]]
            assert (e["lower"] <= e["value"] <= e["upper"]) == (part["quality"] == "good")
        elif k == "packed":
            assert len(e["serials"]) == BOX_SIZE
            for s in e["serials"]:
                assert made[s]["quality"] == "good" and made[s]["product"] == e["product"] and s not in packed
                packed.add(s)
    for (good0, scrap0), cnc, path in zip(before, factory.cncs, sorted({e["equipment"] for e in made.values()}),
                                          strict=True):
        assert path.endswith(cnc.name)
        assert good_by[path] == cnc.good - good0 and scrap_by[path] == cnc.scrap - scrap0  # the CNCs' own counters
    logons = [e for e in events if e["kind"] in ("logon", "logoff")]
    assert [e["kind"] for e in logons] == ["logon"] * 3 + ["logoff", "logon"] * 3  # the 06:00 crew change
    assert {e["ts_ms"] for e in logons[3:]} == {START_NS // 10**6 + 3_600_000}


def test_deterministic() -> None:
    _, a, _ = run(5, 0.5)
    _, b, _ = run(5, 0.5)
    _, c, _ = run(6, 0.5)
    assert a == b and a != c


def test_recorded_without_rejection(
    line: tuple[VirtualFactory, list[dict[str, Any]], list[tuple[float, float]]], tmp_path: Path
) -> None:
    _, events, _ = line
    ext = ProductionExtension(3)
    plant: dict[str, Any] = {}
    ext.extend_plant(plant)
    config = MesConfig.model_validate(plant["mes"])
    # The section is valid in a plant.yaml of the factory: the routings name its machines.
    full = parse_plant_config(VirtualFactory(seed=3, extensions=[ext]).plant_yaml())
    assert full.mes == config
    mes = Mes.open(tmp_path, block_size=256)
    try:
        ensure_master_data(mes, config)
        recorder = Recorder(mes)
        cutoff = START_NS // 10**6 + 1_800_000  # half an hour is plenty here (the writes are the cost)
        first = [e for e in events if e["ts_ms"] <= cutoff]
        assert all(recorder.record(parse_event(e)) for e in first)
        box = next(e for e in first if e["kind"] == "packed")
        tree = genealogy.trace(mes.engine, box["lot"], "backward").as_dict()
        kinds = Counter(n["kind"] for n in tree["nodes"])
        assert kinds["serial"] == BOX_SIZE and kinds["lot"] >= 2  # the box and the material lots
        serial = tree["nodes"][1]
        ops = {e["operator"] for n in tree["nodes"] if n["kind"] == "serial" for e in n["events"]
               if e["kind"] == "produced"}
        assert ops and None not in ops and serial["events"]
        assert defaultdict(int, Counter(ev["kind"] for ev in serial["events"]))["inspection"] == 1
        mes.log.seal()
        assert verify(mes.engine, mes.key).ok
    finally:
        mes.close()


def test_a_stopped_line_cancels_its_open_orders(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    ext = ProductionExtension(4, sink=events.extend)
    factory = VirtualFactory(seed=4, start_ns=START_NS, extensions=[ext])
    factory.advance(1200)
    open_orders = {number for c in ext.line.cncs for number, _ in c.orders}
    assert len(open_orders) >= 2 * len(ext.line.cncs)   # the running order and the next one, per machine
    ext.stop()   # no broker here: the closing events go to the sink
    closing = [e for e in events if e["kind"] == "order_status" and e["status"] == "cancelled"]
    assert {e["number"] for e in closing} == open_orders
    assert ext.line.step(factory) == [] and ext.line.close() == []   # a closed line says nothing more
    plant: dict[str, Any] = {}
    ext.extend_plant(plant)
    mes = Mes.open(tmp_path, block_size=256)
    try:
        ensure_master_data(mes, MesConfig.model_validate(plant["mes"]))
        recorder = Recorder(mes)
        assert all(recorder.record(parse_event(e)) for e in events)
        with Session(mes.engine) as s:
            statuses = Counter(s.scalars(select(WorkOrder.status)).all())
        assert statuses[OrderStatus.CANCELLED] == len(open_orders)
        assert statuses[OrderStatus.RUNNING] == statuses[OrderStatus.RELEASED] == 0
    finally:
        mes.close()
