"""The Maintenance page in a real browser (headless Chromium via Playwright): each machine's health, RUL with
its interval and fault, the health/RUL trend from the historian, and a work order acknowledged from the page.

The platform's maintenance service gets a bearing's last two hours as its live tags (vibration rising on the
P-F curve at rated speed, written to the platform as the CNC's samples) and vibration windows over MQTT."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, expect

from shopfloor.api import create_app
from shopfloor.apps.maintenance.service import MaintenanceService
from shopfloor.platform import Platform
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.machines import CncParams
from shopfloor.sim.vibration import VibrationExtension, VibrationParams, bearing_window, encode_window
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for
from tests.web.conftest import OUTPUT

CNC = CncParams()
EQUIPMENT = "virtual-factory/machining/line1/cell1/cnc1"


def feed_a_failing_bearing(platform: Platform, broker: Mosquitto) -> None:
    """Two hours of a bearing wearing from 0.3 to 0.85 (10 s samples), and an outer-race window each minute."""
    now = time.time_ns() // 10**9 * 10**9
    ts = now - np.arange(720, 0, -1, dtype=np.int64) * 10 * 10**9
    wear = np.linspace(0.3, 0.85, ts.size)
    vib = CNC.vib_idle_mm_s + CNC.vib_base_mm_s + CNC.vib_wear_mm_s * wear**3
    speed = np.full(ts.size, CNC.rated_speed_rpm)
    paths = [f"{EQUIPMENT}/spindle_speed", f"{EQUIPMENT}/vibration"]
    platform.write(np.repeat(paths, ts.size).tolist(), np.concatenate([ts, ts]), np.concatenate([speed, vib]))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-maintenance-page")
    client.connect(broker.host, broker.port)
    client.loop_start()
    params, rng = VibrationParams(), np.random.default_rng(0)
    try:
        for k in range(0, ts.size, 60):
            x = bearing_window(rng, "outer", wear[k] ** 3, CNC.rated_speed_rpm, CNC.rated_speed_rpm, params)
            payload = encode_window(EQUIPMENT, int(ts[k] // 10**6), params.fs, CNC.rated_speed_rpm, x)
            client.publish("shopfloor/vibration/cnc1", payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_maintenance_page_shows_health_rul_trend_and_work_orders(
    browser: Browser, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = VirtualFactory(seed=1, cncs=(CNC,), extensions=[VibrationExtension(1, cncs=(CNC,))]).plant_config()
    platform = Platform(config, data_dir=tmp_path, broker_url=mosquitto.url)
    with ApiServer(create_app(platform)) as server:
        service = platform.service("maintenance")
        assert isinstance(service, MaintenanceService) and service.store is not None
        feed_a_failing_bearing(platform, mosquitto)
        store = service.store
        wait_for(lambda: service.analysed == 12 and store.open_for(EQUIPMENT) is not None, timeout=60)

        context = browser.new_context(viewport={"width": 1366, "height": 1000}, color_scheme="light")
        errors: list[str] = []
        p = context.new_page()
        p.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        p.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        try:
            p.goto(f"{server.url}/#/maintenance")
            expect(p.get_by_test_id("maintenance-page")).to_be_visible(timeout=20_000)
            card = p.locator(f'[data-testid="machine"][data-equipment="{EQUIPMENT}"]')
            expect(card.get_by_test_id("fault")).to_contain_text("outer race", timeout=20_000)
            expect(card.get_by_test_id("rul")).to_contain_text(" h")
            expect(card.get_by_test_id("health")).to_contain_text("%")
            # the trend: health index and RUL from the historian, the interval as a band
            p.wait_for_function("() => { const t = document.querySelector('#trend'); return t && t.data && "
                                "t.data.length === 4 && t.data[3].y.filter((v) => v !== null).length > 10 && "
                                "t.data[2].y.filter((v) => v !== null).length > 3; }", timeout=20_000)
            row = p.get_by_test_id("work-order").first
            expect(row).to_contain_text("outer race")
            expect(row).to_contain_text("open")
            OUTPUT.mkdir(parents=True, exist_ok=True)
            p.screenshot(path=str(OUTPUT / "maintenance-page.png"), full_page=True)
            row.locator('button[data-action="ack"]').click()
            expect(p.get_by_test_id("toast").first).to_contain_text("acknowledged")
            expect(p.get_by_test_id("work-order").first).to_contain_text("acknowledged", timeout=20_000)
            assert [o.status for o in store.list()] == ["acknowledged"]
            assert not errors, errors
        finally:
            context.close()
