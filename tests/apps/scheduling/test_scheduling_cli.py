"""`shopfloor schedule solve` and `shopfloor schedule check` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from scheduling_testkit import FT06, assert_valid
from typer.testing import CliRunner

from shopfloor.apps.scheduling import Schedule
from shopfloor.apps.scheduling.formats import format_fjsp, parse_jobshop
from shopfloor.apps.scheduling.generate import random_problem
from shopfloor.cli import app

runner = CliRunner()


def test_solve_writes_gantt_and_result_then_check_accepts_it(tmp_path: Path) -> None:
    instance = tmp_path / "ft06.txt"
    instance.write_text(FT06)
    png, out = tmp_path / "gantt.png", tmp_path / "result.json"
    result = runner.invoke(app, ["schedule", "solve", str(instance), "--time-limit", "5", "--gantt", str(png),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "makespan" in result.output
    assert "55" in result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    saved = json.loads(out.read_text())
    assert_valid(parse_jobshop(FT06), Schedule.model_validate(saved["schedule"]))
    checked = runner.invoke(app, ["schedule", "check", str(instance), str(out)])
    assert checked.exit_code == 0, checked.output
    assert "valid: 36 operations" in checked.output
    saved["schedule"]["operations"][0]["start"] += 1
    out.write_text(json.dumps(saved))
    checked = runner.invoke(app, ["schedule", "check", str(instance), str(out)])
    assert checked.exit_code == 1


def test_solve_flexible_json_and_html(tmp_path: Path) -> None:
    problem = random_problem(4, 3, seed=5, flexibility=2)
    as_json = tmp_path / "p.json"
    as_json.write_text(problem.model_dump_json())
    html = tmp_path / "g.html"
    result = runner.invoke(app, ["schedule", "solve", str(as_json), "--method", "local_search", "--time-limit", "0.3",
                                 "--gantt", str(html)])
    assert result.exit_code == 0, result.output
    assert "plotly" in html.read_text()
    fjs = tmp_path / "p.fjs"
    fjs.write_text(format_fjsp(problem))
    result = runner.invoke(app, ["schedule", "solve", str(fjs), "--method", "dispatch"])
    assert result.exit_code == 0, result.output
    assert "flexible job shop" in result.output


def test_bad_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("2 2\n0 1 1 2\n0 5 9 1\n")
    result = runner.invoke(app, ["schedule", "solve", str(bad)])
    assert result.exit_code == 2
    assert "bad.txt:3: machine 9 outside 0..1" in result.output.replace("\n", "")
    result = runner.invoke(app, ["schedule", "solve", str(bad), "--gantt", "x.pdf"])
    assert result.exit_code == 2
    assert "--gantt must end in .png or .html" in result.output
