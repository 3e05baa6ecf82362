"""The plant's planner: work orders become a checked plan; breakdowns, rush orders and closed orders change it,
operations already started stay where they are, and every plan it adopts passes the checker."""

from __future__ import annotations

import pytest

from shopfloor.apps.scheduling.config import SchedulingConfig
from shopfloor.apps.scheduling.model import ScheduledOperation
from shopfloor.apps.scheduling.plant import PlantPlanner, WorkOrder, reduce_problem
from tests.apps.scheduling.scheduling_testkit import assert_valid

EPOCH_MS = 1_700_000_000_000
CONFIG = {
    "machines": [
        {"id": "cnc1", "equipment": "site/area/line1/cell1/cnc1", "cycle_time_s": 48},
        {"id": "cnc2", "equipment": "site/area/line1/cell2/cnc2", "cycle_time_s": 60},
        {"id": "cnc3", "equipment": "site/area/line1/cell3/cnc3", "cycle_time_s": 75},
    ],
    "products": [
        {"product": "HOUSING", "steps": [{"name": "rough", "seconds_per_unit": {"cnc1": 48, "cnc2": 60}},
                                         {"name": "finish", "seconds_per_unit": {"cnc2": 48, "cnc3": 45}}]},
        {"product": "SHAFT", "steps": [{"name": "turn", "seconds_per_unit": {"cnc1": 34, "cnc3": 52}},
                                       {"name": "mill", "seconds_per_unit": {"cnc2": 30}}]},
    ],
    "improve_time_limit_s": 0.5,
}


def at(seconds: float) -> int:
    return EPOCH_MS + int(seconds * 1000)


def planner() -> PlantPlanner:
    return PlantPlanner(SchedulingConfig.model_validate(CONFIG), EPOCH_MS)


def orders(n: int, due_s: float = 7200) -> list[WorkOrder]:
    products = ["HOUSING", "SHAFT", "BRACKET"]  # BRACKET has no routing: one operation on any machine
    return [WorkOrder(f"WO-{i}", products[i % 3], 5 + i, at(due_s), 1.0, at(0)) for i in range(n)]


def assert_plan_valid(p: PlantPlanner) -> None:
    assert p.plan is not None
    assert_valid(p.plan.problem, p.plan.schedule)


def test_orders_become_a_checked_plan_over_the_eligible_machines() -> None:
    p = planner()
    result = p.add_orders(orders(6), at(0))
    assert result is not None and result.method == "dispatch"
    assert_plan_valid(p)
    assert p.plan is not None and p.plan.trigger == "orders"
    ops = p.plan.schedule.operations
    assert {o.job for o in ops} == {f"WO-{i}" for i in range(6)}
    housing = [o for o in ops if o.job == "WO-0"]
    assert [o.index for o in sorted(housing, key=lambda o: o.index)] == [0, 1]
    assert housing[0].machine in ("cnc1", "cnc2") and housing[1].machine in ("cnc2", "cnc3")
    rough = next(o for o in housing if o.index == 0)
    assert rough.end - rough.start == 5 * (48 if rough.machine == "cnc1" else 60)  # quantity x time per unit
    assert p.add_orders(orders(6), at(1)) is None  # the same orders again change nothing
    assert p.events[-1].trigger == "orders" and p.events[-1].valid


def test_a_replan_keeps_started_operations_and_plans_the_rest_after_now() -> None:
    p = planner()
    p.add_orders(orders(4), at(0))
    assert p.plan is not None
    before = {(o.job, o.index): o for o in p.plan.schedule.operations}
    now_s = 200
    p.add_orders([WorkOrder("WO-new", "SHAFT", 3, None, 1.0, at(now_s))], at(now_s))
    assert_plan_valid(p)
    assert p.plan is not None
    after = {(o.job, o.index): o for o in p.plan.schedule.operations}
    started = [k for k, o in before.items() if o.start < now_s]
    assert started
    for key in started:
        assert after[key] == before[key]
    assert all(o.start >= now_s for k, o in after.items() if k not in started)


def test_reduction_pins_running_operations_as_downtime() -> None:
    p = planner()
    p.add_orders(orders(3), at(0))
    assert p.plan is not None
    running = min(p.plan.schedule.operations, key=lambda o: o.start)
    now = running.start + 1
    reduced = reduce_problem(p.plan.problem, p.plan.schedule.operations, now)
    machine = next(m for m in reduced.problem.machines if m.id == running.machine)
    assert any(d.start == running.start and d.end == running.end for d in machine.downtime)
    assert running in reduced.pinned
    assert all(j.release >= now for j in reduced.problem.jobs)


