"""A fault-injecting TCP proxy (asyncio): delay, jitter, loss and cuts between a client and a server.

Used between a device's MQTT client and the broker to test what a bad radio link does to remote
control. Linux netem in a network namespace would be the textbook tool, but this machine's kernel has
no netem qdisc (``tc qdisc add ... netem`` answers "Specified qdisc kind is unknown"), and CI runs on the
same kind of machine, so the faults are made here, on the byte stream (docs/drive.md).

What each fault does, per direction, to each chunk the proxy reads:

Faults apply both ways unless ``set_faults(..., direction="up" | "down")`` sets one direction (up:
from the client to the server).

* ``delay_s`` and ``jitter_s``: the chunk is forwarded ``delay + uniform(-jitter, +jitter)`` after it was
  read (never below zero). TCP delivers in order, so a chunk never overtakes the one before it.
* ``loss``: with this probability a chunk is "lost" and, as TCP would, retransmitted after
  ``retransmit_s`` (stalling everything behind it): packet loss on a TCP link is seen as stalls, not as
  missing bytes. The default, 50 ms, is a fast retransmit on a busy stream; 0.2 s is Linux's minimum
  retransmission timeout for a lost segment with nothing behind it. ``loss_mode="drop"`` instead throws
  the chunk away, which breaks the stream the way a middlebox bug would (the MQTT peer then closes the
  connection).
* ``cut()``: stop forwarding at once, in both directions, keeping the sockets open (a blackhole, as
  when a radio link dies: nobody is told); ``cut(close=True)`` closes both sides instead. ``restore()``
  forwards again (bytes read during the cut are gone) and accepts new connections.

Runs its own event loop on a thread, so synchronous tests and benchmarks can use it; the settings
may be changed while it runs. ``cut_at`` records the ``time.monotonic()`` of the last cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from shopfloor.core.errors import NotReady
from shopfloor.core.net import free_port


@dataclass(slots=True)
class LinkFaults:
    """The faults in force (the same both ways)."""

    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    loss_mode: Literal["stall", "drop"] = "stall"
    retransmit_s: float = 0.05

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.jitter_s < 0 or self.retransmit_s < 0:
            raise ValueError("delay, jitter and retransmit time must be >= 0")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be a probability in [0, 1], got {self.loss}")


class FaultProxy:
    """Listens on ``127.0.0.1:port`` and forwards each connection to ``target`` with the faults in force."""

    def __init__(self, target_host: str, target_port: int, *, port: int | None = None,
                 faults: LinkFaults | None = None, seed: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.faults_up = self.faults_down = faults or LinkFaults()  # up: client -> server, down: server -> client
        self.cut_at: float | None = None
        self.connections = 0
        self.bytes_forwarded = 0
        self.chunks_lost = 0
        self._rng = random.Random(seed)
        self._cut = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ control (any thread)

    def set_faults(self, faults: LinkFaults, direction: Literal["both", "up", "down"] = "both") -> None:
        """Change delay/jitter/loss (up: client to server, down: server to client); applies to chunks read from now."""
        if direction in ("both", "up"):
            self.faults_up = faults
        if direction in ("both", "down"):
            self.faults_down = faults

    def cut(self, *, close: bool = False) -> float:
        """Stop forwarding now (both ways); with close, also close every connection. Returns the cut time."""
        self._cut = True
        self.cut_at = time.monotonic()
        if close and self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_all)
        return self.cut_at

    def restore(self) -> None:
        """Forward again (new bytes only; what was read during the cut is gone)."""
        self._cut = False

    @property
    def is_cut(self) -> bool:
        return self._cut

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise NotReady(f"fault proxy on port {self.port} did not start: {self._error}")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            self._close_all()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    # ------------------------------------------------------------------ forwarding (the proxy's loop)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:  # a dead link accepts nothing: hold the connection open, silent
            self._writers.add(writer)
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            self._writers.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        tasks = [asyncio.create_task(self._pipe(reader, up_writer, "up")),
                 asyncio.create_task(self._pipe(up_reader, writer, "down"))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the proxy stops: close quietly
            pass
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        """Read chunks, stamp each with its due time, and forward them in order from a queue."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        try:
            last_due = 0.0
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self._cut:
                    continue
                f = self.faults_up if direction == "up" else self.faults_down
                now = time.monotonic()
                due = now + max(0.0, f.delay_s + (self._rng.uniform(-f.jitter_s, f.jitter_s) if f.jitter_s else 0.0))
                if f.loss and self._rng.random() < f.loss:
                    self.chunks_lost += 1
                    if f.loss_mode == "drop":
                        continue
                    due += f.retransmit_s
                last_due = max(last_due, due)  # in order, as TCP delivers
                queue.put_nowait((last_due, data))
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._cut:
                continue
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return
            self.bytes_forwarded += len(data)


__all__ = ["FaultProxy", "LinkFaults"]
