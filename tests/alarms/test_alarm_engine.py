"""The engine around the state machine: operator actions, shelving expiry, designed suppression, persistence,
rules at runtime, and the vectorised detection against a plain per-sample reference."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfloor.alarms.detect import Detector, RawEdges, TagMemory
from shopfloor.alarms.engine import RuleConflict, UnknownAlarm
from shopfloor.alarms.lifecycle import NotAllowed
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import SampleBatch

PRESS = "plant/a/l/press"
Make = Callable[[str], Any]

RULES = f"""\
alarms:
  rules:
    - {{name: force, type: limit, tag: {PRESS}/force, h: 100, priority: high}}
    - {{name: hot, type: limit, tag: {PRESS}/temp, hh: 90, priority: critical}}
    - {{name: pump-high, type: limit, tag: plant/a/l/pump/pressure, h: 8}}
  suppression:
    - {{asset: {PRESS}, tag: {PRESS}/state, states: [maintenance]}}
"""


def events(h: Any, alarm_id: str) -> list[tuple[str, str | None]]:
    return [(r.event, r.user) for r in reversed(h.engine.store.journal(alarm_id=alarm_id, limit=1000))]


def test_acknowledge_and_clear_with_who_and_when(harness: Make) -> None:
    h = harness(RULES)
    h.feed(f"{PRESS}/force", [(0, 50), (1, 120)])
    assert h.state("force:H") == "unack_active"
    with pytest.raises(UnknownAlarm):
        h.engine.acknowledge("nope:H", "ann")
    view = h.engine.acknowledge("force:H", "ann", "checked the die")
    assert view["state"] == "acked_active" and view["acked_by"] == "ann"
    with pytest.raises(NotAllowed):
        h.engine.acknowledge("force:H", "ann")
    h.feed(f"{PRESS}/force", [(2, 40)])
    assert h.state("force:H") == "normal"
    assert events(h, "force:H") == [("activated", None), ("acknowledged", "ann"), ("cleared", None)]
    row = h.engine.store.journal(alarm_id="force:H", limit=10)[1]
    assert (row.comment, row.value, row.priority) == ("checked the die", 120.0, "high")
    assert h.engine.alarms() == []  # nothing needs attention any more
    assert len(h.engine.alarms(include_normal=True)) == 3


def test_shelving_expires_on_sample_time(harness: Make) -> None:
    h = harness(RULES)
    h.feed(f"{PRESS}/force", [(0, 120)])
    h.engine.shelve("force:H", 1.0, "ann", "known: sensor swap")
    view = h.engine.alarm("force:H")
    assert view["state"] == "normal" and view["shelved_until"] is not None
    assert h.engine.summary()["shelved"] == 1
    with pytest.raises(NotAllowed):
        h.engine.shelve("force:H", 10_000, "ann")  # beyond max_shelve_min
    h.feed(f"{PRESS}/force", [(30, 125)])  # still shelved after 30 s
    h.engine.tick()
    assert h.engine.alarm("force:H")["shelved_until"] is not None
    h.feed(f"{PRESS}/force", [(61, 125)])  # a minute of sample time later the shelf ends
    h.engine.tick()
    assert h.state("force:H") == "unack_active"
    assert events(h, "force:H")[-1] == ("shelve_expired", None)


def test_designed_suppression_by_equipment_state(harness: Make) -> None:
    h = harness(RULES)
    h.feed(f"{PRESS}/force", [(0, 120)])
    h.feed("plant/a/l/pump/pressure", [(0, 9)])
    # the press goes into maintenance: its alarms are suppressed, the pump's are not
    h.engine.process(h.batch([(f"{PRESS}/state", 1, 3), (f"{PRESS}/temp", 2, 95)]))
    assert h.engine.alarm("force:H")["suppressed"] and h.state("force:H") == "normal"
    assert h.engine.alarm("hot:HH")["suppressed"] and h.state("hot:HH") == "normal"
    assert not h.engine.alarm("pump-high:H")["suppressed"]
    assert events(h, "hot:HH") == [("suppressed", None), ("activated", None)]
    assert not h.engine.store.journal(alarm_id="hot:HH", limit=1)[0].annunciated
    # back to running with the temperature still high: annunciated now
    h.feed(f"{PRESS}/temp", [(3, 80)])
    h.feed(f"{PRESS}/state", [(4, 0)])
    assert h.state("hot:HH") == "normal"  # cleared while suppressed
    assert h.state("force:H") == "unack_active"  # still above its limit


def test_a_condition_that_starts_as_the_suppression_starts_is_not_annunciated(harness: Make) -> None:
    """The press enters maintenance in the same sample as its temperature goes high: suppressed first."""
    h = harness(RULES)
    h.engine.process(h.batch([(f"{PRESS}/temp", 1, 95), (f"{PRESS}/state", 1, 3)]))
    assert h.engine.alarm("hot:HH")["suppressed"] and h.state("hot:HH") == "normal"
    h.engine.process(h.batch([(f"{PRESS}/temp", 5, 60), (f"{PRESS}/state", 5, 0)]))
    assert not h.engine.alarm("hot:HH")["suppressed"] and h.state("hot:HH") == "normal"
    rows = h.engine.store.journal(alarm_id="hot:HH", limit=100)
    assert [(r.event, r.to_state) for r in reversed(rows)] == [
        ("suppressed", "normal"), ("activated", "normal"), ("cleared", "normal"), ("unsuppressed", "normal")
    ]


def test_a_condition_in_its_off_delay_when_the_suppression_ends_is_not_annunciated(harness: Make) -> None:
    """The temperature went normal during maintenance; maintenance ends 2 s later, inside the 10 s off-delay."""
    rules = RULES.replace("hh: 90, priority: critical}", "hh: 90, priority: critical, off_delay_s: 10}")
    h = harness(rules)
    h.engine.process(h.batch([(f"{PRESS}/state", 1, 3), (f"{PRESS}/temp", 2, 95)]))
    h.engine.process(h.batch([(f"{PRESS}/temp", 3, 60)]))  # normal again, not yet confirmed
    h.engine.process(h.batch([(f"{PRESS}/state", 5, 0)]))
    assert not h.engine.alarm("hot:HH")["suppressed"] and h.state("hot:HH") == "normal"
    h.engine.process(h.batch([(f"{PRESS}/temp", 30, 61)]))  # long after the off-delay: still nothing
    assert h.state("hot:HH") == "normal"
    assert [e for e, _ in events(h, "hot:HH")] == ["suppressed", "activated", "cleared", "unsuppressed"]


def test_a_condition_in_its_off_delay_when_shelving_or_out_of_service_ends_is_not_annunciated(
    harness: Make,
) -> None:
    rules = RULES.replace("h: 100, priority: high}", "h: 100, priority: high, off_delay_s: 10}")
    h = harness(rules)
    h.feed(f"{PRESS}/force", [(0, 120)])
    h.engine.shelve("force:H", 1.0, "ann", "die change")
    h.feed(f"{PRESS}/force", [(30, 50)])  # normal again, off-delay running
    h.feed(f"{PRESS}/force", [(35, 50)])
    h.engine.unshelve("force:H", "ann")
    assert h.state("force:H") == "normal"
    h.engine.set_out_of_service("force:H", True, "eve", "sensor swap")
    h.feed(f"{PRESS}/force", [(40, 130)])  # on again (no on-delay), then normal inside the off-delay
    h.feed(f"{PRESS}/force", [(50, 40)])
    h.engine.set_out_of_service("force:H", False, "eve")
    assert h.state("force:H") == "normal"
    h.feed(f"{PRESS}/force", [(100, 41)])
    assert h.state("force:H") == "normal"


def test_out_of_service(harness: Make) -> None:
    h = harness(RULES)
    h.engine.set_out_of_service("force:H", True, "eve", "sensor replaced")
    h.feed(f"{PRESS}/force", [(0, 120)])
    assert h.state("force:H") == "normal"
    with pytest.raises(NotAllowed):
        h.engine.shelve("force:H", 5, "ann")
    h.engine.set_out_of_service("force:H", False, "eve")
    assert h.state("force:H") == "unack_active"
    assert events(h, "force:H") == [
        ("removed_from_service", "eve"), ("activated", None), ("returned_to_service", "eve"),
    ]


def test_state_and_journal_survive_a_restart(harness: Make) -> None:
    h = harness(RULES)
    h.feed(f"{PRESS}/force", [(0, 120)])
    h.engine.acknowledge("force:H", "ann")
    h.engine.shelve("pump-high:H", 30, "bob")
    h.restart()
    assert h.state("force:H") == "acked_active"
    assert h.engine.alarm("pump-high:H")["shelved_until"] is not None
    # the hysteresis resumes from the stored condition: a value still high raises nothing new
    h.feed(f"{PRESS}/force", [(5, 130), (6, 20)])
    assert events(h, "force:H") == [("activated", None), ("acknowledged", "ann"), ("cleared", None)]


def test_the_journal_is_append_only(harness: Make) -> None:
    h = harness(RULES)
    h.feed(f"{PRESS}/force", [(0, 120)])
    db = sqlite3.connect(h.engine.store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE journal SET user = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM journal")
    db.close()


def test_rules_through_the_api_methods(harness: Make) -> None:
    h = harness(RULES)
    speed = h.engine.validate_rule({"name": "overspeed", "type": "limit", "tag": f"{PRESS}/speed", "h": 3000})
    h.engine.put_rule(speed, "eve", create=True)
    with pytest.raises(RuleConflict):
        h.engine.put_rule(speed, "eve", create=True)
    with pytest.raises(RuleConflict, match=r"plant\.yaml"):
        h.engine.put_rule(h.engine.validate_rule({"name": "force", "type": "limit", "tag": f"{PRESS}/force",
                                                  "h": 1}), "eve", create=False)
    with pytest.raises(ValueError, match="unknown tag"):
        h.engine.validate_rule({"name": "x", "type": "limit", "tag": f"{PRESS}/nope", "h": 1})
    h.feed(f"{PRESS}/speed", [(0, 3500)])
    assert h.state("overspeed:H") == "unack_active"
    # update keeps the alarm's state; the next sample is judged by the new limit
    h.engine.put_rule(h.engine.validate_rule({"name": "overspeed", "type": "limit", "tag": f"{PRESS}/speed",
                                              "h": 4000}), "eve", create=False)
    assert h.state("overspeed:H") == "unack_active"
    h.feed(f"{PRESS}/speed", [(1, 3600)])
    assert h.state("overspeed:H") == "rtn_unack"
    h.restart()  # rules made through the API are stored
    assert [r["name"] for r in h.engine.rules() if r["source"] == "api"] == ["overspeed"]
    h.engine.delete_rule("overspeed", "eve")
    with pytest.raises(UnknownAlarm):
        h.engine.alarm("overspeed:H")
    rule_events = [(r.event, r.user) for r in reversed(h.engine.store.journal(rule="overspeed", limit=100))]
    assert ("rule_created", "eve") in rule_events and ("rule_deleted", "eve") in rule_events
    assert ("removed", "eve") in rule_events


def reference_limit(values: list[float], limit: float, deadband: float) -> list[tuple[int, bool]]:
    """A plain per-sample high alarm with deadband: (sample index, active) at each change."""
    active, out = False, []
    for i, v in enumerate(values):
        if not active and v >= limit:
            active = True
            out.append((i, True))
        elif active and v < limit - deadband:
            active = False
            out.append((i, False))
    return out


_PLANTS: dict[int, tuple[Any, Any, Any]] = {}


def _detector_for(deadband: int, config_of: Make) -> tuple[Any, Any]:
    if deadband not in _PLANTS:
        _PLANTS[deadband] = _plant(deadband, config_of)
    config, model, index = _PLANTS[deadband]
    det = Detector.build(list(config.alarms.rules), [], model, index, TagMemory.of_size(len(model.tags)), {})
    return det, index


def _plant(deadband: int, config_of: Make) -> tuple[Any, Any, Any]:
    config = config_of(f"""\
