"""The dashboard in a real browser (headless Chromium via Playwright) against a running `shopfloor demo`.

The tests share one demo process with an hour of history (conftest.py); the restart test stops and starts
it again, so it runs last. Every page is checked for console errors and uncaught exceptions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlparse

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

from shopfloor.api import create_app
from shopfloor.auth.store import Role
from shopfloor.config import parse_plant_config
from shopfloor.core.samples import SampleBatch
from shopfloor.platform import Platform
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for
from tests.web.conftest import Demo

CNC1 = "virtual-factory/machining/line1/cell1/cnc1"
SPEED = f"{CNC1}/spindle_speed"
DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class Watched:
    """A page and what its browser reported: console errors, uncaught exceptions, API requests."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[tuple[float, str]] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append((time.monotonic(), f"uncaught: {exc}")))
        page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") or message.type == "assert":
            self.errors.append((time.monotonic(), f"{message.type}: {message.text}"))

    def _request(self, request: Request) -> None:
        if "/api/" in request.url:
            self.requests.append(request.url)

    def history_requests(self) -> list[dict[str, str]]:
        out = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.path == "/api/history":
                out.append({k: v[0] for k, v in parse_qs(parsed.query).items()})
        return out

    def assert_no_errors(self, ignore_between: tuple[float, float] | None = None) -> None:
        lo, hi = ignore_between if ignore_between is not None else (0.0, -1.0)
        errors = [e for t, e in self.errors if not lo <= t <= hi]
        assert errors == [], errors


@pytest.fixture
def page(browser: Browser, demo: Demo) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme="light")
    watched = Watched(context.new_page())
    try:
        yield watched
    finally:
        context.close()


def wait_for_new_values(p: Page, equipment: str, timeout_ms: int = 15_000) -> None:
    """Wait until the key values on an equipment's card change (the spindle stops between parts, the rest moves)."""
    selector = f'[data-eq="{equipment}"] .card-values'
    before = p.locator(selector).inner_text()
    p.wait_for_function(
        "([sel, before]) => { const el = document.querySelector(sel); return el && el.innerText !== before; }",
        arg=[selector, before], timeout=timeout_ms,
    )


def bucket_ms(param: str) -> int:
    m = DURATION.match(param)
    assert m, param
    return int(m.group(1)) * UNIT_MS[m.group(2)]


PRESS1 = "virtual-factory/machining/line1/cell5/press1"
COLD_OIL = "press1-oil-cold"


