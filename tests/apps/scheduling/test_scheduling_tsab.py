"""The compiled TSAB search on classic job shops: optimal on ft06 at once, valid, deterministic, on time."""

from __future__ import annotations

import time

import pytest
from scheduling_testkit import FT06, assert_valid

from shopfloor.apps.scheduling import Job, Machine, Operation, Option, Problem, solve
from shopfloor.apps.scheduling.dispatch import dispatch
from shopfloor.apps.scheduling.formats import parse_jobshop
from shopfloor.apps.scheduling.generate import random_problem
from shopfloor.apps.scheduling.model import Indexed
from shopfloor.apps.scheduling.sequence import Solution, decode
from shopfloor.apps.scheduling.tsab import is_classic, lower_bound, tsab, warm_up


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    warm_up()  # numba compiles (or loads its cache) once, so that the timings below measure the search


def start_of(problem: Problem, rule: str = "mwkr") -> tuple[Indexed, Solution, int]:
    ix = Indexed.of(problem)
    assign, start = dispatch(ix, rule)  # type: ignore[arg-type]
    solution = Solution.from_starts(ix, assign, start)
    decoded = decode(ix, solution)
    assert decoded is not None
    return ix, solution, max(decoded.end)


def with_releases(problem: Problem) -> Problem:
    jobs = [job.model_copy(update={"release": 7 * k}) for k, job in enumerate(problem.jobs)]
    return problem.model_copy(update={"jobs": jobs})


def test_ft06_reaches_its_optimum_within_a_second() -> None:
    problem = parse_jobshop(FT06)
    ix, solution, before = start_of(problem)
    t0 = time.perf_counter()
    result = tsab(ix, solution, time_limit=1.0, target=55)
    assert time.perf_counter() - t0 < 1.0
    assert before > 55
    assert result.value == 55
    assert result.trace[0][1] == before and result.trace[-1][1] == 55
    assert_valid(problem, ix.to_schedule(result.solution.assign, result.decoded.start))


@pytest.mark.parametrize(("jobs", "machines", "seed", "releases"),
                         [(8, 5, 1, False), (15, 10, 2, False), (30, 5, 3, False), (10, 10, 4, True)])
def test_every_result_passes_the_checker_and_never_worsens(jobs: int, machines: int, seed: int,
                                                           releases: bool) -> None:
    problem = random_problem(jobs, machines, seed=seed)
    if releases:
        problem = with_releases(problem)
    ix, solution, before = start_of(problem)
    result = tsab(ix, solution, time_limit=5.0, seed=seed, max_iterations=3000)
    assert result.value <= before
    assert result.value >= result.lower_bound == lower_bound(ix)
    assert result.value == max(result.decoded.end)
    assert_valid(problem, ix.to_schedule(result.solution.assign, result.decoded.start))


def test_the_same_seed_gives_the_same_schedule() -> None:
    problem = random_problem(15, 8, seed=7)
    ix, solution, _ = start_of(problem)
    runs = [tsab(ix, solution, time_limit=10.0, seed=seed, max_iterations=4000, max_stall=500)
            for seed in (3, 3, 4)]
    assert runs[0].solution.seqs == runs[1].solution.seqs
    assert runs[0].value == runs[1].value and runs[0].iterations == runs[1].iterations == 4000
    assert runs[0].restarts > 0  # the back jumps, with their random kicks, are part of what repeats
    assert_valid(problem, ix.to_schedule(runs[2].solution.assign, runs[2].decoded.start))


def test_the_time_limit_holds() -> None:
    problem = random_problem(20, 15, seed=11)
    ix, solution, _ = start_of(problem)
    t0 = time.perf_counter()
    result = tsab(ix, solution, time_limit=0.3)
    elapsed = time.perf_counter() - t0
    assert 0.25 < elapsed < 1.5  # the limit, plus at most one chunk and a loaded CI machine
    assert result.iterations > 100
    assert result.trace[-1][0] <= elapsed


def test_a_schedule_at_the_lower_bound_is_optimal() -> None:
    problem = Problem(machines=[Machine(id="m")], jobs=[
        Job(id=f"j{k}", operations=[Operation(options=[Option(machine="m", duration=3 + k)])]) for k in range(4)])
    ix, solution, before = start_of(problem)
    result = tsab(ix, solution, time_limit=5.0)
    assert result.optimal and result.value == before == 18 and result.iterations == 0
    solved = solve(problem, time_limit=5.0)
    assert solved.status == "optimal" and solved.best_bound == 18 and "cpsat" not in solved.phases


def test_solve_uses_it_on_a_classic_job_shop() -> None:
    problem = random_problem(20, 5, seed=5)
    result = solve(problem, method="local_search", time_limit=0.5)
    greedy = solve(problem, method="dispatch")
    assert_valid(problem, result.schedule)
    assert result.kpis.makespan < greedy.kpis.makespan
    assert result.total_s < 1.0


def test_other_problems_are_refused() -> None:
    flexible = random_problem(5, 3, seed=1, flexibility=2)
    ix = Indexed.of(flexible)
    assert not is_classic(ix)
    assign, start = dispatch(ix, "spt")
    with pytest.raises(ValueError, match="classic job shop"):
        tsab(ix, Solution.from_starts(ix, assign, start))
    ix, solution, _ = start_of(parse_jobshop(FT06))
    broken = solution.copy()
    broken.seqs[0].pop()
    with pytest.raises(ValueError, match="exactly once"):
        tsab(ix, broken)
    two = Problem(machines=[Machine(id="a"), Machine(id="b")], jobs=[
        Job(id="j1", operations=[Operation(options=[Option(machine="a", duration=2)]),
                                 Operation(options=[Option(machine="b", duration=1)])]),
        Job(id="j2", operations=[Operation(options=[Option(machine="b", duration=2)]),
                                 Operation(options=[Option(machine="a", duration=1)])])])
    with pytest.raises(ValueError, match="cycle"):  # j1 waits for j2 on a, j2 for j1 on b
        tsab(Indexed.of(two), Solution([0, 1, 1, 0], [[3, 0], [1, 2]]))
