"""The same device rules enforced by a real Mosquitto (files from `shopfloor mqtt-acl`) and by the embedded amqtt
broker: a device publishes under its own topics and nowhere else, reads only its commands and the host's STATE,
logs in with its password or not at all; and the platform's ingest works with the rules on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.config import PlantConfig, parse_plant_config
from shopfloor.connectors.mqtt.acl import BrokerAccess, build_access
from shopfloor.connectors.mqtt.broker import EmbeddedBroker
from shopfloor.connectors.mqtt.jsonfmt import encode_json
from shopfloor.connectors.mqtt.sparkplug import DataType, EdgeNode, MetricSpec
from shopfloor.core.net import free_port
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for
from tests.connectors.mqtt.test_acl import SECRETS, plant_text

NOT_AUTHORIZED_V5 = 135  # MQTT 5 reason code "Not authorized" (PUBACK, SUBACK, CONNACK)


@dataclass
class Broker:
    kind: str
    host: str
    port: int
    config: PlantConfig
    access: BrokerAccess | None = None  # the embedded broker's, with its counts of what it refused

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def v5(self) -> bool:  # amqtt speaks MQTT 3.1.1 only
        return self.kind == "mosquitto"


@pytest.fixture(params=["mosquitto", "embedded"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    config = parse_plant_config(plant_text())
    if request.param == "mosquitto":
        secrets = tmp_path / "secrets.yaml"
        secrets.write_text("".join(f"{user}: {password}\n" for user, password in SECRETS.items()))
        secrets.chmod(0o600)
        plant, out = tmp_path / "plant.yaml", tmp_path / "acl"
        plant.write_text(plant_text())
        result = CliRunner().invoke(app, ["mqtt-acl", "-c", str(plant), "-o", str(out), "--secrets", str(secrets)])
        assert result.exit_code == 0, result.output
        with Mosquitto(extra_config=(out / "mosquitto.conf").read_text(), allow_anonymous=False) as m:
            yield Broker("mosquitto", m.host, m.port, config)
    else:  # the oven's password is checked against the argon2 hash in plant.yaml here
        access = build_access(config, {u: p for u, p in SECRETS.items() if u != "oven"})
        embedded = EmbeddedBroker("127.0.0.1", free_port(), access=access)
        embedded.start()
        try:
            yield Broker("embedded", embedded.host, embedded.port, config, access)
        finally:
            embedded.stop()


class Client:
    """A paho client that records what the broker answers."""

    def __init__(self, broker: Broker, username: str | None, password: str | None) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{username}-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5 if broker.v5 else mqtt.MQTTv311)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self._lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        wait_for(lambda: self.connack is not None, 20)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connack = reason

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        self.pubacks[mid] = reason

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
        self.subacks[mid] = reasons

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        mid = self.c.publish(topic, payload, qos=1).mid
        wait_for(lambda: mid in self.pubacks, 20)
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.c.subscribe(topic, qos=1)
        assert mid is not None
        wait_for(lambda: mid in self.subacks, 20)
        return self.subacks[mid][0]

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def login(broker: Broker, clients: list[Client], username: str | None, password: str | None = None) -> Client:
    c = Client(broker, username, password if password is not None else SECRETS.get(username or ""))
    clients.append(c)
    return c


def test_wrong_passwords_unknown_users_and_anonymous_are_refused_at_connect(broker: Broker,
                                                                          clients: list[Client]) -> None:
    for username, password in (("press-edge", "robot-pw"), ("press-edge", ""), ("ghost", "x"), (None, None)):
        c = login(broker, clients, username, password)
        assert c.connack is not None and c.connack.is_failure, (username, c.connack)
    if broker.access is not None:
        assert broker.access.refused["connect"] == 4
    assert not login(broker, clients, "press-edge").connack.is_failure  # type: ignore[union-attr]
    assert not login(broker, clients, "oven").connack.is_failure  # type: ignore[union-attr]


def test_a_device_publishes_under_its_own_topics_and_nowhere_else(broker: Broker, clients: list[Client]) -> None:
    platform = login(broker, clients, "shopfloor")
    assert not platform.subscribe("#").is_failure
    press, oven = login(broker, clients, "press-edge"), login(broker, clients, "oven")
    cases = [  # (device, another device's topic, its own topic)
        (press, "spBv1.0/g1/DDATA/robot-edge/robot", "spBv1.0/g1/DDATA/press-edge/press"),
        (press, "spBv1.0/g1/NCMD/press-edge", "spBv1.0/g1/NDATA/press-edge"),  # posing as the platform
        (oven, "shopfloor/json/press", "shopfloor/json/oven"),
    ]
    for device, forged, own in cases:
        refused = device.publish(forged, b"forged")
        accepted = device.publish(own, b"own")
        wait_for(lambda own=own: platform.payloads(own), 20)  # type: ignore[misc]  # the positive control
        # the same client's earlier message would have been delivered first: it was dropped
        assert platform.payloads(forged) == [], forged
        if broker.v5:  # Mosquitto answers the refused QoS 1 PUBLISH with "Not authorized"
            assert (refused.value, accepted.value) == (NOT_AUTHORIZED_V5, 0)
        else:  # MQTT 3.1.1 has no reason codes: amqtt acknowledges and drops it
            assert not refused.is_failure
    if broker.access is not None:
        assert broker.access.refused["publish"] == len(cases)


def test_a_device_reads_only_its_commands_and_the_host_state(broker: Broker, clients: list[Client]) -> None:
    press = login(broker, clients, "press-edge")
    wide = press.subscribe("spBv1.0/g1/#")  # would cover other devices' data and commands
    if broker.v5:  # Mosquitto grants a wildcard subscription and checks each message against the read rules
        assert not wide.is_failure
    else:  # the embedded broker refuses a filter not inside the read rules outright
        assert wide.is_failure and press.subscribe("spBv1.0/g1/NCMD/+").is_failure
        assert broker.access is not None and broker.access.refused["subscribe"] == 2
    assert not press.subscribe("spBv1.0/g1/NCMD/press-edge").is_failure
    assert not press.subscribe("spBv1.0/STATE/+").is_failure
    platform, robot = login(broker, clients, "shopfloor"), login(broker, clients, "robot-gw")
    assert not platform.subscribe("#").is_failure
    assert not robot.publish("spBv1.0/g1/DDATA/robot-edge/robot", b"robot data").is_failure
    wait_for(lambda: platform.payloads("spBv1.0/g1/DDATA/robot-edge/robot"), 20)  # routed to every subscriber
    assert not platform.publish("spBv1.0/g1/NCMD/robot-edge", b"robot command").is_failure
    assert not platform.publish("spBv1.0/g1/NCMD/press-edge", b"rebirth").is_failure
    wait_for(lambda: press.payloads("spBv1.0/g1/NCMD/press-edge"), 20)  # the control
    # nothing of the robot's (MQTT 5 delivers one copy per matching subscription, so the control may come twice)
    assert {(t, p) for t, p in press.messages} == {("spBv1.0/g1/NCMD/press-edge", b"rebirth")}


def test_the_platform_ingests_with_the_rules_on(broker: Broker, clients: list[Client], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOOR_MQTT_PASSWORD_SHOPFLOOR", SECRETS["shopfloor"])  # not in plant.yaml
    press = login(broker, clients, "press-edge")
    assert not press.subscribe("spBv1.0/STATE/+").is_failure
    platform = Platform(broker.config, data_dir=tmp_path / "data", broker_url=broker.url)
    platform.start()
    try:
        # the platform may publish its STATE (a device reads it) ...
        wait_for(lambda: any(b'"online": true' in p or b'"online":true' in p
                             for p in press.payloads("spBv1.0/STATE/shopfloor")), 30)
        # ... and its subscriptions were granted: a JSON device's sample is stored ...
        oven = login(broker, clients, "oven")
        oven.publish("shopfloor/json/oven", encode_json({"temp": 21.5}, int(time.time() * 1000)))
        temp = platform.tag_index.id_of("plant/a/l/oven/temp")
        wait_for(lambda: platform.historian.latest([temp]).value.tolist() == [21.5], 30)
        # ... and a Sparkplug edge node's session (NDEATH will, births, DDATA, its command subscriptions)
        node = EdgeNode(broker.host, broker.port, "g1", "press-edge", username="press-edge",
                        password=SECRETS["press-edge"])
        node.add_device("press", [MetricSpec("force", DataType.Double, 1)])
        node.start(20)
        try:
            # after the DBIRTH, which carries the metric as never published (null), a millisecond later at least
            node.publish_device_data("press", int(time.time() * 1000) + 1, [42.0])
            force = platform.tag_index.id_of("plant/a/l/press/force")
            wait_for(lambda: platform.historian.latest([force]).value.tolist() == [42.0], 30)
        finally:
            node.stop()
        assert platform.ingest.counts["dead letters"] == 0
    finally:
        platform.stop()
