from __future__ import annotations

import pytest

from shopfloor.api.timeparse import auto_bucket_ns, parse_duration_ns, parse_time_ns

NOW = 1_763_800_000_000_000_000


def test_times() -> None:
    assert parse_time_ns("now", NOW) == NOW
    assert parse_time_ns("-15m", NOW) == NOW - 900 * 10**9
    assert parse_time_ns("1763800000123", NOW) == 1_763_800_000_123_000_000
    assert parse_time_ns("2025-11-22T08:26:40Z", NOW) == NOW
    with pytest.raises(ValueError, match="time zone"):
        parse_time_ns("2025-11-22T08:26:40", NOW)
    with pytest.raises(ValueError, match="not a time"):
        parse_time_ns("yesterday", NOW)


def test_durations_and_auto_buckets() -> None:
    assert parse_duration_ns("1m") == 60 * 10**9
    assert parse_duration_ns("500ms") == 5 * 10**8
    with pytest.raises(ValueError):
        parse_duration_ns("5 minutes")
    assert auto_bucket_ns(86_400 * 10**9) == 120 * 10**9  # one day -> 720 two-minute buckets
    assert auto_bucket_ns(900 * 10**9) == 1 * 10**9
    assert auto_bucket_ns(400 * 86_400 * 10**9) == 43_200 * 10**9
    ten_years = 3650 * 86_400 * 10**9
    assert ten_years / auto_bucket_ns(ten_years) <= 1000
