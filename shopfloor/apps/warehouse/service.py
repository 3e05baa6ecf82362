"""The warehouse platform service: inventory, line-side replenishment and the AGV fleet, wired to MQTT.

It subscribes to the MES events (``shopfloor/mes/events``: ``material_load`` consumes stock from the
machine's line-side buffer and may trigger a replenishment) and to every vehicle's VDA 5050 ``state``
and ``connection``; the ``Dispatcher`` turns open transport tasks into orders it publishes on the
vehicles' ``order`` and ``instantActions`` topics. Everything runs on one thread fed by a bounded
queue (paho's network thread only enqueues), so the dispatcher and the inventory see one event at a
time. Undecodable or impossible messages (bad JSON, a state that is not VDA 5050, a vehicle not in
the config, consumption of more than the buffer holds) are counted and kept as dead letters (source
``warehouse``); the service carries on. With ``warehouse.tags`` set, each vehicle's position,
battery, state and load are written as derived tags, at most once a second per vehicle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import paho.mqtt.client as mqtt

from shopfloor.apps.warehouse.config import WarehouseConfig
from shopfloor.apps.warehouse.dispatch import Dispatcher, PlanHook
from shopfloor.apps.warehouse.fleet.vda5050 import parse_state
from shopfloor.apps.warehouse.inventory.db import open_warehouse_db
from shopfloor.apps.warehouse.inventory.slotting import suggest
from shopfloor.apps.warehouse.inventory.stock import Inventory, StockError
from shopfloor.apps.warehouse.mapf.grid import GridError
from shopfloor.core.errors import DecodeError, UnknownTag
from shopfloor.services import service_client

if TYPE_CHECKING:
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)

MES_TOPIC = "shopfloor/mes/events"
QUEUE_MAX = 10_000  # messages waiting for the service thread; beyond it the newest are dropped and counted
TAG_PERIOD_S = 1.0
DRAIN_MAX = 1000  # messages handled after a tick fell due, before the tick runs anyway
STATE_CODES = {"idle": 0, "moving": 1, "loading": 2, "charging": 3, "stopped": 4, "error": 5}


def database_target(config: WarehouseConfig, data_dir: Path) -> str:
    """Where the warehouse's tables live: its own URL, else the MES database (SHOPFLOOR_MES_URL or mes.sqlite)."""
    return config.database or os.environ.get("SHOPFLOOR_MES_URL") or str(data_dir / "mes.sqlite")


