"""Multi-agent path finding on warehouse grids: MovingAI readers, grid graph, checker, LaCAM + LNS, replanning."""

from shopfloor.apps.warehouse.mapf.checker import InvalidSolution, SolutionReport, Violation, check_solution
from shopfloor.apps.warehouse.mapf.grid import GridError, GridGraph
from shopfloor.apps.warehouse.mapf.movingai import (
    MovingAIFormatError,
    Scenario,
    parse_map,
    parse_scenario,
    read_map,
    read_scenario,
    scenario_vertices,
)
from shopfloor.apps.warehouse.mapf.replan import ReplanResult, positions_at, replan
from shopfloor.apps.warehouse.mapf.solver import MapfError, NoSolution, SolveResult, SolveTimeout, solve

__all__ = [
    "GridError",
    "GridGraph",
    "InvalidSolution",
    "MapfError",
    "MovingAIFormatError",
    "NoSolution",
    "ReplanResult",
    "Scenario",
    "SolutionReport",
    "SolveResult",
    "SolveTimeout",
    "Violation",
    "check_solution",
    "parse_map",
    "parse_scenario",
    "positions_at",
    "read_map",
    "read_scenario",
    "replan",
    "scenario_vertices",
    "solve",
]
