"""The Modbus TCP connector: polls one device on a fixed period and emits one batch per poll.

Link supervision follows the FieldConnector contract (shopfloor.connectors.base):
a failed connect, a timeout after the source's retries, or a lost connection marks
the device down. On that transition, and only then, it emits one batch of BAD NaN
samples for every point (so dashboards stop showing stale values) and logs once;
it then reconnects with capped exponential backoff, and logs once more when a
poll succeeds again. A Modbus exception response to one request (say, illegal
address) is a configuration fault, not a link fault: only that request's points
go BAD, the code shows in ``health()``, and the rest keeps polling.

One asyncio.Lock per link serialises polls and writes, so a setpoint goes out
between two read requests, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from shopfloor.config.schema import ModbusPoint, ModbusSource
from shopfloor.connectors.base import Emit
from shopfloor.connectors.modbus.codec import encode
from shopfloor.connectors.modbus.errors import (
    DeviceUnavailable,
    ModbusExceptionResponse,
    ReadOnlyPoint,
    SetpointOutOfRange,
)
from shopfloor.connectors.modbus.plan import DEFAULT_MAX_GAP, PollPlan, ReadRequest, compile_plan
from shopfloor.core.errors import UnknownTag
from shopfloor.core.samples import Quality, SampleBatch

log = logging.getLogger(__name__)

#: What a broken link raises: pymodbus's own errors (no response after retries,
#: not connected), socket errors, and our guard timeout.
LINK_ERRORS = (ModbusException, OSError, TimeoutError)


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that asyncio.wait_for swallowed.

    On Python < 3.12, wait_for (which pymodbus uses per request) returns the result
    and drops the cancellation when both arrive together; the task would then poll on
    forever, "cancelling" but never cancelled.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class _LinkDown(Exception):
    """Internal: the poll cannot go on; the link must be rebuilt."""


@dataclass(frozen=True, slots=True)
class RequestError:
    """A request the device refused with an exception response."""

    table: str
    address: int
    count: int
    exception_code: int

    def as_dict(self) -> dict[str, object]:
        return {"table": self.table, "address": self.address, "count": self.count,
                "exception_code": self.exception_code}


class ModbusConnector:
    """Polls one Modbus TCP device (``source``) for ``points``: (tag_id, ModbusPoint) pairs."""

    def __init__(
        self,
        name: str,
        source: ModbusSource,
        points: Sequence[tuple[int, ModbusPoint]],
        *,
        clock: Callable[[], int] = time.time_ns,
        max_gap: int = DEFAULT_MAX_GAP,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.name = name
        self.source = source
        self._clock = clock
        self._backoff_max_s = max(backoff_max_s, source.poll_s)
        self._tag_ids = np.array([t for t, _ in points], dtype=np.int32)
        self._by_tag = {t: p for t, p in points}
        if len(self._by_tag) != len(points):
            raise ValueError(f"modbus connector {name}: a tag id appears twice")
        self.plan: PollPlan = compile_plan([p for _, p in points], source.max_registers, max_gap)
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._up = False
        self._bad_sent = False  # the BAD batch of the current outage went out
        self._polls = 0
        self._failed_polls = 0
        self._consecutive_failures = 0
        self._last_poll_ns: int | None = None
        self._last_error: str | None = None
        self._request_errors: dict[int, RequestError] = {}

    @property
    def endpoint(self) -> str:
        return f"{self.source.host}:{self.source.port}/{self.source.unit}"

    # -- supervision -------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        """Poll until cancelled; reconnect with backoff on link failures (never returns on one)."""
        loop = asyncio.get_running_loop()
        backoff = self.source.poll_s
        next_tick = loop.time()
        try:
            while True:
                if self._client is None or not self._client.connected:
                    if not await self._connect():
                        await self._down(emit, f"cannot connect to {self.endpoint}")
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, self._backoff_max_s)
                        continue
                    next_tick = loop.time()
                try:
                    await self._poll(emit)
                except _LinkDown as exc:
                    await self._down(emit, str(exc))
                    self._disconnect()
                    continue
                backoff = self.source.poll_s
                next_tick += self.source.poll_s
                now = loop.time()
                if next_tick < now:  # overran: skip the missed ticks, keep the phase
                    next_tick += ((now - next_tick) // self.source.poll_s + 1) * self.source.poll_s
                await asyncio.sleep(next_tick - now)
        finally:
            self._disconnect()

    async def _connect(self) -> bool:
        """A fresh client per attempt: pymodbus's own reconnect is off, our backoff decides."""
        self._disconnect()
        client = AsyncModbusTcpClient(
            self.source.host,
            port=self.source.port,
            name=self.name,
            timeout=self.source.timeout_s,
            retries=self.source.retries,
            reconnect_delay=0,
        )
        self._client = client
        try:
            return await client.connect()
        except LINK_ERRORS:
            return False

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _down(self, emit: Emit, error: str) -> None:
        """Count a failed cycle; on the transition to down, emit BAD once and log once."""
        self._failed_polls += 1
        self._consecutive_failures += 1
        self._last_error = error
        was_up, self._up = self._up, False
        if not self._bad_sent:
            self._bad_sent = True
            if was_up:
                log.warning("modbus %s (%s) down: %s", self.name, self.endpoint, error)
            else:
                log.warning("modbus %s (%s) unreachable: %s", self.name, self.endpoint, error)
            n = len(self._tag_ids)
            await emit(SampleBatch.of(self._tag_ids, np.full(n, self._clock(), np.int64),
                                      np.full(n, np.nan), Quality.BAD))

    # -- polling -----------------------------------------------------------

    async def _read(self, client: AsyncModbusTcpClient, req: ReadRequest) -> ModbusPDU:
        unit = self.source.unit
        if req.table == "holding":
            call = client.read_holding_registers(req.address, count=req.count, device_id=unit)
        elif req.table == "input":
            call = client.read_input_registers(req.address, count=req.count, device_id=unit)
        elif req.table == "coil":
            call = client.read_coils(req.address, count=req.count, device_id=unit)
        else:
            call = client.read_discrete_inputs(req.address, count=req.count, device_id=unit)
        # pymodbus applies timeout and retries itself; this guard only bounds a lost future.
        guard = self.source.timeout_s * (self.source.retries + 1) + 1.0
        async with asyncio.timeout(guard):
            resp = await call
        _raise_if_cancelled()
        return resp

    async def _poll(self, emit: Emit) -> None:
        """Execute the plan once and emit one batch; raise _LinkDown on a link failure."""
        plan = self.plan
        ts = self._clock()
        registers, bits = plan.buffers()
        quality = np.full(len(plan.points), Quality.GOOD, dtype=np.uint8)
        failed: list[int] = []
        async with self._lock:
            client = self._client
            if client is None:
                raise _LinkDown("not connected")
            for r, req in enumerate(plan.requests):
                try:
                    resp = await self._read(client, req)
                except LINK_ERRORS as exc:
                    raise _LinkDown(f"{req.table} {req.address}+{req.count}: {exc}") from exc
                if resp.isError():
                    failed.append(r)
                    self._refused(r, req, int(getattr(resp, "exception_code", 0)))
                    continue
                if r in self._request_errors:
                    del self._request_errors[r]
                    log.info("modbus %s: %s %d+%d answers again", self.name, req.table, req.address, req.count)
                b = plan.base[r]
                if req.is_bits:
                    bits[b:b + req.count] = resp.bits[:req.count]
                else:
                    registers[b:b + req.count] = resp.registers
        values = plan.decode(registers, bits)
        for r in failed:
            values[plan.request_points[r]] = np.nan
            quality[plan.request_points[r]] = Quality.BAD
        self._polls += 1
        self._consecutive_failures = 0
        self._last_poll_ns = ts
        if not self._up:
            self._up = True
            if self._bad_sent:
                log.info("modbus %s (%s) up again", self.name, self.endpoint)
            else:
                log.info("modbus %s (%s) up", self.name, self.endpoint)
            self._bad_sent = False
        await emit(SampleBatch(self._tag_ids, np.full(len(values), ts, np.int64), values, quality))

    def _refused(self, r: int, req: ReadRequest, code: int) -> None:
        """Record an exception response; log only when the request starts failing or its code changes."""
        err = RequestError(req.table, req.address, req.count, code)
        if self._request_errors.get(r) != err:
            log.warning("modbus %s: %s %d+%d refused with exception code %d; its points are BAD",
                        self.name, req.table, req.address, req.count, code)
        self._request_errors[r] = err
        self._last_error = f"exception code {code} reading {req.table} {req.address}+{req.count}"

    # -- writes ------------------------------------------------------------

    async def write(self, tag_id: int, value: float) -> None:
        """Write a setpoint to a holding register (or registers) or a coil.

        Raises UnknownTag, ReadOnlyPoint (input registers, discrete inputs),
        SetpointOutOfRange, DeviceUnavailable or ModbusExceptionResponse.
        """
        point = self._by_tag.get(tag_id)
        if point is None:
            raise UnknownTag(f"tag id {tag_id} is not a point of modbus connector {self.name}")
        if point.table in ("input", "discrete"):
            raise ReadOnlyPoint(f"tag id {tag_id} is a {point.table} point of {self.name}: read-only")
        try:
            words = encode(point, value)
        except ValueError as exc:
            raise SetpointOutOfRange(f"tag id {tag_id}: {exc}") from exc
        unit = self.source.unit
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise DeviceUnavailable(f"modbus {self.name} ({self.endpoint}) is not connected")
            try:
                async with asyncio.timeout(self.source.timeout_s * (self.source.retries + 1) + 1.0):
                    if point.table == "coil":
                        resp = await client.write_coil(point.address, bool(words[0]), device_id=unit)
                    elif len(words) == 1:
                        resp = await client.write_register(point.address, words[0], device_id=unit)
                    else:
                        resp = await client.write_registers(point.address, words, device_id=unit)
            except LINK_ERRORS as exc:
                raise DeviceUnavailable(f"modbus {self.name} ({self.endpoint}): write failed: {exc}") from exc
            _raise_if_cancelled()
        if resp.isError():
            code = int(getattr(resp, "exception_code", 0))
            raise ModbusExceptionResponse(
                f"modbus {self.name}: writing tag id {tag_id} ({point.table} {point.address}) "
                f"refused with exception code {code}", code)

    # -- health ------------------------------------------------------------

    def health(self) -> dict[str, object]:
        client = self._client
        return {
            "name": self.name,
            "protocol": "modbus",
            "endpoint": self.endpoint,
            "connected": bool(client is not None and client.connected),
            "state": "up" if self._up else "down",
            "polls": self._polls,
            "failed_polls": self._failed_polls,
            "consecutive_failures": self._consecutive_failures,
            "last_poll_ns": self._last_poll_ns,
            "last_error": self._last_error,
            "requests_per_poll": len(self.plan.requests),
            "points": len(self.plan.points),
            "request_errors": [e.as_dict() for e in self._request_errors.values()],
        }
