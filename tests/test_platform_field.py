"""The platform reads a Modbus TCP device and an OPC UA server named in plant.yaml, beside MQTT.

Real peers: pymodbus's and asyncua's own servers on free loopback ports, run on a
thread of their own (the platform runs its field connectors on its own loop).
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor.api import create_app
from shopfloor.client import ShopfloorClient
from shopfloor.config import parse_plant_config
from shopfloor.core.net import free_port
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

FORCE = 412.5  # float32 in holding registers 0-1
STROKES = 1234  # uint16 in holding register 2


class Peers:
    """A pymodbus server and an asyncua server on one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.modbus_port = free_port()
        self.opcua_endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plant/"
        self.modbus: ModbusTcpServer | None = None
        self.opcua: Server | None = None
        self.torque: Any = None

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def start_modbus(self) -> None:
        hi, lo = struct.unpack(">HH", struct.pack(">f", FORCE))
        device = SimDevice(id=1, simdata=(
            [SimData(0, values=[1] + [0] * 15, datatype=DataType.BITS)],
            [SimData(0, values=[0] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[hi, lo, STROKES] + [0] * 13, datatype=DataType.REGISTERS)],
            [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)],
        ))
        self.modbus = ModbusTcpServer(device, address=("127.0.0.1", self.modbus_port))
        await self.modbus.serve_forever(background=True)

    async def stop_modbus(self) -> None:
        assert self.modbus is not None
        await self.modbus.shutdown()  # type: ignore[no-untyped-call]

    async def start_opcua(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.opcua_endpoint)
        idx = await server.register_namespace("urn:shopfloor:test")
        robot = await server.nodes.objects.add_object(ua.NodeId("Robot", idx), "Robot")
        self.torque = await robot.add_variable(
            ua.NodeId("Robot.Torque", idx), "Torque", ua.Variant(12.5, ua.VariantType.Double)
        )
        await robot.add_variable(ua.NodeId("Robot.Cycles", idx), "Cycles", ua.Variant(77, ua.VariantType.Int32))
        await server.start()
        self.opcua = server

    async def stop_opcua(self) -> None:
        assert self.opcua is not None
        await self.opcua.stop()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def peers() -> Iterator[Peers]:
    p = Peers()
    p.run(p.start_modbus())
    p.run(p.start_opcua())
    yield p
    p.run(p.stop_modbus())
    p.run(p.stop_opcua())
    p.close()


def plant(p: Peers) -> str:
    return f"""\
site:
  name: plant
  areas:
    - name: press-shop
      lines:
        - name: line1
          equipment:
            - name: press
              source: {{protocol: modbus, host: 127.0.0.1, port: {p.modbus_port}, unit: 1, poll_s: 0.1,
                        timeout_s: 0.3, retries: 0}}
              tags:
                - {{name: force, unit: kN, modbus: {{table: holding, address: 0, type: float32}}}}
                - {{name: strokes, modbus: {{table: holding, address: 2, type: uint16}}}}
                - {{name: guard_closed, type: bool, modbus: {{table: coil, address: 0, type: bool}}}}
            - name: robot
              source: {{protocol: opcua, endpoint: "{p.opcua_endpoint}", publishing_interval_ms: 100,
                        sampling_interval_ms: 50}}
              tags:
                - {{name: torque, unit: Nm, address: "ns=2;s=Robot.Torque"}}
                - {{name: cycles, type: int32, address: "ns=2;s=Robot.Cycles"}}
"""


def test_modbus_and_opcua_values_reach_the_api_and_outages_show(
    peers: Peers, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    platform = Platform(parse_plant_config(plant(peers)), data_dir=tmp_path / "data", broker_url=mosquitto.url)
    press, robot = "plant/press-shop/line1/press", "plant/press-shop/line1/robot"
    with ApiServer(create_app(platform)) as server, ShopfloorClient(server.url) as client:

        def values() -> dict[str, Any]:
            return {v["tag"]: v for v in client.latest()}

        wait_for(lambda: len(values()) == 5, 20)
        latest = values()
        assert latest[f"{press}/force"]["value"] == FORCE
        assert latest[f"{press}/strokes"]["value"] == STROKES
        assert latest[f"{press}/guard_closed"]["value"] == 1.0
        assert latest[f"{robot}/torque"]["value"] == 12.5
        assert latest[f"{robot}/cycles"]["value"] == 77.0
        assert {v["quality"] for v in latest.values()} == {"good"}

        peers.run(peers.torque.write_value(ua.Variant(20.25, ua.VariantType.Double)))
        wait_for(lambda: values()[f"{robot}/torque"]["value"] == 20.25)

        peers.run(peers.stop_modbus())
        wait_for(lambda: values()[f"{press}/force"]["quality"] == "bad")
        modbus_health = next(c for c in client.connectors() if c["name"].startswith("modbus"))
        assert modbus_health["state"] == "down"
        assert client.health()["status"] == "degraded"
        assert values()[f"{robot}/torque"]["quality"] == "good"

        peers.run(peers.start_modbus())
        wait_for(lambda: values()[f"{press}/force"]["quality"] == "good")
        assert client.health()["status"] == "ok"