def test_an_alarm_raised_by_the_demo_appears_live_is_acknowledged_and_shelved(
    browser: Browser, demo: Demo, output_dir: Path
) -> None:
    """The demo's press starts with cold oil: 30 s (of sample time) later its alarm rises, while the page is open.

    This test runs first, on the fresh demo, so the alarm is still to come when the page connects.
    """
    assert httpx.get(f"{demo.url}/api/alarms/{COLD_OIL}").json()["state"] == "normal"
    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme="light")
    watched = Watched(context.new_page())
    p = watched.page
    try:
        p.goto(f"{demo.url}/#/alarms")
        expect(p.get_by_test_id("alarms-page")).to_be_visible()
        expect(p.locator("#login")).to_be_hidden()  # auth is off in the demo: no login, no user shown
        expect(p.locator("#user")).to_be_hidden()
        row = p.locator(f'[data-testid="alarm-row"][data-alarm="{COLD_OIL}"]')
        expect(row).to_have_count(0)
        expect(row).to_have_attribute("data-state", "unack_active", timeout=90_000)
        assert p.evaluate("performance.getEntriesByType('navigation').length") == 1  # arrived live, no reload
        expect(row).to_contain_text("Pressing with cold hydraulic oil")
        expect(row.locator(".prio")).to_have_text("LOW")
        banner = p.get_by_test_id("alarm-banner")
        expect(banner).to_contain_text("press1")
        expect(banner).to_contain_text("Pressing with cold hydraulic oil")
        expect(banner.locator('[data-priority="low"]')).to_have_attribute("data-unack", "1")
        expect(p.locator("#alarm-tab-count")).to_have_text("1")
        p.screenshot(path=str(output_dir / "alarms-active-1366x768-light.png"), animations="disabled")

        # Acknowledge: the row stays (the condition is still there), acknowledged by the anonymous admin.
        row.get_by_role("button", name="Ack").click()
        expect(row).to_have_attribute("data-state", "acked_active")
        expect(row).to_contain_text("Ack active")
        expect(banner).to_contain_text("No unacknowledged alarms")
        expect(p.locator("#alarm-tab-count")).to_be_hidden()

        # The overview marks the press's card while the alarm is active.
        p.get_by_role("navigation", name="Pages").get_by_role("link", name="Overview").click()
        marker = p.locator(f'[data-eq="{PRESS1}"] [data-testid="alarm-marker"]')
        expect(marker).to_be_visible()
        expect(marker).to_have_text("LOW")
        expect(p.locator(f'[data-eq="{CNC1}"] [data-testid="alarm-marker"]')).to_be_hidden()

        # Shelve with a duration and a reason: it leaves the active list for the shelved one.
        p.get_by_role("navigation", name="Pages").get_by_role("link", name="Alarms").click()
        row.get_by_role("button", name="Shelve…").click()
        dialog = p.get_by_role("dialog", name="Shelve alarm")
        dialog.get_by_label("Shelve for").select_option("30")
        dialog.get_by_label("Reason").fill("warming up after the start")
        dialog.get_by_role("button", name="Shelve", exact=True).click()
        expect(row).to_have_count(0)
        shelved = p.locator(f'[data-testid="blocked-row"][data-alarm="{COLD_OIL}"]')
        expect(shelved).to_have_attribute("data-state", "shelved")
        expect(shelved).to_contain_text("anonymous: warming up after the start")
        expect(banner).to_contain_text("1 shelved")
        p.get_by_role("navigation", name="Pages").get_by_role("link", name="Overview").click()
        expect(p.locator(f'[data-eq="{PRESS1}"] [data-testid="alarm-marker"]')).to_be_hidden()

        # The journal shows each transition, newest first, with who.
        p.goto(f"{demo.url}/#/alarms/journal?alarm={COLD_OIL}")
        rows = p.get_by_test_id("journal-row")
        expect(rows).to_have_count(3)
        assert [rows.nth(i).get_attribute("data-event") for i in range(3)] == ["shelved", "acknowledged", "activated"]
        assert [rows.nth(i).get_by_test_id("journal-user").inner_text() for i in range(3)] == [
            "anonymous", "anonymous", "system"]
        expect(rows.first).to_contain_text("warming up after the start")
        expect(rows.first).to_contain_text("Ack active → Normal")
        watched.assert_no_errors()
    finally:
        context.close()


def test_overview_shows_the_simulated_line_and_values_change_live(page: Watched, demo: Demo) -> None:
    p = page.page
    p.goto(f"{demo.url}/")
    equipment = httpx.get(f"{demo.url}/api/assets").json()
    expected = sum(1 for _ in _equipment(equipment))
    expect(p.get_by_test_id("equipment-card")).to_have_count(expected)
    assert expected >= 11  # the line's 11 machines and meters, and what the demo's apps add beside them
    tree = p.get_by_role("complementary", name="Asset tree")
    for name in ("virtual-factory", "machining", "line1", "cell1", "cnc1", "robot1", "press1", "conveyor1"):
        expect(tree.get_by_text(name, exact=True)).to_be_visible()
    expect(p.locator("#link-status")).to_have_attribute("data-state", "live")
    card = p.locator(f'[data-eq="{CNC1}"]')
    expect(card.locator("[data-state-pill] .label")).to_have_text(re.compile(r"^(running|idle|down|setup)"))
    expect(p.get_by_test_id("kpi-running")).to_contain_text("Machines running")
    expect(p.get_by_test_id("kpi-quality")).to_contain_text("tags good")
    # The rates come from the seeded hour: the line made parts in it.
    expect(p.locator(".kpi").filter(has_text="Good parts made")).to_contain_text("parts/h")

    expect(card.locator(f'[data-tag="{SPEED}"]')).not_to_have_text("")
    wait_for_new_values(p, CNC1)
    assert p.evaluate("performance.getEntriesByType('navigation').length") == 1  # live, not by reloading
    page.assert_no_errors()


