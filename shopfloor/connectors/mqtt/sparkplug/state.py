"""The primary host application's STATE message (Sparkplug 3.0, section "Host Application").

The platform publishes ``spBv1.0/STATE/<host_id>`` retained at QoS 1: ``{"online": true,
"timestamp": <ms>}`` once it has subscribed, and the same with ``false`` as its will and on a clean
stop. An edge node configured with that host id publishes its births and data only while the host
is online. Why it matters: a broker that restarts without persistence forgets the platform's
session; an edge node that reconnected first would hand data to a broker with nobody subscribed,
get its PUBACK and delete it. Waiting for STATE closes that gap.
"""

from __future__ import annotations

import orjson

from shopfloor.core.errors import DecodeError

from .topic import STATE, SparkplugTopic


def state_topic(host_id: str) -> str:
    """``spBv1.0/STATE/<host_id>`` (validated: no '/', '+' or '#')."""
    return SparkplugTopic("", STATE, host_id).text


def encode_state(online: bool, timestamp_ms: int) -> bytes:
    return orjson.dumps({"online": online, "timestamp": int(timestamp_ms)})


def decode_state(payload: bytes) -> tuple[bool, int]:
    """(online, timestamp ms); DecodeError for anything that is not a Sparkplug 3.0 STATE body."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"STATE payload is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise DecodeError("STATE payload is not a JSON object")
    online, ts = body.get("online"), body.get("timestamp")
    if not isinstance(online, bool) or not isinstance(ts, int) or isinstance(ts, bool):
        raise DecodeError('STATE payload needs {"online": bool, "timestamp": int}')
    return online, ts
