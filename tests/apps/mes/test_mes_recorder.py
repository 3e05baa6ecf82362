"""The MES recorder end to end: events over a real Mosquitto broker into the record, bad events into the dead
letters with their reasons and counted, duplicates (QoS 1 redelivery) recorded once, the service running on;
and the same through POST /api/mes/events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.exc import OperationalError

from shopfloor.api import create_app
from shopfloor.apps.mes import genealogy
from shopfloor.apps.mes.ingest import MesService
from shopfloor.apps.mes.verify import verify
from shopfloor.config import parse_plant_config
from shopfloor.core.samples import SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

CNC = """\
                  tags:
                    - {name: state, type: enum, states: {0: running, 1: idle, 2: down, 3: setup}}
                    - {name: parts_good, type: int64}
                    - {name: parts_scrap, type: int64}
"""
PLANT = f"""\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l1
          cells:
            - name: c1
              equipment:
                - name: cnc1
                  source: {{protocol: sparkplug, group: g, node: n, device: cnc1}}
{CNC}            - name: c2
              equipment:
                - name: robot1
                  source: {{protocol: sparkplug, group: g, node: n, device: robot1}}
                  tags:
                    - {{name: state, type: enum, states: {{0: running, 1: idle, 2: down, 3: setup}}}}
mes:
  products:
    - {{code: SHAFT, name: Drive shaft, gtin: "04012345000016"}}
  materials:
    - {{code: STEEL, name: Steel bar}}
  routings:
    - product: SHAFT
      steps: [{{name: turn, equipment: s/a/l1/c1/cnc1, pri_s: 48}}]
