"""Modbus polling benchmark: the connector (plan + decode + batch) against a bare pymodbus client loop.

A pymodbus TCP server runs in its own process with ``--registers`` holding
registers (a mix of float32, int16 and uint32 points covering all of them). The
connector polls them back to back (poll period ~0) for ``--seconds``; the peer is
a plain AsyncModbusTcpClient loop reading the same requests (same addresses and
sizes) without decoding anything. Their ratio is what our decode and batching
cost on top of the protocol round trips; the decode alone is timed as well.

Run: python benchmarks/modbus.py [--seconds 5] [--registers 10000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import platform
import time
from dataclasses import asdict, dataclass

from pymodbus.client import AsyncModbusTcpClient
from rich.console import Console
from rich.table import Table

from shopfloor.config.schema import ModbusPoint, ModbusSource
from shopfloor.connectors.modbus import ModbusConnector
from shopfloor.core.net import free_port
from shopfloor.core.samples import SampleBatch

console = Console(stderr=True, width=120)
UNIT = 1


@dataclass
class Result:
    sink: str
    polls: int
    seconds: float
    requests_per_poll: int
    registers_per_s: float
    points_per_s: float | None
    decode_us_per_poll: float | None = None
    ratio: float | None = None


def points_for(n_registers: int) -> list[tuple[int, ModbusPoint]]:
    """Cover the registers with float32, int16 and uint32 points in turn (5 registers per cycle)."""
    points: list[tuple[int, ModbusPoint]] = []
    address = 0
    cycle = (("float32", 2), ("int16", 1), ("uint32", 2))
    while True:
        for type_, words in cycle:
            if address + words > n_registers:
                return points
            points.append((len(points) + 1, ModbusPoint(table="holding", address=address, type=type_,  # type: ignore[arg-type]
                                                        scale=0.1 if type_ == "int16" else 1.0)))
            address += words


def serve(port: int, n_registers: int, ready: mp.synchronize.Event) -> None:  # pragma: no cover - subprocess
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def main() -> None:
        device = SimDevice(id=UNIT, simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[i % 65536 for i in range(n_registers)], datatype=DataType.REGISTERS)],
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        ))
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())



async def run_connector(port: int, n_registers: int, seconds: float) -> Result:
    points = points_for(n_registers)
    src = ModbusSource(protocol="modbus", host="127.0.0.1", port=port, unit=UNIT, poll_s=1e-6, timeout_s=5,
                       retries=0)
    connector = ModbusConnector("bench", src, points)
    polls = 0
    first: float | None = None

    async def emit(batch: SampleBatch) -> None:
        nonlocal polls, first
        if first is None:  # start the clock at the first poll, after connecting
            first = time.perf_counter()
            return
        polls += 1

    task = asyncio.create_task(connector.run(emit))
    while first is None:
        await asyncio.sleep(0.001)
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - first
    n_polls = polls
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if connector.health()["failed_polls"]:
        raise RuntimeError(f"connector failed: {connector.health()}")
    plan = connector.plan
    regs, bits = plan.buffers()
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        plan.decode(regs, bits)
    decode_us = (time.perf_counter() - t0) / reps * 1e6
    return Result("connector: plan+decode+batch", n_polls, elapsed, len(plan.requests),
                  n_polls * plan.register_count / elapsed, n_polls * len(points) / elapsed, decode_us)


async def run_peer(port: int, n_registers: int, seconds: float) -> Result:
    src = ModbusSource(protocol="modbus", host="127.0.0.1", port=port, unit=UNIT)
    requests = ModbusConnector("plan", src, points_for(n_registers)).plan.requests
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0, reconnect_delay=0)
    if not await client.connect():
        raise RuntimeError("peer cannot connect")
    polls = registers = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for req in requests:
            resp = await client.read_holding_registers(req.address, count=req.count, device_id=UNIT)
            registers += len(resp.registers)
        polls += 1
    elapsed = time.perf_counter() - t0
    client.close()
    return Result("peer: bare pymodbus loop", polls, elapsed, len(requests),
                  registers / elapsed, None)


async def bench(port: int, n_registers: int, seconds: float) -> list[Result]:
    peer = await run_peer(port, n_registers, seconds)
    ours = await run_connector(port, n_registers, seconds)
    ours.ratio = ours.registers_per_s / peer.registers_per_s
    return [ours, peer]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--registers", type=int, default=10_000)
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    port = free_port()
    proc = ctx.Process(target=serve, args=(port, args.registers, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("server did not start")
        results = asyncio.run(bench(port, args.registers, args.seconds))
    finally:
        proc.terminate()
        proc.join(5)

    if args.json:
        print(json.dumps({"benchmark": "modbus", "registers": args.registers, "seconds": args.seconds,
                          "python": platform.python_version(), "results": [asdict(r) for r in results]}))
        return
    table = Table(title=f"Modbus TCP polling, {args.registers} holding registers, loopback, server in its own process")
    for col in ("sink", "requests/poll", "polls", "registers/s", "points/s", "decode µs/poll", "vs peer"):
        table.add_column(col, justify="left" if col == "sink" else "right")
    for r in results:
        table.add_row(r.sink, str(r.requests_per_poll), str(r.polls), f"{r.registers_per_s:,.0f}",
                      "-" if r.points_per_s is None else f"{r.points_per_s:,.0f}",
                      "-" if r.decode_us_per_poll is None else f"{r.decode_us_per_poll:,.0f}",
                      "-" if r.ratio is None else f"{r.ratio:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
