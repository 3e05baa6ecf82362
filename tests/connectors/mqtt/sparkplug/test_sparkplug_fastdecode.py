"""The numba walker on its own: statuses, row bookkeeping across payloads, value conversion."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.connectors.mqtt.sparkplug import DataType, encode_data
from shopfloor.connectors.mqtt.sparkplug import fastdecode as fd
from shopfloor.connectors.mqtt.sparkplug import sparkplug_b_pb2 as pb

T0 = 1_700_000_000_000


def _walk(*payloads: bytes) -> tuple[int, tuple[np.ndarray, ...], np.ndarray]:
    buf = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in payloads])]).astype(np.int64)
    n, *cols, msgs = fd.decode_columns(buf, offsets)
    return n, tuple(cols), msgs


def test_statuses_and_rollback_of_failed_payloads() -> None:
    ok1 = encode_data(T0, 1, [1, 2], [DataType.Double, DataType.Int32], [1.5, -2])
    named = bytes(pb.Payload(timestamp=T0, metrics=[pb.Payload.Metric(name="x", alias=9)]).SerializeToString())
    partial = ok1 + bytes.fromhex("12 02 1003") + bytes.fromhex("12 05 10")  # two good metrics, then truncated
    ok2 = encode_data(T0 + 1, 2, [3], [DataType.Boolean], [1.0])
    n, (alias, ts, dtype, value, quality, hist), msgs = _walk(ok1, named, partial, ok2)
    assert n == 3
    np.testing.assert_array_equal(msgs[:, fd.MSG_STATUS], [fd.STATUS_OK, fd.STATUS_GENERAL, fd.STATUS_MALFORMED, 0])
    np.testing.assert_array_equal(msgs[:, fd.MSG_FIRST], [0, 2, 2, 2])
    np.testing.assert_array_equal(msgs[:, fd.MSG_COUNT], [2, 0, 0, 1])
    np.testing.assert_array_equal(msgs[[0, 3], fd.MSG_SEQ], [1, 2])
    np.testing.assert_array_equal(alias[:n], [1, 2, 3])  # the rows of the failed payloads were overwritten
    np.testing.assert_array_equal(value[:n], [1.5, -2.0, 1.0])
    np.testing.assert_array_equal(dtype[:n], [DataType.Double, DataType.Int32, DataType.Boolean])
    np.testing.assert_array_equal(ts[:n], [T0, T0, T0 + 1])
    np.testing.assert_array_equal(quality[:n], [192, 192, 192])
    assert not hist[:n].any()


def test_count_metrics_bounds_the_rows() -> None:
    data = encode_data(T0, 1, np.arange(50), np.full(50, DataType.Double), np.zeros(50))
    offsets = np.array([0, len(data)], dtype=np.int64)
    assert fd.count_metrics(np.frombuffer(data, np.uint8), offsets) == 50
    # a metric field past a truncation is not counted, and counting never reads out of bounds
    for cut in range(len(data)):
        buf = np.frombuffer(data[:cut], np.uint8)
        assert fd.count_metrics(buf, np.array([0, cut], dtype=np.int64)) <= 50


def test_too_few_rows_make_the_payload_general() -> None:
    data = encode_data(T0, 1, [1, 2, 3], [DataType.Double] * 3, [1.0, 2.0, 3.0])
    cols = [np.empty(2, dt) for dt in (np.int64, np.int64, np.uint32, np.float64, np.uint8, np.bool_)]
    msgs = np.empty((1, fd.N_MSG_COLS), dtype=np.int64)
    n = fd.walk_payloads(np.frombuffer(data, np.uint8), np.array([0, len(data)], np.int64), *cols, msgs)
    assert n == 0 and msgs[0, fd.MSG_STATUS] == fd.STATUS_GENERAL


@pytest.mark.parametrize(
    ("bits", "kind", "datatype", "expected"),
    [
        (0x4004000000000000, fd.KIND_DOUBLE, DataType.Double, 2.5),
        (0x3FC00000, fd.KIND_FLOAT, DataType.Float, 1.5),
        (0xFFFFFFFF3FC00000, fd.KIND_FLOAT, DataType.Float, 1.5),  # only the low 32 bits count
        (0xFF, fd.KIND_INT, DataType.Int8, -1.0),
        (0xFFFFFF80, fd.KIND_INT, DataType.Int8, -128.0),
        (0x7FFF, fd.KIND_INT, DataType.Int16, 32767.0),
        (0xFFFFFFFB, fd.KIND_INT, DataType.Int32, -5.0),
        (0xFFFFFFFB, fd.KIND_INT, DataType.UInt32, 4294967291.0),
        (0xFFFFFFFFFFFFFFFF, fd.KIND_LONG, DataType.Int64, -1.0),
        (0xFFFFFFFFFFFFFFFF, fd.KIND_LONG, DataType.UInt64, 2.0**64),
        (T0, fd.KIND_LONG, DataType.DateTime, float(T0)),
        (1, fd.KIND_BOOL, DataType.Boolean, 1.0),
        (0, fd.KIND_BOOL, DataType.Boolean, 0.0),
        (7, fd.KIND_INT, DataType.Unknown, 7.0),
        (7, fd.KIND_NONE, DataType.Double, float("nan")),
    ],
)
def test_value_of(bits: int, kind: int, datatype: int, expected: float) -> None:
    got = fd.value_of(np.uint64(bits), kind, int(datatype))
    assert got == expected or (np.isnan(expected) and np.isnan(got))


def test_values_from_bits_masks_nulls() -> None:
    out = fd.values_from_bits(
        np.array([0x4004000000000000, 5], dtype=np.uint64),
        np.array([fd.KIND_DOUBLE, fd.KIND_INT], dtype=np.uint8),
        np.array([DataType.Double, DataType.Int32], dtype=np.uint32),
        np.array([False, True]),
    )
    assert out[0] == 2.5 and np.isnan(out[1])
