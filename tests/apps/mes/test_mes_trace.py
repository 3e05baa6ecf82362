"""Production model, migrations and genealogy traces on a generated plant history."""

from __future__ import annotations

from pathlib import Path

import pytest
from mes_plant import CNC1, CNC2
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from shopfloor.apps.mes.db import current_revision, head_revision, open_database
from shopfloor.apps.mes.errors import MesError, NotFound
from shopfloor.apps.mes.genealogy import trace
from shopfloor.apps.mes.models import Operation
from shopfloor.apps.mes.service import Mes


def test_migrations_run_on_open_and_again_as_no_op(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "m.sqlite")
    assert current_revision(engine) == head_revision() == "0001"
    tables = set(inspect(engine).get_table_names())
    assert {"mes_event", "mes_genealogy_edge", "mes_checkpoint", "mes_work_order", "mes_item"} <= tables
    indexes = {i["name"] for i in inspect(engine).get_indexes("mes_genealogy_edge")}
    assert "ix_mes_genealogy_input_output" in indexes
    engine.dispose()
    again = open_database(tmp_path / "m.sqlite")
    assert current_revision(again) == "0001"
    with again.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    again.dispose()


def test_backward_trace_of_a_pallet(mes: Mes) -> None:
    tr = trace(mes.engine, "PAL-1", "backward")
    assert {n.code for n in tr.nodes.values()} == {"PAL-1", "SN-0004", "SN-0005", "SN-0006", "SN-0007",
                                                   "STEEL-A", "STEEL-B"}
    assert [n.code for n in tr.ends()] == ["STEEL-A", "STEEL-B"]
    assert tr.machines() == [CNC1, CNC2]
    assert tr.operators() == ["alice", "bob"]
    sn5 = next(n for n in tr.nodes.values() if n.code == "SN-0005")
    produced = next(e for e in sn5.events if e.kind == "produced")
    assert (produced.equipment, produced.operator) == (CNC2, "bob")
    assert produced.payload["parameters"] == {"spindle_load_pct": 65.0}
    inspection = next(e for e in sn5.events if e.kind == "inspection")
    assert inspection.payload["passed"] is False  # 20.05 mm, above 20.02
    assert sn5.depth == 1


def test_forward_trace_is_the_recall_scope(mes: Mes) -> None:
    tr = trace(mes.engine, "STEEL-A", "forward")
    # lot A fed cnc1, which made the even serials; they went into all three pallets
    assert sorted(n.code for n in tr.nodes.values() if n.kind == "serial") == [
        f"SN-{i:04d}" for i in range(0, 12, 2)
    ]
    assert [n.code for n in tr.ends()] == ["PAL-0", "PAL-1", "PAL-2"]
    one = trace(mes.engine, "SN-0003", "forward", events=False)
    assert [n.code for n in one.ends()] == ["PAL-0"]
    assert all(not n.events for n in one.nodes.values())


def test_unknown_item_and_bad_input(mes: Mes) -> None:
    with pytest.raises(NotFound, match="NOPE"):
        trace(mes.engine, "NOPE", "backward")
    with pytest.raises(NotFound, match="no work order"):
        mes.produce("SN-X", CNC1, 0, work_order="WO-404")
    with pytest.raises(MesError, match="serial"):
        mes.material_load(CNC1, "SN-0001", 0)
    with pytest.raises(MesError, match="check digit"):
        mes.add_product("BAD", gtin="04012345000017")
    with pytest.raises(MesError, match="exists"):
        mes.create_lot("STEEL-A", 0, 1.0, material="STEEL")
    with pytest.raises(MesError, match="negative"):
        mes.count(CNC1, 0, good=-1)


def test_work_order_operations_count_output(mes: Mes) -> None:
    with Session(mes.engine) as s:
        ops = s.scalars(select(Operation).order_by(Operation.seq)).all()
    assert [(o.seq, o.good_quantity) for o in ops] == [(1, 6.0), (2, 6.0)]
    assert mes.planned_run_time(CNC2) == 60.0
    assert mes.planned_run_time("vf/nowhere") is None


def test_operator_follows_log_on_and_off(mes: Mes) -> None:
    assert mes.operator_at(mes.log.equipment_id(CNC1)) is None  # alice logged off
    assert mes.operator_at(mes.log.equipment_id(CNC2)) == "bob"
