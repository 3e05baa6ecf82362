"""The plant's scheduling service: plans the MES work orders on the line and replans when the plant changes.

Inputs: ``work_order`` and ``produced`` events of the MES over MQTT (the contract of docs/mes.md, topic
``scheduling.events_topic``), work orders entered through the API, and the machines' state tags from the
platform's bus (committed samples). A new order is planned at once by dispatching rules, then CP-SAT
improves the plan in a thread of its own and the better plan replaces it if nothing changed meanwhile.
A machine entering a down state, or a rush order, is repaired with ``reschedule`` (started operations
stay, disruption minimised and reported). Every plan change is logged with its trigger, solve time and
disruption. What the machines actually did (state segments, parts per work order) is kept beside the
plan for the dashboard's plan-against-actual chart.

Threads: paho's network thread only parses and queues; one worker thread owns the planner and applies
events in order; an improver thread runs CP-SAT on an immutable copy of the problem.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import paho.mqtt.client as mqtt

from shopfloor.apps.scheduling.config import SchedulingConfig
from shopfloor.apps.scheduling.errors import SchedulingError
from shopfloor.apps.scheduling.plant import Plan, PlantPlanner, WorkOrder, solve_reduced
from shopfloor.apps.scheduling.solve import SolveResult
from shopfloor.services import service_client

if TYPE_CHECKING:
    from shopfloor.core.bus import Subscription
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the worker looks at the machines' states when no event arrives
QUEUE_SIZE = 1000
STATE_SEGMENTS = 2000  # per machine
PRODUCED_KEYS = 2000  # (work order, machine) pairs
ACTUAL_HISTORY_S = 4 * 3600  # the actual shown from before the planner started


@dataclass(frozen=True, slots=True)
class _Orders:
    orders: list[WorkOrder]
    closed: list[str]


@dataclass(frozen=True, slots=True)
class _Tick:
    """No event within POLL_S: look at the machines' states anyway."""


@dataclass(frozen=True, slots=True)
class _Improved:
    version: int
    reduced: Any
    result: SolveResult | None
    error: str | None


class InvalidEvent(ValueError):
    """An MES event the planner cannot use (kept as a dead letter)."""


def parse_work_order(event: dict[str, Any], now_ms: int) -> WorkOrder:
    """A ``work_order`` event (number, product, quantity, optional due_ms and priority) as a WorkOrder."""
    number, product, quantity = event.get("number"), event.get("product"), event.get("quantity")
    if not isinstance(number, str) or not number:
        raise InvalidEvent("work_order: 'number' must be a non-empty string")
    if not isinstance(product, str) or not product:
        raise InvalidEvent(f"work_order {number}: 'product' must be a non-empty string")
    if isinstance(quantity, bool) or not isinstance(quantity, int | float) or not 0 < quantity < 1e6:
        raise InvalidEvent(f"work_order {number}: 'quantity' must be a number between 0 and 1e6")
    due = event.get("due_ms")
    if due is not None and (isinstance(due, bool) or not isinstance(due, int | float)):
        raise InvalidEvent(f"work_order {number}: 'due_ms' must be epoch milliseconds")
    release = event.get("release_ms")
    if release is not None and (isinstance(release, bool) or not isinstance(release, int | float)):
        raise InvalidEvent(f"work_order {number}: 'release_ms' must be epoch milliseconds")
    priority = event.get("priority", 1.0)
    if isinstance(priority, bool) or not isinstance(priority, int | float) or not 0 <= priority <= 1e3:
        raise InvalidEvent(f"work_order {number}: 'priority' must be a number between 0 and 1000")
    return WorkOrder(number, product, float(quantity), int(due) if due is not None else None, float(priority),
                     max(now_ms, int(release or 0)))


