"""The virtual factory's line controller: work orders, material lots, serial numbers, states and shifts, as MES
events on ``shopfloor/mes/events`` (the contract in docs/mes.md).

It follows the line step by step and says what a real line controller would:

* **Work orders**: each CNC machines one product (cnc1 FLANGE, cnc2 HOUSING, cnc3 SHAFT), one work order at a
  time, with the next one already released; an order is done when its quantity of good parts is made. The
  quantities come from the seed; the due date is the release plus the order's run time at the planned cycle
  time over 85 % OEE, plus an hour.
* **Material**: each part takes one blank from the lot at its CNC's line side, scanned as it is loaded
  (``material_load``, quantity 1; the warehouse replenishes from these); a lot holds ``LOT_SIZE`` blanks,
  then the next lot starts. Each ``produced`` event names its lot as input, so the genealogy is exact.
* **Serials**: one per finished part (``produced``), good or scrap as the CNC's own quality model decided
  (tool wear, bearing wear), with the cycle time, tool wear and bearing health as process parameters, and the
  CNC's in-process gauging of the part's key dimension (``inspection``): inside the tolerance for a good part,
  outside it for scrap.
* **Packing**: the robot unloads the parts in the order they were made; good ones go into boxes of
  ``BOX_SIZE`` per product (``packed``, a finished-goods lot), scrap into the scrap bin.
* **States**: every state change of a CNC and the conveyor with its reason; the robot's breakdowns and
  recoveries (its running/idle at every pick is left to the historian).
* **Shifts**: a crew logs on at the CNCs at each shift start (06:00, 14:00, 22:00 UTC), after the leaving crew
  logged off; four crews rotate.

Everything follows from the seed and the sim time (codes carry the sim time, so a restarted demo makes new
ones). The first step states the line as it is: orders released, lots loaded, crew logged on, the machines'
states; so the demo shows OEE from its first minute and its first serials within a CNC cycle (48-75 s).
``extend_plant`` writes the ``mes:`` section (products, materials, routings with each CNC's planned cycle
time, shifts, an emission factor) that switches the platform's MES recorder on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.apps.mes.config import DEFAULT_TOPIC
from shopfloor.sim.extension import Broker
from shopfloor.sim.machines import DOWN, STATES, STOP_REASONS
from shopfloor.sim.plant import AREA, LINE, SITE

if TYPE_CHECKING:
    from shopfloor.sim.factory import VirtualFactory
    from shopfloor.sim.machines import CncParams

log = logging.getLogger(__name__)

LOT_SIZE = 40  # blanks per material lot
BOX_SIZE = 10  # good parts per finished-goods box
ORDER_SIZES = (24, 36, 48, 60)
SHIFT_STARTS_H = (6.0, 14.0, 22.0)
CREWS = (("anna", "ben", "chen"), ("dana", "emil", "femi"), ("greta", "hugo", "ines"), ("jonas", "kira", "lars"))
EMISSION_FACTOR = 0.38  # kg CO2e/kWh: an example (about Germany's 2023 grid mix); a plant sets its own
PLANNED_OEE = 0.85


def _gtin(base13: str) -> str:
    """GTIN-14 from 13 digits with its GS1 check digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(base13))
    return base13 + str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """What a CNC makes and how its key dimension is gauged."""

    code: str
    name: str
    prefix: str  # of its serial numbers
    material: str
    material_name: str
    characteristic: str
    nominal_mm: float
    tolerance_mm: float  # +/-
    step: str  # routing step name


PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("FLANGE", "Flange DN80", "FL", "BAR-C45", "Steel bar C45", "bore diameter", 80.0, 0.030, "turn"),
    ProductSpec("HOUSING", "Bearing housing H3", "HS", "BAR-C45", "Steel bar C45", "bearing seat", 47.0, 0.012,
                "mill"),
    ProductSpec("SHAFT", "Drive shaft 20 mm", "SH", "BAR-42CrMo4", "Steel bar 42CrMo4", "diameter", 20.0, 0.010,
                "turn"),
)
GTINS = {p.code: _gtin(f"040123450{i + 1:03d}0") for i, p in enumerate(PRODUCTS)}