def _equipment(node: dict[str, object]) -> Iterator[dict[str, object]]:
    if node["level"] == "equipment":
        yield node
    for child in node["children"]:  # type: ignore[attr-defined]
        yield from _equipment(child)


def test_equipment_trend_loads_the_last_hour_and_zoom_asks_for_finer_buckets(page: Watched, demo: Demo) -> None:
    p = page.page
    with p.expect_response(lambda r: "/api/history" in r.url and "spindle_speed" in r.url) as response_info:
        p.goto(f"{demo.url}/#/equipment/{CNC1}?range=1h")
    history = response_info.value.json()
    chart = p.get_by_test_id("trend-chart")
    expect(chart).to_have_attribute("data-bucket-ms", re.compile(r"^\d+$"))
    first = page.history_requests()
    assert {r["tag"].rsplit("/", 1)[1] for r in first} == {"state", "spindle_speed", "spindle_load", "spindle_power"}
    hour_bucket = bucket_ms(first[0]["bucket"])
    now_ms = time.time() * 1000
    assert abs(int(first[0]["start"]) - (now_ms - 3_600_000)) < 30_000
    # The seeded hour is there: buckets from its first minutes up to now, about one per 5 s.
    assert history["t"][0] - (now_ms - 3_600_000) < 120_000
    assert len(history["t"]) > 0.8 * 3_600_000 / hour_bucket
    assert int(chart.get_attribute("data-points") or 0) > 3 * 0.8 * 3_600_000 / hour_bucket
    expect(p.locator("#mode")).to_have_text("● Live")

    # Drag across a tenth of the plot: Plotly zooms, the page asks the historian again with finer buckets.
    box = p.locator("#chart .nsewdrag").last.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    before = len(page.requests)
    p.mouse.move(box["x"] + box["width"] * 0.45, y)
    p.mouse.down()
    p.mouse.move(box["x"] + box["width"] * 0.50, y, steps=8)
    p.mouse.move(box["x"] + box["width"] * 0.55, y, steps=8)
    p.mouse.up()
    expect(p.locator("#mode")).to_have_text("❚❚ Zoomed")
    p.wait_for_function(f"() => document.querySelector('#chart').dataset.bucketMs !== '{hour_bucket}'")
    zoomed = page.history_requests()[len(first):]
    assert zoomed and len(page.requests) > before
    finer = {bucket_ms(r["bucket"]) for r in zoomed}
    assert max(finer) < hour_bucket, (hour_bucket, finer)
    span = int(zoomed[-1]["end"]) - int(zoomed[-1]["start"])
    assert 0.05 * 3_600_000 < span < 0.2 * 3_600_000  # the dragged tenth of the hour

    # Back to live, then the time-range picker: a day asks for coarser buckets.
    p.get_by_role("button", name="Back to live").click()
    expect(p.locator("#mode")).to_have_text("● Live")
    p.get_by_role("button", name="24h", exact=True).click()
    p.wait_for_function(f"() => Number(document.querySelector('#chart').dataset.bucketMs) > {hour_bucket}")
    day = page.history_requests()[-1]
    assert bucket_ms(day["bucket"]) > hour_bucket and "range=24h" in p.url
    page.assert_no_errors()


def test_tag_browser_searches_and_filters(page: Watched, demo: Demo) -> None:
    p = page.page
    p.goto(f"{demo.url}/#/tags")
    tags = httpx.get(f"{demo.url}/api/tags").json()
    rows = p.get_by_test_id("tag-row")
    expect(rows).to_have_count(len(tags))
    p.get_by_role("searchbox", name="Search tags").fill("bearing_temp")
    expect(rows).to_have_count(3)  # one per CNC
    p.get_by_role("combobox", name="Unit").select_option("kW")
    expect(rows).to_have_count(0)
    expect(p.get_by_text("No tag matches these filters.")).to_be_visible()
    p.get_by_role("searchbox", name="Search tags").fill("")
    in_kw = [t for t in tags if t["unit"] == "kW"]
    assert len(in_kw) >= 8  # 3 spindle power and 5 meter active power tags at least
    expect(rows).to_have_count(len(in_kw))
    p.get_by_role("combobox", name="Asset").select_option(CNC1)
    expect(rows).to_have_count(1)
    p.get_by_role("combobox", name="Quality").select_option("good")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("spindle_power")
    rows.first.click()
    expect(p).to_have_url(re.compile(r"#/equipment/.*cnc1\?tags=spindle_power"))
    page.assert_no_errors()


