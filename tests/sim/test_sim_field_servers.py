"""The virtual factory over OPC UA and Modbus TCP: the press, plant.yaml, the servers, the platform and the demo."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asyncua import ua
from asyncua.client.client import Client
from pymodbus.client import AsyncModbusTcpClient

from shopfloor.api import create_app
from shopfloor.client import ShopfloorClient
from shopfloor.config import parse_plant_config
from shopfloor.config.schema import ModbusSource, OpcUaSource
from shopfloor.core.net import free_port
from shopfloor.platform import Platform
from shopfloor.sim import RUNNING, VirtualFactory
from shopfloor.sim.factory import Frame
from shopfloor.sim.field_servers import FieldServers
from shopfloor.sim.fieldmap import MODBUS_UNIT, PRESS_REGISTERS, encode, opcua_node_id
from shopfloor.sim.press import PRESS_SIGNALS
from shopfloor.sim.publisher import FactoryPublisher
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.processes import interrupt
from shopfloor.testing.server import ApiServer

ROBOT = "virtual-factory/machining/line1/cell4/robot1"
PRESS = "virtual-factory/machining/line1/cell5/press1"
START_NS = 1_700_000_000_000_000_000


def field_factory(seed: int = 5, **kw: Any) -> VirtualFactory:
    return VirtualFactory(
        seed, START_NS, opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/sim/", modbus_port=free_port(), **kw
    )


def test_default_factory_stays_mqtt_only() -> None:
    factory = VirtualFactory(seed=5, start_ns=START_NS)
    frame = factory.step()
    assert factory.field_devices == () and factory.press is None
    assert "robot1" in frame.sparkplug and frame.opcua == {} and frame.modbus == {}
    assert "opcua" not in factory.plant_yaml() and "modbus" not in factory.plant_yaml()


def test_field_protocols_move_the_robot_and_add_the_press_without_changing_any_value() -> None:
    plain, field = VirtualFactory(seed=5, start_ns=START_NS), field_factory()
    for _ in range(500):
        a, b = plain.step(), field.step()
        assert set(b.sparkplug) == set(a.sparkplug) - {"robot1"} and set(b.opcua) == {"robot1"}
        assert set(b.modbus) == {"press1"} and b.json.keys() == a.json.keys()
        np.testing.assert_array_equal(b.opcua["robot1"], a.sparkplug["robot1"])
        for name, values in b.sparkplug.items():
            np.testing.assert_array_equal(values, a.sparkplug[name])
        for name, values in b.json.items():
            np.testing.assert_array_equal(values, a.json[name])
    assert "robot1" not in {d.name for d in field.sparkplug_devices}


def test_press_is_deterministic_in_range_and_causal() -> None:
    runs = []
    for _ in range(2):
        f = field_factory(seed=9)
        runs.append(np.array([f.step().modbus["press1"] for _ in range(8_000)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    v = runs[0]
    names = [s.name for s in PRESS_SIGNALS]
    col = {n: v[:, i] for i, n in enumerate(names)}
    for i, s in enumerate(PRESS_SIGNALS):
        if s.range is not None:
            assert s.range[0] <= v[:, i].min() and v[:, i].max() <= s.range[1], s.name
    assert np.all(np.diff(col["stroke_count"]) >= 0)
    running = col["state"] == RUNNING
    assert running.mean() > 0.5 and set(np.unique(col["state"])) > {RUNNING}  # it also stops now and then
    strokes = np.diff(col["stroke_count"])[running[1:]].sum()
    assert strokes == pytest.approx(running.sum() / 6.0, rel=0.05)  # one stroke per 6 s of running
    assert np.all(col["press_force"][~running] == 0.0)
    pressing = col["press_force"] > 400
    ratio = (col["hydraulic_pressure"][pressing] - 12.0) / col["press_force"][pressing]
    assert np.all(np.abs(ratio - 1 / 4.5) < 0.015)  # force over piston area, above the standby pressure
    assert np.all(col["pump_on"] == (col["state"] != 2))


def test_plant_config_with_both_servers_validates_and_round_trips() -> None:
    factory = field_factory()
    config = factory.plant_config()
    assert parse_plant_config(factory.plant_yaml()) == config
    line = config.site.areas[0].lines[0]
    cells = {c.name: c for c in line.cells}
    robot = cells["cell4"].equipment[0]
    assert robot.name == "robot1" and cells["cell4"].equipment[1].name == "meter-robot1"
    assert isinstance(robot.source, OpcUaSource) and robot.source.endpoint == factory.opcua_endpoint
    assert [t.address for t in robot.tags] == [opcua_node_id("robot1", s.name) for s in factory.robot.signals]
    (press,) = cells["cell5"].equipment
    assert isinstance(press.source, ModbusSource) and press.source.port == factory.modbus_port
    assert {t.name: (t.modbus.table, t.modbus.address, t.modbus.type) for t in press.tags if t.modbus} == {
        n: (r.table, r.address, r.type) for n, r in PRESS_REGISTERS.items()
    }
    temp = next(t for t in press.tags if t.name == "oil_temperature")
    assert temp.modbus is not None and temp.modbus.type == "int16" and temp.modbus.scale == 0.1


def test_register_encoding() -> None:
    assert encode(PRESS_REGISTERS["oil_temperature"], -12.3) == [0x10000 - 123]
    assert encode(PRESS_REGISTERS["stroke_count"], 410_638) == [6, 17422]
    assert encode(PRESS_REGISTERS["press_force"], 412.5) == list(struct.unpack(">HH", struct.pack(">f", 412.5)))
    assert encode(PRESS_REGISTERS["pump_on"], 1.0) == [1]
    assert encode(PRESS_REGISTERS["press_force"], float("nan")) == []


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[VirtualFactory, FieldServers]]:
    factory = field_factory()
    servers = FieldServers(factory)
    servers.start()
    try:
        yield factory, servers
    finally:
        servers.stop()


async def read_modbus(port: int) -> tuple[list[int], list[int], list[bool]]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    try:
        assert await client.connect()
        inputs = await client.read_input_registers(0, count=5, device_id=MODBUS_UNIT)
        holding = await client.read_holding_registers(0, count=4, device_id=MODBUS_UNIT)
        discrete = await client.read_discrete_inputs(0, count=1, device_id=MODBUS_UNIT)
        return inputs.registers, holding.registers, discrete.bits[:1]
    finally:
        client.close()


async def read_opcua(endpoint: str, device: str, names: list[str]) -> list[ua.DataValue]:
    async with Client(endpoint) as client:
        return [await client.get_node(opcua_node_id(device, n)).read_data_value() for n in names]


def test_servers_serve_the_values_of_a_step(served: tuple[VirtualFactory, FieldServers]) -> None:
    factory, servers = served
    frame: Frame | None = None
    for _ in range(40):
        frame = factory.step()
        servers.update(frame)
    assert frame is not None and servers.wait_written(frame.ts_ns)
    assert factory.opcua_endpoint is not None and factory.modbus_port is not None

    names = [s.name for s in factory.robot.signals]
    values = asyncio.run(read_opcua(factory.opcua_endpoint, "robot1", names))
    assert [dv.Value.Value for dv in values] == pytest.approx(frame.opcua["robot1"].tolist())
    assert {dv.SourceTimestamp.timestamp() for dv in values if dv.SourceTimestamp} == {frame.ts_ns / 1e9}
    assert all(dv.StatusCode is not None and dv.StatusCode.is_good() for dv in values)
    assert values[0].Value.VariantType == ua.VariantType.Int32  # state: an enum code

    inputs, holding, discrete = asyncio.run(read_modbus(factory.modbus_port))
    state, strokes, force, pressure, oil, pump, setpoint = frame.modbus["press1"].tolist()
    assert struct.unpack(">ff", struct.pack(">4H", *inputs[:4])) == pytest.approx((force, pressure), rel=1e-6)
    assert struct.unpack(">h", struct.pack(">H", inputs[4]))[0] == round(oil * 10)
    assert holding == [state, int(strokes) >> 16, int(strokes) & 0xFFFF, round(setpoint * 10)]
    assert discrete == [bool(pump)]


def test_modbus_answers_device_busy_until_the_first_frame() -> None:
    factory = VirtualFactory(5, START_NS, modbus_port=free_port())
    servers = FieldServers(factory)
    servers.start()
    try:
        assert factory.modbus_port is not None

        async def read_state() -> Any:
            client = AsyncModbusTcpClient("127.0.0.1", port=factory.modbus_port or 0)
            try:
                assert await client.connect()
                return await client.read_holding_registers(0, count=1, device_id=MODBUS_UNIT)
            finally:
                client.close()

        assert asyncio.run(read_state()).isError()
        frame = factory.step()
        servers.update(frame)
        assert servers.wait_written(frame.ts_ns)
        assert asyncio.run(read_state()).registers == [int(frame.modbus["press1"][0])]
    finally:
        servers.stop()
    servers.stop()  # idempotent


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)
    return result


def test_platform_ingests_opcua_and_modbus_beside_mqtt(mosquitto: Mosquitto, tmp_path: Path) -> None:
    factory = VirtualFactory(
        seed=3, step_s=0.2, opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/sim/", modbus_port=free_port()
    )
    servers = FieldServers(factory)
    platform = Platform(factory.plant_config(), data_dir=tmp_path / "data", broker_url=mosquitto.url)
    publisher = FactoryPublisher(factory, "127.0.0.1", mosquitto.port, field=servers)
    tags = [
        f"{ROBOT}/torque_j2",
        f"{ROBOT}/state",
        f"{PRESS}/oil_temperature",
        f"{PRESS}/press_force",
        f"{PRESS}/stroke_count",
        f"{PRESS}/pump_on",
        "virtual-factory/machining/line1/conveyor1/belt_speed",
    ]
    try:
        servers.start()
        with ApiServer(create_app(platform)) as server, ShopfloorClient(server.url) as client:
            factory.restart_clock()
            publisher.start()

            def fresh_and_good() -> dict[str, Any] | None:
                latest = {v["tag"]: v for v in client.latest(tags)}
                now_ms = time.time() * 1000
                ok = len(latest) == len(tags) and all(
                    v["quality"] == "good" and abs(now_ms - v["ts_ms"]) < 5000 for v in latest.values()
                )
                return latest if ok else None

            latest = wait_for(fresh_and_good)
            assert 0.0 <= latest[f"{ROBOT}/torque_j2"]["value"] <= 400.0
            assert 20.0 <= latest[f"{PRESS}/oil_temperature"]["value"] <= 60.0
            assert latest[f"{PRESS}/stroke_count"]["value"] > 100_000
            assert latest[f"{PRESS}/pump_on"]["label"] in ("on", "off")
            protocols = {c.get("protocol"): c for c in client.connectors()}
            assert protocols["opcua"]["state"] == "connected" and protocols["modbus"]["state"] == "up"
            assert client.health()["status"] == "ok"
    finally:
        publisher.stop()
        servers.stop()


def test_demo_serves_opcua_and_modbus_tags_fresh_and_good(tmp_path: Path) -> None:
    """The real ``shopfloor demo``: its banner names both servers and the API shows their tags live."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopfloor", "demo", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    tags = [f"{ROBOT}/torque_j1", f"{PRESS}/hydraulic_pressure"]
    try:
        with ShopfloorClient(f"http://127.0.0.1:{port}") as client:

            def fresh() -> bool:
                try:
                    latest = client.latest(tags)
                except Exception:  # not up yet
                    return False
                now_ms = time.time() * 1000
                return len(latest) == 2 and all(
                    v["quality"] == "good" and abs(now_ms - v["ts_ms"]) < 5000 for v in latest
                )

            wait_for(fresh, timeout=30.0)
    finally:
        code, text = interrupt(proc)
    assert code == 0, text
    assert "OPC UA      opc.tcp://127.0.0.1:" in text and "Modbus TCP  127.0.0.1:" in text
    assert "Traceback" not in text
