"""Readers of the OR-Library, Taillard and Brandimarte formats, and their errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from scheduling_testkit import FT06

from shopfloor.apps.scheduling.errors import FormatError
from shopfloor.apps.scheduling.formats import (
    detect_format,
    format_fjsp,
    format_jobshop,
    parse_fjsp,
    parse_instance,
    parse_jobshop,
    parse_taillard,
    read_instance,
)
from shopfloor.apps.scheduling.generate import random_problem


def test_jobshop_reads_ft06() -> None:
    problem = parse_jobshop(FT06, "ft06.txt")
    assert problem.name == "ft06"
    assert problem.size == "6x6"
    assert not problem.is_flexible
    first = problem.jobs[0].operations
    assert [(op.options[0].machine, op.options[0].duration) for op in first[:2]] == [("M2", 1), ("M0", 3)]


def test_taillard_layout_gives_the_same_problem_as_the_standard_one() -> None:
    problem = parse_jobshop(FT06)
    times = "\n".join(" ".join(str(op.options[0].duration) for op in j.operations) for j in problem.jobs)
    machines = "\n".join(" ".join(str(int(op.options[0].machine[1:]) + 1) for op in j.operations) for j in problem.jobs)
    text = f"Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound\n6 6 1 2 55 55\nTimes\n" \
           f"{times}\nMachines\n{machines}\n"
    assert detect_format(text) == "taillard"
    assert parse_taillard(text).jobs == problem.jobs
    compact = f"6 6\n{times}\n{machines}\n"
    assert detect_format(compact) == "taillard"
    assert parse_instance(compact).jobs == problem.jobs


def test_round_trips_through_both_writers() -> None:
    classic = random_problem(5, 4, seed=3)
    assert parse_instance(format_jobshop(classic)).jobs == classic.jobs
    flexible = random_problem(5, 4, seed=3, flexibility=3)
    assert flexible.is_flexible
    text = format_fjsp(flexible)
    assert detect_format(text) == "fjsp"
    back = parse_fjsp(text)
    assert [[sorted((int(o.machine[1:]) - 1, o.duration) for o in op.options) for op in j.operations]
            for j in back.jobs] == [[sorted((int(o.machine[1:]), o.duration) for o in op.options)
                                     for op in j.operations] for j in flexible.jobs]


def test_brandimarte_line() -> None:
    problem = parse_fjsp("2 3 1.5\n2 2 1 5 3 4 1 2 7\n1 1 3 9\n", "tiny.fjs")
    assert problem.is_flexible
    assert [o.machine for o in problem.jobs[0].operations[0].options] == ["M1", "M3"]
    assert problem.jobs[1].operations[0].options[0].duration == 9


@pytest.mark.parametrize(("parser", "text", "line", "words"), [
    (parse_jobshop, "", None, "empty file"),
    (parse_jobshop, "2\n0 1\n", 1, "jobs machines"),
    (parse_jobshop, "2 2\n0 1 1 2\n", 2, "expected 2 job lines"),
    (parse_jobshop, "1 2\n0 1 x 2\n", 2, "whole numbers"),
    (parse_jobshop, "1 2\n0 1 1\n", 2, "pairs"),
    (parse_jobshop, "1 2\n0 1 2 3\n", 2, "machine 2 outside 0..1"),
    (parse_jobshop, "1 2\n0 -1 1 3\n", 2, "negative duration"),
    (parse_taillard, "1 2\n3 4\n", 2, "expected 1 lines of times"),
    (parse_taillard, "1 2\n3 4\n1 3\n", 3, "machine 3 outside 1..2"),
    (parse_fjsp, "1 2 1\n2 1 1 5\n", 2, "operation 2 of 2 is missing"),
    (parse_fjsp, "1 2 1\n1 2 1 5 2\n", 2, "expected 2 'machine duration' pairs"),
    (parse_fjsp, "1 2 1\n1 1 1 5 7\n", 2, "1 numbers left"),
    (parse_fjsp, "1 2 1\n1 2 1 5 1 6\n", 2, "lists a machine twice"),
    (parse_fjsp, "1 2 1\n1 1 1 5\n1 1 1 5\n", 3, "unexpected line"),
])
def test_bad_files_name_file_and_line(parser: object, text: str, line: int | None, words: str) -> None:
    with pytest.raises(FormatError) as caught:
        parser(text, "bad.txt")  # type: ignore[operator]
    assert caught.value.source == "bad.txt"
    assert caught.value.line == line
    assert words in str(caught.value)
    assert str(caught.value).startswith("bad.txt")


def test_read_instance_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"nope\.txt: cannot read"):
        read_instance(tmp_path / "nope.txt")
    good = tmp_path / "ft06.txt"
    good.write_text(FT06)
    assert read_instance(good).name == "ft06"
