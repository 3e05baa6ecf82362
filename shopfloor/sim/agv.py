"""The virtual factory's warehouse: a small grid with racks, docks, line-side buffers at the CNCs, and AGVs
that speak VDA 5050 over MQTT the way real vehicles do.

Each ``SimAgv`` accepts orders (a new order must start where the vehicle stands; an update must start at
its last released node), drives node to node at ``speed_m_s``, runs the node actions ``pick`` and
``drop`` (a few seconds each; the load is the action's ``loadId``), and the instant actions
``startCharging``/``stopCharging``, ``startPause``/``stopPause`` and ``cancelOrder``. It reports
``state`` on every node reached, every action change and every order, and periodically (faster while
driving), with its position, battery (drains per metre driven, charges at ``charge_pct_s``), loads and
action states; ``connection`` is ONLINE while it runs (retained) and OFFLINE when it stops. A pause
takes effect at the next node: vehicles halt on nodes, never between them.

The extension also stands in for the line controller's material scans while nobody else sends them: when a
CNC finishes a part it takes one blank from its line-side buffer (the oldest lot an AGV dropped there) and
publishes ``material_load`` with that lot on ``shopfloor/mes/events``; a CNC whose buffer is empty publishes
nothing (``starved`` counts those parts). As soon as a ``material_load`` of a lot it did not publish
arrives (the line controller of sim/production.py, or a real MES), the stand-in switches itself off for
good, so consumption is never counted twice.

One MQTT client and one thread at 10 Hz serve every vehicle: a few hundred microseconds per tick.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.apps.warehouse.config import WarehouseConfig
from shopfloor.sim.extension import Broker
from shopfloor.sim.plant import AREA, LINE, SITE

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory

log = logging.getLogger(__name__)

MES_TOPIC = "shopfloor/mes/events"
MANUFACTURER = "shopfloor-sim"
ACTION_S = 3.0  # a pick or a drop
TICK_S = 0.1
DRIVING_STATE_S = 0.5
IDLE_STATE_S = 5.0

# x: 0..23, y: 0..8. Rack rows at y = 1, 3, 5 (x 1-6 and 8-13); the machining line's cells at y = 3, x 16-21.
MAP = [
    "........................",
    ".@@@@@@.@@@@@@..........",
    "........................",
    ".@@@@@@.@@@@@@..@@@@@@..",
    "........................",
    ".@@@@@@.@@@@@@..........",
    "........................",
    "........................",
    "........................",
]
MATERIALS = {1: "BAR-C45", 2: "BAR-C45", 3: "BAR-42CrMo4"}  # blank of each CNC


def warehouse_section(n_cncs: int = 3, n_vehicles: int = 3) -> dict[str, Any]:
    """The ``warehouse:`` section of the virtual factory's plant.yaml."""
    racks = [(2, 2), (5, 2), (9, 2), (12, 2), (2, 4), (5, 4), (9, 4), (12, 4), (2, 0), (5, 0), (9, 0), (12, 0)]
    locations: list[dict[str, Any]] = [
        {"code": f"R-{k + 1:02d}", "kind": "rack", "cell": list(c)} for k, c in enumerate(racks)
    ]
    locations += [{"code": "B-01", "kind": "bin", "cell": [3, 6]}, {"code": "B-02", "kind": "bin", "cell": [10, 6]}]
    locations += [{"code": "D-IN", "kind": "dock", "cell": [1, 8]}, {"code": "D-OUT", "kind": "dock", "cell": [5, 8]}]
    for i in range(1, n_cncs + 1):
        locations.append({
            "code": f"LS-CNC{i}", "kind": "line_side", "cell": [15 + 2 * i, 4],
            "equipment": f"{SITE}/{AREA}/{LINE}/cell{i}/cnc{i}", "material": MATERIALS.get(i, "BAR-C45"),
            "min": 3, "max": 6,
        })
    stock = [
        ("R-05", "BAR-C45", "LOT-W-0001", 200), ("R-01", "BAR-C45", "LOT-W-0002", 200),
        ("R-06", "BAR-42CrMo4", "LOT-W-0003", 150), ("R-02", "BAR-42CrMo4", "LOT-W-0004", 150),
        ("R-04", "BOX-S", "LOT-W-0005", 40), ("B-01", "SPACER-8", "LOT-W-0006", 500),
    ]
    # Each buffer starts at its minimum: the first part takes it below, an AGV is called while two are left.
    stock += [(f"LS-CNC{i}", MATERIALS.get(i, "BAR-C45"), f"LOT-W-{6 + i:04d}", 3) for i in range(1, n_cncs + 1)]
    return {
        "map": MAP,
        "map_id": "warehouse",
        "cell_size_m": 1.0,
        "locations": locations,
        "vehicles": [{"serial": f"agv{k + 1}", "manufacturer": MANUFACTURER, "home": [19 + 2 * k, 8]}
                     for k in range(n_vehicles)],
        "materials": sorted({m for m in MATERIALS.values()}),
        "initial_stock": [{"location": loc, "material": m, "lot": lot, "quantity": q} for loc, m, lot, q in stock],
        "tags": f"{SITE}/logistics/intralogistics",
    }


