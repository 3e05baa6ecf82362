"""The banner counts are kept per transition (not recounted over every alarm for each one): whatever happens,
summary() must equal a count over every alarm's present state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfloor.alarms.lifecycle import NotAllowed
from tests.alarms.conftest import Harness

PRESS = "plant/a/l/press"
RULES = f"""\
alarms:
  rules:
    - {{name: force, type: limit, tag: {PRESS}/force, h: 100, hh: 150, priority: high}}
    - {{name: hot, type: limit, tag: {PRESS}/temp, hh: 90, priority: critical}}
    - {{name: pump-high, type: limit, tag: plant/a/l/pump/pressure, h: 8, priority: low}}
  suppression:
    - {{asset: {PRESS}, tag: {PRESS}/state, states: [maintenance]}}
"""
ALARMS = ["force:H", "force:HH", "hot:HH", "pump-high:H"]
TAGS = [f"{PRESS}/force", f"{PRESS}/temp", "plant/a/l/pump/pressure", f"{PRESS}/state"]


def recount(h: Harness) -> dict[str, Any]:
    """The banner counts from scratch, from the alarms' views."""
    views = h.engine.alarms(include_normal=True)
    by = {p: {"unack": 0, "active": 0} for p in ("low", "medium", "high", "critical")}
    for v in views:
        by[v["priority"]]["unack"] += v["state"] in ("unack_active", "rtn_unack")
        by[v["priority"]]["active"] += v["state"] in ("unack_active", "acked_active")
    return {
        "by_priority": by, "shelved": sum(v["shelved_until"] is not None for v in views),
        "suppressed": sum(v["suppressed"] for v in views), "out_of_service": sum(v["out_of_service"] for v in views),
        "unack": sum(c["unack"] for c in by.values()), "active": sum(c["active"] for c in by.values()),
    }


op = st.one_of(
    st.tuples(st.just("sample"), st.integers(0, 3), st.sampled_from([0.0, 3.0, 9.0, 95.0, 120.0, 160.0])),
    st.tuples(st.sampled_from(["ack", "shelve", "unshelve", "oos", "in_service"]), st.integers(0, 3), st.just(0.0)),
    st.tuples(st.just("rule"), st.integers(0, 1), st.just(0.0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=30))
def test_summary_equals_a_full_recount_after_every_step(harness: Callable[[str], Harness],
                                                        ops: list[tuple[str, int, float]]) -> None:
    h = harness(RULES)
    t = 0.0
    for kind, i, value in ops:
        t += 1.0
        alarm = ALARMS[i]
        try:
            if kind == "sample":
                h.feed(TAGS[i], [(t, 3.0 if i == 3 and value > 3 else value)])  # state 3 is maintenance
            elif kind == "ack":
                h.engine.acknowledge(alarm, "ann")
            elif kind == "shelve":
                h.engine.shelve(alarm, 1.0, "ann")
            elif kind == "unshelve":
                h.engine.unshelve(alarm, "ann")
            elif kind in ("oos", "in_service"):
                h.engine.set_out_of_service(alarm, kind == "oos", "ann")
            elif i == 0:  # a rule from the API comes (or is changed, with another priority) ...
                rule = {"name": "speedy", "type": "limit", "tag": f"{PRESS}/speed", "l": 5, "priority": "medium"}
                exists = any(r["name"] == "speedy" for r in h.engine.rules())
                if exists:
                    rule["priority"] = "critical"
                h.engine.put_rule(h.engine.validate_rule(rule), "eve", create=not exists)
                h.feed(f"{PRESS}/speed", [(t, 1.0)])
            elif any(r["name"] == "speedy" for r in h.engine.rules()):  # ... and goes
                h.engine.delete_rule("speedy", "eve")
        except NotAllowed:
            pass
        h.engine.tick()
        assert h.engine.summary() == recount(h)
    h.restart()
    assert h.engine.summary() == recount(h)