def test_a_breakdown_moves_work_off_the_machine_and_keeps_started_operations() -> None:
    p = planner()
    p.add_orders(orders(8), at(0))
    assert p.plan is not None
    before = {(o.job, o.index): o for o in p.plan.schedule.operations}
    now_s = 300
    assert p.machine_down("cnc1", at(now_s), at(now_s))
    assert_plan_valid(p)
    event = p.events[-1]
    assert event.trigger == "machine_down" and event.valid and event.disruption is not None
    assert event.solve_ms > 0  # timed (under a second on an idle machine: the benchmark measures it)
    after = {(o.job, o.index): o for o in p.plan.schedule.operations}
    down_end = now_s + p.config.expected_repair_s
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            continue  # finished before now: archived for the chart
        if old.start < now_s and not (old.machine == "cnc1" and old.end > now_s):
            assert new == old  # started elsewhere: stays
        if new.machine == "cnc1" and new.start >= now_s:
            assert new.start >= down_end  # nothing planned on the broken machine while it is down
    interrupted = [k for k, o in before.items() if o.machine == "cnc1" and o.start < now_s < o.end]
    assert [f"{j}/{i}" for j, i in interrupted] == event.disruption["interrupted"]


def test_recovery_and_a_machine_still_down() -> None:
    p = planner()
    p.add_orders(orders(5), at(0))
    p.machine_down("cnc2", at(100), at(100))
    repair_end = 100 + p.config.expected_repair_s
    assert p.still_down(at(repair_end - 600)) == []
    assert p.still_down(at(repair_end - 30)) == ["cnc2"]  # still down when it should be back: plan more
    assert p.events[-1].trigger == "still_down"
    assert_plan_valid(p)
    assert p.machine_up("cnc2", at(repair_end + 10), at(repair_end + 10))
    assert p.events[-1].trigger == "machine_up"
    assert max(iv.end for iv in p.downtime["cnc2"]) == repair_end + 10
    assert_plan_valid(p)
    assert not p.machine_up("cnc2", at(repair_end + 20), at(repair_end + 20))  # it was not down


def test_a_rush_order_is_inserted_by_a_repair_and_goes_first() -> None:
    p = planner()
    p.add_orders(orders(6, due_s=20_000), at(0))
    now_s = 120
    rush = WorkOrder("WO-RUSH", "SHAFT", 2, at(now_s + 20_000), 10.0, at(now_s))  # due late, yet urgent
    assert p.is_rush(rush)
    assert p.rush_order(rush, at(now_s))
    assert_plan_valid(p)
    event = p.events[-1]
    assert event.trigger == "rush_order" and event.disruption is not None
    assert p.plan is not None
    rush_ops = sorted((o for o in p.plan.schedule.operations if o.job == "WO-RUSH"), key=lambda o: o.index)
    assert len(rush_ops) == 2 and rush_ops[0].start >= now_s
    for rush_op in rush_ops:  # at the front of the queue of the machine it went to
        waiting = [o for o in p.plan.schedule.operations if o.machine == rush_op.machine and o.job != "WO-RUSH"
                   and o.start >= now_s]
        assert all(rush_op.start <= o.start for o in waiting) or rush_op.index == 1
    assert p.plan.problem.jobs[-1].due == now_s  # planned as due at once
    assert not p.rush_order(rush, at(now_s + 1))  # known already


def test_closed_orders_leave_the_plan_and_finished_work_is_archived() -> None:
    p = planner()
    p.add_orders(orders(4), at(0))
    assert p.close_orders(["WO-3"], at(10))
    assert p.plan is not None and "WO-3" not in {o.job for o in p.plan.schedule.operations}
    assert_plan_valid(p)
    end = max(o.end for o in p.plan.schedule.operations)
    p.add_orders([WorkOrder("WO-late", "BRACKET", 1, None, 1.0, at(end + 5))], at(end + 5))
    assert p.plan is not None and {o.job for o in p.plan.schedule.operations} == {"WO-late"}
    assert {o.job for o in p.finished} >= {"WO-0", "WO-1", "WO-2"}
    assert_plan_valid(p)


def test_the_config_names_known_machines() -> None:
    bad = {**CONFIG, "products": [{"product": "X", "steps": [{"name": "a", "seconds_per_unit": {"cnc9": 5}}]}]}
    with pytest.raises(ValueError, match="unknown machines"):
        SchedulingConfig.model_validate(bad)


def test_every_operation_has_positive_duration() -> None:
    p = planner()
    p.add_orders([WorkOrder("WO-tiny", "BRACKET", 0.001, None, 1.0, at(0))], at(0))
    assert p.plan is not None
    op: ScheduledOperation = p.plan.schedule.operations[0]
    assert op.end - op.start >= 1
