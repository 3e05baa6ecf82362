"""A schedule as machine sequences, and the decoder that turns sequences into the earliest start times.

The local search moves operations within and between machine sequences; the decoder gives each move its
semi-active schedule (every operation as early as its job, its machine, setups and calendars allow) and the
critical predecessor of each operation, from which the critical path is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from shopfloor.apps.scheduling.model import Indexed, Schedule


@dataclass
class Constraints:
    """Extra bounds for repairs: operations pinned at a start time, and a lower bound on the others' starts."""

    fixed: dict[int, int] = field(default_factory=dict)
    not_before: int = 0


@dataclass
class Solution:
    assign: list[int]  # machine index per operation
    seqs: list[list[int]]  # operations per machine, in processing order

    def copy(self) -> Solution:
        return Solution(list(self.assign), [list(s) for s in self.seqs])

    @classmethod
    def from_starts(cls, ix: Indexed, assign: list[int], start: list[int]) -> Solution:
        seqs: list[list[int]] = [[] for _ in ix.machine_ids]
        for op in sorted(range(ix.n_ops), key=lambda i: (start[i], i)):
            seqs[assign[op]].append(op)
        return cls(list(assign), seqs)


@dataclass
class Decoded:
    start: list[int]
    end: list[int]
    critical_pred: list[int]  # the predecessor (job or machine) whose end fixed this start; -1 when none did


def decode(ix: Indexed, sol: Solution, constraints: Constraints | None = None) -> Decoded | None:
    """Earliest starts for these sequences, or None when job order and machine order contradict each other."""
    n = ix.n_ops
    fixed = constraints.fixed if constraints else {}
    not_before = constraints.not_before if constraints else 0
    mpred = [-1] * n
    msucc = [-1] * n
    for seq in sol.seqs:
        for a, b in pairwise(seq):
            mpred[b] = a
            msucc[a] = b
    op_pos = ix.op_pos
    op_job = ix.op_job
    options = ix.options
    availability = ix.availability
    indeg = [(op_pos[i] > 0) + (mpred[i] >= 0) for i in range(n)]
    stack = [i for i in range(n) if indeg[i] == 0]
    start = [0] * n
    end = [0] * n
    crit = [-1] * n
    done = 0
    has_setups = bool(ix.setup)
    last_of_job = [ops[-1] for ops in ix.job_ops]
    while stack:
        i = stack.pop()
        done += 1
        m = sol.assign[i]
        duration = 0
        for mm, d in options[i]:
            if mm == m:
                duration = d
                break
        if i in fixed:
            s = fixed[i]
            pred = -1
        else:
            if op_pos[i] > 0:
                s = end[i - 1]
                pred = i - 1
            else:
                s = ix.release[op_job[i]]
                pred = -1
            mp = mpred[i]
            if mp >= 0:
                ready = end[mp] + (ix.setup_time(m, mp, i) if has_setups else 0)
                if ready > s:
                    s = ready
                    pred = mp
            if s < not_before:
                s = not_before
                pred = -1
            avail = availability[m]
            if not avail.always:
                pushed = avail.earliest(s, duration)
                if pushed != s:
                    s = pushed
                    pred = -1
        start[i] = s
        end[i] = s + duration
        crit[i] = pred
        if i != last_of_job[op_job[i]]:
            indeg[i + 1] -= 1
            if indeg[i + 1] == 0:
                stack.append(i + 1)
        ms = msucc[i]
        if ms >= 0:
            indeg[ms] -= 1
            if indeg[ms] == 0:
                stack.append(ms)
    if done < n:
        return None
    return Decoded(start, end, crit)


def to_schedule(ix: Indexed, sol: Solution, decoded: Decoded) -> Schedule:
    return ix.to_schedule(sol.assign, decoded.start)


def job_completions(ix: Indexed, decoded: Decoded) -> list[int]:
    return [decoded.end[ops[-1]] for ops in ix.job_ops]


def weighted_tardiness(ix: Indexed, decoded: Decoded) -> float:
    total = 0.0
    for j, ops in enumerate(ix.job_ops):
        due = ix.due[j]
        if due is not None and decoded.end[ops[-1]] > due:
            total += ix.weight[j] * (decoded.end[ops[-1]] - due)
    return total
