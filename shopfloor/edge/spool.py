"""From the connectors to the disk: a bounded queue and one writer thread that commits batches to the buffer.

The connectors' loop never waits on the disk: ``submit_nowait`` only queues (the
ConnectorRuntime contract); when the queue is full the runtime waits in a worker
thread, which slows polling rather than losing samples in memory. The writer gathers
what arrives within ``commit_s`` into one buffer row, so a row is a few polls, not one
sample. A sample is counted as read when it enters the queue, and as stored when its
row is committed; the gap is what a crash (not a stop) may lose.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from shopfloor.core.samples import SampleBatch
from shopfloor.edge.buffer import DiskBuffer
from shopfloor.edge.catalog import MetricCatalog

log = logging.getLogger(__name__)


class Spool:
    """Queue in front of the disk buffer; see the module docstring."""

    def __init__(self, buffer: DiskBuffer, catalog: MetricCatalog, *, commit_s: float = 0.02,
                 max_batches: int = 10_000) -> None:
        self.buffer = buffer
        self.catalog = catalog
        self.commit_s = commit_s
        self._queue: queue.Queue[tuple[SampleBatch, bool] | None] = queue.Queue(max_batches)
        self._thread: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self.samples_read = 0  # from the devices, since start
        self.samples_stored = 0  # of those read, committed to the buffer (the gateway's own samples not counted)
        self.rows_committed = 0
        self.commit_errors = 0

    def _count(self, batch: SampleBatch) -> None:
        with self._count_lock:
            self.samples_read += len(batch)

    def submit_nowait(self, batch: SampleBatch) -> bool:
        """Queue a connector's batch; False when the queue is full (the caller then uses submit_blocking)."""
        try:
            self._queue.put_nowait((batch, True))
        except queue.Full:
            return False
        self._count(batch)
        return True

    def submit_blocking(self, batch: SampleBatch) -> None:
        self._queue.put((batch, True))
        self._count(batch)

    def submit_own(self, batch: SampleBatch) -> None:
        """The gateway's own samples (link metrics): stored and forwarded alike, not counted as read."""
        self._queue.put((batch, False))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edge-spool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit everything queued, then end the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(60)
            self._thread = None

    def _run(self) -> None:
        done = False
        while not done:
            first = self._queue.get()
            if first is None:
                return
            batches = [first[0]]
            read = len(first[0]) if first[1] else 0
            deadline = time.monotonic() + self.commit_s
            while True:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batches.append(item[0])
                read += len(item[0]) if item[1] else 0
            self._commit(SampleBatch.concat(batches), read)

    def _commit(self, batch: SampleBatch, read: int) -> None:
        while True:
            try:
                stored, _ = self.buffer.append(batch)
                break
            except Exception as exc:  # a full disk, say: keep the samples in memory and retry
                self.commit_errors += 1
                log.error("edge buffer: cannot store %d samples (%s); retrying in 1 s", len(batch), exc)
                time.sleep(1.0)
        if stored:
            self.catalog.update_last(batch)
            self.samples_stored += read
            self.rows_committed += 1
