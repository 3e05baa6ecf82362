"""An independent checker of MAPF solutions: valid moves, no vertex or swap conflicts, goals reached and kept.

It shares nothing with the solver except the grid (and uses the cells' coordinates, not the solver's
neighbour lists), so a solver bug cannot hide behind the same bug in the check. Costs are the standard
ones: an agent's cost is the time it last arrives at its goal (it never leaves again afterwards), the sum
of costs adds them up, the makespan is their maximum. An agent whose path ends early waits at its last cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.mapf.grid import GridGraph
from shopfloor.core.errors import ShopfloorError

MAX_VIOLATIONS = 100


class InvalidSolution(ShopfloorError):
    """A MAPF solution that breaks a rule; the message lists the first violations."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``kind`` is start, goal, vertex-id, move, vertex-conflict or swap-conflict."""

    kind: str
    time: int
    agents: tuple[int, ...]
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at t={self.time}, agents {list(self.agents)}: {self.detail}"


@dataclass(frozen=True)
class SolutionReport:
    """What the checker found; ``costs`` are per agent (time of the last arrival at the goal)."""

    violations: tuple[Violation, ...]
    costs: NDArray[np.int64] = field(repr=False)
    soc: int
    makespan: int

    @property
    def valid(self) -> bool:
        return not self.violations

    def raise_if_invalid(self) -> None:
        if self.violations:
            shown = "; ".join(str(v) for v in self.violations[:5])
            more = f" (and {len(self.violations) - 5} more)" if len(self.violations) > 5 else ""
            raise InvalidSolution(f"{len(self.violations)} violations: {shown}{more}")


def time_major(paths: NDArray[np.integer] | Sequence[Sequence[int]], n_agents: int) -> NDArray[np.int64]:
    """Paths as a (T+1, N) array; a per-agent list of vertex sequences is padded with each last cell."""
    if isinstance(paths, np.ndarray):
        arr = np.asarray(paths, dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != n_agents or arr.shape[0] == 0:
            raise InvalidSolution(f"paths array must be (T+1, {n_agents}), got {arr.shape}")
        return arr
    if len(paths) != n_agents:
        raise InvalidSolution(f"{len(paths)} paths for {n_agents} agents")
    if any(len(p) == 0 for p in paths):
        raise InvalidSolution("an agent has an empty path")
    horizon = max(len(p) for p in paths)
    out = np.empty((horizon, n_agents), dtype=np.int64)
    for i, p in enumerate(paths):
        out[:len(p), i] = p
        out[len(p):, i] = p[-1]
    return out


def check_solution(graph: GridGraph, starts: NDArray[np.integer], goals: NDArray[np.integer],
                   paths: NDArray[np.integer] | Sequence[Sequence[int]]) -> SolutionReport:
    """Check every rule and compute the costs; never raises for a bad solution (see ``raise_if_invalid``)."""
    starts = np.asarray(starts, dtype=np.int64)
    goals = np.asarray(goals, dtype=np.int64)
    n = len(starts)
    p = time_major(paths, n)
    found: list[Violation] = []

    def add(kind: str, t: int, agents: tuple[int, ...], detail: str) -> None:
        if len(found) < MAX_VIOLATIONS:
            found.append(Violation(kind, t, agents, detail))

    bad_ids = np.argwhere((p < 0) | (p >= graph.num_vertices))
    for t, i in bad_ids[:MAX_VIOLATIONS]:
        add("vertex-id", int(t), (int(i),), f"vertex {int(p[t, i])} is not a free cell of the map")
    if len(bad_ids):
        return SolutionReport(tuple(found), np.zeros(n, dtype=np.int64), 0, 0)

    for i in np.nonzero(p[0] != starts)[0]:
        add("start", 0, (int(i),), f"starts at {graph.xy(int(p[0, i]))}, not {graph.xy(int(starts[i]))}")
    for i in np.nonzero(p[-1] != goals)[0]:
        add("goal", p.shape[0] - 1, (int(i),), f"ends at {graph.xy(int(p[-1, i]))}, not its goal "
            f"{graph.xy(int(goals[i]))}")

    cells = graph.cells.astype(np.int64)
    rows, cols = cells[p, 0], cells[p, 1]
    step = np.abs(np.diff(rows, axis=0)) + np.abs(np.diff(cols, axis=0))
    for t, i in np.argwhere(step > 1)[:MAX_VIOLATIONS]:
        add("move", int(t), (int(i),), f"jumps from {graph.xy(int(p[t, i]))} to {graph.xy(int(p[t + 1, i]))}")

    order = np.argsort(p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    for t, k in np.argwhere(sorted_p[:, 1:] == sorted_p[:, :-1])[:MAX_VIOLATIONS]:
        a, b = int(order[t, k]), int(order[t, k + 1])
        add("vertex-conflict", int(t), (a, b), f"both at {graph.xy(int(p[t, a]))}")

    if p.shape[0] > 1:
        v = np.int64(graph.num_vertices)
        t_idx = np.broadcast_to(np.arange(p.shape[0] - 1, dtype=np.int64)[:, None], (p.shape[0] - 1, n))
        src, dst = p[:-1], p[1:]
        moving = src != dst
        forward = ((t_idx * v + src) * v + dst)[moving]
        backward = ((t_idx * v + dst) * v + src)[moving]
        hit = np.isin(forward, backward)
        if hit.any():
            owners = np.argwhere(moving)[hit]
            key_owner = dict(zip(forward[hit].tolist(), owners[:, 1].tolist(), strict=True))
            for (t, i), key in zip(owners[:MAX_VIOLATIONS], backward[hit][:MAX_VIOLATIONS], strict=False):
                j = key_owner.get(int(key), -1)
                if i < j:
                    add("swap-conflict", int(t), (int(i), int(j)),
                        f"swap {graph.xy(int(p[t, i]))} <-> {graph.xy(int(p[t + 1, i]))}")

    away = p != goals[None, :]
    last_away = np.where(away.any(axis=0), p.shape[0] - 1 - np.argmax(away[::-1], axis=0), -1)
    costs = (last_away + 1).astype(np.int64)
    found.sort(key=lambda x: (x.time, x.kind))
    return SolutionReport(tuple(found), costs, int(costs.sum()), int(costs.max(initial=0)))
