"""The MAPF solver: LaCAM finds a solution fast, large neighbourhood search then lowers its sum of costs.

LaCAM (with PIBT and its swap rule) is complete and solves hundreds of agents on a warehouse map in
tenths of a second, but PIBT's greedy moves push agents off their goals, so its sum of costs runs to
about twice the lower bound at 500 agents. The remaining time goes to MAPF-LNS, which only accepts
changes that keep the solution valid and lower the cost: the caller trades time for quality with
``refine_s``. Every returned solution has passed ``check_solution``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.mapf.checker import check_solution
from shopfloor.apps.warehouse.mapf.grid import GridGraph
from shopfloor.apps.warehouse.mapf.lacam import LacamSearch
from shopfloor.apps.warehouse.mapf.refine import Refiner
from shopfloor.core.errors import ShopfloorError


class MapfError(ShopfloorError):
    """A MAPF instance that is malformed, or one the solver could not solve."""


class NoSolution(MapfError):
    """The instance provably has no solution (a goal is unreachable, or LaCAM exhausted the search)."""


class SolveTimeout(MapfError):
    """No solution was found within the time limit."""


@dataclass(frozen=True)
class SolveResult:
    """A checked solution: ``paths[t, i]`` is agent i's vertex at time t; costs per the standard definition."""

    paths: NDArray[np.int32] = field(repr=False)
    soc: int
    makespan: int
    lower_bound: int
    initial_soc: int
    first_solution_s: float
    total_s: float
    lacam_nodes: int
    lns_iterations: int
    trace: tuple[tuple[float, int], ...] = ()  # (seconds since the call, sum of costs) at each improvement

    def seconds_to(self, ratio: float) -> float | None:
        """When the sum of costs first fell to ``ratio`` x the lower bound (None if it never did)."""
        # soc / lb, not soc <= ratio * lb: the ratio usually comes from soc / lb itself, and the product
        # can round below soc (7078 / 1159 * 1159 < 7078 in floating point).
        bound = self.lower_bound or 1
        return next((t for t, soc in self.trace if soc / bound <= ratio), None)

    @property
    def soc_ratio(self) -> float:
        """Sum of costs over the sum of shortest-path lengths (1.0 is optimal for certain)."""
        return self.soc / self.lower_bound if self.lower_bound else 1.0


def validate_instance(graph: GridGraph, starts: NDArray[np.integer],
                      goals: NDArray[np.integer]) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Starts and goals as int32 vertex arrays; MapfError for bad shapes, ids or shared cells."""
    s = np.asarray(starts)
    g = np.asarray(goals)
    if s.ndim != 1 or g.shape != s.shape or len(s) == 0:
        raise MapfError(f"starts and goals must be equal-length 1-D vertex arrays, got {s.shape} and {g.shape}")
    for what, arr in (("start", s), ("goal", g)):
        bad = np.nonzero((arr < 0) | (arr >= graph.num_vertices))[0]
        if len(bad):
            raise MapfError(f"agent {int(bad[0])}: {what} {int(arr[bad[0]])} is not a vertex of the map")
        uniq, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            shared = int(uniq[counts > 1][0])
            agents = np.nonzero(arr == shared)[0][:2].tolist()
            raise MapfError(f"agents {agents} share the {what} cell {graph.xy(shared)}")
    return s.astype(np.int32), g.astype(np.int32)


def solve(graph: GridGraph, starts: NDArray[np.integer], goals: NDArray[np.integer], *,
          time_limit_s: float = 10.0, refine_s: float = 2.0, stall_iterations: int = 2000,
          seed: int = 0) -> SolveResult:
    """Solve the instance; refine for up to ``refine_s`` seconds, never past ``time_limit_s`` in all.

    Refinement also stops after ``stall_iterations`` steps without a gain, or at the lower bound.
    Raises NoSolution, SolveTimeout, or MapfError for a malformed instance.
    """
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    starts32, goals32 = validate_instance(graph, starts, goals)
    n = len(starts32)
    dist = graph.distance_table(goals32)
    lower = dist[np.arange(n), starts32]
    if (lower < 0).any():
        agent = int(np.nonzero(lower < 0)[0][0])
        raise NoSolution(f"agent {agent}: goal {graph.xy(int(goals32[agent]))} cannot be reached from "
                         f"{graph.xy(int(starts32[agent]))}")
    search = LacamSearch(graph, starts32, goals32, dist, seed=seed)
    found = search.run(deadline)
    if found is None:
        raise NoSolution(f"LaCAM exhausted all {search.high_nodes} reachable configurations")
    if found is False:
        raise SolveTimeout(f"no solution within {time_limit_s:g} s ({search.high_nodes} configurations explored)")
    assert isinstance(found, np.ndarray)
    first_s = time.perf_counter() - t0
    refiner = Refiner(graph, starts32, goals32, dist, found, seed=seed)
    initial_soc = refiner.soc
    refine_deadline = min(deadline, time.perf_counter() + refine_s)
    best, stall = refiner.soc, 0
    trace = [(first_s, best)]
    while time.perf_counter() < refine_deadline and stall < stall_iterations:
        if (refiner.costs == refiner.lower).all():
            break
        refiner.step()
        if refiner.soc < best:
            best, stall = refiner.soc, 0
            trace.append((time.perf_counter() - t0, best))
        else:
            stall += 1
    paths = refiner.solution()
    report = check_solution(graph, starts32, goals32, paths)
    report.raise_if_invalid()  # a solver bug must never reach a vehicle
    return SolveResult(paths=paths, soc=report.soc, makespan=report.makespan, lower_bound=int(lower.sum()),
                       initial_soc=initial_soc, first_solution_s=first_s, total_s=time.perf_counter() - t0,
                       lacam_nodes=search.high_nodes, lns_iterations=refiner.iterations, trace=tuple(trace))
