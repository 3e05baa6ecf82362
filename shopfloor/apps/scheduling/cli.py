"""`shopfloor schedule ...`: solve a benchmark or JSON problem, draw its Gantt chart, check a schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Production scheduling: job shop and flexible job shop.", no_args_is_help=True)
console = Console(stderr=True)


def _load_problem(path: Path, fmt: str) -> object:
    from pydantic import ValidationError

    from shopfloor.apps.scheduling.errors import FormatError
    from shopfloor.apps.scheduling.formats import read_instance
    from shopfloor.apps.scheduling.model import Problem

    if fmt == "json" or (fmt == "auto" and path.suffix.lower() == ".json"):
        try:
            return Problem.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise FormatError(str(path), None, f"cannot read: {exc}") from None
        except ValidationError as exc:
            raise FormatError(str(path), None, f"not a valid problem: {exc}") from None
    return read_instance(path, fmt)  # type: ignore[arg-type]


def _fail(message: str, code: int = 2) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command("solve")
def solve_command(
    file: Annotated[Path, typer.Argument(help="Problem: OR-Library/Taillard/Brandimarte text, or JSON.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, jobshop, taillard, fjsp or json.")] = "auto",
    method: Annotated[str, typer.Option(help="dispatch, local_search or cpsat.")] = "cpsat",
    objective: Annotated[str, typer.Option(help="makespan or weighted_tardiness.")] = "makespan",
    time_limit: Annotated[float, typer.Option(help="Seconds for the whole solve.")] = 10.0,
    workers: Annotated[int, typer.Option(help="CP-SAT workers.")] = 2,
    gantt: Annotated[Path | None, typer.Option(help="Write the Gantt chart: .png or .html.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the result (schedule, KPIs, check) as JSON.")] = None,
) -> None:
    """Schedule FILE and print its KPIs; every schedule is checked before it is shown."""
    from shopfloor.apps.scheduling.errors import SchedulingError
    from shopfloor.apps.scheduling.gantt import gantt_html, gantt_png
    from shopfloor.apps.scheduling.model import Problem
    from shopfloor.apps.scheduling.solve import solve

    if fmt not in ("auto", "jobshop", "taillard", "fjsp", "json"):
        raise _fail(f"unknown format {fmt!r}")
    if method not in ("dispatch", "local_search", "cpsat"):
        raise _fail(f"unknown method {method!r}")
    if objective not in ("makespan", "weighted_tardiness"):
        raise _fail(f"unknown objective {objective!r}")
    if gantt is not None and gantt.suffix.lower() not in (".png", ".html"):
        raise _fail("--gantt must end in .png or .html")
    if time_limit <= 0:
        raise _fail("--time-limit must be positive")
    try:
        problem = _load_problem(file, fmt)
        assert isinstance(problem, Problem)
        result = solve(problem, method=method, objective=objective, time_limit=time_limit,  # type: ignore[arg-type]
                       workers=workers)
    except SchedulingError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{problem.name} ({problem.size}, {'flexible ' if problem.is_flexible else ''}job shop)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    k = result.kpis
    for label, value in (
        ("status", result.status), ("makespan", f"{k.makespan}"),
        ("weighted tardiness", f"{k.total_weighted_tardiness:g}"), ("tardy jobs", f"{k.tardy_jobs}"),
        ("best bound", f"{result.best_bound:g}" if result.best_bound is not None else "-"),
        ("first feasible", f"{result.first_feasible_s * 1000:.1f} ms"), ("total", f"{result.total_s:.2f} s"),
        ("mean utilisation", f"{sum(k.utilisation.values()) / max(1, len(k.utilisation)):.1%}"),
        ("check", "valid" if result.check.valid else "INVALID"),
    ):
        table.add_row(label, value)
    Console().print(table)
    if gantt is not None:
        if gantt.suffix.lower() == ".png":
            gantt.write_bytes(gantt_png(problem, result.schedule))
        else:
            gantt.write_text(gantt_html(problem, result.schedule), encoding="utf-8")
        console.print(f"Gantt chart written to {gantt}")
    if out is not None:
        out.write_text(result.model_dump_json(indent=1), encoding="utf-8")
        console.print(f"result written to {out}")


@app.command("check")
def check_command(
    problem_file: Annotated[Path, typer.Argument(help="The problem (benchmark text or JSON).")],
    schedule_file: Annotated[Path, typer.Argument(help="A schedule as JSON (or a result written by solve --out).")],
    fmt: Annotated[str, typer.Option("--format", help="Format of the problem file.")] = "auto",
) -> None:
    """Check a schedule against its problem; exits 1 and lists the violations when it is not valid."""
    import json

    from pydantic import ValidationError

    from shopfloor.apps.scheduling.check import check_schedule
    from shopfloor.apps.scheduling.errors import SchedulingError
    from shopfloor.apps.scheduling.model import Problem, Schedule

    try:
        problem = _load_problem(problem_file, fmt)
        assert isinstance(problem, Problem)
        raw = json.loads(schedule_file.read_text(encoding="utf-8"))
        schedule = Schedule.model_validate(raw.get("schedule", raw) if isinstance(raw, dict) else raw)
    except SchedulingError as exc:
        raise _fail(str(exc)) from None
    except (OSError, ValueError, ValidationError) as exc:
        raise _fail(f"{schedule_file}: not a schedule: {exc}") from None
    report = check_schedule(problem, schedule)
    if report.valid:
        Console().print(f"valid: {len(schedule.operations)} operations")
        return
    for violation in report.violations:
        Console().print(violation, highlight=False)
    raise typer.Exit(1)
