"""Each rule kind on hand-made series: when the alarm rises, when it clears, with which value and time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shopfloor.config import ConfigError
from shopfloor.core.samples import SampleBatch

PRESS = "plant/a/l/press"
T0 = 1_763_800_000_000_000_000

Make = Callable[[str], Any]


def series(start_s: float, values: list[float], step_s: float = 1.0) -> list[tuple[float, float]]:
    return [(start_s + i * step_s, float(v)) for i, v in enumerate(values)]


def journal(h: Any, alarm_id: str) -> list[tuple[str, str, float | None, int]]:
    """(event, to_state, value, seconds after T0) in order."""
    rows = reversed(h.engine.store.journal(alarm_id=alarm_id, limit=1000))
    return [(r.event, r.to_state, r.value, round((r.ts_ns - T0) / 1e9, 3)) for r in rows]


LIMITS = f"""\
alarms:
  rules:
    - {{name: force, type: limit, tag: {PRESS}/force, h: 100, hh: 150, l: 10, deadband: 5, priority: medium,
       priorities: {{HH: critical}}}}
"""


def test_limit_levels_with_deadband(harness: Make) -> None:
    h = harness(LIMITS)
    h.feed(f"{PRESS}/force", series(0, [50, 99, 100, 97, 96, 95.5, 94, 151, 146, 144, 60, 9, 12, 16]))
    assert journal(h, "force:H") == [
        ("activated", "unack_active", 100.0, 2.0),  # at the limit: active
        ("cleared", "rtn_unack", 94.0, 6.0),  # 97, 96, 95.5 are inside the deadband: still active
        ("activated", "unack_active", 151.0, 7.0),
        ("cleared", "rtn_unack", 60.0, 10.0),
    ]
    assert journal(h, "force:HH") == [("activated", "unack_active", 151.0, 7.0), ("cleared", "rtn_unack", 144.0, 9.0)]
    assert journal(h, "force:L") == [("activated", "unack_active", 9.0, 11.0), ("cleared", "rtn_unack", 16.0, 13.0)]
    assert h.engine.alarm("force:HH")["priority"] == "critical"
    assert h.engine.alarm("force:H")["priority"] == "medium"


def test_hysteresis_carries_across_batches(harness: Make) -> None:
    h = harness(LIMITS)
    for i, v in enumerate([120, 97, 96, 94]):  # one sample per batch
        h.feed(f"{PRESS}/force", [(float(i), float(v))])
    assert [e[:2] for e in journal(h, "force:H")] == [("activated", "unack_active"), ("cleared", "rtn_unack")]
    assert journal(h, "force:H")[1][3] == 3.0


def test_on_and_off_delays(harness: Make) -> None:
    h = harness(f"""\
alarms:
  rules:
    - {{name: hot, type: limit, tag: {PRESS}/temp, h: 80, on_delay_s: 5, off_delay_s: 3}}
""")
    tag = f"{PRESS}/temp"
    h.feed(tag, series(0, [90, 90, 90, 70]))  # above for 3 s only: no alarm
    assert journal(h, "hot:H") == []
    h.feed(tag, series(10, [90, 90, 90, 90, 90, 90, 90]))  # above from t=10: raised at 15
    assert journal(h, "hot:H") == [("activated", "unack_active", 90.0, 15.0)]
    h.feed(tag, series(17, [70, 95, 70, 70, 70, 70]))  # dips shorter than the off delay do not clear
    assert journal(h, "hot:H")[-1] == ("cleared", "rtn_unack", 70.0, 22.0)
    assert len(journal(h, "hot:H")) == 2


def test_delay_expires_on_the_tick_without_new_samples(harness: Make) -> None:
    h = harness(f"""\
alarms:
  rules:
    - {{name: hot, type: limit, tag: {PRESS}/temp, h: 80, on_delay_s: 0.2}}
""")
    h.feed(f"{PRESS}/temp", [(0.0, 90.0)])
    assert h.state("hot:H") == "normal"
    import time

    time.sleep(0.25)  # the clock runs on from the last sample
    h.engine.tick()
    assert h.state("hot:H") == "unack_active"


def test_rate_of_change(harness: Make) -> None:
    h = harness(f"""\
alarms:
  rules:
    - {{name: surge, type: rate, tag: {PRESS}/speed, max_rate: 10, direction: rise}}
    - {{name: swing, type: rate, tag: {PRESS}/speed, max_rate: 10, direction: both, deadband: 2}}
""")
    h.feed(f"{PRESS}/speed", series(0, [0, 5, 20, 25, 10, 9, 1, 0.5], step_s=0.5))
    # rates per second: 10, 30, 10, -30, -2, -16, -1
    assert journal(h, "surge") == [("activated", "unack_active", 10.0, 0.5), ("cleared", "rtn_unack", -30.0, 2.0)]
    assert [(e, t) for e, _, _, t in journal(h, "swing")] == [
        ("activated", 0.5), ("cleared", 2.5), ("activated", 3.0), ("cleared", 3.5),
    ]


def test_stuck_value(harness: Make) -> None:
    h = harness(f"""\
