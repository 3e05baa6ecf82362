"""What the virtual factory serves over OPC UA and Modbus TCP: node ids, the register map, the encoding.

Pure data and arithmetic, no server imports: the factory needs the same map to
write plant.yaml as the servers need to fill their address spaces, so one
definition keeps both sides from drifting apart.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

from shopfloor.sim.machines import Signal

OPCUA_NAMESPACE = "urn:shopfloor:sim"
OPCUA_NS = 2  # the first namespace a server registers gets index 2
MODBUS_UNIT = 1

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["uint16", "int16", "uint32", "float32", "bool"]


@dataclass(frozen=True, slots=True)
class FieldDevice:
    """A machine served by the factory's own field servers rather than published over MQTT."""

    name: str
    kind: str
    protocol: Literal["opcua", "modbus"]
    cell: str | None
    signals: tuple[Signal, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Register:
    """Where one signal lies in the Modbus device: raw = round(value / scale)."""

    table: Table
    address: int
    type: RegisterType
    scale: float = 1.0

    @property
    def words(self) -> int:
        return {"uint16": 1, "int16": 1, "uint32": 2, "float32": 2, "bool": 1}[self.type]


# The press's register map (unit 1; big-endian words and bytes, high word first). docs/simulator.md shows it.
PRESS_REGISTERS: dict[str, Register] = {
    "state": Register("holding", 0, "uint16"),
    "stroke_count": Register("holding", 1, "uint32"),
    "press_force": Register("input", 0, "float32"),
    "hydraulic_pressure": Register("input", 2, "float32"),
    "oil_temperature": Register("input", 4, "int16", 0.1),
    "pump_on": Register("discrete", 0, "bool"),
    "pressure_setpoint": Register("holding", 3, "uint16", 0.1),  # the one writable register
}


def opcua_node_id(device: str, signal: str) -> str:
    """The string node id of one variable, e.g. ns=2;s=robot1.torque_j1."""
    return f"ns={OPCUA_NS};s={device}.{signal}"


def encode(register: Register, value: float) -> list[int]:
    """The raw words (or the one bit) of a value; NaN is not encodable and gives []."""
    if math.isnan(value):
        return []
    t = register.type
    if t == "bool":
        return [1 if value else 0]
    if t == "float32":
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        return [hi, lo]
    raw = round(value / register.scale)
    if t == "int16":
        return [max(-32768, min(32767, raw)) & 0xFFFF]
    if t == "uint16":
        return [max(0, min(0xFFFF, raw))]
    raw = max(0, min(0xFFFFFFFF, raw))
    return [raw >> 16, raw & 0xFFFF]


__all__ = [
    "MODBUS_UNIT",
    "OPCUA_NAMESPACE",
    "OPCUA_NS",
    "PRESS_REGISTERS",
    "FieldDevice",
    "Register",
    "encode",
    "opcua_node_id",
]