class Actual:
    """What the machines did: state segments per machine and parts per (work order, machine). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.states: dict[str, deque[list[int]]] = {}  # machine -> [start_ms, end_ms, state code]
        self.produced: OrderedDict[tuple[str, str], list[int]] = OrderedDict()  # -> [first_ms, last_ms, count]

    def state(self, machine: str, ts_ms: int, code: int) -> None:
        with self._lock:
            segs = self.states.setdefault(machine, deque(maxlen=STATE_SEGMENTS))
            if segs and segs[-1][2] == code and ts_ms >= segs[-1][0]:
                segs[-1][1] = max(segs[-1][1], ts_ms)
            else:
                if segs:
                    segs[-1][1] = max(segs[-1][1], ts_ms)
                segs.append([ts_ms, ts_ms, code])

    def part(self, work_order: str, machine: str, ts_ms: int) -> None:
        with self._lock:
            entry = self.produced.get((work_order, machine))
            if entry is None:
                self.produced[(work_order, machine)] = [ts_ms, ts_ms, 1]
                while len(self.produced) > PRODUCED_KEYS:
                    self.produced.popitem(last=False)
            else:
                entry[0], entry[1], entry[2] = min(entry[0], ts_ms), max(entry[1], ts_ms), entry[2] + 1

    def view(self, since_ms: int, now_ms: int) -> dict[str, Any]:
        """Segments and parts since since_ms; a machine's last state holds until now (states come on change)."""
        with self._lock:
            states = {m: [list(s) for s in segs if s[1] >= since_ms or s is segs[-1]]
                      for m, segs in self.states.items()}
        for segs in states.values():
            if segs:
                segs[-1][1] = max(segs[-1][1], now_ms)
        with self._lock:
            produced = [{"work_order": k[0], "machine": k[1], "first_ms": v[0], "last_ms": v[1], "count": v[2]}
                        for k, v in self.produced.items() if v[1] >= since_ms]
        return {"states": states, "produced": produced}

    def count(self, work_order: str) -> int:
        with self._lock:
            return sum(v[2] for k, v in self.produced.items() if k[0] == work_order)


