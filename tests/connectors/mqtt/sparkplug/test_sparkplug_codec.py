from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt
import pytest

from shopfloor.connectors.mqtt.sparkplug import (
    BDSEQ,
    REBIRTH,
    DataType,
    DecodedPayload,
    MetricSpec,
    decode_payload,
    decode_payloads,
    encode_birth,
    encode_data,
    encode_death,
    encode_rebirth_request,
    is_rebirth_request,
    quality_from_code,
)
from shopfloor.connectors.mqtt.sparkplug import sparkplug_b_pb2 as pb
from shopfloor.connectors.mqtt.sparkplug.codec import _decode_general
from shopfloor.core.errors import DecodeError
from shopfloor.core.samples import Quality

GOOD, BAD, UNCERTAIN = int(Quality.GOOD), int(Quality.BAD), int(Quality.UNCERTAIN)
T0 = 1_700_000_000_000

# DDATA, timestamp 1700000000000 (varint 80 d0 95 ff bc 31), seq 7, metrics by alias:
GOLDEN_DDATA = bytes.fromhex(
    "08 80d095ffbc31"  # timestamp
    "12 0d  10 01  20 0a  69 0000000000000440"  # alias 1, Double, double_value 2.5 (0x4004000000000000 LE)
    "12 0a  10 02  20 03  50 fbffffff0f"  # alias 2, Int32, int_value 0xFFFFFFFB = -5
    "12 06  10 03  20 0b  70 01"  # alias 3, Boolean, true
    "12 09  10 04  20 09  65 0000c03f"  # alias 4, Float, float_value 1.5 (0x3FC00000 LE)
    "12 06  10 05  20 04  38 01"  # alias 5, Int64, is_null
    "12 0f  10 06  18 fbd095ffbc31  20 06  50 ffff03"  # alias 6, own timestamp T0+123, UInt16 65535
    "18 07"  # seq 7
)

# DDATA, same timestamp, seq 255; integer conventions and long values:
GOLDEN_INTS = bytes.fromhex(
    "08 80d095ffbc31"
    "12 08  10 ac02  20 01  50 ff01"  # alias 300, Int8, int_value 255: zero-extended -1
    "12 0b  10 ad02  20 02  50 feffffff0f"  # alias 301, Int16, int_value 0xFFFFFFFE: sign-extended -2
    "12 0b  10 ae02  20 07  50 ffffffff0f"  # alias 302, UInt32 4294967295
    "12 12  10 af02  20 04  28 01  58 ffffffffffffffffff01"  # alias 303, Int64 -1, is_historical
    "12 10  10 b002  20 08  58 80808080808080808001"  # alias 304, UInt64 2**63
    "12 0c  10 b102  20 0d  58 80d095ffbc31"  # alias 305, DateTime T0
    "18 ff01"  # seq 255
)


