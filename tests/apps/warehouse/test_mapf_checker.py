"""The solution checker on hand-made solutions, one per kind of rule broken, and the standard costs."""

import numpy as np
import pytest
from mapf_helpers import map_text

from shopfloor.apps.warehouse.mapf import InvalidSolution, check_solution, parse_map

# a 5x3 room with a pillar in the middle:
#   .....
#   ..@..
#   .....
G = parse_map(map_text([".....", "..@..", "....."]))


def v(x: int, y: int) -> int:
    return G.vertex(x, y)


def kinds(report: object) -> set[str]:
    return {x.kind for x in report.violations}  # type: ignore[attr-defined]


def test_valid_solution_and_standard_costs() -> None:
    # agent 0 goes along the top row; agent 1 starts at its goal, steps aside and comes back (cost 2)
    p0 = [v(0, 0), v(1, 0), v(2, 0), v(3, 0)]
    p1 = [v(4, 2), v(4, 1), v(4, 2), v(4, 2), v(4, 2)]
    report = check_solution(G, [v(0, 0), v(4, 2)], [v(3, 0), v(4, 2)], [p0, p1])
    assert report.valid, report.violations
    assert report.costs.tolist() == [3, 2]
    assert (report.soc, report.makespan) == (5, 3)
    report.raise_if_invalid()


def test_following_is_allowed() -> None:
    p0 = [v(1, 0), v(2, 0), v(3, 0)]
    p1 = [v(0, 0), v(1, 0), v(2, 0)]  # enters the cell agent 0 leaves at the same step
    assert check_solution(G, [v(1, 0), v(0, 0)], [v(3, 0), v(2, 0)], [p0, p1]).valid


def test_vertex_conflict() -> None:
    p0 = [v(0, 0), v(1, 0), v(2, 0)]
    p1 = [v(2, 0), v(1, 0), v(1, 0)]  # both at (1,0) at t=1
    report = check_solution(G, [v(0, 0), v(2, 0)], [v(2, 0), v(1, 0)], [p0, p1])
    assert "vertex-conflict" in kinds(report)
    hit = next(x for x in report.violations if x.kind == "vertex-conflict")
    assert hit.time == 1 and set(hit.agents) == {0, 1}
    with pytest.raises(InvalidSolution, match="vertex-conflict"):
        report.raise_if_invalid()


def test_swap_conflict() -> None:
    p0 = [v(0, 0), v(1, 0), v(1, 1)]
    p1 = [v(1, 0), v(0, 0), v(0, 1)]  # (0,0) <-> (1,0) between t=0 and t=1
    report = check_solution(G, [v(0, 0), v(1, 0)], [v(1, 1), v(0, 1)], [p0, p1])
    assert kinds(report) == {"swap-conflict"}
    assert report.violations[0].agents == (0, 1) and report.violations[0].time == 0


def test_jumps_and_unknown_vertices() -> None:
    report = check_solution(G, [v(0, 0)], [v(3, 0)], [[v(0, 0), v(3, 0)]])
    assert kinds(report) == {"move"}
    report = check_solution(G, [v(0, 0)], [v(0, 0)], [[v(0, 0), G.num_vertices]])
    assert kinds(report) == {"vertex-id"}
    # diagonal steps are not moves on a 4-connected grid
    assert kinds(check_solution(G, [v(0, 0)], [v(1, 1)], [[v(0, 0), v(1, 1)]])) == {"move"}


def test_wrong_start_and_goal_not_reached() -> None:
    report = check_solution(G, [v(0, 0)], [v(4, 0)], [[v(1, 0), v(2, 0)]])
    assert kinds(report) == {"start", "goal"}


def test_time_major_array_and_bad_shapes() -> None:
    arr = np.array([[v(0, 0), v(4, 2)], [v(1, 0), v(4, 2)]])
    assert check_solution(G, arr[0], arr[-1], arr).valid
    with pytest.raises(InvalidSolution, match="must be"):
        check_solution(G, arr[0], arr[-1], arr[:, :1])
    with pytest.raises(InvalidSolution, match="1 paths for 2 agents"):
        check_solution(G, arr[0], arr[-1], [[v(0, 0)]])
    with pytest.raises(InvalidSolution, match="empty path"):
        check_solution(G, arr[0], arr[-1], [[v(0, 0)], []])
