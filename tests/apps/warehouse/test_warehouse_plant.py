"""The warehouse in a running platform, end to end through a real broker: production consumes line-side stock
(MES ``material_load`` events), the service orders a replenishment, a simulated AGV drives the VDA 5050 order and
the lot moves from the rack onto the line-side buffer; bad input becomes dead letters; the API refuses bad orders;
the Warehouse page shows the vehicles moving. Every path plan the fleet makes passes the solution checker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, expect

from shopfloor.api import create_app
from shopfloor.apps.warehouse.mapf import GridGraph, check_solution
from shopfloor.apps.warehouse.service import MES_TOPIC, WarehouseService
from shopfloor.config.schema import PlantConfig
from shopfloor.platform import Platform
from shopfloor.sim.agv import AgvExtension
from shopfloor.sim.extension import Broker
from shopfloor.testing.browser import CHROMIUM, CHROMIUM_ARGS
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for
from tests.web.conftest import OUTPUT

pytestmark = pytest.mark.timeout(600)  # the fixture's first plan compiles the solver on a cold numba cache

CNC1 = "virtual-factory/machining/line1/cell1/cnc1"
TIMEOUT = 300.0  # generous: on a cold numba cache the first plan compiles the solver (about a minute)


@dataclass
class Plant:
    url: str
    platform: Platform
    service: WarehouseService
    client: mqtt.Client
    messages: list[tuple[str, dict[str, Any]]]
    plans: list[int]


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    data_dir: Path = tmp_path_factory.mktemp("warehouse")
    ext = AgvExtension(7, speed_m_s=4.0, action_s=0.5, material_loads=False)
    plant_dict: dict[str, Any] = {"site": {"name": "virtual-factory", "areas": []}}
    ext.extend_plant(plant_dict)
    config = PlantConfig.model_validate(plant_dict)
    assert config.warehouse is not None
    plans: list[int] = []
    lock = threading.Lock()

    def checked(graph: GridGraph, starts: np.ndarray, goals: np.ndarray, paths: np.ndarray,
                blocked: list[tuple[int, int]]) -> None:
        check_solution(graph, starts, goals, paths).raise_if_invalid()
        with lock:
            plans.append(int(paths.shape[0]))

    messages: list[tuple[str, dict[str, Any]]] = []
    with Mosquitto() as broker:
        service = WarehouseService(config.warehouse, on_plan=checked)
        platform = Platform(config, data_dir=data_dir, broker_url=broker.url, services=[service])
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="warehouse-test")
        client.on_message = lambda c, u, m: messages.append((m.topic, json.loads(m.payload)))
        client.connect(broker.host, broker.port)
        client.subscribe("uagv/v2/+/+/order")
        client.subscribe("uagv/v2/+/+/connection")
        client.loop_start()
        server = ApiServer(create_app(platform)).start(timeout=60)
        ext.start(Broker(broker.host, broker.port))
        try:
            wait_for(lambda: service.health()["vehicles_online"] == 3, timeout=TIMEOUT)
            # the first plan (everyone home) loads or, on a cold cache, compiles the solver's kernels
            wait_for(lambda: service.snapshot()["counts"].get("plans", 0) >= 1, timeout=TIMEOUT)
            yield Plant(server.url, platform, service, client, messages, plans)
        finally:
            ext.stop()
            server.stop()
            client.loop_stop()
            client.disconnect()


def stock(plant: Plant, location: str) -> float:
    r = httpx.get(f"{plant.url}/api/warehouse/stock", params={"location": location}, timeout=30)
    r.raise_for_status()
    return float(sum(row["quantity"] for row in r.json()))


def test_consumption_triggers_a_replenishment_that_an_agv_delivers(plant: Plant) -> None:
    rack_before = stock(plant, "R-05")
    assert stock(plant, "LS-CNC1") == 3  # the buffers start at their minimum
    event = {"kind": "material_load", "equipment": CNC1, "lot": "LOT-W-0007", "material": "BAR-C45", "quantity": 1,
             "ts_ms": int(time.time() * 1000)}
    plant.client.publish(MES_TOPIC, json.dumps([event, {"kind": "produced", "serial": "SN-1", "ts_ms": 1}]), qos=1)
    wait_for(lambda: stock(plant, "LS-CNC1") == 2, timeout=30)  # below min 3, so ...
    tasks = wait_for(lambda: [t for t in httpx.get(f"{plant.url}/api/warehouse/tasks", timeout=30).json()
                              if t["to_location"] == "LS-CNC1"], timeout=30)
    assert tasks[0]["order"].startswith("REP-") and tasks[0]["quantity"] == 4  # ... up to max 6
    assert tasks[0]["from_location"] == "R-05" and tasks[0]["lot"] == "LOT-W-0001"  # the oldest lot in storage
    vehicle = wait_for(lambda: httpx.get(f"{plant.url}/api/warehouse/tasks", timeout=30).json()[0]["vehicle"],
                       timeout=TIMEOUT)
    wait_for(lambda: stock(plant, "LS-CNC1") == 6, timeout=TIMEOUT)
    assert stock(plant, "R-05") == rack_before - 4
    assert stock(plant, f"AGV:{vehicle}") == 0
    reasons = [m["reason"] for m in httpx.get(f"{plant.url}/api/warehouse/moves", params={"limit": 10},
                                              timeout=30).json()]
    assert f"task {tasks[0]['id']}: picked by {vehicle}" in reasons
    assert f"task {tasks[0]['id']}: dropped by {vehicle}" in reasons
    assert f"material_load at {CNC1}" in reasons
    # a lot scanned at the machine that the buffer does not hold: the oldest lot there is counted, and said so
    event = {**event, "lot": "LOT-W-0002"}  # a lot in rack R-01
    plant.client.publish(MES_TOPIC, json.dumps(event), qos=1)
    wait_for(lambda: stock(plant, "LS-CNC1") == 5, timeout=30)
    assert httpx.get(f"{plant.url}/api/warehouse/moves", params={"limit": 1}, timeout=30).json()[0]["reason"] == (
        f"material_load at {CNC1} (lot LOT-W-0002 scanned, not in stock here: oldest lot taken)")
    assert stock(plant, "R-01") == 200
    orders = [m for t, m in plant.messages if t == f"uagv/v2/shopfloor-sim/{vehicle}/order"]
    actions = [a["actionType"] for m in orders for n in m["nodes"] for a in n.get("actions", [])]
    assert "pick" in actions and "drop" in actions
    assert {m["connectionState"] for t, m in plant.messages if t.endswith("/connection")} == {"ONLINE"}
    assert plant.plans  # ... each checked by check_solution in the fixture
    vehicles = httpx.get(f"{plant.url}/api/warehouse/vehicles", timeout=30).json()["vehicles"]
    assert {v["serial"] for v in vehicles} == {"agv1", "agv2", "agv3"}
    assert all(v["online"] and 0 < v["battery"] <= 100 for v in vehicles)
    # the vehicles' position, battery, state and load are derived tags in the historian too
    tag = plant.platform.tag_index.id_of(f"virtual-factory/logistics/intralogistics/{vehicle}/battery")
    batch = wait_for(lambda: (b := plant.platform.historian.latest([tag])) and len(b) and b, timeout=30)
    assert 0 < float(np.asarray(batch.value)[0]) <= 100


def test_a_work_order_released_at_a_machine_stages_its_material(plant: Plant) -> None:
    cnc3 = CNC1.replace("cell1/cnc1", "cell3/cnc3")
    assert stock(plant, "LS-CNC3") == 3  # at its minimum: consumption alone would not order yet
    order = {"kind": "work_order", "number": "WO-T-1", "product": "FLANGE", "quantity": 5, "equipment": cnc3,
             "ts_ms": int(time.time() * 1000)}
    plant.client.publish(MES_TOPIC, json.dumps(order), qos=1)
    tasks = wait_for(lambda: [t for t in httpx.get(f"{plant.url}/api/warehouse/tasks", timeout=30).json()
                              if t["to_location"] == "LS-CNC3"], timeout=30)
    assert sum(t["quantity"] for t in tasks) == 3  # 3 < the order's 5: filled to the maximum 6
    assert plant.service.health()["work_orders_staged"] == 1


def test_bad_input_is_counted_and_kept(plant: Plant) -> None:
    before = plant.service.health()["dead_letters"]
    plant.client.publish(MES_TOPIC, b"{not json", qos=1)
    plant.client.publish(MES_TOPIC, json.dumps({"kind": "material_load", "equipment": CNC1, "material": "BAR-C45",
                                                "quantity": 500, "ts_ms": 1}), qos=1)
    plant.client.publish("uagv/v2/shopfloor-sim/agv1/state", b'{"headerId": 1}', qos=1)
    plant.client.publish("uagv/v2/acme/forklift9/state", b"{}", qos=1)
    wait_for(lambda: plant.service.health()["dead_letters"] == before + 4, timeout=30)
    reasons = [d.reason for d in plant.platform.dead_letters.list(source="warehouse")]
    assert any("not JSON" in r for r in reasons)
    assert any("cannot take 500 of BAR-C45 from LS-CNC1" in r for r in reasons)
    assert any("VDA 5050 state" in r for r in reasons)
    assert any("'forklift9' is not in the warehouse config" in r for r in reasons)
    assert plant.service.health()["connected"]


def test_orders_through_the_api(plant: Plant) -> None:
    with httpx.Client(base_url=plant.url, timeout=30) as http:
        r = http.post("/api/warehouse/orders", json={"kind": "outbound", "number": "OUT-X", "material": "BAR-C45",
                                                     "quantity": 10_000, "dock": "D-OUT"})
        assert r.status_code == 422 and "less than 10000 of BAR-C45" in r.json()["detail"]
        r = http.post("/api/warehouse/orders", json={"kind": "inbound", "number": "IN-X", "material": "BAR-C45",
                                                     "quantity": 5, "dock": "D-NOPE", "lot": "LOT-X"})
        assert r.status_code == 404
        r = http.post("/api/warehouse/orders", json={"kind": "inbound", "number": "IN-X", "material": "BAR-C45",
                                                     "quantity": -5, "dock": "D-IN", "lot": "LOT-X"})
        assert r.status_code == 422
        r = http.put("/api/warehouse/blocked", json={"cells": [[1, 1]]})
        assert r.status_code == 422 and "cell (x=1, y=1) is blocked" in r.json()["detail"]
        m = http.get("/api/warehouse/map").json()
        assert m["width"] == 24 and len(m["rows"]) == 9 and {loc["kind"] for loc in m["locations"]} == {
            "rack", "bin", "dock", "line_side"}
        slots = http.get("/api/warehouse/slotting").json()
        assert {s["abc"] for s in slots} <= {"A", "B", "C"} and len(slots) == 4  # four materials in storage
        distances = [s["suggested_distance"] for s in slots]
        assert distances == sorted(distances)  # the most picked first, nearest a dock first


def test_the_warehouse_page_shows_vehicles_moving(plant: Plant) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{plant.url}/#/warehouse")
            expect(page.get_by_test_id("warehouse-page")).to_be_visible(timeout=30_000)
            expect(page.locator('[data-testid="wh-vehicle"]')).to_have_count(3, timeout=30_000)
            # an outbound order sets vehicles moving; the page must show them at new places
            page.locator('#wh-order select[name="kind"]').select_option("outbound")
            page.locator('#wh-order input[name="number"]').fill("OUT-PAGE")
            page.locator('#wh-order input[name="material"]').fill("BAR-42CrMo4")
            page.locator('#wh-order input[name="quantity"]').fill("3")
            page.locator('#wh-order button[type="submit"]').click()
            expect(page.locator('[data-testid="wh-tasks"]')).to_contain_text("OUT-PAGE", timeout=30_000)

            def positions() -> dict[str, tuple[str, str]]:
                got: dict[str, tuple[str, str]] = page.evaluate(
                    "() => Object.fromEntries([...document.querySelectorAll('[data-testid=wh-vehicle]')]"
                    ".map((g) => [g.dataset.serial, [g.dataset.x, g.dataset.y]]))")
                return got

            first = positions()
            wait_for(lambda: positions() != first, timeout=TIMEOUT, interval=0.3)
            # a buffer below its minimum is highlighted on the map and in the table
            plant.client.publish(MES_TOPIC, json.dumps({"kind": "material_load", "equipment":
                                                        "virtual-factory/machining/line1/cell2/cnc2",
                                                        "material": "BAR-C45", "quantity": 3, "ts_ms": 1}), qos=1)
            expect(page.locator('.wh-map g.loc.line_side.low[data-code="LS-CNC2"]')).to_have_count(1, timeout=30_000)
            expect(page.locator('[data-testid="wh-lineside"] tr.wh-low')).to_contain_text("LS-CNC2")
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "warehouse.png"))
            assert not errors, errors
        finally:
            browser.close()


def test_reading_needs_a_viewer_and_ordering_an_operator(mosquitto: Mosquitto, tmp_path: Path) -> None:
    plant_dict: dict[str, Any] = {"site": {"name": "virtual-factory", "areas": []}, "auth": {"enabled": True}}
    AgvExtension(1).extend_plant(plant_dict)
    platform = Platform(PlantConfig.model_validate(plant_dict), data_dir=tmp_path, broker_url=mosquitto.url)
    server = ApiServer(create_app(platform)).start(timeout=60)  # the platform starts inside: allow a busy machine
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            platform.users.add_user("vera", "viewer-pw!", "viewer")
            platform.users.add_user("otto", "operator-pw", "operator")
            viewer = {"Authorization": f"Bearer {platform.users.create_token('vera')[0]}"}
            operator = {"Authorization": f"Bearer {platform.users.create_token('otto')[0]}"}
            for path in ("/api/warehouse/locations", "/api/warehouse/stock", "/api/warehouse/live"):
                assert http.get(path).status_code == 401, path
                assert http.get(path, headers=viewer).status_code == 200, path
            order = {"kind": "inbound", "number": "IN-1", "material": "BAR-C45", "quantity": 20, "dock": "D-IN",
                     "lot": "LOT-IN-1"}
            refused = http.post("/api/warehouse/orders", json=order, headers=viewer)
            assert refused.status_code == 403 and "needs role operator" in refused.json()["detail"]
            assert http.put("/api/warehouse/blocked", json={"cells": []}, headers=viewer).status_code == 403
            made = http.post("/api/warehouse/orders", json=order, headers=operator)
            assert made.status_code == 201, made.text
            assert http.get("/api/warehouse/orders", headers=viewer).json()[0]["user"] == "otto"
            assert http.get("/api/warehouse/stock", params={"location": "D-IN"}, headers=viewer).json()[0]["lot"] == (
                "LOT-IN-1")
    finally:
        server.stop()
