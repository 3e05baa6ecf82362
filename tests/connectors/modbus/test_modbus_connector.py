"""The connector against pymodbus's own TCP server on a loopback port.

The server's datastore uses SimDevice/SimData (ModbusDeviceContext and friends are
deprecated in pymodbus 3.x). Register contents are written as raw words, from the
golden table, not through our codec, so the codec is checked end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor.config.schema import ModbusPoint, ModbusSource
from shopfloor.connectors.modbus import (
    DeviceUnavailable,
    ModbusConnector,
    ReadOnlyPoint,
    SetpointOutOfRange,
)
from shopfloor.core.errors import UnknownTag
from shopfloor.core.net import free_port
from shopfloor.core.samples import Quality, SampleBatch

UNIT = 3

HOLDING = {
    0: [0x42F6, 0xE979],  # float32 big/big 123.456
    2: [0x79E9, 0xF642],  # float32 little/little 123.456
    4: [0xBE77, 0x1A9F, 0xDD2F, 0x405E],  # float64 little word, big byte 123.456
    8: [0xFFFF],  # int16 -1, scale 0.5 offset 10 -> 9.5
    9: [0x3412],  # uint16 little byte 0x1234
    10: [0xFEFF, 0xC01D],  # int32 big word, little byte -123456
    12: [0xE240, 0x0001],  # uint32 little word, big byte 123456
}
INPUT = {
    0: [0xE979, 0x42F6],  # float32 little word 123.456
    2: [0x8000],  # int16 -32768
    3: [0xFFFE, 0x1DC0],  # int32 -123456, scale 0.001 -> -123.456
    5: [0x5E40, 0x2FDD, 0x9F1A, 0x77BE],  # float64 big word, little byte 123.456
}
COILS = [True, False, True] + [False] * 13
DISCRETE = [False, True] + [False] * 14


def P(table: str, address: int, type_: str = "uint16", **kw: object) -> ModbusPoint:
    return ModbusPoint(table=table, address=address, type=type_, **kw)  # type: ignore[arg-type]


POINTS: list[tuple[int, ModbusPoint]] = [
    (1, P("holding", 0, "float32")),
    (2, P("holding", 2, "float32", word_order="little", byte_order="little")),
    (3, P("holding", 4, "float64", word_order="little")),
    (4, P("holding", 8, "int16", scale=0.5, offset=10.0)),
    (5, P("holding", 9, "uint16", byte_order="little")),
    (6, P("holding", 10, "int32", byte_order="little")),
    (7, P("holding", 12, "uint32", word_order="little")),
    (8, P("input", 0, "float32", word_order="little")),
    (9, P("input", 2, "int16")),
    (10, P("input", 3, "int32", scale=0.001)),
    (11, P("input", 5, "float64", byte_order="little")),
    (12, P("coil", 0, "bool")),
    (13, P("coil", 1, "bool")),
    (14, P("coil", 2, "bool", scale=-1, offset=1)),
    (15, P("discrete", 0, "bool")),
    (16, P("discrete", 1, "bool")),
    # write targets
    (20, P("holding", 20, "float32")),
    (21, P("holding", 22, "int16", scale=0.1)),
    (22, P("holding", 23, "uint32", word_order="little", byte_order="little")),
    (23, P("coil", 5, "bool")),
]
EXPECTED = {1: 123.456, 2: 123.456, 3: 123.456, 4: 9.5, 5: 0x1234, 6: -123456, 7: 123456, 8: 123.456,
            9: -32768, 10: -123.456, 11: 123.456, 12: 1, 13: 0, 14: 0, 15: 0, 16: 1, 20: 0, 21: 0, 22: 0, 23: 0}


def registers(table: dict[int, list[int]], size: int = 64) -> list[int]:
    regs = [0] * size
    for address, words in table.items():
        regs[address:address + len(words)] = words
    return regs


class Server:
    """A pymodbus TCP server that can be stopped and started again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        device = SimDevice(id=UNIT, simdata=(
            [SimData(0, values=list(COILS), datatype=DataType.BITS)],
            [SimData(0, values=list(DISCRETE), datatype=DataType.BITS)],
            [SimData(0, values=registers(HOLDING), datatype=DataType.REGISTERS)],
            [SimData(0, values=registers(INPUT), datatype=DataType.REGISTERS)],
        ))
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None



@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(free_port())
    await srv.start()
    yield srv
    await srv.stop()


def source(port: int) -> ModbusSource:
    return ModbusSource(protocol="modbus", host="127.0.0.1", port=port, unit=UNIT, poll_s=0.05,
                        timeout_s=0.25, retries=0)


class Running:
    """A connector running as a task, collecting what it emits."""

    def __init__(self, connector: ModbusConnector) -> None:
        self.connector = connector
        self.batches: list[SampleBatch] = []
        self.task: asyncio.Task[None] | None = None

    async def emit(self, batch: SampleBatch) -> None:
        self.batches.append(batch)

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)

    def values(self, batch: SampleBatch) -> dict[int, float]:
        return dict(zip(batch.tag_id.tolist(), batch.value.tolist(), strict=True))

    def count(self, key: str) -> int:
        value = self.connector.health()[key]
        assert isinstance(value, int)
        return value

    def bad_batches(self) -> list[SampleBatch]:
        return [b for b in self.batches if (b.quality == Quality.BAD).all()]


