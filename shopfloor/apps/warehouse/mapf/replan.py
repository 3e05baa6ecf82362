"""Replanning when a vehicle stops or a path is blocked: solve again from where everyone is now.

Stopped vehicles and blocked cells become obstacles (the grid loses those cells), the moving vehicles
keep their goals and start from their current cells. A vehicle whose goal is now blocked or cut off
holds its cell instead (and is reported), and so does any vehicle whose goal that holder sits on, so
the new instance is always well formed. Paths come back in the original map's vertex ids, with the
stopped vehicles waiting where they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.mapf.grid import GridGraph
from shopfloor.apps.warehouse.mapf.solver import MapfError, SolveResult, solve


@dataclass(frozen=True)
class ReplanResult:
    """New paths for every vehicle (original vertex ids), and who cannot reach its goal any more."""

    paths: NDArray[np.int32] = field(repr=False)
    goals: NDArray[np.int32]
    holding: tuple[int, ...]
    stopped: tuple[int, ...]
    solve: SolveResult


def positions_at(paths: NDArray[np.int32], t: int) -> NDArray[np.int32]:
    """Every agent's vertex at time ``t`` (they wait at their goals after the last row)."""
    return np.ascontiguousarray(paths[min(t, paths.shape[0] - 1)])


def replan(graph: GridGraph, positions: NDArray[np.integer], goals: NDArray[np.integer], *,
           stopped: Iterable[int] = (), blocked_cells: Iterable[tuple[int, int]] = (),
           time_limit_s: float = 10.0, refine_s: float = 1.0, seed: int = 0) -> ReplanResult:
    """Plan again from ``positions``; ``stopped`` agents and ``blocked_cells`` ((x, y)) are obstacles."""
    pos = np.asarray(positions, dtype=np.int32)
    goal = np.asarray(goals, dtype=np.int32).copy()
    n = len(pos)
    if goal.shape != pos.shape:
        raise MapfError(f"{n} positions but {len(goal)} goals")
    stop = sorted({int(a) for a in stopped})
    if any(not 0 <= a < n for a in stop):
        raise MapfError(f"stopped agents {stop} are not all in 0..{n - 1}")
    blocked = {graph.vertex(int(x), int(y)) for x, y in blocked_cells}
    moving = np.array([a for a in range(n) if a not in set(stop)], dtype=np.int64)
    on_blocked = [int(a) for a in moving if int(pos[a]) in blocked]
    if on_blocked:
        raise MapfError(f"agents {on_blocked} stand on blocked cells: report them as stopped")
    obstacles = blocked | {int(pos[a]) for a in stop}
    reduced = graph.without(sorted(obstacles)) if obstacles else graph

    def to_reduced(v: NDArray[np.int32]) -> NDArray[np.int32]:
        cells = graph.cells[v]
        return reduced.vertex_of[cells[:, 0], cells[:, 1]]

    r_pos = to_reduced(pos[moving])
    r_goal = to_reduced(goal[moving])
    holding: set[int] = set()
    for k in range(len(moving)):  # goal blocked or cut off from here: hold
        if r_goal[k] < 0 or reduced.distances_from(int(r_goal[k]))[r_pos[k]] < 0:
            holding.add(k)
    while True:  # a holder sitting on someone else's goal makes that one hold too
        held_cells = {int(r_pos[k]) for k in holding}
        more = {k for k in range(len(moving)) if k not in holding and int(r_goal[k]) in held_cells}
        if not more:
            break
        holding |= more
    for k in holding:
        r_goal[k] = r_pos[k]
    result = solve(reduced, r_pos, r_goal, time_limit_s=time_limit_s, refine_s=refine_s, seed=seed)
    horizon = result.paths.shape[0]
    paths = np.empty((horizon, n), dtype=np.int32)
    cells = reduced.cells[result.paths]
    paths[:, moving] = graph.vertex_of[cells[..., 0], cells[..., 1]]
    for a in stop:
        paths[:, a] = pos[a]
    final_goals = goal.copy()
    final_goals[stop] = pos[stop]
    held = sorted(int(moving[k]) for k in holding)
    final_goals[held] = pos[held]
    return ReplanResult(paths=paths, goals=final_goals, holding=tuple(held), stopped=tuple(stop), solve=result)
