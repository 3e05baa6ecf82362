"""The sample bus: committed batches fanned out to live consumers.

The historian writer publishes each batch after it is committed, so everything
a consumer sees is already queryable. Consumers run on asyncio loops (the API's
WebSocket streams) or on threads; each has a bounded queue and, when it falls
behind, the oldest batches are dropped and counted: a slow browser must never
stall ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from shopfloor.core.samples import SampleBatch

Unsubscribe = Callable[[], None]


class Subscription:
    """One consumer's bounded queue of batches, filtered to the tags it asked for."""

    def __init__(self, bus: SampleBus, tag_ids: set[int] | None, maxlen: int, loop: asyncio.AbstractEventLoop | None):
        self._bus = bus
        self.tag_filter = np.fromiter(sorted(tag_ids), np.int32) if tag_ids is not None else None
        self._queue: deque[SampleBatch] = deque()
        self._maxlen = maxlen
        self._loop = loop
        self._event = asyncio.Event() if loop is not None else None
        self._lock = threading.Lock()
        self.dropped = 0

    def _offer(self, batch: SampleBatch) -> None:
        if self.tag_filter is not None:
            batch = batch.take(np.isin(batch.tag_id, self.tag_filter))
            if len(batch) == 0:
                return
        with self._lock:
            if len(self._queue) >= self._maxlen:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(batch)
        if self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # the consumer's loop is closed; it will unsubscribe
                self._loop.call_soon_threadsafe(self._event.set)

    def drain(self) -> SampleBatch:
        """Everything queued, as one batch (empty if nothing)."""
        with self._lock:
            batches = list(self._queue)
            self._queue.clear()
        return SampleBatch.concat(batches)

    async def next(self, timeout: float | None = None) -> SampleBatch:
        """Wait (on the subscriber's loop) for queued batches and return them merged."""
        assert self._event is not None, "subscribe with a loop to await"
        self._event.clear()  # before looking: a batch offered after the look sets it again
        if not self._queue:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return SampleBatch.empty()
        return self.drain()

    def close(self) -> None:
        self._bus._remove(self)


class SampleBus:
    """Thread-safe fan-out of committed batches to subscriptions."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(
        self, tag_ids: set[int] | None = None, *, maxlen: int = 1000, loop: asyncio.AbstractEventLoop | None = None
    ) -> Subscription:
        sub = Subscription(self, tag_ids, maxlen, loop)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    def publish(self, batch: SampleBatch) -> None:
        if len(batch) == 0:
            return
        for sub in self._subs:  # copy-on-write list: safe without the lock
            sub._offer(batch)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
