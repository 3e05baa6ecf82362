"""The Drive page in headless Chromium (Playwright): the camera frame shows, the round trip shows, holding
Forward drives the loco and letting go stops it (a normal stop, not the deadman's)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shopfloor.api import create_app
from shopfloor.config.schema import PlantConfig
from shopfloor.control.drive_bench import TEST_SPEC
from shopfloor.platform import Platform
from shopfloor.sim.extension import Broker
from shopfloor.sim.vehicle import LocomotiveExtension, VehicleDevice
from shopfloor.testing.browser import CHROMIUM, CHROMIUM_ARGS
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

OUTPUT = Path(os.environ.get("SHOPFLOOR_TEST_OUTPUT", Path(__file__).parents[2] / "test-output")) / "web"

# The deadman at settings a busy test machine does not trip by accident (the link tests time it).
SPEC = replace(TEST_SPEC, heartbeat_timeout_s=1.0, latency_budget_s=0.8)


@pytest.fixture
def served(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, VehicleDevice]]:
    data: dict[str, Any] = {"site": {"name": "plant", "description": "Mine", "areas": []}}
    loco = LocomotiveExtension(spec=SPEC)
    loco.extend_plant(data)
    platform = Platform(PlantConfig.model_validate(data), data_dir=tmp_path / "data", broker_url=mosquitto.url)
    platform.start(connect_timeout=60)  # generous: a busy machine
    server = ApiServer(create_app(platform, manage_lifecycle=False)).start(timeout=60)
    try:
        loco.start(Broker("127.0.0.1", mosquitto.port))
        assert loco.device is not None
        yield server.url, loco.device
    finally:
        loco.stop()
        server.stop()
        platform.stop()


def test_drive_page_camera_round_trip_and_hold_to_drive(served: tuple[str, VehicleDevice]) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (Debian package 'chromium')")
    from playwright.sync_api import expect, sync_playwright

    url, device = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(20_000)
            page.goto(f"{url}/#/drive")
            camera = page.locator('[data-testid="drive-camera"]')
            page.wait_for_function("() => document.querySelector('[data-testid=drive-camera]')?.naturalWidth === 320")
            expect(camera).to_have_attribute("src", re.compile(r"^blob:"))
            expect(page.locator('[data-testid="drive-state"]')).to_have_attribute("data-state", "stopped")

            forward = page.locator('[data-testid="drive-forward"]')
            forward.hover()
            page.mouse.down()  # hold to drive
            expect(page.locator('[data-testid="drive-rtt"]')).to_contain_text("ms")
            expect(page.locator('[data-testid="drive-jitter"]')).to_contain_text("ms")
            start = device.snapshot()["position"]
            wait_for(lambda: device.snapshot()["position"] > start + 0.05, 15)
            expect(page.locator('[data-testid="drive-state"]')).to_have_attribute("data-state", "driving")
            expect(page.locator('[data-testid="drive-speed"]')).not_to_have_text("0.000m/s")
            OUTPUT.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUTPUT / "drive-1366x768.png"))

            page.mouse.up()  # let go: a normal stop
            wait_for(lambda: device.snapshot()["speed"] == 0.0, 15)
            snap = device.snapshot()
            assert snap["state"] == "stopped" and snap["trips"] == 0, snap
            expect(page.locator('[data-testid="drive-state"]')).to_have_attribute("data-state", "stopped")
            stopped_at = device.snapshot()["position"]
            page.wait_for_timeout(500)
            assert device.snapshot()["position"] == stopped_at  # it stays stopped: no heartbeats, no command
        finally:
            browser.close()
