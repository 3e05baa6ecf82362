"""The problem and the schedule as validated pydantic models (the JSON of the API), and their compiled index form.

Times are integers in one unit of the user's choice (minutes, seconds...): CP-SAT works on integers, and a
schedule is checked exactly. A job is a routing of operations done in order; each operation lists the machines
that can do it with their own processing time (one machine: the classic job shop). A machine may follow a
repeating calendar (shifts) and have planned downtime; an operation never overlaps either (no preemption).
Sequence-dependent setups are given between job families on a machine: the gap between two consecutive
operations on that machine must be at least the setup time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopfloor.apps.scheduling.errors import InfeasibleProblem


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Interval(_Frozen):
    """A half-open time window [start, end)."""

    start: int = Field(ge=0)
    end: int

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"interval end {self.end} must be after its start {self.start}")
        return self


class Calendar(_Frozen):
    """Repeating availability: within every period (e.g. 1440 minutes), the machine works only in these windows."""

    period: int = Field(gt=0)
    available: list[Interval] = Field(min_length=1)

    @model_validator(mode="after")
    def _inside_period(self) -> Self:
        last_end = -1
        for window in sorted(self.available, key=lambda w: w.start):
            if window.end > self.period:
                raise ValueError(f"calendar window [{window.start}, {window.end}) exceeds the period {self.period}")
            if window.start < last_end:
                raise ValueError("calendar windows overlap")
            last_end = window.end
        return self


class Machine(_Frozen):
    id: str = Field(min_length=1)
    name: str | None = None
    calendar: Calendar | None = None
    downtime: list[Interval] = Field(default_factory=list, description="Planned (or reported) unavailability.")


class Option(_Frozen):
    """One way to do an operation: on this machine, in this time."""

    machine: str
    duration: int = Field(ge=0)


class Operation(_Frozen):
    options: list[Option] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_machines(self) -> Self:
        machines = [o.machine for o in self.options]
        if len(set(machines)) != len(machines):
            raise ValueError(f"an operation lists a machine twice: {machines}")
        return self


class Job(_Frozen):
    """An order's routing. weight is its priority in weighted tardiness; family selects setup times."""

    id: str = Field(min_length=1)
    operations: list[Operation] = Field(min_length=1)
    release: int = Field(default=0, ge=0)
    due: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, ge=0)
    family: str | None = None


class SetupTime(_Frozen):
    """Time needed on `machine` between an operation of family `from_family` and one of `to_family`."""

    machine: str
    from_family: str
    to_family: str
    time: int = Field(ge=0)


class Problem(_Frozen):
    name: str = "problem"
    machines: list[Machine] = Field(min_length=1)
    jobs: list[Job] = Field(min_length=1)
    setups: list[SetupTime] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Self:
        machine_ids = [m.id for m in self.machines]
        if len(set(machine_ids)) != len(machine_ids):
            raise ValueError("machine ids must be unique")
        job_ids = [j.id for j in self.jobs]
        if len(set(job_ids)) != len(job_ids):
            raise ValueError("job ids must be unique")
        known = set(machine_ids)
        for job in self.jobs:
            for k, op in enumerate(job.operations):
                for option in op.options:
                    if option.machine not in known:
                        raise ValueError(f"job {job.id} operation {k}: unknown machine {option.machine!r}")
        for setup in self.setups:
            if setup.machine not in known:
                raise ValueError(f"setup on unknown machine {setup.machine!r}")
        return self

    @property
    def is_flexible(self) -> bool:
        return any(len(op.options) > 1 for job in self.jobs for op in job.operations)

    @property
    def size(self) -> str:
        return f"{len(self.jobs)}x{len(self.machines)}"


class ScheduledOperation(_Frozen):
    job: str
    index: int = Field(ge=0, description="Position of the operation in its job's routing.")
    machine: str
    start: int
    end: int


class Schedule(_Frozen):
    operations: list[ScheduledOperation]

    def by_key(self) -> dict[tuple[str, int], ScheduledOperation]:
        return {(o.job, o.index): o for o in self.operations}