class PlantScheduler:
    """The ``scheduling`` platform service (see the module docstring)."""

    name = "scheduling"

    def __init__(self, config: SchedulingConfig, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self._clock = clock
        self._platform: Platform | None = None
        self._planner: PlantPlanner | None = None
        self._lock = threading.Lock()  # guards the planner between the worker and the API's reads
        self._queue: queue.Queue[_Orders | _Improved | None] = queue.Queue(QUEUE_SIZE)
        self._sub: Subscription | None = None
        self._tag_machine: dict[int, str] = {}
        self._last_state: dict[str, int] = {}
        self._worker: threading.Thread | None = None
        self._improver: threading.Thread | None = None
        self._improved_version = 0
        self._improving = False
        self._client: mqtt.Client | None = None
        self._stopping = threading.Event()
        self.actual = Actual()
        self.machine_paths = {m.equipment: m.id for m in config.machines}
        self.connected = False
        self.received = 0
        self.rejected = 0
        self.dropped = 0
        self.improvements = 0
        self.last_error: str | None = None

    @property
    def improving(self) -> bool:
        """Whether a CP-SAT improvement runs or waits to be adopted (it may still replace the plan)."""
        return self._improving

    def now_ms(self) -> int:
        return self._clock() // 1_000_000

    # ------------------------------------------------------------------ lifecycle

    def start(self, platform: Platform) -> None:

        self._platform = platform
        self._planner = PlantPlanner(self.config, self.now_ms())
        tag_ids: set[int] = set()
        for m in self.config.machines:
            tag_id = platform.tag_index.id_of(f"{m.equipment}/state")  # UnknownTag: the config names no machine
            self._tag_machine[tag_id] = m.id
            tag_ids.add(tag_id)
        self._sub = platform.bus.subscribe(tag_ids, maxlen=10_000)
        self._load_history(platform)
        self._stopping.clear()
        self._worker = threading.Thread(target=self._run, name="scheduling", daemon=True)
        self._worker.start()
        client, host, port = service_client(platform, f"shopfloor-scheduling-{id(self):x}", max_reconnect_s=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._client = client

    def _load_history(self, platform: Platform) -> None:
        """The machines' states of the last hours from the historian: the actual before this start."""
        end = self._clock()
        for tag_id, machine in self._tag_machine.items():
            batch = platform.historian.raw(tag_id, end - int(ACTUAL_HISTORY_S * 1e9), end, limit=STATE_SEGMENTS * 4)
            for ts, value in zip(batch.ts.tolist(), batch.value.tolist(), strict=True):
                if value == value:  # NaN: no reading
                    self.actual.state(machine, ts // 1_000_000, int(value))

    def stop(self) -> None:
        self._stopping.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self._worker is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=5)
            self._worker.join(30)
            self._worker = None
        if self._improver is not None:
            self._improver.join(self.config.improve_time_limit_s + 30)
            self._improver = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    def health(self) -> dict[str, object]:
        planner = self._planner
        with self._lock:
            plan = planner.plan if planner else None
            events = len(planner.events) if planner else 0
            orders = len(planner.orders) if planner else 0
        return {"mqtt_connected": self.connected, "orders": orders, "plan_version": plan.version if plan else 0,
                "plan_changes": events, "improvements": self.improvements,
                "improving": self.improving, "events_received": self.received,
                "rejected": self.rejected, "dropped": self.dropped, "last_error": self.last_error}

    # ------------------------------------------------------------------ inputs

    def submit(self, order: WorkOrder) -> None:
        """Queue a work order (from the API); QueueFull when the planner is far behind."""
        self._queue.put_nowait(_Orders([order], []))

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            return
        self.connected = True
        client.subscribe(self.config.events_topic, qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        payload = bytes(msg.payload)
        try:
            self.handle_events(payload)
        except InvalidEvent as exc:
            self._reject(msg.topic, str(exc), payload)
        except Exception as exc:  # a bug must not stop the network thread: keep the message for inspection
            log.exception("scheduling: event handling failed")
            self._reject(msg.topic, f"internal error: {exc}", payload)

    def handle_events(self, payload: bytes) -> None:
        """An MES events message (one object or an array): work orders to plan, parts made to track.
        Raises InvalidEvent for a bad message; the valid events of an array are used."""
        try:
            data = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
        events = data if isinstance(data, list) else [data]
        orders: list[WorkOrder] = []
        closed: list[str] = []
        errors: list[str] = []
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
                errors.append("an event must be an object with a 'kind'")
                continue
            try:
                if event["kind"] == "work_order":
                    orders.append(parse_work_order(event, self.now_ms()))
                elif event["kind"] == "order_status" and event.get("status") in ("done", "cancelled"):
                    closed.append(str(event.get("number")))
                elif event["kind"] == "produced":
                    self._produced(event)
            except InvalidEvent as exc:
                errors.append(str(exc))
        if orders or closed:
            try:
                self._queue.put_nowait(_Orders(orders, closed))
            except queue.Full:
                self.dropped += len(orders) + len(closed)
                errors.append(f"the planner is behind: {len(orders) + len(closed)} order event(s) dropped")
        if errors:
            raise InvalidEvent("; ".join(errors[:5]))

    def _produced(self, event: dict[str, Any]) -> None:
        wo, equipment, ts = event.get("work_order"), event.get("equipment"), event.get("ts_ms")
        if not isinstance(wo, str) or not wo:
            return  # a part outside any order is no actual of the plan
        if not isinstance(equipment, str) or isinstance(ts, bool) or not isinstance(ts, int | float):
            raise InvalidEvent(f"produced for {wo}: 'equipment' and 'ts_ms' are needed")
        self.actual.part(wo, self.machine_paths.get(equipment, equipment), int(ts))

    def _reject(self, topic: str, reason: str, payload: bytes) -> None:
        self.rejected += 1
        self.last_error = reason
        if self._platform is not None:
            self._platform.dead_letters.add("scheduling", topic, reason, payload)

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        while True:
            item: _Orders | _Improved | _Tick | None
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                item = _Tick()
            if item is None:
                return
            try:
                if isinstance(item, _Orders):
                    self._orders(item.orders, item.closed)
                elif isinstance(item, _Improved):
                    self._adopt_improvement(item)
                self._machine_states()
                self._maybe_improve()
            except SchedulingError as exc:
                self.last_error = str(exc)
                log.warning("scheduling: %s", exc)
            except Exception as exc:  # keep planning: one bad event must not end the service
                self.last_error = f"internal error: {exc}"
                log.exception("scheduling worker")

    def _orders(self, orders: list[WorkOrder], closed: list[str]) -> None:
        planner = self._planner
        assert planner is not None
        now = self.now_ms()
        if closed:
            with self._lock:
                planner.close_orders(closed, now)
        normal = [o for o in orders if not planner.is_rush(o)]
        if normal:
            with self._lock:
                planner.add_orders(normal, now)
        for order in orders:
            if planner.is_rush(order):
                with self._lock:
                    planner.rush_order(order, self.now_ms())

    def _machine_states(self) -> None:
        planner, sub = self._planner, self._sub
        assert planner is not None and sub is not None
        batch = sub.drain()
        down = set(self.config.down_states)
        if len(batch):
            order = np.lexsort((batch.ts, batch.tag_id))
            for tag_id, ts, value in zip(batch.tag_id[order].tolist(), batch.ts[order].tolist(),
                                         batch.value[order].tolist(), strict=True):
                if value != value:  # NaN: no reading
                    continue
                machine, code, ts_ms = self._tag_machine[tag_id], int(value), ts // 1_000_000
                self.actual.state(machine, ts_ms, code)
                before = self._last_state.get(machine)
                self._last_state[machine] = code
                if code in down and (before is None or before not in down):
                    with self._lock:
                        planner.machine_down(machine, ts_ms, self.now_ms())
                elif code not in down and before is not None and before in down:
                    with self._lock:
                        planner.machine_up(machine, ts_ms, self.now_ms())
        if planner.down_since:
            with self._lock:
                planner.still_down(self.now_ms())

    # ------------------------------------------------------------------ background improvement

    def _maybe_improve(self) -> None:
        planner = self._planner
        assert planner is not None
        plan = planner.plan
        if (self.config.improve_time_limit_s <= 0 or plan is None or plan.version == self._improved_version
                or plan.trigger not in ("orders", "machine_up") or self._stopping.is_set()
                or self._improving):
            return
        with self._lock:
            candidate = planner.candidate(self.now_ms())
        self._improved_version = plan.version
        if candidate is None:
            return
        version, reduced = candidate
        self._improving = True
        self._improver = threading.Thread(target=self._improve, args=(version, reduced), name="scheduling-cpsat",
                                          daemon=True)
        self._improver.start()

    def _improve(self, version: int, reduced: Any) -> None:
        try:
            result = solve_reduced(reduced, self.config.objective, "cpsat", self.config.improve_time_limit_s,
                                   self.config.workers)
            item = _Improved(version, reduced, result, None)
        except Exception as exc:  # reported through the worker, like every planning failure
            log.exception("scheduling: CP-SAT improvement failed")
            item = _Improved(version, reduced, None, str(exc))
        try:
            self._queue.put(item, timeout=5)
        except queue.Full:
            self.dropped += 1
            self._improving = False

    def _adopt_improvement(self, item: _Improved) -> None:
        planner = self._planner
        assert planner is not None
        self._improving = False
        if item.error is not None:
            self.last_error = f"improvement failed: {item.error}"
            return
        if item.result is None:
            return
        with self._lock:
            if planner.improved(item.version, item.reduced, item.result, self.now_ms()):
                self.improvements += 1
                self._improved_version = planner.plan.version if planner.plan else 0

    # ------------------------------------------------------------------ reading

    def view(self) -> dict[str, Any]:
        """The plan, the orders, the plan's history and the actual, in epoch ms (the API's answer)."""
        planner = self._planner
        if planner is None:
            raise SchedulingError("the scheduling service is not started")
        now = self.now_ms()
        with self._lock:
            plan = planner.plan
            orders = list(planner.orders.values())
            events = [asdict(e) for e in planner.events]
            finished = list(planner.finished)
            downtime = {m: [(planner.ms(iv.start), planner.ms(iv.end)) for iv in ivs]
                        for m, ivs in planner.downtime.items()}
            down_since = {m: planner.ms(s) for m, s in planner.down_since.items()}
        ms = planner.ms
        product = {o.number: o for o in orders}
        ops = plan.schedule.operations if plan else []
        in_plan = {(o.job, o.index) for o in ops}
        rows = []
        for o in [*(f for f in finished if (f.job, f.index) not in in_plan), *ops]:
            start, end = ms(o.start), ms(o.end)
            order = product.get(o.job)
            rows.append({"job": o.job, "index": o.index, "machine": o.machine, "start_ms": start, "end_ms": end,
                         "product": order.product if order else None, "quantity": order.quantity if order else None,
                         "status": "done" if end <= now else "running" if start <= now else "planned"})
        return {
            "epoch_ms": planner.epoch_ms, "now_ms": now, "objective": self.config.objective,
            "rush_priority": self.config.rush_priority,
            "plan": _plan_header(plan, ms),
            "machines": [{"id": m.id, "equipment": m.equipment, "state": self._last_state.get(m.id),
                          "down_since_ms": down_since.get(m.id)} for m in self.config.machines],
            "operations": rows, "downtime": downtime,
            "orders": [self._order_row(o, plan, ms) for o in orders],
            "kpis": plant_kpis(plan, ms, now, [m.id for m in self.config.machines], product),
            "events": events,
            "actual": self.actual.view(now - ACTUAL_HISTORY_S * 1000, now),
        }

    def _order_row(self, order: WorkOrder, plan: Plan | None, ms: Callable[[int], int]) -> dict[str, Any]:
        end = None
        if plan is not None:
            ends = [o.end for o in plan.schedule.operations if o.job == order.number]
            end = ms(max(ends)) if ends else None
        late = max(0, (end - order.due_ms) // 1000) if end is not None and order.due_ms is not None else None
        return {"number": order.number, "product": order.product, "quantity": order.quantity,
                "due_ms": order.due_ms, "priority": order.priority, "received_ms": order.received_ms,
                "planned_end_ms": end, "late_s": late, "produced": self.actual.count(order.number)}


def _plan_header(plan: Plan | None, ms: Callable[[int], int]) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {"version": plan.version, "created_ms": plan.created_ms, "trigger": plan.trigger}


def plant_kpis(plan: Plan | None, ms: Callable[[int], int], now_ms: int, machines: list[str],
               orders: dict[str, WorkOrder]) -> dict[str, Any]:
    """From now on: when the plan ends, weighted tardiness and late orders against the orders' own due dates
    (a rush order is planned as due at once), and each machine's planned load."""
    if plan is None:
        return {"finish_ms": None, "remaining_s": 0, "weighted_tardiness_s": 0.0, "tardy_orders": 0,
                "utilisation": {m: 0.0 for m in machines}}
    end: dict[str, int] = {}
    busy = dict.fromkeys(machines, 0)
    for o in plan.schedule.operations:
        end[o.job] = max(end.get(o.job, 0), ms(o.end))
        s, e = max(ms(o.start), now_ms), ms(o.end)
        if e > s:
            busy[o.machine] = busy.get(o.machine, 0) + e - s
    finish = max(end.values(), default=now_ms)
    window = max(1, finish - now_ms)
    tardiness = 0.0
    tardy = 0
    for job in plan.problem.jobs:
        order = orders.get(job.id)
        if order is None or order.due_ms is None or job.id not in end:
            continue
        late = max(0, (end[job.id] - order.due_ms) // 1000)
        tardiness += order.priority * late
        tardy += late > 0
    return {"finish_ms": finish, "remaining_s": max(0, (finish - now_ms) // 1000),
            "weighted_tardiness_s": round(tardiness, 1), "tardy_orders": tardy,
            "utilisation": {m: round(min(1.0, b / window), 4) if finish > now_ms else 0.0 for m, b in busy.items()}}


__all__ = ["Actual", "InvalidEvent", "PlantScheduler", "parse_work_order", "plant_kpis"]
