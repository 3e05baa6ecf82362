"""VDA 5050 (version 2) order and state messages, so simulated and real AGVs speak the same protocol.

Only the fields the fleet uses are modelled, with the standard's camelCase names; unknown fields in a
vehicle's state are accepted and ignored (vendors add their own). Topics follow
``<interface>/<major version>/<manufacturer>/<serialNumber>/<topic>``, e.g. ``uagv/v2/acme/agv7/order``.
A malformed state payload raises DecodeError with pydantic's reason, which the MQTT ingest already
counts and stores as a dead letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopfloor.apps.warehouse.fleet.vehicles import Vehicle, VehicleState
from shopfloor.apps.warehouse.mapf.grid import GridGraph
from shopfloor.core.errors import DecodeError

INTERFACE = "uagv"
VERSION = "2.0.0"


def topic(manufacturer: str, serial_number: str, kind: str, interface: str = INTERFACE) -> str:
    """The MQTT topic of one vehicle's ``kind`` channel (order, state, instantActions, connection...)."""
    for name, value in (("manufacturer", manufacturer), ("serial number", serial_number), ("topic", kind)):
        if not value or any(c in value for c in "/+#"):
            raise ValueError(f"{name} {value!r} cannot be part of an MQTT topic")
    return f"{interface}/v{VERSION.split('.')[0]}/{manufacturer}/{serial_number}/{kind}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class BlockingType(StrEnum):
    NONE = "NONE"
    SOFT = "SOFT"
    HARD = "HARD"


class ActionParameter(_Message):
    key: str
    value: str | float | int | bool


class Action(_Message):
    actionType: str
    actionId: str
    blockingType: BlockingType = BlockingType.HARD
    actionParameters: list[ActionParameter] = Field(default_factory=list)


class NodePosition(_Message):
    x: float
    y: float
    mapId: str
    theta: float | None = None
    allowedDeviationXY: float | None = None


class Node(_Message):
    nodeId: str
    sequenceId: int = Field(ge=0)
    released: bool = True
    nodePosition: NodePosition | None = None
    actions: list[Action] = Field(default_factory=list)


class Edge(_Message):
    edgeId: str
    sequenceId: int = Field(ge=0)
    released: bool = True
    startNodeId: str
    endNodeId: str
    maxSpeed: float | None = None
    actions: list[Action] = Field(default_factory=list)


class Header(_Message):
    headerId: int = Field(ge=0)
    timestamp: str
    version: str = VERSION
    manufacturer: str
    serialNumber: str


class Order(Header):
    orderId: str
    orderUpdateId: int = Field(default=0, ge=0)
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)


