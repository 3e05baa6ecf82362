"""The virtual factory's own OPC UA and Modbus TCP servers, so the platform reads it as it would a real plant.

``FieldServers`` runs an asyncua ``Server`` (the OPC UA devices of the factory:
one object per machine, one variable per signal, node ids from fieldmap) and a
pymodbus ``ModbusTcpServer`` (the Modbus devices: the press's register map) on one
asyncio loop in a background thread. ``update(frame)`` hands each step's values
over from any thread; a writer task on the loop writes the newest frame, skipping
older ones it never got to, so a fast publisher never builds a backlog.

OPC UA values carry the step's sim time as source timestamp; a null value (NaN)
becomes a BadNoCommunication status. Modbus registers hold the last good value; until the first frame, reads are
answered with the exception 'device busy', as a PLC still booting would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from datetime import UTC
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from shopfloor.core.errors import NotReady
from shopfloor.sim.factory import Frame, VirtualFactory
from shopfloor.sim.fieldmap import (
    MODBUS_UNIT,
    OPCUA_NAMESPACE,
    OPCUA_NS,
    PRESS_REGISTERS,
    FieldDevice,
    Register,
    encode,
    opcua_node_id,
)
from shopfloor.sim.machines import ROBOT_MODES

UA_TYPES = {"float64": ua.VariantType.Double, "int64": ua.VariantType.Int64, "enum": ua.VariantType.Int32}
_FUNCTION = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}  # the function code that reaches each table
_TABLE_SIZE = 16  # registers (or 16-bit words of bits) per table; the press uses the first few


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def _ua_value(value: float, vtype: ua.VariantType) -> int | float:
    return float(value) if vtype == ua.VariantType.Double else int(value)


class FieldServers:
    """OPC UA and Modbus TCP servers of a VirtualFactory's field devices (see the module docstring)."""

    def __init__(self, factory: VirtualFactory) -> None:
        self.factory = factory
        self.opcua_devices = [d for d in factory.field_devices if d.protocol == "opcua"]
        self.modbus_devices = [d for d in factory.field_devices if d.protocol == "modbus"]
        if self.opcua_devices and factory.opcua_endpoint is None:  # pragma: no cover - the factory ensures it
            raise ValueError("the factory has OPC UA devices but no endpoint")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ua: Server | None = None
        self._mb: ModbusTcpServer | None = None
        self._nodes: dict[str, list[tuple[ua.NodeId, ua.VariantType]]] = {}
        self._registers: dict[str, list[Register]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._pending: Frame | None = None
        self.written_ns = 0  # sim time of the last frame written to both servers
        self.frames_written = 0

    # ------------------------------------------------------------------ public

    def start(self, timeout: float = 30.0) -> None:
        """Start both servers on a background loop; returns once they accept connections. NotReady if they cannot."""
        if self._thread is not None:
            raise RuntimeError("FieldServers already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="shopfloor-sim-field-servers", daemon=True)
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), loop)
        try:
            fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            self.stop()
            raise NotReady(f"the simulator's field servers did not start within {timeout} s") from None
        except Exception as exc:  # e.g. a port in use (pymodbus says so with a RuntimeError)
            self.stop()
            raise NotReady(f"the simulator's field servers could not start: {exc}") from exc
        except BaseException:
            fut.cancel()
            self.stop()
            raise

    def update(self, frame: Frame) -> None:
        """Hand over one step's values (thread-safe, does not wait); the servers show the newest frame."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with self._lock:
            self._pending = frame
        with contextlib.suppress(RuntimeError):  # loop closed by a concurrent stop()
            loop.call_soon_threadsafe(wake.set)

    def wait_written(self, ts_ns: int, timeout: float = 5.0) -> bool:
        """Wait until the frame of sim time ``ts_ns`` (or a later one) is in both servers."""
        with self._written:
            return self._written.wait_for(lambda: self.written_ns >= ts_ns, timeout)

    def stop(self) -> None:
        """Stop both servers and the loop thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut: Future[None] = asyncio.run_coroutine_threadsafe(self._stop(), loop)
            with contextlib.suppress(Exception):
                fut.result(30.0)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(30.0)
        loop.close()
        self._loop = self._thread = None

    # ------------------------------------------------------------------ on the loop

    async def _start(self) -> None:
        self._wake = asyncio.Event()
        if self.opcua_devices:
            await self._start_opcua()
        if self.modbus_devices:
            await self._start_modbus()
        self._writer = asyncio.create_task(self._write_loop(), name="field-servers-writer")

    async def _start_opcua(self) -> None:
        server = Server()
        await server.init()
        assert self.factory.opcua_endpoint is not None
        server.set_endpoint(self.factory.opcua_endpoint)
        server.set_server_name("shopfloor virtual factory")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(OPCUA_NAMESPACE)
        assert idx == OPCUA_NS
        bad = ua.DataValue(StatusCode=_status(StatusCodes.BadWaitingForInitialData))
        for d in self.opcua_devices:
            obj = await server.nodes.objects.add_object(
                ua.NodeId.from_string(f"ns={idx};s={d.name}"), ua.QualifiedName(d.name, idx)
            )
            nodes: list[tuple[ua.NodeId, ua.VariantType]] = []
            for s in d.signals:
                vtype = UA_TYPES[s.type]
                node_id = ua.NodeId.from_string(opcua_node_id(d.name, s.name))
                var = await obj.add_variable(node_id, ua.QualifiedName(s.name, idx), ua.Variant(0, vtype))
                await server.write_attribute_value(var.nodeid, bad)
                nodes.append((var.nodeid, vtype))
            self._nodes[d.name] = nodes
            if d.kind == "robot":  # remote control sets the mode by a method call (shopfloor.sim.commands)
                await obj.add_method(ua.NodeId.from_string(f"ns={idx};s={d.name}.SetMode"),
                                     ua.QualifiedName("SetMode", idx), self._set_mode, [ua.VariantType.Int32], [])
        self._ua = server  # before start(): _stop() stops a half-started server too
        await server.start()

    async def _start_modbus(self) -> None:
        if len(self.modbus_devices) != 1:  # pragma: no cover - one press today
            raise ValueError("one Modbus device per factory")
        d = self.modbus_devices[0]
        self._registers[d.name] = [PRESS_REGISTERS[s.name] for s in d.signals]
        zeros = [0] * _TABLE_SIZE
        device = SimDevice(
            id=MODBUS_UNIT,
            action=self._modbus_action,
            simdata=(
                [SimData(0, values=[False] * 16 * _TABLE_SIZE, datatype=DataType.BITS)],
                [SimData(0, values=[False] * 16 * _TABLE_SIZE, datatype=DataType.BITS)],
                [SimData(0, values=list(zeros), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(zeros), datatype=DataType.REGISTERS)],
            ),
        )
        assert self.factory.modbus_port is not None
        self._mb = ModbusTcpServer(device, address=(self.factory.modbus_host, self.factory.modbus_port))
        await self._mb.serve_forever(background=True)

    async def _modbus_action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Reads before the first frame get 'device busy' rather than zeros that would pass for values.

        Writes reach the press only through its writable register (the pressure setpoint, in 0.1 bar);
        any other address is 'illegal data address', as a PLC's read-only map would answer."""
        if set_values is None:
            return ExcCodes.DEVICE_BUSY if self.frames_written == 0 else None
        if function_code in _FUNCTION.values():  # the frame writer's own updates (read codes with values)
            return None
        reg = PRESS_REGISTERS["pressure_setpoint"]
        press = self.factory.press
        if press is None or function_code not in (6, 16) or address != reg.address or len(set_values) != 1:
            return ExcCodes.ILLEGAL_ADDRESS
        press.pressure_setpoint = int(set_values[0]) * reg.scale  # the press reads it at its next step
        return None

    async def _set_mode(self, parent: ua.NodeId, mode: ua.Variant) -> list[ua.Variant]:
        """SetMode(Int32) of the robot: 0 auto, 1 manual, 2 maintenance; anything else is BadOutOfRange."""
        if mode.Value not in ROBOT_MODES:
            raise UaStatusCodeError(StatusCodes.BadOutOfRange)  # type: ignore[no-untyped-call]
        self.factory.robot.mode = int(mode.Value)  # the robot reads it at its next step
        return []

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._lock:
                frame, self._pending = self._pending, None
            if frame is None:
                continue
            await self._write(frame)
            with self._written:
                self.written_ns = max(self.written_ns, frame.ts_ns)
                self.frames_written += 1
                self._written.notify_all()

    async def _write(self, frame: Frame) -> None:
        if self._ua is not None:
            stamp = ua.DateTime.fromtimestamp(frame.ts_ns / 1e9, UTC)
            now = ua.DateTime.now(UTC)
            for name, values in frame.opcua.items():
                for (nodeid, vtype), v in zip(self._nodes[name], values.tolist(), strict=True):
                    dv = self._datavalue(v, vtype, stamp, now)
                    await self._ua.write_attribute_value(nodeid, dv)
        if self._mb is not None:
            for name, values in frame.modbus.items():
                for reg, v in zip(self._registers[name], values.tolist(), strict=True):
                    words = encode(reg, v)
                    if words:
                        data: list[int] | list[bool] = [bool(w) for w in words] if reg.type == "bool" else words
                        await self._mb.context.async_setValues(MODBUS_UNIT, _FUNCTION[reg.table], reg.address, data)

    @staticmethod
    def _datavalue(v: float, vtype: ua.VariantType, stamp: ua.DateTime, now: ua.DateTime) -> ua.DataValue:
        if v != v:  # NaN: a null reading
            status = _status(StatusCodes.BadNoCommunication)
            return ua.DataValue(StatusCode=status, SourceTimestamp=stamp, ServerTimestamp=now)
        return ua.DataValue(ua.Variant(_ua_value(v, vtype), vtype), SourceTimestamp=stamp, ServerTimestamp=now)

    async def _stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._mb is not None:
            mb: Any = self._mb
            self._mb = None
            await mb.shutdown()
        if self._ua is not None:
            ua_server, self._ua = self._ua, None
            await ua_server.stop()


__all__ = ["FieldDevice", "FieldServers"]