def assert_same(a: DecodedPayload, b: DecodedPayload) -> None:
    """Equal columns (NaN == NaN, dtypes included), regardless of which path decoded them."""
    assert (a.timestamp, a.seq, a.names, a.texts) == (b.timestamp, b.seq, b.names, b.texts)
    for name in ("alias", "timestamp_ms", "datatype", "value", "quality", "is_historical"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_golden_ddata() -> None:
    d = decode_payload(GOLDEN_DDATA)
    assert d.fast
    assert (d.timestamp, d.seq, d.names, d.texts) == (T0, 7, None, {})
    np.testing.assert_array_equal(d.alias, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(d.timestamp_ms, [T0, T0, T0, T0, T0, T0 + 123])
    np.testing.assert_array_equal(d.datatype, [10, 3, 11, 9, 4, 6])
    np.testing.assert_array_equal(d.value, [2.5, -5.0, 1.0, 1.5, np.nan, 65535.0])
    np.testing.assert_array_equal(d.quality, [GOOD, GOOD, GOOD, GOOD, BAD, GOOD])
    np.testing.assert_array_equal(d.is_historical, [False] * 6)
    assert d.alias.dtype == np.int64 and d.timestamp_ms.dtype == np.int64
    assert d.datatype.dtype == np.uint32 and d.value.dtype == np.float64 and d.quality.dtype == np.uint8
    assert_same(d, _decode_general(GOLDEN_DDATA))


def test_golden_ints() -> None:
    d = decode_payload(GOLDEN_INTS)
    assert d.fast and d.seq == 255
    np.testing.assert_array_equal(d.alias, [300, 301, 302, 303, 304, 305])
    np.testing.assert_array_equal(d.value, [-1.0, -2.0, 4294967295.0, -1.0, 2.0**63, float(T0)])
    np.testing.assert_array_equal(d.is_historical, [False, False, False, True, False, False])
    assert_same(d, _decode_general(GOLDEN_INTS))


def test_golden_frames_are_what_encode_data_writes() -> None:
    data = encode_data(
        T0,
        7,
        [1, 2, 3, 4, 5, 6],
        [DataType.Double, DataType.Int32, DataType.Boolean, DataType.Float, DataType.Int64, DataType.UInt16],
        [2.5, -5, True, 1.5, np.nan, 65535],
        [T0, T0, T0, T0, T0, T0 + 123],
    )
    # encode_data writes the metric timestamps for all metrics or none: compare metric by metric
    d = decode_payload(data)
    assert_same(d, decode_payload(GOLDEN_DDATA))
    no_ts = encode_data(T0, 7, [1, 2, 3, 4, 5], [10, 3, 11, 9, 4], [2.5, -5, 1, 1.5, np.nan])
    assert no_ts == GOLDEN_DDATA[: GOLDEN_DDATA.index(bytes.fromhex("120f"))] + bytes.fromhex("1807")


def _reference_encode(
    ts: int,
    seq: int,
    aliases: npt.NDArray[np.int64],
    types: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    mts: npt.NDArray[np.int64] | None,
) -> bytes:
    """What protobuf writes for the same metrics (integers rounded half to even, like np.rint)."""
    p = pb.Payload(timestamp=ts, seq=seq)
    for i in range(len(aliases)):
        m = p.metrics.add(alias=int(aliases[i]), datatype=int(types[i]))
        if mts is not None:
            m.timestamp = int(mts[i])
        v, t = float(values[i]), DataType(int(types[i]))
        if np.isnan(v):
            m.is_null = True
        elif t == DataType.Double:
            m.double_value = v
        elif t == DataType.Float:
            m.float_value = v
        elif t == DataType.Boolean:
            m.boolean_value = v != 0
        elif t in (DataType.Int64, DataType.UInt64, DataType.DateTime):
            m.long_value = round(v) & (2**64 - 1)
        else:
            m.int_value = round(v) & 0xFFFFFFFF
    return bytes(p.SerializeToString())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("with_ts", [False, True])
def test_encode_data_is_byte_identical_to_protobuf(seed: int, with_ts: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    aliases = rng.integers(0, 2**40, n) >> rng.integers(0, 40, n)
    types = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13], n)
    ranges = {1: 2**7, 2: 2**15, 3: 2**31, 4: 2**53, 5: 2**8, 6: 2**16, 7: 2**32, 8: 2**53, 13: 2**53}
    values = rng.normal(size=n) * 10.0 ** rng.integers(-3, 12, n)
    for code, limit in ranges.items():
        sel = types == code
        signed = code in (1, 2, 3, 4)
        low = -limit if signed else 0
        values[sel] = rng.integers(low, limit, int(sel.sum())) + (rng.random(int(sel.sum())) < 0.2) * 0.5
    values[rng.random(n) < 0.1] = np.nan
    values[(types == 11) & (rng.random(n) < 0.5)] = 0.0
    mts = T0 + rng.integers(0, 10**6, n) if with_ts else None
    ts, seq = T0 + seed, int(rng.integers(0, 256))
    data = encode_data(ts, seq, aliases, types, values, mts)
    assert data == _reference_encode(ts, seq, aliases, types, values, mts)


def test_encode_data_rejects_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="metric 1 is String"):
        encode_data(T0, 0, [1, 2], [DataType.Double, DataType.String], [1.0, np.nan])
    with pytest.raises(ValueError, match="equal length"):
        encode_data(T0, 0, [1, 2], [DataType.Double], [1.0, 2.0])
    with pytest.raises(ValueError, match="seq"):
        encode_data(T0, -1, [], [], [])
    with pytest.raises(ValueError, match="metric_timestamps_ms"):
        encode_data(T0, 0, [1], [DataType.Double], [1.0], [T0, T0])


