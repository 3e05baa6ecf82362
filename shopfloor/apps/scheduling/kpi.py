"""Key figures of a schedule: makespan, weighted tardiness, lateness and utilisation per machine."""

from __future__ import annotations

from pydantic import BaseModel

from shopfloor.apps.scheduling.model import Problem, Schedule


class Kpis(BaseModel):
    makespan: int
    total_weighted_tardiness: float
    total_tardiness: int
    tardy_jobs: int
    completion: dict[str, int]
    utilisation: dict[str, float]  # busy time / makespan per machine


def compute_kpis(problem: Problem, schedule: Schedule) -> Kpis:
    completion: dict[str, int] = {}
    busy: dict[str, int] = {m.id: 0 for m in problem.machines}
    for op in schedule.operations:
        completion[op.job] = max(completion.get(op.job, 0), op.end)
        busy[op.machine] = busy.get(op.machine, 0) + op.end - op.start
    makespan = max(completion.values(), default=0)
    weighted = 0.0
    total = 0
    tardy = 0
    for job in problem.jobs:
        if job.due is None or job.id not in completion:
            continue
        late = max(0, completion[job.id] - job.due)
        total += late
        weighted += job.weight * late
        tardy += late > 0
    utilisation = {m: (round(b / makespan, 4) if makespan else 0.0) for m, b in busy.items()}
    return Kpis(makespan=makespan, total_weighted_tardiness=round(weighted, 6), total_tardiness=total,
                tardy_jobs=tardy, completion=completion, utilisation=utilisation)
