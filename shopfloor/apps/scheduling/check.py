"""The schedule validity checker: every schedule the app produces passes it, and the tests run it on each one."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from pydantic import BaseModel

from shopfloor.apps.scheduling.model import Availability, Problem, Schedule, ScheduledOperation


class CheckReport(BaseModel):
    valid: bool
    violations: list[str]


def check_schedule(problem: Problem, schedule: Schedule, limit: int = 50) -> CheckReport:
    """Check completeness, eligibility and durations, precedence, release dates, no overlap with setups,
    calendars and downtime. Lists up to `limit` violations."""
    violations: list[str] = []
    jobs = {j.id: j for j in problem.jobs}
    machines = {m.id: m for m in problem.machines}
    availability = {m.id: Availability(m.calendar, m.downtime) for m in problem.machines}
    family = {j.id: j.family for j in problem.jobs}
    setups = {(s.machine, s.from_family, s.to_family): s.time for s in problem.setups}
    seen: dict[tuple[str, int], ScheduledOperation] = {}
    for op in schedule.operations:
        key = (op.job, op.index)
        job = jobs.get(op.job)
        if job is None or op.index >= len(job.operations):
            violations.append(f"{op.job}/{op.index}: no such operation")
            continue
        if key in seen:
            violations.append(f"{op.job}/{op.index}: scheduled twice")
            continue
        seen[key] = op
        durations = {o.machine: o.duration for o in job.operations[op.index].options}
        if op.machine not in durations:
            violations.append(f"{op.job}/{op.index}: machine {op.machine} is not eligible")
        elif op.end - op.start != durations[op.machine]:
            violations.append(f"{op.job}/{op.index}: lasts {op.end - op.start}, needs {durations[op.machine]} "
                              f"on {op.machine}")
        if op.start < 0:
            violations.append(f"{op.job}/{op.index}: starts before 0")
        if op.machine in machines and availability[op.machine].overlaps(op.start, op.end):
            violations.append(f"{op.job}/{op.index}: [{op.start}, {op.end}) on {op.machine} overlaps its "
                              "calendar or downtime")
    for job in problem.jobs:
        previous_end = job.release
        for k in range(len(job.operations)):
            scheduled = seen.get((job.id, k))
            if scheduled is None:
                violations.append(f"{job.id}/{k}: not scheduled")
                break
            if scheduled.start < previous_end:
                what = "its release" if k == 0 else f"the end of {job.id}/{k - 1}"
                violations.append(f"{job.id}/{k}: starts at {scheduled.start}, before {what} ({previous_end})")
            previous_end = scheduled.end
    on_machine: dict[str, list[ScheduledOperation]] = defaultdict(list)
    for op in seen.values():
        on_machine[op.machine].append(op)
    for machine, ops in on_machine.items():
        ops.sort(key=lambda o: (o.start, o.end))
        for a, b in pairwise(ops):
            fa, fb = family[a.job], family[b.job]
            setup = setups.get((machine, fa, fb), 0) if fa is not None and fb is not None else 0
            if b.start < a.end + setup:
                gap = f" + setup {setup}" if setup else ""
                violations.append(f"{machine}: {a.job}/{a.index} [{a.start}, {a.end}){gap} overlaps "
                                  f"{b.job}/{b.index} [{b.start}, {b.end})")
    return CheckReport(valid=not violations, violations=violations[:limit])