class Availability:
    """When one machine can run: its calendar and its downtime, answering "earliest start >= t for a duration"."""

    def __init__(self, calendar: Calendar | None, downtime: list[Interval]) -> None:
        self.calendar = calendar
        self._windows = sorted((w.start, w.end) for w in calendar.available) if calendar else []
        merged: list[list[int]] = []
        for w in sorted(downtime, key=lambda d: d.start):
            if merged and w.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], w.end)
            else:
                merged.append([w.start, w.end])
        self.down_starts = [d[0] for d in merged]
        self.down = [(d[0], d[1]) for d in merged]
        self.longest_window = max((e - s for s, e in self._windows), default=0)

    @property
    def always(self) -> bool:
        return self.calendar is None and not self.down

    def _calendar_fit(self, t: int, duration: int) -> int:
        assert self.calendar is not None
        period = self.calendar.period
        base = (t // period) * period
        while True:
            for ws, we in self._windows:
                start = max(t, base + ws)
                if start + duration <= base + we:
                    return start
            base += period

    def _down_conflict(self, start: int, end: int) -> int | None:
        """The end of the downtime that overlaps [start, end), if any (downtime is merged and sorted)."""
        i = bisect.bisect_left(self.down_starts, end) - 1
        if i >= 0 and self.down[i][1] > start:
            return self.down[i][1]
        return None

    def earliest(self, t: int, duration: int) -> int:
        """The earliest start >= t at which [start, start + duration) touches no unavailable time."""
        if duration == 0 or self.always:
            return t
        if self.calendar is not None and duration > self.longest_window:
            raise InfeasibleProblem(f"an operation of {duration} is longer than every calendar window")
        while True:
            if self.calendar is not None:
                t = self._calendar_fit(t, duration)
            blocked_until = self._down_conflict(t, t + duration)
            if blocked_until is None:
                return t
            t = blocked_until

    def unavailable(self, horizon: int) -> list[tuple[int, int]]:
        """Every unavailable window that starts before horizon, calendar gaps and downtime merged."""
        spans: list[tuple[int, int]] = list(self.down)
        if self.calendar is not None:
            period = self.calendar.period
            base = 0
            while base < horizon:
                cursor = base
                for ws, we in self._windows:
                    if ws + base > cursor:
                        spans.append((cursor, base + ws))
                    cursor = base + we
                if cursor < base + period:
                    spans.append((cursor, base + period))
                base += period
        spans.sort()
        merged: list[tuple[int, int]] = []
        for s, e in spans:
            if s >= horizon:
                break
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        return merged

    def overlaps(self, start: int, end: int) -> bool:
        """Whether [start, end) touches unavailable time (an empty span never does)."""
        if end <= start or self.always:
            return False
        if self._down_conflict(start, end) is not None:
            return True
        if self.calendar is None:
            return False
        base = (start // self.calendar.period) * self.calendar.period
        return not any(base + ws <= start and end <= base + we for ws, we in self._windows)


@dataclass
class Indexed:
    """The problem as flat integer arrays for the solvers: operations numbered 0..n-1 job by job."""

    problem: Problem
    machine_ids: list[str]
    job_ids: list[str]
    op_job: list[int]
    op_pos: list[int]
    options: list[list[tuple[int, int]]]  # per operation: (machine index, duration)
    job_ops: list[list[int]]
    release: list[int]
    due: list[int | None]
    weight: list[float]
    family: list[int]  # per job, -1 when none
    setup: dict[int, list[list[int]]]  # machine index -> family x family setup time
    availability: list[Availability]
    min_duration: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, problem: Problem) -> Indexed:
        machine_ids = [m.id for m in problem.machines]
        m_index = {m: i for i, m in enumerate(machine_ids)}
        families = sorted({j.family for j in problem.jobs if j.family is not None}
                          | {s.from_family for s in problem.setups} | {s.to_family for s in problem.setups})
        f_index = {f: i for i, f in enumerate(families)}
        op_job: list[int] = []
        op_pos: list[int] = []
        options: list[list[tuple[int, int]]] = []
        job_ops: list[list[int]] = []
        for j, job in enumerate(problem.jobs):
            ids = []
            for k, op in enumerate(job.operations):
                ids.append(len(op_job))
                op_job.append(j)
                op_pos.append(k)
                options.append([(m_index[o.machine], o.duration) for o in op.options])
            job_ops.append(ids)
        setup: dict[int, list[list[int]]] = {}
        for s in problem.setups:
            if s.time == 0:
                continue
            matrix = setup.setdefault(m_index[s.machine], [[0] * len(families) for _ in families])
            matrix[f_index[s.from_family]][f_index[s.to_family]] = s.time
        return cls(
            problem=problem, machine_ids=machine_ids, job_ids=[j.id for j in problem.jobs], op_job=op_job,
            op_pos=op_pos, options=options, job_ops=job_ops, release=[j.release for j in problem.jobs],
            due=[j.due for j in problem.jobs], weight=[j.weight for j in problem.jobs],
            family=[f_index[j.family] if j.family is not None else -1 for j in problem.jobs], setup=setup,
            availability=[Availability(m.calendar, m.downtime) for m in problem.machines],
            min_duration=[min(d for _, d in opts) for opts in options],
        )

    @property
    def n_ops(self) -> int:
        return len(self.op_job)

    def setup_time(self, machine: int, prev_op: int, next_op: int) -> int:
        matrix = self.setup.get(machine)
        if matrix is None:
            return 0
        a, b = self.family[self.op_job[prev_op]], self.family[self.op_job[next_op]]
        return matrix[a][b] if a >= 0 and b >= 0 else 0

    def duration(self, op: int, machine: int) -> int:
        for m, d in self.options[op]:
            if m == machine:
                return d
        raise KeyError(f"machine {self.machine_ids[machine]} cannot do operation {op}")

    def to_schedule(self, machine: list[int], start: list[int]) -> Schedule:
        ops = [
            ScheduledOperation(job=self.job_ids[self.op_job[i]], index=self.op_pos[i],
                               machine=self.machine_ids[machine[i]], start=start[i],
                               end=start[i] + self.duration(i, machine[i]))
            for i in range(self.n_ops)
        ]
        ops.sort(key=lambda o: (o.start, o.machine))
        return Schedule(operations=ops)

    def from_schedule(self, schedule: Schedule) -> tuple[list[int], list[int]]:
        """Machine index and start per operation index (raises KeyError for unknown jobs or machines)."""
        j_index = {j: i for i, j in enumerate(self.job_ids)}
        m_index = {m: i for i, m in enumerate(self.machine_ids)}
        machine = [-1] * self.n_ops
        start = [0] * self.n_ops
        for o in schedule.operations:
            i = self.job_ops[j_index[o.job]][o.index]
            machine[i] = m_index[o.machine]
            start[i] = o.start
        return machine, start