class WarehouseService:
    """PlatformService ``warehouse`` (see the module docstring)."""

    name = "warehouse"

    def __init__(self, config: WarehouseConfig, *, on_plan: PlanHook | None = None, tick_s: float = 0.05) -> None:
        self.config = config
        self.on_plan = on_plan
        self.tick_s = tick_s
        self.inventory: Inventory | None = None
        self.dispatcher: Dispatcher | None = None
        self._platform: Platform | None = None
        self._client: mqtt.Client | None = None
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._snapshot: dict[str, Any] = {"vehicles": [], "step": 0, "blocked": [], "counts": {}, "last_error": None}
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue(100)
        self._tag_written: dict[str, float] = {}
        self._tags_off = config.tags is None
        self.connected = False
        self.counts = {"messages": 0, "dropped": 0, "dead_letters": 0, "material_loads": 0, "consumed": 0,
                       "not_ours": 0, "replenishment_tasks": 0, "orders_sent": 0, "work_orders_staged": 0}

    # ------------------------------------------------------------------ PlatformService

    def start(self, platform: Platform) -> None:
        self._platform = platform
        engine = open_warehouse_db(database_target(self.config, platform.data_dir))
        self.inventory = Inventory(engine)
        self.inventory.sync(self.config)
        self.dispatcher = Dispatcher(self.config, self.inventory, self._send, on_plan=self.on_plan)
        client, host, port = service_client(platform, f"shopfloor-warehouse-{os.getpid()}", max_reconnect_s=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._client = client
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="warehouse", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        client, self._client = self._client, None
        if client is not None:
            client.loop_stop()
            client.disconnect()
        if self.inventory is not None:
            self.inventory.engine.dispose()

    def health(self) -> dict[str, object]:
        snap = self._snapshot
        return {"connected": self.connected, **self.counts, "vehicles_online": sum(v["online"] for v in
                                                                                 snap["vehicles"]),
                "fleet": snap["counts"], "last_error": snap["last_error"]}

    # ------------------------------------------------------------------ for the API

    def snapshot(self) -> dict[str, Any]:
        """The fleet as of the last tick (vehicles, paths, blocked cells, counters)."""
        return self._snapshot

    def block(self, cells: list[tuple[int, int]]) -> None:
        """Close cells to traffic (validated here, applied on the service thread at the next tick)."""
        assert self.dispatcher is not None
        for x, y in cells:
            self.dispatcher.graph.vertex(int(x), int(y))
        self._commands.put_nowait(("block", cells))

    def tasks_added(self) -> None:
        """New tasks: assign at the next tick, not at the next poll (a full queue just waits for the poll)."""
        with contextlib.suppress(queue.Full):
            self._commands.put_nowait(("tasks", None))

    def slotting(self) -> list[dict[str, Any]]:
        assert self.inventory is not None and self.dispatcher is not None
        graph = self.dispatcher.graph
        docks = self.inventory.dock_cells()
        if not docks:
            raise StockError("slotting ranks places by distance to a dock: the warehouse has none")
        table = graph.distance_table(np.array([graph.vertex(*d) for d in docks], dtype=np.int32))
        table = np.where(table < 0, np.iinfo(np.int32).max, table)
        nearest = table.min(axis=0)
        return [s.as_dict() for s in suggest(self.inventory, lambda c: int(nearest[graph.vertex(*c)]))]

    # ------------------------------------------------------------------ MQTT (paho's thread: enqueue only)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        self.connected = True
        client.subscribe(MES_TOPIC, qos=1)
        client.subscribe(f"{self.config.interface}/v2/+/+/state", qos=0)
        client.subscribe(f"{self.config.interface}/v2/+/+/connection", qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._queue.put_nowait((msg.topic, bytes(msg.payload)))
        except queue.Full:
            self.counts["dropped"] += 1

    def _send(self, topic: str, message: dict[str, Any]) -> None:
        client = self._client
        if client is not None:
            client.publish(topic, json.dumps(message, separators=(",", ":")).encode(), qos=0)
            self.counts["orders_sent"] += 1

    # ------------------------------------------------------------------ the service thread

    def _run(self) -> None:
        assert self.dispatcher is not None and self.inventory is not None
        try:
            self._replenish_all()
        except Exception:
            log.exception("warehouse: initial replenishment check failed")
        while not self._stop.is_set():
            deadline = time.monotonic() + self.tick_s
            late = 0
            while late < DRAIN_MAX:  # until the tick is due, then what is waiting: arrivals before step timeouts
                try:
                    left = deadline - time.monotonic()
                    if left > 0:
                        topic, payload = self._queue.get(timeout=left)
                    else:
                        topic, payload = self._queue.get_nowait()
                        late += 1
                except queue.Empty:
                    break
                self._handle(topic, payload)
            while not self._commands.empty():
                kind, arg = self._commands.get_nowait()
                if kind == "block":
                    self.dispatcher.block(arg)
                else:
                    self.dispatcher.task_added()
            try:
                self.dispatcher.tick()
            except Exception as exc:  # a bug must not stop the fleet manager: log, show in health, carry on
                log.exception("warehouse: dispatcher tick failed")
                self.dispatcher.last_error = f"{type(exc).__name__}: {exc}"
            self._snapshot = self.dispatcher.snapshot()
            self._write_tags()

    def _handle(self, topic: str, payload: bytes) -> None:
        self.counts["messages"] += 1
        try:
            if topic == MES_TOPIC:
                self._mes_events(payload)
                return
            parts = topic.split("/")
            if len(parts) != 5:
                raise DecodeError(f"unexpected topic {topic}")
            serial, kind = parts[3], parts[4]
            assert self.dispatcher is not None
            if serial not in self.dispatcher.runs:
                raise DecodeError(f"vehicle {serial!r} is not in the warehouse config")
            if kind == "state":
                self.dispatcher.on_state(serial, parse_state(payload))
            elif kind == "connection":
                body = json.loads(payload)
                state = body.get("connectionState") if isinstance(body, dict) else None
                if state not in ("ONLINE", "OFFLINE", "CONNECTIONBROKEN"):
                    raise DecodeError(f"connection message without a valid connectionState: {state!r}")
                self.dispatcher.on_connection(serial, state == "ONLINE")
        except (DecodeError, StockError, GridError, ValueError) as exc:
            self._dead_letter(topic, str(exc), payload)

    def _mes_events(self, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except ValueError as exc:
            raise DecodeError(f"MES events: not JSON ({exc})") from None
        events = body if isinstance(body, list) else [body]
        errors = []
        for ev in events:
            if not isinstance(ev, dict):
                continue
            try:
                if ev.get("kind") == "material_load":
                    self.counts["material_loads"] += 1
                    self._material_load(ev)
                elif ev.get("kind") == "work_order":
                    self._work_order(ev)
            except (StockError, DecodeError) as exc:
                errors.append(str(exc))
        if errors:
            raise StockError("; ".join(errors[:5]))

    def _material_load(self, ev: dict[str, Any]) -> None:
        assert self.inventory is not None
        equipment, material, qty, lot = ev.get("equipment"), ev.get("material"), ev.get("quantity"), ev.get("lot")
        if not isinstance(equipment, str) or not isinstance(material, str):
            raise DecodeError("material_load needs equipment and material (strings)")
        if not isinstance(qty, int | float) or isinstance(qty, bool) or qty <= 0:
            raise DecodeError(f"material_load at {equipment}: quantity must be a positive number, got {qty!r}")
        buffer = self.inventory.line_side_for(equipment, material)
        if buffer is None:
            self.counts["not_ours"] += 1  # a machine or material the warehouse does not feed
            return
        ts_ms = ev.get("ts_ms")
        ts_ns = int(ts_ms) * 1_000_000 if isinstance(ts_ms, int | float) else None
        reason = f"material_load at {equipment}"
        if isinstance(lot, str) and self.inventory.quantity(buffer, material, lot) >= qty:
            self.inventory.consume(buffer, material, float(qty), reason, lot=lot, ts_ns=ts_ns)
        else:  # a lot scanned that the buffer does not hold (enough of): the warehouse counts the material
            note = f" (lot {lot} scanned, not in stock here: oldest lot taken)" if isinstance(lot, str) else ""
            self.inventory.consume(buffer, material, float(qty), reason + note, ts_ns=ts_ns)
        self.counts["consumed"] += 1
        self._replenish(buffer)

    def _work_order(self, ev: dict[str, Any]) -> None:
        """A work order released at a machine stages its material: each buffer feeding that machine is filled
        if it holds less than the order needs (one unit of the buffer's material per part: there is no bill of
        materials yet). An order that names no machine is left to consumption-driven replenishment."""
        assert self.inventory is not None
        equipment, qty = ev.get("equipment"), ev.get("quantity")
        if not isinstance(equipment, str):
            return
        if not isinstance(qty, int | float) or isinstance(qty, bool) or qty <= 0:
            raise DecodeError(f"work_order at {equipment}: quantity must be a positive number, got {qty!r}")
        buffers = self.inventory.line_side_of(equipment)
        if buffers:
            self.counts["work_orders_staged"] += 1
        for buffer in buffers:
            self._replenish(buffer, demand=float(qty))

    def _replenish(self, buffer: str, demand: float | None = None) -> None:
        assert self.inventory is not None and self.dispatcher is not None
        new = self.inventory.replenish(buffer, demand=demand)
        if new:
            self.counts["replenishment_tasks"] += len(new)
            self.dispatcher.task_added()

    def _replenish_all(self) -> None:
        assert self.inventory is not None
        for buffer in self.inventory.line_side_buffers():
            self._replenish(buffer)

    def _dead_letter(self, topic: str, reason: str, payload: bytes) -> None:
        self.counts["dead_letters"] += 1
        log.debug("warehouse dead letter on %s: %s", topic, reason)
        if self._platform is not None:
            self._platform.dead_letters.add("warehouse", topic, reason, payload)

    def _write_tags(self) -> None:
        if self._tags_off or self._platform is None:
            return
        now = time.monotonic()
        paths: list[str] = []
        values: list[float] = []
        for v in self._snapshot["vehicles"]:
            serial = v["serial"]
            if v["battery"] is None or now - self._tag_written.get(serial, 0.0) < TAG_PERIOD_S:
                continue
            self._tag_written[serial] = now
            base = f"{self.config.tags}/{serial}"
            state = STATE_CODES.get(v["state"], 5) if v["online"] else 6
            paths += [f"{base}/x", f"{base}/y", f"{base}/battery", f"{base}/state", f"{base}/loaded"]
            values += [v["x"] * self.config.cell_size_m, v["y"] * self.config.cell_size_m, v["battery"], state,
                       1.0 if v["payload"] else 0.0]
        if paths:
            try:
                self._platform.write(paths, np.full(len(paths), time.time_ns(), np.int64), np.array(values))
            except UnknownTag as exc:
                log.warning("warehouse: vehicle tags are not in the plant model (%s); not writing them", exc)
                self._tags_off = True
