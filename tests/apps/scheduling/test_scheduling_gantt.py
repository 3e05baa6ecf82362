"""Gantt charts: a PNG image and a standalone interactive page, downtime drawn."""

from __future__ import annotations

from scheduling_testkit import assert_valid

from shopfloor.apps.scheduling import Calendar, Interval, solve
from shopfloor.apps.scheduling.gantt import gantt_html, gantt_png
from shopfloor.apps.scheduling.generate import random_problem


def test_png_and_html() -> None:
    problem = random_problem(5, 3, seed=9, flexibility=2, downtime=True,
                             calendar=Calendar(period=50, available=[Interval(start=0, end=40)]))
    result = solve(problem, method="dispatch")
    assert_valid(problem, result.schedule)
    png = gantt_png(problem, result.schedule)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5000
    html = gantt_html(problem, result.schedule)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "plotly" in html
    for job in problem.jobs:
        assert f'"name":"{job.id}"' in html
    assert '"name":"unavailable"' in html
    assert f"makespan {result.kpis.makespan}" in html