def machine_paths(n_cncs: int) -> tuple[list[str], str, str]:
    """Asset paths of the CNCs, the robot and the conveyor in the virtual factory's layout (factory.py)."""
    line = f"{SITE}/{AREA}/{LINE}"
    return ([f"{line}/cell{i + 1}/cnc{i + 1}" for i in range(n_cncs)], f"{line}/cell{n_cncs + 1}/robot1",
            f"{line}/conveyor1")


def mes_section(cncs: Sequence[CncParams]) -> dict[str, Any]:
    """The ``mes:`` section of the virtual factory's plant.yaml."""
    paths, _, _ = machine_paths(len(cncs))
    specs = [PRODUCTS[i % len(PRODUCTS)] for i in range(len(cncs))]
    materials = {s.material: s.material_name for s in specs}
    return {
        "products": [{"code": s.code, "name": s.name, "gtin": GTINS[s.code]} for s in dict.fromkeys(specs)],
        "materials": [{"code": c, "name": n, "unit": "pcs"} for c, n in materials.items()],
        "routings": [{"product": s.code, "steps": [{"name": s.step, "equipment": path, "pri_s": p.cycle_time_s}]}
                     for s, path, p in zip(specs, paths, cncs, strict=True)],
        "shift_starts_h": list(SHIFT_STARTS_H),
        "utc_offset_h": 0.0,
        "emission_factor_kg_per_kwh": EMISSION_FACTOR,
    }


