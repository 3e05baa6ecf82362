"""Read planning: contiguous ranges, small gaps bridged, size limits, per-table requests."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.config.schema import ModbusPoint
from shopfloor.connectors.modbus.codec import encode
from shopfloor.connectors.modbus.plan import ReadRequest, compile_plan, plan_reads


def hr(address: int, type_: str = "uint16", **kw: object) -> ModbusPoint:
    return ModbusPoint(table="holding", address=address, type=type_, **kw)  # type: ignore[arg-type]


def bit(table: str, address: int) -> ModbusPoint:
    return ModbusPoint(table=table, address=address, type="bool")  # type: ignore[arg-type]


def test_contiguous_points_make_one_request() -> None:
    points = [hr(10, "float32"), hr(0), hr(1, "int32"), hr(3, "float64"), hr(7), hr(8), hr(9)]
    assert plan_reads(points) == (ReadRequest("holding", 0, 12, (1, 2, 3, 4, 5, 6, 0)),)


def test_small_gaps_are_bridged_large_ones_split() -> None:
    points = [hr(0), hr(5), hr(20)]
    assert plan_reads(points, max_gap=4) == (
        ReadRequest("holding", 0, 6, (0, 1)),
        ReadRequest("holding", 20, 1, (2,)),
    )
    assert plan_reads(points, max_gap=0) == tuple(
        ReadRequest("holding", a, 1, (i,)) for i, a in enumerate((0, 5, 20))
    )
    assert plan_reads(points, max_gap=14) == (ReadRequest("holding", 0, 21, (0, 1, 2)),)


def test_max_registers_splits_without_cutting_a_value() -> None:
    points = [hr(2 * i, "float32") for i in range(100)]  # 200 registers
    reqs = plan_reads(points, max_registers=125)
    assert [(r.address, r.count) for r in reqs] == [(0, 124), (124, 76)]
    assert sum(len(r.points) for r in reqs) == 100
    assert all(r.count <= 125 for r in plan_reads(points, max_registers=7))


def test_overlapping_points_share_registers() -> None:
    assert plan_reads([hr(0, "float32"), hr(0), hr(1)]) == (ReadRequest("holding", 0, 2, (0, 1, 2)),)


def test_tables_are_planned_apart_and_bits_allow_2000() -> None:
    points = [bit("coil", i) for i in range(2500)] + [bit("discrete", 0), hr(0), ModbusPoint(table="input", address=0)]
    reqs = plan_reads(points)
    assert [(r.table, r.address, r.count) for r in reqs] == [
        ("holding", 0, 1), ("input", 0, 1), ("coil", 0, 2000), ("coil", 2000, 500), ("discrete", 0, 1),
    ]


def test_points_that_cannot_be_read() -> None:
    with pytest.raises(ValueError, match="past address 65535"):
        plan_reads([hr(65535, "float32")])
    with pytest.raises(ValueError, match="more than max 2"):
        plan_reads([hr(0, "float64")], max_registers=2)


def test_compiled_plan_decodes_a_whole_poll() -> None:
    points = [hr(0, "float32"), bit("coil", 3), hr(200, "int16", scale=0.5), hr(2, "uint32", word_order="little"),
              bit("coil", 0)]
    plan = compile_plan(points, max_registers=125, max_gap=8)
    assert len(plan.requests) == 3
    registers, bits = plan.buffers()
    for r, req in enumerate(plan.requests):
        b = plan.base[r]
        if req.table == "coil":
            bits[b:b + req.count] = [True, False, False, True]
        elif req.address == 0:
            registers[b:b + req.count] = encode(points[0], 1.5) + encode(points[3], 70000)
        else:
            registers[b] = encode(points[2], -3.0)[0]
    np.testing.assert_allclose(plan.decode(registers, bits), [1.5, 1.0, -3.0, 70000, 1.0])
    assert [list(p) for p in plan.request_points] == [[0, 3], [2], [4, 1]]
