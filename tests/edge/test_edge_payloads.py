"""The gateway's Sparkplug payloads decode, through the platform's own decoder, to what was read."""

from __future__ import annotations

import numpy as np

from shopfloor.connectors.mqtt.sparkplug import DataType, decode_payload
from shopfloor.core.samples import Quality
from shopfloor.edge.catalog import Metric
from shopfloor.edge.payloads import encode_birth, encode_samples

ALIASES = np.array([5, 6, 7, 8], np.uint64)
TYPES = np.array([DataType.Double, DataType.Int16, DataType.Boolean, DataType.Float], np.uint32)
TS = np.array([1_700_000_000_123_456_789, 1_700_000_000_124_000_000, 1_700_000_000_125_000_000,
               1_700_000_000_126_000_000], np.int64)
VALUES = np.array([3.25, -7.0, 1.0, 0.5])


def test_live_samples_use_the_fast_path_and_keep_their_read_times() -> None:
    quality = np.array([192, 192, 0, 192], np.uint8)
    decoded = decode_payload(encode_samples(99, 4, ALIASES, TYPES, TS, VALUES, quality, historical=False))
    assert decoded.fast and decoded.seq == 4 and decoded.timestamp == 99
    assert decoded.alias.tolist() == [5, 6, 7, 8]
    assert decoded.timestamp_ms.tolist() == (TS // 1_000_000).tolist()
    assert decoded.value[[0, 1, 3]].tolist() == [3.25, -7.0, 0.5] and np.isnan(decoded.value[2])
    assert decoded.quality.tolist() == [192, 192, 0, 192]  # bad travels as null
    assert not decoded.is_historical.any()


def test_backlog_is_flagged_historical_and_uncertain_keeps_its_quality() -> None:
    quality = np.array([64, 192, 192, 0], np.uint8)
    for historical in (True, False):
        decoded = decode_payload(encode_samples(99, 5, ALIASES, TYPES, TS, VALUES, quality, historical=historical))
        assert decoded.is_historical.tolist() == [historical] * 4
        assert decoded.quality.tolist() == [64, 192, 192, 0]
        assert decoded.value[:3].tolist() == [3.25, -7.0, 1.0] and np.isnan(decoded.value[3])
        assert decoded.timestamp_ms.tolist() == (TS // 1_000_000).tolist() and decoded.seq == 5


def test_integer_metrics_saturate_at_their_type() -> None:
    values = np.array([1e9, -1e9, 2.0, 70000.0])
    types = np.array([DataType.Int16, DataType.Int16, DataType.Boolean, DataType.UInt16], np.uint32)
    for historical in (True, False):
        decoded = decode_payload(encode_samples(1, 0, ALIASES, types, TS, values, np.full(4, 192, np.uint8),
                                                historical=historical))
        assert decoded.value.tolist() == [32767.0, -32768.0, 1.0, 65535.0]


def test_births_carry_names_aliases_last_values_and_their_times() -> None:
    metrics = [Metric(5, "press1", "force", DataType.Float), Metric(6, "press1", "strokes", DataType.UInt16),
               Metric(7, "press1", "never_read", DataType.Double)]
    ts = np.array([TS[0], TS[1], 0], np.int64)
    decoded = decode_payload(encode_birth(1000, 3, metrics, ts, np.array([2.5, 12.0, np.nan]),
                                          np.array([64, 192, 0], np.uint8)))
    assert decoded.names == ["force", "strokes", "never_read"] and decoded.alias.tolist() == [5, 6, 7]
    assert decoded.datatype.tolist() == [DataType.Float, DataType.UInt16, DataType.Double]
    assert decoded.timestamp_ms.tolist() == [TS[0] // 1_000_000, TS[1] // 1_000_000, 1000]
    assert decoded.value[:2].tolist() == [2.5, 12.0] and np.isnan(decoded.value[2])
    assert decoded.quality.tolist() == [Quality.UNCERTAIN, Quality.GOOD, Quality.BAD]

    node = decode_payload(encode_birth(1000, 0, metrics[:1], ts[:1], np.array([1.0]), np.array([192], np.uint8),
                                       bdseq=9))
    assert node.names == ["bdSeq", "Node Control/Rebirth", "force"] and node.seq == 0
    assert node.value[:2].tolist() == [9.0, 0.0]


def test_the_backlog_fast_path_decodes_like_protobuf_would() -> None:
    """Good and bad samples of the backlog take the numba path plus the historical flag; both decoders agree."""
    from shopfloor.connectors.mqtt.sparkplug.codec import _decode_general

    quality = np.array([192, 0, 192, 192], np.uint8)
    data = encode_samples(2**40, 255, ALIASES, TYPES, TS, VALUES, quality, historical=True)
    fast, general = decode_payload(data), _decode_general(data)
    assert fast.fast and not general.fast
    for decoded in (fast, general):
        assert decoded.is_historical.all() and decoded.seq == 255 and decoded.timestamp == 2**40
        assert decoded.alias.tolist() == [5, 6, 7, 8] and decoded.quality.tolist() == [192, 0, 192, 192]
        assert decoded.timestamp_ms.tolist() == (TS // 1_000_000).tolist()
        assert decoded.value[[0, 2, 3]].tolist() == [3.25, 1.0, 0.5] and np.isnan(decoded.value[1])
    big = np.arange(500, dtype=np.uint64) + 2**40  # long varints everywhere
    data = encode_samples(1, 0, big, np.full(500, DataType.Int64, np.uint32), np.full(500, 2**62, np.int64),
                          np.full(500, -2.0**62), np.full(500, 192, np.uint8), historical=True)
    decoded = decode_payload(data)
    assert decoded.fast and decoded.is_historical.all() and decoded.alias.tolist() == big.tolist()
    assert decoded.value.tolist() == [-2.0**62] * 500
