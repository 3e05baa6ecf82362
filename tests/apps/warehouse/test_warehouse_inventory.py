"""The inventory: stock arithmetic by lot, refusals that write nothing, the append-only ledger, orders,
line-side replenishment from consumption, and slotting suggestions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from shopfloor.apps.mes.service import Mes
from shopfloor.apps.warehouse.config import WarehouseConfig
from shopfloor.apps.warehouse.inventory import Inventory, StockError, TaskStatus, open_warehouse_db
from shopfloor.apps.warehouse.inventory.db import VERSION_TABLE, current_revision
from shopfloor.apps.warehouse.inventory.slotting import abc_classes, suggest
from shopfloor.core.errors import NotReady
from shopfloor.testing.postgres import PostgresServer, fresh_database

CONFIG = WarehouseConfig.model_validate({
    "map": ["......", "......", "......"],
    "locations": [
        {"code": "R1", "kind": "rack", "cell": [0, 0]},
        {"code": "R2", "kind": "rack", "cell": [5, 0]},
        {"code": "R3", "kind": "rack", "cell": [1, 2]},
        {"code": "D1", "kind": "dock", "cell": [0, 2]},
        {"code": "LS1", "kind": "line_side", "cell": [5, 2], "equipment": "site/area/line/cell1/cnc1",
         "material": "BAR", "min": 3, "max": 8},
    ],
    "initial_stock": [{"location": "R1", "material": "BAR", "lot": "LOT-1", "quantity": 5},
                      {"location": "R2", "material": "BAR", "lot": "LOT-2", "quantity": 20}],
})


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    try:
        pg = PostgresServer().start()
    except NotReady as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield pg
    pg.stop()


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    inventory = Inventory(open_warehouse_db(tmp_path / "mes.sqlite"))
    inventory.sync(CONFIG, ts_ns=1_000)
    return inventory


@pytest.fixture
def inv_pg(pg_server: PostgresServer) -> Iterator[Inventory]:
    with fresh_database(pg_server) as url:
        inventory = Inventory(open_warehouse_db(url))
        inventory.sync(CONFIG, ts_ns=1_000)
        yield inventory
        inventory.engine.dispose()


def total(inv: Inventory) -> float:
    return sum(r["quantity"] for r in inv.stock())


def test_tables_share_the_mes_database_and_its_lots(tmp_path: Path) -> None:
    inv = Inventory(open_warehouse_db(tmp_path / "mes.sqlite"))
    inv.sync(CONFIG)
    inv.sync(CONFIG)  # a second start neither duplicates locations nor receives the initial stock again
    assert current_revision(inv.engine) == "wh0001"
    with inv.engine.connect() as conn:
        assert conn.execute(text(f"select count(*) from {VERSION_TABLE}")).scalar() == 1
        assert conn.execute(text("select count(*) from mes_alembic_version")).scalar() == 1
    assert total(inv) == 25
    mes = Mes.open(tmp_path)  # the MES sees the warehouse's lots as its own items
    try:
        mes.add_product("P1")
        assert mes.create_lot("LOT-3", 0, 4.0, material="BAR") > 0
    finally:
        mes.close()
    inv.receive("D1", "BAR", "LOT-3", 4, "found")
    assert inv.quantity("D1", "BAR", "LOT-3") == 4


def test_moves_keep_the_sum_and_refuse_what_is_not_there(inv: Inventory) -> None:
    inv.move("BAR", "LOT-2", 7.5, "R2", "R3", "relocation")
    assert inv.quantity("R2", "BAR") == 12.5 and inv.quantity("R3", "BAR") == 7.5
    assert total(inv) == 25
    before = len(inv.moves(limit=1000))
    with pytest.raises(StockError, match=r"cannot take 13 of lot LOT-2 \(BAR\) from R2: it holds 12.5"):
        inv.move("BAR", "LOT-2", 13, "R2", "R3", "too much")
    with pytest.raises(StockError, match="holds 0"):
        inv.move("BAR", "LOT-1", 1, "R3", "R2", "wrong lot")
    with pytest.raises(StockError, match="positive number"):
        inv.move("BAR", "LOT-2", -1, "R2", "R3", "negative")
    with pytest.raises(StockError, match="positive number"):
        inv.move("BAR", "LOT-2", float("nan"), "R2", "R3", "nan")
    with pytest.raises(StockError, match="no location 'R9'"):
        inv.move("BAR", "LOT-2", 1, "R2", "R9", "nowhere")
    with pytest.raises(StockError, match="no lot 'LOT-9'"):
        inv.move("BAR", "LOT-9", 1, "R2", "R3", "unknown lot")
    with pytest.raises(StockError, match="to itself"):
        inv.move("BAR", "LOT-2", 1, "R2", "R2", "same place")
    with pytest.raises(StockError, match="not a lot of this material"):
        inv.receive("D1", "OIL", "LOT-2", 1, "lot of another material")
    assert len(inv.moves(limit=1000)) == before  # refusals write nothing
    assert total(inv) == 25
    assert all(r["quantity"] >= 0 for r in inv.stock(include_empty=True))


def test_the_ledger_is_append_only_and_adds_up_to_the_stock(inv: Inventory) -> None:
    inv.move("BAR", "LOT-2", 2, "R2", "R3", "relocation")
    inv.consume("R3", "BAR", 1, "scrap")
    ledger: dict[tuple[str, str], float] = {}
    for m in inv.moves(limit=1000):
        if m["from"]:
            ledger[m["from"], m["lot"]] = ledger.get((m["from"], m["lot"]), 0) - m["quantity"]
        if m["to"]:
            ledger[m["to"], m["lot"]] = ledger.get((m["to"], m["lot"]), 0) + m["quantity"]
        assert m["reason"]
    assert {k: v for k, v in ledger.items() if v} == {(r["location"], r["lot"]): r["quantity"] for r in inv.stock()}
    with inv.engine.begin() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("update wh_move set quantity = 99"))
    with inv.engine.begin() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("delete from wh_move"))
    with inv.engine.begin() as conn, pytest.raises(DatabaseError, match=r"ck_wh_stock_nonnegative|CHECK"):
        conn.execute(text("update wh_stock set quantity = -1"))


def test_consumption_takes_the_named_lot_or_the_oldest_first(inv: Inventory) -> None:
    inv.receive("LS1", "BAR", "LOT-A", 2, "test", ts_ns=10)
    inv.receive("LS1", "BAR", "LOT-B", 3, "test", ts_ns=20)
    inv.consume("LS1", "BAR", 1, "load", lot="LOT-B")
    assert inv.quantity("LS1", "BAR", "LOT-B") == 2
    inv.consume("LS1", "BAR", 3, "load")  # FIFO: both of LOT-A, then one of LOT-B
    assert inv.quantity("LS1", "BAR", "LOT-A") == 0 and inv.quantity("LS1", "BAR", "LOT-B") == 1
    with pytest.raises(StockError, match="cannot take 2 of BAR from LS1: it holds 1"):
        inv.consume("LS1", "BAR", 2, "load")
    assert inv.quantity("LS1", "BAR") == 1


def test_replenishment_is_triggered_below_min_and_fills_to_max_from_the_oldest_lot(inv: Inventory) -> None:
    inv.receive("LS1", "BAR", "LOT-L", 4, "initial", ts_ns=5)
    assert inv.replenish("LS1") == []  # 4 >= min 3
    inv.consume("LS1", "BAR", 2, "load")
    tasks = inv.replenish("LS1")  # 2 < 3: up to 8 = 6 more; LOT-1 (5, oldest) then 1 of LOT-2
    views = [inv.task(t) for t in tasks]
    assert [(v.lot, v.quantity, v.from_location, v.to_location) for v in views] == [
        ("LOT-1", 5.0, "R1", "LS1"), ("LOT-2", 1.0, "R2", "LS1")]
    assert inv.replenish("LS1") == []  # what is on its way counts
    with pytest.raises(StockError, match="5 reserved"):  # reserved stock cannot be moved away meanwhile
        inv.move("BAR", "LOT-1", 1, "R1", "R3", "grab")
    t = views[0]
    inv.assign(t.id, "agv1")
    with pytest.raises(StockError, match="expected carrying"):
        inv.drop(t.id)
    inv.pick(t.id)
    assert inv.quantity("AGV:agv1", "BAR") == 5 and inv.quantity("R1", "BAR") == 0
    inv.drop(t.id)
    assert inv.quantity("LS1", "BAR") == 7 and inv.quantity("AGV:agv1", "BAR") == 0
    assert inv.task(t.id).status is TaskStatus.DONE
    with pytest.raises(StockError, match="is done"):
        inv.pick(t.id)
    assert [o["status"] for o in inv.orders()] == ["open"]  # its second task is still open
    low = {loc["code"]: loc for loc in inv.locations()}["LS1"]
    assert low["quantity"] == 7 and low["incoming"] == 1 and low["low"] is False


def test_a_released_work_order_stages_its_need_before_the_minimum_is_reached(inv: Inventory) -> None:
    inv.receive("LS1", "BAR", "LOT-L", 4, "initial", ts_ns=5)
    assert inv.line_side_of("site/area/line/cell1/cnc1") == ["LS1"]
    assert inv.line_side_of("site/area/line/cell9/nothing") == []
    assert inv.replenish("LS1", demand=4) == []  # holds what the order needs
    assert inv.replenish("LS1", demand=2) == []  # and the minimum (3) still holds
    tasks = inv.replenish("LS1", demand=6)  # 4 < 6: filled to the maximum 8, as consumption would
    assert sum(inv.task(t).quantity for t in tasks) == 4
    assert inv.replenish("LS1", demand=50) == []  # capped at the maximum: 4 + 4 on the way
    assert {o["kind"] for o in inv.orders()} == {"replenishment"}


def test_inbound_and_outbound_orders(inv: Inventory) -> None:
    out = inv.create_inbound("IN-1", "BAR", "LOT-9", 10, "D1", user="op")
    task = inv.task(out["tasks"][0])
    assert (task.from_location, task.to_location) == ("D1", "R1")  # a rack that holds the material already
    assert inv.quantity("D1", "BAR", "LOT-9") == 10
    with pytest.raises(StockError, match="exists already"):
        inv.create_inbound("IN-1", "BAR", "LOT-10", 1, "D1")
    with pytest.raises(StockError, match="not a dock"):
        inv.create_inbound("IN-2", "BAR", "LOT-10", 1, "R1")
    with pytest.raises(StockError, match="less than 100 of BAR"):
        inv.create_outbound("OUT-1", "BAR", 100, "D1")
    assert [o["number"] for o in inv.orders()] == ["IN-1"]
    shipped = inv.create_outbound("OUT-1", "BAR", 7, "D1")
    picks = [inv.task(t) for t in shipped["tasks"]]
    assert [(p.from_location, p.lot, p.quantity) for p in picks] == [("R1", "LOT-1", 5.0), ("R2", "LOT-2", 2.0)]
    for p in picks:
        inv.assign(p.id, "agv2")
        inv.pick(p.id)
        inv.drop(p.id)
    assert inv.quantity("D1", "BAR", "LOT-1") == 0  # shipped with the order's last drop
    assert {o["number"]: o["status"] for o in inv.orders()}["OUT-1"] == "done"
    assert any(m["reason"] == "outbound order OUT-1: shipped" for m in inv.moves())


def test_slotting_puts_fast_movers_nearest_the_dock(inv: Inventory) -> None:
    assert abc_classes({"a": 80, "b": 15, "c": 5, "d": 0}) == {"a": "A", "b": "B", "c": "C", "d": "C"}
    inv.receive("R1", "SLOW", "LOT-S", 10, "test")
    for _ in range(3):
        inv.move("BAR", "LOT-2", 1, "R2", "R3", "pick")  # BAR is picked 3x from storage, SLOW never
    dist = {(0, 0): 2, (5, 0): 7, (1, 2): 1}
    suggestions = {s.material: s for s in suggest(inv, lambda c: dist[c])}
    assert suggestions["BAR"].abc == "A" and suggestions["BAR"].suggested == "R3"
    assert suggestions["SLOW"].abc == "C" and suggestions["SLOW"].suggested == "R1"


def test_the_same_inventory_on_postgresql(inv_pg: Inventory) -> None:
    """Migrations, refusals, the CHECK and the append-only ledger hold on PostgreSQL too."""
    inv = inv_pg
    assert inv.engine.dialect.name == "postgresql" and current_revision(inv.engine) == "wh0001"
    test_moves_keep_the_sum_and_refuse_what_is_not_there(inv)
    task = inv.replenish("LS1")[0]
    inv.assign(task, "agv1")
    inv.pick(task)
    inv.drop(task)
    assert inv.quantity("LS1", "BAR") == 5  # the first of its two tasks (LOT-1, all 5 of it)
    with inv.engine.begin() as conn, pytest.raises(DatabaseError, match="append-only"):
        conn.execute(text("delete from wh_move"))
    with inv.engine.begin() as conn, pytest.raises(DatabaseError, match="ck_wh_stock_nonnegative"):
        conn.execute(text("update wh_stock set quantity = -1"))
