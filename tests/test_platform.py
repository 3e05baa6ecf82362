"""End to end through a real broker: known payloads in, exactly those values out of the API.

Acceptance of the platform core: Sparkplug B and JSON payloads published to a
real Mosquitto come back exactly through the HTTP API; a malformed payload lands
in the dead letters and the next good one is still ingested; a restart keeps the
history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from shopfloor.api import create_app
from shopfloor.client import ShopfloorClient
from shopfloor.config import parse_plant_config
from shopfloor.connectors.mqtt.jsonfmt import encode_json
from shopfloor.connectors.mqtt.sparkplug import DataType, MetricSpec, encode_birth, encode_data
from shopfloor.core.samples import SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

PLANT = """\
site:
  name: plant
  areas:
    - name: area1
      lines:
        - name: line1
          cells:
            - name: cell1
              equipment:
                - name: press
                  source: {protocol: sparkplug, group: g1, node: edge1, device: press}
                  tags:
                    - {name: force, unit: kN, range: [0, 500]}
                    - {name: strokes, type: int32}
                    - {name: guard_closed, type: bool}
                    - {name: state, type: enum, states: {0: running, 1: idle, 2: down, 3: setup}}
          equipment:
            - name: meter
              source: {protocol: json, device: meter-press}
              tags:
                - {name: power, unit: kW, address: active_power}
                - {name: energy, unit: kWh}