alarms:
  rules:
    - {{name: frozen, type: stuck, tag: {PRESS}/pressure, for_s: 10, tolerance: 0.01}}
""".replace(PRESS + "/pressure", "plant/a/l/pump/pressure"))
    tag = "plant/a/l/pump/pressure"
    h.feed(tag, series(0, [5.0, 5.1, 5.2]))
    h.feed(tag, series(3, [5.2, 5.205, 5.2, 5.2, 5.2, 5.2, 5.2, 5.2, 5.2, 5.2, 5.2, 5.2, 5.2]))  # from t=2 on
    assert journal(h, "frozen") == [("activated", "unack_active", 5.2, 12.0)]
    h.feed(tag, [(16.0, 5.5)])
    assert journal(h, "frozen")[-1] == ("cleared", "rtn_unack", 5.5, 16.0)


def test_state_for_longer_than(harness: Make) -> None:
    h = harness(f"""\
alarms:
  rules:
    - {{name: down-long, type: state, tag: {PRESS}/state, states: [down], for_s: 600, priority: high}}
""")
    tag = f"{PRESS}/state"
    h.feed(tag, [(0, 0), (60, 2), (300, 0), (400, 2), (700, 2), (1000, 2), (1100, 1)])
    assert journal(h, "down-long") == [
        ("activated", "unack_active", 2.0, 1000.0), ("cleared", "rtn_unack", 1.0, 1100.0),
    ]


def test_expression_over_several_tags(harness: Make) -> None:
    h = harness(f"""\
alarms:
  rules:
    - name: guard-open-running
      type: expression
      equipment: {PRESS}
      expression: "guard_closed == 0 and speed > 10 and not state == 3"
      priority: critical
""")
    rows = [
        (f"{PRESS}/guard_closed", 0, 1), (f"{PRESS}/speed", 0, 0), (f"{PRESS}/state", 0, 0),
        (f"{PRESS}/speed", 1, 100),
        (f"{PRESS}/guard_closed", 2, 0),  # guard opens while running: alarm
        (f"{PRESS}/speed", 3, 5),  # slows down: clears
        # both change in one instant: evaluated after the instant, no glitch in between
        (f"{PRESS}/guard_closed", 4, 1), (f"{PRESS}/speed", 4, 50),
    ]
    h.engine.process(h.batch([(p, float(s), float(v)) for p, s, v in rows]))
    assert [(e, t) for e, _, _, t in journal(h, "guard-open-running")] == [("activated", 2.0), ("cleared", 3.0)]


def test_bad_quality_duplicates_and_old_samples_are_ignored(harness: Make) -> None:
    h = harness(LIMITS)
    tag_id = h.index.id_of(f"{PRESS}/force")
    h.engine.process(SampleBatch.of([tag_id], [T0 + 5_000_000_000], [120.0]))
    h.engine.process(SampleBatch.of([tag_id, tag_id], [T0 + 1_000_000_000, T0 + 5_000_000_000], [20.0, 20.0]))
    h.engine.process(SampleBatch.of([tag_id], [T0 + 6_000_000_000], [float("nan")], quality=0))
    assert [e for e, _, _, _ in journal(h, "force:H")] == ["activated"]


def test_unknown_tag_ids_in_a_batch_do_not_break_evaluation(harness: Make) -> None:
    h = harness(LIMITS)
    tag_id = h.index.id_of(f"{PRESS}/force")
    h.engine.process(SampleBatch.of([9999, tag_id], [T0, T0], [1.0, 120.0]))
    assert h.state("force:H") == "unack_active"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{name: x, type: limit, tag: plant/a/l/press/nope, h: 1}", "alarms.rules[0].tag: unknown tag"),
        ("{name: x, type: limit, tag: plant/a/l/press/force}", "needs at least one of hh, h, l, ll"),
        ("{name: x, type: state, tag: plant/a/l/press/state, states: [broken]}", "has no state 'broken'"),
        ("{name: x, type: expression, expression: 'open(1)', vars: {}}", "not allowed in an expression"),
        ("{name: x, type: expression, expression: 'a > 1'}", "name 'a' is not in 'vars'"),
        ("{name: x, type: rate, tag: plant/a/l/press/force, max_rate: -1}", "alarms.rules[0].max_rate"),
        ("{name: x, type: sometimes, tag: plant/a/l/press/force}", "alarms.rules[0]"),
    ],
)
def test_config_errors_name_file_line_and_field(rule: str, message: str, config_of: Make) -> None:
    with pytest.raises(ConfigError) as err:
        config_of(f"alarms:\n  rules:\n    - {rule}\n")
    assert "plant.yaml:22: " in str(err.value)
    assert message in str(err.value)
