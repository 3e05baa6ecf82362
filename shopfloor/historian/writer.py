"""The single historian writer: a bounded queue, coalesced commits, acks after commit.

Every connector submits columnar batches here. One thread drains the queue,
merges what is waiting into one batch, applies the tags' engineering ranges
(out of range -> uncertain), commits it, and only then runs the submitters'
callbacks (the MQTT ingest acknowledges QoS 1 messages there) and publishes the
batch on the bus. A full queue blocks the submitter: backpressure travels back
to the broker, which queues, instead of memory growing without bound.

An optional ``intake`` bus gets each batch as it is accepted (range-checked,
queued, not yet committed): for the alarm engine, whose latency must not include
the commit (docs/alarms.md says what that promises).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopfloor.core.bus import SampleBus
from shopfloor.core.model import TagIndex
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.historian.base import Historian

log = logging.getLogger(__name__)

OnCommit = Callable[[], None]


@dataclass(slots=True)
class _Item:
    batch: SampleBatch
    on_commit: OnCommit | None
    sent_ns: npt.NDArray[np.int64] | None


class LatencyWindow:
    """The last N publish-to-commit latencies (ns), for p50/p99 without a Python object per message."""

    def __init__(self, size: int = 100_000) -> None:
        self._buf = np.zeros(size, np.int64)
        self._n = 0
        self._lock = threading.Lock()

    def add(self, latencies_ns: npt.NDArray[np.int64]) -> None:
        with self._lock:
            size = len(self._buf)
            lat = latencies_ns[-size:]
            start = self._n % size
            end = start + len(lat)
            if end <= size:
                self._buf[start:end] = lat
            else:
                cut = size - start
                self._buf[start:] = lat[:cut]
                self._buf[: end - size] = lat[cut:]
            self._n += len(lat)

    def values(self) -> npt.NDArray[np.int64]:
        with self._lock:
            return self._buf[: min(self._n, len(self._buf))].copy()

    def percentiles_ms(self, *q: float) -> list[float | None]:
        v = self.values()
        if len(v) == 0:
            return [None for _ in q]
        return [float(x) / 1e6 for x in np.percentile(v, q)]


class HistorianWriter:
    """Owns all writes to one historian."""

    def __init__(
        self,
        historian: Historian,
        bus: SampleBus | None = None,
        tag_index: TagIndex | None = None,
        *,
        max_pending_rows: int = 4_000_000,
        max_commit_rows: int = 1_000_000,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval_s: float = 60.0,
        intake: SampleBus | None = None,
    ) -> None:
        self.historian = historian
        self.bus = bus
        self.intake = intake
        self.tag_index = tag_index
        self.max_pending_rows = max_pending_rows
        self.max_commit_rows = max_commit_rows
        self.housekeeping = housekeeping
        self.housekeeping_interval_s = housekeeping_interval_s
        self._queue: deque[_Item] = deque()
        self._pending_rows = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._inflight = 0
        self.rows_committed = 0
        self.commits = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.last_commit_ns = 0
        self.latency = LatencyWindow()

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="historian-writer", daemon=True)
        self._thread.start()

    def submit(
        self,
        batch: SampleBatch,
        on_commit: OnCommit | None = None,
        sent_ns: npt.NDArray[np.int64] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Queue a batch; blocks while the queue is full. Returns False if it timed out or the writer stopped."""
        batch = self._prepare(batch)
        rows = len(batch)
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._pending_rows + rows > self.max_pending_rows and self._pending_rows > 0 and not self._stop:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.5)
            if self._stop:
                return False
            self._queue.append(_Item(batch, on_commit, sent_ns))
            self._pending_rows += rows
            if self.intake is not None:  # under the lock: the intake sees batches in queue order
                self.intake.publish(batch)
            self._cond.notify_all()
        return True

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is committed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _take(self) -> list[_Item]:
        items: list[_Item] = []
        rows = 0
        while self._queue and (rows == 0 or rows + len(self._queue[0].batch) <= self.max_commit_rows):
            item = self._queue.popleft()
            rows += len(item.batch)
            items.append(item)
        return items

    def _run(self) -> None:
        last_housekeeping = time.monotonic()
        while True:
            with self._cond:
                if not self._queue:
                    if self._stop:
                        return
                    self._cond.wait(0.25)
                items = self._take()
                self._inflight = len(items)
            if not items:
                if self.housekeeping and time.monotonic() - last_housekeeping > self.housekeeping_interval_s:
                    last_housekeeping = time.monotonic()
                    self._guarded(self.housekeeping, "housekeeping")
                continue
            batch = SampleBatch.concat([i.batch for i in items])  # each checked by _prepare in submit()
            self._commit(batch)
            commit_ns = time.time_ns()
            for item in items:
                if item.on_commit is not None:
                    self._guarded(item.on_commit, "commit callback")
            sent = [i.sent_ns for i in items if i.sent_ns is not None and len(i.sent_ns)]
            if sent:
                self.latency.add(commit_ns - np.concatenate(sent))
            if self.bus is not None:
                self.bus.publish(batch)
            with self._cond:
                self._pending_rows -= sum(len(i.batch) for i in items)
                self._inflight = 0
                self._cond.notify_all()

    def _prepare(self, batch: SampleBatch) -> SampleBatch:
        if self.tag_index is None or len(batch) == 0:
            return batch
        known = batch.tag_id < len(self.tag_index.low)
        if not known.all():
            log.error("dropping %d samples with unknown tag ids", int((~known).sum()))
            batch = batch.take(known)
        outside = self.tag_index.out_of_range(batch.tag_id, batch.value) & (batch.quality == Quality.GOOD)
        if outside.any():
            quality = batch.quality.copy()
            quality[outside] = Quality.UNCERTAIN
            batch = SampleBatch(batch.tag_id, batch.ts, batch.value, quality)
        return batch

    def _commit(self, batch: SampleBatch) -> None:
        """Commit, retrying with backoff until it succeeds: nothing is acknowledged before."""
        delay = 0.1
        while True:
            try:
                self.historian.write(batch)
            except Exception as exc:
                self.write_errors += 1
                if self.last_error is None:
                    log.error("historian write failed, retrying: %s", exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._stop:
                    log.error("writer stopping with %d uncommitted samples (not acknowledged)", len(batch))
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.last_error is not None:
                log.info("historian write recovered")
                self.last_error = None
            self.rows_committed += len(batch)
            self.commits += 1
            self.last_commit_ns = time.time_ns()
            return

    @staticmethod
    def _guarded(fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception:
            log.exception("%s failed", what)