def test_data_health_shows_connectors_gateways_and_dead_letters(page: Watched, demo: Demo) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dashboard-test-bad-meter")
    client.connect("127.0.0.1", demo.mqtt_port)
    client.loop_start()
    try:
        client.publish("shopfloor/json/meter-cnc1", b"{not json", qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()
    p = page.page
    p.goto(f"{demo.url}/#/health")
    expect(p.get_by_test_id("platform-status")).to_have_text("ok")
    expect(p.get_by_test_id("connector-row")).to_have_count(3)
    line_gateway = p.get_by_test_id("gateway-row").filter(has_text="shopfloor/line1")
    expect(line_gateway).to_have_count(1)  # beside it, the demo's locomotive has an edge node of its own
    expect(line_gateway).to_contain_text("online")
    letter = p.get_by_test_id("deadletter-row").filter(has_text="{not json")
    expect(letter).to_have_count(1, timeout=10_000)
    expect(letter).to_contain_text("shopfloor/json/meter-cnc1")
    expect(p.locator(".kpi").filter(has_text="Ingest rate")).to_contain_text("rows/s")
    page.assert_no_errors()


SIZES = {"1366x768": (1366, 768), "1920x1080": (1920, 1080), "tablet": (820, 1180)}


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_fit_each_screen(
    browser: Browser, demo: Demo, output_dir: Path, theme: Literal["light", "dark"]
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme=theme)
    watched = Watched(context.new_page())
    p = watched.page
    try:
        for name, route, ready in (
            ("overview", "/", "[data-testid=equipment-card] [data-tag]"),
            ("equipment", f"/#/equipment/{CNC1}?range=1h", "#chart[data-points]"),
            ("alarms", "/#/alarms", "[data-testid=alarms-page] #active-rows tr"),
        ):
            p.goto(f"{demo.url}{route}")
            p.wait_for_selector(ready)
            assert p.evaluate("document.documentElement.dataset.theme") == theme
            for size, (width, height) in SIZES.items():
                p.set_viewport_size({"width": width, "height": height})
                p.wait_for_timeout(500)  # the layout and the chart follow the new size
                overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name} at {size} scrolls sideways by {overflow}px"
                p.screenshot(path=str(output_dir / f"{name}-{size}-{theme}.png"))
        watched.assert_no_errors()
    finally:
        context.close()


AUTH_PLANT = """\
site:
  name: plant
  areas:
    - name: shop
      lines:
        - name: line
          equipment:
            - name: oven
              source: {protocol: json, device: oven}
              tags:
                - {name: temperature, unit: °C}
mqtt: {client_id: dashboard-auth-test, host_id: null, json_prefix: dashboard-auth-test/json}
alarms:
  rules:
    - {name: oven-hot, type: limit, tag: plant/shop/line/oven/temperature, h: 250, hh: 300, priority: high,
       priorities: {HH: critical}, message: "Oven temperature high"}
auth: {enabled: true}
"""
# What the browser itself logs for the answers this test provokes: 401 (wrong password, cookie gone), 403.
EXPECTED_REFUSALS = re.compile(r"Failed to load resource: the server responded with a status of 40[13]")


