"""Modbus register codec: 16-bit words <-> engineering values.

Pure functions, no I/O. Decoding is compiled once per poll plan into a few
NumPy gathers (one per distinct type/word order/byte order), so a poll of
thousands of points costs a handful of array operations, not a Python loop per
register. Encoding (for writes) is per value and checks ranges, since a
setpoint that wraps around in a register is worse than one that is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from shopfloor.config.schema import ModbusPoint

PointType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]
Order = Literal["big", "little"]

#: Registers (or bits, for bool) that one value of each type occupies.
WORDS: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bool": 1,
}
#: Big-endian NumPy dtype of the raw value, once its bytes are in network order.
_RAW_DTYPE: dict[str, str] = {
    "int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4", "float32": ">f4", "float64": ">f8",
}
#: Raw ranges of the integer types (inclusive), for write range checks.
INT_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "bool": (0, 1),
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)

Registers = npt.NDArray[np.uint16]
Floats = npt.NDArray[np.float64]


def words_of(point: ModbusPoint) -> int:
    """Registers (or bits) the point occupies."""
    return WORDS[point.type]


@dataclass(frozen=True, slots=True)
class _Group:
    """Points sharing type and orders: decoded by one gather and one view."""

    positions: npt.NDArray[np.intp]  # where in the output their values go
    index: npt.NDArray[np.intp]  # (n, words) register indices, most significant word first
    word_dtype: str  # ">u2" or "<u2": how each register is laid out as two bytes
    raw_dtype: str


@dataclass(frozen=True, slots=True)
class RegisterDecoder:
    """Decodes many register points out of one register buffer in a few vector operations.

    Build it once with :func:`compile_decoder`; call it per poll.
    """

    groups: tuple[_Group, ...]
    scale: Floats
    offset: Floats

    def __call__(self, registers: Registers) -> Floats:
        """Engineering values (raw * scale + offset) of every point, in the order compiled."""
        raw = np.empty(len(self.scale), dtype=np.float64)
        for g in self.groups:
            words = registers[g.index].astype(g.word_dtype)  # (n, w), contiguous
            raw[g.positions] = words.view(g.raw_dtype).reshape(-1)
        return raw * self.scale + self.offset


def compile_decoder(points: Sequence[ModbusPoint], starts: Sequence[int] | npt.ArrayLike) -> RegisterDecoder:
    """A decoder for register ``points`` whose first register lies at ``starts[i]`` in the buffer."""
    start_arr = np.asarray(starts, dtype=np.intp).reshape(-1)
    if len(start_arr) != len(points):
        raise ValueError("points and starts differ in length")
    keys: dict[tuple[str, str, str], list[int]] = {}
    for i, p in enumerate(points):
        if p.type == "bool":
            raise ValueError("a bool point is a bit, not a register: decode it with decode_bits")
        keys.setdefault((p.type, p.word_order, p.byte_order), []).append(i)
    groups = []
    for (typ, word_order, byte_order), members in keys.items():
        n_words = WORDS[typ]
        perm = np.arange(n_words, dtype=np.intp)
        if word_order == "little":
            perm = perm[::-1].copy()
        pos = np.asarray(members, dtype=np.intp)
        groups.append(_Group(
            positions=pos,
            index=start_arr[pos][:, None] + perm[None, :],
            word_dtype=">u2" if byte_order == "big" else "<u2",
            raw_dtype=_RAW_DTYPE[typ],
        ))
    return RegisterDecoder(
        groups=tuple(groups),
        scale=np.array([p.scale for p in points], dtype=np.float64),
        offset=np.array([p.offset for p in points], dtype=np.float64),
    )


def decode_registers(registers: Sequence[int] | Registers, points: Sequence[ModbusPoint],
                     starts: Sequence[int]) -> Floats:
    """One-shot decode (compiles a decoder each call; the connector keeps its compiled one)."""
    return compile_decoder(points, starts)(np.asarray(registers, dtype=np.uint16))


def decode_bits(bits: npt.ArrayLike, points: Sequence[ModbusPoint], starts: Sequence[int]) -> Floats:
    """Values of bool points (0.0 / 1.0, then scale and offset) at ``starts`` in a bit buffer."""
    b = np.asarray(bits, dtype=np.bool_)
    idx = np.asarray(starts, dtype=np.intp)
    scale = np.array([p.scale for p in points], dtype=np.float64)
    offset = np.array([p.offset for p in points], dtype=np.float64)
    return b[idx].astype(np.float64) * scale + offset


def _describe_range(point: ModbusPoint) -> str:
    lo: float
    hi: float
    if point.type in INT_RANGES:
        lo, hi = INT_RANGES[point.type]
    elif point.type == "float32":
        lo, hi = -_FLOAT32_MAX, _FLOAT32_MAX
    else:
        return f"{point.type} (finite values)"
    eng = sorted((lo * point.scale + point.offset, hi * point.scale + point.offset))
    text = f"{point.type} raw [{lo:.10g}, {hi:.10g}]"
    if point.scale != 1.0 or point.offset != 0.0:
        text += f", i.e. [{eng[0]:g}, {eng[1]:g}] with scale {point.scale:g} and offset {point.offset:g}"
    return text


def encode(point: ModbusPoint, value: float) -> list[int]:
    """Registers (or ``[0]``/``[1]`` for a bool) that make the device read back ``value``.

    Inverts scale and offset, rounds to the nearest integer for integer types, and
    raises ValueError, naming the type and its range, rather than wrap or saturate.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} to a {_describe_range(point)}: not a finite number")
    if point.scale == 0.0:
        raise ValueError(f"cannot write to a point with scale 0 ({point.type})")
    raw = (value - point.offset) / point.scale
    if point.type in INT_RANGES:
        lo, hi = INT_RANGES[point.type]
        n = round(raw)
        if point.type == "bool" and abs(raw - n) > 1e-9:
            raise ValueError(f"cannot write {value} to a {_describe_range(point)}: not 0 or 1")
        if not lo <= n <= hi:
            raise ValueError(f"{value} is out of range for {_describe_range(point)}")
        if point.type == "bool":
            return [n]
        data = np.array(n, dtype=_RAW_DTYPE[point.type]).tobytes()
    elif point.type == "float32":
        if abs(raw) > _FLOAT32_MAX:
            raise ValueError(f"{value} is out of range for {_describe_range(point)}")
        data = np.array(raw, dtype=">f4").tobytes()
    else:
        if not math.isfinite(raw):
            raise ValueError(f"{value} is out of range for {_describe_range(point)}")
        data = np.array(raw, dtype=">f8").tobytes()
    words = np.frombuffer(data, dtype=">u2" if point.byte_order == "big" else "<u2")
    if point.word_order == "little":
        words = words[::-1]
    return [int(w) for w in words]
