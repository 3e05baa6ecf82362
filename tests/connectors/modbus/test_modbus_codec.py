"""Golden tests of the register codec: known words <-> values, every type and order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopfloor.config.schema import ModbusPoint
from shopfloor.connectors.modbus.codec import decode_bits, decode_registers, encode


def pt(type_: str, word: str = "big", byte: str = "big", scale: float = 1.0, offset: float = 0.0,
       table: str = "holding") -> ModbusPoint:
    return ModbusPoint(table=table, address=0, type=type_, word_order=word, byte_order=byte,  # type: ignore[arg-type]
                       scale=scale, offset=offset)


# (type, word order, byte order, registers, value)
GOLDEN = [
    ("float32", "big", "big", [0x42F6, 0xE979], 123.456),
    ("float32", "little", "big", [0xE979, 0x42F6], 123.456),
    ("float32", "big", "little", [0xF642, 0x79E9], 123.456),
    ("float32", "little", "little", [0x79E9, 0xF642], 123.456),
    ("float32", "big", "big", [0xC2F6, 0xE979], -123.456),
    ("float64", "big", "big", [0x405E, 0xDD2F, 0x1A9F, 0xBE77], 123.456),
    ("float64", "little", "big", [0xBE77, 0x1A9F, 0xDD2F, 0x405E], 123.456),
    ("float64", "big", "little", [0x5E40, 0x2FDD, 0x9F1A, 0x77BE], 123.456),
    ("float64", "little", "little", [0x77BE, 0x9F1A, 0x2FDD, 0x5E40], 123.456),
    ("int16", "big", "big", [0xFFFF], -1),
    ("int16", "big", "big", [0x8000], -32768),
    ("int16", "big", "little", [0x3412], 0x1234),
    ("int16", "big", "little", [0x00FF], -256),  # bytes FF 00 -> 0xFF00
    ("uint16", "big", "big", [0xFFFF], 65535),
    ("uint16", "big", "little", [0x3412], 0x1234),
    ("int32", "big", "big", [0xFFFE, 0x1DC0], -123456),
    ("int32", "little", "big", [0x1DC0, 0xFFFE], -123456),
    ("int32", "big", "little", [0xFEFF, 0xC01D], -123456),
    ("int32", "little", "little", [0xC01D, 0xFEFF], -123456),
    ("int32", "big", "big", [0x8000, 0x0000], -(2**31)),
    ("uint32", "big", "big", [0x0001, 0xE240], 123456),
    ("uint32", "little", "big", [0xE240, 0x0001], 123456),
    ("uint32", "big", "big", [0xFFFF, 0xFFFF], 2**32 - 1),
    ("uint32", "little", "little", [0x40E2, 0x0100], 123456),
]


@pytest.mark.parametrize(("type_", "word", "byte", "regs", "value"), GOLDEN)
def test_decode_golden(type_: str, word: str, byte: str, regs: list[int], value: float) -> None:
    got = decode_registers(regs, [pt(type_, word, byte)], [0])
    assert got[0] == pytest.approx(value, rel=1e-7 if type_ == "float32" else 1e-15)


@pytest.mark.parametrize(("type_", "word", "byte", "regs", "value"), GOLDEN)
def test_encode_golden(type_: str, word: str, byte: str, regs: list[int], value: float) -> None:
    assert encode(pt(type_, word, byte), value) == regs


def test_decode_many_points_in_one_buffer() -> None:
    """Mixed types at arbitrary offsets come back in the order given."""
    buf = [0, 0x42F6, 0xE979, 0xFFFF, 0x0001, 0xE240, 0xE979, 0x42F6, 7]
    points = [pt("float32"), pt("int16"), pt("uint32"), pt("float32", word="little"), pt("uint16"), pt("int16")]
    got = decode_registers(buf, points, [1, 3, 4, 6, 8, 3])
    np.testing.assert_allclose(got, [123.456, -1, 123456, 123.456, 7, -1], rtol=1e-7)


def test_scale_and_offset() -> None:
    p = pt("int16", scale=0.1, offset=-40.0)
    assert decode_registers([0xFF9C], [p], [0])[0] == pytest.approx(-100 * 0.1 - 40.0)  # raw -100
    assert encode(p, -50.0) == [0xFF9C]
    assert encode(p, 25.56) == [656]  # (25.56 + 40) / 0.1 = 655.6: rounds to the nearest raw value
    q = pt("uint32", word="little", scale=0.001)
    assert decode_registers(encode(q, 4000.5), [q], [0])[0] == pytest.approx(4000.5)


def test_bits() -> None:
    points = [pt("bool", table="coil"), pt("bool", table="coil", scale=-1, offset=1), pt("bool", table="discrete")]
    np.testing.assert_array_equal(decode_bits([True, False, True], points, [0, 0, 1]), [1.0, 0.0, 0.0])
    assert encode(points[0], 1.0) == [1]
    assert encode(points[0], 0.0) == [0]
    assert encode(points[1], 0.0) == [1]


@pytest.mark.parametrize(("point", "value", "match"), [
    (pt("int16"), 32768, r"int16 raw \[-32768, 32767\]"),
    (pt("int16"), -32769, r"out of range for int16"),
    (pt("uint16"), -1, r"uint16 raw \[0, 65535\]"),
    (pt("int32"), 2.0**31, r"int32"),
    (pt("uint32"), 2.0**32, r"uint32 raw \[0, 4294967295\]"),
    (pt("uint16", scale=0.1), 6553.6, r"\[0, 6553.5\] with scale 0.1"),
    (pt("float32"), 1e39, r"float32"),
    (pt("float32"), math.nan, r"not a finite number"),
    (pt("float64"), math.inf, r"not a finite number"),
    (pt("bool", table="coil"), 2.0, r"bool"),
    (pt("bool", table="coil"), 0.5, r"not 0 or 1"),
])
def test_encode_refuses(point: ModbusPoint, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode(point, value)


def test_encode_edges_fit() -> None:
    assert encode(pt("int16"), 32767) == [0x7FFF]
    assert encode(pt("int16"), -32768) == [0x8000]
    assert encode(pt("uint32"), 2**32 - 1) == [0xFFFF, 0xFFFF]


def test_bool_point_is_not_a_register() -> None:
    with pytest.raises(ValueError, match="decode_bits"):
        decode_registers([1], [pt("bool", table="coil")], [0])
