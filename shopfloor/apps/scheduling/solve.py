"""One entry point: dispatching rules, then tabu search, then CP-SAT from the best schedule so far, in one budget.

A classic job shop (one machine per operation, no setups, no calendars) with the makespan objective gets the
compiled TSAB search (tsab.py), which is far faster than CP-SAT on large instances and than the general tabu
search (tabu.py); everything else (flexible shops, setups, calendars, weighted tardiness) gets tabu.py.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel

from shopfloor.apps.scheduling.check import CheckReport, check_schedule
from shopfloor.apps.scheduling.dispatch import RULES, Rule, best_dispatch, dispatch
from shopfloor.apps.scheduling.errors import SchedulingError
from shopfloor.apps.scheduling.kpi import Kpis, compute_kpis
from shopfloor.apps.scheduling.model import Indexed, Problem, Schedule
from shopfloor.apps.scheduling.sequence import Solution, decode
from shopfloor.apps.scheduling.tabu import evaluate, tabu_search
from shopfloor.apps.scheduling.tsab import is_classic, tsab, warm_up

Method = Literal["dispatch", "local_search", "cpsat"]
Objective = Literal["makespan", "weighted_tardiness"]
LOCAL_SEARCH_SHARE = 0.1  # of the budget given to tabu search before CP-SAT, at most LOCAL_SEARCH_MAX_S
LOCAL_SEARCH_MAX_S = 3.0
# Of the budget, the share TSAB gets before CP-SAT on a classic job shop (makespan). Up to SMALL_OPS operations
# CP-SAT often proves the optimum, given the time; above, TSAB improves for longer than CP-SAT does from its
# schedule (measured at 20 s on la21-swv12 and yn1, docs/scheduling.md).
TSAB_SHARE = 0.9
TSAB_SHARE_SMALL = 0.2
SMALL_OPS = 150


class SolveResult(BaseModel):
    problem: str
    method: Method
    objective: Objective
    status: str  # optimal (proved by CP-SAT, or met a lower bound), feasible
    rule: str
    schedule: Schedule
    kpis: Kpis
    check: CheckReport
    objective_value: float
    best_bound: float | None
    first_feasible_s: float
    total_s: float
    phases: dict[str, float]  # seconds per phase
    trace: list[tuple[float, float]]  # (seconds since start, objective value) at each improvement


class SolverBug(SchedulingError):
    """A produced schedule failed the checker: a bug, never a user error."""


def compact(ix: Indexed, assign: list[int], start: list[int]) -> list[int]:
    """Left-shift: keep the machine sequences, start everything as early as they allow (never later)."""
    decoded = decode(ix, Solution.from_starts(ix, assign, start))
    assert decoded is not None
    return decoded.start


def finish(problem: Problem, schedule: Schedule) -> tuple[Kpis, CheckReport]:
    report = check_schedule(problem, schedule)
    if not report.valid:
        raise SolverBug(f"produced an invalid schedule: {report.violations[:3]}")
    return compute_kpis(problem, schedule), report


def solve(
    problem: Problem,
    method: Method = "cpsat",
    objective: Objective = "makespan",
    time_limit: float = 10.0,
    workers: int = 2,
    rule: Rule | None = None,
    seed: int = 0,
) -> SolveResult:
    """Schedule `problem` within about time_limit seconds (dispatching alone ignores it).

    The first call in a process that runs TSAB also loads (or compiles) its numba kernels beforehand."""
    t0 = time.perf_counter()
    ix = Indexed.of(problem)
    fast_search = method != "dispatch" and objective == "makespan" and is_classic(ix)
    if fast_search:
        loading = time.perf_counter()
        warm_up()
        t0 += time.perf_counter() - loading  # not counted in the budget
    phases: dict[str, float] = {}
    if rule is None:
        used_rule, assign, start = best_dispatch(ix, objective, RULES)
    else:
        used_rule = rule
        assign, start = dispatch(ix, rule)
    solution = Solution.from_starts(ix, assign, start)
    decoded = decode(ix, solution)
    assert decoded is not None
    start = decoded.start
    value = evaluate(ix, decoded, objective)
    first_feasible = time.perf_counter() - t0
    phases["dispatch"] = first_feasible
    trace = [(first_feasible, value)]
    status = "feasible"
    bound: float | None = None
    if method in ("local_search", "cpsat"):
        budget = time_limit - (time.perf_counter() - t0)
        t1 = time.perf_counter()
        if fast_search:
            if method == "cpsat":
                budget *= TSAB_SHARE_SMALL if ix.n_ops <= SMALL_OPS else TSAB_SHARE
            fast = tsab(ix, solution, time_limit=max(0.0, budget), seed=seed)
            phases["local_search"] = time.perf_counter() - t1
            for t, v in fast.trace:
                if v < trace[-1][1]:
                    trace.append((t1 - t0 + t, v))
            if fast.value < value:
                assign, start, value = fast.solution.assign, fast.decoded.start, fast.value
            if fast.optimal:  # the makespan meets a lower bound: CP-SAT has nothing to add
                status, bound = "optimal", float(fast.lower_bound)
        else:
            if method == "cpsat":
                budget = min(budget * LOCAL_SEARCH_SHARE, LOCAL_SEARCH_MAX_S)
            result = tabu_search(ix, solution, objective, time_limit=max(0.0, budget), seed=seed)
            phases["local_search"] = time.perf_counter() - t1
            if result.value < value:
                assign, start, value = result.solution.assign, result.decoded.start, result.value
                trace.append((time.perf_counter() - t0, value))
    if method == "cpsat" and status != "optimal":
        from shopfloor.apps.scheduling.cpsat import solve_cpsat  # OR-Tools loads in about a second: only when used

        t2 = time.perf_counter()
        offset = t2 - t0
        cp = solve_cpsat(ix, objective, time_limit=max(0.05, time_limit - offset), hint=(assign, start),
                         workers=workers, seed=seed)
        phases["cpsat"] = time.perf_counter() - t2
        if cp.assign is not None and cp.start is not None and cp.objective is not None:
            cp_start = compact(ix, cp.assign, cp.start)
            cp_decoded = decode(ix, Solution.from_starts(ix, cp.assign, cp_start))
            assert cp_decoded is not None
            cp_value = evaluate(ix, cp_decoded, objective)
            if cp_value <= value:
                assign, start, value = cp.assign, cp_start, cp_value
            for t, v in cp.trace:
                if v < trace[-1][1]:
                    trace.append((offset + t, v))
            bound = cp.bound
            if cp.status == "optimal":
                status = "optimal"
    schedule = ix.to_schedule(assign, start)
    kpis, report = finish(problem, schedule)
    return SolveResult(
        problem=problem.name, method=method, objective=objective, status=status, rule=used_rule, schedule=schedule,
        kpis=kpis, check=report, objective_value=round(value, 6), best_bound=bound, first_feasible_s=first_feasible,
        total_s=time.perf_counter() - t0, phases=phases, trace=trace,
    )
