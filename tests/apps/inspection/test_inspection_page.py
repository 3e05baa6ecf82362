"""The Inspection page in a real browser (headless Chromium via Playwright): the latest parts with their
overlay and verdict, the defect-rate trend, the review queue where a verdict is confirmed, the refused images."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from shopfloor.apps.inspection.station import encode_png
from shopfloor.sim.camera import image_topic
from tests.apps.inspection.conftest import Line, uncertain_images
from tests.web.conftest import OUTPUT


def test_inspection_page_shows_parts_trend_review_queue_and_refused_images(browser: Browser, line: Line) -> None:
    serials = ["SN-P1", "SN-P2", "SN-P3"]
    line.produce(*serials)
    for s in serials:
        line.verdict(s)
    model = line.platform.service("inspection").model  # type: ignore[attr-defined]
    (image,) = uncertain_images(model, 1, seed=5)
    r = line.api.post("/api/inspection/images", params={"serial": "SN-UNSURE"}, content=encode_png(image),
                      headers={"content-type": "image/png"})
    assert r.status_code == 201 and r.json()["review"] == "pending"
    line.publish(image_topic("camera1"), b"garbage without a header")

    context = browser.new_context(viewport={"width": 1366, "height": 1000}, color_scheme="light")
    errors: list[str] = []
    p = context.new_page()
    p.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    p.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    try:
        p.goto(f"{line.api.base_url}/#/inspection")
        expect(p.get_by_test_id("inspection-page")).to_be_visible(timeout=20_000)
        for s in [*serials, "SN-UNSURE"]:
            expect(p.locator(f'[data-testid="part"][data-serial="{s}"]')).to_be_visible(timeout=20_000)
        # every overlay image is loaded (decoded PNG from /overlay), and carries its verdict
        p.wait_for_function("() => [...document.querySelectorAll('#parts img')].every((i) => i.complete && "
                            "i.naturalWidth === 400)", timeout=20_000)
        expect(p.locator('[data-serial="SN-P1"] [data-testid="verdict"]')).to_have_text(re.compile("^(pass|fail)$"))
        p.wait_for_function("() => { const t = document.querySelector('#trend'); return t && t.data && "
                            "t.data[0].y.reduce((a, b) => a + b, 0) >= 4; }", timeout=20_000)
        row = p.locator('[data-testid="review-row"]').filter(has_text="SN-UNSURE")
        expect(row).to_be_visible()
        expect(p.get_by_test_id("rejected-row").first).to_contain_text("no JSON header", timeout=20_000)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        p.screenshot(path=str(OUTPUT / "inspection-page.png"), full_page=True)
        row.locator('button[data-action="confirm"]').click()
        expect(p.get_by_test_id("toast").first).to_contain_text("confirmed")
        expect(row).to_have_count(0, timeout=20_000)
        expect(p.locator('[data-serial="SN-UNSURE"]')).to_contain_text("confirmed by anonymous", timeout=20_000)
        found = line.api.get("/api/inspection/serials/SN-UNSURE").json()
        assert found["reviewed"] and found["inspections"][0]["review"] == "confirmed"
        assert not errors, errors
    finally:
        context.close()
