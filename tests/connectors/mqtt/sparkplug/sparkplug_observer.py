"""A subscriber that records what an edge node publishes (imported by the Sparkplug tests and their conftest)."""

from __future__ import annotations

import queue
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.connectors.mqtt.sparkplug import DecodedPayload, SparkplugTopic, decode_payload, parse_topic
from shopfloor.testing.mosquitto import Mosquitto


@dataclass(frozen=True)
class Seen:
    topic: SparkplugTopic
    payload: DecodedPayload
    raw: bytes


class Observer:
    """A paho client subscribed to one Sparkplug group, queueing every message it receives."""

    def __init__(self, broker: Mosquitto, group: str) -> None:
        self.group = group
        self._queue: queue.Queue[Seen] = queue.Queue()
        self._subscribed = queue.Queue[int]()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(f"spBv1.0/{group}/#", qos=1)
        self._subscribed.get(timeout=5)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        self._subscribed.put(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = parse_topic(message.topic)
        assert topic is not None
        self._queue.put(Seen(topic, decode_payload(message.payload), bytes(message.payload)))

    def next(self, message_type: str | None = None, timeout: float = 5.0) -> Seen:
        """The next message (of ``message_type``, skipping commands only) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {message_type or 'message'} within {timeout}s") from None
            if seen.topic.message_type in ("NCMD", "DCMD") and message_type not in ("NCMD", "DCMD"):
                continue
            assert message_type is None or seen.topic.message_type == message_type, (
                f"expected {message_type}, got {seen.topic.text}"
            )
            return seen

    def assert_quiet(self, timeout: float = 0.2) -> None:
        """Nothing else arrives (bounded wait; used only after all expected messages are in)."""
        try:
            seen = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {seen.topic.text}")

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
