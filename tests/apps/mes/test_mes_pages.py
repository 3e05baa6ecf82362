"""The Production and Trace pages in Chromium (Playwright) against a running `shopfloor demo`.

The demo's data directory is seeded first: the historian with the factory's last hour (as the other browser
tests do, tests/web/conftest.py), and the MES with what the factory's line controller (sim/production.py)
said over the last 20 minutes, recorded through the recorder (as if it had come online then). The demo then
carries on live: its own line controller publishes over MQTT to the demo's recorder.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from shopfloor.apps.mes.config import MesConfig
from shopfloor.apps.mes.events import parse_event
from shopfloor.apps.mes.ingest import Recorder, ensure_master_data
from shopfloor.apps.mes.service import Mes
from shopfloor.sim.factory import VirtualFactory
from shopfloor.sim.production import ProductionExtension, mes_section
from shopfloor.testing.processes import interrupt
from shopfloor.testing.waiting import wait_for
from tests.web.conftest import OUTPUT, SEED, Demo, seed_history


def seed_mes(data_dir: Path, minutes: int = 20) -> int:
    """The line controller's events of the last `minutes`, recorded into the demo's MES; returns how many."""
    events: list[dict[str, Any]] = []
    start_ns = (time.time_ns() - minutes * 60_000_000_000) // 1_000_000 * 1_000_000
    factory = VirtualFactory(seed=SEED, start_ns=start_ns, extensions=[ProductionExtension(SEED, sink=events.extend)])
    factory.advance(minutes * 60)
    mes = Mes.open(data_dir)
    try:
        ensure_master_data(mes, MesConfig.model_validate(mes_section(ProductionExtension(SEED).cnc_params)))
        recorder = Recorder(mes)
        for e in events:
            assert recorder.record(parse_event(e))
    finally:
        mes.close()
    return len(events)


# amqtt (the demo's embedded broker) iterates its subscriptions across an await when a client connects
# (amqtt/broker.py, "for topic in self._subscriptions: await ..."): a client subscribing to a new topic at that
# moment makes it raise "dictionary changed size during iteration", which asyncio logs with a traceback and the
# client reconnects. The demo has a dozen clients starting together, so it happens now and then; it is the
# broker's bug, not the pages', so only that traceback is let through here.
AMQTT_RACE = re.compile(
    r"ERROR +asyncio: Unhandled exception in client_connected_cb\n(?:(?!\n\d{4}-\d\d-\d\d ).)*?"  # one log record
    r"\nRuntimeError: dictionary changed size during iteration\n", re.S,
)


class MesDemo(Demo):
    def stop(self) -> None:
        if self.proc is not None:
            code, out = interrupt(self.proc)
            self.output.append(out)
            self.proc = None
            assert code == 0, out
            assert "Traceback" not in AMQTT_RACE.sub("", out), out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("mes-demo") / "data"
    data_dir.mkdir()
    seed_history(data_dir)
    assert seed_mes(data_dir) > 100
    d = MesDemo(data_dir)
    d.start(timeout=120)
    try:
        yield d
    finally:
        d.stop()


def _page(browser: Browser, errors: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return page


@pytest.mark.timeout(360)  # the demo's start and stop (every app's service) are part of this test's time
def test_production_and_trace_pages(demo: Demo, browser: Browser) -> None:
    # The demo's own line controller reaches its recorder: orders, log-ons and states arrive at once.
    health = wait_for(lambda: (h := httpx.get(f"{demo.url}/health", timeout=10).json()["services"]["mes"])
                      ["recorded"] > 0 and h, timeout=60)
    assert health["rejected"] == 0 and health["state"] == "connected"
    errors: list[str] = []
    page = _page(browser, errors)
    try:
        page.goto(f"{demo.url}/#/production")
        oee = page.get_by_test_id("oee-value")
        expect(oee).to_have_text(re.compile(r"^\d+\.\d$"), timeout=30_000)
        assert 0.0 < float(oee.inner_text()) <= 100.0  # an hour of the factory: a real OEE, not a first-minute one
        expect(page.get_by_test_id("shift-row").first).to_be_visible()
        expect(page.locator("[data-testid=pareto] .main-svg").first).to_be_attached(timeout=15_000)
        rows = page.get_by_test_id("machine-row")
        expect(rows).to_have_count(3)
        rows.first.click()
        expect(page.locator("#drill")).to_be_visible()
        expect(page.locator("#drill-title")).to_contain_text("cnc1")
        expect(page.locator("#timeline .main-svg").first).to_be_attached()
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=OUTPUT / "production.png", full_page=True)

        page.goto(f"{demo.url}/#/trace")
        first = page.get_by_test_id("recent-serial").first
        expect(first).to_be_visible(timeout=15_000)
        serial = first.inner_text()
        first.click()
        back = page.get_by_test_id("trace-backward")
        expect(back.locator(f"[data-code='{serial}']")).to_be_visible(timeout=15_000)
        expect(back.locator("[data-testid=trace-node] .badge", has_text="lot")).to_have_count(1)  # its steel lot
        expect(back.get_by_test_id("inspection").first).to_be_visible()
        expect(back).to_contain_text("Made")
        expect(page.get_by_test_id("trace-forward")).to_be_visible()
        expect(page.get_by_test_id("verify")).to_contain_text("record intact", timeout=30_000)
        page.screenshot(path=OUTPUT / "trace.png", full_page=True)
    finally:
        page.close()
    assert not errors, errors
