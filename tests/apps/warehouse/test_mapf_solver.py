"""The solver on small generated instances; the checker verifies every solution."""

import time

import numpy as np
import pytest
from mapf_helpers import map_text, random_instance, small_warehouse

from shopfloor.apps.warehouse.mapf import GridGraph, MapfError, NoSolution, check_solution, parse_map, solve
from shopfloor.apps.warehouse.mapf.lacam import LacamSearch
from shopfloor.apps.warehouse.mapf.refine import Refiner


def assert_solves(graph, starts, goals, **kw):  # type: ignore[no-untyped-def]
    result = solve(graph, starts, goals, **kw)
    report = check_solution(graph, starts, goals, result.paths)
    assert report.valid, report.violations[:3]
    assert report.soc == result.soc and result.soc >= result.lower_bound
    assert result.soc <= result.initial_soc  # refinement never makes it worse
    assert result.trace[0] == (result.first_solution_s, result.initial_soc) and result.trace[-1][1] == result.soc
    assert all(later[1] < earlier[1] for earlier, later in zip(result.trace, result.trace[1:], strict=False))
    assert result.seconds_to(result.soc / result.lower_bound) is not None
    return result


@pytest.mark.parametrize("n", [1, 10, 40, 80])
def test_random_instances_on_a_small_warehouse(n: int) -> None:
    graph = small_warehouse()
    for seed in range(3):
        starts, goals = random_instance(graph, n, seed)
        result = assert_solves(graph, starts, goals, refine_s=0.3, seed=seed)
        if n == 1:
            assert result.soc == result.lower_bound


def test_refinement_lowers_the_sum_of_costs() -> None:
    graph = small_warehouse()
    starts, goals = random_instance(graph, 60, seed=7)
    dist = graph.distance_table(goals)
    found = LacamSearch(graph, starts, goals, dist, seed=1).run(time.perf_counter() + 10)
    assert isinstance(found, np.ndarray)
    refiner = Refiner(graph, starts, goals, dist, found, seed=1)
    before = refiner.soc
    paths = refiner.run(time.perf_counter() + 5, max_iterations=300)
    report = check_solution(graph, starts, goals, paths)
    assert report.valid and report.soc == refiner.soc
    assert refiner.soc < before


def test_corridor_swap_needs_the_side_pocket() -> None:
    # two agents swap the ends of a corridor; only the pocket below the middle lets them pass
    graph = parse_map(map_text([".....", "@@.@@"]))
    a, b = graph.vertex(0, 0), graph.vertex(4, 0)
    result = assert_solves(graph, [a, b], [b, a])
    assert result.makespan >= 6


def test_dense_instance_where_every_free_cell_but_two_is_taken() -> None:
    graph = parse_map(map_text(["....", "....", "...."]))
    rng = np.random.default_rng(3)
    starts = rng.permutation(12)[:10].astype(np.int32)
    goals = rng.permutation(12)[:10].astype(np.int32)
    assert_solves(graph, starts, goals)


def test_proven_unsolvable_and_unreachable() -> None:
    pair = parse_map(map_text([".."]))
    with pytest.raises(NoSolution, match="exhausted"):
        solve(pair, [0, 1], [1, 0])
    split = parse_map(map_text(["..@.."]))
    with pytest.raises(NoSolution, match="cannot be reached"):
        solve(split, [split.vertex(0, 0)], [split.vertex(4, 0)])


def test_malformed_instances() -> None:
    graph = small_warehouse()
    with pytest.raises(MapfError, match="share the start"):
        solve(graph, [0, 0], [1, 2])
    with pytest.raises(MapfError, match="not a vertex"):
        solve(graph, [0], [graph.num_vertices])
    with pytest.raises(MapfError, match="equal-length"):
        solve(graph, [0, 1], [2])


def test_lacam_exhausts_every_reachable_configuration() -> None:
    # four agents in a 16-cell corridor must reverse their order: impossible. Every placement that keeps
    # their order is reachable, C(16, 4) = 1820 configurations, and LaCAM must visit each before it gives up
    # (this also grows every array of the search well past its initial size).
    graph = GridGraph(np.ones((1, 16), dtype=bool))
    starts = np.array([0, 1, 2, 3], dtype=np.int32)
    goals = starts[::-1].copy()
    search = LacamSearch(graph, starts, goals, graph.distance_table(goals))
    assert search.run(time.perf_counter() + 30) is None
    assert search.high_nodes == 1820
    with pytest.raises(NoSolution, match="exhausted all 1820"):
        solve(graph, starts, goals)


def test_seconds_to_a_ratio_taken_from_the_result_itself() -> None:
    """7078 / 1159 * 1159 rounds below 7078: the trace is compared as ratios, so the final entry is found."""
    from shopfloor.apps.warehouse.mapf.solver import SolveResult

    trace = ((0.1, 8781), (0.5, 7100), (0.7, 7078))
    result = SolveResult(np.zeros((1, 1), np.int32), soc=7078, makespan=195, lower_bound=1159, initial_soc=8781,
                         first_solution_s=0.1, total_s=0.8, lacam_nodes=1, lns_iterations=2, trace=trace)
    assert result.seconds_to(result.soc / result.lower_bound) == 0.7
    assert result.seconds_to(1.5) is None
    assert result.seconds_to(8781 / 1159) == 0.1
