"""With auth on, the dashboard's own endpoints answer only logged-in users; with it off, everyone (the demo)."""

from __future__ import annotations

import httpx
import pytest

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.platform import Platform
from tests.web.test_web_summary import PLANT

PAGES = ["/api/dashboard/overview", "/api/dashboard/tags", "/api/dashboard/health"]


def client(auth: bool) -> httpx.AsyncClient:
    """The app in process, its platform not started: a request that passes the role check meets a 503."""
    app = create_app(Platform(parse_plant_config(PLANT + f"auth: {{enabled: {str(auth).lower()}}}\n")))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test")


@pytest.mark.parametrize("path", PAGES)
async def test_dashboard_endpoints_need_a_login_when_auth_is_on(path: str) -> None:
    async with client(auth=True) as http:
        r = await http.get(path)
        assert r.status_code == 401 and "log in" in r.json()["detail"]
    async with client(auth=False) as http:
        assert (await http.get(path)).status_code == 503  # past the role check: the platform is not running
