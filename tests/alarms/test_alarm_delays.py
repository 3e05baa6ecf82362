"""On/off delays against a tick-by-tick simulation, for any edges and delays."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms.delays import Change, DelayBank


def simulate(edges: dict[int, bool], on: int, off: int, end: int) -> list[tuple[int, bool]]:
    raw = confirmed = False
    since = 0
    out = []

    def settle(t: int) -> None:
        nonlocal confirmed
        due = since + (on if raw else off)
        if raw != confirmed and due <= t:
            confirmed = raw
            out.append((due, raw))

    for t in range(end + 1):
        settle(t)
        if t in edges and edges[t] != raw:
            raw, since = edges[t], t
        settle(t)
    return out


@settings(max_examples=150, deadline=None)
@given(
    edges=st.dictionaries(st.integers(0, 60), st.booleans(), max_size=25),
    on=st.integers(0, 8),
    off=st.integers(0, 8),
)
def test_delays_match_a_tick_by_tick_simulation(edges: dict[int, bool], on: int, off: int) -> None:
    bank = DelayBank([on], [off], [False])
    out: list[Change] = []
    for t in sorted(edges):
        bank.feed(0, t, edges[t], float(t), out)
    bank.due(70, out)
    assert [(c.ts_ns, c.active) for c in out] == simulate(edges, on, off, 70)
