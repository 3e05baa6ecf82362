"""Sparkplug B topic names: ``spBv1.0/<group>/<message_type>/<edge_node>[/<device>]``.

The host-application STATE topic has a different shape, ``spBv1.0/STATE/<host_id>``; it is
represented as ``SparkplugTopic(group="", message_type="STATE", node=<host_id>, device=None)``
so that every parsed topic is one type and ``.text`` round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.core.errors import DecodeError

NAMESPACE = "spBv1.0"
NODE_MESSAGE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_MESSAGE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
STATE = "STATE"
MESSAGE_TYPES = NODE_MESSAGE_TYPES | DEVICE_MESSAGE_TYPES | {STATE}

_FORBIDDEN = ("/", "+", "#")


def _check_level(what: str, value: str) -> None:
    if not value:
        raise ValueError(f"Sparkplug {what} is empty")
    if any(c in value for c in _FORBIDDEN):
        raise ValueError(f"Sparkplug {what} {value!r} contains '/', '+' or '#'")


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    """One parsed Sparkplug topic; construction validates the levels, so ``.text`` is always publishable."""

    group: str
    message_type: str
    node: str
    device: str | None = None

    def __post_init__(self) -> None:
        if self.message_type not in MESSAGE_TYPES:
            raise ValueError(f"unknown Sparkplug message type {self.message_type!r}")
        if self.message_type == STATE:
            if self.group or self.device is not None:
                raise ValueError("a STATE topic has no group and no device: use group='' and node=<host_id>")
            _check_level("host id", self.node)
            return
        _check_level("group id", self.group)
        _check_level("edge node id", self.node)
        if self.message_type in DEVICE_MESSAGE_TYPES:
            if self.device is None:
                raise ValueError(f"{self.message_type} needs a device id")
            _check_level("device id", self.device)
        elif self.device is not None:
            raise ValueError(f"{self.message_type} is a node message and takes no device id")

    @property
    def text(self) -> str:
        """The MQTT topic string."""
        if self.message_type == STATE:
            return f"{NAMESPACE}/{STATE}/{self.node}"
        base = f"{NAMESPACE}/{self.group}/{self.message_type}/{self.node}"
        return base if self.device is None else f"{base}/{self.device}"

    @property
    def is_device(self) -> bool:
        """Whether the message concerns a device (D*) rather than the edge node itself."""
        return self.device is not None


def parse_topic(topic: str) -> SparkplugTopic | None:
    """Parse an MQTT topic; None if it is not a Sparkplug B topic, DecodeError if it is a malformed one."""
    if not topic.startswith(NAMESPACE + "/"):
        return None
    levels = topic.split("/")
    if len(levels) == 3 and levels[1] == STATE:
        if not levels[2]:
            raise DecodeError(f"malformed Sparkplug topic {topic!r}: empty host id")
        try:
            return SparkplugTopic("", STATE, levels[2])
        except ValueError as exc:
            raise DecodeError(f"malformed Sparkplug topic {topic!r}: {exc}") from None
    if len(levels) < 4:
        raise DecodeError(f"malformed Sparkplug topic {topic!r}: expected spBv1.0/<group>/<type>/<node>[/<device>]")
    message_type = levels[2]
    if message_type not in MESSAGE_TYPES or message_type == STATE:
        raise DecodeError(f"malformed Sparkplug topic {topic!r}: unknown message type {message_type!r}")
    expected = 5 if message_type in DEVICE_MESSAGE_TYPES else 4
    if len(levels) != expected:
        raise DecodeError(
            f"malformed Sparkplug topic {topic!r}: {message_type} takes {expected} levels, got {len(levels)}"
        )
    try:
        return SparkplugTopic(levels[1], message_type, levels[3], levels[4] if expected == 5 else None)
    except ValueError as exc:
        raise DecodeError(f"malformed Sparkplug topic {topic!r}: {exc}") from None