def test_encode_data_rounds_and_saturates_integers() -> None:
    d = decode_payload(
        encode_data(
            T0,
            1,
            [1, 2, 3, 4, 5, 6],
            [DataType.Int32, DataType.Int32, DataType.Int64, DataType.UInt64, DataType.Int64, DataType.Int8],
            [2.5, -3.6, 1e30, -1.0, -np.inf, 300],
        )
    )
    # 2.5 rounds half to even; out of range saturates at the type's limits (2**63-1 reads as 2.0**63)
    np.testing.assert_array_equal(d.value, [2.0, -4.0, 2.0**63, 0.0, -(2.0**63), 127.0])
    birth = decode_payload(
        encode_birth(
            T0,
            0,
            [
                MetricSpec("a", DataType.Int32, 1),
                MetricSpec("b", DataType.UInt64, 2),
                MetricSpec("c", DataType.Int8, 3),
            ],
            [2.5, -1, float("inf")],
        )
    )
    np.testing.assert_array_equal(birth.value, [2.0, 0.0, 127.0])


def test_empty_data_payload_for_ddeath() -> None:
    d = decode_payload(encode_data(T0, 9, [], [], []))
    assert (d.timestamp, d.seq, len(d), d.fast) == (T0, 9, 0, True)


def test_birth_with_names_strings_and_node_controls() -> None:
    specs = [
        MetricSpec("Line/Speed", DataType.Double, 10),
        MetricSpec("Line/Serial", DataType.String, 11),
        MetricSpec("Line/Count", DataType.Int16, 12),
        MetricSpec("Line/Running", DataType.Boolean, 13),
        MetricSpec("Line/Note", DataType.Text, 14),
        MetricSpec("Line/Temp", DataType.Float, 15),
    ]
    data = encode_birth(T0, 0, specs, [1.25, "SN-42", -3, True, None, float("nan")], bdseq=3)
    d = decode_payload(data)
    assert not d.fast
    assert d.names == [BDSEQ, REBIRTH, *(s.name for s in specs)]
    assert d.texts == {3: "SN-42"}
    assert (d.timestamp, d.seq) == (T0, 0)
    np.testing.assert_array_equal(d.alias, [-1, -1, 10, 11, 12, 13, 14, 15])
    np.testing.assert_array_equal(d.datatype, [4, 11, 10, 12, 2, 11, 14, 9])
    np.testing.assert_array_equal(d.value, [3.0, 0.0, 1.25, np.nan, -3.0, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(d.quality, [GOOD, GOOD, GOOD, GOOD, GOOD, GOOD, BAD, BAD])
    np.testing.assert_array_equal(d.timestamp_ms, [T0] * 8)


def test_birth_without_bdseq_has_only_the_given_metrics() -> None:
    d = decode_payload(encode_birth(T0, 4, [MetricSpec("a", DataType.UUID, 1)], ["0d9f-..."]))
    assert d.names == ["a"] and d.texts == {0: "0d9f-..."} and d.seq == 4
    with pytest.raises(ValueError, match="1 metric specs but 2 values"):
        encode_birth(T0, 0, [MetricSpec("a", DataType.Double, 1)], [1.0, 2.0])
    with pytest.raises(ValueError, match="cannot encode"):
        encode_birth(T0, 0, [MetricSpec("a", DataType.DataSet, 1)], [1.0])


def test_death_and_rebirth_request() -> None:
    death = decode_payload(encode_death(7))
    assert death.names == [BDSEQ] and death.value[0] == 7.0 and death.timestamp is None and death.seq is None
    assert death.datatype[0] == DataType.Int64
    assert not is_rebirth_request(death)
    request = decode_payload(encode_rebirth_request(T0))
    assert request.names == [REBIRTH] and request.timestamp == T0 and is_rebirth_request(request)
    assert not is_rebirth_request(decode_payload(GOLDEN_DDATA))
    assert not is_rebirth_request(decode_payload(encode_birth(T0, 0, [], [], bdseq=0)))  # Rebirth = false


def _with_property(quality: int | None, *, long: bool = False, is_null: bool = False) -> bytes:
    p = pb.Payload(timestamp=T0, seq=1)
    m = p.metrics.add(alias=1, datatype=DataType.Double, is_null=is_null)
    if not is_null:
        m.double_value = 20.5
    m.properties.keys.append("engUnit")
    m.properties.values.add(type=DataType.String, string_value="degC")
    if quality is not None:
        m.properties.keys.append("Quality")
        v = m.properties.values.add(type=DataType.Int64 if long else DataType.Int32)
        if long:
            v.long_value = quality
        else:
            v.int_value = quality
    return bytes(p.SerializeToString())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (None, Quality.GOOD),
        (192, Quality.GOOD),
        (0, Quality.BAD),
        (64, Quality.UNCERTAIN),
        (0x80000000, Quality.BAD),  # OPC UA Bad
        (0x408F0000, Quality.UNCERTAIN),  # OPC UA Uncertain_...
        (0x00A80000, Quality.GOOD),  # OPC UA Good_... (a sub-code, severity Good)
    ],
)
def test_quality_property(code: int | None, expected: Quality) -> None:
    for long in (False, True):
        d = decode_payload(_with_property(code, long=long))
        assert not d.fast  # properties need the protobuf path
        assert d.value[0] == 20.5
        assert d.quality[0] == expected
        if code is not None:
            assert quality_from_code(code) == expected