def test_with_auth_on_a_viewer_cannot_acknowledge_and_an_operator_can(
    browser: Browser, demo: Demo, tmp_path: Path
) -> None:
    """A small platform of its own (one oven, auth on) in this process, on the demo's broker."""
    config = parse_plant_config(AUTH_PLANT)
    platform = Platform(config, data_dir=tmp_path / "data", broker_url=f"mqtt://127.0.0.1:{demo.mqtt_port}")
    with ApiServer(create_app(platform)) as server:
        for name, role in (("vera", Role.VIEWER), ("olga", Role.OPERATOR)):
            platform.users.add_user(name, f"{name}-password", role)
        oven = platform.tag_index.id_of("plant/shop/line/oven/temperature")
        # A minute of an oven chattering about H (61 transitions, enough for two journal pages), then above HH.
        now = time.time_ns()
        platform.writer.submit(SampleBatch.of(
            [oven] * 62, [now - (61 - i) * 1_000_000_000 for i in range(62)],
            [262.0 if i % 2 == 0 else 240.0 for i in range(61)] + [310.0],
        ))
        wait_for(lambda: platform.alarms.alarm("oven-hot:HH")["state"] == "unack_active", timeout=10)

        context = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme="dark")
        watched = Watched(context.new_page())
        p = watched.page
        try:
            p.goto(f"{server.url}/#/alarms")
            login = p.get_by_role("heading", name="Log in to shopfloor")
            expect(login).to_be_visible()
            expect(p.get_by_test_id("alarms-page")).to_have_count(0)  # nothing behind the form
            watched.assert_no_errors()  # a login screen is not an error: /api/auth/session answers 200
            p.get_by_label("User name").fill("vera")
            p.get_by_label("Password").fill("wrong")
            p.get_by_role("button", name="Log in").click()
            expect(p.get_by_text("Wrong user name or password.")).to_be_visible()
            p.get_by_label("Password").fill("vera-password")
            p.get_by_role("button", name="Log in").click()
            expect(login).to_be_hidden()
            expect(p.locator("#user-name")).to_have_text("vera")
            expect(p.locator("#user-role")).to_have_text("viewer")

            # A viewer sees the alarm but may not acknowledge it; the platform refuses it too.
            row = p.locator('[data-testid="alarm-row"][data-alarm="oven-hot:H"]')
            expect(row).to_have_attribute("data-state", "unack_active")
            ack = row.get_by_role("button", name="Ack")
            expect(ack).to_be_disabled()
            expect(ack).to_have_attribute("title", "Needs role operator; vera is viewer")
            expect(row.get_by_role("button", name="Shelve…")).to_be_disabled()
            expect(p.locator("#select-all")).to_be_disabled()
            refused = p.request.post(f"{server.url}/api/alarms/oven-hot:H/ack", data={"comment": ""})
            assert refused.status == 403 and "needs role operator" in refused.json()["detail"]
            p.get_by_role("button", name="Log out").click()
            expect(login).to_be_visible()

            # An operator can.
            p.get_by_label("User name").fill("olga")
            p.get_by_label("Password").fill("olga-password")
            p.get_by_role("button", name="Log in").click()
            expect(p.locator("#user-role")).to_have_text("operator")
            p.set_viewport_size({"width": 820, "height": 1180})  # the user in the top bar still fits a tablet
            expect(p.locator("#user-name")).to_be_visible()
            assert p.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
            p.set_viewport_size({"width": 1366, "height": 768})
            expect(ack).to_be_enabled()
            # Both levels at once: the critical HH first in the list, then H.
            rows = p.get_by_test_id("alarm-row")
            expect(rows).to_have_count(2)
            expect(rows.first).to_have_attribute("data-alarm", "oven-hot:HH")
            expect(p.get_by_test_id("alarm-banner").locator(".prio")).to_have_text("CRIT")
            p.locator("#select-all").check()
            p.get_by_role("button", name="Acknowledge selected (2)").click()
            expect(p.get_by_test_id("toast").filter(has_text="Acknowledged 2 alarms")).to_be_visible()
            expect(row).to_have_attribute("data-state", "acked_active")
            expect(rows.first).to_have_attribute("data-state", "acked_active")
            expect(row).to_contain_text("by olga")

            # Her role is lowered meanwhile: the platform's 403 is shown with the role needed, and the page follows.
            platform.users.update_user("olga", role=Role.VIEWER)
            row.get_by_role("button", name="Shelve…").click()
            dialog = p.get_by_role("dialog", name="Shelve alarm")
            dialog.get_by_label("Reason").fill("oven being serviced")
            dialog.get_by_role("button", name="Shelve", exact=True).click()
            expect(p.get_by_test_id("toast").filter(has_text="Not allowed to shelve")).to_contain_text(
                "needs role operator; olga is viewer")
            expect(p.locator("#user-role")).to_have_text("viewer")
            expect(row.get_by_role("button", name="Shelve…")).to_be_disabled()

            # The session ends (cookie gone): the next request answers 401 and the login form comes back.
            context.clear_cookies()
            p.get_by_role("link", name="Journal").click()
            expect(login).to_be_visible()
            expect(p.get_by_text("Your session ended. Log in again to go on.")).to_be_visible()
            p.get_by_label("User name").fill("olga")
            p.get_by_label("Password").fill("olga-password")
            p.get_by_role("button", name="Log in").click()
            journal = p.get_by_test_id("journal-row")
            expect(journal.filter(has_text="Acknowledged")).to_have_count(2)
            expect(journal.filter(has_text="Acknowledged").first).to_contain_text("olga")
            # Paging: 64 entries (62 of H, 2 of HH), 50 a page, newest first.
            expect(journal).to_have_count(50)
            p.get_by_role("button", name="Older →").click()
            expect(journal).to_have_count(14)
            expect(journal.last).to_have_attribute("data-event", "activated")
            expect(p.get_by_role("button", name="Older →")).to_be_disabled()
            p.get_by_role("button", name="← Newer").click()
            expect(journal.first).to_have_attribute("data-event", "acknowledged")
            # Filters: one alarm (in the address too), and a time window after everything.
            p.get_by_label("Alarm", exact=True).select_option("oven-hot:H")
            expect(p).to_have_url(re.compile(r"#/alarms/journal\?alarm=oven-hot%3AH$"))
            expect(journal).to_have_count(50)
            p.get_by_label("From").fill(time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 120)))
            expect(p.get_by_text("No journal entries match these filters.")).to_be_visible()
            # The overview's data needs the login too (/api/dashboard/*, viewer): the cookie carries it.
            p.get_by_role("navigation", name="Pages").get_by_role("link", name="Overview").click()
            card = p.get_by_test_id("equipment-card")
            expect(card).to_have_count(1)
            expect(card.get_by_test_id("alarm-marker")).to_have_text("CRIT +1")
            errors = [e for _, e in watched.errors if not EXPECTED_REFUSALS.search(e)]
            assert errors == [], errors
        finally:
            context.close()


