"""The fleet manager: transport tasks to vehicles, collision-free plans, VDA 5050 orders released step by step.

One joint plan covers every vehicle (``mapf.replan``: LaCAM + LNS, stopped vehicles and blocked cells
as obstacles). The plan is executed in lock step: at step ``s`` every vehicle stands on its cell of row
``s``; the manager releases the next cell of each vehicle that moves (a VDA 5050 order update: the
last released node again, an edge, the new node) and advances to ``s + 1`` when every one of them has
reported that node (``lastNodeSequenceId``). No vehicle is ever released onto a cell the plan gives
someone else at that step, so vehicles with their own timing cannot collide. At a step boundary the
manager also handles what happened meanwhile (a load picked or dropped, a charge finished, a vehicle
stopped, went offline or came back, a new task) and, if anything changed a goal or an obstacle, plans
again from where everyone stands.

A task's legs: optionally to the vehicle's own charger (when the battery would not last the trip and
the way back to a charger: the Hungarian assignment decides this), then to the pickup (node action
``pick``), then to the drop-off (``drop``). Stock moves when the vehicle reports the action FINISHED:
pick moves the lot from the pickup onto the vehicle, drop from the vehicle to the destination. An idle
vehicle drives home and charges there when below ``IDLE_CHARGE_BELOW_PCT``.

Pure logic over a ``send(topic, message)`` callback and a clock: the service wires it to MQTT, the
tests drive it directly or through a broker.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.config import VehicleConfig, WarehouseConfig
from shopfloor.apps.warehouse.fleet.assignment import assign_tasks
from shopfloor.apps.warehouse.fleet.vda5050 import (
    Action,
    ActionParameter,
    BlockingType,
    Edge,
    Node,
    NodePosition,
    Order,
    State,
    apply_state,
    now_iso,
    topic,
)
from shopfloor.apps.warehouse.fleet.vehicles import BatteryModel, TransportTask, Vehicle, VehicleState
from shopfloor.apps.warehouse.inventory.models import TaskStatus
from shopfloor.apps.warehouse.inventory.stock import Inventory, StockError, TaskView
from shopfloor.apps.warehouse.mapf.grid import GridGraph
from shopfloor.apps.warehouse.mapf.replan import replan
from shopfloor.apps.warehouse.mapf.solver import MapfError

log = logging.getLogger(__name__)

IDLE_CHARGE_BELOW_PCT = 80.0
STEP_TIMEOUT_FACTOR = 8.0  # a vehicle that has not reached its released cell after 8 cell-times is stuck
OFFLINE_AFTER_S = 30.0  # no state for this long: offline (an obstacle where it was last seen)
Sender = Callable[[str, dict[str, Any]], None]
PlanHook = Callable[[GridGraph, NDArray[np.int32], NDArray[np.int32], NDArray[np.int32], list[tuple[int, int]]], None]


def grid_of(config: WarehouseConfig) -> GridGraph:
    """The warehouse map as a grid graph (``.`` free)."""
    free = np.array([[ch == "." for ch in row] for row in config.map], dtype=np.bool_)
    return GridGraph(free, name=config.map_id)


@dataclass
class Leg:
    """One drive of a task (or home): to ``cell``, then ``kind``'s action there."""

    kind: str  # "charge" | "pick" | "drop" | "home"
    cell: int
    task_id: int | None = None
    charge_to_pct: float = 0.0


@dataclass
class VehicleRun:
    """The manager's view of one vehicle and of the order it is driving."""

    cfg: VehicleConfig
    home: int
    vehicle: Vehicle | None = None  # None until its first state message
    x: float = 0.0
    y: float = 0.0
    online: bool = False
    last_seen: float = 0.0
    charging: bool = False
    driving: bool = False
    paused: bool = False
    state_order_id: str = ""
    state_last_seq: int = -1
    action_status: dict[str, str] = field(default_factory=dict)
    task: TaskView | None = None
    legs: list[Leg] = field(default_factory=list)
    order_id: str = ""
    order_count: int = 0
    update_id: int = 0
    last_node: str = ""
    last_seq: int = 0
    action_id: str | None = None
    charge_sent: bool = False
    stuck: bool = False
    header: int = 0

    @property
    def serial(self) -> str:
        return self.cfg.serial

    @property
    def leg(self) -> Leg:
        return self.legs[0] if self.legs else Leg("home", self.home)

    @property
    def halted(self) -> bool:
        """Not able to drive: an obstacle for everyone else."""
        v = self.vehicle
        return (v is None or not self.online or self.stuck
                or v.state in (VehicleState.STOPPED, VehicleState.ERROR))