"""
PRESS = "plant/area1/line1/cell1/press"
METER = "plant/area1/line1/meter"
METRICS = [
    MetricSpec("force", DataType.Double, 1),
    MetricSpec("strokes", DataType.Int32, 2),
    MetricSpec("guard_closed", DataType.Boolean, 3),
    MetricSpec("state", DataType.Int32, 4),
    MetricSpec("unconfigured_metric", DataType.Float, 5),
]
T0 = 1_763_800_000_000  # ms


class Publisher:
    """A hand-driven edge node: every byte it sends is chosen by the test."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-edge")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.seq = 0

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def births(self) -> None:
        self.seq = 0
        self.send("spBv1.0/g1/NBIRTH/edge1", encode_birth(T0, self.next_seq(), [], [], bdseq=0))
        self.send(
            "spBv1.0/g1/DBIRTH/edge1/press",
            encode_birth(T0, self.next_seq(), METRICS, [100.0, 7, True, 1, 0.5]),
        )

    def data(self, ts_ms: list[int], aliases: list[int], values: list[float]) -> None:
        types = np.array([next(m.datatype for m in METRICS if m.alias == a) for a in aliases], np.uint32)
        payload = encode_data(
            max(ts_ms), self.next_seq(), np.array(aliases, np.uint64), types, np.array(values, np.float64),
            np.array(ts_ms, np.uint64),
        )
        self.send("spBv1.0/g1/DDATA/edge1/press", payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def plant(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[Platform, ShopfloorClient, Publisher]]:
    platform = Platform(parse_plant_config(PLANT), data_dir=tmp_path / "data", broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server, ShopfloorClient(server.url) as client:
        pub = Publisher(mosquitto)
        yield platform, client, pub
        pub.close()


def raw(client: ShopfloorClient, tag: str) -> dict[str, Any]:
    return client.history(tag, start=str(T0 - 60_000), end=str(T0 + 60_000), bucket="raw")


def test_known_payloads_come_back_exactly(plant: tuple[Platform, ShopfloorClient, Publisher]) -> None:
    _, client, pub = plant
    pub.births()
    pub.data([T0 + 1000, T0 + 1000, T0 + 1000], [1, 2, 3], [123.25, -42, 0])
    pub.data([T0 + 2000, T0 + 2000], [1, 4], [600.5, 2])  # 600.5 is above the range: uncertain
    pub.send("shopfloor/json/meter-press", encode_json({"active_power": 15.5, "energy": 1042.25}, T0 + 1500))
    pub.send("shopfloor/json/meter-press", b'[{"ts": 1763800002500, "values": {"active_power": null}}]')

    wait_for(lambda: len(raw(client, f"{PRESS}/force")["t"]) == 3)
    force = raw(client, f"{PRESS}/force")
    assert force["t"].astype(np.int64).tolist() == [T0, T0 + 1000, T0 + 2000]
    assert force["value"].tolist() == [100.0, 123.25, 600.5]
    assert force["quality"].tolist() == [192, 192, 64]
    strokes = raw(client, f"{PRESS}/strokes")
    assert strokes["value"].tolist() == [7.0, -42.0]
    assert raw(client, f"{PRESS}/guard_closed")["value"].tolist() == [1.0, 0.0]

    wait_for(lambda: len(raw(client, f"{METER}/power")["t"]) == 2)
    power = raw(client, f"{METER}/power")
    assert power["t"].astype(np.int64).tolist() == [T0 + 1500, T0 + 2500]
    assert power["value"][0] == 15.5 and np.isnan(power["value"][1])
    assert power["quality"].tolist() == [192, 0]
    assert raw(client, f"{METER}/energy")["value"].tolist() == [1042.25]

    latest = {v["tag"]: v for v in client.latest(asset=PRESS)}
    assert latest[f"{PRESS}/state"]["value"] == 2.0 and latest[f"{PRESS}/state"]["label"] == "down"
    assert latest[f"{PRESS}/force"]["quality"] == "uncertain"
    assert latest[f"{PRESS}/force"]["ts_ms"] == T0 + 2000

    buckets = client.history(f"{PRESS}/force", start=str(T0), end=str(T0 + 3000), bucket="10s")
    assert buckets["count"].tolist() == [3]
    assert buckets["max"].tolist() == [600.5] and buckets["first"].tolist() == [100.0]

    node = client.connectors()[0]["sparkplug"]["nodes"][0]
    assert (node["online"], node["births"], node["seq_gaps"]) == (True, 1, 0)
    assert client.connectors()[0]["sparkplug"]["unmapped_metrics"] == {"g1/edge1/press/unconfigured_metric": 1}
    assert client.health()["status"] == "ok"


def test_malformed_payload_goes_to_dead_letters_and_ingest_goes_on(
    plant: tuple[Platform, ShopfloorClient, Publisher],
) -> None:
    _, client, pub = plant
    pub.births()
    pub.send("spBv1.0/g1/DDATA/edge1/press", b"\x12\xff\xff\xff garbage")
    pub.send("shopfloor/json/meter-press", b"{not json")
    pub.send("shopfloor/json/unknown-device", encode_json({"x": 1.0}))
    pub.send("spBv1.0/g1/BOGUS/edge1", b"hello")
    pub.data([T0 + 5000], [1], [321.0])

    wait_for(lambda: 321.0 in raw(client, f"{PRESS}/force")["value"].tolist())
    letters = wait_for(lambda: (d := client.dead_letters()) and len(d) >= 4 and d)
    by_topic = {d["topic"]: d for d in letters}
    assert "decode error" in by_topic["spBv1.0/g1/DDATA/edge1/press"]["reason"]
    assert by_topic["spBv1.0/g1/DDATA/edge1/press"]["payload_hex"] == b"\x12\xff\xff\xff garbage".hex()
    assert "not JSON" in by_topic["shopfloor/json/meter-press"]["reason"]
    assert "unknown JSON device" in by_topic["shopfloor/json/unknown-device"]["reason"]
    assert by_topic["spBv1.0/g1/BOGUS/edge1"]["payload_text"] == "hello"
    assert "bad topic" in by_topic["spBv1.0/g1/BOGUS/edge1"]["reason"]
    assert client.health()["dead_letters"]["since_start"]["mqtt"] >= 4


def test_restart_keeps_history(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = parse_plant_config(PLANT)
    first = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
    with ApiServer(create_app(first)) as server, ShopfloorClient(server.url) as client:
        pub = Publisher(mosquitto)
        pub.births()
        for i in range(20):
            pub.data([T0 + 1000 * (i + 1)], [1], [float(i)])
        wait_for(lambda: len(raw(client, f"{PRESS}/force")["t"]) == 21)
        before = raw(client, f"{PRESS}/force")
        pub.close()
    second = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
    with ApiServer(create_app(second)) as server, ShopfloorClient(server.url) as client:
        after = raw(client, f"{PRESS}/force")
        assert after["t"].tolist() == before["t"].tolist()
        assert after["value"].tolist() == before["value"].tolist()
        assert client.latest([f"{PRESS}/force"])[0]["value"] == 19.0


def test_live_websocket_streams_committed_values(plant: tuple[Platform, ShopfloorClient, Publisher]) -> None:
    _, client, pub = plant
    pub.births()
    wait_for(lambda: len(raw(client, f"{PRESS}/force")["t"]) == 1)
    stream = client.live([f"{PRESS}/force"], timeout=10)
    hello = next(stream)
    assert hello == {"type": "hello", "tags": [f"{PRESS}/force"]}
    snapshot = next(stream)
    assert snapshot["value"] == [100.0]
    pub.data([T0 + 9000], [1, ], [77.5])
    update = next(stream)
    assert update["type"] == "samples" and update["tag"] == [f"{PRESS}/force"] and update["value"] == [77.5]
    assert update["t"] == [T0 + 9000]
    stream.close()


def test_sequence_gap_makes_the_platform_ask_for_a_rebirth_over_the_broker(
    plant: tuple[Platform, ShopfloorClient, Publisher],
) -> None:
    from shopfloor.connectors.mqtt.sparkplug import decode_payload, is_rebirth_request

    _, client, pub = plant
    commands: list[bytes] = []
    pub.client.on_message = lambda c, u, msg: commands.append(msg.payload)
    pub.client.subscribe("spBv1.0/g1/NCMD/edge1", qos=1)
    pub.births()
    pub.seq = 40  # the node skipped sequence numbers: messages were lost on the way
    pub.data([T0 + 7000], [1], [5.5])
    wait_for(lambda: commands)
    assert is_rebirth_request(decode_payload(commands[0]))
    node = client.connectors()[0]["sparkplug"]["nodes"][0]
    assert node["seq_gaps"] == 1 and node["rebirth_requests"] == 1
    wait_for(lambda: 5.5 in raw(client, f"{PRESS}/force")["value"].tolist())  # the data itself is kept


def test_openapi_docs_and_front_page(plant: tuple[Platform, ShopfloorClient, Publisher]) -> None:
    _, client, _ = plant
    http = client._http
    spec = http.get("/openapi.json").json()
    assert {"/health", "/api/assets", "/api/tags", "/api/latest", "/api/history", "/api/deadletters"} <= set(
        spec["paths"]
    )
    assert http.get("/docs").status_code == 200
    front = http.get("/", follow_redirects=False)  # the dashboard
    assert front.status_code == 200 and front.headers["content-type"].startswith("text/html")
    assert http.get("/api/history", params={"tag": "nope"}).status_code == 404
    assert http.get("/api/history", params={"tag": f"{PRESS}/force", "start": "yesterday"}).status_code == 422
    too_many_buckets = {"tag": f"{PRESS}/force", "bucket": "1ms", "start": "-1d"}
    assert http.get("/api/history", params=too_many_buckets).status_code == 422
    assert [c["name"] for c in client.assets(depth=1)["children"]] == ["area1"]
    assert [t["path"] for t in client.tags(unit="kW")] == [f"{METER}/power"]


def test_retention_drops_old_samples(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = parse_plant_config(PLANT + "historian: {retention_days: 1}\n")
    platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
    platform.start()
    try:
        tag_id = platform.tag_index.id_of(f"{PRESS}/force")
        now = time.time_ns()
        old, fresh = now - 3 * 86_400 * 10**9, now - 3_600 * 10**9
        platform.writer.submit(SampleBatch.of([tag_id, tag_id], [old, fresh], [1.0, 2.0]))
        assert platform.writer.flush(10)
        platform._housekeeping()
        assert platform.historian.raw(tag_id, 0, now).value.tolist() == [2.0]
    finally:
        platform.stop()


def test_the_same_platform_on_postgresql(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """plant.yaml's historian.url switches the store; ingest, history and restart behave the same."""
    from shopfloor.testing.postgres import PostgresServer, fresh_database

    with PostgresServer() as server, fresh_database(server) as url:
        config = parse_plant_config(PLANT + f"historian: {{backend: postgres, url: '{url}'}}\n")
        for run in range(2):  # the second run is a restart on the same database
            platform = Platform(config, data_dir=tmp_path / "data", broker_url=mosquitto.url)
            with ApiServer(create_app(platform)) as api, ShopfloorClient(api.url) as client:
                if run == 0:
                    pub = Publisher(mosquitto)
                    pub.births()
                    pub.data([T0 + 1000, T0 + 1000], [1, 2], [250.5, 9])
                    wait_for(lambda: len(raw(client, f"{PRESS}/force")["t"]) == 2)
                    pub.close()
                force = raw(client, f"{PRESS}/force")
                assert force["value"].tolist() == [100.0, 250.5]
                assert client.latest([f"{PRESS}/strokes"])[0]["value"] == 9.0
                assert not (tmp_path / "data" / "historian.duckdb").exists()
