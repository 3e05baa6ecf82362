"""Helpers of the scheduling tests: every schedule a test produces goes through the checker."""

from __future__ import annotations

from shopfloor.apps.scheduling import Problem, Schedule, check_schedule

FT06 = """6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
"""  # Fisher and Thompson's 6x6 instance (optimum 55), small enough to write down


def assert_valid(problem: Problem, schedule: Schedule) -> None:
    report = check_schedule(problem, schedule)
    assert report.valid, report.violations


