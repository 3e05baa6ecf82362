"""The embedded broker under the demo's start-up pattern: many clients connecting and subscribing at once.

amqtt 0.12.1 iterates its subscription table across awaits; without the snapshot table a client that
subscribed while another was connecting cut that other client off ("dictionary changed size during
iteration"). Every client must connect, stay connected and receive what it subscribed to.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.connectors.mqtt.broker import EmbeddedBroker, _SnapshotSubscriptions
from shopfloor.core.net import free_port
from shopfloor.testing.waiting import wait_for

CLIENTS = 24


def test_the_subscription_table_may_change_while_it_is_iterated() -> None:
    table = _SnapshotSubscriptions({"a": [], "b": []})
    for topic in table:
        table[f"{topic}/x"] = []
        del table[topic]
    for topic, _subs in table.items():
        table.pop(topic)
    assert table == {}


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker("127.0.0.1", free_port())
    b.start()
    try:
        yield b
    finally:
        b.stop()


def test_many_clients_connecting_and_subscribing_at_once_all_get_their_messages(broker: EmbeddedBroker) -> None:
    received: dict[int, list[bytes]] = {i: [] for i in range(CLIENTS)}
    subscribed = threading.Semaphore(0)
    disconnects: list[int] = []
    clients: list[mqtt.Client] = []
    for i in range(CLIENTS):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"c{i}")

        def on_connect(client: mqtt.Client, _u: object, _f: object, _r: object, _p: object, i: int = i) -> None:
            for k in range(5):  # several filters each, as the platform's services subscribe
                client.subscribe(f"t/{i}/{k}", qos=1)

        def on_subscribe(*_args: object) -> None:
            subscribed.release()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage, i: int = i) -> None:
            received[i].append(msg.payload)

        def on_disconnect(*_args: object, i: int = i) -> None:
            disconnects.append(i)

        c.on_connect, c.on_subscribe = on_connect, on_subscribe
        c.on_message, c.on_disconnect = on_message, on_disconnect
        c.connect_async(broker.host, broker.port)
        clients.append(c)
    try:
        for c in clients:
            c.loop_start()
        for _ in range(CLIENTS * 5):
            assert subscribed.acquire(timeout=30), "a client never got its subscriptions acknowledged"
        for i, c in enumerate(clients):
            c.publish(f"t/{i}/4", f"to {i}".encode(), qos=1)
        wait_for(lambda: all(received[i] for i in range(CLIENTS)), timeout=30)
        assert {i: received[i] for i in range(CLIENTS)} == {i: [f"to {i}".encode()] for i in range(CLIENTS)}
        assert disconnects == []
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
