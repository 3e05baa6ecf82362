"""Repair a running schedule after a machine breakdown or a rush order.

Operations started before `now` stay where they are (pinned), unless the breakdown hits them: an operation running
on the machine when it goes down is interrupted and redone in full (no preemption). Everything else is replanned,
not before `now`. First a right-shift repair keeps every machine sequence (the rush order jumps the queues), which
is feasible at once; then CP-SAT, hinted with it, minimises the objective plus the disruption: the shift of each
start against the previous plan and each change of machine. The disruption is reported either way.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError

from shopfloor.apps.scheduling.check import CheckReport
from shopfloor.apps.scheduling.errors import SchedulingError
from shopfloor.apps.scheduling.kpi import Kpis, compute_kpis
from shopfloor.apps.scheduling.model import Indexed, Interval, Job, Problem, Schedule
from shopfloor.apps.scheduling.sequence import Constraints, Solution, decode
from shopfloor.apps.scheduling.solve import Objective, finish

REPAIR_TIME_LIMIT_S = 0.7  # the repair answers within a second: building, checking and reporting take the rest


class MachineDown(BaseModel):
    kind: Literal["machine_down"] = "machine_down"
    machine: str
    start: int = Field(ge=0)
    end: int = Field(gt=0)


class RushOrder(BaseModel):
    kind: Literal["rush_order"] = "rush_order"
    job: Job


Event = Annotated[MachineDown | RushOrder, Field(discriminator="kind")]


class DisruptionReport(BaseModel):
    pinned: int  # operations kept as they were (started before now)
    interrupted: list[str]  # operations the breakdown cut off, redone in full
    replanned: int
    moved: int  # replanned operations whose start changed
    total_shift: int  # sum of |new start - old start| over them
    max_shift: int
    machine_changes: int
    makespan_before: int
    makespan_after: int
    weighted_tardiness_before: float
    weighted_tardiness_after: float


class RescheduleResult(BaseModel):
    problem: Problem  # the problem with the event applied (downtime added, rush order appended)
    schedule: Schedule
    kpis: Kpis
    check: CheckReport
    disruption: DisruptionReport
    method: str  # "cpsat" when CP-SAT improved on the right-shift repair, else "right_shift"
    solve_s: float


def apply_event(problem: Problem, event: MachineDown | RushOrder, now: int) -> Problem:
    """The problem as it stands after the event; SchedulingError when the event does not fit the problem."""
    try:
        return _apply_event(problem, event, now)
    except ValidationError as exc:
        raise SchedulingError(f"the event does not fit the problem: {exc.errors()[0]['msg']}") from None


def _apply_event(problem: Problem, event: MachineDown | RushOrder, now: int) -> Problem:
    if isinstance(event, MachineDown):
        if event.end <= event.start:
            raise SchedulingError(f"downtime end {event.end} must be after its start {event.start}")
        machines = []
        found = False
        for m in problem.machines:
            if m.id == event.machine:
                found = True
                m = m.model_copy(update={"downtime": [*m.downtime, Interval(start=event.start, end=event.end)]})
            machines.append(m)
        if not found:
            raise SchedulingError(f"unknown machine {event.machine!r}")
        return Problem.model_validate({**problem.model_dump(), "machines": [m.model_dump() for m in machines]})
    if any(j.id == event.job.id for j in problem.jobs):
        raise SchedulingError(f"job {event.job.id!r} already exists")
    job = event.job.model_copy(update={"release": max(event.job.release, now)})
    return Problem.model_validate({**problem.model_dump(), "jobs": [*problem.model_dump()["jobs"], job.model_dump()]})


def reschedule(
    problem: Problem,
    schedule: Schedule,
    now: int,
    event: MachineDown | RushOrder,
    objective: Objective = "makespan",
    time_limit: float = REPAIR_TIME_LIMIT_S,
    shift_weight: int = 1,
    change_weight: int | None = None,
    workers: int = 2,
) -> RescheduleResult:
    """Repair `schedule` (of `problem`) at time `now` after `event`, within about time_limit seconds."""
    t0 = time.perf_counter()
    new_problem = apply_event(problem, event, now)
    ix = Indexed.of(new_problem)
    old = schedule.by_key()
    j_index = {j: i for i, j in enumerate(ix.job_ids)}
    m_index = {m: i for i, m in enumerate(ix.machine_ids)}
    ref_machine = [-1] * ix.n_ops
    ref_start = [-1] * ix.n_ops
    for (job, k), op in old.items():
        if job not in j_index or k >= len(ix.job_ops[j_index[job]]) or op.machine not in m_index:
            raise SchedulingError(f"the schedule has {job}/{k} on {op.machine}, which the problem does not know")
        i = ix.job_ops[j_index[job]][k]
        ref_machine[i] = m_index[op.machine]
        ref_start[i] = op.start
    missing = [i for i in range(ix.n_ops) if ref_start[i] < 0 and not isinstance(event, RushOrder)]
    if missing:
        raise SchedulingError(f"the schedule lacks {len(missing)} operations of the problem")

    interrupted: list[str] = []
    pinned: dict[int, int] = {}
    for ops in ix.job_ops:
        for i in ops:  # pinned operations form a prefix of each job
            if ref_start[i] < 0 or ref_start[i] >= now:
                break
            end = ref_start[i] + ix.duration(i, ref_machine[i])
            if ix.availability[ref_machine[i]].overlaps(ref_start[i], end):
                interrupted.append(f"{ix.job_ids[ix.op_job[i]]}/{ix.op_pos[i]}")
                break
            pinned[i] = ref_start[i]
    constraints = Constraints(fixed=pinned, not_before=now)

    # right-shift repair: same machine sequences, pinned operations first (a replanned one may have started
    # before now in the old plan); a rush order's operations go first in their machines' queues
    assign = list(ref_machine)
    order = sorted((i for i in range(ix.n_ops) if ref_start[i] >= 0), key=lambda i: (i not in pinned, ref_start[i], i))
    seqs: list[list[int]] = [[] for _ in ix.machine_ids]
    for i in order:
        seqs[assign[i]].append(i)
    for i in range(ix.n_ops):
        if ref_start[i] >= 0:
            continue
        m = min(ix.options[i], key=lambda o: o[1])[0]
        assign[i] = m
        seq = seqs[m]
        position = 0
        while position < len(seq) and seq[position] in pinned:
            position += 1
        while position < len(seq) and ix.op_job[seq[position]] == ix.op_job[i]:
            position += 1
        seq.insert(position, i)
    repaired = decode(ix, Solution(assign, seqs), constraints)
    if repaired is None:
        raise SchedulingError("the right-shift repair found contradictory sequences")
    best_assign, best_start, method = assign, repaired.start, "right_shift"

    from shopfloor.apps.scheduling.cpsat import Disruption, solve_cpsat  # OR-Tools loads only when used

    mean_duration = max(1, round(sum(ix.min_duration) / max(1, ix.n_ops)))
    disruption = Disruption(ref_machine, ref_start, shift_weight,
                            change_weight if change_weight is not None else mean_duration * shift_weight)
    remaining = time_limit - (time.perf_counter() - t0)
    if remaining > 0.05 and len(pinned) < ix.n_ops:
        cp = solve_cpsat(ix, objective, time_limit=remaining, hint=(assign, repaired.start), workers=workers,
                         constraints=constraints, disruption=disruption)
        if cp.assign is not None and cp.start is not None:
            best_assign, best_start, method = cp.assign, cp.start, "cpsat"

    new_schedule = ix.to_schedule(best_assign, best_start)
    kpis, report = finish(new_problem, new_schedule)
    before = compute_kpis(problem, schedule)
    shifts = [abs(best_start[i] - ref_start[i]) for i in range(ix.n_ops) if ref_start[i] >= 0 and i not in pinned]
    changes = sum(1 for i in range(ix.n_ops) if ref_start[i] >= 0 and best_assign[i] != ref_machine[i])
    report_d = DisruptionReport(
        pinned=len(pinned), interrupted=interrupted, replanned=ix.n_ops - len(pinned),
        moved=sum(1 for s in shifts if s), total_shift=sum(shifts), max_shift=max(shifts, default=0),
        machine_changes=changes, makespan_before=before.makespan, makespan_after=kpis.makespan,
        weighted_tardiness_before=before.total_weighted_tardiness,
        weighted_tardiness_after=kpis.total_weighted_tardiness,
    )
    return RescheduleResult(problem=new_problem, schedule=new_schedule, kpis=kpis, check=report,
                            disruption=report_d, method=method, solve_s=time.perf_counter() - t0)
