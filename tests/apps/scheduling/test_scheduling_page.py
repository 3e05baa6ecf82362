"""The Schedule page in a real browser (headless Chromium via Playwright) on a running plant: the virtual
factory publishing to a broker, the platform with its planner (the demo's ``scheduling:`` section) and the API.
The planner plans the work orders entered, the Gantt shows the plan beside the CNCs' actual states, and a
rush order entered on the page is inserted by a reschedule that shows as a marker and in the history.

The plant is the demo's line with only the planner's extension, in this process: `shopfloor demo` also
trains the other apps' models at start, which costs far more than this test needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from shopfloor.api.app import create_app
from shopfloor.platform import Platform
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.publisher import FactoryPublisher
from shopfloor.sim.schedule_ext import ScheduleExtension
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from tests.web.conftest import OUTPUT


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the running plant's API and dashboard."""
    with Mosquitto() as broker:
        factory = VirtualFactory(seed=1, extensions=[ScheduleExtension(improve_time_limit_s=1.0)])
        platform = Platform(factory.plant_config(), data_dir=tmp_path_factory.mktemp("plant"), broker_url=broker.url)
        publisher = FactoryPublisher(factory, broker.host, broker.port, speed=1.0)

        def start_publisher() -> None:  # as the demo does: the first step is stamped now
            factory.restart_clock(time.time_ns() // 1_000_000 * 1_000_000 - factory.step_ns)
            publisher.start()

        with ApiServer(create_app(platform, on_start=[start_publisher], on_stop=[publisher.stop])) as server:
            yield server.url


def gantt_traces(p: Page) -> list[str]:
    names: list[str] = p.evaluate("() => (document.querySelector('#gantt').data || []).map((t) => t.name)")
    return names


def test_schedule_page_shows_plan_against_actual_and_a_rush_order(browser: Browser, plant: str) -> None:
    due = int(time.time() * 1000) + 3_600_000
    with httpx.Client(base_url=plant, timeout=30) as http:
        for number, product, quantity in [("T-1", "HOUSING", 12), ("T-2", "SHAFT", 20), ("T-3", "FLANGE", 15),
                                          ("T-4", "HOUSING", 8)]:
            r = http.post("/api/scheduling/plant/orders",
                          json={"number": number, "product": product, "quantity": quantity, "due_ms": due})
            assert r.status_code == 202, r.text
    context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme="light")
    errors: list[str] = []
    p = context.new_page()
    p.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    p.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    try:
        p.goto(f"{plant}/#/schedule")
        expect(p.get_by_test_id("schedule-page")).to_be_visible(timeout=20_000)
        for number in ("T-1", "T-2", "T-3", "T-4"):
            expect(p.get_by_test_id("order-row").filter(has_text=number)).to_have_count(1, timeout=20_000)
        expect(p.get_by_test_id("kpi-finish")).not_to_contain_text("nothing planned", timeout=20_000)
        expect(p.locator('[data-testid="event-row"][data-trigger="orders"]').first).to_be_visible()
        # plan bars and the actual states the CNCs report on the bus
        p.wait_for_function("() => { const g = document.querySelector('#gantt'); return g && g.data && g.data.some("
                            "(t) => t.name.startsWith('plan')) && g.data.some((t) => t.name === 'running'); }",
                            timeout=30_000)
        assert "now" in p.evaluate("() => document.querySelector('#gantt').layout.annotations.map((a) => a.text)")

        p.get_by_role("button", name="New work order").click()
        p.locator("#wo-number").fill("T-RUSH")
        p.locator("#wo-product").fill("SHAFT")
        p.locator("#wo-quantity").fill("3")
        p.locator("#wo-priority").fill("10")
        p.get_by_role("button", name="Plan it").click()
        expect(p.locator('[data-testid="event-row"][data-trigger="rush_order"]')).to_be_visible(timeout=30_000)
        expect(p.get_by_test_id("order-row").filter(has_text="T-RUSH")).to_contain_text("rush")
        expect(p.get_by_test_id("kpi-reschedules").locator(".value")).not_to_have_text("0")
        p.wait_for_function("() => document.querySelector('#gantt').layout.annotations.some((a) => "
                            "a.text === 'Rush order')", timeout=15_000)
        assert any(n.startswith("plan") for n in gantt_traces(p))
        OUTPUT.mkdir(parents=True, exist_ok=True)
        p.screenshot(path=str(OUTPUT / "schedule.png"), full_page=True)
    finally:
        context.close()
    assert errors == [], errors
