"""Edge test helpers: a Modbus device that counts the reads it answers; configs for a gateway and a platform.

Holding register 0 is a uint16 that goes up by one on every read request the device
answers (the count is the value read), registers 1-2 are a float32 of count / 4. So the
values the historian holds must be exactly 1, 2, ..., count: a gap is a lost sample, a
repeat a duplicate. ``freeze()`` makes the device refuse reads (exception 6, busy), so the
count is final while the gateway keeps running.
"""

from __future__ import annotations

import asyncio
import struct
import threading

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor.core.net import free_port
from shopfloor.edge.config import EdgeConfig
from shopfloor.edge.gateway import plant_equipment_yaml

READ_HOLDING = 3


class CountingPress:
    """The device; its server runs on an event loop of its own thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.frozen = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="counting-press", daemon=True)
        self._server: ModbusTcpServer | None = None

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is not None or function_code != READ_HOLDING:
            return None
        if self.frozen:
            return ExcCodes.DEVICE_BUSY
        if address - start_address <= 0 < address - start_address + count:
            self.count += 1
            registers[0] = self.count & 0xFFFF
            registers[1], registers[2] = struct.unpack(">HH", struct.pack(">f", self.count / 4))
        return None

    async def _start(self) -> None:
        device = SimDevice(id=1, action=self._action, simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)],
            [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)],
        ))
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]

    def start(self) -> CountingPress:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def freeze(self) -> int:
        """Refuse reads from now on; return the final count."""
        async def set_frozen() -> int:
            self.frozen = True
            return self.count

        return asyncio.run_coroutine_threadsafe(set_frozen(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()



def edge_yaml(press: CountingPress, broker: str, data_dir: str, *, poll_s: float = 0.1, extra: str = "",
              max_mb: float = 16) -> str:
    return f"""\
gateway: {{group: plant1, node: edge1}}
mqtt:
  broker: {broker}
  keepalive_s: 2
  connect_timeout_s: 1
  reconnect_min_s: 0.2
  reconnect_max_s: 1
  drain_s: 10
buffer: {{data_dir: "{data_dir}", max_mb: {max_mb}}}
link: {{interval_s: 0.5}}
devices:
  - name: press1
    source: {{protocol: modbus, host: 127.0.0.1, port: {press.port}, unit: 1, poll_s: {poll_s}, timeout_s: 0.5,
              retries: 0}}
    tags:
      - {{name: reads, modbus: {{table: holding, address: 0, type: uint16}}}}
      - {{name: force, modbus: {{table: holding, address: 1, type: float32}}}}
{extra}"""


def plant_yaml(config: EdgeConfig) -> str:
    """plant.yaml of a platform that maps the gateway's metrics, from the gateway's own --print-plant output."""
    equipment = plant_equipment_yaml(config).replace("\n", "\n" + " " * 10)
    return f"""\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l
          {equipment}
"""
