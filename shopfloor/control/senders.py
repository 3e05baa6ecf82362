"""How a command reaches a device, one class per protocol, all run on the command service's loop.

* Sparkplug B: an NCMD/DCMD with one metric, published by the service's own paho client (the
  host application's role in Sparkplug). The device's answer is not in the protocol: the service
  waits for the device to report the new value (see service.py).
* OPC UA: an asyncua client per server (the equipment's source: endpoint, security, login) that
  writes a node's value or calls a method; the answer is the status code.
* Modbus TCP: a pymodbus client per device (host, port, unit of the source) that writes the tag's
  point, with its type, word/byte order, scale and offset (the connector's codec); the answer is
  the response or the exception code. Requests on one link are serialised by a lock.

Clients connect on first use and stay open; a link error closes the client so the next command
connects again, and is reported as the command's answer (never raised into the API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaStatusCodeError
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shopfloor.config.schema import ModbusPoint, ModbusSource, OpcUaSource, SparkplugSource
from shopfloor.connectors.modbus.codec import encode as encode_registers
from shopfloor.connectors.mqtt.sparkplug import DataType, SparkplugTopic
from shopfloor.connectors.mqtt.sparkplug import sparkplug_b_pb2 as pb
from shopfloor.connectors.mqtt.sparkplug.datatypes import INT_VALUE_TYPES, LONG_VALUE_TYPES
from shopfloor.connectors.opcua._client import close_client, make_client, parse_node_id, status_name
from shopfloor.core.errors import NotReady

log = logging.getLogger(__name__)

MODBUS_EXCEPTIONS = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
    5: "acknowledge", 6: "device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    """What the device said: ``ok`` when it accepted (and, for Sparkplug, reported) the value."""

    ok: bool
    answer: str
    round_trip_ms: float
    timeout: bool = False


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


# ------------------------------------------------------------------------------------------------ Sparkplug B


def encode_command(timestamp_ms: int, metric: str, datatype: DataType, value: float) -> bytes:
    """An NCMD/DCMD payload carrying one metric by name (commands are sent by name, not alias)."""
    payload = pb.Payload(timestamp=timestamp_ms)
    m = payload.metrics.add(name=metric, datatype=int(datatype), timestamp=timestamp_ms)
    if datatype == DataType.Boolean:
        m.boolean_value = bool(value)
    elif datatype == DataType.Double:
        m.double_value = float(value)
    elif datatype == DataType.Float:
        m.float_value = float(value)
    elif datatype in INT_VALUE_TYPES:
        m.int_value = round(value) & 0xFFFFFFFF
    elif datatype in LONG_VALUE_TYPES:
        m.long_value = round(value) & 0xFFFFFFFFFFFFFFFF
    else:
        raise ValueError(f"commands carry numeric and Boolean metrics, not {datatype.name}")
    data: bytes = payload.SerializeToString()
    return data


def command_topic(source: SparkplugSource) -> str:
    """DCMD to the source's device, NCMD to its node when it names none."""
    if source.device is None:
        return SparkplugTopic(source.group, "NCMD", source.node).text
    return SparkplugTopic(source.group, "DCMD", source.node, source.device).text