def _stamp(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%y%m%d-%H%M%S")


class _Cnc:
    """What the controller keeps per CNC."""

    def __init__(self, index: int, path: str, spec: ProductSpec, cycle_s: float) -> None:
        self.index = index
        self.path = path
        self.spec = spec
        self.cycle_s = cycle_s
        self.orders: deque[tuple[str, int]] = deque()  # (number, quantity): current first
        self.good_in_order = 0
        self.lot: str | None = None
        self.lot_left = 0
        self.state: tuple[int, int] | None = None
        self.good = 0.0
        self.scrap = 0.0
        self.operator: str | None = None


class ProductionLine:
    """The line controller's logic, free of I/O: ``step(factory)`` returns the events of that step."""

    def __init__(self, seed: int, n_cncs: int, cycle_times_s: Sequence[float]) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(b"production"),)))
        paths, self.robot_path, self.conveyor_path = machine_paths(n_cncs)
        self.cncs = [_Cnc(i, p, PRODUCTS[i % len(PRODUCTS)], cycle_times_s[i]) for i, p in enumerate(paths)]
        self._started = False
        self._shift: int | None = None
        self._conveyor_state: int | None = None
        self._robot_down: bool | None = None
        self._robot_count = 0.0
        self._ts = 0
        self._closed = False
        self._belt: deque[tuple[str, int, bool]] = deque()  # parts waiting for the robot: serial, cnc, good
        self._boxes: dict[str, list[str]] = {}
        self.serials = 0

    def close(self) -> list[dict[str, Any]]:
        """The line stops for good: its open orders are cancelled (a restarted line releases new ones).

        Without this, a restart on the same MES record left the previous run's orders "running" forever.
        """
        out = [{"kind": "order_status", "number": number, "status": "cancelled", "ts_ms": self._ts}
               for c in self.cncs for number, _ in c.orders]
        for c in self.cncs:
            c.orders.clear()
        self._closed = True
        return out

    def step(self, factory: VirtualFactory) -> list[dict[str, Any]]:
        if self._closed:
            return []
        ts = self._ts = factory.now_ns // 1_000_000
        out: list[dict[str, Any]] = []
        if not self._started:
            self._start(factory, ts, out)
        shift = _shift_index(ts)
        if shift != self._shift:
            self._change_shift(shift, ts, out)
        for c, m in zip(self.cncs, factory.cncs, strict=True):
            state = (int(m.state), int(m.reason))
            if state != c.state:
                c.state = state
                reason = STOP_REASONS.get(state[1], f"reason {state[1]}") if state[1] else None
                out.append({"kind": "state", "equipment": c.path, "state": STATES[state[0]], "reason": reason,
                            "ts_ms": ts})
            if m.parts_out > 0:
                self._parts(c, m, ts, out)
        conveyor = int(factory.conveyor.state)
        if conveyor != self._conveyor_state:
            self._conveyor_state = conveyor
            out.append({"kind": "state", "equipment": self.conveyor_path, "state": STATES[conveyor],
                        "reason": "breakdown" if conveyor == DOWN else None, "ts_ms": ts})
        robot = factory.robot
        down = robot.state == DOWN
        if down != self._robot_down:
            self._robot_down = down
            out.append({"kind": "state", "equipment": self.robot_path, "state": "down" if down else "running",
                        "reason": "breakdown" if down else None, "ts_ms": ts})
        unloaded = int(robot.count - self._robot_count)
        self._robot_count = robot.count
        for _ in range(unloaded):
            if self._belt:
                self._unload(*self._belt.popleft(), ts, out)
        return out

    # ------------------------------------------------------------------ parts

    def _parts(self, c: _Cnc, m: Any, ts: int, out: list[dict[str, Any]]) -> None:
        new_scrap = round(m.scrap - c.scrap)
        new_good = round(m.good - c.good)
        c.good, c.scrap = m.good, m.scrap
        qualities = [False] * new_scrap + [True] * new_good
        spec = c.spec
        for k, good in enumerate(qualities):
            if c.lot_left <= 0:
                c.lot = f"LOT-{_stamp(ts)}-C{c.index + 1}"
                c.lot_left = LOT_SIZE
            c.lot_left -= 1
            serial = f"{spec.prefix}-{_stamp(ts)}-{c.index + 1}" + (f"-{k}" if k else "")
            number = c.orders[0][0]
            out.append({"kind": "material_load", "equipment": c.path, "lot": c.lot, "material": spec.material,
                        "quantity": 1, "lot_quantity": LOT_SIZE, "ts_ms": ts})
            out.append({
                "kind": "produced", "serial": serial, "product": spec.code, "work_order": number,
                "equipment": c.path, "quality": "good" if good else "scrap", "inputs": [{"code": c.lot, "quantity": 1}],
                "parameters": {"cycle_time_s": round(float(m.last_cycle), 1), "tool_wear_pct": round(float(m.tool), 1),
                               "bearing_health_pct": round(100.0 * (1.0 - float(m.wear)), 1)},
                "ts_ms": ts,
            })
            out.append({
                "kind": "inspection", "serial": serial, "characteristic": spec.characteristic,
                "value": self._gauge(spec, good), "lower": round(spec.nominal_mm - spec.tolerance_mm, 4),
                "upper": round(spec.nominal_mm + spec.tolerance_mm, 4), "unit": "mm", "equipment": c.path,
                "ts_ms": ts,
            })
            self.serials += 1
            self._belt.append((serial, c.index, good))
            if good:
                c.good_in_order += 1
                if c.good_in_order >= c.orders[0][1]:
                    self._next_order(c, ts, out)

    def _gauge(self, spec: ProductSpec, good: bool) -> float:
        """The measured dimension: within tolerance (normal, sigma tol/4, clipped) if good, outside if scrap."""
        z, u = self._rng.standard_normal(), self._rng.random()
        tol = spec.tolerance_mm
        if good:
            dev = max(-0.95 * tol, min(0.95 * tol, 0.25 * tol * z))
        else:
            dev = (1.1 + 0.9 * u) * tol * (1.0 if z >= 0 else -1.0)
        return round(spec.nominal_mm + dev, 4)

    def _unload(self, serial: str, index: int, good: bool, ts: int, out: list[dict[str, Any]]) -> None:
        if not good:
            return  # into the scrap bin
        spec = self.cncs[index].spec
        box = self._boxes.setdefault(spec.code, [])
        box.append(serial)
        if len(box) >= BOX_SIZE:
            out.append({"kind": "packed", "lot": f"BOX-{spec.prefix}-{_stamp(ts)}", "product": spec.code,
                        "serials": list(box), "equipment": self.robot_path, "ts_ms": ts})
            box.clear()

    # ------------------------------------------------------------------ orders and shifts

    def _start(self, factory: VirtualFactory, ts: int, out: list[dict[str, Any]]) -> None:
        self._started = True
        self._robot_count = factory.robot.count
        for c, m in zip(self.cncs, factory.cncs, strict=True):
            c.good, c.scrap = m.good, m.scrap
            for k in range(2):
                self._release(c, ts, out, k)
            out.append({"kind": "order_status", "number": c.orders[0][0], "status": "running", "ts_ms": ts})

    def _release(self, c: _Cnc, ts: int, out: list[dict[str, Any]], k: int = 0) -> None:
        qty = int(ORDER_SIZES[int(self._rng.integers(len(ORDER_SIZES)))])
        ahead = sum(q for _, q in c.orders) - c.good_in_order
        run_s = (ahead + qty) * c.cycle_s / PLANNED_OEE
        number = f"WO-{_stamp(ts)}-{c.index + 1}" + (f"-{k}" if k else "")
        c.orders.append((number, qty))
        out.append({"kind": "work_order", "number": number, "product": c.spec.code, "quantity": qty,
                    "equipment": c.path, "release_ms": ts, "due_ms": ts + int(run_s * 1000) + 3_600_000, "ts_ms": ts})

    def _next_order(self, c: _Cnc, ts: int, out: list[dict[str, Any]]) -> None:
        done, _ = c.orders.popleft()
        c.good_in_order = 0
        out.append({"kind": "order_status", "number": done, "status": "done", "ts_ms": ts})
        self._release(c, ts, out)
        out.append({"kind": "order_status", "number": c.orders[0][0], "status": "running", "ts_ms": ts})

    def _change_shift(self, shift: int, ts: int, out: list[dict[str, Any]]) -> None:
        self._shift = shift
        crew = CREWS[shift % len(CREWS)]
        for c in self.cncs:
            if c.operator is not None:
                out.append({"kind": "logoff", "equipment": c.path, "operator": c.operator, "ts_ms": ts})
            c.operator = crew[c.index % len(crew)]
            out.append({"kind": "logon", "equipment": c.path, "operator": c.operator, "ts_ms": ts})


