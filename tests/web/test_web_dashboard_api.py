"""The dashboard's endpoints against a running platform: values written through the historian writer (the
path every connector takes), read back as equipment summaries, tag rows and data health."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.connectors.mqtt.sparkplug import encode_birth
from shopfloor.core.samples import Quality, SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for
from tests.web.test_web_summary import PLANT

MILL = "s/a/l/c1/mill"
GATEWAY = "s/a/l/gateway"
MIN_NS = 60_000_000_000


@pytest.fixture
def plant(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[Platform, httpx.Client]]:
    platform = Platform(parse_plant_config(PLANT), data_dir=tmp_path / "data", broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield platform, http


def write(platform: Platform, rows: list[tuple[str, int, float, int]]) -> None:
    ids = [platform.tag_index.id_of(path) for path, *_ in rows]
    batch = SampleBatch.of(ids, [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    assert platform.writer.submit(batch, timeout=5)
    assert platform.writer.flush(10)


def test_overview_states_counters_staleness_and_quality(plant: tuple[Platform, httpx.Client]) -> None:
    platform, http = plant
    now = time.time_ns()
    good, bad = int(Quality.GOOD), int(Quality.BAD)
    write(platform, [
        (f"{MILL}/status", now - 30 * MIN_NS, 0, good),
        (f"{MILL}/status", now - 20 * MIN_NS, 0, good),  # repeated: not a change
        (f"{MILL}/status", now - 10 * MIN_NS, 1, good),
        (f"{MILL}/parts", now - 90 * MIN_NS, 7, good),  # before the window and its lookback: not read
        (f"{MILL}/parts", now - 40 * MIN_NS, 10, good),
        (f"{MILL}/parts", now - 20 * MIN_NS, 30, good),
        (f"{MILL}/parts", now - 10 * MIN_NS, 2, good),  # the device restarted and counts again
        (f"{MILL}/parts", now - 1 * MIN_NS, 12, good),
        (f"{MILL}/a", now - 1_000_000_000, 4.5, good),
        (f"{MILL}/b", now - 1_000_000_000, float("nan"), bad),
        (f"{GATEWAY}/wifi_rssi", now - 10 * MIN_NS, -67, good),
    ])
    body: dict[str, Any] = http.get("/api/dashboard/overview", params={"window": "1h", "stale_s": 300}).json()
    assert body["window_ms"] == 3_600_000 and body["stale_after_ms"] == 300_000
    eq = {e["path"]: e for e in body["equipment"]}
    mill, gateway = eq[MILL], eq[GATEWAY]

    assert mill["state"]["label"] == "Idle" and mill["state"]["quality"] == "good"
    assert mill["state"]["since_ms"] == (now - 10 * MIN_NS) // 1_000_000
    assert mill["state"]["timeline"]["value"] == [0.0, 1.0]
    assert mill["state"]["timeline"]["t"][1] == (now - 10 * MIN_NS) // 1_000_000
    (parts,) = mill["counters"]
    assert parts["value"] == 12 and parts["increase"] == 20 + 0 + 10
    assert parts["per_hour"] == pytest.approx(30 / (40 / 60), rel=0.01)  # the data covers the last 40 min
    assert [k["name"] for k in mill["key"]] == ["a", "b", "c", "d"]
    assert [k["quality"] for k in mill["key"]] == ["good", "bad", None, None]
    assert mill["key"][1]["value"] is None
    assert mill["quality"] == {"good": 3, "uncertain": 0, "bad": 1, "missing": 5}
    assert not mill["stale"]
    assert gateway["stale"] and gateway["state"] is None and gateway["counters"] == []

    assert body["states"] == {"Idle": 1}
    assert body["counters"] == [
        {"name": "parts", "unit": "", "description": "", "increase": 30.0, "per_hour": parts["per_hour"],
         "equipment": 1},
    ]
    assert body["stale_equipment"] == 1
    assert body["quality"] == {"good": 4, "uncertain": 0, "bad": 1, "missing": 9}

    fresh = http.get("/api/dashboard/overview", params={"stale_s": 3600}).json()
    assert fresh["stale_equipment"] == 0
    assert http.get("/api/dashboard/overview", params={"window": "soon"}).status_code == 422
    assert http.get("/api/dashboard/overview", params={"window": "30d"}).status_code == 422
    assert http.get("/api/dashboard/overview", params={"stale_s": 0}).status_code == 422


def test_tag_rows_filter_by_text_asset_unit_and_quality(plant: tuple[Platform, httpx.Client]) -> None:
    platform, http = plant
    now = time.time_ns()
    write(platform, [
        (f"{MILL}/a", now, 1.0, int(Quality.GOOD)),
        (f"{MILL}/b", now, 2.0, int(Quality.UNCERTAIN)),
        (f"{GATEWAY}/wifi_rssi", now - 10 * MIN_NS, -70, int(Quality.GOOD)),
    ])

    def paths(**params: Any) -> list[str]:
        r = http.get("/api/dashboard/tags", params=params)
        assert r.status_code == 200, r.text
        return [t["tag"] for t in r.json()["tags"]]

    body = http.get("/api/dashboard/tags").json()
    assert body["total"] == 14 and len(body["tags"]) == 14
    row = next(t for t in body["tags"] if t["tag"] == f"{MILL}/b")
    assert row["quality"] == "uncertain" and row["value"] == 2.0 and row["equipment"] == MILL and not row["stale"]
    assert paths(quality="good") == [f"{MILL}/a", f"{GATEWAY}/wifi_rssi"]
    assert paths(quality="uncertain") == [f"{MILL}/b"]
    assert paths(quality="stale") == [f"{GATEWAY}/{n}" for n in ("wifi_rssi", "uptime", "margin", "link_rtt_ms",
                                                                 "backlog_samples")]
    assert len(paths(quality="missing")) == 11
    assert paths(q="RSSI") == [f"{GATEWAY}/wifi_rssi"]
    assert paths(unit="dB") == [f"{GATEWAY}/margin"]
    assert paths(asset="s/a/l/c1", unit="kW") == [f"{MILL}/a"]
    assert paths(asset="nowhere") == []
    assert http.get("/api/dashboard/tags", params={"quality": "great"}).status_code == 422


def test_health_page_ingest_rate_gateways_and_link_tags(
    plant: tuple[Platform, httpx.Client], mosquitto: Mosquitto
) -> None:
    platform, http = plant
    first = http.get("/api/dashboard/health").json()
    assert first["status"] == "ok" and first["ingest"]["rate_per_s"] is None  # one reading so far
    assert [t["name"] for t in first["link_tags"]] == ["wifi_rssi", "margin", "link_rtt_ms", "backlog_samples"]
    assert first["gateways"] == []

    edge = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dashboard-test-edge")
    edge.connect(mosquitto.host, mosquitto.port)
    edge.loop_start()
    try:
        birth = encode_birth(int(time.time() * 1000), 0, [], [], bdseq=0)
        edge.publish("spBv1.0/g/NBIRTH/n", birth, qos=1).wait_for_publish(5)
        gateways = wait_for(lambda: http.get("/api/dashboard/health").json()["gateways"])
    finally:
        edge.loop_stop()
        edge.disconnect()
    assert gateways[0]["name"] == "g/n" and gateways[0]["online"] and gateways[0]["births"] == 1

    write(platform, [(f"{MILL}/a", time.time_ns(), 1.0, int(Quality.GOOD))])
    time.sleep(1.05)
    write(platform, [(f"{MILL}/a", time.time_ns() + i, float(i), int(Quality.GOOD)) for i in range(99)])
    last = http.get("/api/dashboard/health").json()
    assert last["ingest"]["rows_committed"] >= 100
    assert last["ingest"]["rate_per_s"] > 0 and len(last["ingest"]["series"]["t"]) >= 1
    assert last["connectors"][0]["name"] == "mqtt"
