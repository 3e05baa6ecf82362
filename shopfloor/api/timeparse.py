"""Time arguments of the API: ISO-8601, epoch milliseconds, or relative to now ('-15m', 'now')."""

from __future__ import annotations

import re
import time
from datetime import datetime

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000, "w": 604_800_000_000_000}


def parse_duration_ns(text: str) -> int:
    """'500ms', '10s', '1m', '2h', '7d' -> nanoseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 10s, 1m, 2h or 7d")
    ns = int(float(m.group(1)) * _UNIT_NS[m.group(2)])
    if ns <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return ns


def parse_time_ns(text: str, now_ns: int | None = None) -> int:
    """'now', '-15m' (relative), epoch milliseconds, or ISO-8601 (a zone is required)."""
    now = now_ns if now_ns is not None else time.time_ns()
    t = text.strip()
    if t == "now":
        return now
    if t.startswith("-"):
        return now - parse_duration_ns(t[1:])
    if re.fullmatch(r"\d{10,14}", t):
        return int(t) * 1_000_000
    try:
        parsed = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use ISO-8601 with a zone, epoch ms, 'now' or '-15m'") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or +01:00)")
    return int(parsed.timestamp() * 1_000_000) * 1000


NICE_BUCKETS_NS = [
    int(x * 1e9) for x in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
]


def auto_bucket_ns(span_ns: int, max_points: int = 1000) -> int:
    """The smallest 'nice' bucket that keeps a span under max_points buckets."""
    for b in NICE_BUCKETS_NS:
        if span_ns / b <= max_points:
            return b
    return NICE_BUCKETS_NS[-1] * max(1, int(span_ns / NICE_BUCKETS_NS[-1] / max_points) + 1)