class SparkplugSender:
    """The service's MQTT client: publishes commands (QoS 1) as the Sparkplug host application."""

    def __init__(self, client: mqtt.Client, host: str, port: int) -> None:
        """``client``: not yet connected, login and TLS set (``shopfloor.services.service_client``)."""
        self._host, self._port = host, port
        self._client = client
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self.published = 0

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float) -> None:
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self.stop()
            raise NotReady(f"control: MQTT broker {self._host}:{self._port} did not accept the connection")

    def publish(self, topic: str, payload: bytes) -> None:
        """Hand the command to paho (QoS 1); NotReady while the broker is unreachable."""
        if not self._connected.is_set():
            raise NotReady(f"not connected to the MQTT broker {self._host}:{self._port}")
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise NotReady(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        self.published += 1

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# ------------------------------------------------------------------------------------------------ OPC UA


class OpcUaSender:
    """One OPC UA server: writes and method calls over one session, opened on first use."""

    def __init__(self, source: OpcUaSource, timeout_s: float) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> Client:
        if self._client is None:
            client = await make_client(self.source, timeout=self.timeout_s, watchdog_interval=30.0)
            await asyncio.wait_for(client.connect(), self.timeout_s)
            self._client = client
        return self._client

    async def write(self, node_id: str, value: float, variant: ua.VariantType) -> DeviceAnswer:
        return await self._run(node_id, lambda c: c.get_node(parse_node_id(node_id)).write_value(
            ua.DataValue(ua.Variant(_ua_value(value, variant), variant))))

    async def call(self, object_id: str, method_id: str, value: float, variant: ua.VariantType) -> DeviceAnswer:
        return await self._run(method_id, lambda c: c.get_node(parse_node_id(object_id)).call_method(
            parse_node_id(method_id), ua.Variant(_ua_value(value, variant), variant)))

    async def _run(self, what: str, op: Any) -> DeviceAnswer:
        t0 = time.perf_counter()
        async with self._lock:
            try:
                client = await self._connected()
                result = await asyncio.wait_for(op(client), self.timeout_s)
            except UaStatusCodeError as exc:
                code = int(exc.code)
                return DeviceAnswer(False, f"{status_name(code)} (0x{code:08X})", _ms_since(t0))
            except (TimeoutError, OSError, ConnectionError, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await self.close()
                timeout = isinstance(exc, TimeoutError)
                text = f"no answer within {self.timeout_s:g} s" if timeout else f"link error: {exc!r}"
                return DeviceAnswer(False, f"{self.source.endpoint}: {text}", _ms_since(t0), timeout=timeout)
        out = "Good" if result is None else f"Good, returned {result!r}"
        return DeviceAnswer(True, out, _ms_since(t0))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await close_client(client, 2.0)


_UA_INT = {
    ua.VariantType.SByte, ua.VariantType.Int16, ua.VariantType.Int32, ua.VariantType.Int64,
    ua.VariantType.Byte, ua.VariantType.UInt16, ua.VariantType.UInt32,
}


def _ua_value(value: float, variant: ua.VariantType) -> bool | int | float:
    if variant == ua.VariantType.Boolean:
        return bool(value)
    if variant in _UA_INT:
        return round(value)
    return float(value)


# ------------------------------------------------------------------------------------------------ Modbus TCP


class ModbusSender:
    """One Modbus TCP device: coil and register writes over one connection, one request at a time."""

    def __init__(self, source: ModbusSource) -> None:
        self.source = source
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()

    async def write(self, point: ModbusPoint, value: float) -> DeviceAnswer:
        """Write the point so that the device reads back ``value`` (scale, offset, type, orders applied)."""
        words = encode_registers(point, value)  # ValueError if the value does not fit the point: checked before
        unit, s = self.source.unit, self.source
        t0 = time.perf_counter()
        async with self._lock:
            try:
                client = await self._connected()
                async with asyncio.timeout(s.timeout_s * (s.retries + 1) + 1.0):
                    if point.table == "coil":
                        resp = await client.write_coil(point.address, bool(words[0]), device_id=unit)
                        what = "write coil (5)"
                    elif len(words) == 1:
                        resp = await client.write_register(point.address, words[0], device_id=unit)
                        what = "write register (6)"
                    else:
                        resp = await client.write_registers(point.address, words, device_id=unit)
                        what = "write registers (16)"
            except (TimeoutError, OSError, ConnectionError, ModbusException) as exc:
                await self.close()
                timeout = isinstance(exc, TimeoutError)
                text = "no answer" if timeout else f"link error: {exc}"
                return DeviceAnswer(False, f"modbus {s.host}:{s.port}/{unit}: {text}", _ms_since(t0), timeout=timeout)
        ms = _ms_since(t0)
        if resp.isError():
            code = int(getattr(resp, "exception_code", 0))
            return DeviceAnswer(False, f"exception code {code} ({MODBUS_EXCEPTIONS.get(code, 'unknown')})", ms)
        where = f"{point.table} {point.address}" + (f"+{len(words)}" if len(words) > 1 else "")
        return DeviceAnswer(True, f"{what} {where} acknowledged: {words}", ms)

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            if self._client is not None:
                self._client.close()
            client = AsyncModbusTcpClient(
                self.source.host, port=self.source.port, timeout=self.source.timeout_s, retries=self.source.retries
            )
            if not await client.connect():
                client.close()
                raise ConnectionError("connection refused or timed out")
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


__all__ = [
    "DeviceAnswer",
    "ModbusSender",
    "OpcUaSender",
    "SparkplugSender",
    "command_topic",
    "encode_command",
]