"""
CNC1, ROBOT = "s/a/l1/c1/cnc1", "s/a/l1/c2/robot1"
T = 1_767_261_600_000  # 2026-01-01T10:00:00Z, ms

GOOD: list[dict[str, Any]] = [
    {"kind": "work_order", "number": "WO-1", "product": "SHAFT", "quantity": 10, "due_ms": T + 3_600_000,
     "release_ms": T, "ts_ms": T},
    {"kind": "logon", "equipment": CNC1, "operator": "alice", "ts_ms": T + 1000},
    {"kind": "material_load", "equipment": CNC1, "lot": "STEEL-1", "material": "STEEL", "quantity": 50,
     "ts_ms": T + 2000},
    {"kind": "state", "equipment": CNC1, "state": "running", "reason": None, "ts_ms": T + 3000},
    {"kind": "produced", "serial": "SN-1", "product": "SHAFT", "work_order": "WO-1", "equipment": CNC1,
     "parameters": {"cycle_time_s": 48.2}, "ts_ms": T + 51_000},
    {"kind": "produced", "serial": "SN-2", "work_order": "WO-1", "equipment": CNC1, "quality": "scrap",
     "ts_ms": T + 99_000},
    {"kind": "scrap", "serial": "SN-3", "work_order": "WO-1", "equipment": CNC1, "reason": "chatter marks",
     "ts_ms": T + 147_000},
    {"kind": "inspection", "serial": "SN-1", "characteristic": "diameter", "value": 20.004, "lower": 19.98,
     "upper": 20.02, "unit": "mm", "equipment": CNC1, "ts_ms": T + 52_000},
    {"kind": "packed", "lot": "BOX-1", "product": "SHAFT", "serials": ["SN-1"], "equipment": ROBOT,
     "ts_ms": T + 60_000},
    {"kind": "state", "equipment": CNC1, "state": "down", "reason": "breakdown", "ts_ms": T + 150_000},
    {"kind": "order_status", "number": "WO-1", "status": "done", "ts_ms": T + 160_000},
    {"kind": "logoff", "equipment": CNC1, "operator": "alice", "ts_ms": T + 170_000},
]
# Each bad message and a phrase its dead letter's reason must contain.
BAD: list[tuple[bytes, str]] = [
    (b"{not json", "not JSON"),
    (b"[]", "empty array"),
    (b'{"ts_ms": 1}', "needs 'kind'"),
    (orjson.dumps({"kind": "teleported", "ts_ms": T}), "unknown kind 'teleported'"),
    (orjson.dumps({"kind": "produced", "equipment": CNC1, "ts_ms": T}), "serial: Field required"),
    (orjson.dumps({"kind": "state", "equipment": "s/a/l1/c9/cnc9", "state": "down", "ts_ms": T}),
     "unknown equipment 's/a/l1/c9/cnc9'"),
    (orjson.dumps({"kind": "produced", "serial": "SN-9", "work_order": "WO-404", "equipment": CNC1, "ts_ms": T}),
     "no work order 'WO-404'"),
    (orjson.dumps({"kind": "inspection", "serial": "SN-404", "characteristic": "d", "value": 1.0, "ts_ms": T}),
     "no serial or lot 'SN-404'"),
    (orjson.dumps({"kind": "material_load", "equipment": CNC1, "lot": "LOT-404", "ts_ms": T}),
     "give 'material' and 'quantity'"),
    (orjson.dumps({"kind": "work_order", "number": "WO-2", "product": "NOPE", "quantity": 5, "ts_ms": T}),
     "no product 'NOPE'"),
    (orjson.dumps({"kind": "state", "equipment": CNC1, "state": "exploded", "ts_ms": T}), "state: Input should be"),
]


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Mosquitto, httpx.Client]]:
    data = tmp_path_factory.mktemp("mes-recorder") / "data"
    with Mosquitto() as broker:
        platform = Platform(parse_plant_config(PLANT), data_dir=data, broker_url=broker.url)
        with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            yield platform, broker, http


def _publish(broker: Mosquitto, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-line-controller")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish("shopfloor/mes/events", p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _service(platform: Platform) -> MesService:
    service = platform.service("mes")
    assert isinstance(service, MesService)
    return service


def test_recorder_over_mqtt(plant: tuple[Platform, Mosquitto, httpx.Client]) -> None:
    platform, broker, http = plant
    service = _service(platform)
    assert service.master_data_added == {"products": 1, "materials": 1, "routings": 1}
    # The good events as one array, the bad ones each on its own, then one more good one: it keeps going.
    late = {"kind": "state", "equipment": CNC1, "state": "running", "ts_ms": T + 200_000}
    _publish(broker, [orjson.dumps(GOOD), *(b for b, _ in BAD), orjson.dumps(late)])
    # "messages" counts a message as it arrives, "recorded" once its events are in: wait for the last one's
    wait_for(lambda: service.counts["messages"] >= 2 + len(BAD) and service.counts["recorded"] >= len(GOOD) + 1,
             timeout=30)
    assert service.counts["recorded"] == len(GOOD) + 1
    assert service.counts["rejected"] == len(BAD)
    health = http.get("/health").json()["services"]["mes"]
    assert health["state"] == "connected"
    assert health["recorded"] == len(GOOD) + 1 and health["rejected"] == len(BAD)
    assert health["by_kind"]["produced"] == 2 and health["by_kind"]["scrap"] == 1

    reasons = [d.reason for d in platform.dead_letters.list(source="mes")]
    assert len(reasons) == len(BAD)
    for _, phrase in BAD:
        assert any(phrase in r for r in reasons), (phrase, reasons)

    mes = service.mes
    assert mes is not None
    tree = genealogy.trace(mes.engine, "BOX-1", "backward").as_dict()
    codes = {n["code"] for n in tree["nodes"]}
    assert codes == {"BOX-1", "SN-1", "STEEL-1"}  # the box, its shaft, the lot loaded at cnc1 when it was made
    sn1 = next(n for n in tree["nodes"] if n["code"] == "SN-1")
    made = next(e for e in sn1["events"] if e["kind"] == "produced")
    assert made["operator"] == "alice" and made["equipment"] == CNC1
    scrap = genealogy.trace(mes.engine, "SN-3", "backward").as_dict()
    made3 = next(e for n in scrap["nodes"] if n["code"] == "SN-3" for e in n["events"] if e["kind"] == "produced")
    assert made3["payload"]["quality"] == "scrap" and made3["payload"]["reason"] == "chatter marks"
    forward = {n["code"] for n in genealogy.trace(mes.engine, "STEEL-1", "forward").as_dict()["nodes"]}
    assert forward == {"STEEL-1", "SN-1", "SN-2", "SN-3", "BOX-1"}  # the recall scope of the lot

    order = http.get("/api/mes/orders").json()[0]
    assert (order["number"], order["status"], order["good"], order["scrap"]) == ("WO-1", "done", 1.0, 2.0)
    assert order["due_ms"] == T + 3_600_000 and order["operations"][0]["equipment"] == CNC1
    recent = http.get("/api/mes/serials", params={"limit": 2}).json()
    assert [r["code"] for r in recent] == ["SN-3", "SN-2"] and recent[0]["quality"] == "scrap"

    # QoS 1 may deliver again: the same events are recognised and recorded once.
    _publish(broker, [orjson.dumps(GOOD)])
    wait_for(lambda: service.counts["duplicates"] >= len(GOOD), timeout=30)
    assert service.counts["recorded"] == len(GOOD) + 1
    service.mes.log.seal()
    assert verify(mes.engine, mes.key).ok


def test_post_events(plant: tuple[Platform, Mosquitto, httpx.Client]) -> None:
    platform, _, http = plant
    t = T + 3_600_000
    ok = http.post("/api/mes/events", content=orjson.dumps([
        {"kind": "work_order", "number": "WO-API", "product": "SHAFT", "quantity": 2, "ts_ms": t},
        {"kind": "produced", "serial": "SN-API", "work_order": "WO-API", "equipment": CNC1, "ts_ms": t + 60_000},
    ]))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"recorded": 2, "duplicates": 0, "rejected": []}
    again = http.post("/api/mes/events", content=orjson.dumps(
        {"kind": "produced", "serial": "SN-API", "work_order": "WO-API", "equipment": CNC1, "ts_ms": t + 60_000}))
    assert again.json() == {"recorded": 0, "duplicates": 1, "rejected": []}
    before = len(platform.dead_letters.list(source="mes"))
    bad = http.post("/api/mes/events", content=orjson.dumps([
        {"kind": "logon", "equipment": CNC1, "operator": "bob", "ts_ms": t + 61_000},
        {"kind": "produced", "serial": "SN-API", "work_order": "WO-API", "equipment": CNC1, "ts_ms": t + 99_000},
    ]))
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert detail["recorded"] == 1 and detail["rejected"][0]["index"] == 1
    assert "event 2 of 2: produced: 'SN-API' was produced already" in detail["rejected"][0]["reason"]
    assert len(platform.dead_letters.list(source="mes")) == before + 1
    assert http.post("/api/mes/events", content=b"{oops").status_code == 422


def test_production_view_measures_from_the_first_state(plant: tuple[Platform, Mosquitto, httpx.Client]) -> None:
    """A shift that began before anything was recorded is measured from the first recorded state."""
    platform, _, http = plant
    t0 = (T + 7_200_000) * 1_000_000  # 12:00, in the 06:00-14:00 shift
    minute = 60 * 10**9
    rows = [(f"{CNC1}/state", t0, 0.0), (f"{CNC1}/state", t0 + 20 * minute, 2.0),
            (f"{CNC1}/parts_good", t0, 0.0), (f"{CNC1}/parts_good", t0 + 20 * minute, 25.0)]
    ids = [platform.tag_index.id_of(p) for p, _, _ in rows]
    assert platform.writer.submit(SampleBatch.of(ids, [r[1] for r in rows], [r[2] for r in rows]), timeout=5)
    assert platform.writer.flush(10)
    end_ms = (t0 + 30 * minute) // 1_000_000
    body = http.get("/api/mes/production", params={"hours": 2, "end": str(end_ms)}).json()
    assert body["asset"] == "s/a/l1" and body["machines"] == [CNC1] and body["pri_s"] == {CNC1: 48.0}
    (shift,) = body["shifts"]
    assert shift["shift"] == "2026-01-01 A" and shift["measured_from_ns"] == t0
    assert shift["availability"] == pytest.approx(20 / 30)  # running 20 of the 30 minutes measured
    assert shift["effectiveness"] == pytest.approx(48 * 25 / 1200) and shift["GQ"] == 25
    assert shift["pareto"][0]["reason"] == "down" and shift["pareto"][0]["seconds"] == pytest.approx(600)


def test_posting_events_needs_an_operator(mosquitto: Mosquitto, tmp_path: Path) -> None:
    platform = Platform(parse_plant_config(PLANT + "auth: {enabled: true}\n"), data_dir=tmp_path,
                        broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server, httpx.Client(base_url=server.url) as http:
        platform.users.add_user("vera", "viewer-pw!", "viewer")
        platform.users.add_user("otto", "operator-pw", "operator")
        viewer = {"Authorization": f"Bearer {platform.users.create_token('vera')[0]}"}
        operator = {"Authorization": f"Bearer {platform.users.create_token('otto')[0]}"}
        event = orjson.dumps({"kind": "logon", "equipment": CNC1, "operator": "otto", "ts_ms": T})
        assert http.post("/api/mes/events", content=event).status_code == 401
        refused = http.post("/api/mes/events", content=event, headers=viewer)
        assert refused.status_code == 403 and "needs role operator" in refused.json()["detail"]
        assert http.get("/api/mes/serials", headers=viewer).status_code == 200
        ok = http.post("/api/mes/events", content=event, headers=operator)
        assert ok.status_code == 200 and ok.json()["recorded"] == 1


def test_database_failure_is_retried_and_a_bug_is_dead_lettered(
    plant: tuple[Platform, Mosquitto, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    platform, broker, _ = plant
    service = _service(platform)
    assert service.recorder is not None
    record = service.recorder.record
    calls: list[str] = []

    def flaky(ev: Any) -> bool:
        calls.append(ev.kind)
        if len(calls) <= 2:  # the database is locked twice: the message waits, unacknowledged, and is retried
            raise OperationalError("INSERT ...", {}, Exception("database is locked"))
        if ev.kind == "logoff":
            raise ValueError("a bug")
        return record(ev)

    monkeypatch.setattr(service.recorder, "record", flaky)
    before = dict(service.counts)
    t = T + 7_200_000
    _publish(broker, [orjson.dumps([
        {"kind": "logon", "equipment": CNC1, "operator": "rita", "ts_ms": t},
        {"kind": "logoff", "equipment": CNC1, "operator": "rita", "ts_ms": t + 1000},
    ])])
    wait_for(lambda: service.counts["rejected"] == before["rejected"] + 1, timeout=30)
    assert service.counts["retries"] == before.get("retries", 0) + 2 and len(calls) == 4  # 2 failed, then both
    assert service.counts["messages"] == before["messages"] + 1
    assert service.counts["recorded"] == before["recorded"] + 1  # the log-on, once
    reason = platform.dead_letters.list(source="mes", limit=1)[0].reason
    assert reason == "event 2 of 2: recorder error: ValueError('a bug')"
    assert service.health()["state"] == "connected"