def _shift_index(ts_ms: int) -> int:
    """How many shift starts lie between the epoch and ts (UTC): the crew rotation counts these."""
    day, ms = divmod(ts_ms, 86_400_000)
    hour = ms / 3_600_000
    within = sum(1 for h in SHIFT_STARTS_H if hour >= h) - 1  # -1: before the first start, yesterday's last
    return day * len(SHIFT_STARTS_H) + within


class ProductionExtension:
    """The line controller as a factory extension: publishes ``ProductionLine``'s events, one message per step
    with events (QoS 1, from its own MQTT client). ``sink`` gets each step's events too (tests, seeding)."""

    name = "production"

    def __init__(
        self, seed: int, cncs: Sequence[CncParams] | None = None, *, topic: str = DEFAULT_TOPIC,
        sink: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        from shopfloor.sim.factory import DEFAULT_CNCS  # the factory imports the extension protocol

        self.seed = seed
        self.cnc_params = tuple(cncs or DEFAULT_CNCS)
        self.topic = topic
        self.sink = sink
        self.line = ProductionLine(seed, len(self.cnc_params), [p.cycle_time_s for p in self.cnc_params])
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._last: mqtt.MQTTMessageInfo | None = None
        self.published = 0

    def extend_plant(self, plant: dict[str, Any]) -> None:
        plant["mes"] = mes_section(self.cnc_params)

    def on_step(self, factory: VirtualFactory) -> None:
        events = self.line.step(factory)
        if not events:
            return
        if self.sink is not None:
            self.sink(events)
        client = self._client
        if client is not None:  # paho queues QoS 1 messages while it reconnects
            self._last = client.publish(self.topic, orjson.dumps(events), qos=1)
            self.published += len(events)

    def start(self, broker: Broker) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"shopfloor-sim-line-controller-{self.seed}")
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        client.max_queued_messages_set(100_000)
        client.on_connect = lambda *_: self._connected.set()
        client.connect_async(broker.host, broker.port)
        client.loop_start()
        if not self._connected.wait(10.0):
            log.warning("line controller: no MQTT connection yet; events are queued until it connects")
        self._client = client

    def stop(self) -> None:
        client, self._client = self._client, None
        closing = self.line.close()
        if closing and self.sink is not None:
            self.sink(closing)
        if client is not None:
            if closing:
                self._last = client.publish(self.topic, orjson.dumps(closing), qos=1)
            if self._last is not None and self._connected.is_set():  # the last events out first
                with contextlib.suppress(RuntimeError, ValueError):
                    self._last.wait_for_publish(2.0)
            client.disconnect()
            client.loop_stop()


__all__ = ["PRODUCTS", "ProductionExtension", "ProductionLine", "mes_section"]
