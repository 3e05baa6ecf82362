"""Property-based tests of the ISA-18.2 state machine: any sequence of conditions and operator actions."""

from __future__ import annotations

import contextlib
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms.lifecycle import AlarmState, AlarmStatus, NotAllowed, Transition

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("condition"), st.booleans()),
        st.tuples(st.just("ack"), st.none()),
        st.tuples(st.just("shelve"), st.integers(1, 50)),
        st.tuples(st.just("unshelve"), st.none()),
        st.tuples(st.just("expire"), st.none()),
        st.tuples(st.just("suppress"), st.booleans()),
        st.tuples(st.just("service"), st.booleans()),
        st.tuples(st.just("wait"), st.integers(1, 20)),
    ),
    max_size=60,
)


def step(a: AlarmStatus, action: str, arg: object, now: int) -> Transition | None:
    if action == "condition":
        return a.set_condition(bool(arg), now, 1.0)
    if action == "ack":
        return a.acknowledge(now, "op")
    if action == "shelve":
        return a.shelve(now + int(arg), now, "op")  # type: ignore[call-overload]
    if action == "unshelve":
        return a.unshelve(now, "op")
    if action == "expire":
        if a.shelved_until_ns is not None and a.shelved_until_ns <= now:
            return a.unshelve(now, None, expired=True)
        return None
    if action == "suppress":
        return a.set_suppressed(bool(arg), now, 3.0)
    if action == "service":
        return a.set_out_of_service(not bool(arg), now, "eng")
    return None


@settings(max_examples=250, deadline=None)
@given(ACTIONS)
def test_invariants_hold_after_every_step(actions: list[tuple[str, object]]) -> None:
    a = AlarmStatus("x")
    now = 0
    journal: list[Transition] = []
    for action, arg in actions:
        if action == "wait":
            now += int(arg)  # type: ignore[call-overload]
            continue
        before = (a.state, a.condition, a.blocked)
        try:
            t = step(a, action, arg, now)
        except NotAllowed:
            assert (a.state, a.condition, a.blocked) == before  # a refused action changes nothing
            continue
        if t is not None:
            journal.append(t)
            assert t.from_state == before[0] and t.to_state == a.state
        else:
            assert (a.state, a.condition, a.blocked) == before  # no journal entry, no change
        # ISA-18.2: a blocked (shelved, suppressed, out of service) alarm rests in normal
        if a.blocked:
            assert a.state == AlarmState.NORMAL
        else:
            # unblocked: active states exactly when the condition is present; RTN only without it
            assert (a.state in (AlarmState.UNACK, AlarmState.ACKED)) == a.condition
        if a.state == AlarmState.UNACK:
            assert a.unack_since_ns is not None
        if a.state == AlarmState.ACKED:
            assert a.acked_by is not None
    # the journal is a chain: each entry starts where the previous one ended
    for prev, nxt in itertools.pairwise(journal):
        assert nxt.from_state == prev.to_state


@settings(max_examples=100, deadline=None)
@given(ACTIONS)
def test_state_survives_a_round_trip_through_storage(actions: list[tuple[str, object]]) -> None:
    a = AlarmStatus("x")
    for now, (action, arg) in enumerate(actions, start=1):
        with contextlib.suppress(NotAllowed):
            step(a, action, arg, now)
        assert AlarmStatus.from_dict(a.to_dict()) == a


def test_the_four_isa_states_in_order() -> None:
    a = AlarmStatus("x")
    assert a.set_condition(True, 1, 5.0) == Transition("x", "activated", "normal", "unack_active", 1, 5.0)
    assert a.acknowledge(2, "ann").to_state == AlarmState.ACKED
    assert a.set_condition(False, 3, 1.0).to_state == AlarmState.NORMAL  # type: ignore[union-attr]
    a.set_condition(True, 4, 5.0)
    assert a.set_condition(False, 5, 1.0).to_state == AlarmState.RTN_UNACK  # type: ignore[union-attr]
    assert a.acknowledge(6, "ann").to_state == AlarmState.NORMAL


def test_unshelving_a_standing_condition_annunciates_it_again() -> None:
    a = AlarmStatus("x")
    a.set_condition(True, 1, 5.0)
    a.acknowledge(2, "ann")
    assert a.shelve(100, 3, "ann").to_state == AlarmState.NORMAL
    t = a.set_condition(False, 4, 1.0)
    assert t is not None and not t.annunciated
    a.set_condition(True, 5, 6.0)
    assert a.unshelve(100, None, expired=True).to_state == AlarmState.UNACK
