"""Random problems of a given shape, for tests, demos and the rescheduling benchmark (seeded, reproducible)."""

from __future__ import annotations

import random

from shopfloor.apps.scheduling.model import Calendar, Interval, Job, Machine, Operation, Option, Problem, SetupTime


def random_problem(
    jobs: int,
    machines: int,
    seed: int = 0,
    *,
    flexibility: int = 1,
    durations: tuple[int, int] = (1, 20),
    due_dates: bool = False,
    families: int = 0,
    calendar: Calendar | None = None,
    downtime: bool = False,
) -> Problem:
    """Each job visits every machine once in random order (Taillard-style); with flexibility > 1 each operation may
    also run on up to flexibility - 1 other machines, a little slower. Due dates are set from the job's work."""
    rng = random.Random(seed)
    ids = [f"M{i}" for i in range(machines)]
    out_jobs = []
    for j in range(jobs):
        route = rng.sample(range(machines), machines)
        ops = []
        for m in route:
            base = rng.randint(*durations)
            options = [Option(machine=ids[m], duration=base)]
            others = [x for x in range(machines) if x != m]
            for alt in rng.sample(others, min(len(others), rng.randint(0, flexibility - 1))):
                options.append(Option(machine=ids[alt], duration=base + rng.randint(0, max(1, base // 2))))
            ops.append(Operation(options=options))
        work = sum(op.options[0].duration for op in ops)
        release = rng.randint(0, work) if due_dates else 0
        out_jobs.append(Job(
            id=f"J{j}", operations=ops, release=release,
            due=release + int(work * rng.uniform(1.2, 2.5)) if due_dates else None,
            weight=float(rng.choice((1, 1, 2, 4))) if due_dates else 1.0,
            family=f"F{rng.randrange(families)}" if families else None,
        ))
    setups = [SetupTime(machine=m, from_family=f"F{a}", to_family=f"F{b}", time=rng.randint(1, 5))
              for m in ids for a in range(families) for b in range(families) if a != b]
    out_machines = []
    for i, machine_id in enumerate(ids):
        down = []
        if downtime and i % 2 == 0:
            s = rng.randint(0, durations[1] * jobs // 2)
            down.append(Interval(start=s, end=s + rng.randint(*durations)))
        out_machines.append(Machine(id=machine_id, calendar=calendar, downtime=down))
    return Problem(name=f"random-{jobs}x{machines}-s{seed}", machines=out_machines, jobs=out_jobs, setups=setups)