alarms:
  rules:
    - {{name: f, type: limit, tag: {PRESS}/force, h: 10, deadband: {deadband}}}
    - {{name: s, type: limit, tag: {PRESS}/speed, h: 10, deadband: {deadband}}}
""")
    model = AssetModel.from_config(config)
    index = TagIndex(model, {t.path: i for i, t in enumerate(model.tags)})
    return config, model, index


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.integers(0, 20), min_size=1, max_size=80),
    cuts=st.lists(st.integers(1, 15), min_size=1, max_size=10),
    deadband=st.integers(0, 4),
)
def test_vectorised_limits_match_a_per_sample_reference(
    values: list[int], cuts: list[int], deadband: int, config_of: Make
) -> None:
    det, index = _detector_for(deadband, config_of)
    tags = [index.id_of(f"{PRESS}/force"), index.id_of(f"{PRESS}/speed")]
    # two tags interleaved, fed in batches of random sizes: the result must not depend on the cuts
    rows = [(tag, i, float(v)) for i, v in enumerate(values) for tag in tags]
    bounds = np.cumsum(cuts * (len(rows) // max(1, sum(cuts)) + 1))
    edges, start = [], 0
    for end in [*bounds[bounds < len(rows)].tolist(), len(rows)]:
        if end > start:
            part = rows[start:end]
            edges.append(det.process(SampleBatch.of([r[0] for r in part], [r[1] for r in part], [r[2] for r in part])))
            start = end
    found = RawEdges.concat(edges).sorted()
    expected = reference_limit([float(v) for v in values], 10, deadband)
    for target in (0, 1):
        mine = found.target == target
        assert list(zip(found.ts[mine].tolist(), found.active[mine].tolist(), strict=True)) == expected


def test_most_urgent_first(harness: Make) -> None:
    h = harness(RULES)
    h.feed("plant/a/l/pump/pressure", [(0, 9)])  # medium
    h.feed(f"{PRESS}/force", [(1, 120)])  # high
    h.feed(f"{PRESS}/temp", [(2, 95)])  # critical
    h.engine.acknowledge("hot:HH", "ann")
    h.feed(f"{PRESS}/force", [(3, 10), (4, 130)])
    assert [a["id"] for a in h.engine.alarms()] == ["hot:HH", "force:H", "pump-high:H"]
    summary = h.engine.summary()
    assert (summary["active"], summary["unack"]) == (3, 2)
    assert summary["by_priority"]["critical"] == {"unack": 0, "active": 1}


def test_a_stored_rule_that_no_longer_fits_the_plant_is_skipped_and_counted(harness: Make) -> None:
    h = harness(RULES)
    h.engine.store.save_rule("ghost", {"name": "ghost", "type": "limit", "tag": f"{PRESS}/removed", "h": 1}, "eve")
    h.restart()
    health = h.engine.health()
    assert health["errors"] == 1 and "ghost" in health["last_error"] and "unknown tag" in health["last_error"]
    h.feed(f"{PRESS}/force", [(0, 120)])  # the rest runs on
    assert h.state("force:H") == "unack_active"


def test_acknowledge_many_in_one_go(harness: Make) -> None:
    h = harness(RULES)
    h.engine.process(h.batch([(f"{PRESS}/force", 0, 120), (f"{PRESS}/temp", 0, 95)]))
    result = h.engine.acknowledge_many(["force:H", "hot:HH", "force:H", "pump-high:H", "nope"], "ann")
    assert result["force:H"] == result["hot:HH"] == "acknowledged"
    assert "nothing to acknowledge" in result["pump-high:H"] and "no alarm" in result["nope"]
    assert h.state("force:H") == h.state("hot:HH") == "acked_active"