def test_null_is_bad_whatever_its_quality_property() -> None:
    d = decode_payload(_with_property(192, is_null=True))
    assert np.isnan(d.value[0]) and d.quality[0] == BAD


def test_metric_without_own_timestamp_takes_the_payload_one_even_when_it_comes_later() -> None:
    # hand-ordered: the metric first, the payload timestamp after it, and given twice (last wins)
    metric = bytes.fromhex("1206 1001 200a 3801")
    data = metric + bytes.fromhex("08 01") + bytes.fromhex("08 80d095ffbc31")
    d = decode_payload(data)
    assert d.fast and d.timestamp == T0 and d.timestamp_ms[0] == T0
    assert_same(d, _decode_general(data))


def test_payload_without_timestamp() -> None:
    data = bytes.fromhex("1206 1001 200a 3801")
    for d in (decode_payload(data), _decode_general(data)):
        assert d.timestamp is None and d.seq is None and d.timestamp_ms[0] == -1


# --------------------------------------------------------------------------- fast path == protobuf


def _random_metric_fields(rng: np.random.Generator) -> list[bytes]:
    """One metric as separately serialized fields: concatenated in any order they still form a Metric."""
    fields: list[bytes] = []

    def add(**kw: object) -> None:
        fields.append(bytes(pb.Payload.Metric(**kw).SerializeToString()))  # type: ignore[arg-type]

    add(alias=int(rng.integers(0, 2**63)) if rng.random() < 0.2 else int(rng.integers(0, 2000)))
    if rng.random() < 0.5:
        add(timestamp=int(T0 + rng.integers(-(10**6), 10**6)))
    if rng.random() < 0.9:
        add(datatype=int(rng.integers(0, 20)))
    for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 values: with 2 the last one wins
        kind = int(rng.integers(0, 5))
        if kind == 0:
            add(int_value=int(rng.integers(0, 2**32)))
        elif kind == 1:
            add(long_value=int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)))
        elif kind == 2:
            add(float_value=float(np.float32(rng.normal() * 100)))
        elif kind == 3:
            add(double_value=float(rng.normal() * 1e6))
        else:
            add(boolean_value=bool(rng.random() < 0.5))
    if rng.random() < 0.2:
        add(is_null=bool(rng.random() < 0.7))
    if rng.random() < 0.2:
        add(is_historical=bool(rng.random() < 0.7))
    if rng.random() < 0.1:
        add(is_transient=True)
    rng.shuffle(fields)  # type: ignore[arg-type]
    return fields


def _random_payload(rng: np.random.Generator, n_metrics: int) -> bytes:
    parts: list[bytes] = []
    for _ in range(n_metrics):
        body = b"".join(_random_metric_fields(rng))
        parts.append(b"\x12" + _varint(len(body)) + body)
    if rng.random() < 0.9:
        parts.append(bytes(pb.Payload(timestamp=int(T0 + rng.integers(0, 1000))).SerializeToString()))
    if rng.random() < 0.9:
        parts.append(bytes(pb.Payload(seq=int(rng.integers(0, 256))).SerializeToString()))
    rng.shuffle(parts)  # type: ignore[arg-type]
    return b"".join(parts)


def _varint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