def _vehicle_equipment(serial: str) -> dict[str, Any]:
    derived = {"protocol": "derived", "app": "warehouse"}
    return {
        "name": serial, "type": "agv", "description": f"AGV {serial} (VDA 5050)", "source": derived,
        "tags": [
            {"name": "x", "unit": "m", "description": "Position x on the warehouse map"},
            {"name": "y", "unit": "m", "description": "Position y on the warehouse map"},
            {"name": "battery", "unit": "%", "range": [0, 100]},
            {"name": "state", "type": "enum", "states": {0: "idle", 1: "moving", 2: "loading", 3: "charging",
                                                          4: "stopped", 5: "error", 6: "offline"}},
            {"name": "loaded", "type": "bool"},
        ],
    }


@dataclass
class _Node:
    node_id: str
    seq: int
    x: float
    y: float
    actions: list[dict[str, Any]]


@dataclass
class SimAgv:
    """One vehicle's physics and protocol state (driven by AgvExtension's thread)."""

    serial: str
    x: float
    y: float
    map_id: str
    speed_m_s: float = 1.0
    battery: float = 100.0
    drain_pct_m: float = 0.3
    charge_pct_s: float = 2.0
    order_id: str = ""
    order_update_id: int = 0
    nodes: list[_Node] = field(default_factory=list)  # released nodes, the last reached one first
    last_node_id: str = ""
    last_seq: int = 0
    driving: bool = False
    charging: bool = False
    paused: bool = False
    pause_requested: bool = False
    loads: list[dict[str, Any]] = field(default_factory=list)
    action_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    action_s: float = ACTION_S
    running: tuple[str, float, dict[str, Any]] | None = None  # action id, finishes at, action
    errors: list[dict[str, Any]] = field(default_factory=list)
    header: int = 0
    dirty: bool = True
    dropped: list[tuple[float, float, dict[str, Any]]] = field(default_factory=list)

    def accept_order(self, order: dict[str, Any]) -> None:
        nodes = order.get("nodes") or []
        released = [n for n in nodes if n.get("released", True)]
        self.errors = [e for e in self.errors if e["errorType"] not in ("orderError", "orderUpdateError")]
        if not released:
            return self._reject("orderError", "an order needs at least one released node")
        first = released[0]
        if order.get("orderId") == self.order_id:
            if int(order.get("orderUpdateId", 0)) <= self.order_update_id:
                return None  # a duplicate: VDA 5050 says ignore it
            last = self.nodes[-1] if self.nodes else None
            if last is None or first.get("sequenceId") != last.seq or first.get("nodeId") != last.node_id:
                return self._reject("orderUpdateError", "the update does not start at the last released node")
            new = released[1:]
        else:
            pos = first.get("nodePosition") or {}
            if math.hypot(float(pos.get("x", 1e9)) - self.x, float(pos.get("y", 1e9)) - self.y) > 0.5:
                return self._reject("orderError", "a new order must start where the vehicle stands")
            if self.running is not None or (self.nodes and self.driving):
                return self._reject("orderError", "a new order while another is being driven")
            self.order_id = str(order.get("orderId"))
            self.nodes = []
            self.last_node_id, self.last_seq = str(first.get("nodeId")), int(first.get("sequenceId", 0))
            new = released
        self.order_update_id = int(order.get("orderUpdateId", 0))
        for n in new:
            pos = n.get("nodePosition") or {}
            self.nodes.append(_Node(str(n.get("nodeId")), int(n.get("sequenceId", 0)), float(pos.get("x", self.x)),
                                    float(pos.get("y", self.y)), list(n.get("actions") or [])))
        if new and new[0] is first:  # the first node of a new order is where it stands: run its actions now
            self._arrive(self.nodes[0], time.monotonic())
        self.charging = False  # an order ends charging
        self.dirty = True
        return None

    def _reject(self, kind: str, text: str) -> None:
        self.errors.append({"errorType": kind, "errorLevel": "WARNING", "errorDescription": text})
        self.dirty = True

    def instant(self, action: dict[str, Any], now: float) -> None:
        kind = action.get("actionType")
        aid = str(action.get("actionId", ""))
        if kind == "startCharging":
            self.charging = True
        elif kind == "stopCharging":
            self.charging = False
        elif kind == "startPause":
            self.pause_requested = True
            if not self.driving:
                self.paused = True
        elif kind == "stopPause":
            self.pause_requested = self.paused = False
        elif kind == "cancelOrder":
            self.nodes = [n for n in self.nodes if n.seq <= self.last_seq]
        elif kind in ("pick", "drop"):
            self._start_action(action, now)
            return
        self.action_states[aid] = {"actionId": aid, "actionType": kind, "actionStatus": "FINISHED"}
        self.dirty = True

    def _start_action(self, action: dict[str, Any], now: float) -> None:
        aid = str(action.get("actionId", ""))
        self.action_states[aid] = {"actionId": aid, "actionType": action.get("actionType"), "actionStatus": "RUNNING"}
        self.running = (aid, now + self.action_s, action)
        self.dirty = True

    def _arrive(self, node: _Node, now: float) -> None:
        self.x, self.y = node.x, node.y
        self.last_node_id, self.last_seq = node.node_id, node.seq
        self.nodes = [n for n in self.nodes if n.seq > node.seq]
        self.nodes.insert(0, node)
        for a in node.actions:
            self._start_action(a, now)
        if self.pause_requested:
            self.paused = True
        self.dirty = True

    def step(self, now: float, dt: float) -> None:
        if self.running is not None:
            aid, done_at, action = self.running
            if now >= done_at:
                params = {p.get("key"): p.get("value") for p in action.get("actionParameters") or []}
                load = {"loadId": str(params.get("loadId", aid)), "loadType": "pallet"}
                if action.get("actionType") == "pick":
                    self.loads = [load]
                else:
                    self.loads = []
                    self.dropped.append((self.x, self.y, params))
                self.action_states[aid]["actionStatus"] = "FINISHED"
                self.running = None
                self.dirty = True
            return
        if self.charging:
            self.battery = min(100.0, self.battery + self.charge_pct_s * dt)
        ahead = [n for n in self.nodes if n.seq > self.last_seq]
        if self.paused or not ahead or self.battery <= 0:
            if self.driving:
                self.driving = False
                self.dirty = True
            return
        target = ahead[0]
        self.driving = True
        dx, dy = target.x - self.x, target.y - self.y
        dist = math.hypot(dx, dy)
        travel = self.speed_m_s * dt
        self.battery = max(0.0, self.battery - self.drain_pct_m * min(travel, dist))
        if dist <= travel:
            self._arrive(target, now)
            if not [n for n in self.nodes if n.seq > self.last_seq]:
                self.driving = False
        else:
            self.x += dx / dist * travel
            self.y += dy / dist * travel

    def state(self, manufacturer: str) -> dict[str, Any]:
        self.header += 1
        ahead = [n for n in self.nodes if n.seq > self.last_seq]
        return {
            "headerId": self.header, "timestamp": _now_iso(), "version": "2.0.0", "manufacturer": manufacturer,
            "serialNumber": self.serial, "orderId": self.order_id, "orderUpdateId": self.order_update_id,
            "lastNodeId": self.last_node_id, "lastNodeSequenceId": self.last_seq, "driving": self.driving,
            "paused": self.paused, "operatingMode": "AUTOMATIC",
            "nodeStates": [{"nodeId": n.node_id, "sequenceId": n.seq, "released": True} for n in ahead],
            "edgeStates": [],
            "agvPosition": {"x": round(self.x, 3), "y": round(self.y, 3), "theta": 0.0, "mapId": self.map_id,
                            "positionInitialized": True},
            "velocity": {"vx": self.speed_m_s if self.driving else 0.0, "vy": 0.0, "omega": 0.0},
            "batteryState": {"batteryCharge": round(self.battery, 2), "charging": self.charging},
            "loads": self.loads, "actionStates": list(self.action_states.values())[-10:], "errors": self.errors,
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


class AgvExtension:
    """The warehouse, its AGVs and the CNCs' material consumption (see the module docstring)."""

    name = "agv"

    def __init__(self, seed: int = 1, n_vehicles: int = 3, *, speed_m_s: float = 1.0, action_s: float = ACTION_S,
                 material_loads: bool = True) -> None:
        self.seed = seed
        self.n_vehicles = n_vehicles
        self.speed_m_s = speed_m_s
        self.material_loads = material_loads
        self.config = WarehouseConfig.model_validate(warehouse_section(n_vehicles=n_vehicles))
        self.manufacturer = MANUFACTURER
        self.vehicles = {
            v.serial: SimAgv(v.serial, float(v.home[0]), float(v.home[1]), self.config.map_id, speed_m_s=speed_m_s,
                             battery=90.0 - 7.0 * k, action_s=action_s)
            for k, v in enumerate(self.config.vehicles)
        }
        self.buffers = {tuple(loc.cell): loc for loc in self.config.locations if loc.kind == "line_side"}
        self.lots: dict[str, deque[list[Any]]] = {loc.code: deque() for loc in self.buffers.values()}
        self.starved = 0
        self._own_lots: set[str] = set()
        self.events_published = 0
        self._lock = threading.Lock()
        self._pending_parts: list[tuple[str, int]] = []  # (equipment, ts_ms) from on_step
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ FactoryExtension

    def extend_plant(self, plant: dict[str, Any]) -> None:
        site = plant["site"]
        site["areas"].append({
            "name": "logistics", "description": "Warehouse and AGVs",
            "lines": [{"name": "intralogistics", "description": "AGV fleet (VDA 5050)",
                       "equipment": [_vehicle_equipment(v.serial) for v in self.config.vehicles]}],
        })
        plant["warehouse"] = self.config.model_dump(mode="json", exclude_defaults=True)

    def on_step(self, factory: VirtualFactory) -> None:
        if not self.material_loads:
            return
        ts_ms = factory.now_ns // 1_000_000
        for i, cnc in enumerate(factory.cncs):
            for _ in range(int(cnc.parts_out)):
                self._pending_parts.append((f"{SITE}/{AREA}/{LINE}/cell{i + 1}/{cnc.name}", ts_ms))

    def start(self, broker: Broker) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shopfloor-sim-agv-{self.seed}")
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 10)
        client.connect_async(broker.host, broker.port, keepalive=30)
        client.loop_start()
        self._client = client
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-agv", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        client, self._client = self._client, None
        if client is not None:
            for serial in self.vehicles:
                client.publish(self._topic(serial, "connection"), self._connection(serial, "OFFLINE"), 1, retain=True)
            client.loop_stop()
            client.disconnect()

    # ------------------------------------------------------------------ MQTT

    def _topic(self, serial: str, kind: str) -> str:
        return f"{self.config.interface}/v2/{self.manufacturer}/{serial}/{kind}"

    def _connection(self, serial: str, state: str) -> bytes:
        return json.dumps({"headerId": 0, "timestamp": _now_iso(), "version": "2.0.0", "manufacturer":
                           self.manufacturer, "serialNumber": serial, "connectionState": state}).encode()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(MES_TOPIC, qos=0)
        for serial in self.vehicles:
            client.subscribe(self._topic(serial, "order"), qos=0)
            client.subscribe(self._topic(serial, "instantActions"), qos=0)
            client.publish(self._topic(serial, "connection"), self._connection(serial, "ONLINE"), 1, retain=True)
        with self._lock:
            for v in self.vehicles.values():
                v.dirty = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == MES_TOPIC:
            self._others_scan(bytes(msg.payload))
            return
        parts = msg.topic.split("/")
        vehicle = self.vehicles.get(parts[3]) if len(parts) == 5 else None
        if vehicle is None:
            return
        try:
            body = json.loads(msg.payload)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            log.warning("sim AGV %s: undecodable %s message", vehicle.serial, parts[4])
            return
        with self._lock:
            if parts[4] == "order":
                vehicle.accept_order(body)
            elif parts[4] == "instantActions":
                for action in body.get("actions") or []:
                    vehicle.instant(action, time.monotonic())

    # ------------------------------------------------------------------ the vehicles' clock

    def _run(self) -> None:
        last = time.monotonic()
        published = dict.fromkeys(self.vehicles, 0.0)
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            dt, last = now - last, now
            out: list[tuple[str, bytes]] = []
            with self._lock:
                for serial, v in self.vehicles.items():
                    v.step(now, dt)
                    for x, y, params in v.dropped:
                        self._dropped(x, y, params)
                    v.dropped.clear()
                    every = DRIVING_STATE_S if v.driving else IDLE_STATE_S
                    if v.dirty or now - published[serial] >= every:
                        v.dirty = False
                        published[serial] = now
                        out.append((self._topic(serial, "state"), json.dumps(v.state(self.manufacturer)).encode()))
                parts, self._pending_parts = self._pending_parts, []
            events = [e for e in (self._consume(eq, ts) for eq, ts in parts) if e is not None] \
                if self.material_loads else []
            if events:
                out.append((MES_TOPIC, json.dumps(events).encode()))
                self.events_published += len(events)
            client = self._client
            if client is not None and client.is_connected():
                for t, payload in out:
                    client.publish(t, payload, qos=0)

    def _others_scan(self, payload: bytes) -> None:
        """Someone else reports material loads: stop standing in for the line controller."""
        if not self.material_loads:
            return
        try:
            body = json.loads(payload)
        except ValueError:
            return
        for ev in body if isinstance(body, list) else [body]:
            if isinstance(ev, dict) and ev.get("kind") == "material_load" and ev.get("lot") not in self._own_lots:
                self.material_loads = False
                log.info("material loads come from the line controller (lot %s): the AGV sim's stand-in is off",
                         ev.get("lot"))
                return

    def _dropped(self, x: float, y: float, params: dict[str, Any]) -> None:
        loc = self.buffers.get((round(x), round(y)))
        if loc is not None and params.get("loadId"):
            self.lots[loc.code].append([str(params["loadId"]), float(params.get("quantity", 1) or 1)])

    def _consume(self, equipment: str, ts_ms: int) -> dict[str, Any] | None:
        """One blank for a finished part: from the buffer's oldest lot, as the operator would scan it."""
        loc = next((b for b in self.buffers.values() if b.equipment == equipment), None)
        if loc is None:
            return None
        lots = self.lots[loc.code]
        while lots and lots[0][1] <= 1e-9:
            lots.popleft()
        if not lots:
            self.starved += 1
            return None
        lots[0][1] -= 1
        self._own_lots.add(lots[0][0])
        return {"kind": "material_load", "equipment": equipment, "lot": lots[0][0], "material": loc.material,
                "quantity": 1, "ts_ms": ts_ms}


__all__ = ["AgvExtension", "SimAgv", "warehouse_section"]
