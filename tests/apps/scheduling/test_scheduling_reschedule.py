"""Repairs after a breakdown or a rush order: started operations stay, the rest is valid and the disruption told."""

from __future__ import annotations

import pytest
from scheduling_testkit import assert_valid

from shopfloor.apps.scheduling import Job, Operation, Option, Problem, Schedule, ScheduledOperation, solve
from shopfloor.apps.scheduling.errors import SchedulingError
from shopfloor.apps.scheduling.generate import random_problem
from shopfloor.apps.scheduling.reschedule import MachineDown, RushOrder, reschedule

PROBLEM = random_problem(10, 5, seed=7, flexibility=2, due_dates=True)


@pytest.fixture(scope="module")
def plan() -> object:
    result = solve(PROBLEM, method="local_search", time_limit=0.3)
    assert_valid(PROBLEM, result.schedule)
    return result


def test_breakdown_keeps_started_work_and_clears_the_machine(plan: object) -> None:
    schedule = plan.schedule  # type: ignore[attr-defined]
    now = plan.kpis.makespan // 3  # type: ignore[attr-defined]
    event = MachineDown(machine="M1", start=now, end=now + 40)
    result = reschedule(PROBLEM, schedule, now, event, time_limit=1.0)
    assert_valid(result.problem, result.schedule)
    new = result.schedule.by_key()
    started = [op for op in schedule.operations if op.start < now and not (op.machine == "M1" and op.end > now)]
    kept = [op for op in started if new[(op.job, op.index)] == op]
    assert len(kept) == result.disruption.pinned
    assert len(kept) >= len([op for op in started if op.index == 0 and op.machine != "M1"])
    down = next(m for m in result.problem.machines if m.id == "M1").downtime
    assert (down[-1].start, down[-1].end) == (now, now + 40)  # so the checker above kept M1 clear of it
    kept_keys = {(k.job, k.index) for k in kept}
    assert all(op.start >= now for op in result.schedule.operations if (op.job, op.index) not in kept_keys)
    d = result.disruption
    assert d.replanned == sum(len(j.operations) for j in PROBLEM.jobs) - d.pinned
    assert d.makespan_before == plan.kpis.makespan  # type: ignore[attr-defined]
    assert d.makespan_after == result.kpis.makespan
    assert d.max_shift <= d.total_shift


def test_running_operation_hit_by_the_breakdown_is_redone(plan: object) -> None:
    schedule = plan.schedule  # type: ignore[attr-defined]
    running = next(op for op in schedule.operations if op.end - op.start >= 2 and op.start > 0)
    now = running.start + 1
    result = reschedule(PROBLEM, schedule, now, MachineDown(machine=running.machine, start=now - 1, end=now + 10),
                        time_limit=1.0)
    assert_valid(result.problem, result.schedule)
    assert f"{running.job}/{running.index}" in result.disruption.interrupted
    redone = result.schedule.by_key()[(running.job, running.index)]
    assert redone.start >= now


def test_rush_order_is_scheduled_and_started_work_stays(plan: object) -> None:
    schedule = plan.schedule  # type: ignore[attr-defined]
    now = plan.kpis.makespan // 2  # type: ignore[attr-defined]
    rush = Job(id="RUSH", due=now + 30, weight=20, operations=[
        Operation(options=[Option(machine="M0", duration=5), Option(machine="M2", duration=6)]),
        Operation(options=[Option(machine="M3", duration=4)]),
    ])
    result = reschedule(PROBLEM, schedule, now, RushOrder(job=rush), objective="weighted_tardiness", time_limit=1.0)
    assert_valid(result.problem, result.schedule)
    new = result.schedule.by_key()
    assert new[("RUSH", 0)].start >= now
    assert result.problem.jobs[-1].release == now
    for op in schedule.operations:
        if op.start < now:
            assert new[(op.job, op.index)] == op
    assert result.disruption.pinned == sum(1 for op in schedule.operations if op.start < now)


def test_events_that_do_not_fit_are_refused(plan: object) -> None:
    schedule = plan.schedule  # type: ignore[attr-defined]
    with pytest.raises(SchedulingError, match="unknown machine"):
        reschedule(PROBLEM, schedule, 5, MachineDown(machine="M99", start=5, end=9))
    with pytest.raises(SchedulingError, match="after its start"):
        reschedule(PROBLEM, schedule, 5, MachineDown(machine="M1", start=9, end=5))
    with pytest.raises(SchedulingError, match="already exists"):
        reschedule(PROBLEM, schedule, 5, RushOrder(job=PROBLEM.jobs[0]))
    bad = Job(id="X", operations=[Operation(options=[Option(machine="nowhere", duration=1)])])
    with pytest.raises(SchedulingError, match="does not fit"):
        reschedule(PROBLEM, schedule, 5, RushOrder(job=bad))


def test_breakdown_reported_late_replans_the_rest_of_the_job() -> None:
    """J1/0 ran into the breakdown (reported at 12, from 5): it is redone, so J1/1, started at 10 in the old plan,
    is replanned too, while J2/0 on the same machine, started at 11, stays."""
    problem = Problem.model_validate({
        "machines": [{"id": "A"}, {"id": "B"}, {"id": "C"}],
        "jobs": [
            {"id": "J1", "operations": [
                {"options": [{"machine": "A", "duration": 10}, {"machine": "C", "duration": 1}]},
                {"options": [{"machine": "B", "duration": 1}]},
            ]},
            {"id": "J2", "operations": [{"options": [{"machine": "B", "duration": 4}]}]},
        ],
    })
    plan = Schedule(operations=[
        ScheduledOperation(job="J1", index=0, machine="A", start=0, end=10),
        ScheduledOperation(job="J1", index=1, machine="B", start=10, end=11),
        ScheduledOperation(job="J2", index=0, machine="B", start=11, end=15),
    ])
    assert_valid(problem, plan)
    result = reschedule(problem, plan, 12, MachineDown(machine="A", start=5, end=20), time_limit=1.0)
    assert_valid(result.problem, result.schedule)
    new = result.schedule.by_key()
    assert result.disruption.interrupted == ["J1/0"]
    assert result.disruption.pinned == 1
    assert new[("J2", 0)] == plan.operations[2]
    assert new[("J1", 0)].machine == "C"  # waiting for A until 20 would cost more than the machine change
    assert new[("J1", 1)].start == 15