class Dispatcher:
    """Turns open transport tasks into vehicle trips and drives the vehicles (see the module docstring)."""

    def __init__(self, config: WarehouseConfig, inventory: Inventory, send: Sender, *,
                 clock: Callable[[], float] = time.monotonic, on_plan: PlanHook | None = None,
                 plan_time_limit_s: float = 5.0, refine_s: float = 0.2) -> None:
        self.config = config
        self.graph = grid_of(config)
        self.inventory = inventory
        self.send = send
        self.clock = clock
        self.on_plan = on_plan
        self.plan_time_limit_s = plan_time_limit_s
        self.refine_s = refine_s
        self.battery = BatteryModel(use_pct_per_cell=config.battery_use_pct_per_cell,
                                    charge_pct_per_s=config.charge_pct_per_s, reserve_pct=config.reserve_pct)
        self.runs = {v.serial: VehicleRun(cfg=v, home=self.graph.vertex(*v.home)) for v in config.vehicles}
        self.blocked: set[tuple[int, int]] = set()
        self.paths: NDArray[np.int32] | None = None
        self.plan_ids: list[str] = []
        self.plan_halted: set[str] = set()  # vehicles that were obstacles (not driven) in the current plan
        self.step = 0
        self.pending: dict[str, int] = {}  # serial -> sequence id of the node it must reach to end the step
        self.step_started = 0.0
        self.replan_needed = True
        self.next_task_poll = 0.0
        self.counts = {"plans": 0, "plan_errors": 0, "orders": 0, "order_updates": 0, "tasks_assigned": 0,
                       "tasks_done": 0, "tasks_failed": 0, "steps": 0, "stuck": 0}
        self.last_error: str | None = None

    # ------------------------------------------------------------------ input

    def on_state(self, serial: str, state: State) -> None:
        """A vehicle's VDA 5050 state (already parsed); KeyError for a vehicle not in the config."""
        run = self.runs[serial]
        was_halted = run.halted
        if run.vehicle is None:
            run.vehicle = Vehicle(vehicle_id=serial, position=self.graph.vertex(*self._cell_of(state)),
                                  speed=self.config.speed_cells_per_s)
        apply_state(run.vehicle, state, self.graph, self.config.cell_size_m)
        if state.agvPosition is not None:
            run.x, run.y = state.agvPosition.x, state.agvPosition.y
        run.online = True
        run.last_seen = self.clock()
        run.charging = state.batteryState.charging
        run.driving = state.driving
        run.paused = state.paused
        run.state_order_id = state.orderId
        run.state_last_seq = state.lastNodeSequenceId
        for a in state.actionStates:
            run.action_status[a.actionId] = a.actionStatus
        if run.stuck and state.orderId == run.order_id and state.lastNodeSequenceId >= run.last_seq:
            run.stuck = False  # it made it after all: it stands on its last released node
        if serial in self.pending and state.orderId == run.order_id \
                and state.lastNodeSequenceId >= self.pending[serial]:
            del self.pending[serial]
        if run.halted != was_halted:
            self.replan_needed = True

    def on_connection(self, serial: str, online: bool) -> None:
        run = self.runs[serial]
        if run.online != online:
            run.online = online
            self.replan_needed = True

    def block(self, cells: Sequence[tuple[int, int]]) -> None:
        """Cells closed to traffic (an obstacle on the floor); plans avoid them from the next step on."""
        for x, y in cells:
            self.graph.vertex(int(x), int(y))  # GridError for a cell that is not free on the map
        self.blocked = {(int(x), int(y)) for x, y in cells}
        self.replan_needed = True

    def task_added(self) -> None:
        """New open tasks: look for them at the next tick."""
        self.next_task_poll = 0.0

    # ------------------------------------------------------------------ the loop

    def tick(self) -> None:
        """Advance: end the step if everyone arrived, handle events, assign, plan, release the next cells."""
        now = self.clock()
        for run in self.runs.values():
            if run.online and run.vehicle is not None and now - run.last_seen > OFFLINE_AFTER_S:
                run.online = False
                self.replan_needed = True
        if self.pending:
            timeout = STEP_TIMEOUT_FACTOR / self.config.speed_cells_per_s
            if now - self.step_started < timeout:
                return
            for serial in list(self.pending):  # did not arrive in time: stuck, an obstacle from here on
                self.runs[serial].stuck = True
                self.counts["stuck"] += 1
                log.warning("vehicle %s did not reach its released node within %.0f s", serial, timeout)
            self._stuck_recover()
            self.pending.clear()
            self.replan_needed = True
        if self.paths is not None and self.step < self.paths.shape[0] - 1:
            self.step += 1
            self.counts["steps"] += 1
        self._events()
        if now >= self.next_task_poll:
            self.next_task_poll = now + 1.0
            self._assign()
        if self.replan_needed:
            self._plan()
        self._release()

    # ------------------------------------------------------------------ step boundary work

    def _position(self, run: VehicleRun) -> int:
        if self.paths is not None and run.serial in self.plan_ids and not run.stuck \
                and run.serial not in self.plan_halted:
            return int(self.paths[self.step, self.plan_ids.index(run.serial)])
        assert run.vehicle is not None
        return run.vehicle.position

    def _at_goal(self, run: VehicleRun) -> bool:
        if run.vehicle is None or self.paths is None or run.serial not in self.plan_ids:
            return False
        col = self.paths[self.step:, self.plan_ids.index(run.serial)]
        return bool((col == run.leg.cell).all())

    def _events(self) -> None:
        for run in self.runs.values():
            if run.vehicle is None or run.halted:
                continue
            leg = run.leg
            if not self._at_goal(run):
                continue
            if leg.kind in ("pick", "drop") and run.action_id is None:  # was on the spot already: act now
                run.action_id = f"{run.order_id.split('|')[0]}-{leg.kind}"
                self._instant(run, leg.kind, run.action_id, self._load_params(run))
            elif leg.kind in ("pick", "drop") and run.action_id is not None:
                status = run.action_status.get(run.action_id)
                if status == "FINISHED":
                    self._action_done(run, leg)
                elif status == "FAILED":
                    self._task_failed(run, f"{run.serial}: the {leg.kind} action failed")
            elif leg.kind == "charge":
                if not run.charge_sent:
                    self._instant(run, "startCharging")
                    run.charge_sent = True
                elif run.vehicle.battery_pct >= leg.charge_to_pct:
                    self._instant(run, "stopCharging")
                    run.charge_sent = False
                    run.legs.pop(0)
                    self.replan_needed = True
            elif leg.kind == "home" and not run.charging and not run.charge_sent \
                    and run.vehicle.battery_pct < IDLE_CHARGE_BELOW_PCT:
                self._instant(run, "startCharging")
                run.charge_sent = True

    def _action_done(self, run: VehicleRun, leg: Leg) -> None:
        assert leg.task_id is not None
        try:
            if leg.kind == "pick":
                self.inventory.pick(leg.task_id)
            else:
                self.inventory.drop(leg.task_id)
                self.counts["tasks_done"] += 1
        except StockError as exc:
            self._task_failed(run, str(exc))
            return
        run.action_id = None
        run.legs.pop(0)
        if not run.legs:
            run.task = None
        self.replan_needed = True

    def _task_failed(self, run: VehicleRun, error: str) -> None:
        if run.task is not None:
            with contextlib.suppress(StockError):  # already failed or done meanwhile
                self.inventory.fail(run.task.id, error)
        self.counts["tasks_failed"] += 1
        self.last_error = error
        log.warning("transport task failed: %s", error)
        run.task, run.legs, run.action_id = None, [], None
        self.replan_needed = True

    def _stuck_recover(self) -> None:
        """Halted vehicles that have not picked yet give their task back; the load of one that picked stays on it."""
        for run in self.runs.values():
            if run.halted and run.task is not None and run.legs and run.legs[0].kind in ("charge", "pick"):
                with contextlib.suppress(StockError):
                    self.inventory.unassign(run.task.id)
                run.task, run.legs, run.action_id = None, [], None

    def _assign(self) -> None:
        free = [r for r in self.runs.values() if r.task is None and not r.halted and r.vehicle is not None
                and r.vehicle.payload is None]
        if not free:
            return
        open_tasks = self.inventory.tasks((TaskStatus.OPEN,))
        if not open_tasks:
            return
        by_id = {t.id: t for t in open_tasks}
        vehicles = []
        for r in free:
            assert r.vehicle is not None
            vehicles.append(Vehicle(vehicle_id=r.serial, position=self._position(r), battery_pct=r.vehicle.battery_pct,
                                    speed=self.config.speed_cells_per_s))
        tasks = [TransportTask(task_id=str(t.id), pickup=self.graph.vertex(*t.from_cell),
                               dropoff=self.graph.vertex(*t.to_cell), load_id=t.lot,
                               priority=1 if t.order and t.order.startswith("REP-") else 0) for t in open_tasks]
        chargers = [r.home for r in self.runs.values()]
        plan = assign_tasks(self.graph, vehicles, tasks, chargers, self.battery)
        for trip in plan.trips:
            run = self.runs[trip.vehicle_id]
            task = by_id[int(trip.task_id)]
            try:
                self.inventory.assign(task.id, run.serial)
            except StockError:
                continue  # taken meanwhile (another process); looked at again next poll
            pickup, dropoff = self.graph.vertex(*task.from_cell), self.graph.vertex(*task.to_cell)
            legs = [Leg("pick", pickup, task.id), Leg("drop", dropoff, task.id)]
            if trip.charger is not None:  # charge at its own charger, enough for the trip and the way home
                d = self.graph.distances_from(run.home)
                cells = int(d[pickup]) + int(self.graph.distances_from(pickup)[dropoff]) + int(d[dropoff])
                target = min(100.0, self.battery.reserve_pct + cells * self.battery.use_pct_per_cell + 1.0)
                legs.insert(0, Leg("charge", run.home, task.id, target))
            elif run.charging or run.charge_sent:
                self._instant(run, "stopCharging")
                run.charge_sent = False
            run.task, run.legs = task, legs
            self.counts["tasks_assigned"] += 1
            self.replan_needed = True

    def _goals(self, ids: list[str], positions: NDArray[np.int32], halted: set[int]) -> NDArray[np.int32]:
        """Each vehicle's leg target; where two want one cell, or a target is where a waiting vehicle stands,
        the later one (tasks before homes, then config order) waits where it is."""
        wanted = np.array([self.runs[s].leg.cell for s in ids], dtype=np.int32)
        order = sorted(range(len(ids)), key=lambda i: (self.runs[ids[i]].task is None, i))
        waiting = set(halted)
        while True:
            goals = np.where([i in waiting for i in range(len(ids))], positions, wanted).astype(np.int32)
            taken: dict[int, int] = {}
            conflict = None
            for i in order:
                g = int(goals[i])
                if g in taken:
                    j = taken[g]
                    conflict = i if i not in waiting else j  # the one still moving gives way
                    break
                taken[g] = i
            if conflict is None:
                return goals
            waiting.add(conflict)

    def _plan(self) -> None:
        ids = [s for s, r in self.runs.items() if r.vehicle is not None]
        self.replan_needed = False
        if not ids:
            return
        positions = np.array([self._position(self.runs[s]) for s in ids], dtype=np.int32)
        halted = {i for i, s in enumerate(ids) if self.runs[s].halted}
        self._stuck_recover()
        if len(halted) == len(ids):
            self._set_plan(positions[None, :].copy(), ids, halted)
            return
        goals = self._goals(ids, positions, halted)
        blocked = [c for c in self.blocked if self.graph.vertex(*c) not in
                   {int(positions[i]) for i in range(len(ids)) if i not in halted}]
        try:
            result = replan(self.graph, positions, goals, stopped=sorted(halted), blocked_cells=blocked,
                            time_limit_s=self.plan_time_limit_s, refine_s=self.refine_s)
        except MapfError as exc:
            self.counts["plan_errors"] += 1
            self.last_error = f"path planning: {exc}"
            log.warning("path planning failed: %s", exc)
            self._set_plan(positions[None, :].copy(), ids, halted)
            self.replan_needed = True
            return
        self.counts["plans"] += 1
        if self.on_plan is not None:
            self.on_plan(self.graph, positions, result.goals, result.paths, blocked)
        self._set_plan(result.paths, ids, halted)
        for i, serial in enumerate(ids):  # a vehicle whose target changed starts a new order where it stands
            run = self.runs[serial]
            if i in halted:
                continue
            key = f"{run.leg.kind}:{run.leg.cell}:{run.leg.task_id}"
            if not run.order_id or run.order_id.split("|")[-1] != key:
                self._new_order(run, int(positions[i]), key)

    def _set_plan(self, paths: NDArray[np.int32], ids: list[str], halted: set[int]) -> None:
        self.paths, self.plan_ids, self.step = paths, ids, 0
        self.plan_halted = {ids[i] for i in halted}

    def _release(self) -> None:
        """Release the next cell to every vehicle that moves at this step; skip steps where nobody moves."""
        if self.paths is None:
            return
        while self.step < self.paths.shape[0] - 1:
            nxt = self.step + 1
            for i, serial in enumerate(self.plan_ids):
                run = self.runs[serial]
                a, b = int(self.paths[self.step, i]), int(self.paths[nxt, i])
                if a == b or run.halted:
                    continue
                rest = self.paths[nxt:, i]
                final = bool((rest == run.leg.cell).all()) and run.leg.kind in ("pick", "drop")
                self._extend_order(run, a, b, final)
                self.pending[serial] = run.last_seq
            if self.pending:
                self.step_started = self.clock()
                return
            self.step = nxt  # nobody moves at this step: go on

    # ------------------------------------------------------------------ VDA 5050 output

    def _node(self, v: int, seq: int, actions: list[Action] | None = None) -> Node:
        x, y = self.graph.xy(v)
        cs = self.config.cell_size_m
        return Node(nodeId=f"c{x}_{y}", sequenceId=seq, released=True, actions=actions or [],
                    nodePosition=NodePosition(x=x * cs, y=y * cs, mapId=self.config.map_id))

    def _header(self, run: VehicleRun) -> dict[str, Any]:
        run.header += 1
        return {"headerId": run.header, "timestamp": now_iso(), "manufacturer": run.cfg.manufacturer,
                "serialNumber": run.serial}

    def _publish(self, run: VehicleRun, kind: str, message: dict[str, Any]) -> None:
        self.send(topic(run.cfg.manufacturer, run.serial, kind, self.config.interface), message)

    def _new_order(self, run: VehicleRun, at: int, key: str) -> None:
        run.order_count += 1
        run.order_id = f"{run.serial}-{run.order_count}|{key}"
        run.update_id = 0
        run.last_seq = 0
        node = self._node(at, 0)
        run.last_node = node.nodeId
        run.action_id = None
        order = Order(orderId=run.order_id, orderUpdateId=0, nodes=[node], edges=[], **self._header(run))
        self._publish(run, "order", order.model_dump(mode="json", exclude_none=True))
        self.counts["orders"] += 1

    def _extend_order(self, run: VehicleRun, a: int, b: int, final: bool) -> None:
        run.update_id += 1
        start = self._node(a, run.last_seq)
        actions: list[Action] = []
        if final:
            leg = run.leg
            run.action_id = f"{run.order_id.split('|')[0]}-{leg.kind}"
            actions = [Action(actionType=leg.kind, actionId=run.action_id, actionParameters=self._load_params(run))]
        end = self._node(b, run.last_seq + 2, actions)
        edge = Edge(edgeId=f"{start.nodeId}-{end.nodeId}", sequenceId=run.last_seq + 1, released=True,
                    startNodeId=start.nodeId, endNodeId=end.nodeId, maxSpeed=self.config.speed_cells_per_s)
        run.last_seq += 2
        run.last_node = end.nodeId
        order = Order(orderId=run.order_id, orderUpdateId=run.update_id, nodes=[start, end], edges=[edge],
                      **self._header(run))
        self._publish(run, "order", order.model_dump(mode="json", exclude_none=True))
        self.counts["order_updates"] += 1

    @staticmethod
    def _load_params(run: VehicleRun) -> list[ActionParameter]:
        """What a pick or drop handles: the lot (VDA 5050 loadId), its quantity and the task."""
        t = run.task
        if t is None:
            return []
        return [ActionParameter(key="loadId", value=t.lot), ActionParameter(key="quantity", value=t.quantity),
                ActionParameter(key="taskId", value=str(t.id))]

    def _instant(self, run: VehicleRun, action_type: str, action_id: str | None = None,
                 params: list[ActionParameter] | None = None) -> None:
        action = Action(actionType=action_type, actionId=action_id or f"{run.serial}-{action_type}-{run.header + 1}",
                        blockingType=BlockingType.HARD if params else BlockingType.NONE,
                        actionParameters=params or [])
        self._publish(run, "instantActions",
                      {**self._header(run), "version": "2.0.0", "actions": [action.model_dump(mode="json")]})

    def _cell_of(self, state: State) -> tuple[int, int]:
        if state.agvPosition is None:
            raise ValueError("a vehicle's first state must carry agvPosition")
        cs = self.config.cell_size_m
        return round(state.agvPosition.x / cs), round(state.agvPosition.y / cs)

    # ------------------------------------------------------------------ views

    def _shown_state(self, run: VehicleRun) -> str:
        """The vehicle's state; "moving" also between two released cells, where a lock-step vehicle waits briefly."""
        v = run.vehicle
        if v is None:
            return "unknown"
        if v.state is VehicleState.IDLE and run.serial in self.pending:
            return VehicleState.MOVING.value
        return v.state.value

    def snapshot(self) -> dict[str, Any]:
        """Vehicles with their positions, tasks and remaining paths, for the API and the dashboard."""
        vehicles = []
        for serial, run in self.runs.items():
            path: list[list[int]] = []
            if self.paths is not None and serial in self.plan_ids and run.vehicle is not None:
                col = self.paths[self.step:, self.plan_ids.index(serial)]
                cells = [self.graph.xy(int(v)) for v in col]
                path = [list(c) for k, c in enumerate(cells) if k == 0 or c != cells[k - 1]]
            v = run.vehicle
            vehicles.append({
                "serial": serial, "manufacturer": run.cfg.manufacturer, "online": run.online,
                "x": run.x / self.config.cell_size_m, "y": run.y / self.config.cell_size_m,
                "cell": list(self.graph.xy(v.position)) if v else None,
                "battery": v.battery_pct if v else None, "state": self._shown_state(run),
                "charging": run.charging, "payload": v.payload if v else None, "stuck": run.stuck,
                "task": run.task.id if run.task else None, "leg": run.leg.kind if v else None,
                "goal": list(self.graph.xy(run.leg.cell)), "path": path, "home": list(run.cfg.home),
            })
        return {"vehicles": vehicles, "step": self.step, "blocked": sorted([list(c) for c in self.blocked]),
                "counts": dict(self.counts), "last_error": self.last_error}