def test_page_shows_disconnected_and_recovers_after_a_platform_restart(page: Watched, demo: Demo) -> None:
    p = page.page
    p.goto(f"{demo.url}/")
    status = p.locator("#link-status")
    expect(status).to_have_attribute("data-state", "live")
    banner = p.get_by_role("alert")
    expect(banner).to_be_hidden()
    alarm_banner = p.get_by_test_id("alarm-banner")
    expect(alarm_banner).to_have_attribute("data-link", "live")

    down_from = time.monotonic()
    demo.stop()
    expect(status).to_have_attribute("data-state", "disconnected", timeout=10_000)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Disconnected from the platform")
    expect(alarm_banner).to_have_attribute("data-link", "disconnected")
    demo.start()
    expect(status).to_have_attribute("data-state", "live", timeout=20_000)
    up_at = time.monotonic()
    expect(banner).to_be_hidden()
    expect(alarm_banner).to_have_attribute("data-link", "live", timeout=10_000)  # the alarm stream is back too
    summary = httpx.get(f"{demo.url}/api/alarms/summary").json()  # the restarted platform's, as the banner shows it
    for priority, counts in summary["by_priority"].items():
        chip = alarm_banner.locator(f'[data-priority="{priority}"]')
        expect(chip).to_have_attribute("data-unack", str(counts["unack"]))
        expect(chip).to_have_attribute("data-active", str(counts["active"]))

    # Values flow again, without a reload.
    wait_for_new_values(p, CNC1)
    # While the platform was away the browser itself logs the refused connections; nothing else is allowed.
    page.assert_no_errors(ignore_between=(down_from, up_at))
