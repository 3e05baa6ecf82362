"""Production scheduling: flexible job shop model, readers, checker, dispatching, tabu search, CP-SAT, rescheduling."""

from shopfloor.apps.scheduling.check import CheckReport, check_schedule
from shopfloor.apps.scheduling.errors import FormatError, InfeasibleProblem, SchedulingError
from shopfloor.apps.scheduling.kpi import Kpis, compute_kpis
from shopfloor.apps.scheduling.model import (
    Calendar,
    Interval,
    Job,
    Machine,
    Operation,
    Option,
    Problem,
    Schedule,
    ScheduledOperation,
    SetupTime,
)
from shopfloor.apps.scheduling.solve import Method, Objective, SolveResult, solve

__all__ = [
    "Calendar",
    "CheckReport",
    "FormatError",
    "InfeasibleProblem",
    "Interval",
    "Job",
    "Kpis",
    "Machine",
    "Method",
    "Objective",
    "Operation",
    "Option",
    "Problem",
    "Schedule",
    "ScheduledOperation",
    "SchedulingError",
    "SetupTime",
    "SolveResult",
    "check_schedule",
    "compute_kpis",
    "solve",
]
