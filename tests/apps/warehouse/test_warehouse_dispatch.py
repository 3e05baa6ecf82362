"""The fleet manager against the simulated vehicles, wired directly (no broker, fake clock): tasks are
delivered, every plan passes the solution checker, vehicles never meet, a stopped vehicle or a blocked cell
makes the fleet plan around it, and a low battery sends a vehicle to charge first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopfloor.apps.warehouse.config import WarehouseConfig
from shopfloor.apps.warehouse.dispatch import Dispatcher
from shopfloor.apps.warehouse.fleet.vda5050 import parse_state
from shopfloor.apps.warehouse.inventory import Inventory, TaskStatus, open_warehouse_db
from shopfloor.apps.warehouse.mapf import GridGraph, check_solution
from shopfloor.sim.agv import MANUFACTURER, SimAgv, warehouse_section

pytestmark = pytest.mark.timeout(600)  # the first plan compiles the solver on a cold numba cache (a minute or two)

DT = 0.1


class Harness:
    """Dispatcher + SimAgvs on one fake clock; messages are delivered at once, both ways."""

    def __init__(self, tmp_path: Path, section: dict[str, Any], batteries: dict[str, float] | None = None) -> None:
        self.config = WarehouseConfig.model_validate(section)
        self.now = 0.0
        self.inventory = Inventory(open_warehouse_db(tmp_path / "mes.sqlite"))
        self.inventory.sync(self.config)
        self.plans: list[tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.dispatcher = Dispatcher(self.config, self.inventory, self.send, clock=lambda: self.now,
                                     on_plan=self.checked)
        self.agvs = {v.serial: SimAgv(v.serial, float(v.home[0]), float(v.home[1]), self.config.map_id,
                                      speed_m_s=2.0, action_s=1.0, battery=(batteries or {}).get(v.serial, 90.0))
                     for v in self.config.vehicles}
        self.min_gap = math.inf

    def checked(self, graph: GridGraph, starts: np.ndarray, goals: np.ndarray, paths: np.ndarray,
                blocked: list[tuple[int, int]]) -> None:
        check_solution(graph, starts, goals, paths).raise_if_invalid()  # every plan the fleet makes
        cells = {graph.vertex(*c) for c in blocked}
        assert not cells & set(paths.ravel().tolist()), "a path enters a blocked cell"
        self.plans.append((starts, paths, blocked))

    def send(self, topic: str, message: dict[str, Any]) -> None:
        _, _, manufacturer, serial, kind = topic.split("/")
        assert manufacturer == MANUFACTURER
        self.sent.append((topic, message))
        agv = self.agvs[serial]
        payload = json.loads(json.dumps(message))  # what goes over the wire
        if kind == "order":
            agv.accept_order(payload)
        else:
            for action in payload["actions"]:
                agv.instant(action, self.now)

    def run(self, seconds: float, until: Any = None) -> None:
        for _ in range(int(seconds / DT)):
            self.now += DT
            for agv in self.agvs.values():
                agv.step(self.now, DT)  # and a state message every tick
                self.dispatcher.on_state(agv.serial, parse_state(json.dumps(agv.state(MANUFACTURER))))
            xs = [(a.x, a.y) for a in self.agvs.values()]
            for i in range(len(xs)):
                for j in range(i + 1, len(xs)):
                    self.min_gap = min(self.min_gap, math.dist(xs[i], xs[j]))
            self.dispatcher.tick()
            if until is not None and until():
                return
        if until is not None:
            raise AssertionError(f"not done within {seconds} s: {self.dispatcher.snapshot()}")

    def done(self, n: int) -> bool:
        return len(self.inventory.tasks((TaskStatus.DONE,))) >= n


@pytest.fixture
def section() -> dict[str, Any]:
    return warehouse_section()


def below_min(h: Harness, buffer: str) -> int:
    """Production takes one part's blank from a buffer at its minimum (3): the replenishment task (4, up to 6)."""
    h.inventory.consume(buffer, h.inventory.stock(location=buffer)[0]["material"], 1, "test")
    return h.inventory.replenish(buffer)[0]


