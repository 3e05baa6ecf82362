"""The plant's planner: work orders in, a flexible job-shop plan over the line's machines out, kept up to date.

Pure planning, no threads: ``PlantPlanner`` turns work orders into jobs (routings from the ``scheduling:``
config, processing time = quantity x time per unit on each eligible machine), plans them, and repairs the
plan when a machine goes down or a rush order arrives. Times inside a problem are whole seconds since the
planner's epoch; everything it hands out is in epoch milliseconds. The service (service.py) feeds it
events on one thread and runs CP-SAT improvements beside it.

A replan keeps what has started: an operation planned to start before now stays where it is, and the
rest of its job is planned after it. It does so by reduction: the started operations become downtime of
their machines, the jobs keep only their remaining operations (released at now, or at the end of their
last started one), the reduced problem is solved from scratch and the started operations are merged back.
The merged schedule is checked against the whole problem.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from shopfloor.apps.scheduling.check import check_schedule
from shopfloor.apps.scheduling.config import SchedulingConfig
from shopfloor.apps.scheduling.errors import SchedulingError
from shopfloor.apps.scheduling.model import Interval, Job, Machine, Operation, Option, Problem, Schedule
from shopfloor.apps.scheduling.model import ScheduledOperation as Op
from shopfloor.apps.scheduling.reschedule import MachineDown, RushOrder, reschedule
from shopfloor.apps.scheduling.solve import Objective, SolveResult, solve

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """An order to plan, as the MES announces it (``work_order`` event) or an operator enters it."""

    number: str
    product: str
    quantity: float
    due_ms: int | None = None
    priority: float = 1.0
    received_ms: int = 0


Trigger = Literal["orders", "machine_down", "still_down", "machine_up", "rush_order", "improved"]


@dataclass(frozen=True, slots=True)
class PlanEvent:
    """One change of the plan: when, why, what it cost to compute and how much it moved."""

    version: int
    ts_ms: int
    trigger: Trigger
    detail: str
    method: str
    solve_ms: float
    valid: bool
    disruption: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """One version of the plan: the problem it solves and the schedule, both in seconds since the epoch."""

    version: int
    problem: Problem
    schedule: Schedule
    created_ms: int
    trigger: Trigger


@dataclass
class _Reduced:
    problem: Problem
    offset: dict[str, int]  # job -> index of its first remaining operation
    pinned: list[Op]


class PlantPlanner:
    """Work orders and machine events in, a checked plan out (single-threaded; see the module docstring)."""

    def __init__(self, config: SchedulingConfig, epoch_ms: int) -> None:
        self.config = config
        self.epoch_ms = epoch_ms
        self.machines = {m.id: m for m in config.machines}
        self.routings = {r.product: r for r in config.products}
        self.orders: dict[str, WorkOrder] = {}
        self.plan: Plan | None = None
        self.downtime: dict[str, list[Interval]] = {m: [] for m in self.machines}
        self.down_since: dict[str, int] = {}  # machine -> when it went down (s), while it is down
        self.finished: deque[Op] = deque(maxlen=config.history * 5)  # operations dropped from the problem
        self.events: deque[PlanEvent] = deque(maxlen=config.history)
        self.done: set[str] = set()  # orders whose operations all ended in the plan
        self._version = 0

    # ---------------------------------------------------------------- time

    def seconds(self, ts_ms: int) -> int:
        """Epoch milliseconds as whole seconds of the planner's clock (never negative)."""
        return max(0, (ts_ms - self.epoch_ms) // 1000)

    def ms(self, seconds: int) -> int:
        return self.epoch_ms + seconds * 1000

    # ---------------------------------------------------------------- orders -> jobs

    def job_of(self, order: WorkOrder, release: int) -> Job:
        """The order's job: its product's routing, durations = quantity x time per unit (whole seconds). A rush
        order is due at its release, so that its priority weighs every second until it is done."""
        routing = self.routings.get(order.product)
        if routing is not None:
            steps = [step.seconds_per_unit for step in routing.steps]
        else:
            steps = [{m.id: m.cycle_time_s for m in self.machines.values()}]
        operations = [
            Operation(options=[Option(machine=m, duration=max(1, math.ceil(order.quantity * s)))
                               for m, s in step.items()])
            for step in steps
        ]
        due = self.seconds(order.due_ms) if order.due_ms is not None else None
        if self.is_rush(order):  # as soon as possible: every second late weighs its priority
            due = release
        return Job(id=order.number, operations=operations, release=release, due=due, weight=order.priority)

    def is_rush(self, order: WorkOrder) -> bool:
        return order.priority >= self.config.rush_priority

    # ---------------------------------------------------------------- plan changes

    def add_orders(self, orders: list[WorkOrder], now_ms: int) -> SolveResult | None:
        """New (not rush) orders: replan everything not started, at once by dispatching rules. Returns the
        solve result, or None when none of the orders was new."""
        fresh = [o for o in orders if o.number not in self.orders]
        if not fresh:
            return None
        for o in fresh:
            self.orders[o.number] = o
        return self.replan(now_ms, "orders", f"{len(fresh)} new order(s): {', '.join(o.number for o in fresh[:5])}")

    def close_orders(self, numbers: list[str], now_ms: int) -> bool:
        """Orders the MES reports done or cancelled: their work not started leaves the plan."""
        closing = [n for n in numbers if n in self.orders and n not in self.done]
        if not closing:
            return False
        now = self.seconds(now_ms)
        self.done.update(closing)
        if self.plan is None:
            return False
        self.finished.extend(o for o in self.plan.schedule.operations if o.job in closing and o.start < now)
        self.replan(now_ms, "orders", f"closed: {', '.join(closing[:5])}")
        return True

    def replan(self, now_ms: int, trigger: Trigger, detail: str, method: Literal["dispatch", "cpsat"] = "dispatch",
               time_limit: float = 0.0) -> SolveResult | None:
        now = self.seconds(now_ms)
        full, schedule_ops = self._full_problem(now)
        if full is None:
            if self.plan is not None and self.plan.problem.jobs:  # nothing left: an empty plan
                self._version += 1
                self.plan = None
                self._record(now_ms, trigger, detail + " (nothing left to plan)", "none", 0.0, True, None)
            return None
        reduced = reduce_problem(full, schedule_ops, now)
        result = solve_reduced(reduced, self.config.objective, method, time_limit, self.config.workers)
        if result is None:  # everything has started: the plan stands as it is
            merged = Schedule(operations=list(reduced.pinned))
            solve_s, used = 0.0, "none"
        else:
            merged = merge(reduced, result.schedule)
            solve_s, used = result.total_s, result.method
        self._adopt(full, merged, now_ms, trigger, detail, used, solve_s * 1000, None)
        return result

    def candidate(self, now_ms: int) -> tuple[int, _Reduced] | None:
        """What a background improvement works on: the plan's version and its reduced problem at now."""
        if self.plan is None:
            return None
        reduced = reduce_problem(self.plan.problem, self.plan.schedule.operations, self.seconds(now_ms))
        return (self.plan.version, reduced) if reduced.problem.jobs else None

    def improved(self, version: int, reduced: _Reduced, result: SolveResult, now_ms: int) -> bool:
        """Adopt a background improvement if the plan has not changed since and it is better."""
        plan = self.plan
        if plan is None or plan.version != version:
            return False
        merged = merge(reduced, result.schedule)
        if _objective(plan.problem, merged, self.config.objective) >= _objective(plan.problem, plan.schedule,
                                                                               self.config.objective):
            return False
        self._adopt(plan.problem, merged, now_ms, "improved", f"CP-SAT {result.status}", result.method,
                    result.total_s * 1000, None)
        return True

    def machine_down(self, machine: str, ts_ms: int, now_ms: int, trigger: Trigger = "machine_down") -> bool:
        """A machine went down at ts_ms (or is still down): plan it out for the expected repair time and
        repair the plan. Returns whether the plan changed."""
        start = min(self.seconds(ts_ms), self.seconds(now_ms))
        self.down_since.setdefault(machine, start)
        end = max(self.seconds(now_ms), start) + self.config.expected_repair_s
        self.downtime[machine].append(Interval(start=start, end=end))
        return self._repair(MachineDown(machine=machine, start=start, end=end), now_ms, trigger,
                            f"{machine} down, planned back at {_clock(self.ms(end))}")

    def machine_up(self, machine: str, ts_ms: int, now_ms: int) -> bool:
        """The machine runs again: its planned repair ends now (its work stays where the repair put it,
        until the next replan or improvement pulls it forward). Returns whether the plan changed."""
        since = self.down_since.pop(machine, None)
        if since is None:
            return False
        up = max(since + 1, self.seconds(ts_ms))
        kept: list[Interval] = []
        for iv in self.downtime[machine]:  # the breakdown's windows (from since on) end when it came back
            if iv.start < since:
                kept.append(iv)
            elif iv.start < up:
                kept.append(Interval(start=iv.start, end=min(iv.end, up)))
        self.downtime[machine] = kept
        plan = self.plan
        if plan is None:
            return False
        problem = _with_downtime(plan.problem, self.downtime)
        report = check_schedule(problem, plan.schedule)
        self._adopt(problem, plan.schedule, now_ms, "machine_up", f"{machine} running again", "none", 0.0, None,
                    report.valid)
        return True

    def still_down(self, now_ms: int) -> list[str]:
        """Machines still down when their planned repair ends (within a minute): plan a further repair."""
        now = self.seconds(now_ms)
        late = [m for m in self.down_since
                if not self.downtime[m] or max(iv.end for iv in self.downtime[m]) <= now + 60]
        for m in late:
            self.machine_down(m, now_ms, now_ms, "still_down")
        return late

    def rush_order(self, order: WorkOrder, now_ms: int) -> bool:
        """A rush order: repair the plan with it at the front of its machines' queues."""
        if order.number in self.orders:
            return False
        self.orders[order.number] = order
        if self.plan is None:
            self.replan(now_ms, "rush_order", f"rush order {order.number}")
            return True
        job = self.job_of(order, self.seconds(now_ms))
        return self._repair(RushOrder(job=job), now_ms, "rush_order", f"rush order {order.number} "
                            f"(priority {order.priority:g})")

    def _repair(self, event: MachineDown | RushOrder, now_ms: int, trigger: Trigger, detail: str) -> bool:
        plan = self.plan
        if plan is None:
            return False
        now = self.seconds(now_ms)
        problem, schedule = self._prune(plan.problem, plan.schedule, now)
        if problem is None:  # nothing left to plan: record the downtime for the next plan
            return False
        result = reschedule(problem, schedule, now, event, objective=self.config.objective)
        self._adopt(result.problem, result.schedule, now_ms, trigger, detail, result.method, result.solve_s * 1000,
                    result.disruption.model_dump(), result.check.valid)
        return True

    # ---------------------------------------------------------------- internals

    def _full_problem(self, now: int) -> tuple[Problem | None, list[Op]]:
        """Every order not finished in the current plan, as one problem; with the plan's operations of them."""
        planned: dict[str, list[Op]] = {}
        if self.plan is not None:
            for op in self.plan.schedule.operations:
                planned.setdefault(op.job, []).append(op)
        self._archive(now)
        jobs: list[Job] = []
        ops: list[Op] = []
        old_jobs = {j.id: j for j in self.plan.problem.jobs} if self.plan is not None else {}
        for number, order in self.orders.items():
            if number in self.done:
                continue  # finished in the plan: kept for the chart only
            if number in old_jobs:
                jobs.append(old_jobs[number])
                ops.extend(planned.get(number, []))
            else:
                jobs.append(self.job_of(order, max(now, self.seconds(order.received_ms))))
        if not jobs:
            return None, []
        machines = [Machine(id=m.id, downtime=self.downtime[m.id]) for m in self.machines.values()]
        return Problem(name="plant", machines=machines, jobs=jobs), ops

    def _archive(self, now: int) -> None:
        """Keep the operations of jobs finished in the plan (they leave the problem) for the chart."""
        if self.plan is None:
            return
        by_job: dict[str, list[Op]] = {}
        for op in self.plan.schedule.operations:
            by_job.setdefault(op.job, []).append(op)
        for job, ops in by_job.items():
            if job not in self.done and all(o.end <= now for o in ops):
                self.done.add(job)
                self.finished.extend(ops)

    def _prune(self, problem: Problem, schedule: Schedule, now: int) -> tuple[Problem | None, Schedule]:
        """The problem and schedule without the jobs finished before now (archived for the chart)."""
        self._archive(now)
        by_job: dict[str, list[Op]] = {}
        for op in schedule.operations:
            by_job.setdefault(op.job, []).append(op)
        keep = [j for j in problem.jobs if not all(o.end <= now for o in by_job.get(j.id, []))]
        if not keep:
            return None, schedule
        kept = {j.id for j in keep}
        pruned = Problem(name=problem.name, machines=problem.machines, jobs=keep, setups=problem.setups)
        return pruned, Schedule(operations=[o for o in schedule.operations if o.job in kept])

    def _adopt(self, problem: Problem, schedule: Schedule, now_ms: int, trigger: Trigger, detail: str, method: str,
               solve_ms: float, disruption: dict[str, object] | None, valid: bool | None = None) -> None:
        if valid is None:
            valid = check_schedule(problem, schedule).valid
        if not valid:  # never adopt an invalid plan; the event says so
            self._record(now_ms, trigger, detail + " (rejected: the result failed the checker)", method, solve_ms,
                         False, disruption)
            raise SchedulingError(f"{trigger}: the new plan failed the checker")
        self._version += 1
        self.plan = Plan(self._version, problem, schedule, now_ms, trigger)
        self._record(now_ms, trigger, detail, method, solve_ms, True, disruption)

    def _record(self, now_ms: int, trigger: Trigger, detail: str, method: str, solve_ms: float, valid: bool,
                disruption: dict[str, object] | None) -> None:
        self.events.append(PlanEvent(self._version, now_ms, trigger, detail, method, round(solve_ms, 1), valid,
                                     disruption))


# -------------------------------------------------------------------- reduction


def reduce_problem(problem: Problem, ops: list[Op], now: int) -> _Reduced:
    """The problem of what is left at `now` (see the module docstring): operations started before now are
    pinned as downtime of their machines; each job keeps its remaining operations."""
    by_key = {(o.job, o.index): o for o in ops}
    pinned: list[Op] = []
    busy: dict[str, list[Interval]] = {}
    jobs: list[Job] = []
    offset: dict[str, int] = {}
    for job in problem.jobs:
        release = max(job.release, now)
        k = 0
        while k < len(job.operations):
            op = by_key.get((job.id, k))
            if op is None or op.start >= now:
                break
            pinned.append(op)
            release = max(release, op.end)
            if op.end > now and op.end > op.start:
                busy.setdefault(op.machine, []).append(Interval(start=op.start, end=op.end))
            k += 1
        if k == len(job.operations):
            continue
        offset[job.id] = k
        jobs.append(job.model_copy(update={"operations": job.operations[k:], "release": release}))
    machines = [m.model_copy(update={"downtime": [*m.downtime, *busy.get(m.id, [])]}) for m in problem.machines]
    reduced = Problem.model_construct(name=problem.name, machines=machines, jobs=jobs, setups=problem.setups)
    return _Reduced(reduced, offset, pinned)


def solve_reduced(reduced: _Reduced, objective: Objective, method: Literal["dispatch", "cpsat"], time_limit: float,
                  workers: int) -> SolveResult | None:
    if not reduced.problem.jobs:
        return None
    return solve(reduced.problem, method=method, objective=objective, time_limit=time_limit, workers=workers)


def merge(reduced: _Reduced, schedule: Schedule) -> Schedule:
    """The pinned operations and the reduced problem's schedule, renumbered to the whole jobs."""
    ops = list(reduced.pinned)
    ops += [o.model_copy(update={"index": o.index + reduced.offset[o.job]}) for o in schedule.operations]
    ops.sort(key=lambda o: (o.start, o.machine))
    return Schedule(operations=ops)


def _with_downtime(problem: Problem, downtime: dict[str, list[Interval]]) -> Problem:
    machines = [m.model_copy(update={"downtime": list(downtime.get(m.id, m.downtime))}) for m in problem.machines]
    return problem.model_copy(update={"machines": machines})


def _objective(problem: Problem, schedule: Schedule, objective: Objective) -> float:
    end: dict[str, int] = {}
    for o in schedule.operations:
        end[o.job] = max(end.get(o.job, 0), o.end)
    if objective == "makespan":
        return float(max(end.values(), default=0))
    late = sum(j.weight * max(0, end.get(j.id, 0) - j.due) for j in problem.jobs if j.due is not None)
    # ties in tardiness go to the plan that finishes everything sooner (a tiny, always smaller term)
    return late + sum(end.values()) * 1e-9


def _clock(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S UTC")


__all__ = ["Plan", "PlanEvent", "PlantPlanner", "WorkOrder", "merge", "reduce_problem"]