@contextlib.asynccontextmanager
async def running(port: int, points: Sequence[tuple[int, ModbusPoint]] = POINTS,
                  **kw: object) -> AsyncIterator[Running]:
    r = Running(ModbusConnector("press1", source(port), points, backoff_max_s=0.2, **kw))  # type: ignore[arg-type]
    r.task = asyncio.create_task(r.connector.run(r.emit))
    try:
        yield r
    finally:
        r.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await r.task
        assert r.connector.health()["connected"] is False


async def test_reads_every_type_table_and_order(server: Server) -> None:
    async with running(server.port) as r:
        await r.until(lambda: len(r.batches) >= 2)
        batch = r.batches[-1]
        assert (batch.quality == Quality.GOOD).all()
        assert len(set(batch.ts.tolist())) == 1  # one poll, one timestamp
        got = r.values(batch)
        for tag, want in EXPECTED.items():
            assert got[tag] == pytest.approx(want, rel=1e-6), tag
        health = r.connector.health()
        assert health["state"] == "up" and health["connected"] is True
        assert health["requests_per_poll"] == 4  # holding, input, coil, discrete: one each
        assert health["points"] == len(POINTS)
        assert health["endpoint"] == f"127.0.0.1:{server.port}/{UNIT}"
        assert health["protocol"] == "modbus"
        assert health["last_poll_ns"] == int(batch.ts[0])


async def test_writes_read_back(server: Server) -> None:
    async with running(server.port) as r:
        await r.until(lambda: len(r.batches) >= 1)
        c = r.connector
        await c.write(20, -42.25)
        await c.write(21, -12.3)
        await c.write(22, 3_000_000_000)
        await c.write(23, 1.0)
        await c.write(12, 0.0)
        n = len(r.batches)
        await r.until(lambda: len(r.batches) > n + 1)
        got = r.values(r.batches[-1])
        assert got[20] == -42.25
        assert got[21] == pytest.approx(-12.3)
        assert got[22] == 3_000_000_000
        assert (got[23], got[12]) == (1.0, 0.0)

        with pytest.raises(ReadOnlyPoint, match="input"):
            await c.write(8, 1.0)
        with pytest.raises(ReadOnlyPoint, match="discrete"):
            await c.write(15, 1.0)
        with pytest.raises(SetpointOutOfRange, match=r"int16 raw \[-32768, 32767\].*\[-3276.8, 3276.7\]"):
            await c.write(21, 5000.0)
        with pytest.raises(SetpointOutOfRange, match="not a finite number"):
            await c.write(20, math.nan)
        with pytest.raises(UnknownTag):
            await c.write(999, 1.0)


async def test_write_when_not_connected_is_typed() -> None:
    c = ModbusConnector("press1", source(free_port()), POINTS)
    with pytest.raises(DeviceUnavailable):
        await c.write(20, 1.0)


async def test_outage_goes_bad_once_and_recovers_by_itself(server: Server) -> None:
    async with running(server.port) as r:
        await r.until(lambda: any((b.quality == Quality.GOOD).all() for b in r.batches))
        await server.stop()
        await r.until(lambda: len(r.bad_batches()) == 1)
        bad = r.bad_batches()[0]
        assert np.isnan(bad.value).all() and len(bad) == len(POINTS)
        await r.until(lambda: r.count("consecutive_failures") >= 3)  # several failed attempts ...
        assert len(r.bad_batches()) == 1  # ... and still one BAD batch
        health = r.connector.health()
        assert health["state"] == "down" and health["connected"] is False
        assert health["last_error"]
        n = len(r.batches)

        await server.start()
        await r.until(lambda: len(r.batches) > n and (r.batches[-1].quality == Quality.GOOD).all())
        assert r.values(r.batches[-1])[1] == pytest.approx(123.456, rel=1e-6)
        health = r.connector.health()
        assert health["state"] == "up" and health["consecutive_failures"] == 0
        assert r.count("failed_polls") >= 3
        assert len(r.bad_batches()) == 1


async def test_unreachable_at_start_emits_bad_once() -> None:
    async with running(free_port()) as r:
        await r.until(lambda: r.count("consecutive_failures") >= 3)
        assert len(r.batches) == 1 and len(r.bad_batches()) == 1
        assert r.connector.health()["state"] == "down"


async def test_illegal_address_marks_only_its_request(server: Server) -> None:
    points = [*POINTS, (30, P("holding", 1000, "float32")), (31, P("coil", 900, "bool"))]
    async with running(server.port, points) as r:
        await r.until(lambda: len(r.batches) >= 3)
        batch = r.batches[-1]
        got = r.values(batch)
        quality = dict(zip(batch.tag_id.tolist(), batch.quality.tolist(), strict=True))
        assert quality[30] == quality[31] == Quality.BAD
        assert math.isnan(got[30]) and math.isnan(got[31])
        assert all(quality[t] == Quality.GOOD for t in EXPECTED)
        assert got[1] == pytest.approx(123.456, rel=1e-6)
        health = r.connector.health()
        assert health["state"] == "up" and health["requests_per_poll"] == 6
        errors = health["request_errors"]
        assert isinstance(errors, list)
        assert sorted((e["table"], e["address"], e["exception_code"]) for e in errors) == [
            ("coil", 900, 2), ("holding", 1000, 2)]
        assert "exception code 2" in str(health["last_error"])
        assert not r.bad_batches()
