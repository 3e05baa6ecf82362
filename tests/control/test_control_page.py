"""The Control page in headless Chromium (Playwright) against a running platform with real devices: the
interlock state shows, a refused command shows the rule's reason, a dangerous command is confirmed in the
dialog and reaches the Modbus device, and the audit table lists the attempts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.control.peers import FieldPeers, SparkplugCnc, plant_yaml
from shopfloor.platform import Platform
from shopfloor.testing.browser import CHROMIUM, CHROMIUM_ARGS
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer
from shopfloor.testing.waiting import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page



@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SparkplugCnc, FieldPeers]]:
    with Mosquitto() as broker:
        field = FieldPeers()
        field.start()
        cnc = SparkplugCnc("127.0.0.1", broker.port)
        platform = Platform(parse_plant_config(plant_yaml(broker.port, field)),
                            data_dir=tmp_path_factory.mktemp("page") / "data")
        platform.start()  # here, not in the server's lifespan: a loaded machine may take longer than its wait
        server = ApiServer(create_app(platform, manage_lifecycle=False))
        try:
            server.start(timeout=60)
            cnc.start()
            try:
                control = platform.service("control")
                wait_for(lambda: all(c["ready"] for c in control.describe()  # type: ignore[attr-defined]
                                     if c["name"] in ("cnc-run", "press-pressure")), 30)
                yield server.url, cnc, field
            finally:
                cnc.stop()
        finally:
            server.stop()
            platform.stop()
            field.stop()


@pytest.fixture(scope="module")
def page(served: tuple[str, SparkplugCnc, FieldPeers]) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page()
            pg.set_default_timeout(20_000)
            pg.goto(f"{served[0]}/#/control")
            yield pg
        finally:
            browser.close()


def test_control_page_refusal_confirm_and_audit(page: Page, served: tuple[str, SparkplugCnc, FieldPeers]) -> None:
    from playwright.sync_api import expect

    _, cnc, field = served
    run = page.locator('[data-testid="command-row"][data-command="cnc-run"]')
    expect(run.locator('[data-testid="interlock"]')).to_have_count(2)
    expect(run).to_have_attribute("data-ready", "true")

    cnc.set(guard_closed=0.0)  # the guard opens: the page shows the interlock blocked, and a start is refused
    expect(run).to_have_attribute("data-ready", "false")
    expect(run.locator('[data-testid="interlock"][data-state="blocked"]')).to_have_text("guard-closed")
    run.locator("[data-issue]").click()
    result = page.locator('[data-result="cnc-run"]')
    expect(result).to_have_text("Refused (409): interlock guard-closed: guard_closed == 1 was false (guard_closed=0)")
    cnc.set(guard_closed=1.0)

    page.fill("#value-press-pressure", "165")
    page.locator('[data-issue="press-pressure"]').click()
    dialog = page.locator('[data-testid="confirm-dialog"]')
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-what")).to_contain_text("press-pressure = 165 bar via modbus")
    dialog.locator("#confirm-ok").click()
    expect(page.locator('[data-result="press-pressure"]')).to_contain_text(
        "Executed: write register (6) holding 0 acknowledged: [1650]")
    assert (6, 0, [1650]) in field.writes

    rows = page.locator('[data-testid="audit-row"]')
    expect(rows.first).to_have_attribute("data-decision", "executed")
    expect(page.locator('[data-testid="audit-row"][data-decision="refused"][data-command="cnc-run"]')).to_have_count(1)
