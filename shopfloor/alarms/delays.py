"""On/off delays: a raw condition must hold for its delay before the alarm sees it.

Raw edges arrive in time order per condition; a pending change is confirmed at
``edge time + delay`` unless the raw condition flips back first. Pending changes
sit in one heap, so confirming what is due costs O(log n) per change, not a scan
of every condition on every tick.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Change:
    """A confirmed condition change of one target (an alarm or a suppressor)."""

    target: int
    ts_ns: int
    active: bool
    value: float | None


class DelayBank:
    """The delayed conditions of every target, indexed 0..n-1."""

    def __init__(self, on_ns: list[int], off_ns: list[int], initial: list[bool]) -> None:
        self.on_ns = on_ns
        self.off_ns = off_ns
        self.raw = list(initial)
        self.confirmed = list(initial)
        self.raw_value: list[float | None] = [None] * len(initial)
        self.generation = [0] * len(initial)
        self._heap: list[tuple[int, int, int]] = []  # (due ns, target, generation)

    def feed(self, target: int, ts_ns: int, active: bool, value: float | None, out: list[Change]) -> None:
        """A raw edge; confirmed changes (now or due ones before it) are appended to out in time order."""
        self.due(ts_ns, out)
        if active == self.raw[target]:
            return
        self.raw[target] = active
        self.raw_value[target] = value
        self.generation[target] += 1  # cancels a pending change
        if active == self.confirmed[target]:
            return
        delay = self.on_ns[target] if active else self.off_ns[target]
        if delay <= 0:
            self.confirmed[target] = active
            out.append(Change(target, ts_ns, active, value))
        else:
            heapq.heappush(self._heap, (ts_ns + delay, target, self.generation[target]))

    def due(self, now_ns: int, out: list[Change]) -> None:
        """Confirm every pending change due at or before now."""
        heap = self._heap
        while heap and heap[0][0] <= now_ns:
            due, target, gen = heapq.heappop(heap)
            if gen != self.generation[target] or self.raw[target] == self.confirmed[target]:
                continue
            self.confirmed[target] = self.raw[target]
            out.append(Change(target, due, self.raw[target], self.raw_value[target]))

    def settle_clear(self, target: int, ts_ns: int) -> Change | None:
        """Confirm now a clear that waits out its off-delay (the raw condition is already gone), cancelling
        the pending change. For the end of a block: an alarm that is normal in fact is not annunciated."""
        if self.raw[target] or not self.confirmed[target]:
            return None
        self.confirmed[target] = False
        self.generation[target] += 1
        return Change(target, ts_ns, False, self.raw_value[target])

    @property
    def pending(self) -> int:
        return sum(1 for _, t, g in self._heap if g == self.generation[t])
