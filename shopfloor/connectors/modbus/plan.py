"""Read planning: few, large requests per poll.

A Modbus round trip costs far more than the registers in it, so a device's
points are grouped per table into ranges of contiguous (or nearly so: gaps up
to ``max_gap`` registers or bits are read and thrown away) addresses, each at
most ``max_registers`` registers (2000 bits for coils and discrete inputs,
the protocol's limit). The plan also lays every request's answer out in one
buffer per kind (registers, bits), so the whole poll decodes in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from shopfloor.config.schema import ModbusPoint
from shopfloor.connectors.modbus.codec import RegisterDecoder, compile_decoder, words_of

Table = Literal["holding", "input", "coil", "discrete"]
TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
BIT_TABLES = frozenset({"coil", "discrete"})
MAX_BITS = 2000  # coils / discrete inputs in one read (Modbus spec)
DEFAULT_MAX_GAP = 8


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read: ``count`` registers or bits of ``table`` from ``address``; ``points`` index the point list."""

    table: Table
    address: int
    count: int
    points: tuple[int, ...]

    @property
    def is_bits(self) -> bool:
        return self.table in BIT_TABLES


def plan_reads(points: Sequence[ModbusPoint], max_registers: int = 125, max_gap: int = DEFAULT_MAX_GAP,
               max_bits: int = MAX_BITS) -> tuple[ReadRequest, ...]:
    """Group ``points`` into read requests, per table, in address order.

    Raises ValueError for a point that runs past address 65535 or does not fit in one request.
    """
    if max_registers < 1 or max_bits < 1 or max_gap < 0:
        raise ValueError("max_registers and max_bits must be positive, max_gap not negative")
    requests: list[ReadRequest] = []
    for table in TABLES:
        limit = max_bits if table in BIT_TABLES else max_registers
        members = sorted((i for i, p in enumerate(points) if p.table == table), key=lambda i: points[i].address)
        start = end = -1  # current request covers [start, end)
        current: list[int] = []
        for i in members:
            p = points[i]
            p_end = p.address + words_of(p)
            if p_end > 65536:
                raise ValueError(f"point at {table} {p.address} ({p.type}) runs past address 65535")
            if p_end - p.address > limit:
                raise ValueError(f"a {p.type} point needs {p_end - p.address} registers, more than max {limit}")
            if current and p.address - end <= max_gap and max(end, p_end) - start <= limit:
                end = max(end, p_end)
                current.append(i)
                continue
            if current:
                requests.append(ReadRequest(table, start, end - start, tuple(current)))
            start, end, current = p.address, p_end, [i]
        if current:
            requests.append(ReadRequest(table, start, end - start, tuple(current)))
    return tuple(requests)


@dataclass(frozen=True, slots=True)
class PollPlan:
    """Requests of one device, and how their answers decode into the values of all its points.

    Register answers go to ``register_buffer[register_base[r]:...]``, bit answers to
    ``bit_buffer[bit_base[r]:...]`` (base -1 for a request of the other kind).
    """

    points: tuple[ModbusPoint, ...]
    requests: tuple[ReadRequest, ...]
    base: tuple[int, ...]  # per request: offset of its answer in its kind's buffer
    register_count: int
    bit_count: int
    register_positions: npt.NDArray[np.intp]  # point indices of register points
    decoder: RegisterDecoder
    bit_positions: npt.NDArray[np.intp]  # point indices of bit points
    bit_index: npt.NDArray[np.intp]  # their bits in the bit buffer
    bit_scale: npt.NDArray[np.float64]
    bit_offset: npt.NDArray[np.float64]
    request_points: tuple[npt.NDArray[np.intp], ...]

    def buffers(self) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.bool_]]:
        """Fresh, zeroed register and bit buffers for one poll."""
        return np.zeros(self.register_count, np.uint16), np.zeros(self.bit_count, np.bool_)

    def decode(self, registers: npt.NDArray[np.uint16], bits: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Values of all points, in point order, from filled buffers."""
        values = np.empty(len(self.points), dtype=np.float64)
        if len(self.register_positions):
            values[self.register_positions] = self.decoder(registers)
        if len(self.bit_positions):
            values[self.bit_positions] = bits[self.bit_index] * self.bit_scale + self.bit_offset
        return values


def compile_plan(points: Sequence[ModbusPoint], max_registers: int = 125,
                 max_gap: int = DEFAULT_MAX_GAP) -> PollPlan:
    """Plan the reads of ``points`` and precompute their decoding."""
    pts = tuple(points)
    requests = plan_reads(pts, max_registers, max_gap)
    base: list[int] = []
    reg_total = bit_total = 0
    first = np.zeros(len(pts), dtype=np.intp)  # each point's position in its kind's buffer
    for req in requests:
        b = bit_total if req.is_bits else reg_total
        base.append(b)
        for i in req.points:
            first[i] = b + pts[i].address - req.address
        if req.is_bits:
            bit_total += req.count
        else:
            reg_total += req.count
    reg_pos = np.array([i for i, p in enumerate(pts) if p.table not in BIT_TABLES], dtype=np.intp)
    bit_pos = np.array([i for i, p in enumerate(pts) if p.table in BIT_TABLES], dtype=np.intp)
    return PollPlan(
        points=pts,
        requests=requests,
        base=tuple(base),
        register_count=reg_total,
        bit_count=bit_total,
        register_positions=reg_pos,
        decoder=compile_decoder([pts[i] for i in reg_pos], first[reg_pos]),
        bit_positions=bit_pos,
        bit_index=first[bit_pos],
        bit_scale=np.array([pts[i].scale for i in bit_pos], dtype=np.float64),
        bit_offset=np.array([pts[i].offset for i in bit_pos], dtype=np.float64),
        request_points=tuple(np.array(r.points, dtype=np.intp) for r in requests),
    )
