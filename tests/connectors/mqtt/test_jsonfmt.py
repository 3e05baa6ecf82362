"""The plain JSON format: documented shapes decode, bad ones are refused with a reason."""

from __future__ import annotations

import math

import pytest

from shopfloor.connectors.mqtt.jsonfmt import decode_json, encode_json
from shopfloor.core.errors import DecodeError
from shopfloor.core.samples import Quality

NOW = 1_763_800_000_000_000_000


def test_single_record() -> None:
    s = decode_json(b'{"ts": 1763800000123, "values": {"p": 1.5, "on": true, "x": null}}', NOW)
    assert s.keys == ["p", "on", "x"]
    assert s.ts_ns.tolist() == [1_763_800_000_123_000_000] * 3
    assert s.value[:2].tolist() == [1.5, 1.0] and math.isnan(s.value[2])
    assert s.quality.tolist() == [Quality.GOOD, Quality.GOOD, Quality.BAD]
    assert s.problems == []


def test_list_iso_time_quality_and_default_time() -> None:
    s = decode_json(
        b'[{"ts": "2025-11-22T10:00:00+01:00", "values": {"a": 1}, "quality": {"a": "uncertain"}},'
        b' {"values": {"a": 2}}]',
        NOW,
    )
    assert s.ts_ns.tolist() == [1_763_802_000_000_000_000, NOW]
    assert s.quality.tolist() == [Quality.UNCERTAIN, Quality.GOOD]


def test_a_bad_value_is_reported_alone() -> None:
    s = decode_json(b'{"values": {"a": 1, "b": "high", "c": 3}, "quality": {"c": "meh"}}', NOW)
    assert s.keys == ["a"]
    assert len(s.problems) == 2
    assert "'b' must be a number" in s.problems[0]
    assert "quality of 'c'" in s.problems[1]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"42", "expected an object"),
        (b'{"values": {}}', "non-empty object"),
        (b'{"values": [1, 2]}', "non-empty object"),
        (b'{"values": {"a": 1}, "extra": 1}', "unknown field"),
        (b'{"ts": "yesterday", "values": {"a": 1}}', "not an ISO-8601"),
        (b'{"ts": "2026-11-22T10:00:00", "values": {"a": 1}}', "no time zone"),
        (b'{"ts": true, "values": {"a": 1}}', "boolean"),
        (b'{"ts": -5, "values": {"a": 1}}', "not epoch milliseconds"),
        (b'{"values": {"a": 1}, "quality": "good"}', "'quality' must be an object"),
    ],
)
def test_malformed_payloads_raise(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_json(payload, NOW)


def test_encode_round_trip() -> None:
    s = decode_json(encode_json({"a": 2.5, "b": None}, 1_000), NOW)
    assert s.keys == ["a", "b"] and s.ts_ns.tolist() == [1_000_000_000, 1_000_000_000]
