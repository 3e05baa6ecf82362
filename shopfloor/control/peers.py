"""Loopback devices that obey commands, one per protocol, for the tests and benchmarks/control.py.

Real protocol stacks, no mocks: a Sparkplug B edge node (shopfloor's EdgeNode, paho) whose device
applies DCMDs and reports the new values in its next DDATA; an asyncua server whose robot has a
writable ``Mode`` variable, a read-only ``Speed`` and a ``SetSpeed`` method; a pymodbus server whose
press has a pressure setpoint (holding register 0, 0.1 bar per count) that it refuses above
250 bar with exception 3 (illegal data value), as a PLC with its own limit would, and a pump coil.
``plant_yaml`` describes the three as a plant with a ``control:`` section exercising every rule.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as MbType
from pymodbus.simulator import SimData, SimDevice

from shopfloor.connectors.mqtt.sparkplug import DataType, DecodedPayload, EdgeNode, MetricSpec
from shopfloor.core.net import free_port

GROUP, NODE, DEVICE = "test", "edge1", "cnc"
CNC_METRICS = (
    MetricSpec("state", DataType.Int32, 1),
    MetricSpec("guard_closed", DataType.Boolean, 2),
    MetricSpec("feed_override", DataType.Double, 3),
    MetricSpec("maintenance", DataType.Boolean, 4),
)
SETPOINT_LIMIT_RAW = 2500  # the press's own limit: 250.0 bar


class SparkplugCnc:
    """A CNC behind a Sparkplug edge node: ``run`` (bool) starts/stops it, ``feed_override`` sets the override."""

    def __init__(self, host: str, port: int) -> None:
        self.values = {"state": 1.0, "guard_closed": 1.0, "feed_override": 100.0, "maintenance": 0.0}
        self.commands = 0
        self.node = EdgeNode(host, port, GROUP, NODE, client_id=f"peer-{NODE}-{free_port()}",
                             on_command=self._on_command)
        self.node.add_device(DEVICE, CNC_METRICS)
        self._lock = threading.Lock()
        self.publish()  # the births carry these

    def publish(self) -> None:
        with self._lock:
            vals = [self.values[m.name] for m in CNC_METRICS]
            self.node.publish_device_data(DEVICE, time.time_ns() // 1_000_000, vals)

    def set(self, **values: float) -> None:
        """Change values as the machine would (e.g. open the guard) and report them."""
        self.values.update(values)
        self.publish()

    def _on_command(self, device: str | None, decoded: DecodedPayload) -> None:
        if device != DEVICE or decoded.names is None:
            return
        for i, name in enumerate(decoded.names):
            v = float(decoded.value[i])
            if name == "run":
                self.values["state"] = 0.0 if v else 1.0
            elif name == "feed_override":
                self.values["feed_override"] = v
        self.commands += 1
        self.publish()

    def start(self) -> None:
        self.node.start()

    def stop(self) -> None:
        self.node.stop()


class FieldPeers:
    """An asyncua server and a pymodbus server on one background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="control-peers", daemon=True)
        self.thread.start()
        self.modbus_port = free_port()
        self.opcua_endpoint = f"opc.tcp://127.0.0.1:{free_port()}/control/"
        self.modbus: ModbusTcpServer | None = None
        self.opcua: Server | None = None
        self.mode: Any = None
        self.speed: Any = None
        self.writes: list[tuple[int, int, list[int] | list[bool]]] = []  # (function, address, values)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        self.run(self._start_modbus())
        self.run(self._start_opcua())

    def stop(self) -> None:
        if self.modbus is not None:
            mb: Any = self.modbus
            self.run(mb.shutdown())
        if self.opcua is not None:
            self.run(self.opcua.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _action(
        self, function_code: int, start_address: int, address: int, count: int, registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is None:
            return None
        if function_code in (6, 16) and address == 0 and int(set_values[0]) > SETPOINT_LIMIT_RAW:
            return ExcCodes.ILLEGAL_VALUE
        self.writes.append((function_code, address, set_values))
        return None

    async def _start_modbus(self) -> None:
        device = SimDevice(id=1, action=self._action, simdata=(
            [SimData(0, values=[False] * 16, datatype=MbType.BITS)],
            [SimData(0, values=[False] * 16, datatype=MbType.BITS)],
            [SimData(0, values=[1500] + [0] * 15, datatype=MbType.REGISTERS)],
            [SimData(0, values=[0] * 16, datatype=MbType.REGISTERS)],
        ))
        self.modbus = ModbusTcpServer(device, address=("127.0.0.1", self.modbus_port))
        await self.modbus.serve_forever(background=True)

    async def _start_opcua(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.opcua_endpoint)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:shopfloor:control-test")
        robot = await server.nodes.objects.add_object(ua.NodeId.from_string(f"ns={idx};s=Robot"), "Robot")
        self.mode = await robot.add_variable(
            ua.NodeId.from_string(f"ns={idx};s=Robot.Mode"), "Mode", ua.Variant(0, ua.VariantType.Int32)
        )
        await self.mode.set_writable()
        self.speed = await robot.add_variable(
            ua.NodeId.from_string(f"ns={idx};s=Robot.Speed"), "Speed", ua.Variant(50.0, ua.VariantType.Double)
        )

        async def set_speed(parent: Any, value: ua.Variant) -> list[ua.Variant]:
            await self.speed.write_value(ua.Variant(float(value.Value), ua.VariantType.Double))
            return []

        await robot.add_method(
            ua.NodeId.from_string(f"ns={idx};s=Robot.SetSpeed"), "SetSpeed", set_speed, [ua.VariantType.Double], []
        )
        await server.start()
        self.opcua = server


def plant_yaml(broker_port: int, peers: FieldPeers, *, confirm_ttl_s: float = 30.0) -> str:
    """A plant of the three devices with commands over each protocol (``control:``)."""
    cnc = "plant/shop/line1/cnc"
    return f"""\
site:
  name: plant
  areas:
    - name: shop
      lines:
        - name: line1
          equipment:
            - name: cnc
              source: {{protocol: sparkplug, group: {GROUP}, node: {NODE}, device: {DEVICE}}}
              tags:
                - {{name: state, type: enum, states: {{0: running, 1: idle, 2: down}}}}
                - {{name: guard_closed, type: bool}}
                - {{name: feed_override, unit: "%"}}
                - {{name: maintenance, type: bool}}
            - name: press
              source: {{protocol: modbus, host: 127.0.0.1, port: {peers.modbus_port}, unit: 1, poll_s: 0.2,
                        timeout_s: 1.0, retries: 1}}
              tags:
                - {{name: pressure_setpoint, unit: bar, modbus: {{table: holding, address: 0, type: uint16,
                    scale: 0.1}}}}
                - {{name: pump, type: bool, modbus: {{table: coil, address: 0, type: bool}}}}
            - name: robot
              source: {{protocol: opcua, endpoint: "{peers.opcua_endpoint}", publishing_interval_ms: 100}}
              tags:
                - {{name: mode, type: int32, address: "ns=2;s=Robot.Mode"}}
                - {{name: speed, unit: "%", address: "ns=2;s=Robot.Speed"}}
mqtt: {{broker: "mqtt://127.0.0.1:{broker_port}"}}
control:
  confirm_ttl_s: {confirm_ttl_s}
  answer_timeout_s: 5
  commands:
    - name: cnc-run
      description: Start (true) or stop (false) the CNC
      equipment: {cnc}
      kind: start_stop
      send: {{protocol: sparkplug, metric: run}}
      value: {{type: bool}}
      answer: {{tag: state, expect: {{1: 0, 0: 1}}}}
      interlocks:
        - {{name: guard-closed, expression: "guard_closed == 1"}}
        - {{name: not-in-maintenance, expression: "maintenance == 0"}}
    - name: cnc-feed
      equipment: {cnc}
      kind: setpoint
      send: {{protocol: sparkplug, metric: feed_override}}
      value: {{type: float, min: 50, max: 120, unit: "%"}}
    - name: cnc-feed-fresh
      description: The feed override, with an interlock that wants its input at most 0.5 s old
      equipment: {cnc}
      kind: setpoint
      send: {{protocol: sparkplug, metric: feed_override}}
      value: {{type: float, min: 50, max: 120, unit: "%"}}
      interlocks:
        - {{name: guard-seen-lately, expression: "guard_closed == 1", max_age_s: 0.5}}
    - name: press-pressure
      equipment: plant/shop/line1/press
      kind: setpoint
      send: {{protocol: modbus, tag: pressure_setpoint}}
      value: {{type: float, min: 50, max: 300, unit: bar}}
      role: engineer
      confirm: true
    - name: press-pump
      equipment: plant/shop/line1/press
      kind: start_stop
      send: {{protocol: modbus, tag: pump}}
      value: {{type: bool}}
    - name: robot-mode
      equipment: plant/shop/line1/robot
      kind: mode
      send: {{protocol: opcua, tag: mode}}
      value: {{type: enum, states: {{0: auto, 1: manual, 2: maintenance}}}}
    - name: robot-speed
      equipment: plant/shop/line1/robot
      kind: setpoint
      send: {{protocol: opcua, method: "ns=2;s=Robot.SetSpeed", object: "ns=2;s=Robot"}}
      value: {{type: float, min: 0, max: 100, unit: "%"}}
    - name: robot-speed-write
      description: Speed is read-only on the robot; the server refuses a write (BadUserAccessDenied)
      equipment: plant/shop/line1/robot
      kind: setpoint
      send: {{protocol: opcua, tag: speed}}
      value: {{type: float, min: 0, max: 100, unit: "%"}}
"""


__all__ = ["CNC_METRICS", "DEVICE", "GROUP", "NODE", "FieldPeers", "SparkplugCnc", "plant_yaml"]
