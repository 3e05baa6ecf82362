"""Fixtures of the virtual factory's tests: a private Mosquitto broker and a recording subscriber."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.core.errors import NotReady
from shopfloor.testing.mosquitto import Mosquitto


@pytest.fixture(scope="module")
def sim_broker() -> Iterator[Mosquitto]:
    """Mosquitto on a free loopback port (temp config: listener, anonymous, no persistence)."""
    try:
        broker = Mosquitto().start()
    except NotReady as exc:
        pytest.skip(f"no mosquitto: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


class Recorder:
    """A paho subscriber that keeps every message (topic, payload) in arrival order."""

    def __init__(self, host: str, port: int, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-test-{time.monotonic_ns()}")
        self._client.on_connect = lambda c, u, f, r, p: c.subscribe([(t, 0) for t in topics])
        self._client.on_subscribe = lambda c, u, m, r, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError("subscription not acknowledged")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        """Wait until at least ``count`` messages arrived (and a moment of quiet); all of them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.01)
        time.sleep(0.05)
        with self._lock:
            return list(self.messages)

    def wait_for_topic(self, topic: str, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        """Wait until a message on ``topic`` arrived; all messages so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(t == topic for t, _ in self.messages):
                    return list(self.messages)
            time.sleep(0.01)
        raise TimeoutError(f"nothing on {topic} within {timeout} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def recorder(sim_broker: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(sim_broker.host, sim_broker.port, ["spBv1.0/#", "shopfloor/json/#"])
    try:
        yield rec
    finally:
        rec.close()
