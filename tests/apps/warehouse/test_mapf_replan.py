"""Replanning from current positions when a vehicle stops or a cell is blocked."""

import numpy as np
import pytest
from mapf_helpers import random_instance, small_warehouse

from shopfloor.apps.warehouse.mapf import MapfError, check_solution, positions_at, replan, solve


def test_stopped_vehicle_becomes_an_obstacle() -> None:
    graph = small_warehouse()
    starts, goals = random_instance(graph, 30, seed=11)
    plan = solve(graph, starts, goals, refine_s=0.2)
    now = positions_at(plan.paths, 4)
    result = replan(graph, now, goals, stopped=[0, 5], refine_s=0.2)
    assert result.stopped == (0, 5)
    assert (result.paths[:, 0] == now[0]).all() and (result.paths[:, 5] == now[5]).all()
    report = check_solution(graph, now, result.goals, result.paths)  # stopped ones included: no one runs into them
    assert report.valid, report.violations[:3]
    moving = [a for a in range(30) if a not in (0, 5, *result.holding)]
    assert (result.paths[-1, moving] == goals[moving]).all()


def test_blocked_cell_is_avoided_and_a_blocked_goal_holds() -> None:
    graph = small_warehouse()
    starts, goals = random_instance(graph, 20, seed=5)
    plan = solve(graph, starts, goals, refine_s=0.1)
    now = positions_at(plan.paths, 2)
    on_route = next(int(v) for v in plan.paths[3:, 1] if v not in now)  # a cell agent 1 is about to use
    blocked = [graph.xy(on_route), graph.xy(int(goals[2]))]
    if int(goals[2]) in now:
        pytest.skip("agent 2 is already home in this instance")
    result = replan(graph, now, goals, blocked_cells=blocked, refine_s=0.1)
    assert 2 in result.holding and result.goals[2] == now[2]
    assert check_solution(graph, now, result.goals, result.paths).valid
    blocked_ids = {graph.vertex(*xy) for xy in blocked}
    assert not np.isin(result.paths, list(blocked_ids)).any()


def test_bad_replanning_requests() -> None:
    graph = small_warehouse()
    starts, goals = random_instance(graph, 5, seed=1)
    with pytest.raises(MapfError, match="stand on blocked cells"):
        replan(graph, starts, goals, blocked_cells=[graph.xy(int(starts[0]))])
    with pytest.raises(MapfError, match="not all in"):
        replan(graph, starts, goals, stopped=[9])
    with pytest.raises(MapfError, match="5 positions but 4 goals"):
        replan(graph, starts, goals[:4])
