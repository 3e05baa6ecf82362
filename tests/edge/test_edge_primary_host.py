"""The gateway waits for the platform's STATE (Sparkplug primary host), so a broker that restarts
without persistence, and so forgets the platform's subscription, loses nothing.

Without the wait the gateway could reconnect first, publish, get PUBACKs from a broker with no
subscriber and delete the rows: the platform here reconnects seconds after the gateway does.
"""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from edge_helpers import CountingPress, edge_yaml, plant_yaml
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.config import parse_plant_config
from shopfloor.connectors.mqtt.sparkplug import decode_state, encode_state, state_topic
from shopfloor.core.errors import DecodeError
from shopfloor.core.samples import Quality
from shopfloor.edge.config import parse_edge_config
from shopfloor.edge.gateway import EdgeGateway
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

READS = "s/a/l/press1/reads"


def reads(platform: Platform) -> list[float]:
    batch = platform.historian.raw(platform.tag_index.id_of(READS), 0, 2**62)
    return batch.value[batch.quality == Quality.GOOD].tolist()


def retained_state(broker: Mosquitto, host_id: str) -> tuple[bool, int] | None:
    """What a newcomer reads on the STATE topic (retained), or None."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(state_topic(host_id), qos=1)
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    return decode_state(got[0]) if got else None


def test_state_payloads_round_trip_and_bad_ones_are_refused() -> None:
    assert state_topic("shopfloor") == "spBv1.0/STATE/shopfloor"
    assert decode_state(encode_state(True, 1_700_000_000_000)) == (True, 1_700_000_000_000)
    bad = [b"{", b"[]", b'{"online": 1, "timestamp": 5}', b'{"online": true}', b'{"online": true, "timestamp": true}']
    for payload in bad:
        with pytest.raises(DecodeError):
            decode_state(payload)


def test_the_platform_says_online_then_offline(mosquitto: Mosquitto, press: CountingPress, tmp_path: Path) -> None:
    config = parse_edge_config(edge_yaml(press, mosquitto.url, str(tmp_path / "edge")))
    platform = Platform(parse_plant_config(plant_yaml(config)), data_dir=tmp_path / "p", broker_url=mosquitto.url)
    platform.start()
    try:
        state = retained_state(mosquitto, "shopfloor")
        assert state is not None and state[0] is True
    finally:
        platform.stop()
    state = retained_state(mosquitto, "shopfloor")
    assert state is not None and state[0] is False


def test_a_broker_restart_without_persistence_loses_nothing_when_the_gateway_waits_for_the_host(
    press: CountingPress, tmp_path: Path
) -> None:
    broker = Mosquitto().start()  # no persistence: a restart forgets sessions and retained messages
    text = edge_yaml(press, broker.url, str(tmp_path / "edge"), extra="").replace(
        "  drain_s: 10\n", "  drain_s: 10\n  primary_host: shopfloor\n"
    )
    config = parse_edge_config(text)
    platform = Platform(parse_plant_config(plant_yaml(config)), data_dir=tmp_path / "p", broker_url=broker.url)
    platform.start()
    gateway = EdgeGateway(config)
    try:
        gateway.start()
        wait_for(lambda: len(reads(platform)) >= 10, 30)
        broker.stop()
        time.sleep(1.0)
        platform.ingest.client.reconnect_delay_set(4, 4)  # back well after the gateway (backoff 0.2-1 s)
        broker = Mosquitto(port=broker.port).start()
        wait_for(lambda: gateway.uplink.link.last_error == "waiting for the primary host", 10)
        assert not gateway.uplink.link.up
        wait_for(lambda: gateway.uplink.link.up, 20)  # the platform is back and said so
        wait_for(lambda: gateway.buffer.stats().samples == 0, 20)
        final = press.freeze()
        wait_for(lambda: len(reads(platform)) >= final, 20)
        stored = reads(platform)
    finally:
        gateway.stop()
        platform.stop()
        broker.stop()
    assert stored == [float(v) for v in range(1, final + 1)]  # every read, once, in order
