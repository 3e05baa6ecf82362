"""VDA 5050 order and state messages: orders from MAPF paths, state parsing and bad payloads."""

import json

import numpy as np
import pytest

from shopfloor.apps.warehouse.fleet import (
    Order,
    Vehicle,
    VehicleState,
    apply_state,
    order_from_path,
    parse_state,
    topic,
)
from shopfloor.apps.warehouse.mapf import GridError, GridGraph
from shopfloor.core.errors import DecodeError

GRAPH = GridGraph(np.ones((6, 8), dtype=bool))


def state_json(**overrides: object) -> str:
    msg: dict[str, object] = {
        "headerId": 7, "timestamp": "2026-11-22T10:00:00.000Z", "version": "2.0.0", "manufacturer": "acme",
        "serialNumber": "agv7", "orderId": "o1", "lastNodeId": "c3_0", "driving": True,
        "agvPosition": {"x": 3.0, "y": 0.0, "theta": 0.0, "mapId": "hall", "positionInitialized": True},
        "batteryState": {"batteryCharge": 81.5, "charging": False},
        "loads": [{"loadId": "pallet-42"}], "vendorExtra": {"anything": 1},
    }
    msg.update(overrides)
    return json.dumps(msg)


def test_topic() -> None:
    assert topic("acme", "agv7", "order") == "uagv/v2/acme/agv7/order"
    with pytest.raises(ValueError, match="cannot be part"):
        topic("acme", "agv/7", "state")


def test_order_from_a_mapf_path_keeps_turns_and_drops_waits() -> None:
    cells = [GRAPH.vertex(x, y) for x, y in [(0, 0), (1, 0), (1, 0), (2, 0), (2, 1), (2, 2), (3, 2)]]
    order = order_from_path(GRAPH, cells, order_id="o1", manufacturer="acme", serial_number="agv7", header_id=1,
                            map_id="hall", cell_size_m=1.5)
    assert [n.nodeId for n in order.nodes] == ["c0_0", "c2_0", "c2_2", "c3_2"]
    assert [n.sequenceId for n in order.nodes] == [0, 2, 4, 6] and [e.sequenceId for e in order.edges] == [1, 3, 5]
    assert order.edges[1].startNodeId == "c2_0" and order.edges[1].endNodeId == "c2_2"
    assert order.nodes[2].nodePosition is not None and order.nodes[2].nodePosition.y == 3.0
    again = Order.model_validate_json(order.model_dump_json())  # what goes over MQTT comes back the same
    assert again == order
    single = order_from_path(GRAPH, [5], order_id="o2", manufacturer="acme", serial_number="agv7", header_id=2,
                             map_id="hall")
    assert len(single.nodes) == 1 and single.edges == []


def test_state_updates_the_vehicle() -> None:
    vehicle = Vehicle(vehicle_id="agv7", position=0)
    apply_state(vehicle, parse_state(state_json()), GRAPH)
    assert (vehicle.position, vehicle.battery_pct, vehicle.payload, vehicle.state) == (
        GRAPH.vertex(3, 0), 81.5, "pallet-42", VehicleState.MOVING)
    apply_state(vehicle, parse_state(state_json(safetyState={"eStop": "MANUAL", "fieldViolation": False})), GRAPH)
    assert vehicle.state is VehicleState.STOPPED
    apply_state(vehicle, parse_state(state_json(errors=[{"errorType": "lost", "errorLevel": "FATAL"}])), GRAPH)
    assert vehicle.state is VehicleState.ERROR
    apply_state(vehicle, parse_state(state_json(driving=False, loads=[],
                                                batteryState={"batteryCharge": 40, "charging": True})), GRAPH)
    assert (vehicle.state, vehicle.payload) == (VehicleState.CHARGING, None)


@pytest.mark.parametrize(("payload", "message"), [
    (b"not json", "state"),
    (state_json(batteryState={"batteryCharge": 140}), "batteryState.batteryCharge"),
    (state_json(headerId="seven"), "headerId"),
    (state_json(errors=[{"errorType": "x", "errorLevel": "PANIC"}]), "errorLevel"),
])
def test_bad_state_payloads_are_decode_errors(payload: str | bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_state(payload)


def test_state_from_outside_the_map() -> None:
    vehicle = Vehicle(vehicle_id="agv7", position=0)
    bad = parse_state(state_json(agvPosition={"x": 99.0, "y": 0.0, "mapId": "hall"}))
    with pytest.raises(GridError, match="off the"):
        apply_state(vehicle, bad, GRAPH)