class OperatingMode(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"
    SERVICE = "SERVICE"
    TEACHIN = "TEACHIN"


class AgvPosition(_Message):
    x: float
    y: float
    theta: float = 0.0
    mapId: str
    positionInitialized: bool = True


class BatteryState(_Message):
    batteryCharge: float = Field(ge=0, le=100)
    charging: bool = False


class ErrorLevel(StrEnum):
    WARNING = "WARNING"
    FATAL = "FATAL"


class AgvError(_Message):
    errorType: str
    errorLevel: ErrorLevel
    errorDescription: str = ""


class Load(_Message):
    loadId: str | None = None
    loadType: str | None = None


class ActionState(_Message):
    actionId: str
    actionType: str | None = None
    actionStatus: str


class SafetyState(_Message):
    eStop: str = "NONE"
    fieldViolation: bool = False


class State(Header):
    orderId: str = ""
    orderUpdateId: int = 0
    lastNodeId: str = ""
    lastNodeSequenceId: int = 0
    driving: bool = False
    paused: bool = False
    operatingMode: OperatingMode = OperatingMode.AUTOMATIC
    agvPosition: AgvPosition | None = None
    batteryState: BatteryState
    errors: list[AgvError] = Field(default_factory=list)
    loads: list[Load] = Field(default_factory=list)
    actionStates: list[ActionState] = Field(default_factory=list)
    safetyState: SafetyState = Field(default_factory=SafetyState)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cell_node_id(graph: GridGraph, v: int) -> str:
    x, y = graph.xy(v)
    return f"c{x}_{y}"


def order_from_path(graph: GridGraph, path: NDArray[np.integer] | Sequence[int], *, order_id: str,
                    manufacturer: str, serial_number: str, header_id: int, map_id: str,
                    cell_size_m: float = 1.0, order_update_id: int = 0,
                    final_actions: Sequence[Action] = ()) -> Order:
    """A VDA 5050 order that drives a MAPF path: a node per cell where the vehicle turns or stops, edges between.

    Waits in the MAPF path are dropped: the order fixes the route, the fleet releases it in time.
    """
    cells = [int(v) for v in path]
    if not cells:
        raise ValueError("an order needs at least one cell")
    route = [cells[0]] + [v for prev, v in pairwise(cells) if v != prev]
    def heading(a: int, b: int) -> tuple[int, int]:
        (xa, ya), (xb, yb) = graph.xy(a), graph.xy(b)
        return xb - xa, yb - ya

    turns = [k for k in range(1, len(route) - 1) if heading(route[k - 1], route[k]) != heading(route[k], route[k + 1])]
    keep = [0, *turns, *([len(route) - 1] if len(route) > 1 else [])]
    nodes: list[Node] = []
    edges: list[Edge] = []
    for n, k in enumerate(keep):
        x, y = graph.xy(route[k])
        nodes.append(Node(nodeId=cell_node_id(graph, route[k]), sequenceId=2 * n,
                          nodePosition=NodePosition(x=x * cell_size_m, y=y * cell_size_m, mapId=map_id),
                          actions=list(final_actions) if n == len(keep) - 1 else []))
        if n:
            edges.append(Edge(edgeId=f"{nodes[-2].nodeId}-{nodes[-1].nodeId}", sequenceId=2 * n - 1,
                              startNodeId=nodes[-2].nodeId, endNodeId=nodes[-1].nodeId))
    return Order(headerId=header_id, timestamp=now_iso(), manufacturer=manufacturer, serialNumber=serial_number,
                 orderId=order_id, orderUpdateId=order_update_id, nodes=nodes, edges=edges)


def parse_state(payload: bytes | str) -> State:
    """A vehicle's state message; DecodeError with the reason if it is not valid VDA 5050 state JSON."""
    try:
        return State.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise DecodeError(f"VDA 5050 state: {where}: {first['msg']} ({exc.error_count()} errors)") from None


def apply_state(vehicle: Vehicle, state: State, graph: GridGraph, cell_size_m: float = 1.0) -> Vehicle:
    """Update a vehicle from its state message: cell, battery, payload and what it is doing."""
    if state.agvPosition is not None and state.agvPosition.positionInitialized:
        x = round(state.agvPosition.x / cell_size_m)
        y = round(state.agvPosition.y / cell_size_m)
        vehicle.position = graph.vertex(x, y)  # GridError if the vehicle reports a blocked or outside cell
    vehicle.battery_pct = state.batteryState.batteryCharge
    loads = [ld.loadId or ld.loadType or "load" for ld in state.loads]
    vehicle.payload = loads[0] if loads else None
    if any(e.errorLevel is ErrorLevel.FATAL for e in state.errors):
        vehicle.state = VehicleState.ERROR
    elif state.safetyState.eStop != "NONE" or state.safetyState.fieldViolation or state.paused:
        vehicle.state = VehicleState.STOPPED
    elif state.batteryState.charging:
        vehicle.state = VehicleState.CHARGING
    elif state.driving:
        vehicle.state = VehicleState.MOVING
    elif any(a.actionStatus in ("INITIALIZING", "RUNNING") for a in state.actionStates):
        vehicle.state = VehicleState.LOADING
    else:
        vehicle.state = VehicleState.IDLE
    return vehicle