@pytest.mark.parametrize("seed", range(8))
def test_fast_path_equals_protobuf_on_random_payloads(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    for _ in range(40):
        data = _random_payload(rng, int(rng.integers(0, 60)))
        fast = decode_payload(data)
        assert fast.fast
        assert_same(fast, _decode_general(data))


def test_signed_types_read_both_integer_conventions() -> None:
    cases = [  # (datatype, wire field, wire value, expected)
        (DataType.Int8, "int_value", 0xFF, -1.0),
        (DataType.Int8, "int_value", 0xFFFFFFFF, -1.0),
        (DataType.Int8, "int_value", 0x7F, 127.0),
        (DataType.Int16, "int_value", 0x8000, -32768.0),
        (DataType.Int16, "int_value", 0xFFFF8000, -32768.0),
        (DataType.Int32, "int_value", 0x80000000, -(2.0**31)),
        (DataType.UInt8, "int_value", 0xFF, 255.0),
        (DataType.UInt32, "int_value", 0xFFFFFFFF, 4294967295.0),
        (DataType.Int64, "long_value", 2**64 - 2, -2.0),
        (DataType.DateTime, "long_value", T0, float(T0)),
        (DataType.UInt64, "long_value", 2**64 - 1, 2.0**64),
        (DataType.Int32, "long_value", 2**64 - 7, -7.0),  # a sender using the "wrong" field still reads right
    ]
    p = pb.Payload(timestamp=T0)
    for i, (dt, field, wire, _) in enumerate(cases):
        p.metrics.add(alias=i, datatype=int(dt), **{field: wire})
    data = bytes(p.SerializeToString())
    d = decode_payload(data)
    assert d.fast
    np.testing.assert_array_equal(d.value, [c[3] for c in cases])
    assert_same(d, _decode_general(data))


def test_float_keeps_float32_precision() -> None:
    p = pb.Payload(timestamp=T0)
    p.metrics.add(alias=1, datatype=DataType.Float, float_value=0.1)
    d = decode_payload(bytes(p.SerializeToString()))
    assert d.value[0] == float(np.float32(0.1)) == struct.unpack("<f", struct.pack("<f", 0.1))[0]


@pytest.mark.parametrize(
    "metric",
    [
        pb.Payload.Metric(name="x", alias=1, datatype=10, double_value=1.0),
        pb.Payload.Metric(alias=1, datatype=12, string_value="text"),
        pb.Payload.Metric(alias=1, datatype=17, bytes_value=b"\x00\x01"),
        pb.Payload.Metric(alias=1, datatype=10, double_value=1.0, metadata=pb.Payload.MetaData(size=3)),
        pb.Payload.Metric(alias=1, datatype=16, dataset_value=pb.Payload.DataSet(num_of_columns=0)),
        pb.Payload.Metric(alias=1, datatype=19, template_value=pb.Payload.Template(version="1")),
        pb.Payload.Metric(datatype=10, double_value=1.0),  # neither name nor alias
    ],
)
def test_rich_metrics_take_the_protobuf_path(metric: pb.Payload.Metric) -> None:
    data = bytes(pb.Payload(timestamp=T0, seq=1, metrics=[metric]).SerializeToString())
    d = decode_payload(data)
    assert not d.fast and len(d) == 1 and d.seq == 1


def test_payload_uuid_and_unknown_fields_take_the_protobuf_path() -> None:
    base = encode_data(T0, 1, [1], [DataType.Double], [1.0])
    for extra in (bytes(pb.Payload(uuid="u-1").SerializeToString()), bytes.fromhex("f8 01 05")):  # field 31 varint
        d = decode_payload(base + extra)
        assert not d.fast and d.value[0] == 1.0


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("08"),  # truncated varint
        bytes.fromhex("08 ffffffffffffffffffff01"),  # 11-byte varint
        bytes.fromhex("12 05 1001"),  # metric longer than the payload
        bytes.fromhex("12 0a 1001 69 0000"),  # truncated double inside a metric
        bytes.fromhex("12 04 1001 65 00"),  # fixed32 running past the metric's end
        bytes.fromhex("0f"),  # wire type 7
        bytes.fromhex("12 02 0a 05"),  # metric name longer than the metric
    ],
)
def test_malformed_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"malformed Sparkplug B payload \(\d+ bytes\)"):
        decode_payload(data)


def test_invalid_utf8_name_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        decode_payload(bytes.fromhex("12 08 0a 02 fffe 1001 2001"))


