"""The dashboard's files are served by the platform itself: the page at /, its modules, Plotly from the wheel."""

from __future__ import annotations

import httpx

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.platform import Platform
from shopfloor.web import PLOTLY_URL, STATIC, plotly_js
from tests.web.test_web_summary import PLANT


def client() -> httpx.AsyncClient:
    """The app in process; its lifespan does not run, so nothing is started: static routes need nothing."""
    app = create_app(Platform(parse_plant_config(PLANT)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test")


async def test_front_page_is_the_dashboard_and_the_api_docs_stay() -> None:
    async with client() as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert f'src="{PLOTLY_URL}"' in page.text and "{{" not in page.text
        assert (await http.get("/docs")).status_code == 200
        assert "/api/dashboard/overview" in (await http.get("/openapi.json")).json()["paths"]


async def test_every_module_the_page_imports_is_served() -> None:
    async with client() as http:
        for path in sorted(STATIC.rglob("*")):
            if path.is_file():
                r = await http.get(f"/static/{path.relative_to(STATIC).as_posix()}")
                assert r.status_code == 200, path
                assert r.content == path.read_bytes()
        assert (await http.get("/static/js/missing.js")).status_code == 404


async def test_plotly_comes_from_the_wheel_compressed_when_the_browser_accepts_it() -> None:
    async with client() as http:
        original = plotly_js().read_bytes()
        zipped = await http.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"})
        assert zipped.status_code == 200 and zipped.headers["content-encoding"] == "gzip"
        assert "immutable" in zipped.headers["cache-control"]
        assert zipped.content == original  # the client decompressed it
        assert int(zipped.headers["content-length"]) < len(original) / 2
        plain = await http.get(PLOTLY_URL, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == original
        assert b"plotly.js" in original[:200]
