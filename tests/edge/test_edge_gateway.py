"""The gateway in this process against a real Mosquitto, a pymodbus device and the platform's Sparkplug host."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from asyncua import ua
from asyncua.server.server import Server
from edge_helpers import CountingPress, edge_yaml, plant_yaml
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.config import parse_plant_config
from shopfloor.connectors.mqtt.sparkplug import decode_payload, encode_rebirth_request
from shopfloor.core.net import free_port
from shopfloor.core.samples import Quality
from shopfloor.edge.config import parse_edge_config
from shopfloor.edge.gateway import EdgeGateway
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.waiting import wait_for

TAG = "s/a/l/press1/{}"
LINK = "s/a/l/edge1/{}"


@pytest.fixture
def platform(mosquitto: Mosquitto, press: CountingPress, tmp_path: Path) -> Iterator[Platform]:
    config = parse_edge_config(edge_yaml(press, mosquitto.url, str(tmp_path / "edge")))
    p = Platform(parse_plant_config(plant_yaml(config)), data_dir=tmp_path / "platform", broker_url=mosquitto.url)
    p.start()
    yield p
    p.stop()


def good_values(platform: Platform, path: str) -> list[float]:
    samples = platform.historian.raw(platform.tag_index.id_of(path), 0, 2**62)
    values: list[float] = samples.value[samples.quality == Quality.GOOD].tolist()
    return values


def test_samples_and_link_metrics_reach_the_platform(
    platform: Platform, mosquitto: Mosquitto, press: CountingPress, tmp_path: Path
) -> None:
    config = parse_edge_config(edge_yaml(press, mosquitto.url, str(tmp_path / "edge")))
    gateway = EdgeGateway(config)
    gateway.start()
    try:
        wait_for(lambda: len(good_values(platform, TAG.format("reads"))) >= 10, 20)
        reads = good_values(platform, TAG.format("reads"))
        assert reads[:10] == [float(v) for v in range(1, 11)]
        assert good_values(platform, TAG.format("force"))[:3] == [0.25, 0.5, 0.75]
        gateway.sample_link()
        wait_for(lambda: 1.0 in good_values(platform, LINK.format("link_up")), 10)
        wait_for(lambda: good_values(platform, LINK.format("link_rtt_ms")), 10)
        assert 0 < good_values(platform, LINK.format("link_rtt_ms"))[-1] < 1000
        assert good_values(platform, LINK.format("samples_read"))[-1] >= 20

        births = gateway.uplink.births
        asker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rebirth-asker")
        births_seen: list[bytes] = []
        asker.on_message = lambda c, u, msg: births_seen.append(bytes(msg.payload))
        asker.connect(mosquitto.host, mosquitto.port)
        asker.subscribe("spBv1.0/plant1/NBIRTH/edge1", qos=1)
        asker.loop_start()
        time.sleep(0.3)  # the subscription is in place before the rebirth is asked for
        asker.publish("spBv1.0/plant1/NCMD/edge1", encode_rebirth_request(int(time.time() * 1000)), qos=1)
        asker.publish("spBv1.0/plant1/NCMD/edge1", b"\xff\xff not protobuf", qos=1)
        wait_for(lambda: gateway.uplink.births == births + 1 and gateway.uplink.command_errors == 1, 10)
        wait_for(lambda: births_seen, 5)
        asker.loop_stop()
        asker.disconnect()
        birth = decode_payload(births_seen[0])
        assert birth.seq == 0 and birth.names is not None
        values = dict(zip(birth.names, birth.value.tolist(), strict=True))
        assert values["bdSeq"] == gateway.uplink.health()["bdseq"] and values["link_up"] == 1.0
        assert values["link_outage_s"] == 0.0 and values["samples_read"] > 0

        count = len(good_values(platform, TAG.format("reads")))
        wait_for(lambda: len(good_values(platform, TAG.format("reads"))) > count + 5, 10)
        sp = platform.ingest.health()["sparkplug"]
        node = next(n for n in sp["nodes"] if n["node"] == "edge1")  # type: ignore[index]
        assert node["seq_gaps"] == 0 and node["online"]
        health = gateway.health()
        assert health["status"] == "ok" and health["uplink"]["up"]  # type: ignore[index]
    finally:
        gateway.stop()
    reads = good_values(platform, TAG.format("reads"))
    assert reads == [float(v) for v in range(1, len(reads) + 1)]  # no gap, no repeat, rebirth included


def test_a_backlog_on_disk_is_sent_after_a_restart(
    platform: Platform, mosquitto: Mosquitto, press: CountingPress, tmp_path: Path
) -> None:
    nowhere = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens: the uplink stays down
    offline = EdgeGateway(parse_edge_config(edge_yaml(press, nowhere, str(tmp_path / "edge"))))
    offline.start()
    wait_for(lambda: offline.buffer.stats().samples >= 20, 10)
    uplink = offline.uplink
    offline.stop()
    assert not uplink.link.up and uplink.samples_acked == 0 and uplink.sessions == 0
    read_offline = press.count

    online = EdgeGateway(parse_edge_config(edge_yaml(press, mosquitto.url, str(tmp_path / "edge"))))
    online.start()
    try:
        wait_for(lambda: len(good_values(platform, TAG.format("reads"))) >= read_offline + 5, 20)
    finally:
        online.stop()
    reads = good_values(platform, TAG.format("reads"))
    assert reads[:read_offline] == [float(v) for v in range(1, read_offline + 1)]  # the backlog, in order
    assert reads == [float(v) for v in range(1, len(reads) + 1)]
    ts = platform.historian.raw(platform.tag_index.id_of(TAG.format("reads")), 0, 2**62).ts
    assert np.all(np.diff(ts) > 0)


def test_a_full_buffer_drops_the_oldest_and_counts_them(
    platform: Platform, mosquitto: Mosquitto, press: CountingPress, tmp_path: Path
) -> None:
    tiny = 40 * 21 / 2**20  # room for 40 samples
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    fast = edge_yaml(press, nowhere, str(tmp_path / "edge"), max_mb=tiny, poll_s=0.05)
    offline = EdgeGateway(parse_edge_config(fast))
    offline.start()
    wait_for(lambda: offline.buffer.stats().dropped_total >= 40, 15)
    stats = offline.buffer.stats()
    assert stats.bytes <= 40 * 21 and stats.samples >= 20
    offline.stop()

    online = EdgeGateway(parse_edge_config(edge_yaml(press, mosquitto.url, str(tmp_path / "edge"), max_mb=tiny)))
    online.start()
    try:
        assert online.buffer.stats().dropped_total >= 40  # the count survives the restart
        wait_for(lambda: len(good_values(platform, TAG.format("reads"))) >= 30, 20)
        online.sample_link()
        wait_for(lambda: max(good_values(platform, LINK.format("dropped_samples")) or [0]) >= 40, 10)
    finally:
        online.stop()
    reads = good_values(platform, TAG.format("reads"))
    first = int(reads[0])
    assert first > 1  # the oldest reads were dropped to make room ...
    assert reads == [float(v) for v in range(first, first + len(reads))]  # ... and the rest arrived, in order


def test_an_opcua_device_is_forwarded_with_its_source_timestamps(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """asyncua's server on a thread of its own; the gateway subscribes and forwards each change."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/edge-test/"

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    async def start_server() -> tuple[Server, Any]:
        server = Server()
        await server.init()
        server.set_endpoint(endpoint)
        idx = await server.register_namespace("urn:shopfloor:edge-test")
        robot = await server.nodes.objects.add_object(f"ns={idx};s=Robot", "Robot")
        torque = await robot.add_variable(f"ns={idx};s=Robot.Torque", "Torque", ua.Variant(1.5, ua.VariantType.Double))
        await server.start()
        return server, torque

    server, torque = run(start_server())
    extra = f"""\
  - name: robot1
    source: {{protocol: opcua, endpoint: "{endpoint}", publishing_interval_ms: 50, sampling_interval_ms: 20}}
    tags:
      - {{name: torque, address: "ns=2;s=Robot.Torque"}}
"""
    press = CountingPress().start()
    config = parse_edge_config(edge_yaml(press, mosquitto.url, str(tmp_path / "edge"), extra=extra))
    platform = Platform(parse_plant_config(plant_yaml(config)), data_dir=tmp_path / "platform",
                        broker_url=mosquitto.url)
    platform.start()
    gateway = EdgeGateway(config)
    gateway.start()
    path = "s/a/l/robot1/torque"
    try:
        wait_for(lambda: good_values(platform, path) == [1.5], 20)
        stamp = ua.DateTime(2026, 11, 22, 12, 0, 0, 123000, tzinfo=UTC)
        value = ua.DataValue(ua.Variant(2.25, ua.VariantType.Double), SourceTimestamp=stamp, ServerTimestamp=stamp)
        run(server.write_attribute_value(torque.nodeid, value))
        wait_for(lambda: good_values(platform, path) == [2.25, 1.5], 10)  # ordered by time: the new one is older
        ts = platform.historian.raw(platform.tag_index.id_of(path), 0, 2**62).ts
        assert int(ts[0]) == int(stamp.timestamp() * 1000) * 1_000_000
        wait_for(lambda: gateway.health()["status"] == "ok", 10)
        robot = next(d for d in gateway.health()["devices"] if d["protocol"] == "opcua")  # type: ignore[attr-defined]
        assert robot["state"] == "connected"
    finally:
        gateway.stop()
        platform.stop()
        press.stop()
        run(server.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
