"""The checker catches each kind of violation, and passes a valid schedule."""

from __future__ import annotations

import pytest

from shopfloor.apps.scheduling import (
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
    check_schedule,
)


def _problem() -> Problem:
    return Problem(
        name="check",
        machines=[Machine(id="A", downtime=[Interval(start=30, end=40)]),
                  Machine(id="B", calendar=Calendar(period=100, available=[Interval(start=0, end=80)]))],
        jobs=[
            Job(id="J1", family="red", operations=[
                Operation(options=[Option(machine="A", duration=10)]),
                Operation(options=[Option(machine="B", duration=5), Option(machine="A", duration=8)]),
            ]),
            Job(id="J2", family="blue", release=5, operations=[Operation(options=[Option(machine="A", duration=4)])]),
        ],
        setups=[SetupTime(machine="A", from_family="red", to_family="blue", time=3)],
    )


def _op(job: str, index: int, machine: str, start: int, end: int) -> ScheduledOperation:
    return ScheduledOperation(job=job, index=index, machine=machine, start=start, end=end)


VALID = [_op("J1", 0, "A", 0, 10), _op("J1", 1, "B", 10, 15), _op("J2", 0, "A", 13, 17)]


def test_a_valid_schedule_passes() -> None:
    report = check_schedule(_problem(), Schedule(operations=VALID))
    assert report.valid, report.violations


@pytest.mark.parametrize(("changed", "words"), [
    ({2: _op("J2", 0, "A", 12, 16)}, "setup 3 overlaps"),
    ({2: _op("J2", 0, "A", 8, 12)}, "overlaps"),
    ({1: _op("J1", 1, "B", 9, 14)}, "before the end of J1/0"),
    ({2: _op("J2", 0, "A", 1, 5), 0: _op("J1", 0, "A", 6, 16), 1: _op("J1", 1, "B", 16, 21)}, "before its release"),
    ({1: _op("J1", 1, "A", 10, 15)}, "lasts 5, needs 8"),
    ({2: _op("J2", 0, "B", 13, 17)}, "not eligible"),
    ({2: _op("J2", 0, "A", 28, 32)}, "calendar or downtime"),
    ({1: _op("J1", 1, "B", 78, 83)}, "calendar or downtime"),
    ({2: _op("J9", 0, "A", 13, 17)}, "no such operation"),
])
def test_each_violation_is_found(changed: dict[int, ScheduledOperation], words: str) -> None:
    ops = [changed.get(i, op) for i, op in enumerate(VALID)]
    report = check_schedule(_problem(), Schedule(operations=ops))
    assert not report.valid
    assert any(words in v for v in report.violations), report.violations


def test_missing_and_duplicated_operations() -> None:
    report = check_schedule(_problem(), Schedule(operations=[*VALID[:2], VALID[0]]))
    assert "J1/0: scheduled twice" in report.violations
    assert "J2/0: not scheduled" in report.violations


def test_calendar_repeats_every_period() -> None:
    ops = [_op("J1", 0, "A", 0, 10), _op("J1", 1, "B", 100, 105), _op("J2", 0, "A", 13, 17)]
    assert check_schedule(_problem(), Schedule(operations=ops)).valid
    ops[1] = _op("J1", 1, "B", 178, 183)
    assert not check_schedule(_problem(), Schedule(operations=ops)).valid


@pytest.mark.parametrize("payload", [
    {"machines": [{"id": "A"}], "jobs": [{"id": "J", "operations": [{"options": [{"machine": "X", "duration": 1}]}]}]},
    {"machines": [{"id": "A"}, {"id": "A"}], "jobs": [{"id": "J", "operations": [{"options": [
        {"machine": "A", "duration": 1}]}]}]},
    {"machines": [{"id": "A", "downtime": [{"start": 5, "end": 5}]}], "jobs": [{"id": "J", "operations": [
        {"options": [{"machine": "A", "duration": 1}]}]}]},
    {"machines": [{"id": "A"}], "jobs": [{"id": "J", "operations": [{"options": [{"machine": "A", "duration": -1}]}]}]},
])
def test_the_model_refuses_inconsistent_problems(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Problem.model_validate(payload)
