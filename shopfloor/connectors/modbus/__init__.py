"""Modbus TCP field connector: read planning, register codec, polling with link supervision."""

from shopfloor.connectors.modbus.codec import compile_decoder, decode_bits, decode_registers, encode
from shopfloor.connectors.modbus.connector import ModbusConnector
from shopfloor.connectors.modbus.errors import (
    DeviceUnavailable,
    ModbusError,
    ModbusExceptionResponse,
    ReadOnlyPoint,
    SetpointOutOfRange,
)
from shopfloor.connectors.modbus.plan import PollPlan, ReadRequest, compile_plan, plan_reads

__all__ = [
    "DeviceUnavailable",
    "ModbusConnector",
    "ModbusError",
    "ModbusExceptionResponse",
    "PollPlan",
    "ReadOnlyPoint",
    "ReadRequest",
    "SetpointOutOfRange",
    "compile_decoder",
    "compile_plan",
    "decode_bits",
    "decode_registers",
    "encode",
    "plan_reads",
]
