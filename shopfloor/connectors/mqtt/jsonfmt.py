"""The plain JSON format, for simple devices that cannot speak Sparkplug B.

Topic: ``<prefix>/<device>`` (prefix ``shopfloor/json`` by default). Payload: one
record or a list of records::

    {"ts": 1763800000000, "values": {"active_power": 12.5, "running": true},
     "quality": {"active_power": "good"}}

``ts`` is epoch milliseconds (an integer) or an ISO-8601 string with a zone; if
absent, the receive time is used. Values are numbers, booleans (stored 1/0) or
null (stored as a bad-quality sample). ``quality`` is optional per key: good,
uncertain or bad. A payload that is not such a document is rejected whole; a
single value of the wrong type is rejected alone and reported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from shopfloor.core.errors import DecodeError
from shopfloor.core.samples import Quality

QUALITY_BY_NAME = {"good": Quality.GOOD, "uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}


@dataclass(frozen=True, slots=True)
class JsonSamples:
    keys: list[str]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    problems: list[str] = field(default_factory=list)


def _timestamp_ns(raw: object, received_ns: int, where: str) -> int:
    if raw is None:
        return received_ns
    if isinstance(raw, bool):
        raise DecodeError(f"{where}: ts must be epoch milliseconds or an ISO-8601 string, got a boolean")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or not 0 <= raw < 1e14:
            raise DecodeError(f"{where}: ts {raw!r} is not epoch milliseconds")
        return int(raw * 1_000_000)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise DecodeError(f"{where}: ts {raw!r} is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            raise DecodeError(f"{where}: ts {raw!r} has no time zone")
        return int(parsed.timestamp() * 1e9)
    raise DecodeError(f"{where}: ts must be epoch milliseconds or an ISO-8601 string")


def decode_json(payload: bytes, received_ns: int) -> JsonSamples:
    """Decode one JSON-format payload into columns; DecodeError if it is not one."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    records = doc if isinstance(doc, list) else [doc]
    keys: list[str] = []
    ts: list[int] = []
    values: list[float] = []
    quality: list[int] = []
    problems: list[str] = []
    for i, rec in enumerate(records):
        where = f"record {i}" if isinstance(doc, list) else "payload"
        if not isinstance(rec, dict):
            raise DecodeError(f"{where}: expected an object with 'values'")
        unknown = set(rec) - {"ts", "values", "quality"}
        if unknown:
            raise DecodeError(f"{where}: unknown field(s) {sorted(unknown)}")
        vals = rec.get("values")
        if not isinstance(vals, dict) or not vals:
            raise DecodeError(f"{where}: 'values' must be a non-empty object of key: number")
        qual = rec.get("quality") or {}
        if not isinstance(qual, dict):
            raise DecodeError(f"{where}: 'quality' must be an object of key: good|uncertain|bad")
        t = _timestamp_ns(rec.get("ts"), received_ns, where)
        for key, v in vals.items():
            q = qual.get(key, "good")
            if q not in QUALITY_BY_NAME:
                problems.append(f"{where}: quality of {key!r} must be good, uncertain or bad, got {q!r}")
                continue
            if v is None:
                number, q = math.nan, "bad"
            elif isinstance(v, bool | int | float):
                number = float(v)
            else:
                problems.append(f"{where}: value of {key!r} must be a number, boolean or null, got {type(v).__name__}")
                continue
            keys.append(key)
            ts.append(t)
            values.append(number)
            quality.append(QUALITY_BY_NAME[q])
    return JsonSamples(
        keys, np.array(ts, np.int64), np.array(values, np.float64), np.array(quality, np.uint8), problems
    )


def encode_json(values: dict[str, float | bool | None], ts_ms: int | None = None) -> bytes:
    """One record in the JSON format (used by the virtual factory and tests)."""
    doc: dict[str, object] = {"values": values}
    if ts_ms is not None:
        doc = {"ts": ts_ms, **doc}
    return json.dumps(doc, allow_nan=False).encode()
