"""The planner as a platform service, on a real broker: MES work orders over MQTT are planned, a CNC state
going to down on the bus triggers a repair that keeps started operations, a rush order is inserted, bad
messages become dead letters, and the API serves the plan against the actual. Every plan passes the checker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.api.app import create_app
from shopfloor.apps.scheduling.service import PlantScheduler
from shopfloor.platform import Platform
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.machines import DOWN, RUNNING
from shopfloor.sim.schedule_ext import ScheduleExtension
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for
from tests.apps.scheduling.scheduling_testkit import assert_valid

TOPIC = "shopfloor/mes/events"
LINE = "virtual-factory/machining/line1"


@pytest.fixture
def platform(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Platform]:
    config = VirtualFactory(seed=1, extensions=[ScheduleExtension(improve_time_limit_s=0.5)]).plant_config()
    p = Platform(config, data_dir=tmp_path, broker_url=mosquitto.url)  # the config's section starts the planner
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-mes", protocol=mqtt.MQTTv311)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def send(client: mqtt.Client, payload: Any) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.publish(TOPIC, data, qos=1).wait_for_publish(10)


def work_order(number: str, product: str, quantity: float, **extra: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"kind": "work_order", "number": number, "product": product, "quantity": quantity,
            "due_ms": now + 3_600_000, "ts_ms": now, **extra}


def service_of(platform: Platform) -> PlantScheduler:
    service = platform.service("scheduling")
    assert isinstance(service, PlantScheduler)
    return service


def assert_plan_valid(service: PlantScheduler) -> None:
    planner = service._planner
    assert planner is not None
    with service._lock:
        plan = planner.plan
    assert plan is not None
    assert_valid(plan.problem, plan.schedule)


def set_state(platform: Platform, machine: str, cell: int, code: int) -> None:
    platform.write([f"{LINE}/cell{cell}/{machine}/state"], [time.time_ns()], [float(code)])


def test_orders_breakdown_and_rush_order_on_the_bus(platform: Platform, publisher: mqtt.Client) -> None:
    service = service_of(platform)
    wait_for(lambda: service.connected, timeout=15)
    for cell in (1, 2, 3):
        set_state(platform, f"cnc{cell}", cell, RUNNING)
    send(publisher, [work_order(f"WO-{i}", p, q) for i, (p, q) in
                     enumerate([("HOUSING", 20), ("SHAFT", 30), ("FLANGE", 25), ("HOUSING", 10), ("GEAR", 12)])])
    view = wait_for(lambda: (v := service.view())["plan"] and len(v["orders"]) == 5 and v, timeout=20)
    assert_plan_valid(service)
    assert {o["job"] for o in view["operations"]} == {f"WO-{i}" for i in range(5)}
    gear = [o for o in view["operations"] if o["job"] == "WO-4"]  # no routing: one operation on any CNC
    assert len(gear) == 1

    # wait until something has run on cnc1 for a while in the plan (plans are in whole seconds), so that the
    # breakdown interrupts it, and until the background improvement is done
    def running_on_cnc1() -> dict[str, Any] | None:
        v = service.view()
        if service.improving or v["events"][-1]["trigger"] not in ("orders", "improved"):
            return None
        return next((o for o in v["operations"] if o["machine"] == "cnc1"
                     and o["start_ms"] + 1500 < v["now_ms"] < o["end_ms"] - 5000), None)

    first = wait_for(running_on_cnc1, timeout=20, interval=0.2)
    before = {(o["job"], o["index"]): o for o in service.view()["operations"]}
    set_state(platform, "cnc1", 1, DOWN)
    event = wait_for(lambda: next((e for e in service.view()["events"] if e["trigger"] == "machine_down"), None),
                     timeout=20)
    assert event["valid"] and event["solve_ms"] > 0
    assert f"{first['job']}/{first['index']}" in event["disruption"]["interrupted"]
    assert_plan_valid(service)
    view = service.view()
    down_start, down_end = view["downtime"]["cnc1"][-1]
    for o in view["operations"]:
        old = before[(o["job"], o["index"])]
        if old["start_ms"] < event["ts_ms"] and old["machine"] != "cnc1":
            assert (o["start_ms"], o["machine"]) == (old["start_ms"], old["machine"])  # started: stays
        if o["machine"] == "cnc1" and o["end_ms"] > down_start:
            assert o["start_ms"] >= down_end  # nothing on the broken machine until its planned repair
    assert view["actual"]["states"]["cnc1"][-1][2] == DOWN

    send(publisher, work_order("WO-RUSH", "SHAFT", 3, priority=10))
    rush = wait_for(lambda: next((e for e in service.view()["events"] if e["trigger"] == "rush_order"), None),
                    timeout=20)
    assert rush["valid"] and rush["disruption"]["replanned"] > 0
    assert_plan_valid(service)
    view = service.view()
    rush_ops = [o for o in view["operations"] if o["job"] == "WO-RUSH"]
    assert len(rush_ops) == 2 and rush_ops[0]["start_ms"] >= rush["ts_ms"] - 1000
    assert all(o["start_ms"] >= down_end for o in rush_ops if o["machine"] == "cnc1")  # cnc1 is still down

    set_state(platform, "cnc1", 1, RUNNING)
    wait_for(lambda: any(e["trigger"] == "machine_up" for e in service.view()["events"]), timeout=20)
    assert_plan_valid(service)
    health: Any = platform.health()
    assert health["services"]["scheduling"]["plan_version"] >= 4


def test_produced_events_are_the_actual_and_bad_messages_dead_letters(
    platform: Platform, publisher: mqtt.Client
) -> None:
    service = service_of(platform)
    wait_for(lambda: service.connected, timeout=15)
    send(publisher, work_order("WO-A", "FLANGE", 4))
    wait_for(lambda: service.view()["plan"], timeout=20)
    now = int(time.time() * 1000)
    send(publisher, [{"kind": "produced", "serial": f"SN-{i}", "product": "FLANGE", "work_order": "WO-A",
                      "equipment": f"{LINE}/cell2/cnc2", "ts_ms": now + i * 1000} for i in range(3)])
    produced = wait_for(lambda: service.view()["actual"]["produced"], timeout=20)
    assert produced == [{"work_order": "WO-A", "machine": "cnc2", "first_ms": now, "last_ms": now + 2000,
                         "count": 3}]
    assert next(o for o in service.view()["orders"] if o["number"] == "WO-A")["produced"] == 3
    send(publisher, b"{not json")
    send(publisher, [work_order("WO-B", "FLANGE", -1), work_order("WO-C", "FLANGE", 2)])
    wait_for(lambda: service.rejected == 2, timeout=20)
    letters = platform.dead_letters.list(source="scheduling")
    assert {"quantity" in d.reason or "JSON" in d.reason for d in letters} == {True}
    wait_for(lambda: any(o["number"] == "WO-C" for o in service.view()["orders"]), timeout=20)  # the good one
    assert_plan_valid(service)


def test_api_serves_the_plan_and_takes_orders(platform: Platform) -> None:
    service = service_of(platform)
    with ApiServer(create_app(platform, manage_lifecycle=False)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.post("/api/scheduling/plant/orders", json={"number": "WO-9", "product": "HOUSING", "quantity": 5})
        assert r.status_code == 202, r.text
        assert r.json() == {"queued": "WO-9", "rush": False}
        view = wait_for(lambda: (v := http.get("/api/scheduling/plant").json())["plan"] and v, timeout=20)
        assert [o["number"] for o in view["orders"]] == ["WO-9"]
        assert len(view["operations"]) == 2 and view["kpis"]["finish_ms"] > view["now_ms"]
        assert set(view["kpis"]["utilisation"]) == {"cnc1", "cnc2", "cnc3"}
        assert http.get("/api/scheduling/plant/events").json()[0]["trigger"] == "orders"
        bad = http.post("/api/scheduling/plant/orders", json={"number": "WO-x", "product": "HOUSING", "quantity": 0})
        assert bad.status_code == 422
    assert_plan_valid(service)
