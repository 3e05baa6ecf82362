"""What a field connector is, and the loop that runs them.

Polling and subscribing connectors (Modbus, OPC UA) are asyncio-native, so they
all run as tasks on one event loop, on one thread that the platform owns (the
API's loop stays free for requests). A connector supervises its own link:
``run()`` returns only when cancelled, reconnecting with backoff meanwhile, and
reports its state through ``health()``. It hands samples to ``emit``, which
queues them for the historian writer without blocking the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Protocol

from shopfloor.core.samples import SampleBatch

log = logging.getLogger(__name__)

Emit = Callable[[SampleBatch], Awaitable[None]]


class FieldConnector(Protocol):
    """A connector to field devices; see the module docstring for the contract."""

    name: str

    async def run(self, emit: Emit) -> None:
        """Read the devices and emit samples until cancelled; never return on a device error."""

    def health(self) -> dict[str, object]:
        """Link state and counters, for GET /api/connectors."""


SubmitNowait = Callable[[SampleBatch], bool]  # e.g. HistorianWriter.submit with timeout 0
SubmitBlocking = Callable[[SampleBatch], object]


class ConnectorRuntime:
    """One thread with one asyncio loop running every field connector as a task."""

    def __init__(self, connectors: Sequence[FieldConnector], submit_nowait: SubmitNowait,
                 submit_blocking: SubmitBlocking) -> None:
        self.connectors = list(connectors)
        self._submit_nowait = submit_nowait
        self._submit_blocking = submit_blocking
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def emit(self, batch: SampleBatch) -> None:
        """Queue for the writer; when its queue is full, wait for room in a worker thread, not on the loop."""
        if len(batch) and not self._submit_nowait(batch):
            await asyncio.to_thread(self._submit_blocking, batch)

    def start(self) -> None:
        if not self.connectors:
            return
        ready: Future[None] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="field-connectors", daemon=True)
        self._thread.start()
        ready.result(10)

    def _main(self, ready: Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        for connector in self.connectors:
            self._tasks.append(loop.create_task(self._supervise(connector), name=connector.name))
        loop.call_soon(ready.set_result, None)
        loop.run_forever()
        loop.close()

    async def _supervise(self, connector: FieldConnector) -> None:
        """A connector that fails anyway (a bug) is restarted after a pause, not lost."""
        while True:
            try:
                await connector.run(self.emit)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("connector %s failed; restarting in 5 s", connector.name)
                await asyncio.sleep(5)

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(cancel_all(), loop)
        thread.join(timeout)
        self._loop = self._thread = None
        self._tasks = []

    def health(self) -> list[dict[str, object]]:
        return [c.health() for c in self.connectors]