def test_replenishment_tasks_are_delivered_by_collision_free_plans(tmp_path: Path, section: dict[str, Any]) -> None:
    h = Harness(tmp_path, section)
    for buffer in h.inventory.line_side_buffers():
        below_min(h, buffer)
    h.run(120, until=lambda: h.done(3))
    assert [h.inventory.quantity(b, m) for b, m in [("LS-CNC1", "BAR-C45"), ("LS-CNC2", "BAR-C45"),
                                                    ("LS-CNC3", "BAR-42CrMo4")]] == [6.0, 6.0, 6.0]
    assert not h.inventory.stock(location="AGV:agv1")
    assert len(h.plans) >= 3 and h.dispatcher.counts["plan_errors"] == 0
    # Lock-step release: never two on one cell; the closest approach is a vehicle turning in behind another
    # that leaves the cell at the same step: 1/sqrt(2) cell at half-step.
    assert h.min_gap >= 0.70
    kinds = {t.rsplit("/", 1)[1] for t, _ in h.sent}
    assert {"order", "instantActions"} <= kinds
    orders = [m for t, m in h.sent if t.endswith("/order")]
    assert all(m["nodes"][0]["sequenceId"] % 2 == 0 for m in orders)
    assert any(a["actionType"] == "pick" for m in orders for n in m["nodes"] for a in n["actions"])


def test_a_stopped_vehicle_is_planned_around_and_gives_its_task_back(tmp_path: Path,
                                                                      section: dict[str, Any]) -> None:
    h = Harness(tmp_path, section)
    task = below_min(h, "LS-CNC1")
    h.run(30, until=lambda: h.inventory.task(task).status is TaskStatus.ASSIGNED
          and h.agvs[h.inventory.task(task).vehicle or ""].driving)
    first = h.inventory.task(task).vehicle
    assert first is not None
    h.agvs[first].instant({"actionType": "startPause", "actionId": "p1"}, h.now)  # e-stop by a person, say
    plans_before = len(h.plans)
    h.run(60, until=lambda: h.inventory.task(task).status is TaskStatus.DONE)
    assert h.inventory.task(task).vehicle != first  # another vehicle took it over
    assert len(h.plans) > plans_before
    stopped_at = (round(h.agvs[first].x), round(h.agvs[first].y))
    graph = h.dispatcher.graph
    for starts, paths, _ in h.plans[plans_before:]:  # the stopped vehicle stands still in every later plan
        k = starts.tolist().index(graph.vertex(*stopped_at))
        assert (paths[:, k] == graph.vertex(*stopped_at)).all()
    assert h.agvs[first].paused and h.dispatcher.snapshot()["vehicles"][int(first[-1]) - 1]["state"] == "stopped"
    h.agvs[first].instant({"actionType": "stopPause", "actionId": "p2"}, h.now)
    h.run(30, until=lambda: h.dispatcher.snapshot()["vehicles"][int(first[-1]) - 1]["cell"] == list(
        h.config.vehicles[int(first[-1]) - 1].home))


def test_a_blocked_cell_is_never_entered(tmp_path: Path, section: dict[str, Any]) -> None:
    h = Harness(tmp_path, section)
    h.dispatcher.block([(15, 4), (15, 2), (16, 2)])
    task = below_min(h, "LS-CNC1")
    visited: set[tuple[int, int]] = set()
    for _ in range(1200):
        h.run(DT)
        visited |= {(round(a.x), round(a.y)) for a in h.agvs.values()}
        if h.inventory.task(task).status is TaskStatus.DONE:
            break
    assert h.inventory.task(task).status is TaskStatus.DONE
    assert not visited & {(15, 4), (15, 2), (16, 2)}


def test_a_low_battery_charges_before_the_trip(tmp_path: Path, section: dict[str, Any]) -> None:
    section["vehicles"] = section["vehicles"][:1]
    h = Harness(tmp_path, section, batteries={"agv1": 24.0})
    task = below_min(h, "LS-CNC1")
    h.run(0.3)  # 24 %: the trip (44 cells at 0.3 %) and the reserve (20 %) need about 34 %
    assert h.dispatcher.runs["agv1"].leg.kind == "charge" and h.dispatcher.runs["agv1"].leg.charge_to_pct > 33
    assert h.agvs["agv1"].charging
    h.run(120, until=lambda: h.inventory.task(task).status is TaskStatus.DONE)
    assert h.agvs["agv1"].battery > h.config.reserve_pct
    assert any(a["actionType"] == "stopCharging" for t, m in h.sent if t.endswith("instantActions")
               for a in m["actions"])
