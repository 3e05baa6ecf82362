"""The simulated AGV's side of VDA 5050 (orders, updates, actions, charging, battery) and the extension's
stand-in material scans, without a broker."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from shopfloor.apps.warehouse.fleet.vda5050 import parse_state
from shopfloor.sim.agv import MES_TOPIC, AgvExtension, SimAgv


def node(x: int, y: int, seq: int, actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"nodeId": f"c{x}_{y}", "sequenceId": seq, "released": True, "actions": actions or [],
            "nodePosition": {"x": float(x), "y": float(y), "mapId": "warehouse"}}


def order(order_id: str, update: int, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"headerId": 1, "timestamp": "2026-01-01T00:00:00Z", "version": "2.0.0", "manufacturer": "m",
            "serialNumber": "agv1", "orderId": order_id, "orderUpdateId": update, "nodes": list(nodes), "edges": []}


def errors(agv: SimAgv) -> list[str]:
    return [e["errorType"] for e in agv.state("m")["errors"]]


def test_orders_updates_and_driving() -> None:
    agv = SimAgv("agv1", 2.0, 3.0, "warehouse", speed_m_s=1.0, drain_pct_m=0.5, battery=50.0)
    agv.accept_order(order("o1", 0, node(5, 3, 0)))
    assert errors(agv) == ["orderError"]  # a new order must start where the vehicle stands
    agv.accept_order(order("o1", 0, node(2, 3, 0)))
    assert errors(agv) == [] and agv.last_seq == 0
    agv.accept_order(order("o1", 1, node(2, 4, 0), node(3, 3, 2)))
    assert errors(agv) == ["orderUpdateError"]  # an update starts at the last released node
    agv.accept_order(order("o1", 1, node(2, 3, 0), node(3, 3, 2), node(4, 3, 4)))
    for k in range(10):
        agv.step(k * 0.1, 0.1)
    assert agv.x == pytest.approx(3.0, abs=1e-6) and agv.last_seq == 2 and agv.driving
    agv.accept_order(order("o1", 1, node(2, 3, 0), node(9, 3, 2)))  # a duplicate update id: ignored
    for k in range(20):
        agv.step(1 + k * 0.1, 0.1)
    assert (agv.x, agv.last_seq, agv.driving) == (4.0, 4, False)
    assert agv.battery == pytest.approx(49.0)  # 2 m at 0.5 %/m
    state = parse_state(json.dumps(agv.state("m")))
    assert state.lastNodeId == "c4_3" and state.agvPosition is not None and state.agvPosition.x == 4.0


def test_pick_and_drop_actions_and_charging() -> None:
    agv = SimAgv("agv1", 0.0, 0.0, "warehouse", action_s=2.0, battery=40.0, charge_pct_s=2.0)
    pick = {"actionType": "pick", "actionId": "a1", "blockingType": "HARD",
            "actionParameters": [{"key": "loadId", "value": "LOT-1"}, {"key": "quantity", "value": 5}]}
    agv.accept_order(order("o1", 0, node(0, 0, 0)))
    agv.accept_order(order("o1", 1, node(0, 0, 0), node(1, 0, 2, [pick])))
    for k in range(12):
        agv.step(k * 0.1, 0.1)
    assert agv.action_states["a1"]["actionStatus"] == "RUNNING" and agv.loads == []
    agv.step(3.5, 0.1)
    assert agv.action_states["a1"]["actionStatus"] == "FINISHED" and agv.loads == [
        {"loadId": "LOT-1", "loadType": "pallet"}]
    agv.instant({"actionType": "startCharging", "actionId": "c1"}, 4.0)
    before = agv.battery
    for k in range(10):
        agv.step(4.0 + k * 0.1, 0.1)
    assert agv.battery == pytest.approx(before + 2.0) and agv.state("m")["batteryState"]["charging"]
    agv.instant({"actionType": "drop", "actionId": "d1", "actionParameters": [{"key": "loadId", "value": "LOT-1"}]},
                5.0)
    agv.step(7.5, 0.1)
    assert agv.loads == [] and agv.dropped == [(1.0, 0.0, {"loadId": "LOT-1"})]


def test_stand_in_scans_follow_the_dropped_lots_and_give_way_to_the_line_controller() -> None:
    ext = AgvExtension(1, material_loads=True)
    cnc1 = "virtual-factory/machining/line1/cell1/cnc1"
    factory = SimpleNamespace(now_ns=5_000_000, cncs=[SimpleNamespace(name="cnc1", parts_out=1.0),
                                                      SimpleNamespace(name="cnc2", parts_out=0.0)])
    ext.on_step(factory)  # type: ignore[arg-type]
    assert ext._consume(*ext._pending_parts.pop()) is None and ext.starved == 1  # empty buffer: nothing scanned
    ext._dropped(17.0, 4.0, {"loadId": "LOT-W-1", "quantity": 2})  # an AGV dropped 2 at LS-CNC1
    events = [ext._consume(cnc1, 5), ext._consume(cnc1, 6), ext._consume(cnc1, 7)]
    assert events[0] == {"kind": "material_load", "equipment": cnc1, "lot": "LOT-W-1", "material": "BAR-C45",
                         "quantity": 1, "ts_ms": 5}
    assert events[1] is not None and events[2] is None
    ext._others_scan(json.dumps([events[0]]).encode())  # its own scan: still on
    assert ext.material_loads
    ext._others_scan(json.dumps({"kind": "material_load", "lot": "LOT-X-C1", "equipment": cnc1}).encode())
    assert not ext.material_loads
    assert MES_TOPIC == "shopfloor/mes/events"