def test_corrupted_payloads_only_ever_raise_decode_error_and_both_paths_agree() -> None:
    rng = np.random.default_rng(7)
    seeds = [_random_payload(rng, 8) for _ in range(20)] + [GOLDEN_DDATA, GOLDEN_INTS]
    outcomes = {"fast": 0, "general": 0, "error": 0}
    for _ in range(1500):
        data = bytearray(seeds[int(rng.integers(len(seeds)))])
        op = int(rng.integers(4))
        if op == 0:
            data = data[: int(rng.integers(0, len(data) + 1))]
        elif op == 1 and data:
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
        elif op == 2:
            at = int(rng.integers(len(data) + 1))
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 6))).astype(np.uint8).tobytes()
        elif data:
            at = int(rng.integers(len(data)))
            del data[at : at + int(rng.integers(1, 6))]
        raw = bytes(data)
        try:
            d = decode_payload(raw)
        except DecodeError:
            outcomes["error"] += 1
            with pytest.raises(DecodeError):
                _decode_general(raw)
            continue
        outcomes["fast" if d.fast else "general"] += 1
        if d.fast:
            assert_same(d, _decode_general(raw))
    assert all(outcomes.values()), outcomes  # the mutations exercised all three outcomes


# --------------------------------------------------------------------------- batches


def test_batch_equals_one_by_one() -> None:
    rng = np.random.default_rng(3)
    birth = encode_birth(T0, 0, [MetricSpec("s", DataType.String, 1), MetricSpec("d", DataType.Double, 2)], ["x", 1.0])
    payloads: list[bytes] = [
        GOLDEN_DDATA,
        birth,
        b"\x08",  # malformed
        GOLDEN_INTS,
        _with_property(64),
        b"",  # an empty payload is valid: no metrics
        *(_random_payload(rng, int(rng.integers(0, 30))) for _ in range(10)),
        birth,
    ]
    batch = decode_payloads(payloads)
    assert set(batch.errors) == {2} and "malformed" in batch.errors[2]
    singles = {i: decode_payload(p) for i, p in enumerate(payloads) if i != 2}
    assert len(batch) == sum(len(d) for d in singles.values())
    assert batch.n_fast == sum(len(d) for d in singles.values() if d.fast)
    np.testing.assert_array_equal(batch.message, np.concatenate([[i] * len(d) for i, d in singles.items()]))
    for i, d in singles.items():
        rows = np.flatnonzero(batch.message == i)
        assert batch.timestamp[i] == (-1 if d.timestamp is None else d.timestamp)
        assert batch.seq[i] == (-1 if d.seq is None else d.seq)
        for name in ("alias", "timestamp_ms", "datatype", "value", "quality", "is_historical"):
            np.testing.assert_array_equal(getattr(batch, name)[rows], getattr(d, name), err_msg=f"{i} {name}")
        assert (batch.names is None and d.names is None) or (
            batch.names is not None and [batch.names[r] for r in rows] == (d.names or [None] * len(d))
        )
        assert {r - rows[0]: t for r, t in batch.texts.items() if r in set(rows.tolist())} == d.texts
    assert batch.timestamp[2] == -1 and batch.seq[2] == -1


def test_batch_of_data_only_has_no_names() -> None:
    batch = decode_payloads([GOLDEN_DDATA] * 3)
    assert batch.names is None and batch.errors == {} and batch.n_fast == 18 == len(batch)
    np.testing.assert_array_equal(batch.message, np.repeat([0, 1, 2], 6))
    np.testing.assert_array_equal(batch.value[6:12], decode_payload(GOLDEN_DDATA).value)


def test_empty_batch() -> None:
    batch = decode_payloads([])
    assert len(batch) == 0 and len(batch.timestamp) == 0 and batch.errors == {}


@pytest.mark.parametrize(
    "hex_data",
    [
        "08 ffffffffffffffffff01",  # payload timestamp 2**64-1: not an int64 ms, reads as absent
        "08 ffffffffffffffffff7f",  # 10-byte varint with overflow bits in its last byte
        "18 80808080808080808001",  # seq 2**63
        "12 0f 10 ffffffffffffffffff01 20 0a 3801",  # alias 2**64-1 (reads as -1, like no alias)
    ],
)
def test_extreme_varints_agree(hex_data: str) -> None:
    data = bytes.fromhex(hex_data)
    d = decode_payload(data)
    assert d.fast
    assert_same(d, _decode_general(data))


def test_accepts_bytes_like() -> None:
    for data in (bytearray(GOLDEN_DDATA), memoryview(GOLDEN_DDATA)):
        assert_same(decode_payload(data), decode_payload(GOLDEN_DDATA))
    batch = decode_payloads([bytearray(GOLDEN_DDATA), memoryview(GOLDEN_INTS)])
    assert len(batch) == 12 and batch.errors == {}
